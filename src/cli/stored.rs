//! `--validate`'s account of the quota state store: per scope of the team, what the store holds
//! now (used in each window of the scope's limits, cooldowns with their end, learned limits).
//! Reading it creates no file and takes no write lock.

use std::fmt::Write as _;

use crate::config::{LimitsTable, TeamConfig};
use crate::quota::{Dimension, Limit, ScopeKind};
use crate::store::{QuotaStore, StoreStatus};
use crate::store::{ScopeStored, SqliteStore, StoreSpec, WindowUse, rfc3339};

/// The scopes the team's calls count against (as a run registers them), with their limits.
pub fn team_scopes(team: &TeamConfig, table: &LimitsTable) -> Vec<(String, Vec<Limit>)> {
    let mut out: Vec<(String, Vec<Limit>)> = Vec::new();
    let mut add = |name: String, limits: &[Limit]| {
        if !out.iter().any(|(n, _)| *n == name) {
            out.push((name, limits.to_vec()));
        }
    };
    for agent in &team.agents {
        if agent.backend.enable_rate_limit == Some(false) {
            continue;
        }
        for b in agent.backends() {
            let provider = b.kind.limits_provider();
            let limits = table.lookup(provider, &b.model);
            if limits.scope == ScopeKind::PerKey && !b.api_keys.is_empty() {
                for key in &b.api_keys {
                    let name = format!("{provider}/{}/key:{}", b.model, key.short_id());
                    add(name, &limits.limits);
                }
            } else {
                add(format!("{provider}/{}", b.model), &limits.limits);
            }
            if let Some(group) = &limits.shared_key {
                let group_limits = table.shared_group(group).map(|g| g.limits);
                add(format!("shared:{group}"), &group_limits.unwrap_or_default());
            }
        }
    }
    out
}

/// What `spec` holds now (`now_ms`) for each of `scopes`, one block per scope.
pub fn describe(spec: &StoreSpec, scopes: &[(String, Vec<Limit>)], now_ms: i64) -> String {
    let mut out = String::from("\nStored quota state:");
    let opened = match spec {
        StoreSpec::Memory => {
            out.push_str(" none (in memory: nothing is kept between runs)\n");
            return out;
        }
        StoreSpec::Sqlite(path) => {
            SqliteStore::open_existing(path).map(|s| s.map(|s| Box::new(s) as Box<dyn QuotaStore>))
        }
        StoreSpec::Redis { .. } => spec.open().map(Some),
    };
    let mut store = match opened {
        Ok(Some(store)) => store,
        Ok(None) => {
            let _ = writeln!(out, " no state recorded yet ({spec} does not exist)");
            return out;
        }
        Err(e) => {
            let _ = writeln!(out, " cannot be read: {e}");
            return out;
        }
    };
    let periods: Vec<i64> = scopes
        .iter()
        .flat_map(|(_, l)| l.iter().map(period_ms))
        .collect();
    match store.status(now_ms, &periods) {
        Ok(status) => describe_status(&mut out, &status, scopes, now_ms),
        Err(e) => {
            let _ = writeln!(out, " cannot be read: {e}");
        }
    }
    out
}

fn describe_status(
    out: &mut String,
    status: &StoreStatus,
    scopes: &[(String, Vec<Limit>)],
    now_ms: i64,
) {
    let _ = writeln!(out, " {} at {}", status.store, rfc3339(now_ms));
    for (name, limits) in scopes {
        let Some(s) = status.scope(name) else {
            let _ = writeln!(out, "  {name}: nothing recorded");
            continue;
        };
        let used: Vec<String> = limits
            .iter()
            .map(|l| {
                let w = s.window(period_ms(l)).cloned().unwrap_or_default();
                format!(
                    "{}/{} {} in the last {}",
                    grouped(used_of(&w, l.dimension)),
                    grouped(l.amount.get()),
                    dimension_words(l.dimension),
                    period_words(period_ms(l))
                )
            })
            .collect();
        let used = if used.is_empty() {
            format!("{} admissions kept (no limits)", grouped(s.admissions))
        } else {
            used.join(", ")
        };
        let _ = writeln!(out, "  {name}: {used}");
        describe_scope_extras(out, s);
    }
}

