//! Bridges from the supervisor and the runtime into metrics and logs: snapshots set the quota
//! gauges, [`QuotaEvent`]s drive the counters, the wait histogram and info logs, and
//! [`RunEvent`]s drive the run metrics.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use super::quota::{self as q, CooldownReason, DenyReason, ScopeMetrics};
use super::run::{self as r, RunStatusLabel, TurnOutcome};
use super::server::MetricsServerOptions;
use super::status::{StatusReport, is_closed, period_of};
use crate::quota::Dimension;
use crate::runtime::{AgentState, RunEvent};
use crate::supervisor::{QuotaEvent, QuotaHandle, QuotaSnapshot};

fn dimension(s: &str) -> Option<Dimension> {
    match s {
        "requests" => Some(Dimension::Requests),
        "tokens" => Some(Dimension::Tokens),
        "input_tokens" => Some(Dimension::InputTokens),
        "output_tokens" => Some(Dimension::OutputTokens),
        _ => None,
    }
}

/// Sets every quota gauge from `snapshot`: window used/limit/utilization and whether the limit
/// was learned (per scope, dimension and period), queue depth, in-flight permits, cooldown
/// remaining and closed scopes. Call it periodically and before each scrape.
pub fn apply_quota_snapshot(snapshot: &QuotaSnapshot) {
    for s in &snapshot.scopes {
        let scope = s.scope.as_str();
        for l in &s.limits {
            let Some(dim) = dimension(l.dimension) else {
                continue;
            };
            let period = period_of(l);
            q::window_usage(scope, dim, period, l.used, l.limit);
            q::limit_source(scope, dim, period, l.learned);
        }
        q::queue_depth(scope, s.queue_depth);
        q::in_flight(scope, s.in_flight);
        let remaining = s.cooldown_remaining_ms.map_or(0.0, |ms| ms as f64 / 1000.0);
        q::cooldown_remaining(scope, remaining);
        q::scope_closed(scope, is_closed(s));
    }
}

/// Records one supervisor event: grants (with their wait), denials by reason, cooldowns by
/// reason (and their length as the remaining time), learned limits, and the queue depth a
/// waiting request reports.
pub fn record_quota_event(event: &QuotaEvent) {
    match event {
        QuotaEvent::Waiting {
            scope, queue_depth, ..
        } => q::queue_depth(scope, *queue_depth),
        QuotaEvent::Granted {
            scopes, waited_ms, ..
        } => {
            for scope in scopes {
                q::permit_granted(scope, Duration::from_millis(*waited_ms));
            }
        }
        QuotaEvent::Denied { scope, reason, .. } => {
            q::permit_denied(scope, DenyReason::classify(reason));
        }
        QuotaEvent::Settled { .. } => {}
        QuotaEvent::CooldownStarted {
            scope,
            reason,
            duration_ms,
        } => {
            q::cooldown_started(scope, CooldownReason::classify(reason));
            if *duration_ms == u64::MAX {
                q::scope_closed(scope, true);
            } else {
                q::cooldown_remaining(scope, *duration_ms as f64 / 1000.0);
            }
        }
        QuotaEvent::LimitLearned { scope, .. } => q::limit_learned(scope),
    }
}

/// Logs one supervisor event with the numbers a user needs: waits, cooldowns and learned
/// limits at info, denials at warn, grants and settlements at debug.
pub fn log_quota_event(event: &QuotaEvent) {
    match event {
        QuotaEvent::Waiting {
            requester,
            scope,
            limit,
            eta_ms,
            queue_depth,
        } => tracing::info!(
            target: "massgen::quota",
            %requester, %scope, limit = limit.as_deref().unwrap_or("-"),
            eta_ms = eta_ms.unwrap_or(0), queue_depth,
            "waiting for quota"
        ),
        QuotaEvent::Granted {
            requester,
            scopes,
            waited_ms,
        } => tracing::debug!(
            target: "massgen::quota",
            %requester, scopes = %scopes.join(","), waited_ms,
            "permit granted"
        ),
        QuotaEvent::Denied {
            requester,
            scope,
            reason,
        } => tracing::warn!(
            target: "massgen::quota",
            %requester, %scope, reason = DenyReason::classify(reason).as_str(),
            "permit denied: {reason}"
        ),
        QuotaEvent::Settled {
            scopes,
            estimate,
            actual,
        } => tracing::debug!(
            target: "massgen::quota",
            scopes = %scopes.join(","), estimate, actual,
            "permit settled"
        ),
        QuotaEvent::CooldownStarted {
            scope,
            reason,
            duration_ms,
        } => {
            if *duration_ms == u64::MAX {
                tracing::warn!(target: "massgen::quota", %scope, "scope closed: {reason}");
            } else {
                tracing::info!(
                    target: "massgen::quota",
                    %scope, kind = CooldownReason::classify(reason).as_str(), duration_ms,
                    "cooldown started: {reason}"
                );
            }
        }
        QuotaEvent::LimitLearned { scope, limit } => tracing::info!(
            target: "massgen::quota",
            %scope, %limit,
            "learned a lower limit from the provider"
        ),
    }
}

