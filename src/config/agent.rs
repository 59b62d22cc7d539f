//! Stage two for one agent: [`RawAgent`] -> [`AgentConfig`] (backend type, model, endpoint,
//! keys, sampling, the simulated backend's settings).

use std::time::Duration;

use super::diagnostics::Diagnostics;
use super::document::Document;
use super::error::{ConfigError, KeyPath, shown, suggestion};
use super::massgen_keys::UNSUPPORTED_BACKENDS;
use super::options::options;
use super::pool_backend::pool_backend;
use super::pools::PoolTable;
use super::secrets::{EnvLookup, InterpolateError, interpolate, whole_reference};
use super::sections::voting_sensitivity;
use super::team_raw::{RawAgent, RawBackend, RawFail, RawSimulated};
use super::types::{AgentConfig, BackendConfig, BackendKind, SimFailure, SimulatedSettings};
use crate::keys::ApiKey;

/// Settings that shape how agents are validated.
pub(crate) struct AgentCtx<'a> {
    pub(crate) doc: &'a Document,
    pub(crate) env: &'a EnvLookup,
    pub(crate) allow_missing_keys: bool,
    /// The pools `type: pool` backends name.
    pub(crate) pools: &'a PoolTable,
}

/// The `type` of a backend that chooses among the models of a pool.
const POOL_TYPE: &str = "pool";

fn supported_list() -> String {
    BackendKind::ALL
        .iter()
        .map(|k| k.as_str())
        .chain([POOL_TYPE])
        .collect::<Vec<_>>()
        .join(", ")
}

fn example_model(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Simulated => "sim-fast",
        BackendKind::Gemini => "gemini-2.5-flash",
        BackendKind::OpenAi => "gpt-4o-mini",
        BackendKind::Claude => "claude-3-5-haiku-latest",
        BackendKind::Groq => "llama-3.3-70b-versatile",
        BackendKind::Together => "meta-llama/Llama-3.3-70B-Instruct-Turbo",
        BackendKind::OpenRouter => "openai/gpt-4o-mini",
        BackendKind::Cerebras => "llama3.1-8b",
        BackendKind::Fireworks => "accounts/fireworks/models/llama-v3p1-8b-instruct",
        BackendKind::Grok => "grok-4",
        BackendKind::Zai => "glm-4.5",
        BackendKind::Moonshot => "kimi-k2-0905-preview",
        BackendKind::NvidiaNim => "meta/llama-3.3-70b-instruct",
        BackendKind::Nebius => "meta-llama/Llama-3.3-70B-Instruct",
        BackendKind::Qwen => "qwen-plus",
        BackendKind::ChatCompletion
        | BackendKind::Vllm
        | BackendKind::LmStudio
        | BackendKind::Sglang
        | BackendKind::Poe => "the model name your server serves",
    }
}

/// Validates one agent found at `path`; `default_id` is used when `id` is absent (single
/// `agent:` form) — `None` makes `id` required.
pub(crate) fn agent(
    cx: &AgentCtx<'_>,
    path: &KeyPath,
    raw: RawAgent,
    default_id: Option<&str>,
    diags: &mut Diagnostics<'_>,
) -> Result<AgentConfig, ConfigError> {
    let doc = cx.doc;
    let id = match (raw.id, default_id) {
        (Some(id), _) => id,
        (None, Some(d)) => d.to_owned(),
        (None, None) => {
            return Err(doc.error(
                &path.key("id"),
                "missing; every agent needs a unique id (e.g. `id: researcher`)",
            ));
        }
    };
    let id_ok = !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !id_ok {
        return Err(doc.error(
            &path.key("id"),
            format!(
                "`{}` is not a valid id: use letters, digits, `_`, `-` and `.` only",
                shown(&id)
            ),
        ));
    }
    let priority = match raw.priority {
        None => 0,
        Some(p) => u8::try_from(p).ok().filter(|p| *p <= 9).ok_or_else(|| {
            doc.error(
                &path.key("priority"),
                format!("{p} is out of range: priority is 0 (default) to 9 (served first)"),
            )
        })?,
    };
    let Some(backend) = raw.backend else {
        return Err(doc.error(
            &path.key("backend"),
            "missing; every agent needs a backend, e.g. `backend: {type: simulated, model: sim-fast}`",
        ));
    };
    let voting_sensitivity = match raw.voting_sensitivity.as_deref() {
        None => None,
        Some(v) => voting_sensitivity(doc, &path.key("voting_sensitivity"), v, diags)?,
    };
    let backend = self::backend(cx, &path.key("backend"), backend, diags)?;
    Ok(AgentConfig {
        id,
        backend,
        system_message: raw.system_message,
        priority,
        profile: raw.profile,
        voting_sensitivity,
    })
}

