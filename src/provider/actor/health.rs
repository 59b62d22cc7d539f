//! [`ProviderHealth`]: what one provider endpoint's actor has seen.

use std::time::Duration;

use super::call::Finished;

/// A snapshot of one provider actor's figures (answered by the `Health` message).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProviderHealth {
    /// The backend family (`openai`, `gemini`, `claude`, `simulated`, ...).
    pub provider: String,
    /// Calls the endpoint serves at once; more wait for a slot.
    pub max_in_flight: usize,
    /// Calls running or waiting for a slot now.
    pub in_flight: u64,
    /// Calls that ended with an answer to their caller: successes and failures (timeouts and
    /// panics included).
    pub calls: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// Calls cut by their timeout.
    pub timeouts: u64,
    /// Calls cancelled because their caller left first.
    pub abandoned: u64,
    /// Calls whose adapter panicked.
    pub panics: u64,
    /// Times the actor was restarted (after a panic).
    pub restarts: u64,
    /// Latency of the last answered call, in milliseconds.
    pub last_latency_ms: Option<u64>,
    /// Mean latency of answered calls, in milliseconds.
    pub mean_latency_ms: Option<f64>,
    /// Longest latency of an answered call, in milliseconds.
    pub max_latency_ms: Option<u64>,
    /// The last failure, in words (never a key).
    pub last_error: Option<String>,
    #[serde(skip)]
    latency_total: Duration,
    #[serde(skip)]
    timed: u64,
}

impl ProviderHealth {
    pub(super) fn new(provider: &str, max_in_flight: usize) -> Self {
        Self {
            provider: provider.to_owned(),
            max_in_flight,
            ..Self::default()
        }
    }

    /// Counts one call that ended.
    pub(super) fn record(&mut self, finished: Finished) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match finished {
            Finished::Abandoned => self.abandoned += 1,
            Finished::Panicked { error } => {
                self.calls += 1;
                self.panics += 1;
                self.fail(error);
            }
            Finished::Answered {
                elapsed,
                error,
                timed_out,
            } => {
                self.calls += 1;
                self.timeouts += u64::from(timed_out);
                self.latency(elapsed);
                match error {
                    None => {
                        self.successes += 1;
                        self.consecutive_failures = 0;
                    }
                    Some(e) => self.fail(e),
                }
            }
        }
    }

    fn fail(&mut self, error: String) {
        self.failures += 1;
        self.consecutive_failures += 1;
        self.last_error = Some(error);
    }

    fn latency(&mut self, elapsed: Duration) {
        let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        self.last_latency_ms = Some(ms);
        self.max_latency_ms = Some(self.max_latency_ms.map_or(ms, |m| m.max(ms)));
        self.latency_total = self.latency_total.saturating_add(elapsed);
        self.timed += 1;
        let timed = u32::try_from(self.timed).unwrap_or(u32::MAX);
        self.mean_latency_ms = Some((self.latency_total / timed).as_secs_f64() * 1000.0);
    }
}
