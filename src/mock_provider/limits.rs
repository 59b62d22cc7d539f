//! The mock server's limits: exact sliding windows per (key, model), and the YAML they load from.
//!
//! Two YAML shapes are accepted (unknown keys inside an entry are ignored, so a project
//! `rate_limits.yaml` loads unchanged):
//!
//! ```yaml
//! # 1. rate_limits.yaml: provider -> model -> limits (providers are merged: the mock serves all)
//! gemini:
//!   gemini-2.5-flash: {rpm: 10, tpm: 250000, rpd: 250}
//!   default: {rpm: 5, windows: [{requests: 2, per: 10s}]}
//! # 2. flat: model -> limits, with any window
//! default: {requests: 120, tokens: 20000, period_secs: 10}
//! claude-sonnet-4: {rpm: 50, itpm: 30000, otpm: 8000}
//! ```
//!
//! Limit keys: `rpm`, `tpm`, `rpd`, `tpd`, `itpm` (input tokens per minute), `otpm` (output
//! tokens per minute); `requests` / `tokens` / `input_tokens` / `output_tokens` counted over
//! `period_secs` (or `window_secs`, default 60); and `windows: [{requests|tokens|input_tokens|
//! output_tokens: N, per: 10s}]` as in the project's limits files (`per` takes `ms`, `s`, `m`,
//! `h`, `d` or bare seconds). A model without an entry uses `default`; with neither, it is
//! unlimited. Providers' sections are merged in file order, so a model or `default` named twice
//! keeps its last entry.
//!
//! What one request weighs in each dimension is the caller's [`Charge`]; entries can be
//! re-weighed later ([`Windows::settle`]) for providers that adjust a charge when the answer
//! completes (Anthropic's output tokens).

use std::collections::{BTreeMap, VecDeque};
use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use serde_yaml::Value;

use crate::quota::{Dimension, Limit};

/// What a mock limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MockDimension {
    /// Requests (each weighs 1).
    Requests,
    /// Tokens, as the dialect counts them (see the module docs of `mock_provider`).
    Tokens,
    /// Input tokens only (Anthropic's ITPM).
    InputTokens,
    /// Output tokens only (Anthropic's OTPM).
    OutputTokens,
}

impl MockDimension {
    /// `requests`, `tokens`, `input_tokens` or `output_tokens`.
    pub fn as_str(self) -> &'static str {
        match self {
            MockDimension::Requests => "requests",
            MockDimension::Tokens => "tokens",
            MockDimension::InputTokens => "input_tokens",
            MockDimension::OutputTokens => "output_tokens",
        }
    }
}

/// One enforced limit: at most `amount` of `dimension` in any trailing `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MockLimit {
    /// What it counts.
    pub dimension: MockDimension,
    /// How much.
    pub amount: NonZeroU64,
    /// Over which trailing window.
    pub period: Duration,
}

impl MockLimit {
    /// A limit; `None` when `amount` is zero or `period` is zero.
    pub fn new(dimension: MockDimension, amount: u64, period: Duration) -> Option<Self> {
        let amount = NonZeroU64::new(amount)?;
        (!period.is_zero()).then_some(Self {
            dimension,
            amount,
            period,
        })
    }
}

impl From<Limit> for MockLimit {
    fn from(l: Limit) -> Self {
        Self {
            dimension: match l.dimension {
                Dimension::Requests => MockDimension::Requests,
                Dimension::Tokens => MockDimension::Tokens,
                Dimension::InputTokens => MockDimension::InputTokens,
                Dimension::OutputTokens => MockDimension::OutputTokens,
            },
            amount: l.amount,
            period: l.period,
        }
    }
}

