//! What `massgen-rs usage` prints: records grouped ([`aggregate`]) and rendered as an aligned
//! table, CSV or JSON ([`render`]), and the `--since` argument ([`parse_since`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::store::UsageRecord;

/// How records are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GroupBy {
    /// Per provider and model (`openai/gpt-4o`).
    Model,
    /// Per agent id.
    Agent,
    /// Per key fingerprint (`****1234#1a2b3c4d`; `(none)` for backends without a key).
    Key,
    /// Per UTC day (`2026-01-31`).
    Day,
    /// Per provider.
    Provider,
    /// Per run id.
    Run,
}

impl GroupBy {
    /// The grouping's name (`model`, `agent`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Agent => "agent",
            GroupBy::Key => "key",
            GroupBy::Day => "day",
            GroupBy::Provider => "provider",
            GroupBy::Run => "run",
        }
    }

    fn key_of(self, r: &UsageRecord) -> String {
        match self {
            GroupBy::Model => format!("{}/{}", r.provider, r.model),
            GroupBy::Agent => r.agent.clone(),
            GroupBy::Key if r.key.is_empty() => "(none)".to_owned(),
            GroupBy::Key => r.key.clone(),
            GroupBy::Day => chrono::DateTime::from_timestamp_millis(r.at_ms)
                .map_or_else(|| "?".to_owned(), |t| t.format("%Y-%m-%d").to_string()),
            GroupBy::Provider => r.provider.clone(),
            GroupBy::Run => r.run_id.clone(),
        }
    }
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal, with a total line.
    Table,
    /// Comma-separated values with a header line (one row per group).
    Csv,
    /// A JSON array of objects, one per group.
    Json,
}

/// The figures of one group of calls.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Group {
    /// The group's name (a model, an agent, a key fingerprint, a day, a provider or a run id).
    pub group: String,
    /// Provider calls.
    pub calls: u64,
    /// Calls that succeeded.
    pub ok: u64,
    /// Calls refused with a rate limit.
    pub rate_limited: u64,
    /// Calls that failed otherwise (cancelled ones included).
    pub errors: u64,
    /// Input tokens the providers reported.
    pub input_tokens: u64,
    /// Output tokens the providers reported.
    pub output_tokens: u64,
    /// Cost of the calls whose model has a price, US dollars (`None` when no call had one).
    pub cost_usd: Option<f64>,
    /// Calls whose model had no price: their cost is not in `cost_usd`.
    pub unpriced_calls: u64,
    /// Median latency, milliseconds.
    pub p50_latency_ms: u64,
    /// 95th percentile latency, milliseconds.
    pub p95_latency_ms: u64,
}