fn describe_scope_extras(out: &mut String, s: &ScopeStored) {
    for c in &s.cooldowns {
        let _ = writeln!(out, "    cooling down until {} ({})", c.until, c.reason);
    }
    if let Some(until) = s.startup_until_ms {
        let _ = writeln!(out, "    startup cooldown until {}", rfc3339(until));
    }
    for l in &s.learned {
        let words = match l.dimension.as_str() {
            "input_tokens" => "input tokens",
            "output_tokens" => "output tokens",
            other => other,
        };
        let _ = writeln!(
            out,
            "    learned from the provider: {} {words} per {}",
            grouped(l.amount),
            period_words(l.period_ms)
        );
    }
}

fn period_ms(l: &Limit) -> i64 {
    i64::try_from(l.period.as_millis()).unwrap_or(i64::MAX)
}

fn used_of(w: &WindowUse, d: Dimension) -> u64 {
    match d {
        Dimension::Requests => w.requests,
        Dimension::Tokens => w.input_tokens.saturating_add(w.output_tokens),
        Dimension::InputTokens => w.input_tokens,
        Dimension::OutputTokens => w.output_tokens,
    }
}

fn dimension_words(d: Dimension) -> &'static str {
    match d {
        Dimension::Requests => "requests",
        Dimension::Tokens => "tokens",
        Dimension::InputTokens => "input tokens",
        Dimension::OutputTokens => "output tokens",
    }
}

/// `60 s`, `24 h`, `10 min`, `1500 ms`.
fn period_words(ms: i64) -> String {
    match ms {
        ms if ms % 3_600_000 == 0 && ms >= 3_600_000 => format!("{} h", ms / 3_600_000),
        ms if ms % 60_000 == 0 && ms > 60_000 => format!("{} min", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{} s", ms / 1000),
        ms => format!("{ms} ms"),
    }
}

/// `250000` as `250,000`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::num::NonZeroU64;
    use std::time::Duration;

    use super::*;
    use crate::store::Write;

    #[test]
    fn numbers_and_periods_read_well() {
        assert_eq!(grouped(250_000), "250,000");
        assert_eq!(grouped(41), "41");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(period_words(60_000), "60 s");
        assert_eq!(period_words(86_400_000), "24 h");
        assert_eq!(period_words(600_000), "10 min");
        assert_eq!(period_words(1_500), "1500 ms");
    }

    #[test]
    fn a_missing_file_is_not_created_and_a_kept_one_is_described() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let spec = StoreSpec::Sqlite(path.clone());
        let scope = "gemini/gemini-2.5-pro".to_owned();
        let limits = vec![
            Limit::rpm(NonZeroU64::new(5).unwrap()),
            Limit::new(Dimension::InputTokens, 250_000, Duration::from_secs(60)).unwrap(),
            Limit::rpd(NonZeroU64::new(100).unwrap()),
        ];
        let scopes = vec![(scope.clone(), limits)];
        let now = 1_770_000_000_000;
        let text = describe(&spec, &scopes, now);
        assert!(text.contains("no state recorded yet"), "{text}");
        assert!(!path.exists());
        let mut store = SqliteStore::open(&path).unwrap();
        store.begin().unwrap();
        for (at, input) in [(now - 3_600_000, 7), (now - 30_000, 20), (now - 1_000, 21)] {
            let admit = Write::Admit {
                scope: scope.clone(),
                at_ms: at,
                input,
                output: 3,
            };
            store.write(&admit).unwrap();
        }
        let cooldown = Write::Cooldown {
            scope: scope.clone(),
            until_ms: now + 30_000,
            reason: "429 rate limited".into(),
        };
        store.write(&cooldown).unwrap();
        store.commit(now).unwrap();
        // Another process holds the write lock meanwhile: reading does not wait for it.
        let mut other = SqliteStore::open(&path).unwrap();
        other.begin().unwrap();
        let text = describe(&spec, &scopes, now);
        other.abort();
        assert!(
            text.contains(
                "gemini/gemini-2.5-pro: 2/5 requests in the last 60 s, \
                 41/250,000 input tokens in the last 60 s, 3/100 requests in the last 24 h"
            ),
            "{text}"
        );
        assert!(
            text.contains("cooling down until 2026-02-02T02:40:30.000Z (429 rate limited)"),
            "{text}"
        );
        // With no process left on the file (its write-ahead log folded back and removed).
        drop((store, other));
        assert_eq!(describe(&spec, &scopes, now), text);
        let other_scope = vec![("openai/gpt-4o".to_owned(), Vec::new())];
        assert!(describe(&spec, &other_scope, now).contains("openai/gpt-4o: nothing recorded"));
    }
}
