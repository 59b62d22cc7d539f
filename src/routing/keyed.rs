//! One call over a [`KeyPool`]: the supervisor (when rate limiting is on) picks a key with
//! capacity among the live keys; rate-limit signals go back to the scope of the key that got
//! them, and the next attempt goes at once to another key with capacity (the supervisor keeps
//! the limited scope closed until its Retry-After, so the wait is honoured even when other keys
//! exist); 401/403 retires the key and moves on; transient failures (5xx, resets, timeouts,
//! overloads, malformed answers) back off exponentially with jitter, bounded. Every attempt —
//! retries included — goes through the supervisor.
//!
//! Keys are the runtime's shared handles: a key retired or resting (its circuit open after
//! repeated failures) because of any agent's call is skipped by every other; a key whose
//! circuit is half-open gets one trial call at a time.
//!
//! Without a supervisor, keys that were told to wait are skipped until their Retry-After passes
//! (all keys at once when the provider counts per account).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{CallError, CallObserver, CallReport, Route, reserve};
use crate::keys::{Admission, Candidate, KeyPool};
use crate::provider::{ChatRequest, ProviderError, ProviderErrorKind, StreamSink};
use crate::supervisor::AcquireRequest;

/// Waits used when a provider rate-limits without saying for how long and no supervisor
/// tracks the scope.
const DEFAULT_RATE_LIMIT_WAIT: Duration = Duration::from_secs(1);

