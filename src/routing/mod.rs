//! One LLM call from an agent's point of view: acquire a permit from the quota supervisor (when
//! rate limiting is on), call the provider, settle the permit with the reported usage, feed
//! rate-limit signals back, and retry retryable failures with bounded, jittered backoff that
//! honours the provider's Retry-After.
//!
//! This first version serves one provider endpoint with at most one key per agent; key choice
//! and failover across keys and models extend [`Route`] later.

pub mod budget;
pub mod estimate;
pub mod keyed;
mod outcome;
pub mod pooled;
pub mod reserve;
#[cfg(test)]
mod restart_tests;
mod retry;
mod traced;

pub use outcome::{CallError, CallReport};
pub use retry::RetryPolicy;

use std::sync::Arc;
use std::time::Duration;

use crate::keys::ApiKey;
use crate::provider::{ChatRequest, ProviderRef, StreamSink};
use crate::quota::ScopeId;
use crate::supervisor::{AcquireError, AcquireRequest, Permit, QuotaHandle};

/// How an agent's calls are admitted by the quota supervisor.
#[derive(Debug, Clone)]
pub struct QuotaRoute {
    /// The supervisor.
    pub handle: QuotaHandle,
    /// Alternatives of scope sets (one per key; v1 has one). The first scope of each set is
    /// the one provider feedback is applied to.
    pub candidates: Vec<Vec<ScopeId>>,
    /// How long one acquire may wait at most (`acquire_timeout_seconds`; `None`: no limit of
    /// its own).
    pub deadline: Option<Duration>,
    /// When the run ends: an acquire never waits past it, and with no `deadline` of its own
    /// waits until then (`None` and no `deadline`: the supervisor's default).
    pub run_deadline: Option<tokio::time::Instant>,
    /// The output cap (`max_tokens`) sent and reserved with a request that names none
    /// (`None`: [`estimate::DEFAULT_MAX_TOKENS`]); see [`reserve::capped`].
    pub output_cap: Option<u32>,
    /// Scopes every candidate also reserves in (a gateway client's own quota scopes; empty for
    /// team runs). They go after a candidate's own scopes, so provider feedback still goes to
    /// the candidate's first scope.
    pub extra_scopes: Vec<ScopeId>,
}

impl QuotaRoute {
    /// `candidates`, each with [`QuotaRoute::extra_scopes`] added: what an acquire asks for.
    pub fn with_extra(&self, mut candidates: Vec<Vec<ScopeId>>) -> Vec<Vec<ScopeId>> {
        if !self.extra_scopes.is_empty() {
            for c in &mut candidates {
                c.extend(self.extra_scopes.iter().cloned());
            }
        }
        candidates
    }

    /// How long an acquire made now may wait: the shorter of the configured deadline and the
    /// time the run has left.
    pub fn acquire_deadline(&self) -> Option<Duration> {
        let left = self
            .run_deadline
            .map(|end| end.saturating_duration_since(tokio::time::Instant::now()));
        match (self.deadline, left) {
            (Some(own), Some(left)) => Some(own.min(left)),
            (own, left) => own.or(left),
        }
    }
}

/// Everything needed to make calls for one agent.
#[derive(Debug, Clone)]
pub struct Route {
    /// The endpoint's actor (shared by every route to that endpoint).
    pub provider: ProviderRef,
    /// The key to send, for backends that need one.
    pub key: Option<ApiKey>,
    /// Retry behaviour.
    pub retry: RetryPolicy,
    /// Who is calling (the agent id), for quota queues and logs.
    pub requester: Arc<str>,
    /// Quota admission; `None` when rate limiting is off for this agent.
    pub quota: Option<QuotaRoute>,
    /// Several keys with their health and scopes: when set, each attempt picks a live key with
    /// capacity ([`keyed::call`]) and `key` is not used.
    pub pool: Option<Arc<crate::keys::KeyPool>>,
    /// A pool of models: when set, each call chooses among them ([`pooled::call`]) and
    /// `provider`, `key` and `pool` are not used for it.
    pub models: Option<Arc<pooled::ModelPool>>,
    /// Where every provider call is recorded for the usage ledger (`None`: not recorded).
    pub usage: Option<crate::usage::UsageTap>,
    /// The run's spending limits, shared by every route of the run (`None`: no budget). A
    /// call that could pass them is not made ([`budget`]).
    pub budget: Option<Arc<crate::usage::budget::BudgetGuard>>,
}

