//! Rate-limit headers: `Retry-After` (seconds or HTTP date), `retry-after-ms`, OpenAI/Groq
//! `x-ratelimit-*` and Anthropic `anthropic-ratelimit-*`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::HeaderMap;

use crate::quota::time::{ONE_DAY, clamp_wait, wait_from_secs_f64};
use crate::quota::{Dimension, Limit, MAX_LEARNED_AMOUNT, Remaining};

use super::Dialect;

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = ONE_DAY;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header(headers, name).and_then(|v| v.parse().ok())
}

/// A limit header: zero or absurd values are ignored with a warning.
fn header_limit(headers: &HeaderMap, name: &str) -> Option<u64> {
    let value = header_u64(headers, name)?;
    if value == 0 || value > MAX_LEARNED_AMOUNT {
        tracing::warn!(
            header = name,
            value,
            "implausible rate-limit header ignored"
        );
        return None;
    }
    Some(value)
}

/// The time from `now` until `at`, zero for a past instant, clamped to
/// [`MAX_PROVIDER_WAIT`](crate::quota::time::MAX_PROVIDER_WAIT).
fn until(at: DateTime<Utc>, now: DateTime<Utc>) -> Duration {
    clamp_wait(
        at.signed_duration_since(now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The wait the provider asked for: `retry-after-ms` (milliseconds, may be fractional) wins over
/// `Retry-After` (whole or fractional seconds, or an HTTP date compared with `now`). A date in
/// the past means "now" (zero). Negative, NaN and unreadable values are ignored; huge ones are
/// clamped to [`MAX_PROVIDER_WAIT`](crate::quota::time::MAX_PROVIDER_WAIT).
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let ms = header(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok());
    if let Some(wait) = ms.and_then(|ms| wait_from_secs_f64(ms / 1000.0)) {
        return Some(wait);
    }
    let value = header(headers, "retry-after")?;
    if let Ok(secs) = value.parse::<f64>() {
        return wait_from_secs_f64(secs);
    }
    let at = DateTime::parse_from_rfc2822(value)
        .ok()?
        .with_timezone(&Utc);
    Some(until(at, now))
}

/// Parses a Go duration as OpenAI and Groq send it: `6m0s`, `1.5s`, `12ms`, `2m59.56s`, `1h2m`,
/// `7.66s`, `500us`. Returns `None` for anything else (an empty string, a sign, an unknown
/// unit); a value longer than [`MAX_PROVIDER_WAIT`](crate::quota::time::MAX_PROVIDER_WAIT)
/// (`99999999999999999999h`) is clamped to it.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut total = 0.0_f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    wait_from_secs_f64(total)
}

/// What headers on one answer revealed: limits to learn and remaining capacity.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Limits the provider stated (`x-ratelimit-limit-*`, `anthropic-ratelimit-*-limit`).
    pub learned: Vec<Limit>,
    /// Remaining capacity per dimension.
    pub remaining: Vec<Remaining>,
}

impl HeaderLimits {
    /// Whether nothing was found.
    pub fn is_empty(&self) -> bool {
        self.learned.is_empty() && self.remaining.is_empty()
    }
}

/// Reads the rate-limit headers of `dialect` (OpenAI-style, Groq, Anthropic; Gemini sends none).
pub fn limits(dialect: Dialect, headers: &HeaderMap, now: DateTime<Utc>) -> HeaderLimits {
    match dialect {
        Dialect::OpenAi => x_ratelimit(headers, MINUTE),
        Dialect::Groq => x_ratelimit(headers, DAY),
        Dialect::Anthropic => anthropic(headers, now),
        Dialect::Gemini => HeaderLimits::default(),
    }
}

/// A reset is clamped to a day for a per-day limit (it resets within a day), to a week otherwise.
fn clamp_reset(reset: Duration, period: Duration) -> Duration {
    if period >= DAY {
        reset.min(DAY)
    } else {
        clamp_wait(reset)
    }
}

/// Adds a report, and the limit it teaches (see [`Remaining::learned_limit`]).
fn push(out: &mut HeaderLimits, r: Remaining) {
    if let Some(l) = r.learned_limit() {
        if !out.learned.contains(&l) {
            out.learned.push(l);
        }
    }
    out.remaining.push(r);
}

