//! Each dialect's rate-limit headers, from the exact sliding windows.
//!
//! - OpenAI-compatible: `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
//!   `x-ratelimit-reset-requests` and the same for `-tokens`, describing the request limit and the
//!   token limit with the shortest period (OpenAI documents them per minute; a mock window of
//!   another length is described as it is, so the reset says its real length). Resets are Go
//!   durations (`6m0s`, `9.5s`, `120ms`), rounded up to the millisecond.
//! - Groq mode: `-requests` describe the request limit with the *longest* period (Groq's per-day
//!   limit), `-tokens` the token limit with the shortest (per minute).
//! - Anthropic: `anthropic-ratelimit-requests-*`, `-input-tokens-*`, `-output-tokens-*` and
//!   `-tokens-*` (`limit`, `remaining`, `reset`), the reset an RFC 3339 instant rounded up to the
//!   second. `-tokens-*` describe a combined token limit when one is set, else the input or
//!   output limit with less remaining.
//! - Gemini sends none.
//!
//! A **reset** is the time until the window has freed everything it holds now: until its newest
//! admission leaves it ([`WindowState::reset`]); zero for an empty window.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::convo::MockDialect;
use super::limits::{MockDimension, WindowState};

/// A duration as Go prints it (`0s`, `644ms`, `9.5s`, `6m0s`, `1h2m3.5s`), rounded up to the
/// millisecond.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 > 0);
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let h = ms / 3_600_000;
    let m = (ms / 60_000) % 60;
    let s_ms = ms % 60_000;
    let secs = match s_ms % 1000 {
        0 => format!("{}s", s_ms / 1000),
        f => {
            let frac = format!("{f:03}");
            format!("{}.{}s", s_ms / 1000, frac.trim_end_matches('0'))
        }
    };
    if h > 0 {
        format!("{h}h{m}m{secs}")
    } else if m > 0 {
        format!("{m}m{secs}")
    } else {
        secs
    }
}

/// `now + d` as RFC 3339 (`2025-01-02T03:04:05Z`), rounded up to the second; `now` when the sum
/// does not fit.
pub fn rfc3339_after(now: DateTime<Utc>, d: Duration) -> String {
    let at = chrono::TimeDelta::from_std(d)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now);
    let secs = at
        .timestamp()
        .saturating_add(i64::from(at.timestamp_subsec_nanos() > 0));
    DateTime::from_timestamp(secs, 0)
        .unwrap_or(at)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The window of `dim` with the shortest (or, `longest`, the longest) period.
pub fn pick(states: &[WindowState], dim: MockDimension, longest: bool) -> Option<&WindowState> {
    let of_dim = states.iter().filter(|s| s.limit.dimension == dim);
    if longest {
        of_dim.max_by_key(|s| s.limit.period)
    } else {
        of_dim.min_by_key(|s| s.limit.period)
    }
}

