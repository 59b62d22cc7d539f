//! `GET /usage/series?since=24h&bucket=5m`: the usage ledger's calls, tokens and cost summed per
//! time bucket (for the dashboard's charts), with the totals per model.
//!
//! `since` takes what `massgen-rs usage --since` takes (`30m`, `24h`, `7d`, an RFC 3339
//! instant; default `24h`); `bucket` a duration (`10s`, `5m`, `1h`; default: about 60 buckets
//! over the span, at least 10 s). Only buckets holding calls are listed, oldest first.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::store::{StoreSpec, UsageRecord};
use crate::usage::report::parse_since;

/// At most this many buckets per answer (a smaller bucket is widened).
pub const MAX_BUCKETS: i64 = 2_000;

/// Sums of the calls that ended in one bucket (or a model's, or all of them).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageSums {
    /// Calls recorded.
    pub calls: u64,
    /// Calls whose outcome is not `ok` (rate limited, failed, cancelled).
    pub failed: u64,
    /// Input tokens the providers reported.
    pub input_tokens: u64,
    /// Output tokens the providers reported.
    pub output_tokens: u64,
    /// Cost of the priced calls, in USD.
    pub cost_usd: f64,
}

impl UsageSums {
    fn add(&mut self, r: &UsageRecord) {
        self.calls += 1;
        if !r.outcome.starts_with("ok") {
            self.failed += 1;
        }
        self.input_tokens += r.input_tokens;
        self.output_tokens += r.output_tokens;
        self.cost_usd += r.cost_usd.unwrap_or(0.0);
    }
}

/// One bucket of the series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsagePoint {
    /// The bucket's start (ms since the epoch).
    pub t_ms: i64,
    /// What ended in it.
    #[serde(flatten)]
    pub sums: UsageSums,
}

/// The answer of `/usage/series`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSeries {
    /// The ledger read (`SQLite file ...`, `Redis ...`).
    pub store: String,
    /// The span's start (ms since the epoch).
    pub since_ms: i64,
    /// When it was read (ms since the epoch).
    pub until_ms: i64,
    /// The bucket width in ms.
    pub bucket_ms: i64,
    /// The buckets holding calls, oldest first.
    pub points: Vec<UsagePoint>,
    /// Per `<provider>/<model>`.
    pub models: BTreeMap<String, UsageSums>,
    /// Every call of the span.
    pub total: UsageSums,
}

/// `records` (ended at or after `since_ms`) summed into buckets of `bucket_ms` aligned on
/// multiples of `bucket_ms` since the epoch (so two reads with the same bucket agree).
pub fn series(
    store: String,
    records: &[UsageRecord],
    since_ms: i64,
    until_ms: i64,
    bucket_ms: i64,
) -> UsageSeries {
    let bucket_ms = bucket_ms.max(1);
    let mut buckets: BTreeMap<i64, UsageSums> = BTreeMap::new();
    let mut models: BTreeMap<String, UsageSums> = BTreeMap::new();
    let mut total = UsageSums::default();
    for r in records.iter().filter(|r| r.at_ms >= since_ms) {
        let t = r.at_ms.div_euclid(bucket_ms) * bucket_ms;
        buckets.entry(t).or_default().add(r);
        models
            .entry(format!("{}/{}", r.provider, r.model))
            .or_default()
            .add(r);
        total.add(r);
    }
    UsageSeries {
        store,
        since_ms,
        until_ms,
        bucket_ms,
        points: buckets
            .into_iter()
            .map(|(t_ms, sums)| UsagePoint { t_ms, sums })
            .collect(),
        models,
        total,
    }
}

/// A duration like `10s`, `5m`, `1h`, `1d` in ms.
fn parse_bucket(text: &str) -> Result<i64, String> {
    let now = 0;
    parse_since(text, now)
        .ok()
        .map(|ms| -ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| {
            format!(
                "bucket `{}` is not a duration like 10s, 5m, 1h",
                text.trim()
            )
        })
}

/// The query of `/usage/series`.
#[derive(Debug, Default, PartialEq)]
struct SeriesQuery {
    since: Option<String>,
    bucket: Option<String>,
}

impl SeriesQuery {
    /// `since=...&bucket=...` (percent-decoded; other fields ignored).
    fn parse(query: &str) -> SeriesQuery {
        let mut q = SeriesQuery::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            match name {
                "since" => q.since = Some(value),
                "bucket" => q.bucket = Some(value),
                _ => {}
            }
        }
        q
    }
}

