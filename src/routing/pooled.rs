//! One call over a pool of models ([`ModelPool`]): per call, the models able to serve the
//! request (its context fits, tools if it offers tools, vision if it carries images; the
//! endpoint's circuit admits) are ordered by estimated cost, then priority, and ONE permit
//! request names them all in that order. The supervisor grants the first admissible (the
//! cheapest capable model with capacity now) or waits for the earliest freeing one, so the
//! choice and the reservation cannot race.
//!
//! Failover: a 429 or overload on one model is fed back to that model's scope (closed until its
//! Retry-After) and the call goes back to the supervisor at once with the same candidates, so
//! the next attempt lands on another model with no sleep; after `max_models` moves, rate limits
//! count as failed attempts (the supervisor still only grants a model that has capacity).
//! Without a supervisor, a model told to wait rests until its Retry-After and the next one in
//! order is used.
//!
//! This generalizes [`super::keyed`]: a candidate carries a provider actor and a model as well
//! as a key and scopes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{CallError, CallObserver, CallReport, Route, reserve};
use crate::agent::events::{Emitter, RunEvent};
use crate::config::{PoolEntry, Price};
use crate::keys::ApiKey;
use crate::provider::{
    ChatRequest, ChatResponse, ProviderError, ProviderErrorKind, ProviderRef, StreamSink,
};
use crate::quota::ScopeId;
use crate::supervisor::{AcquireRequest, Permit, QuotaEvent};

/// How many times one call moves to another model on a rate limit before it waits instead.
pub const DEFAULT_MAX_MODELS: u32 = 3;

/// Waits used when a model rate-limits without saying for how long and no supervisor tracks it.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// One way a pooled call can be made: a model at an endpoint, with a key and its scopes.
#[derive(Debug, Clone)]
pub struct PoolMember {
    /// The endpoint's provider actor (shared with every other route to that endpoint).
    pub provider: ProviderRef,
    /// The pool entry: provider name, model and capabilities.
    pub entry: PoolEntry,
    /// Its price (`None`: unknown, ordered after every priced model).
    pub price: Option<Price>,
    /// The key to send (`None`: the endpoint needs none).
    pub key: Option<ApiKey>,
    /// The scopes a call reserves in; the first gets provider feedback.
    pub scopes: Vec<ScopeId>,
}

impl PoolMember {
    /// `<provider>/<model>`.
    pub fn label(&self) -> String {
        format!("{}/{}", self.entry.provider, self.entry.model)
    }

    /// Estimated cost of `input` tokens in and up to `output` out (`INFINITY` when unpriced).
    pub fn estimated_cost(&self, input: u64, output: u64) -> f64 {
        let output = output.min(u64::from(self.entry.max_output_tokens));
        self.price
            .as_ref()
            .map_or(f64::INFINITY, |p| p.cost(input, output))
    }
}

/// What a request needs of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Input tokens (estimated) plus the output reserved: must fit the context window.
    pub context: u64,
    /// It offers tools.
    pub tools: bool,
    /// It carries images (some message has [`crate::provider::Message::images`]).
    pub vision: bool,
}

impl Needs {
    /// What `request`, estimated at `input` tokens with `output` reserved, needs.
    pub fn of(request: &ChatRequest, input: u64, output: u64) -> Needs {
        Needs {
            context: input.saturating_add(output),
            tools: !request.tools.is_empty(),
            vision: request.messages.iter().any(|m| !m.images.is_empty()),
        }
    }
}

/// The models of one pool an agent's calls choose among.
#[derive(Clone)]
pub struct ModelPool {
    /// The pool's name (`fast`, `smart`, ...).
    pub name: String,
    /// Its models, in the pool's order.
    pub members: Vec<PoolMember>,
    /// Moves to another model per call on rate limits before waiting (default
    /// [`DEFAULT_MAX_MODELS`]).
    pub max_models: u32,
    /// Where `model_selected`, `model_rotated` and `no_model_available` go (`None`: nowhere).
    pub events: Option<Emitter>,
}

