//! The team file's sections besides its agents: `orchestrator` (MassGen's voting settings),
//! `timeout_settings`, `ui` and `rate_limit`, each validated into its runtime type.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostics::Diagnostics;
use super::document::Document;
use super::error::{ConfigError, KeyPath, shown, suggestion};
use super::team_raw::{RawOrchestrator, RawRateLimit, RawTimeouts, RawUi};
use super::types::{
    DisplayType, NoveltyRequirement, OrchestratorConfig, RateLimitSettings, TimeoutConfig,
    UiConfig, VotingSensitivity,
};

/// Parses one of a fixed set of words, with did-you-mean.
fn choice<T: Copy>(
    doc: &Document,
    path: &KeyPath,
    value: &str,
    options: &[(&str, T)],
) -> Result<T, ConfigError> {
    if let Some((_, v)) = options.iter().find(|(n, _)| *n == value) {
        return Ok(*v);
    }
    let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
    let hint = suggestion(value, &names);
    Err(doc.error(
        path,
        format!(
            "unknown value `{}`.{hint} Valid values: {}",
            shown(value),
            names.join(", ")
        ),
    ))
}

/// MassGen's voting modes beyond the three levels massgen-rs has.
const MASSGEN_VOTING_MODES: [&str; 12] = [
    "roi",
    "roi_conservative",
    "roi_balanced",
    "roi_aggressive",
    "sequential",
    "adversarial",
    "consistency",
    "diversity",
    "reflective",
    "checklist",
    "checklist_scored",
    "checklist_gated",
];

/// A `voting_sensitivity` value at `path`: one of the three levels; one of MassGen's other
/// voting modes is accepted with a warning (`None`: the default applies).
pub(crate) fn voting_sensitivity(
    doc: &Document,
    path: &KeyPath,
    value: &str,
    diags: &mut Diagnostics<'_>,
) -> Result<Option<VotingSensitivity>, ConfigError> {
    if MASSGEN_VOTING_MODES.contains(&value) {
        diags.warn(
            &format!("voting mode {value}"),
            path,
            format!(
                "MassGen's voting mode `{value}` has no effect here — it is not implemented: agents vote at the `lenient` level (massgen-rs has lenient, balanced and strict)"
            ),
        );
        return Ok(None);
    }
    let levels = [
        ("lenient", VotingSensitivity::Lenient),
        ("balanced", VotingSensitivity::Balanced),
        ("strict", VotingSensitivity::Strict),
    ];
    choice(doc, path, value, &levels).map(Some)
}

pub(super) fn orchestrator(
    doc: &Document,
    raw: Option<RawOrchestrator>,
    diags: &mut Diagnostics<'_>,
) -> Result<OrchestratorConfig, ConfigError> {
    let Some(raw) = raw else {
        return Ok(OrchestratorConfig::default());
    };
    let base = KeyPath::root().key("orchestrator");
    let levels = [("lenient", 0u8), ("balanced", 1u8), ("strict", 2u8)];
    let voting_sensitivity = match raw.voting_sensitivity.as_deref() {
        None => VotingSensitivity::default(),
        Some(v) => {
            voting_sensitivity(doc, &base.key("voting_sensitivity"), v, diags)?.unwrap_or_default()
        }
    };
    let answer_novelty_requirement = match raw.answer_novelty_requirement.as_deref() {
        None => NoveltyRequirement::default(),
        Some(v) => match choice(doc, &base.key("answer_novelty_requirement"), v, &levels)? {
            0 => NoveltyRequirement::Lenient,
            1 => NoveltyRequirement::Balanced,
            _ => NoveltyRequirement::Strict,
        },
    };
    let max_new_answers_per_agent = match raw.max_new_answers_per_agent {
        None => None,
        Some(n) => Some(u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            doc.error(
                &base.key("max_new_answers_per_agent"),
                format!(
                    "{n} is not valid: use a whole number from 1 up, or remove the key for no cap"
                ),
            )
        })?),
    };
    Ok(OrchestratorConfig {
        voting_sensitivity,
        max_new_answers_per_agent,
        answer_novelty_requirement,
        skip_final_presentation: raw.skip_final_presentation.unwrap_or(false),
    })
}

fn seconds(doc: &Document, path: &KeyPath, secs: f64) -> Result<Duration, ConfigError> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(doc.error(
            path,
            format!("{secs} is not valid: use a number of seconds above 0"),
        ))
    }
}