/// Percent-decoding of a query value (`+` is a space); bad escapes are kept as they are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answers `/usage/series` from the ledger kept in `spec` (`None`: no ledger, 404).
pub async fn handler(State(spec): State<Option<StoreSpec>>, uri: Uri) -> Response {
    let q = SeriesQuery::parse(uri.query().unwrap_or_default());
    let bad = |m: String| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({"error": m})),
        )
            .into_response()
    };
    let Some(spec) = spec.filter(|s| !matches!(s, StoreSpec::Memory)) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({
                "error": "no usage ledger: the quota state is kept in memory"
            })),
        )
            .into_response();
    };
    let now = chrono::Utc::now().timestamp_millis();
    let since = match parse_since(q.since.as_deref().unwrap_or("24h"), now) {
        Ok(ms) => ms.min(now),
        Err(m) => return bad(m.replace("--since", "since")),
    };
    let span = (now - since).max(1);
    let bucket = match q.bucket.as_deref() {
        Some(b) => match parse_bucket(b) {
            Ok(ms) => ms,
            Err(m) => return bad(m),
        },
        None => (span / 60).max(10_000),
    };
    let bucket = bucket.max(span / MAX_BUCKETS + 1);
    let describe = spec.to_string();
    let read = tokio::task::spawn_blocking(move || -> Result<Vec<UsageRecord>, String> {
        if let StoreSpec::Sqlite(path) = &spec {
            // Reading must not create a state file where no call was ever recorded.
            if !path.exists() {
                return Ok(Vec::new());
            }
        }
        match spec.open_usage() {
            Ok(Some(mut store)) => store.since(since).map_err(|e| e.to_string()),
            Ok(None) => Ok(Vec::new()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    match read {
        Ok(Ok(records)) => {
            axum::Json(series(describe, &records, since, now, bucket)).into_response()
        }
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"error": format!("cannot read the usage ledger: {e}")})),
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rec(at_ms: i64, model: &str, outcome: &str, cost: Option<f64>) -> UsageRecord {
        UsageRecord {
            at_ms,
            run_id: "r".into(),
            agent: "a".into(),
            provider: "openai".into(),
            model: model.into(),
            key: String::new(),
            input_tokens: 10,
            output_tokens: 5,
            cost_usd: cost,
            outcome: outcome.into(),
            latency_ms: 1,
        }
    }

    #[test]
    fn records_are_summed_per_bucket_and_model() {
        let records = [
            rec(500, "m", "ok", Some(0.5)),
            rec(1_000, "m", "ok", Some(0.25)),
            rec(1_999, "n", "rate_limited", None),
            rec(4_000, "m", "ok", Some(1.0)),
            rec(5_000, "m", "ok", Some(9.0)),
        ];
        let s = series("x".into(), &records[1..], 1_000, 5_000, 1_000);
        let t: Vec<(i64, u64)> = s.points.iter().map(|p| (p.t_ms, p.sums.calls)).collect();
        assert_eq!(t, [(1_000, 2), (4_000, 1), (5_000, 1)]);
        let wide = series("x".into(), &records, 500, 5_000, 2_000);
        let t: Vec<(i64, u64)> = wide.points.iter().map(|p| (p.t_ms, p.sums.calls)).collect();
        assert_eq!(
            t,
            [(0, 3), (4_000, 2)],
            "buckets sit on multiples of their width"
        );
        assert_eq!(s.points[0].sums.failed, 1);
        assert_eq!(s.points[0].sums.cost_usd, 0.25);
        assert_eq!(s.total.calls, 4);
        assert_eq!(s.total.input_tokens, 40);
        assert_eq!(s.models["openai/m"].calls, 3);
        assert_eq!(s.models["openai/n"].failed, 1);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["points"][0]["calls"], 2, "{json}");
    }

    #[test]
    fn buckets_parse_like_durations() {
        assert_eq!(parse_bucket("10s"), Ok(10_000));
        assert_eq!(parse_bucket("5m"), Ok(300_000));
        assert!(parse_bucket("0s").is_err());
        assert!(parse_bucket("soon").is_err());
    }

    #[test]
    fn the_query_is_percent_decoded() {
        let q = SeriesQuery::parse("since=2026-01-31T00%3A00%3A00Z&bucket=5m&x=%zz");
        assert_eq!(q.since.as_deref(), Some("2026-01-31T00:00:00Z"));
        assert_eq!(q.bucket.as_deref(), Some("5m"));
        assert_eq!(decode("%zz+a%4"), "%zz a%4");
    }
}