impl std::fmt::Debug for ModelPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelPool")
            .field("name", &self.name)
            .field("members", &self.members)
            .field("max_models", &self.max_models)
            .finish_non_exhaustive()
    }
}

/// Whether `provider`'s endpoint circuit lets a call through (closed, or half-open with no
/// probe in flight): an open endpoint is skipped by selection.
fn circuit_admits(provider: &ProviderRef) -> bool {
    provider.circuit().admits()
}

impl ModelPool {
    /// The indexes of the members able to serve `needs`, cheapest estimated cost first (for
    /// `input` tokens in, `output` reserved), then lower priority, then pool order.
    pub fn order(&self, needs: &Needs, input: u64, output: u64) -> Vec<usize> {
        let mut able: Vec<(f64, u32, usize)> = self
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                let e = &m.entry;
                needs.context <= e.context_window
                    && (!needs.tools || e.tools)
                    && (!needs.vision || e.vision)
                    && circuit_admits(&m.provider)
            })
            .map(|(i, m)| (m.estimated_cost(input, output), m.entry.priority, i))
            .collect();
        able.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        able.into_iter().map(|(_, _, i)| i).collect()
    }

    /// Counts `event` in the pool metrics (here, once, whoever listens) and emits it.
    fn emit(&self, event: RunEvent) {
        crate::telemetry::pool::record_pool_event(&event);
        if let Some(e) = &self.events {
            e.emit(event);
        }
    }
}

fn reason(kind: ProviderErrorKind) -> &'static str {
    match kind {
        ProviderErrorKind::RateLimited => "rate_limited",
        ProviderErrorKind::Overloaded => "overloaded",
        ProviderErrorKind::Transient => "transient",
        ProviderErrorKind::Auth => "auth",
        _ => "error",
    }
}

/// Settles `permit` by the counting of the endpoint that served the call.
fn settle(
    member: &PoolMember,
    permit: Option<Permit>,
    result: &Result<ChatResponse, ProviderError>,
) {
    let Some(permit) = permit else {
        return;
    };
    let counting = reserve::Counting::of(member.provider.name());
    match reserve::settlement(counting, permit.tokens(), result) {
        Some(tokens) => permit.settle_tokens(tokens),
        None => permit.release_uncounted(),
    }
}