pub(super) fn timeouts(
    doc: &Document,
    raw: Option<RawTimeouts>,
) -> Result<TimeoutConfig, ConfigError> {
    let mut out = TimeoutConfig::default();
    if let Some(secs) = raw.as_ref().and_then(|r| r.orchestrator_timeout_seconds) {
        let p = KeyPath::root()
            .key("timeout_settings")
            .key("orchestrator_timeout_seconds");
        out.orchestrator_timeout = seconds(doc, &p, secs)?;
    }
    if let Some(secs) = raw.as_ref().and_then(|r| r.call_timeout_seconds) {
        let p = KeyPath::root()
            .key("timeout_settings")
            .key("call_timeout_seconds");
        out.call_timeout = seconds(doc, &p, secs)?;
    }
    Ok(out)
}

pub(super) fn ui(doc: &Document, raw: Option<RawUi>) -> Result<UiConfig, ConfigError> {
    let mut out = UiConfig::default();
    let Some(raw) = raw else {
        return Ok(out);
    };
    if let Some(d) = raw.display_type.as_deref() {
        out.display_type = choice(
            doc,
            &KeyPath::root().key("ui").key("display_type"),
            d,
            &[
                ("rich_terminal", DisplayType::Rich),
                ("textual_terminal", DisplayType::Rich),
                ("simple", DisplayType::Simple),
            ],
        )?;
    }
    if let Some(l) = raw.logging_enabled {
        out.logging_enabled = l;
    }
    Ok(out)
}

pub(super) fn rate_limit(
    doc: &Document,
    raw: Option<RawRateLimit>,
    top_level: Option<bool>,
    dir: Option<&Path>,
) -> Result<RateLimitSettings, ConfigError> {
    let base = KeyPath::root().key("rate_limit");
    let mut out = RateLimitSettings {
        enabled: top_level,
        ..RateLimitSettings::default()
    };
    let Some(raw) = raw else {
        return Ok(out);
    };
    if let Some(e) = raw.enable_rate_limit {
        if top_level.is_some_and(|t| t != e) {
            return Err(doc.error(
                &base.key("enable_rate_limit"),
                "contradicts the top-level `enable_rate_limit`; keep one of them",
            ));
        }
        out.enabled = Some(e);
    }
    if let Some(secs) = raw.acquire_timeout_seconds {
        out.acquire_timeout = Some(seconds(doc, &base.key("acquire_timeout_seconds"), secs)?);
    }
    if let Some(c) = raw.circuit {
        let at = base.key("circuit");
        if let Some(n) = c.failures {
            if n == 0 {
                return Err(doc.error(
                    &at.key("failures"),
                    "0 is not valid: the failures in a row that open an endpoint's circuit (at least 1; default 5)",
                ));
            }
            out.circuit.failures_to_open = n;
        }
        if let Some(v) = c.open_for {
            let p = at.key("open_for");
            let d =
                crate::config::duration::duration_from_value(&v).map_err(|e| doc.error(&p, e))?;
            if d.is_zero() {
                return Err(doc.error(
                    &p,
                    "0 is not valid: how long an open circuit refuses calls (e.g. 30s; default 30s)",
                ));
            }
            out.circuit.open_for = d;
        }
    }
    if let Some(file) = raw.limits_file {
        let p = base.key("limits_file");
        if file.trim().is_empty() {
            return Err(doc.error(
                &p,
                "empty; name a limits file (e.g. my_limits.yaml) or remove the key",
            ));
        }
        let mut path = PathBuf::from(&file);
        if let Some(dir) = dir {
            if path.is_relative() {
                path = dir.join(path);
            }
            if !path.is_file() {
                return Err(doc.error(
                    &p,
                    format!(
                        "no such file `{}` (relative paths are taken from the team file's directory)",
                        path.display()
                    ),
                ));
            }
        }
        out.limits_file = Some(path);
    }
    if let Some(b) = raw.budget {
        let p = base.key("budget");
        let usd = |key: &str, v: Option<f64>| -> Result<Option<f64>, ConfigError> {
            match v {
                Some(v) if !(v.is_finite() && (0.0..1e9).contains(&v)) => Err(doc.error(
                    &p.key(key),
                    format!("{v} is not valid: use an amount of US dollars of 0 or more"),
                )),
                v => Ok(v),
            }
        };
        out.budget = Some(crate::config::BudgetSettings {
            per_run_usd: usd("per_run_usd", b.per_run_usd)?,
            per_day_usd: usd("per_day_usd", b.per_day_usd)?,
            allow_unpriced: b.allow_unpriced.unwrap_or(false),
        });
    }
    if let Some(file) = raw.prices {
        out.prices = Some(existing_file(
            doc,
            &base.key("prices"),
            &file,
            dir,
            "a prices file (e.g. my_prices.yaml)",
        )?);
    }
    if let Some(file) = raw.pools {
        out.pools = Some(existing_file(
            doc,
            &base.key("pools"),
            &file,
            dir,
            "a pools file (e.g. my_pools.yaml)",
        )?);
    }
    if let Some(state) = raw.state {
        let p = base.key("state");
        if state.trim().is_empty() {
            return Err(doc.error(
                &p,
                "empty; name a state file (e.g. quota.db), or `none` to keep quota state in memory only",
            ));
        }
        out.state = Some(match crate::store::StoreSpec::parse(&state) {
            crate::store::StoreSpec::Sqlite(path) => {
                let path = match dir {
                    Some(dir) if path.is_relative() => dir.join(path),
                    _ => path,
                };
                if path.is_dir() {
                    return Err(doc.error(
                        &p,
                        format!(
                            "`{}` is a directory; name a file in it (e.g. {}/state.db) or `none`",
                            path.display(),
                            path.display()
                        ),
                    ));
                }
                crate::store::StoreSpec::Sqlite(path)
            }
            memory => memory,
        });
    }
    if let Some(store) = raw.store {
        // A shared store wins over the local one (like `--quota-store` over `--state`).
        out.state = Some(shared_store(doc, &base.key("store"), &store)?);
    }
    Ok(out)
}

