//! Error bodies: OpenAI/Groq "Limit 30000, Used 29937, Requested 385. Please try again in 644ms",
//! "Request too large ... Limit 6000, Requested 14368", spend caps, Gemini `RESOURCE_EXHAUSTED`
//! details (`RetryInfo`, `QuotaFailure`) and Anthropic error types.

use std::time::Duration;

use serde_json::Value;

use crate::quota::{Dimension, Limit, plausible_limit};

use super::headers::parse_go_duration;

/// What an error body said, provider-neutral.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BodyFacts {
    /// The provider's message.
    pub message: Option<String>,
    /// The error's type/code/status strings (`insufficient_quota`, `rate_limit_error`,
    /// `RESOURCE_EXHAUSTED`...).
    pub codes: Vec<String>,
    /// A wait named in the body ("try again in 644ms", `RetryInfo.retryDelay`).
    pub retry_after: Option<Duration>,
    /// Limits the body revealed.
    pub learned: Vec<Limit>,
    /// "Request too large": `(limit, requested)`.
    pub too_large: Option<(Option<u64>, Option<u64>)>,
    /// A Gemini per-day quota was violated.
    pub daily: bool,
    /// A spend cap or billing quota was hit.
    pub spend_cap: bool,
    /// The provider says it is overloaded.
    pub overloaded: bool,
    /// The key itself was refused (Gemini answers 400 `API_KEY_INVALID`).
    pub bad_key: bool,
}

/// Parses an error body of any of the three dialects (they are told apart by shape).
pub fn parse(body: &str) -> BodyFacts {
    let mut facts = BodyFacts::default();
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        let text = body.trim();
        if !text.is_empty() {
            facts.message = Some(trim_message(text));
            read_message(text, &mut facts);
        }
        return facts;
    };
    let err = json.get("error").unwrap_or(&json);
    if let Some(m) = err.get("message").and_then(Value::as_str) {
        facts.message = Some(trim_message(m));
    }
    for field in ["type", "code", "status"] {
        if let Some(s) = err.get(field).and_then(Value::as_str) {
            facts.codes.push(s.to_owned());
        }
    }
    if let Some(details) = err.get("details").and_then(Value::as_array) {
        read_gemini_details(details, &mut facts);
    }
    let spend_codes = [
        "insufficient_quota",
        "enforced_spend_limit_reached",
        "billing_hard_limit_reached",
        "spend_limit_reached",
    ];
    facts.spend_cap = facts
        .codes
        .iter()
        .any(|c| spend_codes.contains(&c.as_str()));
    facts.overloaded = facts.codes.iter().any(|c| c == "overloaded_error");
    facts.bad_key = facts.codes.iter().any(|c| c == "API_KEY_INVALID");
    if let Some(m) = facts.message.clone() {
        read_message(&m, &mut facts);
    }
    facts
}

fn trim_message(m: &str) -> String {
    const MAX: usize = 500;
    let m = m.trim();
    if m.len() <= MAX {
        return m.to_owned();
    }
    let mut end = MAX;
    while !m.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &m[..end])
}