/// Makes one call through `route` on a model of `pool` (see the module docs).
pub async fn call<F>(
    route: &Route,
    pool: &ModelPool,
    build: F,
    sink: Option<&StreamSink>,
    priority: u8,
    observer: &dyn CallObserver,
) -> Result<CallReport, CallError>
where
    F: Fn() -> ChatRequest,
{
    let mut rng = fastrand::Rng::new();
    let mut calls: u32 = 0;
    let mut failures: u32 = 0;
    let mut moves: u32 = 0;
    let mut quota_wait = Duration::ZERO;
    let mut regrowths = 0;
    let mut ceiling = None;
    let max_attempts = route.retry.max_attempts.max(1);
    let hard_cap = max_attempts
        .saturating_mul(u32::try_from(pool.members.len()).unwrap_or(u32::MAX).max(1) + 1);
    // The member the previous attempt went to, and why it failed.
    let mut last: Option<(usize, &'static str)> = None;
    // Without a supervisor: member index -> when it may be used again.
    let mut resting: HashMap<usize, Instant> = HashMap::new();
    let agent = route.requester.to_string();
    loop {
        let own = build();
        let own_cap = own.max_tokens;
        let request = reserve::capped(route, own, ceiling);
        let tokens = reserve::tokens(route, &request);
        let order = pool.order(
            &Needs::of(&request, tokens.input, tokens.output),
            tokens.input,
            tokens.output,
        );
        if order.is_empty() {
            pool.emit(RunEvent::NoModelAvailable {
                agent: agent.clone(),
                pool: pool.name.clone(),
                eta_ms: None,
            });
            let error = ProviderError::new(
                ProviderErrorKind::RequestTooLarge,
                format!(
                    "no model of pool `{}` can serve this request (about {} tokens{})",
                    pool.name,
                    tokens.total(),
                    if request.tools.is_empty() {
                        ""
                    } else {
                        ", with tools"
                    }
                ),
            )
            .never_sent();
            return Err(CallError::Provider {
                error,
                calls,
                quota_wait,
            });
        }
        // The budget holds the dearest candidate's worst case until the supervisor chose one;
        // the hold is settled to what the chosen model cost.
        let hold = super::budget::reserve_most(
            route,
            order.iter().map(|&i| {
                let m = &pool.members[i];
                (m.provider.name(), m.entry.model.as_str())
            }),
            &request,
            calls,
            quota_wait,
        )?;
        let (chosen, permit) = match &route.quota {
            Some(q) => {
                // Subscribed before asking, so the supervisor's `waiting` answer is not missed.
                let events = pool.events.as_ref().map(|_| q.handle.subscribe());
                let acquire = super::traced::acquire(
                    &q.handle,
                    AcquireRequest {
                        candidates: q.with_extra(
                            order
                                .iter()
                                .map(|&i| pool.members[i].scopes.clone())
                                .collect(),
                        ),
                        est_tokens: tokens.total(),
                        est_output: tokens.output,
                        priority,
                        deadline: q.acquire_deadline(),
                        requester: route.requester.clone(),
                    },
                );
                let acquired = announcing_wait(pool, &agent, &order, events, acquire).await;
                match acquired {
                    Ok(p) => {
                        quota_wait += p.waited();
                        let i = order[p.candidate().min(order.len() - 1)];
                        (i, Some(p))
                    }
                    Err(error) => {
                        if let Some(lower) = reserve::fitting_cap(own_cap, &request, &error) {
                            ceiling = Some(lower);
                            continue;
                        }
                        return Err(CallError::Quota {
                            error,
                            calls,
                            quota_wait,
                        });
                    }
                }
            }
            None => (
                rest_then_pick(pool, &order, &mut resting, &agent).await,
                None,
            ),
        };
        let (request, permit) = match permit {
            Some(mut p) => {
                match reserve::refresh(route, &mut p, request, &build, regrowths, ceiling).await {
                    Some(request) => (request, Some(p)),
                    None => {
                        p.release_unsent();
                        regrowths += 1;
                        continue;
                    }
                }
            }
            None => (request, None),
        };
        let member = &pool.members[chosen];
        match last {
            None => pool.emit(RunEvent::ModelSelected {
                agent: agent.clone(),
                pool: pool.name.clone(),
                provider: member.entry.provider.clone(),
                model: member.entry.model.clone(),
            }),
            Some((prev, why)) if prev != chosen => pool.emit(RunEvent::ModelRotated {
                agent: agent.clone(),
                pool: pool.name.clone(),
                from: pool.members[prev].label(),
                to: member.label(),
                reason: why.to_owned(),
            }),
            Some(_) => {}
        }
        // The request names the chosen model, never the agent's configured one.
        let mut request = request;
        request.model.clone_from(&member.entry.model);
        if let Some(cap) = request.max_tokens {
            request.max_tokens = Some(cap.min(member.entry.max_output_tokens));
        }
        calls += 1;
        let request = Arc::new(request);
        let result = super::traced::chat(
            &member.provider,
            request.clone(),
            member.key.as_ref(),
            sink,
            calls,
            route.retry.call_timeout,
            route.usage.as_ref(),
        )
        .await;
        let signal = match &result {
            Ok(r) => r.observed.clone(),
            Err(e) => e.signal.clone(),
        };
        let quota_event = signal.as_ref().is_some_and(|s| s.is_quota_event());
        if let (Some(q), Some(signal), Some(scope)) = (&route.quota, signal, member.scopes.first())
        {
            q.handle.feedback(scope.clone(), signal);
        }
        settle(member, permit, &result);
        super::budget::settle_at(route, member.provider.name(), hold, &request, &result);
        let error = match result {
            Ok(response) => {
                return Ok(CallReport {
                    usage: response.usage.unwrap_or_default(),
                    response,
                    calls,
                    quota_wait,
                    sent: Arc::unwrap_or_clone(request),
                });
            }
            Err(e) => e,
        };
        last = Some((chosen, reason(error.kind)));
        let give_up = |error: ProviderError| CallError::Provider {
            error,
            calls,
            quota_wait,
        };
        if calls >= hard_cap || !error.is_retryable() {
            return Err(give_up(error));
        }
        let limited = matches!(
            error.kind,
            ProviderErrorKind::RateLimited | ProviderErrorKind::Overloaded
        );
        if limited {
            let wait = error.retry_after().unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
            if route.quota.is_none() || !quota_event {
                // Nobody else holds this model back: rest it here for its Retry-After.
                resting.insert(
                    chosen,
                    crate::quota::time::tokio_instant_after(Instant::now(), wait),
                );
            }
            let others = order.len() > 1;
            if others && moves < pool.max_models {
                // Straight back to the supervisor (or the next model): no sleep.
                moves += 1;
                observer.retrying(calls, &error.to_string(), Duration::ZERO);
                continue;
            }
            failures += 1;
            if failures >= max_attempts {
                return Err(give_up(error));
            }
            observer.retrying(calls, &error.to_string(), Duration::ZERO);
            continue;
        }
        failures += 1;
        if failures >= max_attempts {
            return Err(give_up(error));
        }
        let delay = route.retry.delay(failures, &error, &mut rng);
        observer.retrying(calls, &error.to_string(), delay);
        tokio::time::sleep(delay).await;
    }
}

/// Awaits `acquire`; when the supervisor answers that the request joined its queue (its
/// `waiting` event for `agent` on a scope of the members in `order`: no capable model is
/// admissible now), emits `no_model_available` at once, with the time the supervisor gave then.
async fn announcing_wait<T>(
    pool: &ModelPool,
    agent: &str,
    order: &[usize],
    events: Option<broadcast::Receiver<QuotaEvent>>,
    acquire: impl Future<Output = T>,
) -> T {
    let Some(mut events) = events else {
        return acquire.await;
    };
    tokio::pin!(acquire);
    loop {
        tokio::select! {
            biased;
            out = &mut acquire => return out,
            event = events.recv() => match event {
                Ok(QuotaEvent::Waiting { requester, scope, eta_ms, .. })
                    if requester == agent
                        && order
                            .iter()
                            .flat_map(|&i| &pool.members[i].scopes)
                            .any(|s| s.as_str() == scope) =>
                {
                    pool.emit(RunEvent::NoModelAvailable {
                        agent: agent.to_owned(),
                        pool: pool.name.clone(),
                        eta_ms,
                    });
                    // Announced once per wait: the rest is the grant.
                    return acquire.await;
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return acquire.await,
            },
        }
    }
}

/// Without a supervisor: the first member in `order` that is not resting, sleeping until the
/// earliest one wakes when all are.
async fn rest_then_pick(
    pool: &ModelPool,
    order: &[usize],
    resting: &mut HashMap<usize, Instant>,
    agent: &str,
) -> usize {
    loop {
        let now = Instant::now();
        resting.retain(|_, until| *until > now);
        if let Some(&i) = order.iter().find(|i| !resting.contains_key(i)) {
            return i;
        }
        let Some(until) = order.iter().filter_map(|i| resting.get(i)).min().copied() else {
            return order[0];
        };
        pool.emit(RunEvent::NoModelAvailable {
            agent: agent.to_owned(),
            pool: pool.name.clone(),
            eta_ms: Some(
                u64::try_from(until.saturating_duration_since(now).as_millis()).unwrap_or(u64::MAX),
            ),
        });
        tokio::time::sleep_until(until).await;
    }
}

#[cfg(test)]
#[path = "pooled_tests.rs"]
mod tests;