/// Makes one call through `route` using the keys of `pool` (see the module docs).
pub async fn call<F>(
    route: &Route,
    pool: &Arc<KeyPool>,
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
    let mut quota_wait = Duration::ZERO;
    let mut regrowths = 0;
    let mut ceiling = None;
    // Grants given back because the chosen key was retired or busy with its trial meanwhile.
    let mut skips: u32 = 0;
    let max_attempts = route.retry.max_attempts.max(1);
    let hard_cap = max_attempts
        .saturating_mul(u32::try_from(pool.keys().len()).unwrap_or(u32::MAX).max(1) + 1);
    // Without a supervisor: scope name -> when it may be used again.
    let mut resting: HashMap<String, Instant> = HashMap::new();
    loop {
        let candidates = pool.candidates();
        if candidates.is_empty() {
            let error = ProviderError::new(
                ProviderErrorKind::Auth,
                format!("no usable key left: {}", pool.retired_reasons()),
            );
            return Err(CallError::Provider {
                error,
                calls,
                quota_wait,
            });
        }
        let own = build();
        let own_cap = own.max_tokens;
        let request = reserve::capped(route, own, ceiling);
        let mut hold = super::budget::reserve(route, &request, calls, quota_wait)?;
        let (chosen, permit) = match &route.quota {
            Some(q) => {
                let tokens = reserve::tokens(route, &request);
                let acquired = super::traced::acquire(
                    &q.handle,
                    AcquireRequest {
                        candidates: q
                            .with_extra(candidates.iter().map(|c| c.scopes.clone()).collect()),
                        est_tokens: tokens.total(),
                        est_output: tokens.output,
                        priority,
                        deadline: q.acquire_deadline(),
                        requester: route.requester.clone(),
                    },
                )
                .await;
                match acquired {
                    Ok(p) => {
                        quota_wait += p.waited();
                        let i = p.candidate().min(candidates.len() - 1);
                        (candidates[i].clone(), Some(p))
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
            None => (rest_then_pick(&candidates, &mut resting).await, None),
        };
        // The request is built again after a (possibly long) wait so it carries the latest
        // state; if it grew past its reservation and the difference does not fit now, the
        // permit goes back uncounted and the call acquires again.
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
        let permit = super::budget::cover(route, &mut hold, &request, permit, calls, quota_wait)?;
        // Another call (this agent's or any other's: keys are shared) may have retired the key
        // or opened its circuit while this one waited: nothing is ever sent with a retired key,
        // and a half-open key takes one trial call at a time while another key is usable.
        let mut trial = None;
        if let Some(k) = &chosen.key {
            let skip = if !k.is_live() {
                true
            } else if !k.is_available() && skips < hard_cap && pool.other_available(k.key()) {
                // Its circuit opened while this call waited, and another key can serve it.
                true
            } else {
                match k.admit().await {
                    Admission::Go(t) => {
                        trial = t;
                        false
                    }
                    Admission::Busy => skips < hard_cap && pool.other_available(k.key()),
                }
            };
            if skip {
                skips += 1;
                if let Some(p) = permit {
                    p.release_unsent();
                }
                continue;
            }
        }
        let key = chosen.key.as_ref().map(|k| k.key());
        calls += 1;
        let request = Arc::new(request);
        let result = super::traced::chat(
            &route.provider,
            request.clone(),
            key,
            sink,
            calls,
            route.retry.call_timeout,
            route.usage.as_ref(),
        )
        .await;
        // The rate-limit signal goes first: it frees nothing, and must reach the supervisor
        // even if this caller is stopped while the key's actor hears the outcome.
        let feedback_scope = pool.limit_scope(key);
        let signal = match &result {
            Ok(r) => r.observed.clone(),
            Err(e) => e.signal.clone(),
        };
        let quota_event = signal.as_ref().is_some_and(|s| s.is_quota_event());
        if let (Some(q), Some(signal)) = (&route.quota, signal) {
            q.handle.feedback(feedback_scope.clone(), signal);
        }
        // The key's actor hears the outcome before the permit is settled: a call granted this
        // capacity next already sees the key retired or resting.
        let retired = match (&chosen.key, &result) {
            (Some(k), Ok(response)) => {
                k.record_success(response.usage).await;
                false
            }
            (Some(k), Err(error)) => k.record_error(error).await,
            (None, _) => false,
        };
        drop(trial);
        reserve::settle(route, permit, &result);
        super::budget::settle(route, hold, &request, &result);
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
        let others_live = pool
            .candidates()
            .iter()
            .any(|c| c.key.as_ref().map(|k| k.key().short_id()) != key.map(|k| k.short_id()));
        let give_up = |error: ProviderError| CallError::Provider {
            error,
            calls,
            quota_wait,
        };
        if calls >= hard_cap {
            return Err(give_up(error));
        }
        if retired {
            if pool.candidates().is_empty() {
                // Say which keys were refused (masked) and where they came from.
                let mut error = error;
                error.message = format!("no usable key left: {}", pool.retired_reasons());
                return Err(give_up(error));
            }
            observer.retrying(calls, &error.to_string(), Duration::ZERO);
            continue;
        }
        if !error.is_retryable() {
            return Err(give_up(error));
        }
        if error.kind == ProviderErrorKind::RateLimited {
            if route.quota.is_some() && quota_event {
                // The supervisor now holds the key's scope closed until its retry time and
                // grants the next attempt on another key with capacity, or waits.
                observer.retrying(calls, &error.to_string(), Duration::ZERO);
                if !others_live {
                    failures += 1;
                }
                if failures >= max_attempts {
                    return Err(give_up(error));
                }
                continue;
            }
            if route.quota.is_none() {
                let wait = error.retry_after().unwrap_or(DEFAULT_RATE_LIMIT_WAIT);
                resting.insert(
                    feedback_scope.to_string(),
                    crate::quota::time::tokio_instant_after(Instant::now(), wait),
                );
                failures += 1;
                if failures >= max_attempts {
                    return Err(give_up(error));
                }
                observer.retrying(calls, &error.to_string(), Duration::ZERO);
                continue;
            }
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

/// Without a supervisor: the first candidate whose scope is not resting, sleeping until the
/// earliest one wakes when all are.
async fn rest_then_pick(
    candidates: &[Candidate],
    resting: &mut HashMap<String, Instant>,
) -> Candidate {
    loop {
        let now = Instant::now();
        resting.retain(|_, until| *until > now);
        if let Some(c) = candidates.iter().find(|c| {
            c.scopes
                .first()
                .is_none_or(|s| !resting.contains_key(s.as_str()))
        }) {
            return c.clone();
        }
        match resting.values().min().copied() {
            Some(until) => tokio::time::sleep_until(until).await,
            None => return candidates[0].clone(),
        }
    }
}
