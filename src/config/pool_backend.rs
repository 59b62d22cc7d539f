//! `backend: {type: pool, pool: fast}`: an agent whose calls choose, per call, among the models
//! of a pool ([`PoolBackend`]). The pool comes from the pool table (the built-in
//! `configs/pools.yaml` overridden by `rate_limit.pools`); `smart`, `fast` and `cheap` are pools
//! of it and `any` is every entry of every pool. Each entry becomes a backend of its own (its
//! provider's endpoint and key variable); entries that cannot be used here (no key in the
//! environment, no endpoint) are left out with a warning, and a pool with none left is an error.

use std::sync::Arc;

use super::agent::{AgentCtx, default_keys};
use super::diagnostics::Diagnostics;
use super::error::{ConfigError, KeyPath, shown, suggestion};
use super::pools::PoolEntry;
use super::team_raw::RawBackend;
use super::types::{BackendConfig, BackendKind, SimulatedSettings};

/// Most models one call may move through on rate limits (`max_models`).
const MOST_MODELS: i64 = 20;

/// The models of an agent on `type: pool`.
#[derive(Debug, Clone)]
pub struct PoolBackend {
    /// The pool's name as the team file gives it (`fast`, `smart`, `any`, ...).
    pub name: String,
    /// The usable models, in the pool's order, each with the backend that reaches it.
    pub members: Vec<PoolMemberConfig>,
    /// Entries of the pool that cannot be used here, with why.
    pub left_out: Vec<LeftOut>,
    /// How many times one call may move to another model on a rate limit before it waits
    /// (`max_models`, default 3).
    pub max_models: u32,
}

/// One usable model of a pool.
#[derive(Debug, Clone)]
pub struct PoolMemberConfig {
    /// The pool entry (capabilities, sizes, priority).
    pub entry: PoolEntry,
    /// How to reach it: endpoint, keys, sampling.
    pub backend: BackendConfig,
}

/// A pool entry that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeftOut {
    /// `<provider>/<model>`.
    pub label: String,
    /// Why (no key, no endpoint, unknown provider).
    pub reason: String,
}

/// The backend kind a pool entry's `provider` names (`anthropic` is the `claude` backend).
pub fn entry_kind(provider: &str) -> Option<BackendKind> {
    match provider {
        "anthropic" => Some(BackendKind::Claude),
        other => BackendKind::parse(other),
    }
}

/// Settings of a `type: pool` backend that apply to each of its models.
struct Shared {
    temperature: Option<f32>,
    max_tokens: Option<u32>,
    enable_rate_limit: Option<bool>,
    simulated: SimulatedSettings,
}

