//! [`AcquireRequest`] and [`Permit`]: what a caller asks for and what it holds while it calls.

use std::sync::Arc;
use std::time::Duration;

use super::actor::{Home, Release, Released};
use crate::quota::{ScopeId, TokenCount};

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
    /// Of `est_tokens`, the output cap sent with the request (what output-token limits
    /// reserve); the rest is the input estimate (what input-token limits reserve).
    pub est_output: u64,
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
            est_output: 0,
            priority: 0,
            deadline: None,
            requester: requester.into(),
        }
    }
}

impl AcquireRequest {
    /// The same request reserving `tokens` (input estimate and output cap).
    pub fn with_tokens(mut self, tokens: TokenCount) -> Self {
        self.est_tokens = tokens.total();
        self.est_output = tokens.output;
        self
    }

    /// The reservation asked for, split into input estimate and output cap.
    pub fn tokens(&self) -> TokenCount {
        let output = self.est_output.min(self.est_tokens);
        TokenCount::new(self.est_tokens - output, output)
    }
}

/// The right to make one call. Settle it with the actual tokens when the provider answered;
/// dropping it unsettled settles at the estimate. Either frees its concurrency slots.
///
/// A permit the supervisor granted but its caller never received (the caller gave up between
/// the grant and reading it) is rolled back when dropped, as if never granted: only a permit
/// in the caller's hands can have been used for a call.
pub struct Permit {
    id: u64,
    candidate: usize,
    scopes: Arc<[ScopeId]>,
    estimate: TokenCount,
    waited: Duration,
    tx: Option<Home>,
    received: bool,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit")
            .field("id", &self.id)
            .field("candidate", &self.candidate)
            .field("scopes", &self.scopes)
            .field("estimate", &self.estimate)
            .field("waited", &self.waited)
            .field("received", &self.received)
            .finish()
    }
}

impl Permit {
    pub(crate) fn new(
        id: u64,
        candidate: usize,
        scopes: Arc<[ScopeId]>,
        estimate: TokenCount,
        waited: Duration,
        tx: Home,
    ) -> Self {
        Self {
            id,
            candidate,
            scopes,
            estimate,
            waited,
            tx: Some(tx),
            received: false,
        }
    }

    /// The caller now holds the permit: from here on dropping it settles at the estimate.
    pub(crate) fn mark_received(&mut self) {
        self.received = true;
    }

    /// Which alternative of [`AcquireRequest::candidates`] was granted.
    pub fn candidate(&self) -> usize {
        self.candidate
    }

    /// The scopes this permit holds.
    pub fn scopes(&self) -> &[ScopeId] {
        &self.scopes
    }

    /// The tokens reserved (input estimate plus output cap).
    pub fn estimate(&self) -> u64 {
        self.estimate.total()
    }

    /// The tokens reserved, split into input estimate and output cap.
    pub fn tokens(&self) -> TokenCount {
        self.estimate
    }

    /// The supervisor's id of this permit (for a top-up).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records that the reservation grew by `extra` (the supervisor accepted a top-up).
    pub(crate) fn grew(&mut self, extra: TokenCount) {
        self.estimate = self.estimate + extra;
    }

    /// How long the request waited for this permit.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Settles to the actual tokens: a refund when lower than the estimate, an extra charge when
    /// higher (at the reservation's instant), and frees the concurrency slots.
    ///
    /// Scopes with separate input and output limits see the total split as the reservation
    /// was: up to the reserved input as input, the rest as output; use
    /// [`settle_tokens`](Self::settle_tokens) when the split is known.
    pub fn settle(mut self, actual_tokens: u64) {
        let input = actual_tokens.min(self.estimate.input);
        self.send(Release::Settle(TokenCount::new(
            input,
            actual_tokens - input,
        )));
    }

    /// Settles to what the provider counts, input and output apart (see
    /// [`settle`](Self::settle)).
    pub fn settle_tokens(mut self, actual: TokenCount) {
        self.send(Release::Settle(actual));
    }

    /// Releases the permit as if the call had never been made: its request and tokens leave
    /// every window and its concurrency slots free. For calls the provider did not count (a 529
    /// overload, a connection that never reached it); a 429 or any answer is settled instead.
    pub fn release_uncounted(mut self) {
        self.send(Release::Uncount);
    }

    /// Gives the permit back unused: its request was never sent (it grew past the permit after
    /// the grant), so the grant is undone as if it had never been made — windows, concurrency,
    /// pacing and the stagger of first requests alike.
    pub fn release_unsent(mut self) {
        self.send(Release::Unsent);
    }

    /// Forgets the permit without settling (it was never delivered and is rolled back).
    pub(crate) fn disarm(mut self) {
        self.tx = None;
    }

    fn send(&mut self, how: Release) {
        if let Some(tx) = self.tx.take() {
            // `do_send` never blocks (a `Drop` may call it) and is never refused for a full
            // mailbox; when the supervisor is gone there is nothing left to settle.
            tx.do_send(Released { id: self.id, how });
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let how = if self.received {
            Release::Settle(self.estimate)
        } else {
            Release::Unsent
        };
        self.send(how);
    }
}
