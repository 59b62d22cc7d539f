//! The `routing` array of `/status`: a bounded ring of the latest routing and quota moves of a
//! runtime's calls (`model_selected`, `model_rotated`, `no_model_available`, quota waits,
//! cooldowns, refusals, learned limits), newest last, for the dashboard's log.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::RunEvent;
use crate::supervisor::QuotaEvent;

/// How many entries the ring keeps.
pub const ROUTING_KEPT: usize = 200;

/// One routing or quota move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingEntry {
    /// When it was seen (ms since the epoch).
    pub at_ms: i64,
    /// `model_selected`, `model_rotated`, `no_model_available`, `quota_wait`, `cooldown`,
    /// `denied` or `limit_learned`.
    pub event: String,
    /// The agent or requester, when one is concerned.
    pub agent: Option<String>,
    /// The pool, model or quota scope concerned.
    pub target: String,
    /// What happened, in a few words.
    pub detail: String,
}

/// The ring (cheap to clone; clones share it).
#[derive(Debug, Clone, Default)]
pub struct RoutingLog {
    ring: Arc<Mutex<VecDeque<RoutingEntry>>>,
}

impl RoutingLog {
    /// An empty ring.
    pub fn new() -> Self {
        Self::default()
    }

    /// A ring fed by `events` from now on, in a task of the current tokio runtime (ends when the
    /// channel closes).
    pub fn watch(events: broadcast::Receiver<RunEvent>) -> Self {
        let log = Self::new();
        let feed = log.clone();
        let mut events = events;
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(e) => feed.record(&e, chrono::Utc::now().timestamp_millis()),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        log
    }

    /// Folds `event` in at `at_ms` (events that are not routing or quota moves are ignored).
    pub fn record(&self, event: &RunEvent, at_ms: i64) {
        let Some(entry) = entry_of(event, at_ms) else {
            return;
        };
        if let Ok(mut ring) = self.ring.lock() {
            if ring.len() >= ROUTING_KEPT {
                ring.pop_front();
            }
            ring.push_back(entry);
        }
    }

    /// The kept entries, oldest first.
    pub fn recent(&self) -> Vec<RoutingEntry> {
        self.ring
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn entry(
    at_ms: i64,
    event: &str,
    agent: Option<&str>,
    target: String,
    detail: String,
) -> RoutingEntry {
    RoutingEntry {
        at_ms,
        event: event.to_owned(),
        agent: agent.map(str::to_owned),
        target,
        detail,
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn entry_of(event: &RunEvent, at: i64) -> Option<RoutingEntry> {
    Some(match event {
        RunEvent::ModelSelected {
            agent,
            pool,
            provider,
            model,
        } => entry(
            at,
            "model_selected",
            Some(agent),
            pool.clone(),
            format!("{provider}/{model}"),
        ),
        RunEvent::ModelRotated {
            agent,
            pool,
            from,
            to,
            reason,
        } => entry(
            at,
            "model_rotated",
            Some(agent),
            pool.clone(),
            format!("{from} -> {to} ({reason})"),
        ),
        RunEvent::NoModelAvailable {
            agent,
            pool,
            eta_ms,
        } => entry(
            at,
            "no_model_available",
            Some(agent),
            pool.clone(),
            eta_ms.map_or("no capable model".to_owned(), |ms| {
                format!("waiting {} for a model", secs(ms))
            }),
        ),
        RunEvent::Quota { quota } => match quota {
            QuotaEvent::Waiting {
                requester,
                scope,
                limit,
                eta_ms,
                queue_depth,
            } => entry(
                at,
                "quota_wait",
                Some(requester),
                scope.clone(),
                format!(
                    "held by {}{}, {queue_depth} queued",
                    limit.as_deref().unwrap_or("the queue"),
                    eta_ms.map_or(String::new(), |ms| format!(", ETA {}", secs(ms)))
                ),
            ),
            QuotaEvent::CooldownStarted {
                scope,
                reason,
                duration_ms,
            } => entry(
                at,
                "cooldown",
                None,
                scope.clone(),
                format!("{reason} for {}", secs(*duration_ms)),
            ),
            QuotaEvent::Denied {
                requester,
                scope,
                reason,
            } => entry(at, "denied", Some(requester), scope.clone(), reason.clone()),
            QuotaEvent::LimitLearned { scope, limit } => {
                entry(at, "limit_learned", None, scope.clone(), limit.clone())
            }
            QuotaEvent::Granted { .. } | QuotaEvent::Settled { .. } => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keeps_routing_and_quota_moves_bounded_and_in_order() {
        let log = RoutingLog::new();
        log.record(
            &RunEvent::Quota {
                quota: QuotaEvent::Granted {
                    requester: "a".into(),
                    scopes: vec![],
                    waited_ms: 0,
                },
            },
            1,
        );
        assert!(log.recent().is_empty(), "a grant is not a routing move");
        for i in 0..(ROUTING_KEPT as i64 + 5) {
            log.record(
                &RunEvent::ModelRotated {
                    agent: "a".into(),
                    pool: "fast".into(),
                    from: "x/1".into(),
                    to: "y/2".into(),
                    reason: "rate_limited".into(),
                },
                i,
            );
        }
        log.record(
            &RunEvent::Quota {
                quota: QuotaEvent::Waiting {
                    requester: "b".into(),
                    scope: "openai/gpt".into(),
                    limit: Some("rpm".into()),
                    eta_ms: Some(1500),
                    queue_depth: 2,
                },
            },
            9_999,
        );
        let recent = log.recent();
        assert_eq!(recent.len(), ROUTING_KEPT);
        assert_eq!(recent[0].at_ms, 6, "the oldest fell off");
        let last = recent.last().unwrap();
        assert_eq!(last.event, "quota_wait");
        assert_eq!(last.detail, "held by rpm, ETA 1.5s, 2 queued");
        assert_eq!(recent[1].detail, "x/1 -> y/2 (rate_limited)");
    }
}
