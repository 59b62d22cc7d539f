//! The circuit breaker of one provider endpoint.
//!
//! Failures that say the endpoint cannot answer — transport errors, 5xx (overloaded included)
//! and timeouts, [`ProviderErrorKind::Transient`] and [`ProviderErrorKind::Overloaded`] — count
//! in a row; at [`CircuitSettings::failures_to_open`] the circuit opens for
//! [`CircuitSettings::open_for`]. While open, the actor answers every call at once with
//! [`ProviderErrorKind::CircuitOpen`] and sends nothing. When the cooldown ends the circuit is
//! half-open: exactly one call (the probe) goes; a success closes the circuit, another such
//! failure opens it again for twice the last cooldown (at most [`MAX_OPEN_FOR`]).
//!
//! Answers that prove the endpoint works — a 4xx, a 429, a body that could not be parsed —
//! reset the count. Calls that never reached it or were not its doing — cancelled by their
//! caller, dropped by an actor restart, a panic in this process — change nothing (a probe that
//! ends so frees the half-open slot for the next call).
//!
//! The actor alone changes the state; it publishes every change through a `watch` channel, so
//! [`super::ProviderRef::circuit`] is a synchronous read.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::provider::{ProviderError, ProviderErrorKind};

pub use crate::keys::CircuitSettings;

/// The longest cooldown of an endpoint whose probes keep failing.
pub const MAX_OPEN_FOR: Duration = Duration::from_secs(300);

/// The state of an endpoint's circuit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Calls go through.
    #[default]
    Closed,
    /// Calls are refused at once, without a request, until the cooldown ends.
    Open,
    /// The cooldown is over: one probe call decides.
    HalfOpen,
}

impl EndpointState {
    /// The state as a number for the `massgen_provider_circuit_state` gauge: 0 closed, 1
    /// half-open, 2 open.
    pub fn gauge(self) -> f64 {
        match self {
            EndpointState::Closed => 0.0,
            EndpointState::HalfOpen => 1.0,
            EndpointState::Open => 2.0,
        }
    }

    /// The state's name as in `/status` (`closed`, `open`, `half_open`).
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Closed => "closed",
            EndpointState::Open => "open",
            EndpointState::HalfOpen => "half_open",
        }
    }
}

/// What a caller can know of an endpoint's circuit without asking its actor.
#[derive(Debug, Clone, Copy)]
pub struct CircuitView {
    /// The state.
    pub state: EndpointState,
    /// When an open circuit turns half-open (`None` unless open).
    pub until: Option<std::time::Instant>,
    /// Whether a half-open circuit's probe is in flight (then further calls are refused).
    pub trial_in_flight: bool,
}

impl CircuitView {
    /// A closed circuit.
    pub fn closed() -> Self {
        Self {
            state: EndpointState::Closed,
            until: None,
            trial_in_flight: false,
        }
    }

    /// Whether a call sent now would go to the endpoint: closed, or half-open with no probe
    /// in flight.
    pub fn admits(&self) -> bool {
        match self.state {
            EndpointState::Closed => true,
            EndpointState::HalfOpen => !self.trial_in_flight,
            EndpointState::Open => false,
        }
    }
}

/// How the breaker counts a call's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The endpoint answered (a success, or an error that proves it works).
    Answered,
    /// The endpoint failed to answer (transport, 5xx, timeout).
    Failed,
    /// Not the endpoint's doing: cancelled, dropped, a panic here.
    Neutral,
}

impl Outcome {
    /// The outcome of a call that ended with `error` (`None`: success).
    pub(super) fn of(error: Option<ProviderErrorKind>) -> Self {
        match error {
            None => Outcome::Answered,
            Some(ProviderErrorKind::Transient | ProviderErrorKind::Overloaded) => Outcome::Failed,
            Some(
                ProviderErrorKind::Cancelled
                | ProviderErrorKind::Dropped
                | ProviderErrorKind::Internal
                | ProviderErrorKind::CircuitOpen,
            ) => Outcome::Neutral,
            Some(
                ProviderErrorKind::RateLimited
                | ProviderErrorKind::Auth
                | ProviderErrorKind::RequestTooLarge
                | ProviderErrorKind::SpendCap
                | ProviderErrorKind::BadRequest
                | ProviderErrorKind::Malformed,
            ) => Outcome::Answered,
        }
    }
}