/// Something that wants to know about retries (the agent turns them into events).
pub trait CallObserver: Send + Sync {
    /// Attempt `attempt` failed with `reason`; the next starts after `delay`.
    fn retrying(&self, attempt: u32, reason: &str, delay: Duration);
}

/// Passes retries on to the caller's observer and marks them in the stream
/// ([`StreamEvent::Retrying`](crate::provider::StreamEvent::Retrying)).
struct MarkRetries<'a> {
    inner: &'a dyn CallObserver,
    sink: Option<&'a StreamSink>,
}

impl CallObserver for MarkRetries<'_> {
    fn retrying(&self, attempt: u32, reason: &str, delay: Duration) {
        if let Some(sink) = self.sink {
            let _ = sink.try_send(crate::provider::StreamEvent::Retrying(reason.to_owned()));
        }
        self.inner.retrying(attempt, reason, delay);
    }
}

/// Waits for a permit when the route has quota admission.
async fn admit(
    route: &Route,
    request: &ChatRequest,
    priority: u8,
) -> Result<Option<Permit>, AcquireError> {
    let Some(q) = &route.quota else {
        return Ok(None);
    };
    let tokens = reserve::tokens(route, request);
    let permit = traced::acquire(
        &q.handle,
        AcquireRequest {
            candidates: q.with_extra(q.candidates.clone()),
            est_tokens: tokens.total(),
            est_output: tokens.output,
            priority,
            deadline: q.acquire_deadline(),
            requester: route.requester.clone(),
        },
    )
    .await?;
    Ok(Some(permit))
}

/// The scope provider feedback goes to: the first scope of the granted candidate.
fn feedback_scope(route: &Route, permit: &Permit) -> Option<(QuotaHandle, ScopeId)> {
    let q = route.quota.as_ref()?;
    let scope = permit.scopes().first()?.clone();
    Some((q.handle.clone(), scope))
}

