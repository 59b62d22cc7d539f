//! The mock server's limits: exact sliding windows per (key, model), and the YAML they load from.
//!
//! Two YAML shapes are accepted (unknown keys inside an entry are ignored, so a project
//! `rate_limits.yaml` loads unchanged):
//!
//! ```yaml
//! # 1. rate_limits.yaml: provider -> model -> limits (providers are merged: the mock serves all)
//! gemini:
//!   gemini-2.5-flash: {rpm: 10, tpm: 250000, rpd: 250}
//!   default: {rpm: 5}
//! # 2. flat: model -> limits, with any window
//! default: {requests: 120, tokens: 20000, period_secs: 10}
//! gpt-4o-mini: {rpm: 3}
//! ```
//!
//! Limit keys: `rpm`, `tpm`, `rpd`, `tpd`, and `requests` / `tokens` counted over `period_secs`
//! (or `window_secs`, default 60). A model without an entry uses `default`; with neither, it is
//! unlimited. Providers' sections are merged in file order (the mock serves every dialect with
//! one table), so a model or `default` named twice keeps its last entry.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde_yaml::Value;

use crate::quota::{Dimension, Limit};

/// Limits per model name (`default` for the rest), each enforced per (key, model).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MockLimits {
    /// Model name (or `default`) -> limits.
    pub models: BTreeMap<String, Vec<Limit>>,
}

/// Why a limits file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("mock limits: {0}")]
pub struct MockLimitsError(pub String);

impl MockLimits {
    /// No limits at all.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// The same `limits` for every model.
    pub fn uniform(limits: Vec<Limit>) -> Self {
        let mut models = BTreeMap::new();
        models.insert("default".to_owned(), limits);
        Self { models }
    }

    /// Adds (or replaces) the limits of one model.
    pub fn with_model(mut self, model: &str, limits: Vec<Limit>) -> Self {
        self.models.insert(model.to_owned(), limits);
        self
    }

    /// The limits that apply to `model`.
    pub fn for_model(&self, model: &str) -> &[Limit] {
        self.models
            .get(model)
            .or_else(|| self.models.get("default"))
            .map_or(&[], Vec::as_slice)
    }

    /// Parses either YAML shape (see the module docs).
    pub fn parse_yaml(text: &str) -> Result<Self, MockLimitsError> {
        let root: Value =
            serde_yaml::from_str(text).map_err(|e| MockLimitsError(format!("not YAML: {e}")))?;
        let Value::Mapping(top) = root else {
            return Err(MockLimitsError("the top level must be a mapping".into()));
        };
        let mut out = Self::default();
        for (name, value) in &top {
            let name = key_name(name)?;
            let Value::Mapping(entry) = value else {
                return Err(MockLimitsError(format!("`{name}` must be a mapping")));
            };
            if is_limit_entry(entry) {
                out.models.insert(name.clone(), parse_entry(&name, entry)?);
                continue;
            }
            for (model, v) in entry {
                let model = key_name(model)?;
                if let Value::Mapping(m) = v {
                    let path = format!("{name}.{model}");
                    out.models.insert(model, parse_entry(&path, m)?);
                }
            }
        }
        Ok(out)
    }
}

const LIMIT_KEYS: [&str; 6] = ["rpm", "tpm", "rpd", "tpd", "requests", "tokens"];

fn key_name(v: &Value) -> Result<String, MockLimitsError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| MockLimitsError(format!("keys must be strings, found {v:?}")))
}

fn is_limit_entry(m: &serde_yaml::Mapping) -> bool {
    m.keys()
        .any(|k| k.as_str().is_some_and(|k| LIMIT_KEYS.contains(&k)))
}