/// Whether a call may go, as the breaker decides when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// An ordinary call.
    Go,
    /// The half-open circuit's probe.
    Probe,
    /// Refused: the circuit is open (or its probe is in flight).
    Refused,
}

/// The breaker's state machine (owned by the provider actor).
#[derive(Debug)]
pub(super) struct Breaker {
    settings: CircuitSettings,
    state: EndpointState,
    consecutive: u32,
    cooldown: Duration,
    until: Option<Instant>,
    trial_in_flight: bool,
    tx: watch::Sender<CircuitView>,
}

impl Breaker {
    pub(super) fn new(settings: CircuitSettings) -> Self {
        Self {
            cooldown: settings.open_for,
            settings,
            state: EndpointState::Closed,
            consecutive: 0,
            until: None,
            trial_in_flight: false,
            tx: watch::Sender::new(CircuitView::closed()),
        }
    }

    /// A receiver of the published state.
    pub(super) fn subscribe(&self) -> watch::Receiver<CircuitView> {
        self.tx.subscribe()
    }

    /// The state now (an open circuit whose cooldown is over turns half-open first).
    pub(super) fn view(&mut self) -> CircuitView {
        self.tick();
        *self.tx.borrow()
    }

    /// When an open circuit's cooldown ends.
    pub(super) fn until(&self) -> Option<Instant> {
        self.until
    }

    /// Turns an open circuit half-open once its cooldown is over.
    pub(super) fn tick(&mut self) {
        if self.state == EndpointState::Open && self.until.is_none_or(|u| Instant::now() >= u) {
            self.state = EndpointState::HalfOpen;
            self.until = None;
            self.trial_in_flight = false;
            self.publish();
        }
    }

    /// Decides whether a call arriving now may go.
    pub(super) fn admit(&mut self) -> Admission {
        self.tick();
        match self.state {
            EndpointState::Closed => Admission::Go,
            EndpointState::HalfOpen if !self.trial_in_flight => {
                self.trial_in_flight = true;
                self.publish();
                Admission::Probe
            }
            EndpointState::HalfOpen | EndpointState::Open => Admission::Refused,
        }
    }

    /// Counts a call that ended with `outcome`; `probe` says whether it was the probe.
    /// Returns the cooldown when the circuit opened now.
    pub(super) fn record(&mut self, outcome: Outcome, probe: bool) -> Option<Duration> {
        if probe {
            self.trial_in_flight = false;
        }
        let opened = match outcome {
            Outcome::Answered => {
                self.consecutive = 0;
                if self.state != EndpointState::Closed {
                    self.state = EndpointState::Closed;
                    self.until = None;
                }
                self.cooldown = self.settings.open_for;
                None
            }
            Outcome::Failed => {
                self.consecutive = self.consecutive.saturating_add(1);
                match self.state {
                    EndpointState::Closed
                        if self.consecutive >= self.settings.failures_to_open.max(1) =>
                    {
                        Some(self.open(self.settings.open_for))
                    }
                    EndpointState::HalfOpen if probe => {
                        let longer = self.cooldown.saturating_mul(2).min(MAX_OPEN_FOR);
                        Some(self.open(longer.max(self.settings.open_for)))
                    }
                    _ => None,
                }
            }
            Outcome::Neutral => None,
        };
        self.publish();
        opened
    }

    /// Forgets a probe lost with the actor's context (a restart after a panic).
    pub(super) fn restarted(&mut self) {
        self.trial_in_flight = false;
        self.publish();
    }

    /// The error a refused call gets.
    pub(super) fn refusal(&self, endpoint: &str) -> ProviderError {
        let when = match self.until {
            Some(u) => format!(
                "for {:.1} s more",
                u.saturating_duration_since(Instant::now()).as_secs_f64()
            ),
            None => "until its probe call answers".to_owned(),
        };
        ProviderError::new(
            ProviderErrorKind::CircuitOpen,
            format!(
                "the circuit of the provider endpoint `{endpoint}` is open {when} after {} \
                 failures in a row (transport errors, 5xx or timeouts); the call was not sent \
                 (rate_limit.circuit sets when it opens and for how long)",
                self.consecutive
            ),
        )
        .never_sent()
    }