/// OpenAI-style `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`. Tokens count per minute;
/// requests per `requests_period` (a minute for OpenAI, a day for Groq). A limit is learned with
/// a period that agrees with the reset the same answer gives ([`Remaining::learned_limit`]).
fn x_ratelimit(headers: &HeaderMap, requests_period: Duration) -> HeaderLimits {
    let mut out = HeaderLimits::default();
    for (dimension, suffix, period) in [
        (Dimension::Requests, "requests", requests_period),
        (Dimension::Tokens, "tokens", MINUTE),
    ] {
        let limit = header_limit(headers, &format!("x-ratelimit-limit-{suffix}"));
        let reset_after = header(headers, &format!("x-ratelimit-reset-{suffix}"))
            .and_then(parse_go_duration)
            .map(|d| clamp_reset(d, period));
        match header_u64(headers, &format!("x-ratelimit-remaining-{suffix}")) {
            Some(remaining) => push(
                &mut out,
                Remaining {
                    dimension,
                    limit,
                    remaining,
                    reset_after,
                    period: Some(period),
                },
            ),
            None => {
                // A limit alone: its documented period, nothing to contradict it.
                let r = Remaining {
                    dimension,
                    limit,
                    remaining: 0,
                    reset_after: None,
                    period: Some(period),
                };
                if let Some(l) = limit.and(r.learned_limit()) {
                    out.learned.push(l);
                }
            }
        }
    }
    out
}