fn parse_entry(path: &str, m: &serde_yaml::Mapping) -> Result<Vec<Limit>, MockLimitsError> {
    let get = |k: &str| -> Result<Option<u64>, MockLimitsError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                MockLimitsError(format!("{path}.{k} must be a whole number, found {v:?}"))
            }),
        }
    };
    let period = Duration::from_secs(get("period_secs")?.or(get("window_secs")?).unwrap_or(60));
    let minute = Duration::from_secs(60);
    let day = Duration::from_secs(86_400);
    let mut limits = Vec::new();
    for (k, dim, p) in [
        ("rpm", Dimension::Requests, minute),
        ("tpm", Dimension::Tokens, minute),
        ("rpd", Dimension::Requests, day),
        ("tpd", Dimension::Tokens, day),
        ("requests", Dimension::Requests, period),
        ("tokens", Dimension::Tokens, period),
    ] {
        if let Some(n) = get(k)? {
            let l =
                Limit::new(dim, n, p).map_err(|e| MockLimitsError(format!("{path}.{k}: {e}")))?;
            limits.push(l);
        }
    }
    Ok(limits)
}

/// Exact sliding log of one limit: every admitted `(time, weight)` still inside the window.
#[derive(Debug)]
struct Window {
    limit: Limit,
    log: VecDeque<(Instant, u64)>,
    used: u64,
}