/// The value at quantile `q` of sorted `v` (nearest rank); 0 when empty.
fn percentile(v: &[u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let rank = (q * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

fn group_of(name: String, records: &[&UsageRecord]) -> Group {
    let mut g = Group {
        group: name,
        ..Group::default()
    };
    let mut latencies = Vec::with_capacity(records.len());
    let mut cost = 0.0;
    for r in records {
        g.calls += 1;
        match r.outcome.as_str() {
            o if o == "ok" || o.starts_with("ok:") => g.ok += 1,
            "rate_limited" => g.rate_limited += 1,
            _ => g.errors += 1,
        }
        g.input_tokens += r.input_tokens;
        g.output_tokens += r.output_tokens;
        match r.cost_usd {
            Some(c) => cost += c,
            None => g.unpriced_calls += 1,
        }
        latencies.push(r.latency_ms);
    }
    g.cost_usd = (g.unpriced_calls < g.calls).then_some(cost);
    latencies.sort_unstable();
    g.p50_latency_ms = percentile(&latencies, 0.50);
    g.p95_latency_ms = percentile(&latencies, 0.95);
    g
}

/// `records` grouped `by`, groups in name order, and the total of all of them.
pub fn aggregate(records: &[UsageRecord], by: GroupBy) -> (Vec<Group>, Group) {
    let mut groups: BTreeMap<String, Vec<&UsageRecord>> = BTreeMap::new();
    for r in records {
        groups.entry(by.key_of(r)).or_default().push(r);
    }
    let all: Vec<&UsageRecord> = records.iter().collect();
    (
        groups
            .into_iter()
            .map(|(name, rs)| group_of(name, &rs))
            .collect(),
        group_of("total".to_owned(), &all),
    )
}

/// The models without a price among `records` (`provider/model`, sorted, each once).
pub fn unpriced_models(records: &[UsageRecord]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .filter(|r| r.cost_usd.is_none())
        .map(|r| format!("{}/{}", r.provider, r.model))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A cost as shown: `?` when unknown, `0.001234+?` when only part of it is known.
fn cost_text(g: &Group) -> String {
    match (g.cost_usd, g.unpriced_calls) {
        (None, _) => "?".to_owned(),
        (Some(c), 0) => format!("{c:.6}"),
        (Some(c), _) => format!("{c:.6}+?"),
    }
}

const COLUMNS: [&str; 10] = [
    "calls",
    "ok",
    "rate_limited",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "p50_ms",
    "p95_ms",
    "",
];

fn cells(g: &Group) -> Vec<String> {
    vec![
        g.group.clone(),
        g.calls.to_string(),
        g.ok.to_string(),
        g.rate_limited.to_string(),
        g.errors.to_string(),
        g.input_tokens.to_string(),
        g.output_tokens.to_string(),
        cost_text(g),
        g.p50_latency_ms.to_string(),
        g.p95_latency_ms.to_string(),
    ]
}

/// Quotes a CSV field when it needs it.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The report of `records` grouped `by`, in `format`. `unpriced` lists the models without a
/// price (for the table's footnote).
pub fn render(records: &[UsageRecord], by: GroupBy, format: Format) -> String {
    let (groups, total) = aggregate(records, by);
    let mut out = String::new();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = groups
                .iter()
                .map(|g| {
                    let mut v = serde_json::to_value(g).unwrap_or_default();
                    if let Some(m) = v.as_object_mut() {
                        m.insert("by".to_owned(), serde_json::json!(by.as_str()));
                    }
                    v
                })
                .collect();
            out = serde_json::to_string_pretty(&rows).unwrap_or_else(|_| "[]".to_owned());
            out.push('\n');
        }
        Format::Csv => {
            out.push_str(&format!(
                "{},calls,ok,rate_limited,errors,input_tokens,output_tokens,cost_usd,\
                 unpriced_calls,p50_latency_ms,p95_latency_ms\n",
                by.as_str()
            ));
            for g in &groups {
                let cost = g.cost_usd.map(|c| format!("{c:.6}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{}",
                    csv_field(&g.group),
                    g.calls,
                    g.ok,
                    g.rate_limited,
                    g.errors,
                    g.input_tokens,
                    g.output_tokens,
                    cost,
                    g.unpriced_calls,
                    g.p50_latency_ms,
                    g.p95_latency_ms
                );
            }
        }
        Format::Table => {
            let mut header: Vec<String> = vec![by.as_str().to_owned()];
            header.extend(COLUMNS[..9].iter().map(|s| (*s).to_owned()));
            let mut rows: Vec<Vec<String>> = vec![header];
            rows.extend(groups.iter().map(cells));
            rows.push(cells(&total));
            let widths: Vec<usize> = (0..rows[0].len())
                .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
                .collect();
            let last = rows.len() - 1;
            for (n, row) in rows.iter().enumerate() {
                if n == last {
                    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
                    let _ = writeln!(out, "{}", rule.join("  "));
                }
                let line: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .enumerate()
                    .map(|(i, (cell, w))| {
                        if i == 0 {
                            format!("{cell:<w$}")
                        } else {
                            format!("{cell:>w$}")
                        }
                    })
                    .collect();
                let _ = writeln!(out, "{}", line.join("  ").trim_end());
            }
            if total.unpriced_calls > 0 {
                let _ = writeln!(
                    out,
                    "\n? {} call(s) used models without a price in the table ({}): their cost is \
                     not included. Add them with `rate_limit.prices` (see docs/prices.md).",
                    total.unpriced_calls,
                    unpriced_models(records).join(", ")
                );
            }
        }
    }
    out
}

/// `--since`: a duration back from `now_ms` (`30m`, `12h`, `1d`, `7d`, `2w`, `90s`) or an
/// RFC 3339 instant (`2026-01-31T00:00:00Z`); returns wall-clock milliseconds.
pub fn parse_since(text: &str, now_ms: i64) -> Result<i64, String> {
    let t = text.trim();
    let bad = || {
        format!(
            "--since `{t}` is neither a duration like 30m, 12h, 1d, 7d nor an instant like \
             2026-01-31T00:00:00Z"
        )
    };
    if let Some(unit) = t.chars().last().filter(char::is_ascii_alphabetic) {
        let number = &t[..t.len() - unit.len_utf8()];
        if let Ok(n) = number.parse::<i64>() {
            let unit_ms: i64 = match unit {
                's' => 1_000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 7 * 86_400_000,
                _ => return Err(bad()),
            };
            if n < 0 {
                return Err(bad());
            }
            return Ok(now_ms.saturating_sub(n.saturating_mul(unit_ms)));
        }
    }
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.timestamp_millis())
        .map_err(|_| bad())
}

/// An instant as the report names it: `2026-01-31 12:00:00 UTC`.
pub fn instant_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

#[cfg(test)]
mod tests;