fn backend(
    cx: &AgentCtx<'_>,
    path: &KeyPath,
    mut raw: RawBackend,
    diags: &mut Diagnostics<'_>,
) -> Result<BackendConfig, ConfigError> {
    let doc = cx.doc;
    let tpath = path.key("type");
    let Some(type_name) = raw.kind.take() else {
        return Err(doc.error(
            &tpath,
            format!(
                "missing; every backend needs a type. Supported: {}",
                supported_list()
            ),
        ));
    };
    if type_name == POOL_TYPE {
        return pool(cx, path, raw, diags);
    }
    for (key, given) in [
        ("pool", raw.pool.is_some()),
        ("max_models", raw.max_models.is_some()),
    ] {
        if given {
            return Err(doc.error(
                &path.key(key),
                format!("only a `type: pool` backend takes `{key}` (this one is `{type_name}`)"),
            ));
        }
    }
    let Some(kind) = BackendKind::parse(&type_name) else {
        if let Some((_, why)) = UNSUPPORTED_BACKENDS.iter().find(|(n, _)| *n == type_name) {
            return Err(doc.error(
                &tpath,
                format!(
                    "backend type `{type_name}` is not supported: {why}. Supported: {}",
                    supported_list()
                ),
            ));
        }
        let names: Vec<&str> = BackendKind::ALL
            .iter()
            .map(|k| k.as_str())
            .chain([POOL_TYPE])
            .collect();
        let hint = suggestion(&type_name, &names);
        return Err(doc.error(
            &tpath,
            format!(
                "unknown backend type `{}`.{hint} Supported: {}",
                shown(&type_name),
                supported_list()
            ),
        ));
    };
    let options = options(doc, path, kind, &mut raw, diags);
    let model = raw.model.take().unwrap_or_default();
    if model.trim().is_empty() {
        return Err(doc.error(
            &path.key("model"),
            format!(
                "missing; every agent needs a model (e.g. {})",
                example_model(kind)
            ),
        ));
    }

    let (temperature, max_tokens, simulated) = sampling(doc, path, &mut raw, &type_name, kind)?;
    let base_url = base_url(cx, path, kind, raw.base_url)?;
    let api_keys = keys(
        cx,
        path,
        kind,
        base_url.as_deref(),
        raw.api_key,
        raw.api_keys,
        diags,
    )?;
    Ok(BackendConfig {
        kind,
        model,
        base_url,
        api_keys,
        temperature,
        max_tokens,
        enable_rate_limit: raw.enable_rate_limit,
        simulated,
        options,
        pool: None,
    })
}

/// `temperature`, `max_tokens` and `simulated` of a backend of `kind` (`type_name` as written;
/// a pool takes `simulated` for its simulated models).
fn sampling(
    doc: &Document,
    path: &KeyPath,
    raw: &mut RawBackend,
    type_name: &str,
    kind: BackendKind,
) -> Result<(Option<f32>, Option<u32>, SimulatedSettings), ConfigError> {
    if let Some(t) = raw.temperature {
        if !(0.0..=2.0).contains(&t) {
            return Err(doc.error(
                &path.key("temperature"),
                format!("{t} is out of range: temperature is 0.0 to 2.0"),
            ));
        }
    }
    let max_tokens = match raw.max_tokens {
        None => None,
        Some(n) => Some(u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            doc.error(
                &path.key("max_tokens"),
                format!("{n} is not a valid max_tokens: use a whole number from 1 up"),
            )
        })?),
    };
    let simulated = match raw.simulated.take() {
        None => SimulatedSettings::default(),
        Some(_) if kind != BackendKind::Simulated && type_name != POOL_TYPE => {
            return Err(doc.error(
                &path.key("simulated"),
                format!("only a `type: simulated` backend takes these settings (this one is `{type_name}`)"),
            ));
        }
        Some(s) => simulated(doc, &path.key("simulated"), s)?,
    };
    Ok((raw.temperature.map(|t| t as f32), max_tokens, simulated))
}

