//! Reading a limits file (`rate_limits.yaml`): raw entries -> validated [`ModelLimits`].

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use super::document::Document;
use super::duration::duration_from_value;
use super::error::{ConfigError, KeyPath, suggestion};
use super::limits::{Entry, LimitsTable};
use super::types::{BackendKind, ModelLimits};
use crate::quota::{DailyReset, Dimension, Limit, ScopeKind};

/// The keys one limits entry accepts.
pub(crate) const ENTRY_KEYS: [&str; 15] = [
    "rpm",
    "tpm",
    "itpm",
    "otpm",
    "default_max_tokens",
    "rpd",
    "tpd",
    "concurrency",
    "windows",
    "startup_cooldown",
    "scope",
    "shared_key",
    "pacing",
    "daily_reset",
    "window_guard",
];

/// How much longer than its period an admission counts when an entry does not say
/// (`window_guard`): a little above the spread of request delays to a provider.
pub(crate) const DEFAULT_WINDOW_GUARD: Duration = Duration::from_millis(250);

/// The shorthand keys of a limits entry, in the order they are read: what each counts and
/// over how many seconds (`rpm` = requests per 60 s, ...). Client quotas of the gateway use the
/// same keys with the same meaning ([`shorthand_limit`]).
pub(crate) const SHORTHANDS: [(&str, Dimension, u64); 6] = [
    ("rpm", Dimension::Requests, 60),
    ("tpm", Dimension::Tokens, 60),
    ("itpm", Dimension::InputTokens, 60),
    ("otpm", Dimension::OutputTokens, 60),
    ("rpd", Dimension::Requests, 86_400),
    ("tpd", Dimension::Tokens, 86_400),
];

/// The limit a shorthand key (`rpm`, `tpm`, `rpd`, ... of [`SHORTHANDS`]) stands for with
/// `amount`; `None` for a key that is no shorthand.
pub(crate) fn shorthand_limit(
    key: &str,
    amount: u64,
) -> Option<Result<Limit, crate::quota::LimitError>> {
    SHORTHANDS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, dim, secs)| Limit::new(dim, amount, Duration::from_secs(secs)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    rpm: Option<i64>,
    tpm: Option<i64>,
    itpm: Option<i64>,
    otpm: Option<i64>,
    default_max_tokens: Option<i64>,
    rpd: Option<i64>,
    tpd: Option<i64>,
    concurrency: Option<i64>,
    windows: Option<Vec<RawWindow>>,
    startup_cooldown: Option<Value>,
    scope: Option<String>,
    shared_key: Option<String>,
    pacing: Option<bool>,
    daily_reset: Option<String>,
    window_guard: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWindow {
    requests: Option<i64>,
    tokens: Option<i64>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    per: Option<Value>,
}

/// Parses a whole limits file.
pub(crate) fn parse_table(text: &str, file: &str) -> Result<LimitsTable, ConfigError> {
    let doc = Document::parse(text, file)?;
    let root = KeyPath::root();
    let map = match &doc.value {
        Value::Null => {
            return Err(doc.error(
                &root,
                "the limits file is empty; write e.g. `gemini: {gemini-2.5-flash: {rpm: 9, tpm: 240000, rpd: 245}}`",
            ));
        }
        Value::Mapping(m) => m,
        other => {
            return Err(doc.error(
                &root,
                format!(
                    "a limits file is a map of providers (e.g. `gemini:`), found {}",
                    kind_of(other)
                ),
            ));
        }
    };
    let mut table = LimitsTable::default();
    for (k, v) in map {
        let name = key_name(&doc, &root, k)?;
        let path = root.key(&name);
        match name.as_str() {
            "default" => table.global_default = Some(entry(&doc, v, &path, &name)?),
            "shared" => {
                for (gk, gv) in provider_map(&doc, v, &path, "shared group names")? {
                    let gpath = path.key(&gk);
                    let e = entry(&doc, gv, &gpath, &format!("shared:{gk}"))?;
                    if e.limits.shared_key.is_some() {
                        return Err(doc.error(
                            &gpath.key("shared_key"),
                            "a shared group cannot itself name a shared_key",
                        ));
                    }
                    table.shared.insert(gk, e);
                }
            }
            provider => {
                check_provider(&doc, &path, provider)?;
                let mut models = BTreeMap::new();
                for (mk, mv) in provider_map(&doc, v, &path, "model names (or `default`)")? {
                    let mpath = path.key(&mk);
                    let e = entry(&doc, mv, &mpath, &format!("{provider}/{mk}"))?;
                    models.insert(mk, e);
                }
                table.providers.insert(provider.to_owned(), models);
            }
        }
    }
    Ok(table)
}

/// Provider keys are the names backends look limits up under; anything else could never match.
fn check_provider(doc: &Document, path: &KeyPath, name: &str) -> Result<(), ConfigError> {
    let known: Vec<&str> = BackendKind::ALL
        .iter()
        .map(|k| k.limits_provider())
        .collect();
    if known.contains(&name) {
        return Ok(());
    }
    if let Some(kind) = BackendKind::parse(name) {
        return Err(doc.error(
            path,
            format!(
                "limits for `type: {name}` backends go under `{}:`",
                kind.limits_provider()
            ),
        ));
    }
    let hint = suggestion(name, &known);
    Err(doc.error(
        path,
        format!(
            "unknown provider `{name}`.{hint} Providers: {}, plus `shared` and `default`",
            known.join(", ")
        ),
    ))
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "true/false",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

fn key_name(doc: &Document, at: &KeyPath, k: &Value) -> Result<String, ConfigError> {
    match k {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(doc.error(at, format!("keys must be names, found {}", kind_of(other)))),
    }
}

/// The `(name, value)` pairs of a map under `path`.
fn provider_map<'v>(
    doc: &Document,
    v: &'v Value,
    path: &KeyPath,
    what: &str,
) -> Result<Vec<(String, &'v Value)>, ConfigError> {
    match v {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| Ok((key_name(doc, path, k)?, v)))
            .collect(),
        other => Err(doc.error(
            path,
            format!(
                "expected a map of {what} to limits, found {}",
                kind_of(other)
            ),
        )),
    }
}