    fn open(&mut self, cooldown: Duration) -> Duration {
        self.state = EndpointState::Open;
        self.cooldown = cooldown;
        self.until = Some(Instant::now() + cooldown);
        self.trial_in_flight = false;
        cooldown
    }

    fn publish(&self) {
        let view = CircuitView {
            state: self.state,
            until: self.until.map(Instant::into_std),
            trial_in_flight: self.trial_in_flight,
        };
        self.tx.send_replace(view);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Breaker {
        Breaker::new(CircuitSettings {
            failures_to_open: 3,
            open_for: Duration::from_secs(10),
        })
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_in_a_row_then_probes_once_and_doubles() {
        let mut b = breaker();
        for _ in 0..2 {
            assert_eq!(b.admit(), Admission::Go);
            assert_eq!(b.record(Outcome::Failed, false), None);
        }
        // A 4xx or 429 in between resets the count.
        b.record(Outcome::Answered, false);
        for _ in 0..2 {
            b.record(Outcome::Failed, false);
        }
        assert_eq!(b.view().state, EndpointState::Closed);
        assert_eq!(
            b.record(Outcome::Failed, false),
            Some(Duration::from_secs(10))
        );
        assert_eq!(b.view().state, EndpointState::Open);
        assert_eq!(b.admit(), Admission::Refused);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(b.view().admits());
        assert_eq!(b.admit(), Admission::Probe);
        assert!(!b.view().admits());
        assert_eq!(b.admit(), Admission::Refused);
        assert_eq!(
            b.record(Outcome::Failed, true),
            Some(Duration::from_secs(20))
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(b.admit(), Admission::Refused);
        tokio::time::advance(Duration::from_secs(10)).await;
        // A probe cancelled by its caller frees the slot for the next call.
        assert_eq!(b.admit(), Admission::Probe);
        b.record(Outcome::Neutral, true);
        assert_eq!(b.admit(), Admission::Probe);
        b.record(Outcome::Answered, true);
        assert_eq!(b.view().state, EndpointState::Closed);
        assert_eq!(b.admit(), Admission::Go);
    }

    #[test]
    fn only_failures_to_answer_count_and_only_answers_reset() {
        use ProviderErrorKind as K;
        for k in [K::Transient, K::Overloaded] {
            assert_eq!(Outcome::of(Some(k)), Outcome::Failed, "{k:?}");
        }
        for k in [K::Cancelled, K::Dropped, K::Internal, K::CircuitOpen] {
            assert_eq!(Outcome::of(Some(k)), Outcome::Neutral, "{k:?}");
        }
        for k in [
            K::RateLimited,
            K::Auth,
            K::BadRequest,
            K::SpendCap,
            K::Malformed,
        ] {
            assert_eq!(Outcome::of(Some(k)), Outcome::Answered, "{k:?}");
        }
        assert_eq!(Outcome::of(None), Outcome::Answered);
        // Neutral outcomes leave the count where it was.
        let mut b = breaker();
        b.record(Outcome::Failed, false);
        b.record(Outcome::Failed, false);
        b.record(Outcome::Neutral, false);
        assert!(b.record(Outcome::Failed, false).is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_cooldown_doubles_up_to_its_cap() {
        let mut b = breaker();
        for _ in 0..3 {
            b.record(Outcome::Failed, false);
        }
        let mut last = Duration::from_secs(10);
        for _ in 0..8 {
            tokio::time::advance(last).await;
            assert_eq!(b.admit(), Admission::Probe);
            let Some(next) = b.record(Outcome::Failed, true) else {
                unreachable!("a failed probe reopens the circuit")
            };
            assert_eq!(next, (last * 2).min(MAX_OPEN_FOR));
            last = next;
        }
        assert_eq!(last, MAX_OPEN_FOR);
    }
}
