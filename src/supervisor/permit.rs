//! [`AcquireRequest`] and [`Permit`]: what a caller asks for and what it holds while it calls.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::actor::Control;
use crate::quota::ScopeId;

/// A request for a permit.
#[derive(Debug, Clone)]
pub struct AcquireRequest {
    /// Alternatives: each inner Vec is a set of scopes to reserve in atomically (e.g. model
    /// scope + key scope + shared group). The supervisor grants the FIRST candidate (in order)
    /// that fits now; if none fits, the request waits and is granted the first candidate that
    /// becomes admissible. This is how a key with capacity is chosen among several keys.
    pub candidates: Vec<Vec<ScopeId>>,
    /// Estimated tokens (input counted + `max_tokens`), reserved until settlement.
    pub est_tokens: u64,
    /// 0..=9, higher first; waiting raises a request's rank (aging), FIFO within a level.
    pub priority: u8,
    /// How long to wait at most; `None` uses the supervisor's default deadline.
    pub deadline: Option<Duration>,
    /// Who asks (agent id): for stagger, fairness and events.
    pub requester: Arc<str>,
}

impl AcquireRequest {
    /// A request for one set of scopes, priority 0 and the default deadline.
    pub fn new(scopes: Vec<ScopeId>, est_tokens: u64, requester: impl Into<Arc<str>>) -> Self {
        Self {
            candidates: vec![scopes],
            est_tokens,
            priority: 0,
            deadline: None,
            requester: requester.into(),
        }
    }
}

/// The right to make one call. Settle it with the actual tokens when the provider answered;
/// dropping it unsettled settles at the estimate. Either frees its concurrency slots.
#[derive(Debug)]
pub struct Permit {
    id: u64,
    candidate: usize,
    scopes: Arc<[ScopeId]>,
    estimate: u64,
    waited: Duration,
    tx: Option<mpsc::UnboundedSender<Control>>,
}

impl Permit {
    pub(crate) fn new(
        id: u64,
        candidate: usize,
        scopes: Arc<[ScopeId]>,
        estimate: u64,
        waited: Duration,
        tx: mpsc::UnboundedSender<Control>,
    ) -> Self {
        Self {
            id,
            candidate,
            scopes,
            estimate,
            waited,
            tx: Some(tx),
        }
    }

    /// Which alternative of [`AcquireRequest::candidates`] was granted.
    pub fn candidate(&self) -> usize {
        self.candidate
    }

    /// The scopes this permit holds.
    pub fn scopes(&self) -> &[ScopeId] {
        &self.scopes
    }

    /// The tokens reserved.
    pub fn estimate(&self) -> u64 {
        self.estimate
    }

    /// How long the request waited for this permit.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Settles to the actual tokens: a refund when lower than the estimate, an extra charge when
    /// higher (at the reservation's instant), and frees the concurrency slots.
    pub fn settle(mut self, actual_tokens: u64) {
        self.send(actual_tokens);
    }

    /// Forgets the permit without settling (it was never delivered and is rolled back).
    pub(crate) fn disarm(mut self) {
        self.tx = None;
    }

    fn send(&mut self, actual: u64) {
        if let Some(tx) = self.tx.take() {
            // A closed channel means the supervisor is gone: nothing is left to settle.
            let _ = tx.send(Control::Settle {
                id: self.id,
                actual,
            });
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let est = self.estimate;
        self.send(est);
    }
}