/// A `type: pool` backend: sampling settings shared by its models, the rest from the pool.
fn pool(
    cx: &AgentCtx<'_>,
    path: &KeyPath,
    mut raw: RawBackend,
    diags: &mut Diagnostics<'_>,
) -> Result<BackendConfig, ConfigError> {
    let given = [
        ("top_p", raw.top_p.is_some()),
        ("top_k", raw.top_k.is_some()),
        ("reasoning", raw.reasoning.is_some()),
        ("reasoning_effort", raw.reasoning_effort.is_some()),
        ("text", raw.text.is_some()),
        ("verbosity", raw.verbosity.is_some()),
        ("parallel_tool_calls", raw.parallel_tool_calls.is_some()),
        ("betas", raw.betas.is_some()),
        ("chat_template_kwargs", raw.chat_template_kwargs.is_some()),
        ("extra_body", raw.extra_body.is_some()),
    ];
    if let Some((key, _)) = given.iter().find(|(_, g)| *g) {
        return Err(cx.doc.error(
            &path.key(key),
            format!(
                "a pool backend spans providers, so it takes no provider options; remove `{key}` \
                 (or use a backend of one provider for this agent)"
            ),
        ));
    }
    let (temperature, max_tokens, simulated) =
        sampling(cx.doc, path, &mut raw, POOL_TYPE, BackendKind::Simulated)?;
    let base = BackendConfig {
        kind: BackendKind::Simulated,
        model: String::new(),
        base_url: None,
        api_keys: Vec::new(),
        temperature,
        max_tokens,
        enable_rate_limit: raw.enable_rate_limit,
        simulated,
        options: Default::default(),
        pool: None,
    };
    pool_backend(cx, path, &mut raw, base, diags)
}

fn base_url(
    cx: &AgentCtx<'_>,
    path: &KeyPath,
    kind: BackendKind,
    raw: Option<String>,
) -> Result<Option<String>, ConfigError> {
    let p = path.key("base_url");
    let Some(text) = raw else {
        if kind != BackendKind::Simulated && kind.default_base_url().is_none() {
            return Err(cx.doc.error(
                &p,
                format!(
                    "missing; a {} backend needs the server's base_url (e.g. http://127.0.0.1:8000/v1)",
                    kind.as_str()
                ),
            ));
        }
        return Ok(None);
    };
    if kind == BackendKind::Simulated {
        return Err(cx.doc.error(
            &p,
            "the simulated backend runs in-process and takes no base_url",
        ));
    }
    let url = interpolate(&text, cx.env).map_err(|e| cx.doc.error(&p, e.to_string()))?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let host_ok = host.is_some_and(|h| {
        let name = h.rsplit_once('@').map_or(h, |(_, n)| n);
        let name = if name.starts_with('[') {
            name
        } else {
            name.split(':').next().unwrap_or("")
        };
        !name.is_empty()
    });
    if !host_ok || url.chars().any(char::is_whitespace) {
        return Err(cx.doc.error(
            &p,
            format!(
                "`{}` is not a valid base_url: write http(s)://host[:port]/path, e.g. http://127.0.0.1:8000/v1",
                shown(&url)
            ),
        ));
    }
    Ok(Some(url.trim_end_matches('/').to_owned()))
}

fn keys(
    cx: &AgentCtx<'_>,
    path: &KeyPath,
    kind: BackendKind,
    base_url: Option<&str>,
    one: Option<String>,
    many: Option<Vec<String>>,
    diags: &mut Diagnostics<'_>,
) -> Result<Vec<ApiKey>, ConfigError> {
    let doc = cx.doc;
    let entries: Vec<(KeyPath, String)> = match (one, many) {
        (Some(_), Some(_)) => {
            return Err(doc.error(
                &path.key("api_keys"),
                "give either `api_key` (one) or `api_keys` (a list), not both",
            ));
        }
        (Some(k), None) => vec![(path.key("api_key"), k)],
        (None, Some(list)) => {
            if list.is_empty() {
                return Err(doc.error(
                    &path.key("api_keys"),
                    "the list is empty; give at least one key (e.g. `- ${GEMINI_API_KEY}`) or remove it",
                ));
            }
            list.into_iter()
                .enumerate()
                .map(|(i, k)| (path.key("api_keys").index(i), k))
                .collect()
        }
        (None, None) => {
            let missing = |var: String| {
                format!(
                    "no API key: set {var} in the environment, or give `api_key: ${{NAME}}` (or `api_keys: [...]`) naming the variable that holds it"
                )
            };
            return match default_keys(cx, kind, base_url).map_err(missing) {
                Ok(keys) => Ok(keys),
                Err(missing) if cx.allow_missing_keys => {
                    diags.note(
                        &path.key("api_key"),
                        format!("{missing} (a run fails until it is set)"),
                    );
                    Ok(Vec::new())
                }
                Err(missing) => Err(doc.error(&path.key("api_key"), missing)),
            };
        }
    };
    let mut out = Vec::with_capacity(entries.len());
    for (p, text) in entries {
        let secret = match interpolate(&text, cx.env) {
            Ok(secret) => secret,
            // Nothing will run with this key: leave it out (summaries without secrets).
            Err(e @ InterpolateError::Unset(_)) if cx.allow_missing_keys => {
                diags.note(&p, format!("{e} (a run fails until it is set)"));
                continue;
            }
            Err(e) => return Err(doc.error(&p, e.to_string())),
        };
        if secret.trim().is_empty() {
            return Err(doc.error(&p, "the key is empty"));
        }
        let origin = match whole_reference(text.trim()) {
            Some(var) => format!("env {var}"),
            None => format!("{} {p}", doc.file),
        };
        out.push(ApiKey::new(secret, origin));
    }
    Ok(out)
}

