//! Typed errors of the supervisor: why a permit was not granted, why the supervisor failed.

use std::time::Duration;

use crate::quota::{Dimension, Limit, ScopeId};

/// Why [`crate::supervisor::QuotaHandle::acquire`] returned no permit. Its `Display` is one
/// sentence that names the scope, what blocked, the usage and when it frees.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AcquireError {
    /// The estimate alone is above a limit: refused at once, waiting cannot help.
    #[error(
        "a request of {requested} {} can never fit in scope `{scope}`, whose limit is {limit}{}",
        limit.dimension,
        never_fits_hint(limit.dimension)
    )]
    NeverFits {
        /// The scope whose limit is too small.
        scope: ScopeId,
        /// The limit.
        limit: Limit,
        /// The amount asked for in that limit's dimension.
        requested: u64,
    },
    /// No candidate was admissible before the deadline.
    #[error(
        "{}",
        deadline_message(scope, limit.as_ref(), blocked_by.as_deref(), *used, *frees_in, *waited)
    )]
    DeadlineExceeded {
        /// The scope that held the request back.
        scope: ScopeId,
        /// The window limit that blocked, when a limit did (`None`: a cooldown, the concurrency
        /// cap or an earlier request in the queue).
        limit: Option<Limit>,
        /// The amount inside that limit's window (or the permits in flight when `limit` is None).
        used: u64,
        /// How long from the refusal until the scope would admit it, when known. A request whose
        /// earliest admission falls after its deadline is refused as soon as that is known (on
        /// arrival: `waited` is zero), so it does not hold up the requests behind it.
        frees_in: Option<Duration>,
        /// How long the request waited.
        waited: Duration,
        /// What held it back when no window limit did, in words: `cooldown (startup)`,
        /// `2 concurrent calls in flight`, `pacing`, `an earlier request in the queue`.
        blocked_by: Option<String>,
    },
    /// The scope is closed until a human acts (a spend cap was reached).
    #[error("scope `{scope}` is closed: {reason}")]
    ScopeClosed {
        /// The closed scope.
        scope: ScopeId,
        /// Why it closed.
        reason: String,
    },
    /// A candidate named a scope nobody registered.
    #[error("scope `{0}` is not registered with the quota supervisor")]
    UnknownScope(ScopeId),
    /// The request named no candidate at all.
    #[error("the quota request named no candidate scopes")]
    NoCandidates,
    /// The supervisor is gone.
    #[error("the quota supervisor has stopped")]
    Stopped,
}

impl AcquireError {
    /// Whether asking again later could succeed (deadlines and a stopped supervisor: no for the
    /// rest; a deadline: yes).
    pub fn is_retryable(&self) -> bool {
        matches!(self, AcquireError::DeadlineExceeded { .. })
    }
}

/// What a caller can do about a request that never fits a limit of `dimension`.
fn never_fits_hint(dimension: Dimension) -> &'static str {
    match dimension {
        Dimension::Requests => "",
        Dimension::Tokens => {
            ": the prompt plus the output cap it reserves is above the limit; lower max_tokens (the output cap sent and reserved with every request), shorten the prompt, or raise the limit"
        }
        Dimension::OutputTokens => {
            ": the output cap sent and reserved with every request is above the limit; lower max_tokens or raise the limit"
        }
        Dimension::InputTokens => {
            ": the prompt alone is above the limit; shorten it or raise the limit"
        }
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn deadline_message(
    scope: &ScopeId,
    limit: Option<&Limit>,
    blocked_by: Option<&str>,
    used: u64,
    frees_in: Option<Duration>,
    waited: Duration,
) -> String {
    let blocked = match (limit, blocked_by) {
        (Some(l), _) => format!("its limit of {l} was reached (used {used})"),
        (None, Some(why)) => format!("it was held back by {why} ({used} in flight)"),
        (None, None) => {
            format!("it was cooling down, at its concurrency cap or queued ({used} in flight)")
        }
    };
    let frees = match frees_in {
        Some(d) => format!("it frees in {}", secs(d)),
        None => "it frees when a call in flight finishes".to_owned(),
    };
    if waited.is_zero() {
        // Refused on arrival: the earliest it could go is after its deadline.
        return format!(
            "refused at once: scope `{scope}` cannot admit it before its deadline: {blocked}; {frees}"
        );
    }
    format!(
        "gave up after {} waiting for scope `{scope}`: {blocked}; {frees}",
        secs(waited)
    )
}

/// Why the supervisor could not start or answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SupervisorError {
    /// The supervisor task or thread is gone.
    #[error("the quota supervisor has stopped")]
    Stopped,
    /// `start_local` was called outside an actix arbiter.
    #[error(
        "no actix arbiter is running here (start_local needs one: `#[actix_rt::test]`, an actix \
         System); use QuotaHandle::start instead"
    )]
    NoArbiter,
    /// The supervisor's thread or runtime could not be created.
    #[error("could not start the quota supervisor: {0}")]
    Start(String),
    /// The quota state store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}
