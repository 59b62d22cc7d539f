//! Hostile replies: answers whose rate-limit values are absurd, for testing that nothing a
//! provider sends can crash or stall a client.
//!
//! Every kind but `limits` is a 429 in the dialect's shape with every retry field set to the
//! kind's value: OpenAI-compatible `retry-after`, `retry-after-ms`, the `x-ratelimit-*` headers
//! and "Please try again in ..." in the body; Anthropic `retry-after` and the
//! `anthropic-ratelimit-*` headers; Gemini `RetryInfo.retryDelay` (plus a `retry-after`
//! header, which Gemini itself never sends).
//!
//! | kind | retry-after / *-ms | "try again in" | x-ratelimit-* | Anthropic reset | retryDelay |
//! |---|---|---|---|---|---|
//! | `huge` | `99999999999999999999` | `99999999999999999999h` | limit/remaining `99999999999999999999`, reset `99999999999999999999h` | `+275760-09-13T00:00:00Z` | `99999999999999999999s` |
//! | `nan` | `NaN` | `NaNs` | `NaN` | `NaN` | `NaNs` |
//! | `negative` | `-5` | `-5s` | limit `-1`, reset `-5s` | `-5` | `-5s` |
//! | `empty` | (empty) | (nothing) | (empty) | (empty) | (empty) |
//! | `garbage` | `soon` | `a little while` | `lots`, reset `x1y2z` | `not-a-date` | `tomorrow` |
//! | `exponent` | `1e30` | `1e30s` | limit `1e30`, reset `1e30s` | `1e30` | `1e30s` |
//! | `far-future` | `31536000000` | `8760000h` | reset `8760000h` | `9999-12-31T23:59:59Z` | `315360000000s` |
//! | `past` | `0` | `0s` | remaining `0`, reset `0s` | `1970-01-01T00:00:00Z` | `0s` |
//! | `limits` | a normal 200 answer whose rate-limit headers say limit `0`, remaining `-3`, reset `NaN` (Anthropic `not-a-date`) |
//!
//! In a `--faults` spec, `hostile` takes these kinds in turn (each time the rule fires, the
//! next one), and `hostile-KIND` always the same one.

use serde_json::json;

use super::convo::MockDialect;
use super::render::Rendered;

/// One kind of absurd rate-limit reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Values beyond any integer type.
    Huge,
    /// `NaN`.
    Nan,
    /// Negative values.
    Negative,
    /// Empty values.
    Empty,
    /// Words where numbers belong.
    Garbage,
    /// Numbers in exponent form (`1e30`).
    Exponent,
    /// Valid, but a thousand years away.
    FarFuture,
    /// Instants in the past.
    Past,
    /// A 200 answer with absurd limit headers (zero limit, negative remaining).
    Limits,
}

impl Hostile {
    /// Every kind, in the order `hostile` takes them.
    pub const ALL: [Hostile; 9] = [
        Hostile::Huge,
        Hostile::Nan,
        Hostile::Negative,
        Hostile::Empty,
        Hostile::Garbage,
        Hostile::Exponent,
        Hostile::FarFuture,
        Hostile::Past,
        Hostile::Limits,
    ];

    /// The name used in a fault spec (`hostile-NAME`).
    pub fn name(self) -> &'static str {
        match self {
            Hostile::Huge => "huge",
            Hostile::Nan => "nan",
            Hostile::Negative => "negative",
            Hostile::Empty => "empty",
            Hostile::Garbage => "garbage",
            Hostile::Exponent => "exponent",
            Hostile::FarFuture => "far-future",
            Hostile::Past => "past",
            Hostile::Limits => "limits",
        }
    }

    /// The kind named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|h| h.name() == name)
    }

    /// Whether the reply is a normal answer (with absurd headers) rather than a 429.
    pub fn is_answer(self) -> bool {
        self == Hostile::Limits
    }
}

/// The values one kind writes: `(retry-after, retry-after-ms, try-again text, limit,
/// remaining, go reset, anthropic reset, retryDelay)`.
struct Values {
    retry_after: &'static str,
    retry_after_ms: &'static str,
    try_again: &'static str,
    limit: &'static str,
    remaining: &'static str,
    reset: &'static str,
    instant: &'static str,
    delay: &'static str,
}