fn positive(doc: &Document, path: &KeyPath, n: i64, what: &str) -> Result<u64, ConfigError> {
    if n <= 0 {
        Err(doc.error(
            path,
            format!(
                "{n} is not a valid {what}: limits must be at least 1 (remove the key for no limit)"
            ),
        ))
    } else {
        Ok(n.unsigned_abs())
    }
}

/// One entry: `{rpm, tpm, rpd, tpd, concurrency, windows, startup_cooldown, scope, shared_key,
/// pacing, daily_reset}`.
fn entry(doc: &Document, v: &Value, path: &KeyPath, matched: &str) -> Result<Entry, ConfigError> {
    if !v.is_mapping() {
        let hint = match path.0.last() {
            Some(super::error::Seg::Key(k)) if ENTRY_KEYS.contains(&k.as_str()) => {
                " (limits go one level down: under a model name or `default`)".to_owned()
            }
            _ => String::new(),
        };
        return Err(doc.error(
            path,
            format!(
                "expected a map of limits (rpm, tpm, rpd, ...), found {}{hint}",
                kind_of(v)
            ),
        ));
    }
    let raw: RawEntry = doc.deserialize(v.clone(), path)?;
    let mut limits = Vec::new();
    let given = [raw.rpm, raw.tpm, raw.itpm, raw.otpm, raw.rpd, raw.tpd];
    for ((key, dim, secs), amount) in SHORTHANDS.into_iter().zip(given) {
        if let Some(n) = amount {
            let n = positive(doc, &path.key(key), n, key)?;
            limits.push(make_limit(
                doc,
                &path.key(key),
                dim,
                n,
                Duration::from_secs(secs),
            )?);
        }
    }
    for (i, w) in raw.windows.iter().flatten().enumerate() {
        let wpath = path.key("windows").index(i);
        let given: Vec<(Dimension, &str, i64)> = [
            (Dimension::Requests, "requests", w.requests),
            (Dimension::Tokens, "tokens", w.tokens),
            (Dimension::InputTokens, "input_tokens", w.input_tokens),
            (Dimension::OutputTokens, "output_tokens", w.output_tokens),
        ]
        .into_iter()
        .filter_map(|(d, k, n)| n.map(|n| (d, k, n)))
        .collect();
        let &[(dim, key, n)] = given.as_slice() else {
            return Err(doc.error(
                &wpath,
                "a window needs exactly one of `requests` or `tokens` (or `input_tokens` / `output_tokens`, for limits that count them apart), and `per`, e.g. {requests: 100, per: 10s}",
            ));
        };
        let n = positive(doc, &wpath.key(key), n, key)?;
        let Some(per) = &w.per else {
            return Err(doc.error(
                &wpath,
                "a window needs `per` (its length), e.g. {requests: 100, per: 10s}",
            ));
        };
        let period = duration_from_value(per).map_err(|m| doc.error(&wpath.key("per"), m))?;
        limits.push(make_limit(doc, &wpath.key("per"), dim, n, period)?);
    }
    let concurrency = match raw.concurrency {
        None => None,
        Some(n) => {
            let p = path.key("concurrency");
            let n = positive(doc, &p, n, "concurrency")?;
            let n = u32::try_from(n).ok().and_then(NonZeroU32::new);
            Some(n.ok_or_else(|| doc.error(&p, "concurrency is too large"))?)
        }
    };
    let startup_cooldown = match &raw.startup_cooldown {
        None => Duration::ZERO,
        Some(v) => {
            duration_from_value(v).map_err(|m| doc.error(&path.key("startup_cooldown"), m))?
        }
    };
    let scope = match raw.scope.as_deref() {
        None | Some("per_account") => ScopeKind::PerAccount,
        Some("per_key") => ScopeKind::PerKey,
        Some(other) => {
            let hint = suggestion(other, &["per_key", "per_account"]);
            return Err(doc.error(
                &path.key("scope"),
                format!("unknown scope `{other}`.{hint} Valid values: per_key, per_account"),
            ));
        }
    };
    if let Some(name) = &raw.shared_key {
        if name.trim().is_empty() {
            return Err(doc.error(
                &path.key("shared_key"),
                "shared_key must name a group defined under `shared:`",
            ));
        }
    }
    let default_max_tokens = match raw.default_max_tokens {
        None => None,
        Some(n) => {
            let p = path.key("default_max_tokens");
            let n = positive(doc, &p, n, "default_max_tokens")?;
            let n = u32::try_from(n).ok().and_then(NonZeroU32::new);
            let n = n.ok_or_else(|| doc.error(&p, "default_max_tokens is too large"))?;
            let output_limit = limits
                .iter()
                .filter(|l| matches!(l.dimension, Dimension::Tokens | Dimension::OutputTokens))
                .min_by_key(|l| l.amount);
            if let Some(l) = output_limit {
                if u64::from(n.get()) >= l.amount.get() {
                    return Err(doc.error(
                        &p,
                        format!(
                            "a default_max_tokens of {n} leaves no room for a prompt under the {} limit of {}: every request reserves its output cap; use a value well below it",
                            l.short_name(),
                            l.amount
                        ),
                    ));
                }
            }
            Some(n)
        }
    };
    let window_guard = match &raw.window_guard {
        None => DEFAULT_WINDOW_GUARD,
        Some(v) => duration_from_value(v).map_err(|m| doc.error(&path.key("window_guard"), m))?,
    };
    let daily_reset = match &raw.daily_reset {
        None => None,
        Some(s) => Some(parse_daily_reset(s).map_err(|m| doc.error(&path.key("daily_reset"), m))?),
    };
    Ok(Entry {
        limits: ModelLimits {
            matched: matched.to_owned(),
            limits,
            concurrency,
            startup_cooldown,
            scope,
            shared_key: raw.shared_key,
            pacing: raw.pacing.unwrap_or(false),
            daily_reset,
            window_guard,
            default_max_tokens,
        },
        file: doc.file.clone(),
        path: path.clone(),
        position: doc.position(path),
        shared_key_position: doc.position(&path.key("shared_key")),
    })
}

fn make_limit(
    doc: &Document,
    path: &KeyPath,
    dim: Dimension,
    amount: u64,
    period: Duration,
) -> Result<Limit, ConfigError> {
    Limit::new(dim, amount, period).map_err(|e| doc.error(path, e.to_string()))
}

/// `"00:00 America/Los_Angeles"` -> [`DailyReset`].
pub(crate) fn parse_daily_reset(s: &str) -> Result<DailyReset, String> {
    let bad = || {
        format!(
            "`{s}` is not a reset time; write `HH:MM Area/City`, e.g. `00:00 America/Los_Angeles`"
        )
    };
    let (time, zone) = s.trim().split_once(' ').ok_or_else(bad)?;
    let (h, m) = time.split_once(':').ok_or_else(bad)?;
    let hour: u8 = h.parse().map_err(|_| bad())?;
    let minute: u8 = m.parse().map_err(|_| bad())?;
    if hour > 23 || minute > 59 {
        return Err(bad());
    }
    let tz: chrono_tz::Tz = zone.trim().parse().map_err(|_| {
        format!(
            "unknown time zone `{}` (use an IANA name like America/Los_Angeles or UTC)",
            zone.trim()
        )
    })?;
    Ok(DailyReset { hour, minute, tz })
}