impl Window {
    fn expire(&mut self, now: Instant) {
        while let Some(&(t, w)) = self.log.front() {
            if now.saturating_duration_since(t) >= self.limit.period {
                self.used -= w;
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    /// How long until `weight` fits (zero when it fits now; `None` when it never can).
    fn wait_for(&self, weight: u64, now: Instant) -> Option<Duration> {
        let cap = self.limit.amount.get();
        if weight > cap {
            return None;
        }
        if self.used + weight <= cap {
            return Some(Duration::ZERO);
        }
        let mut freed = 0;
        for &(t, w) in &self.log {
            freed += w;
            if self.used - freed + weight <= cap {
                return Some((t + self.limit.period).saturating_duration_since(now));
            }
        }
        Some(self.limit.period)
    }
}

/// What the windows said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted and recorded.
    Admitted,
    /// Refused by `limit`; retry after `retry_after` (`None`: the request can never fit).
    Refused {
        /// The limit that refused it.
        limit: Limit,
        /// How much of it is used in the current window.
        used: u64,
        /// What the request asked for.
        requested: u64,
        /// When it would fit.
        retry_after: Option<Duration>,
    },
}

/// The windows of one (key, model).
#[derive(Debug, Default)]
pub struct Windows {
    windows: Vec<Window>,
}

impl Windows {
    /// Fresh windows for `limits`.
    pub fn new(limits: &[Limit]) -> Self {
        Self {
            windows: limits
                .iter()
                .map(|l| Window {
                    limit: *l,
                    log: VecDeque::new(),
                    used: 0,
                })
                .collect(),
        }
    }

    /// Admits a request of `tokens` at `now` in every window, or in none.
    pub fn try_admit(&mut self, tokens: u64, now: Instant) -> Verdict {
        let mut worst: Option<Verdict> = None;
        for w in &mut self.windows {
            w.expire(now);
            let weight = match w.limit.dimension {
                Dimension::Requests => 1,
                Dimension::Tokens | Dimension::InputTokens | Dimension::OutputTokens => tokens,
            };
            let wait = w.wait_for(weight, now);
            if wait != Some(Duration::ZERO) {
                let longer = match &worst {
                    Some(Verdict::Refused { retry_after, .. }) => match (wait, retry_after) {
                        (None, _) => true,
                        (Some(_), None) => false,
                        (Some(a), Some(b)) => a > *b,
                    },
                    _ => true,
                };
                if longer {
                    worst = Some(Verdict::Refused {
                        limit: w.limit,
                        used: w.used,
                        requested: weight,
                        retry_after: wait,
                    });
                }
            }
        }
        if let Some(v) = worst {
            return v;
        }
        for w in &mut self.windows {
            let weight = match w.limit.dimension {
                Dimension::Requests => 1,
                Dimension::Tokens | Dimension::InputTokens | Dimension::OutputTokens => tokens,
            };
            w.log.push_back((now, weight));
            w.used += weight;
        }
        Verdict::Admitted
    }

    /// `(limit, remaining, resets_in)` of every window at `now`, for rate-limit headers.
    pub fn remaining(&mut self, now: Instant) -> Vec<(Limit, u64, Duration)> {
        self.windows
            .iter_mut()
            .map(|w| {
                w.expire(now);
                let reset = w.log.front().map_or(Duration::ZERO, |(t, _)| {
                    (*t + w.limit.period).saturating_duration_since(now)
                });
                (w.limit, w.limit.amount.get().saturating_sub(w.used), reset)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_yaml_shapes() {
        let project = "gemini:\n  gemini-2.5-flash: {rpm: 10, tpm: 250000, rpd: 250, concurrency: 2}\n  default: {rpm: 5}\n";
        let l = MockLimits::parse_yaml(project).unwrap();
        assert_eq!(l.for_model("gemini-2.5-flash").len(), 3);
        assert_eq!(l.for_model("other")[0].amount.get(), 5);
        let flat = "default: {requests: 120, tokens: 20000, period_secs: 10}\n";
        let l = MockLimits::parse_yaml(flat).unwrap();
        let got = l.for_model("any");
        assert_eq!(got[0].period, Duration::from_secs(10));
        assert_eq!(got[1].dimension, Dimension::Tokens);
        assert!(MockLimits::parse_yaml("default: {rpm: -1}").is_err());
        assert!(MockLimits::parse_yaml("- 1").is_err());
        assert!(MockLimits::unlimited().for_model("x").is_empty());
    }

    #[test]
    fn the_project_limits_file_shape_loads() {
        let text = "gemini:\n  gemini-2.5-pro:\n    rpm: 2\n    tpm: 120000\n    rpd: 48\n    startup_cooldown: 10s\n    scope: per_account\n    daily_reset: \"00:00 America/Los_Angeles\"\nsimulated:\n  default:\n    rpm: 120\n    concurrency: 2\n    pacing: true\n";
        let l = MockLimits::parse_yaml(text).unwrap();
        assert_eq!(l.for_model("gemini-2.5-pro").len(), 3);
        assert_eq!(l.for_model("other")[0].amount.get(), 120);
    }

    #[test]
    fn exact_sliding_window() {
        let limit = Limit::new(Dimension::Requests, 2, Duration::from_secs(10)).unwrap();
        let mut w = Windows::new(&[limit]);
        let t0 = Instant::now();
        assert_eq!(w.try_admit(0, t0), Verdict::Admitted);
        assert_eq!(
            w.try_admit(0, t0 + Duration::from_secs(4)),
            Verdict::Admitted
        );
        match w.try_admit(0, t0 + Duration::from_secs(9)) {
            Verdict::Refused { retry_after, .. } => {
                assert_eq!(retry_after, Some(Duration::from_secs(1)));
            }
            v => unreachable!("{v:?}"),
        }
        assert_eq!(
            w.try_admit(0, t0 + Duration::from_secs(10)),
            Verdict::Admitted
        );
        let rem = w.remaining(t0 + Duration::from_secs(10));
        assert_eq!(rem[0].1, 0);
        assert_eq!(rem[0].2, Duration::from_secs(4));
    }

    #[test]
    fn tokens_all_or_nothing_and_never_fitting() {
        let r = Limit::new(Dimension::Requests, 10, Duration::from_secs(10)).unwrap();
        let t = Limit::new(Dimension::Tokens, 100, Duration::from_secs(10)).unwrap();
        let mut w = Windows::new(&[r, t]);
        let t0 = Instant::now();
        assert_eq!(w.try_admit(80, t0), Verdict::Admitted);
        assert!(matches!(
            w.try_admit(30, t0),
            Verdict::Refused {
                used: 80,
                requested: 30,
                ..
            }
        ));
        assert_eq!(w.remaining(t0)[0].1, 9, "a refused request is not counted");
        assert!(matches!(
            w.try_admit(101, t0),
            Verdict::Refused {
                retry_after: None,
                ..
            }
        ));
    }
}