/// The number right after `label` (`Limit 30000` -> 30000), skipping spaces, `:` and commas
/// inside the digits.
fn number_after(text: &str, label: &str) -> Option<u64> {
    let at = text.find(label)? + label.len();
    let digits: String = text[at..]
        .trim_start_matches([' ', ':'])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The dimension and period named in "on tokens per min (TPM)", "requests per day (RPD)" or
/// "tokens per 10s". `None` when the window cannot be told (nothing is learned then).
fn named_window(text: &str) -> Option<(Dimension, Duration)> {
    let lower = text.to_ascii_lowercase();
    let (dimension, at) = if let Some(at) = lower.find("on tokens per ") {
        (Dimension::Tokens, at + "on tokens per ".len())
    } else if let Some(at) = lower.find("on requests per ") {
        (Dimension::Requests, at + "on requests per ".len())
    } else {
        return None;
    };
    let word: String = lower[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect();
    let period = match word.as_str() {
        "min" | "minute" => Duration::from_secs(60),
        "hour" => Duration::from_secs(3600),
        "day" => Duration::from_secs(86_400),
        other => parse_go_duration(other)?,
    };
    Some((dimension, period))
}

/// A limit an error body names; a zero or absurd one is ignored with a warning.
fn learned(dimension: Dimension, amount: u64, period: Duration) -> Option<Limit> {
    match Limit::new(dimension, amount, period) {
        Ok(l) if plausible_limit(&l) => Some(l),
        _ => {
            tracing::warn!(
                %dimension,
                amount,
                period_secs = period.as_secs_f64(),
                "implausible limit in a provider's error body ignored"
            );
            None
        }
    }
}

fn read_message(text: &str, facts: &mut BodyFacts) {
    if let Some(at) = text.find("try again in ") {
        let rest = &text[at + "try again in ".len()..];
        let token: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == 'µ')
            .collect();
        let token = token.trim_end_matches('.');
        if facts.retry_after.is_none() {
            facts.retry_after = parse_go_duration(token);
        }
    }
    let limit = number_after(text, "Limit ");
    if text.contains("Request too large") || text.contains("request too large") {
        facts.too_large = Some((limit, number_after(text, "Requested ")));
        return;
    }
    if let (Some(amount), Some((dimension, period))) = (limit, named_window(text)) {
        if let Some(l) = learned(dimension, amount, period) {
            if !facts.learned.contains(&l) {
                facts.learned.push(l);
            }
        }
    }
}

/// Gemini `error.details[]`: `RetryInfo.retryDelay` ("26s", "0.5s") and `QuotaFailure.violations`
/// whose `quotaId` names the window (`...PerDay...`, `...PerMinute...`) and whose `quotaValue`
/// is the limit.
fn read_gemini_details(details: &[Value], facts: &mut BodyFacts) {
    for d in details {
        let ty = d.get("@type").and_then(Value::as_str).unwrap_or_default();
        if let Some(reason) = d.get("reason").and_then(Value::as_str) {
            facts.codes.push(reason.to_owned());
        }
        if ty.ends_with("RetryInfo") {
            facts.retry_after = d
                .get("retryDelay")
                .and_then(Value::as_str)
                .and_then(parse_go_duration);
        } else if ty.ends_with("QuotaFailure") {
            let violations = d.get("violations").and_then(Value::as_array);
            for v in violations.into_iter().flatten() {
                let id = v.get("quotaId").and_then(Value::as_str).unwrap_or_default();
                let period = if id.contains("PerDay") {
                    facts.daily = true;
                    Duration::from_secs(86_400)
                } else if id.contains("PerMinute") {
                    Duration::from_secs(60)
                } else {
                    continue;
                };
                // Gemini's TPM counts input tokens (`...InputTokensPerModelPerMinute...`).
                let dimension = if id.contains("InputToken") {
                    Dimension::InputTokens
                } else if id.contains("Token") {
                    Dimension::Tokens
                } else {
                    Dimension::Requests
                };
                let value = v.get("quotaValue").and_then(|q| {
                    q.as_u64()
                        .or_else(|| q.as_str().and_then(|s| s.parse().ok()))
                });
                if let Some(l) = value.and_then(|n| learned(dimension, n, period)) {
                    facts.learned.push(l);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn numbers_with_commas_and_colons() {
        assert_eq!(number_after("Limit: 30,000, Used 1", "Limit"), Some(30_000));
        assert_eq!(number_after("no numbers", "Limit "), None);
    }

    #[test]
    fn windows_named_in_messages() {
        let w = |t: &str| named_window(t).map(|(d, p)| (d, p.as_secs()));
        assert_eq!(
            w("on tokens per min (TPM): Limit 1"),
            Some((Dimension::Tokens, 60))
        );
        assert_eq!(
            w("on requests per day (RPD): Limit 1"),
            Some((Dimension::Requests, 86_400))
        );
        assert_eq!(
            w("on tokens per 10s: Limit 1"),
            Some((Dimension::Tokens, 10))
        );
        assert_eq!(w("on tokens per fortnight"), None);
        assert_eq!(w("Limit 5"), None);
    }

    /// Gemini's TPM counts input tokens: its quota id teaches an input-token limit, not one
    /// on input plus output.
    #[test]
    fn gemini_input_token_quota_teaches_input_tokens() {
        let body = r#"{"error":{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateContentInputTokensPerModelPerMinute-FreeTier","quotaValue":"250000"},{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":"10"}]}]}}"#;
        let f = parse(body);
        assert_eq!(
            f.learned,
            vec![
                Limit::new(Dimension::InputTokens, 250_000, Duration::from_secs(60)).unwrap(),
                Limit::new(Dimension::Requests, 10, Duration::from_secs(60)).unwrap(),
            ]
        );
    }

    #[test]
    fn plain_text_body_is_kept_as_message() {
        let f = parse("upstream connect error");
        assert_eq!(f.message.as_deref(), Some("upstream connect error"));
        assert!(f.codes.is_empty());
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(400);
        let f = parse(&long);
        assert!(f.message.unwrap().ends_with("..."));
    }
}