/// Limits per model name (`default` for the rest), each enforced per (key, model).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MockLimits {
    /// Model name (or `default`) -> limits.
    pub models: BTreeMap<String, Vec<MockLimit>>,
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
        Self::uniform_mock(limits.into_iter().map(MockLimit::from).collect())
    }

    /// The same `limits` (any [`MockDimension`]) for every model.
    pub fn uniform_mock(limits: Vec<MockLimit>) -> Self {
        let mut models = BTreeMap::new();
        models.insert("default".to_owned(), limits);
        Self { models }
    }

    /// Adds (or replaces) the limits of one model.
    pub fn with_model(self, model: &str, limits: Vec<Limit>) -> Self {
        self.with_model_mock(model, limits.into_iter().map(MockLimit::from).collect())
    }

    /// Adds (or replaces) the limits (any [`MockDimension`]) of one model.
    pub fn with_model_mock(mut self, model: &str, limits: Vec<MockLimit>) -> Self {
        self.models.insert(model.to_owned(), limits);
        self
    }

    /// The limits that apply to `model`.
    pub fn for_model(&self, model: &str) -> &[MockLimit] {
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

const MINUTE: Duration = Duration::from_secs(60);
const DAY: Duration = Duration::from_secs(86_400);

/// Sugar keys: `(key, dimension, fixed period or None for period_secs)`.
const SUGAR: [(&str, MockDimension, Option<Duration>); 10] = [
    ("rpm", MockDimension::Requests, Some(MINUTE)),
    ("tpm", MockDimension::Tokens, Some(MINUTE)),
    ("rpd", MockDimension::Requests, Some(DAY)),
    ("tpd", MockDimension::Tokens, Some(DAY)),
    ("itpm", MockDimension::InputTokens, Some(MINUTE)),
    ("otpm", MockDimension::OutputTokens, Some(MINUTE)),
    ("requests", MockDimension::Requests, None),
    ("tokens", MockDimension::Tokens, None),
    ("input_tokens", MockDimension::InputTokens, None),
    ("output_tokens", MockDimension::OutputTokens, None),
];

fn key_name(v: &Value) -> Result<String, MockLimitsError> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| MockLimitsError(format!("keys must be strings, found {v:?}")))
}

fn is_limit_entry(m: &serde_yaml::Mapping) -> bool {
    m.keys().any(|k| {
        k.as_str()
            .is_some_and(|k| k == "windows" || SUGAR.iter().any(|(s, _, _)| *s == k))
    })
}

fn whole(path: &str, k: &str, v: &Value) -> Result<u64, MockLimitsError> {
    v.as_u64()
        .ok_or_else(|| MockLimitsError(format!("{path}.{k} must be a whole number, found {v:?}")))
}

/// `500ms`, `10s`, `1.5s`, `2m`, `1h`, `1d`, or a number of seconds.
fn duration(path: &str, v: &Value) -> Result<Duration, MockLimitsError> {
    let bad = || {
        MockLimitsError(format!(
            "{path}: `{v:?}` is not a duration such as 500ms or 10s"
        ))
    };
    let (num, factor) = match v {
        Value::Number(n) => (n.as_f64().ok_or_else(bad)?, 1.0),
        Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (n, unit) = s.split_at(split);
            let factor = match unit.trim() {
                "ms" => 0.001,
                "s" | "" => 1.0,
                "m" | "min" => 60.0,
                "h" => 3600.0,
                "d" => 86_400.0,
                _ => return Err(bad()),
            };
            (n.parse::<f64>().map_err(|_| bad())?, factor)
        }
        _ => return Err(bad()),
    };
    let secs = num * factor;
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

fn limit(
    path: &str,
    dim: MockDimension,
    n: u64,
    p: Duration,
) -> Result<MockLimit, MockLimitsError> {
    MockLimit::new(dim, n, p)
        .ok_or_else(|| MockLimitsError(format!("{path}: a limit must be above 0")))
}

fn parse_entry(path: &str, m: &serde_yaml::Mapping) -> Result<Vec<MockLimit>, MockLimitsError> {
    let get = |k: &str| -> Result<Option<u64>, MockLimitsError> {
        match m.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => whole(path, k, v).map(Some),
        }
    };
    let period = Duration::from_secs(get("period_secs")?.or(get("window_secs")?).unwrap_or(60));
    let mut limits = Vec::new();
    for (k, dim, fixed) in SUGAR {
        if let Some(n) = get(k)? {
            limits.push(limit(
                &format!("{path}.{k}"),
                dim,
                n,
                fixed.unwrap_or(period),
            )?);
        }
    }
    if let Some(windows) = m.get("windows") {
        let Value::Sequence(list) = windows else {
            return Err(MockLimitsError(format!("{path}.windows must be a list")));
        };
        for (i, w) in list.iter().enumerate() {
            let wpath = format!("{path}.windows[{i}]");
            let Value::Mapping(w) = w else {
                return Err(MockLimitsError(format!("{wpath} must be a mapping")));
            };
            let per = w
                .get("per")
                .ok_or_else(|| MockLimitsError(format!("{wpath} needs `per`, e.g. 10s")))?;
            let per = duration(&format!("{wpath}.per"), per)?;
            let mut found = SUGAR[6..]
                .iter()
                .filter_map(|(k, dim, _)| w.get(*k).map(|v| (*k, *dim, v)));
            match (found.next(), found.next()) {
                (Some((k, dim, v)), None) => {
                    let n = whole(&wpath, k, v)?;
                    limits.push(limit(&wpath, dim, n, per)?);
                }
                _ => {
                    return Err(MockLimitsError(format!(
                        "{wpath} needs exactly one of requests, tokens, input_tokens, output_tokens"
                    )));
                }
            }
        }
    }
    Ok(limits)
}