/// Anthropic `anthropic-ratelimit-{requests,input-tokens,output-tokens,tokens}-*` (per minute,
/// resets as RFC 3339 times). Requests, input tokens and output tokens are each a limit of their
/// own dimension (RPM, ITPM, OTPM). The combined `tokens-*` headers describe whichever of the
/// token limits is the most restrictive at the moment (usually the OTPM), not a limit on input
/// plus output. They say nothing the input and output headers do not, so they are read only when
/// those are absent, and then without a limit: they teach nothing and seed nothing, and only a
/// `remaining` of 0 cools the scope down.
fn anthropic(headers: &HeaderMap, now: DateTime<Utc>) -> HeaderLimits {
    let mut out = HeaderLimits::default();
    for (dimension, kind) in [
        (Dimension::Requests, "requests"),
        (Dimension::InputTokens, "input-tokens"),
        (Dimension::OutputTokens, "output-tokens"),
        (Dimension::Tokens, "tokens"),
    ] {
        let Some(remaining) = header_u64(headers, &format!("anthropic-ratelimit-{kind}-remaining"))
        else {
            continue;
        };
        if dimension == Dimension::Tokens && out.remaining.iter().any(|r| r.dimension.is_tokens()) {
            continue;
        }
        let limit = match dimension {
            Dimension::Tokens => None,
            _ => header_limit(headers, &format!("anthropic-ratelimit-{kind}-limit")),
        };
        let reset_after = header(headers, &format!("anthropic-ratelimit-{kind}-reset"))
            .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
            .map(|at| until(at.with_timezone(&Utc), now));
        push(
            &mut out,
            Remaining {
                dimension,
                limit,
                remaining,
                reset_after,
                period: Some(MINUTE),
            },
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn go_durations() {
        let ms = |s: &str| parse_go_duration(s).map(|d| d.as_millis());
        assert_eq!(ms("6m0s"), Some(360_000));
        assert_eq!(ms("1.5s"), Some(1500));
        assert_eq!(ms("12ms"), Some(12));
        assert_eq!(ms("2m59.56s"), Some(179_560));
        assert_eq!(ms("1h2m"), Some(3_720_000));
        assert_eq!(ms("0"), Some(0));
        assert_eq!(ms(""), None);
        assert_eq!(ms("soon"), None);
        assert_eq!(ms("5x"), None);
    }

    #[test]
    fn retry_after_seconds_ms_and_date() {
        let n = now();
        assert_eq!(
            retry_after(&map(&[("retry-after", "7")]), n),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            retry_after(&map(&[("retry-after", "7"), ("retry-after-ms", "644")]), n),
            Some(Duration::from_millis(644))
        );
        let date = map(&[("retry-after", "Sun, 01 Jun 2025 12:00:30 GMT")]);
        assert_eq!(retry_after(&date, n), Some(Duration::from_secs(30)));
        let past = map(&[("retry-after", "Sun, 01 Jun 2025 11:00:00 GMT")]);
        assert_eq!(retry_after(&past, n), Some(Duration::ZERO));
        assert_eq!(retry_after(&map(&[("retry-after", "later")]), n), None);
        assert_eq!(retry_after(&HeaderMap::new(), n), None);
    }

    #[test]
    fn hostile_values_are_ignored_or_clamped() {
        let n = now();
        let week = crate::quota::time::MAX_PROVIDER_WAIT;
        let ra = |v: &str| retry_after(&map(&[("retry-after", v)]), n);
        assert_eq!(ra("99999999999999999999"), Some(week));
        assert_eq!(ra("1e400"), Some(week));
        assert_eq!(ra("-5"), None);
        assert_eq!(ra("NaN"), None);
        assert_eq!(ra(""), None);
        assert_eq!(ra("Fri, 31 Dec 9999 23:59:59 GMT"), Some(week));
        let ms = map(&[("retry-after-ms", "-1"), ("retry-after", "3")]);
        assert_eq!(retry_after(&ms, n), Some(Duration::from_secs(3)));
        assert_eq!(parse_go_duration("99999999999999999999h"), Some(week));
        assert_eq!(parse_go_duration("-1s"), None);
        assert_eq!(parse_go_duration("."), None);
        assert_eq!(parse_go_duration("1..5s"), None);
        // A zero limit is ignored; the remaining count still reports.
        let zero = map(&[
            ("x-ratelimit-limit-requests", "0"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "99999999999999999999h"),
        ]);
        let got = limits(Dialect::OpenAi, &zero, n);
        assert!(got.learned.is_empty());
        assert_eq!(got.remaining[0].limit, None);
        assert_eq!(got.remaining[0].reset_after, Some(week));
        let groq = limits(Dialect::Groq, &zero, n);
        assert_eq!(groq.remaining[0].reset_after, Some(DAY));
        let far = map(&[
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "9999-12-31T23:59:59Z"),
        ]);
        let got = limits(Dialect::Anthropic, &far, n);
        assert_eq!(got.remaining[0].reset_after, Some(week));
    }

    #[test]
    fn groq_requests_count_per_day() {
        let h = map(&[
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-limit-tokens", "6000"),
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-remaining-tokens", "5997"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ]);
        let got = limits(Dialect::Groq, &h, now());
        assert_eq!(
            got.learned,
            vec![
                Limit::new(Dimension::Requests, 14_400, DAY).unwrap(),
                Limit::new(Dimension::Tokens, 6000, MINUTE).unwrap()
            ]
        );
        assert_eq!(got.remaining[0].remaining, 14_370);
        assert_eq!(
            got.remaining[0].reset_after,
            Some(Duration::from_millis(179_560))
        );
        assert_eq!(got.remaining[1].period, Some(MINUTE));
        let openai = limits(Dialect::OpenAi, &h, now());
        assert_eq!(openai.learned[0].period, MINUTE);
    }

    #[test]
    fn anthropic_headers() {
        let h = map(&[
            ("anthropic-ratelimit-requests-limit", "50"),
            ("anthropic-ratelimit-requests-remaining", "49"),
            ("anthropic-ratelimit-requests-reset", "2025-06-01T12:00:01Z"),
            ("anthropic-ratelimit-input-tokens-limit", "40000"),
            ("anthropic-ratelimit-input-tokens-remaining", "39000"),
            (
                "anthropic-ratelimit-input-tokens-reset",
                "2025-06-01T12:00:02Z",
            ),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("anthropic-ratelimit-output-tokens-remaining", "7000"),
            (
                "anthropic-ratelimit-output-tokens-reset",
                "2025-06-01T12:00:08Z",
            ),
            ("anthropic-ratelimit-tokens-limit", "8000"),
            ("anthropic-ratelimit-tokens-remaining", "7000"),
            ("anthropic-ratelimit-tokens-reset", "2025-06-01T12:00:08Z"),
        ]);
        let got = limits(Dialect::Anthropic, &h, now());
        assert_eq!(
            got.learned,
            vec![
                Limit::rpm(50.try_into().unwrap()),
                Limit::new(Dimension::InputTokens, 40000, MINUTE).unwrap(),
                Limit::new(Dimension::OutputTokens, 8000, MINUTE).unwrap(),
            ]
        );
        assert_eq!(got.remaining.len(), 3);
        assert_eq!(got.remaining[0].reset_after, Some(Duration::from_secs(1)));
        assert_eq!(got.remaining[1].dimension, Dimension::InputTokens);
        assert_eq!(got.remaining[1].remaining, 39000);
        assert_eq!(got.remaining[2].dimension, Dimension::OutputTokens);
        assert_eq!(got.remaining[2].remaining, 7000);
        assert_eq!(got.remaining[2].reset_after, Some(Duration::from_secs(8)));
        assert!(limits(Dialect::Gemini, &h, now()).is_empty());
    }

    /// The combined `tokens-*` headers name the most restrictive token limit of the moment
    /// (here the OTPM), not a limit on input plus output: they are reported without a limit.
    #[test]
    fn anthropic_combined_tokens_teach_no_limit() {
        let h = map(&[
            ("anthropic-ratelimit-tokens-limit", "8000"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2025-06-01T12:00:07Z"),
        ]);
        let got = limits(Dialect::Anthropic, &h, now());
        assert!(got.learned.is_empty(), "{:?}", got.learned);
        assert_eq!(got.remaining.len(), 1);
        let r = &got.remaining[0];
        assert_eq!(r.dimension, Dimension::Tokens);
        assert_eq!(r.limit, None);
        assert_eq!(r.remaining, 0);
        assert_eq!(r.reset_after, Some(Duration::from_secs(7)));
    }
}
