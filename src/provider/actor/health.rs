//! [`ProviderHealth`]: what one provider endpoint's actor has seen.

use std::time::Duration;

use super::call::Finished;
use super::circuit::EndpointState;

/// Calls the latency percentiles and error rate are computed over (the most recent ones).
pub const RECENT_CALLS: usize = 512;

/// A snapshot of one provider actor's figures (answered by the `Health` message).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ProviderHealth {
    /// The backend family (`openai`, `gemini`, `claude`, `simulated`, ...).
    pub provider: String,
    /// The endpoint: its base URL without credentials, query or fragment (`in-process` for
    /// a provider without one).
    pub endpoint: String,
    /// The endpoint's circuit breaker.
    pub circuit: EndpointState,
    /// Milliseconds until an open circuit turns half-open (`None` unless open).
    pub circuit_open_ms: Option<u64>,
    /// When an open circuit turns half-open (`None` unless open).
    #[serde(skip)]
    pub circuit_until: Option<std::time::Instant>,
    /// Calls refused at once, without a request, because the circuit was open.
    pub rejected: u64,
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
    /// Median latency over the last [`RECENT_CALLS`] answered calls, in milliseconds.
    pub latency_p50_ms: Option<u64>,
    /// 95th percentile of the same.
    pub latency_p95_ms: Option<u64>,
    /// 99th percentile of the same.
    pub latency_p99_ms: Option<u64>,
    /// Share of failed calls (0 to 1) over the last [`RECENT_CALLS`] calls.
    pub error_rate: Option<f64>,
    /// The last failure, in words (never a key).
    pub last_error: Option<String>,
    #[serde(skip)]
    recent: Recent,
    #[serde(skip)]
    latency_total: Duration,
    #[serde(skip)]
    timed: u64,
}

impl ProviderHealth {
    pub(super) fn new(provider: &str, endpoint: &str, max_in_flight: usize) -> Self {
        Self {
            provider: provider.to_owned(),
            endpoint: endpoint.to_owned(),
            max_in_flight,
            circuit: EndpointState::Closed,
            ..Self::default()
        }
    }

    /// The figures with the percentiles and error rate of the recent window filled in.
    pub(super) fn snapshot(&self) -> Self {
        let mut out = self.clone();
        let mut latencies: Vec<u64> = self.recent.samples.iter().map(|s| s.0).collect();
        latencies.sort_unstable();
        out.latency_p50_ms = percentile(&latencies, 50);
        out.latency_p95_ms = percentile(&latencies, 95);
        out.latency_p99_ms = percentile(&latencies, 99);
        let n = self.recent.samples.len();
        out.error_rate = (n > 0).then(|| {
            let errors = self.recent.samples.iter().filter(|s| s.1).count();
            errors as f64 / n as f64
        });
        out.recent = Recent::default();
        out
    }

    /// Counts one call that ended.
    pub(super) fn record(&mut self, finished: Finished) {
        self.in_flight = self.in_flight.saturating_sub(1);
        match finished {
            Finished::Abandoned => self.abandoned += 1,
            Finished::Panicked { error } => {
                self.calls += 1;
                self.recent.push(Duration::ZERO, true);
                self.panics += 1;
                self.fail(error);
            }
            Finished::Answered {
                elapsed,
                error,
                kind: _,
                timed_out,
            } => {
                self.calls += 1;
                self.timeouts += u64::from(timed_out);
                self.latency(elapsed);
                self.recent.push(elapsed, error.is_some());
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

/// The last [`RECENT_CALLS`] calls: latency in milliseconds and whether the call failed.
#[derive(Debug, Clone, Default, PartialEq)]
struct Recent {
    samples: Vec<(u64, bool)>,
    next: usize,
}

impl Recent {
    fn push(&mut self, elapsed: Duration, failed: bool) {
        let sample = (
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            failed,
        );
        if self.samples.len() < RECENT_CALLS {
            self.samples.push(sample);
        } else if let Some(slot) = self.samples.get_mut(self.next) {
            *slot = sample;
        }
        self.next = (self.next + 1) % RECENT_CALLS;
    }
}

/// The nearest-rank `p`th percentile of `sorted` (`None` when empty).
fn percentile(sorted: &[u64], p: usize) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (p * n).div_ceil(100).clamp(1, n);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_over_the_last_calls_only() {
        let mut r = Recent::default();
        // 1000 old slow calls, then the window fills with 1..=512 ms, one in four failing.
        for _ in 0..1000 {
            r.push(Duration::from_secs(60), true);
        }
        for ms in 1..=RECENT_CALLS as u64 {
            r.push(Duration::from_millis(ms), ms % 4 == 0);
        }
        let h = ProviderHealth {
            recent: r,
            ..ProviderHealth::default()
        }
        .snapshot();
        assert_eq!(h.latency_p50_ms, Some(256));
        assert_eq!(h.latency_p95_ms, Some(487));
        assert_eq!(h.latency_p99_ms, Some(507));
        assert_eq!(h.error_rate, Some(0.25));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 99), Some(7));
    }
}