/// What one request weighs in each dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Charge {
    /// Requests (1 for every request).
    pub requests: u64,
    /// Tokens.
    pub tokens: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
}

impl Charge {
    /// The weight in `dim`.
    pub fn weight(&self, dim: MockDimension) -> u64 {
        match dim {
            MockDimension::Requests => self.requests,
            MockDimension::Tokens => self.tokens,
            MockDimension::InputTokens => self.input_tokens,
            MockDimension::OutputTokens => self.output_tokens,
        }
    }
}

/// Exact sliding log of one limit: every admitted `(time, weight, ticket)` still inside the
/// window.
#[derive(Debug)]
struct Window {
    limit: MockLimit,
    log: VecDeque<(Instant, u64, u64)>,
    used: u64,
}

impl Window {
    fn expire(&mut self, now: Instant) {
        while let Some(&(t, w, _)) = self.log.front() {
            if now.saturating_duration_since(t) >= self.limit.period {
                self.used = self.used.saturating_sub(w);
                self.log.pop_front();
            } else {
                break;
            }
        }
    }

    fn expiry(&self, t: Instant, now: Instant) -> Duration {
        t.checked_add(self.limit.period)
            .map_or(self.limit.period, |end| end.saturating_duration_since(now))
    }

    /// How long until `weight` fits (zero when it fits now; `None` when it never can).
    fn wait_for(&self, weight: u64, now: Instant) -> Option<Duration> {
        let cap = self.limit.amount.get();
        if weight > cap {
            return None;
        }
        if self.used.saturating_add(weight) <= cap {
            return Some(Duration::ZERO);
        }
        let mut freed: u64 = 0;
        for &(t, w, _) in &self.log {
            freed = freed.saturating_add(w);
            if self.used.saturating_sub(freed).saturating_add(weight) <= cap {
                return Some(self.expiry(t, now));
            }
        }
        Some(self.limit.period)
    }
}

/// What the windows said about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Admitted and recorded under this ticket (for [`Windows::settle`]).
    Admitted(u64),
    /// Refused by `limit`; retry after `retry_after` (`None`: the request can never fit).
    Refused {
        /// The limit that refused it.
        limit: MockLimit,
        /// How much of it is used in the current window.
        used: u64,
        /// What the request asked for.
        requested: u64,
        /// When it would fit.
        retry_after: Option<Duration>,
    },
}

/// The state of one window, for rate-limit headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    /// The limit.
    pub limit: MockLimit,
    /// What is left of it now.
    pub remaining: u64,
    /// Time until the window has freed everything it holds (the newest entry leaves it); zero
    /// when it is empty.
    pub reset: Duration,
}

/// The windows of one (key, model).
#[derive(Debug, Default)]
pub struct Windows {
    windows: Vec<Window>,
    next_ticket: u64,
}

impl Windows {
    /// Fresh windows for `limits`.
    pub fn new(limits: &[MockLimit]) -> Self {
        Self {
            windows: limits
                .iter()
                .map(|l| Window {
                    limit: *l,
                    log: VecDeque::new(),
                    used: 0,
                })
                .collect(),
            next_ticket: 0,
        }
    }

    /// Admits a request weighing `charge` at `now` in every window, or in none. The refusal
    /// names the limit with the longest wait (one that can never fit first).
    pub fn try_admit(&mut self, charge: &Charge, now: Instant) -> Verdict {
        let mut worst: Option<Verdict> = None;
        for w in &mut self.windows {
            w.expire(now);
            let weight = charge.weight(w.limit.dimension);
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
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        for w in &mut self.windows {
            let weight = charge.weight(w.limit.dimension);
            w.log.push_back((now, weight, ticket));
            w.used = w.used.saturating_add(weight);
        }
        Verdict::Admitted(ticket)
    }

    /// Re-weighs the admission `ticket` to `charge` (where it is still inside a window).
    pub fn settle(&mut self, ticket: u64, charge: &Charge) {
        for w in &mut self.windows {
            let weight = charge.weight(w.limit.dimension);
            if let Some(entry) = w.log.iter_mut().find(|e| e.2 == ticket) {
                w.used = w.used.saturating_sub(entry.1).saturating_add(weight);
                entry.1 = weight;
            }
        }
    }

    /// The state of every window at `now`.
    pub fn states(&mut self, now: Instant) -> Vec<WindowState> {
        self.windows
            .iter_mut()
            .map(|w| {
                w.expire(now);
                let reset = w
                    .log
                    .back()
                    .map_or(Duration::ZERO, |(t, _, _)| w.expiry(*t, now));
                WindowState {
                    limit: w.limit,
                    remaining: w.limit.amount.get().saturating_sub(w.used),
                    reset,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