/// A file named at `p` (relative to the team file's directory `dir`), which must exist.
fn existing_file(
    doc: &Document,
    p: &KeyPath,
    file: &str,
    dir: Option<&Path>,
    what: &str,
) -> Result<PathBuf, ConfigError> {
    if file.trim().is_empty() {
        return Err(doc.error(p, format!("empty; name {what} or remove the key")));
    }
    let mut path = PathBuf::from(file);
    if let Some(dir) = dir {
        if path.is_relative() {
            path = dir.join(path);
        }
        if !path.is_file() {
            return Err(doc.error(
                p,
                format!(
                    "no such file `{}` (relative paths are taken from the team file's directory)",
                    path.display()
                ),
            ));
        }
    }
    Ok(path)
}

/// `rate_limit.store`: a Redis URL, or `{url: ..., fail_open_local: true}`.
fn shared_store(
    doc: &Document,
    p: &KeyPath,
    value: &serde_yaml::Value,
) -> Result<crate::store::StoreSpec, ConfigError> {
    use serde_yaml::Value;
    let url_of = |path: &KeyPath, v: &Value| -> Result<String, ConfigError> {
        let Some(url) = v.as_str().map(str::trim) else {
            return Err(doc.error(path, "must be a Redis URL like redis://host:6379/0"));
        };
        if !crate::store::is_redis_url(url) {
            return Err(doc.error(
                path,
                format!(
                    "`{}` is not a Redis URL (redis://host:6379/0 or rediss://...); an SQLite file goes in `rate_limit.state`",
                    crate::store::redis::url::mask(url)
                ),
            ));
        }
        let (client_url, _) = crate::store::redis::url::split_prefix(url);
        if let Err(e) = redis::Client::open(client_url.as_str()) {
            return Err(doc.error(path, format!("not a valid Redis URL: {e}")));
        }
        Ok(url.to_owned())
    };
    match value {
        Value::Mapping(m) => {
            let mut url = None;
            let mut fail_open_local = false;
            for (k, v) in m {
                let key = k.as_str().unwrap_or("");
                let kp = p.key(key);
                match key {
                    "url" => url = Some(url_of(&kp, v)?),
                    "fail_open_local" => {
                        fail_open_local = v
                            .as_bool()
                            .ok_or_else(|| doc.error(&kp, "must be true or false"))?;
                    }
                    other => {
                        return Err(doc.error(
                            &kp,
                            format!("unknown key `{other}`; expected `url` or `fail_open_local`"),
                        ));
                    }
                }
            }
            let url =
                url.ok_or_else(|| doc.error(p, "missing `url` (e.g. url: redis://host:6379/0)"))?;
            Ok(crate::store::StoreSpec::Redis {
                url,
                fail_open_local,
            })
        }
        other => Ok(crate::store::StoreSpec::Redis {
            url: url_of(p, other)?,
            fail_open_local: false,
        }),
    }
}