/// The key a backend of `kind` at `base_url` reads from the environment when the team file
/// gives none: none when it needs none (or the optional variable is unset), else `Err` with
/// what to set.
pub(crate) fn default_keys(
    cx: &AgentCtx<'_>,
    kind: BackendKind,
    base_url: Option<&str>,
) -> Result<Vec<ApiKey>, String> {
    let (vars, required): (Vec<&str>, bool) = match (kind, base_url) {
        (BackendKind::ChatCompletion, Some(url)) => {
            let (var, required) = BackendKind::chatcompletion_key_env(url);
            (vec![var], required)
        }
        _ => (kind.key_envs().to_vec(), true),
    };
    let Some(&var) = vars.first() else {
        return Ok(Vec::new());
    };
    let found = vars
        .iter()
        .find_map(|v| cx.env.get(v).map(|secret| (*v, secret)));
    match found {
        Some((v, secret)) => Ok(vec![ApiKey::new(secret, format!("env {v}"))]),
        None if !required => Ok(Vec::new()),
        None => Err(var.to_owned()),
    }
}

fn simulated(
    doc: &Document,
    path: &KeyPath,
    raw: RawSimulated,
) -> Result<SimulatedSettings, ConfigError> {
    let d = SimulatedSettings::default();
    let at_least_one = |key: &str, v: Option<i64>, default: u32| -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) => u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
                doc.error(
                    &path.key(key),
                    format!("{n} is not valid: {key} is a whole number from 1 up"),
                )
            }),
        }
    };
    let answer_rounds = at_least_one("answer_rounds", raw.answer_rounds, d.answer_rounds)?;
    let output_tokens = at_least_one("output_tokens", raw.output_tokens, d.output_tokens)?;
    if let Some(v) = &raw.vote_for {
        if v.trim().is_empty() {
            return Err(doc.error(
                &path.key("vote_for"),
                "empty; name an agent id or remove the key",
            ));
        }
    }
    let failure = match raw.fail {
        None => SimFailure::default(),
        Some(f) => failure(doc, &path.key("fail"), f)?,
    };
    let mut model_rpm = std::collections::BTreeMap::new();
    for (model, rpm) in raw.model_rpm.unwrap_or_default() {
        let n = u32::try_from(rpm).ok().filter(|n| *n >= 1).ok_or_else(|| {
            doc.error(
                &path.key("model_rpm").key(&model),
                format!("{rpm} is not valid: requests per minute the simulated server allows `{model}`, from 1 up"),
            )
        })?;
        model_rpm.insert(model, n);
    }
    Ok(SimulatedSettings {
        latency: Duration::from_millis(raw.latency_ms.unwrap_or(0)),
        seed: raw.seed.unwrap_or(d.seed),
        answer_rounds,
        vote_for: raw.vote_for,
        output_tokens,
        failure,
        model_rpm,
    })
}

fn failure(doc: &Document, path: &KeyPath, raw: RawFail) -> Result<SimFailure, ConfigError> {
    let mut on_calls = Vec::new();
    for (i, n) in raw.on_calls.unwrap_or_default().into_iter().enumerate() {
        let n = u32::try_from(n).ok().filter(|n| *n >= 1).ok_or_else(|| {
            doc.error(
                &path.key("on_calls").index(i),
                format!("{n} is not a call number: calls are counted from 1"),
            )
        })?;
        on_calls.push(n);
    }
    let rate = raw.rate.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&rate) {
        return Err(doc.error(
            &path.key("rate"),
            format!("{rate} is not a probability: use 0.0 to 1.0"),
        ));
    }
    let kinds = ["error", "rate_limit", "no_tool_call"];
    let kind = raw.kind.unwrap_or_else(|| "error".to_owned());
    if !kinds.contains(&kind.as_str()) {
        let hint = suggestion(&kind, &kinds);
        return Err(doc.error(
            &path.key("kind"),
            format!(
                "unknown failure kind `{kind}`.{hint} Valid values: {}",
                kinds.join(", ")
            ),
        ));
    }
    if raw.retry_after_ms.is_some() && kind != "rate_limit" {
        return Err(doc.error(
            &path.key("retry_after_ms"),
            "only a `kind: rate_limit` failure sends a Retry-After",
        ));
    }
    Ok(SimFailure {
        on_calls,
        always: raw.always.unwrap_or(false),
        rate,
        kind,
        retry_after: raw.retry_after_ms.map(Duration::from_millis),
    })
}