/// Makes one call through `route` with retries. `priority` orders quota waiters.
///
/// `build` makes the request: once per attempt for the token estimate, and again once the quota
/// permit is granted, so the request carries what changed while it waited (the agent adds new
/// answers). A rebuilt request that grew is topped up before it is sent, or the call acquires
/// again ([`reserve::refresh`]); with quota on, a request without `max_tokens` is sent with the
/// route's output cap, the cap it reserved. Settlement follows the provider's counting
/// ([`reserve::settlement`]).
pub async fn call<F>(
    route: &Route,
    build: F,
    sink: Option<&StreamSink>,
    priority: u8,
    observer: &dyn CallObserver,
) -> Result<CallReport, CallError>
where
    F: Fn() -> ChatRequest,
{
    // Whoever reads the stream learns of a retry in order with the events it voids.
    let marking = MarkRetries {
        inner: observer,
        sink,
    };
    let observer: &dyn CallObserver = &marking;
    if let Some(models) = &route.models {
        return pooled::call(route, models, build, sink, priority, observer).await;
    }
    if let Some(pool) = &route.pool {
        return keyed::call(route, pool, build, sink, priority, observer).await;
    }
    let mut rng = fastrand::Rng::new();
    let mut calls = 0;
    let mut quota_wait = Duration::ZERO;
    let max_attempts = route.retry.max_attempts.max(1);
    let mut regrowths = 0;
    let mut ceiling = None;
    loop {
        let own = build();
        let own_cap = own.max_tokens;
        let granted = reserve::capped(route, own, ceiling);
        let mut hold = budget::reserve(route, &granted, calls, quota_wait)?;
        let (request, permit) = match admit(route, &granted, priority).await {
            Ok(Some(mut p)) => {
                // Even a permit granted at once crossed to the supervisor and back, time in
                // which answers may have arrived: rebuilding is cheap, a stale vote wastes quota.
                match reserve::refresh(route, &mut p, granted, &build, regrowths, ceiling).await {
                    Some(request) => {
                        let p =
                            budget::cover(route, &mut hold, &request, Some(p), calls, quota_wait)?;
                        (request, p)
                    }
                    None => {
                        // It grew past what fits now: never sent, never counted; wait again.
                        quota_wait += p.waited();
                        p.release_unsent();
                        regrowths += 1;
                        continue;
                    }
                }
            }
            Ok(None) => (granted, None),
            Err(error) => {
                if let Some(lower) = reserve::fitting_cap(own_cap, &granted, &error) {
                    ceiling = Some(lower);
                    continue;
                }
                return Err(CallError::Quota {
                    error,
                    calls,
                    quota_wait,
                });
            }
        };
        quota_wait += permit.as_ref().map_or(Duration::ZERO, Permit::waited);
        let target = permit.as_ref().and_then(|p| feedback_scope(route, p));
        calls += 1;
        let request = Arc::new(request);
        let result = traced::chat(
            &route.provider,
            request.clone(),
            route.key.as_ref(),
            sink,
            calls,
            route.retry.call_timeout,
            route.usage.as_ref(),
        )
        .await;
        let signal = match &result {
            Ok(response) => response.observed.clone(),
            Err(error) => error.signal.clone(),
        };
        let quota_event = signal.as_ref().is_some_and(|s| s.is_quota_event());
        if let (Some((handle, scope)), Some(signal)) = (&target, signal) {
            handle.feedback(scope.clone(), signal);
        }
        reserve::settle(route, permit, &result);
        budget::settle(route, hold, &request, &result);
        match result {
            Ok(response) => {
                return Ok(CallReport {
                    usage: response.usage.unwrap_or_default(),
                    response,
                    calls,
                    quota_wait,
                    sent: Arc::unwrap_or_clone(request),
                });
            }
            Err(error) if error.is_retryable() && calls < max_attempts => {
                // With quota on, the supervisor now holds the scope closed for the provider's
                // delay: the next acquire waits exactly that long, so no extra sleep here.
                let delay = if quota_event && target.is_some() {
                    Duration::ZERO
                } else {
                    route.retry.delay(calls, &error, &mut rng)
                };
                observer.retrying(calls, &error.to_string(), delay);
                tokio::time::sleep(delay).await;
            }
            Err(error) => {
                return Err(CallError::Provider {
                    error,
                    calls,
                    quota_wait,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::sync::Mutex;

    use super::*;
    use crate::config::SimulatedSettings;
    use crate::provider::{Message, ProviderErrorKind, SimulatedProvider};
    use crate::system::ActorSystem;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(u32, Duration)>>);
    impl CallObserver for Recorder {
        fn retrying(&self, attempt: u32, _reason: &str, delay: Duration) {
            self.0.lock().unwrap().push((attempt, delay));
        }
    }

    fn route(settings: SimulatedSettings) -> Route {
        Route {
            provider: ProviderRef::start(
                &ActorSystem::current().unwrap(),
                Arc::new(SimulatedProvider::new("a", settings, &["a".to_owned()])),
            ),
            key: None,
            retry: RetryPolicy {
                jitter: 0.0,
                ..RetryPolicy::default()
            },
            requester: Arc::from("a"),
            quota: None,
            pool: None,
            models: None,
            usage: None,
            budget: None,
        }
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            messages: vec![Message::user(
                "<ORIGINAL MESSAGE> q <END OF ORIGINAL MESSAGE>",
            )],
            tools: Vec::new(),
            temperature: None,
            max_tokens: None,
            stream: false,
            options: Default::default(),
        }
    }

    #[actix_rt::test(system = "crate::system::PausedSystem")]
    async fn retries_transient_failures_with_backoff_then_succeeds() {
        let mut settings = SimulatedSettings::default();
        settings.failure.on_calls = vec![1, 2];
        let rec = Recorder::default();
        let start = tokio::time::Instant::now();
        let report = call(&route(settings), request, None, 0, &rec)
            .await
            .unwrap();
        assert_eq!(report.calls, 3);
        assert_eq!(start.elapsed(), Duration::from_secs(2 + 6));
        let seen = rec.0.lock().unwrap().clone();
        assert_eq!(
            seen,
            vec![(1, Duration::from_secs(2)), (2, Duration::from_secs(6))]
        );
    }

    #[actix_rt::test(system = "crate::system::PausedSystem")]
    async fn an_acquire_waits_at_most_until_the_run_ends() {
        let handle =
            QuotaHandle::start_local(crate::supervisor::SupervisorSettings::default()).unwrap();
        let route = |deadline: Option<u64>, run_left: Option<u64>| QuotaRoute {
            handle: handle.clone(),
            candidates: Vec::new(),
            deadline: deadline.map(Duration::from_secs),
            run_deadline: run_left.map(|s| tokio::time::Instant::now() + Duration::from_secs(s)),
            output_cap: None,
            extra_scopes: Vec::new(),
        };
        let secs = |d: Option<Duration>| d.map(|d| d.as_secs());
        // No deadline of its own: as long as the run has left, counted from now.
        let q = route(None, Some(600));
        assert_eq!(secs(q.acquire_deadline()), Some(600));
        tokio::time::advance(Duration::from_secs(100)).await;
        assert_eq!(secs(q.acquire_deadline()), Some(500));
        // A configured deadline shorter than the run's rest wins, a longer one does not.
        assert_eq!(
            secs(route(Some(30), Some(600)).acquire_deadline()),
            Some(30)
        );
        assert_eq!(
            secs(route(Some(900), Some(600)).acquire_deadline()),
            Some(600)
        );
        assert_eq!(secs(route(Some(30), None).acquire_deadline()), Some(30));
        assert_eq!(route(None, None).acquire_deadline(), None);
        // A run already over leaves no time to wait.
        let over = route(None, Some(1));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(over.acquire_deadline(), Some(Duration::ZERO));
    }

    #[actix_rt::test(system = "crate::system::PausedSystem")]
    async fn an_attempt_past_the_call_timeout_is_cancelled_and_retried() {
        // A provider that takes 10 s, a 1 s limit per attempt, two attempts: both are cut at
        // 1 s, with the 2 s backoff between them.
        let settings = SimulatedSettings {
            latency: Duration::from_secs(10),
            ..SimulatedSettings::default()
        };
        let mut r = route(settings);
        r.retry.max_attempts = 2;
        r.retry.call_timeout = Duration::from_secs(1);
        let rec = Recorder::default();
        let start = tokio::time::Instant::now();
        let err = call(&r, request, None, 0, &rec).await.unwrap_err();
        let CallError::Provider { error, calls, .. } = err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(calls, 2);
        assert_eq!(error.kind, ProviderErrorKind::Transient);
        assert!(error.message.contains("call_timeout_seconds"), "{error}");
        assert_eq!(start.elapsed(), Duration::from_secs(1 + 2 + 1));
    }

    #[actix_rt::test(system = "crate::system::PausedSystem")]
    async fn honours_retry_after_and_gives_up_after_max_attempts() {
        let mut settings = SimulatedSettings::default();
        settings.failure.always = true;
        settings.failure.kind = "rate_limit".into();
        settings.failure.retry_after = Some(Duration::from_secs(30));
        let rec = Recorder::default();
        let start = tokio::time::Instant::now();
        let err = call(&route(settings), request, None, 0, &rec)
            .await
            .unwrap_err();
        let CallError::Provider { error, calls, .. } = err else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(error.kind, ProviderErrorKind::RateLimited);
        assert_eq!(calls, 4);
        // Waits: max(2, 30), max(6, 30), max(18, 30).
        assert_eq!(start.elapsed(), Duration::from_secs(90));
    }

    #[actix_rt::test(system = "crate::system::PausedSystem")]
    async fn a_higher_priority_waiter_is_served_first() {
        use crate::quota::{Limit, ScopeSpec};
        use crate::supervisor::SupervisorSettings;
        use std::num::NonZeroU64;

        let handle = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
        let scope = ScopeId::new("simulated/sim-1");
        let spec = ScopeSpec {
            limits: vec![Limit::rpm(NonZeroU64::new(1).unwrap())],
            ..ScopeSpec::default()
        };
        handle.register_scope(scope.clone(), spec).await.unwrap();
        let quota = QuotaRoute {
            handle: handle.clone(),
            candidates: vec![vec![scope]],
            deadline: Some(Duration::from_secs(600)),
            run_deadline: None,
            output_cap: None,
            extra_scopes: Vec::new(),
        };
        let make = |who: &str| {
            let mut r = route(SimulatedSettings::default());
            r.requester = Arc::from(who);
            r.quota = Some(quota.clone());
            r
        };
        let (first, low, high) = (make("first"), make("low"), make("high"));
        let rec = Recorder::default();
        let start = tokio::time::Instant::now();
        call(&first, request, None, 0, &rec).await.unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let run = |r: Route, priority: u8, delay: u64| {
            let order = order.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(delay)).await;
                let rep = call(&r, request, None, priority, &Recorder::default())
                    .await
                    .unwrap();
                order.lock().unwrap().push((
                    r.requester.to_string(),
                    start.elapsed(),
                    rep.quota_wait,
                ));
            }
        };
        // The low-priority call queues 1 s before the high-priority one.
        tokio::join!(run(low, 0, 1), run(high, 9, 2));
        let order = order.lock().unwrap().clone();
        assert_eq!(order[0].0, "high", "{order:?}");
        assert_eq!(order[0].1, Duration::from_secs(60));
        assert_eq!(order[0].2, Duration::from_secs(58));
        assert_eq!(order[1].0, "low");
        assert_eq!(order[1].1, Duration::from_secs(120));
    }
}