fn values(h: Hostile) -> Values {
    let v =
        |retry_after, retry_after_ms, try_again, limit, remaining, reset, instant, delay| Values {
            retry_after,
            retry_after_ms,
            try_again,
            limit,
            remaining,
            reset,
            instant,
            delay,
        };
    const BIG: &str = "99999999999999999999";
    match h {
        Hostile::Huge => v(
            BIG,
            BIG,
            "99999999999999999999h",
            BIG,
            BIG,
            "99999999999999999999h",
            "+275760-09-13T00:00:00Z",
            "99999999999999999999s",
        ),
        Hostile::Nan => v("NaN", "NaN", "NaNs", "NaN", "NaN", "NaN", "NaN", "NaNs"),
        Hostile::Negative => v("-5", "-5000", "-5s", "-1", "-1", "-5s", "-5", "-5s"),
        Hostile::Empty => v("", "", "", "", "", "", "", ""),
        Hostile::Garbage => v(
            "soon",
            "soon",
            "a little while",
            "lots",
            "some",
            "x1y2z",
            "not-a-date",
            "tomorrow",
        ),
        Hostile::Exponent => v(
            "1e30", "1e30", "1e30s", "1e30", "1e30", "1e30s", "1e30", "1e30s",
        ),
        Hostile::FarFuture => v(
            "31536000000",
            "31536000000000",
            "8760000h",
            "10",
            "0",
            "8760000h",
            "9999-12-31T23:59:59Z",
            "315360000000s",
        ),
        Hostile::Past => v(
            "0",
            "0",
            "0s",
            "10",
            "0",
            "0s",
            "1970-01-01T00:00:00Z",
            "0s",
        ),
        Hostile::Limits => v("", "", "", "0", "-3", "NaN", "not-a-date", ""),
    }
}

/// The rate-limit headers of a hostile reply.
pub fn headers(dialect: MockDialect, h: Hostile) -> Vec<(String, String)> {
    let v = values(h);
    let mut out = Vec::new();
    match dialect {
        MockDialect::OpenAi => {
            for dim in ["requests", "tokens"] {
                out.push((format!("x-ratelimit-limit-{dim}"), v.limit.to_owned()));
                out.push((
                    format!("x-ratelimit-remaining-{dim}"),
                    v.remaining.to_owned(),
                ));
                out.push((format!("x-ratelimit-reset-{dim}"), v.reset.to_owned()));
            }
        }
        MockDialect::Anthropic => {
            for dim in ["requests", "tokens", "input-tokens", "output-tokens"] {
                let base = format!("anthropic-ratelimit-{dim}");
                out.push((format!("{base}-limit"), v.limit.to_owned()));
                out.push((format!("{base}-remaining"), v.remaining.to_owned()));
                out.push((format!("{base}-reset"), v.instant.to_owned()));
            }
        }
        MockDialect::Gemini => {}
    }
    if !h.is_answer() {
        out.push(("retry-after".to_owned(), v.retry_after.to_owned()));
        if dialect == MockDialect::OpenAi {
            out.push(("retry-after-ms".to_owned(), v.retry_after_ms.to_owned()));
        }
    }
    out
}

/// The hostile 429 in `dialect`'s shape (not for [`Hostile::Limits`], which is an answer).
pub fn refusal(dialect: MockDialect, model: &str, h: Hostile) -> Rendered {
    let v = values(h);
    let headers = headers(dialect, h);
    let body = match dialect {
        MockDialect::OpenAi => json!({"error": {
            "message": format!("Rate limit reached for {model} in organization org-mock on requests per min (RPM): Limit {}, Used {}, Requested 1. Please try again in {}.", v.limit, v.remaining, v.try_again),
            "type": "requests", "param": null, "code": "rate_limit_exceeded"}}),
        MockDialect::Gemini => json!({"error": {
            "code": 429,
            "message": format!("You exceeded your current quota. Please retry in {}.", v.delay),
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                    "quotaValue": v.limit}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": v.delay}]}}),
        MockDialect::Anthropic => json!({"type": "error", "error": {"type": "rate_limit_error",
            "message": format!("This request would exceed the rate limit for your organization of {} requests per minute.", v.limit)}}),
    };
    Rendered::json(429, headers, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_kind_renders_valid_headers() {
        for h in Hostile::ALL {
            assert_eq!(Hostile::from_name(h.name()), Some(h));
            for d in [
                MockDialect::OpenAi,
                MockDialect::Gemini,
                MockDialect::Anthropic,
            ] {
                for (k, v) in headers(d, h) {
                    assert!(axum::http::HeaderValue::from_str(&v).is_ok(), "{k}: {v}");
                }
                if !h.is_answer() {
                    let r = refusal(d, "m", h);
                    assert_eq!(r.status, 429);
                    assert!(serde_json::from_str::<serde_json::Value>(&r.pieces[0]).is_ok());
                }
            }
        }
        assert_eq!(Hostile::from_name("kind"), None);
        let r = refusal(MockDialect::OpenAi, "m", Hostile::Huge);
        assert!(r.pieces[0].contains("Please try again in 99999999999999999999h."));
        let r = refusal(MockDialect::Gemini, "m", Hostile::Exponent);
        assert!(r.pieces[0].contains("\"retryDelay\":\"1e30s\""));
    }
}