/// The rate-limit headers of an answer or a refusal in `dialect` (module docs).
pub fn limit_headers(
    dialect: MockDialect,
    groq: bool,
    states: &[WindowState],
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match dialect {
        MockDialect::OpenAi => {
            let requests = pick(states, MockDimension::Requests, groq);
            let tokens = pick(states, MockDimension::Tokens, false);
            for (name, s) in [("requests", requests), ("tokens", tokens)] {
                if let Some(s) = s {
                    out.push((
                        format!("x-ratelimit-limit-{name}"),
                        s.limit.amount.to_string(),
                    ));
                    out.push((
                        format!("x-ratelimit-remaining-{name}"),
                        s.remaining.to_string(),
                    ));
                    out.push((format!("x-ratelimit-reset-{name}"), go_duration(s.reset)));
                }
            }
        }
        MockDialect::Anthropic => {
            let input = pick(states, MockDimension::InputTokens, false);
            let output = pick(states, MockDimension::OutputTokens, false);
            let combined = pick(states, MockDimension::Tokens, false).or(match (input, output) {
                (Some(i), Some(o)) => Some(if o.remaining < i.remaining { o } else { i }),
                (i, o) => i.or(o),
            });
            for (name, s) in [
                ("requests", pick(states, MockDimension::Requests, false)),
                ("input-tokens", input),
                ("output-tokens", output),
                ("tokens", combined),
            ] {
                if let Some(s) = s {
                    let base = format!("anthropic-ratelimit-{name}");
                    out.push((format!("{base}-limit"), s.limit.amount.to_string()));
                    out.push((format!("{base}-remaining"), s.remaining.to_string()));
                    out.push((format!("{base}-reset"), rfc3339_after(now, s.reset)));
                }
            }
        }
        MockDialect::Gemini => {}
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::mock_provider::limits::MockLimit;

    #[test]
    fn go_durations() {
        let ms = Duration::from_millis;
        assert_eq!(go_duration(Duration::ZERO), "0s");
        assert_eq!(go_duration(Duration::from_micros(1)), "1ms");
        assert_eq!(go_duration(ms(644)), "644ms");
        assert_eq!(go_duration(ms(9500)), "9.5s");
        assert_eq!(go_duration(ms(1234)), "1.234s");
        assert_eq!(go_duration(ms(360_000)), "6m0s");
        assert_eq!(go_duration(ms(3_723_500)), "1h2m3.5s");
        assert_eq!(go_duration(Duration::from_nanos(1_000_000_001)), "1.001s");
    }

    fn state(
        dim: MockDimension,
        amount: u64,
        secs: u64,
        remaining: u64,
        reset_ms: u64,
    ) -> WindowState {
        WindowState {
            limit: MockLimit::new(dim, amount, Duration::from_secs(secs)).unwrap(),
            remaining,
            reset: Duration::from_millis(reset_ms),
        }
    }

    fn get<'a>(h: &'a [(String, String)], k: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn openai_groq_anthropic_and_gemini() {
        let states = [
            state(MockDimension::Requests, 4, 10, 3, 9500),
            state(MockDimension::Requests, 1000, 86_400, 990, 86_000_000),
            state(MockDimension::Tokens, 6000, 60, 5000, 1500),
        ];
        let now = DateTime::from_timestamp(1_700_000_000, 250_000_000).unwrap();
        let h = limit_headers(MockDialect::OpenAi, false, &states, now);
        assert_eq!(get(&h, "x-ratelimit-limit-requests"), Some("4"));
        assert_eq!(get(&h, "x-ratelimit-reset-requests"), Some("9.5s"));
        assert_eq!(get(&h, "x-ratelimit-remaining-tokens"), Some("5000"));
        let g = limit_headers(MockDialect::OpenAi, true, &states, now);
        assert_eq!(get(&g, "x-ratelimit-limit-requests"), Some("1000"));
        assert_eq!(get(&g, "x-ratelimit-reset-requests"), Some("23h53m20s"));
        assert_eq!(get(&g, "x-ratelimit-limit-tokens"), Some("6000"));
        assert!(limit_headers(MockDialect::Gemini, false, &states, now).is_empty());
        let a = [
            state(MockDimension::Requests, 50, 60, 49, 1000),
            state(MockDimension::InputTokens, 300, 60, 200, 500),
            state(MockDimension::OutputTokens, 100, 60, 40, 500),
        ];
        let h = limit_headers(MockDialect::Anthropic, false, &a, now);
        assert_eq!(
            get(&h, "anthropic-ratelimit-requests-remaining"),
            Some("49")
        );
        // 1_700_000_000.25 + 1 s, rounded up.
        assert_eq!(
            get(&h, "anthropic-ratelimit-requests-reset"),
            Some("2023-11-14T22:13:22Z")
        );
        assert_eq!(get(&h, "anthropic-ratelimit-tokens-remaining"), Some("40"));
        assert_eq!(
            get(&h, "anthropic-ratelimit-input-tokens-limit"),
            Some("300")
        );
        // Rounded up from .75.
        assert_eq!(
            get(&h, "anthropic-ratelimit-output-tokens-reset"),
            Some("2023-11-14T22:13:21Z")
        );
    }
}