/// Validates a `type: pool` backend at `path`. `temperature`, `max_tokens` and
/// `enable_rate_limit` are checked by the caller and given in `base`; `simulated` applies to
/// the pool's simulated models.
pub(crate) fn pool_backend(
    cx: &AgentCtx<'_>,
    path: &KeyPath,
    raw: &mut RawBackend,
    base: BackendConfig,
    diags: &mut Diagnostics<'_>,
) -> Result<BackendConfig, ConfigError> {
    let doc = cx.doc;
    for (key, given) in [
        ("model", raw.model.is_some()),
        ("base_url", raw.base_url.is_some()),
        ("api_key", raw.api_key.is_some()),
        ("api_keys", raw.api_keys.is_some()),
    ] {
        if given {
            return Err(doc.error(
                &path.key(key),
                format!(
                    "a pool backend takes its models, endpoints and keys from the pool's entries; \
                     remove `{key}` (set an entry's `base_url` in a pools file, `rate_limit.pools`, \
                     and its key in the provider's usual variable)"
                ),
            ));
        }
    }
    let names = cx.pools.names();
    let ppath = path.key("pool");
    let Some(name) = raw.pool.take() else {
        return Err(doc.error(
            &ppath,
            format!(
                "missing; name the pool the agent's calls choose from, e.g. `pool: fast`. Pools: {}",
                names.join(", ")
            ),
        ));
    };
    let Some(entries) = cx.pools.resolve(&name) else {
        let hint = suggestion(&name, &names);
        return Err(doc.error(
            &ppath,
            format!(
                "unknown pool `{}`.{hint} Pools: {} (add your own with `rate_limit.pools`)",
                shown(&name),
                names.join(", ")
            ),
        ));
    };
    let max_models = match raw.max_models.take() {
        None => crate::routing::pooled::DEFAULT_MAX_MODELS,
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (0..=MOST_MODELS).contains(&i64::from(*n)))
            .ok_or_else(|| {
                doc.error(
                    &path.key("max_models"),
                    format!(
                        "{n} is out of range: how many models one call may move through on rate limits, 0 to {MOST_MODELS} (default {})",
                        crate::routing::pooled::DEFAULT_MAX_MODELS
                    ),
                )
            })?,
    };
    let shared = Shared {
        temperature: base.temperature,
        max_tokens: base.max_tokens,
        enable_rate_limit: base.enable_rate_limit,
        simulated: base.simulated,
    };
    let mut members = Vec::new();
    let mut left_out = Vec::new();
    for entry in entries {
        let label = format!("{}/{}", entry.provider, entry.model);
        match member(cx, &entry, &shared) {
            Ok(backend) => members.push(PoolMemberConfig { entry, backend }),
            Err(reason) => left_out.push(LeftOut { label, reason }),
        }
    }
    if !left_out.is_empty() {
        let list: Vec<String> = left_out
            .iter()
            .map(|l| format!("{} ({})", l.label, l.reason))
            .collect();
        let message = format!(
            "pool `{name}`: {} of its {} models cannot be used and are left out: {}",
            left_out.len(),
            left_out.len() + members.len(),
            list.join("; ")
        );
        if members.is_empty() && !cx.allow_missing_keys {
            return Err(doc.error(
                &ppath,
                format!(
                    "no model of pool `{name}` can be used here: {}",
                    list.join("; ")
                ),
            ));
        }
        diags.note(&ppath, message);
    }
    let first = members.first().map(|m| m.backend.clone());
    let mut out = first.unwrap_or(base_of_empty(&shared));
    out.pool = Some(Arc::new(PoolBackend {
        name,
        members,
        left_out,
        max_models,
    }));
    Ok(out)
}

/// The backend of an agent whose pool has no usable model (only under `allow_missing_keys`,
/// where nothing runs): simulated, so summaries still have something to show.
fn base_of_empty(shared: &Shared) -> BackendConfig {
    BackendConfig {
        kind: BackendKind::Simulated,
        model: "none".to_owned(),
        base_url: None,
        api_keys: Vec::new(),
        temperature: shared.temperature,
        max_tokens: shared.max_tokens,
        enable_rate_limit: shared.enable_rate_limit,
        simulated: shared.simulated.clone(),
        options: Default::default(),
        pool: None,
    }
}

/// The backend reaching one pool entry, or why it cannot be used.
fn member(cx: &AgentCtx<'_>, entry: &PoolEntry, shared: &Shared) -> Result<BackendConfig, String> {
    let Some(kind) = entry_kind(&entry.provider) else {
        return Err(format!("unknown provider `{}`", shown(&entry.provider)));
    };
    let base_url = match (&entry.base_url, kind) {
        (Some(_), BackendKind::Simulated) => {
            return Err("a simulated model takes no base_url".to_owned());
        }
        (Some(url), _) => {
            let url = url.trim().trim_end_matches('/');
            let ok = url.starts_with("http://") || url.starts_with("https://");
            if !ok || url.chars().any(char::is_whitespace) {
                return Err(format!(
                    "`{}` is not a valid base_url (write http(s)://host[:port]/path)",
                    shown(url)
                ));
            }
            Some(url.to_owned())
        }
        (None, BackendKind::Simulated) => None,
        (None, k) if k.default_base_url().is_none() => {
            return Err(format!(
                "a {} model needs a base_url in the pools file",
                k.as_str()
            ));
        }
        (None, _) => None,
    };
    let api_keys = default_keys(cx, kind, base_url.as_deref())
        .map_err(|var| format!("no API key: set {var}"))?;
    Ok(BackendConfig {
        kind,
        model: entry.model.clone(),
        base_url,
        api_keys,
        temperature: shared.temperature,
        max_tokens: shared.max_tokens,
        enable_rate_limit: shared.enable_rate_limit,
        simulated: if kind == BackendKind::Simulated {
            shared.simulated.clone()
        } else {
            SimulatedSettings::default()
        },
        options: Default::default(),
        pool: None,
    })
}