/// Turns supervisor events into metrics at permit rate: like [`record_quota_event`], with each
/// scope's hot-path handles registered once ([`ScopeMetrics`]) instead of on every event.
/// Create it where the recorder is in force (the global one, normally).
#[derive(Debug, Default)]
pub struct QuotaMetricsBridge {
    scopes: HashMap<String, ScopeMetrics>,
}

impl QuotaMetricsBridge {
    /// An empty bridge; scopes are registered as they appear.
    pub fn new() -> Self {
        Self::default()
    }

    fn with_scope(&mut self, scope: &str, f: impl FnOnce(&ScopeMetrics)) {
        match self.scopes.get(scope) {
            Some(m) => f(m),
            None => {
                let m = ScopeMetrics::new(scope);
                f(&m);
                self.scopes.insert(scope.to_owned(), m);
            }
        }
    }

    /// Records one event (grants and queue depths through cached handles; the rare events
    /// through [`record_quota_event`]).
    pub fn record(&mut self, event: &QuotaEvent) {
        match event {
            QuotaEvent::Waiting {
                scope, queue_depth, ..
            } => self.with_scope(scope, |m| m.queue_depth(*queue_depth)),
            QuotaEvent::Granted {
                scopes, waited_ms, ..
            } => {
                let waited = Duration::from_millis(*waited_ms);
                for scope in scopes {
                    self.with_scope(scope, |m| m.permit_granted(waited));
                }
            }
            QuotaEvent::Settled { .. } => {}
            other => record_quota_event(other),
        }
    }

    /// Same as [`apply_quota_snapshot`].
    pub fn apply_snapshot(&mut self, snapshot: &QuotaSnapshot) {
        apply_quota_snapshot(snapshot);
    }
}

/// Records and logs every event of `handle`'s stream on a task of the current tokio runtime,
/// until the supervisor stops. The task drains whatever is queued at each wake-up. Events missed
/// because the task fell behind are skipped (the next snapshot corrects the gauges).
pub fn spawn_quota_bridge(handle: &QuotaHandle) -> JoinHandle<()> {
    let mut events = handle.subscribe();
    tokio::spawn(async move {
        let mut bridge = QuotaMetricsBridge::new();
        let mut handle_one = |event: QuotaEvent| {
            bridge.record(&event);
            log_quota_event(&event);
        };
        loop {
            match events.recv().await {
                Ok(event) => handle_one(event),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(target: "massgen::quota", skipped = n, "metrics bridge lagged");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
            while let Ok(event) = events.try_recv() {
                handle_one(event);
            }
        }
    })
}

impl MetricsServerOptions {
    /// Serves `handle`'s live state: `/status` answers its [`StatusReport`] (with what its
    /// quota state store holds), and each `/metrics`
    /// scrape first copies a fresh snapshot into the gauges ([`apply_quota_snapshot`]).
    pub fn with_quota(self, handle: QuotaHandle) -> Self {
        let for_status = handle.clone();
        self.with_status(move || {
            let handle = for_status.clone();
            async move {
                match handle.snapshot().await {
                    Ok(snapshot) => StatusReport::from_snapshot(&snapshot)
                        .with_store(handle.store_status().await)
                        .to_json(),
                    Err(e) => serde_json::json!({"scopes": [], "error": e.to_string()}),
                }
            }
        })
        .with_before_scrape(move || {
            let handle = handle.clone();
            async move {
                if let Ok(snapshot) = handle.snapshot().await {
                    apply_quota_snapshot(&snapshot);
                }
            }
        })
    }
}

/// Records one run event: turns by outcome (answers, votes, retries, failures, the final
/// presentation), votes, coordination rounds (run start and each restart) and the run's
/// duration by status. Quota events inside the run stream are left to the supervisor's own
/// stream ([`spawn_quota_bridge`]), and the pool moves (`model_selected`, `model_rotated`,
/// `no_model_available`) to routing, which counts them where it emits them
/// ([`super::pool::record_pool_event`]), so nothing is counted twice.
pub fn record_run_event(event: &RunEvent) {
    match event {
        RunEvent::RunStarted { .. } | RunEvent::Restart { .. } => r::coordination_round(),
        RunEvent::NewAnswer { .. } => r::agent_turn(TurnOutcome::Answer),
        RunEvent::Vote { .. } => {
            r::agent_turn(TurnOutcome::Vote);
            r::vote();
        }
        RunEvent::TurnRetry { .. } => r::agent_turn(TurnOutcome::Retry),
        RunEvent::AgentState {
            state: AgentState::Failed { .. },
            ..
        } => r::agent_turn(TurnOutcome::Failed),
        RunEvent::FinalAnswer {
            presented: true, ..
        } => r::agent_turn(TurnOutcome::Presented),
        RunEvent::RunFinished {
            status,
            duration_ms,
            ..
        } => {
            let label = match status.as_str() {
                "completed" => RunStatusLabel::Completed,
                "timed_out" => RunStatusLabel::TimedOut,
                _ => RunStatusLabel::Failed,
            };
            r::run_duration(Duration::from_millis(*duration_ms), label);
        }
        _ => {}
    }
}

/// Records every event of a runtime's stream (`Runtime::subscribe()`) on a task of the current
/// tokio runtime, until the stream closes.
pub fn spawn_run_bridge(mut events: broadcast::Receiver<RunEvent>) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => record_run_event(&event),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
}
