//! Loading a team file: [`load_team`] / [`parse_team`] with [`LoadOptions`] — YAML -> profiles
//! merged in -> raw serde types -> validated [`TeamConfig`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml::Value;

use super::agent::{AgentCtx, agent};
use super::diagnostics::{CheckedTeam, ConfigProblems, Diagnostics};
use super::document::Document;
use super::error::{ConfigError, KeyPath, shown, suggestion};
use super::keycheck::check_team_keys;
use super::pools::PoolTable;
use super::profiles::{empty_map, load_profile, overlay, search_dirs};
use super::secrets::EnvLookup;
use super::sections::{orchestrator, rate_limit, timeouts, ui};
use super::team_raw::{RawAgent, RawOrchestrator, RawRateLimit, RawTeam, RawTimeouts, RawUi};
use super::types::{AgentConfig, TeamConfig};

/// How a team file is loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Where `${VAR}` and default key variables are read (default: the process environment).
    pub env: EnvLookup,
    /// Where `profile: NAME` is looked up first. Default: `agents/` inside the team file's
    /// directory, then `agents/` beside that directory; the built-in profiles come last.
    pub profiles_dir: Option<PathBuf>,
    /// Load agents whose keys are not available (a default key variable or a `${VAR}` named
    /// in `api_key`/`api_keys` that is unset): such keys are left out, with a warning naming
    /// the variable (a warning even under `strict`), so an agent may end up with no keys. For checks and summaries that run no agent, e.g. `--validate` on a
    /// machine without the secrets. Malformed references are still errors. Default `false`:
    /// every missing key is an error naming the variable and the key path.
    pub allow_missing_keys: bool,
    /// Refuse MassGen keys whose feature massgen-rs does not have (and options a backend does
    /// not take) instead of loading with a warning (`--strict`). Default `false`.
    pub strict: bool,
}

/// Reads, validates and returns the team in `path`. Relative paths inside it
/// (`rate_limit.limits_file`, the profile search) are taken relative to the file's directory.
/// The error carries every error of the file ([`ConfigError::all`]); warnings are dropped
/// (see [`check_team`] for them).
pub fn load_team(path: &Path, opts: &LoadOptions) -> Result<TeamConfig, ConfigError> {
    check_team(path, opts)
        .map(|checked| checked.team)
        .map_err(problems_error)
}

/// The text of the config file at `path` (`what` names it in the error), its name for errors,
/// and the directory its relative paths are taken from.
pub(crate) fn read_file(
    path: &Path,
    what: &str,
) -> Result<(String, String, PathBuf), ConfigProblems> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigProblems {
        errors: vec![ConfigError::new(
            name.clone(),
            "",
            None,
            format!("cannot read the {what}: {e}"),
        )],
        warnings: Vec::new(),
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((text, name, dir))
}

/// Like [`load_team`], returning the warnings too, and on failure every problem of the file
/// (errors, then warnings).
pub fn check_team(path: &Path, opts: &LoadOptions) -> Result<CheckedTeam, ConfigProblems> {
    let (text, name, dir) = read_file(path, "team file")?;
    let mut checked = parse_in(&text, &name, opts, Some(&dir))?;
    checked.team.source = Some(path.to_path_buf());
    Ok(checked)
}

/// Validates team-file text; `file_name` is used in errors. Profiles come from
/// `opts.profiles_dir` and the built-ins; `rate_limit.limits_file` is kept as written.
pub fn parse_team(
    text: &str,
    file_name: &str,
    opts: &LoadOptions,
) -> Result<TeamConfig, ConfigError> {
    check_team_text(text, file_name, opts)
        .map(|checked| checked.team)
        .map_err(problems_error)
}

/// Like [`parse_team`], returning the warnings too, and on failure every problem.
pub fn check_team_text(
    text: &str,
    file_name: &str,
    opts: &LoadOptions,
) -> Result<CheckedTeam, ConfigProblems> {
    parse_in(text, file_name, opts, None)
}

fn problems_error(problems: ConfigProblems) -> ConfigError {
    let file = problems
        .warnings
        .first()
        .map(|w| w.file().to_owned())
        .unwrap_or_default();
    problems
        .into_error()
        .unwrap_or_else(|| ConfigError::new(file, "", None, "the file has problems"))
}

fn fatal(error: ConfigError) -> ConfigProblems {
    ConfigProblems {
        errors: vec![error],
        warnings: Vec::new(),
    }
}

const TOP_KEYS: &str = "agents, agent, orchestrator, timeout_settings, ui, rate_limit";

fn parse_in(
    text: &str,
    file: &str,
    opts: &LoadOptions,
    dir: Option<&Path>,
) -> Result<CheckedTeam, ConfigProblems> {
    let doc = Document::parse(text, file).map_err(fatal)?;
    let root = KeyPath::root();
    match &doc.value {
        Value::Null => {
            return Err(fatal(doc.error(
                &root,
                format!(
                    "the team file is empty; it needs at least `agents:` (sections: {TOP_KEYS})"
                ),
            )));
        }
        Value::Mapping(_) => {}
        Value::Sequence(_) => {
            return Err(fatal(doc.error(
                &root,
                format!("found a list where the team file needs a map of sections ({TOP_KEYS}); put the agents under `agents:`"),
            )));
        }
        _ => {
            return Err(fatal(doc.error(
                &root,
                format!(
                    "found a single value where the team file needs a map of sections ({TOP_KEYS})"
                ),
            )));
        }
    }
    let dirs = search_dirs(opts.profiles_dir.as_deref(), dir);
    let mut value = apply_profiles(&doc, &dirs).map_err(fatal)?;
    let mut diags = Diagnostics::new(&doc);
    check_team_keys(&doc, &mut value, &mut diags);
    let team = build(&doc, value, opts, dir, &mut diags);
    let problems = diags.finish(opts.strict);
    match team {
        Some(team) if problems.errors.is_empty() => Ok(CheckedTeam {
            team,
            warnings: problems.warnings,
        }),
        _ => Err(problems),
    }
}

/// Deserializes and validates every section (each agent on its own), recording every problem;
/// the team when there was none.
fn build(
    doc: &Document,
    value: Value,
    opts: &LoadOptions,
    dir: Option<&Path>,
    diags: &mut Diagnostics<'_>,
) -> Option<TeamConfig> {
    let root = KeyPath::root();
    let raw: RawTeam = diags.take(doc.deserialize(value, &root))?;
    let sections = Sections {
        orchestrator: raw.orchestrator,
        timeouts: raw.timeout_settings,
        ui: raw.ui,
        rate_limit: raw.rate_limit,
        enable_rate_limit: raw.enable_rate_limit,
    };
    let (list, single) = (raw.agents, raw.agent);
    assemble(doc, sections, opts, dir, diags, |cx, diags| {
        agents(cx, list, single, diags)
    })
}

/// The sections of a team besides its agents, as written (each `None` when absent).
#[derive(Default)]
pub(crate) struct Sections {
    pub(crate) orchestrator: Option<Value>,
    pub(crate) timeouts: Option<Value>,
    pub(crate) ui: Option<Value>,
    pub(crate) rate_limit: Option<Value>,
    pub(crate) enable_rate_limit: Option<bool>,
}

/// Validates `sections` and the agents `agents` builds (with the pools the rate-limit section
/// names), recording every problem; the team when there was none.
fn assemble(
    doc: &Document,
    sections: Sections,
    opts: &LoadOptions,
    dir: Option<&Path>,
    diags: &mut Diagnostics<'_>,
    agents: impl FnOnce(&AgentCtx<'_>, &mut Diagnostics<'_>) -> Option<Vec<AgentConfig>>,
) -> Option<TeamConfig> {
    let orchestrator_raw: Option<RawOrchestrator> =
        section(doc, diags, sections.orchestrator, "orchestrator");
    let timeouts_raw: Option<RawTimeouts> =
        section(doc, diags, sections.timeouts, "timeout_settings");
    let ui_raw: Option<RawUi> = section(doc, diags, sections.ui, "ui");
    let rate_raw: Option<RawRateLimit> = section(doc, diags, sections.rate_limit, "rate_limit");
    let rate_limit = diags.take(rate_limit(doc, rate_raw, sections.enable_rate_limit, dir));
    // `type: pool` backends name pools of the built-in table or the team's pools file.
    let pools_file = rate_limit.as_ref().and_then(|r| r.pools.as_deref());
    let pools = diags
        .take(PoolTable::with_file(pools_file))
        .unwrap_or_else(PoolTable::builtin);
    let cx = AgentCtx {
        doc,
        env: &opts.env,
        allow_missing_keys: opts.allow_missing_keys,
        pools: &pools,
    };
    let agents = agents(&cx, diags);
    let orchestrator = orchestrator(doc, orchestrator_raw, diags);
    let orchestrator = diags.take(orchestrator);
    let timeouts = diags.take(timeouts(doc, timeouts_raw));
    let ui = diags.take(ui(doc, ui_raw));
    if diags.has_errors() {
        return None;
    }
    Some(TeamConfig {
        source: None,
        agents: agents?,
        orchestrator: orchestrator?,
        timeouts: timeouts?,
        ui: ui?,
        rate_limit: rate_limit?,
    })
}

/// A team whose agents are the `{name, backend}` items of the list at `list_key` of `doc` (a
/// gateway's `models:`): each agent's id is its name, each backend is checked exactly as a
/// team file's (errors name `models[2].backend.type` and the line), and the other `sections`
/// as a team file's. `dir` is where relative paths (limits, prices, pools files) are taken from.
pub(crate) fn models_team(
    doc: &Document,
    list_key: &str,
    list: Vec<Value>,
    sections: Sections,
    opts: &LoadOptions,
    dir: Option<&Path>,
    diags: &mut Diagnostics<'_>,
) -> Option<TeamConfig> {
    assemble(doc, sections, opts, dir, diags, |cx, diags| {
        models(cx, list_key, list, diags)
    })
}

/// One item of a models list.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: Option<String>,
    backend: Option<super::team_raw::RawBackend>,
}

fn models(
    cx: &AgentCtx<'_>,
    list_key: &str,
    list: Vec<Value>,
    diags: &mut Diagnostics<'_>,
) -> Option<Vec<AgentConfig>> {
    let doc = cx.doc;
    let at = KeyPath::root().key(list_key);
    if list.is_empty() {
        diags.error(doc.error(
            &at,
            "the list is empty: name at least one model (`- name: ...` with a `backend:`)",
        ));
        return None;
    }
    let mut out: Vec<AgentConfig> = Vec::new();
    let mut failed = false;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, value) in list.into_iter().enumerate() {
        let path = at.index(i);
        let built = doc.deserialize::<RawModel>(value, &path).and_then(|raw| {
            let name = model_name(doc, &path, raw.name)?;
            if let Some(first) = seen.insert(name.clone(), i) {
                return Err(doc.error(
                    &path.key("name"),
                    format!(
                        "duplicate name `{}` (also used by {}); every model needs its own name",
                        shown(&name),
                        at.index(first)
                    ),
                ));
            }
            let agent_raw = RawAgent {
                id: Some(name),
                backend: raw.backend,
                system_message: None,
                priority: None,
                profile: None,
                _description: None,
                voting_sensitivity: None,
            };
            agent(cx, &path, agent_raw, None, diags)
        });
        match built {
            Ok(a) => out.push(a),
            Err(e) => {
                diags.error(e);
                failed = true;
            }
        }
    }
    (!failed).then_some(out)
}

/// A model's `name`: what clients send as `model`.
fn model_name(doc: &Document, path: &KeyPath, name: Option<String>) -> Result<String, ConfigError> {
    let Some(name) = name else {
        return Err(doc.error(
            &path.key("name"),
            "missing; every model needs the name clients ask for (e.g. `name: sim`)",
        ));
    };
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(doc.error(
            &path.key("name"),
            format!(
                "`{}` is not a valid model name: use letters, digits, `_`, `-` and `.` only",
                shown(&name)
            ),
        ));
    }
    Ok(name)
}

/// The document with every `profile: NAME` agent laid over its profile.
fn apply_profiles(doc: &Document, dirs: &[PathBuf]) -> Result<Value, ConfigError> {
    let mut value = doc.value.clone();
    if let Value::Mapping(map) = &mut value {
        // Top-level `x-...` keys hold YAML anchors for reuse (`x-base: &base {...}`); ignored.
        map.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
    }
    let root = KeyPath::root();
    if let Some(Value::Sequence(list)) = value.get_mut("agents") {
        for (i, item) in list.iter_mut().enumerate() {
            merge_one(doc, dirs, item, &root.key("agents").index(i))?;
        }
    }
    if let Some(item) = value.get_mut("agent") {
        merge_one(doc, dirs, item, &root.key("agent"))?;
    }
    Ok(value)
}

fn merge_one(
    doc: &Document,
    dirs: &[PathBuf],
    item: &mut Value,
    at: &KeyPath,
) -> Result<(), ConfigError> {
    let Some(Value::String(name)) = item.get("profile") else {
        return Ok(());
    };
    let mut profile = load_profile(name, dirs, doc, &at.key("profile"))?;
    let own = std::mem::replace(item, empty_map());
    // An agent that puts a profile on a pool keeps the profile's system message and sampling;
    // the profile's model, endpoint, keys and provider options belong to its own backend.
    let own_type = own.get("backend").and_then(|b| b.get("type"));
    if own_type.and_then(Value::as_str) == Some("pool") {
        if let Some(Value::Mapping(backend)) = profile.get_mut("backend") {
            const KEPT: [&str; 6] = [
                "temperature",
                "max_tokens",
                "enable_rate_limit",
                "simulated",
                "pool",
                "max_models",
            ];
            backend.retain(|k, _| k.as_str().is_some_and(|k| KEPT.contains(&k)));
        }
    }
    *item = overlay(profile, own);
    Ok(())
}

/// The top-level section `key` as its raw type (`None` when absent or malformed).
fn section<T: serde::de::DeserializeOwned>(
    doc: &Document,
    diags: &mut Diagnostics<'_>,
    value: Option<Value>,
    key: &str,
) -> Option<T> {
    value.and_then(|v| diags.take(doc.deserialize(v, &KeyPath::root().key(key))))
}

/// Every agent, each deserialized and validated on its own; `None` when any failed (the
/// problems are in `diags`).
fn agents(
    cx: &AgentCtx<'_>,
    list: Option<Vec<Value>>,
    single: Option<Value>,
    diags: &mut Diagnostics<'_>,
) -> Option<Vec<AgentConfig>> {
    let doc = cx.doc;
    let root = KeyPath::root();
    let items: Vec<(KeyPath, Value, Option<&str>)> = match (list, single) {
        (Some(_), Some(_)) => {
            diags.error(doc.error(
                &root.key("agent"),
                "give either `agents` (a list) or `agent` (one agent), not both",
            ));
            return None;
        }
        (None, None) => {
            diags.error(doc.error(
                &root,
                "no agents: add `agents:` with a list of agents (or `agent:` for a single one)",
            ));
            return None;
        }
        (Some(list), None) => {
            if list.is_empty() {
                diags.error(doc.error(
                    &root.key("agents"),
                    "the team is empty: list at least one agent (id and backend)",
                ));
                return None;
            }
            list.into_iter()
                .enumerate()
                .map(|(i, v)| (root.key("agents").index(i), v, None))
                .collect()
        }
        (None, Some(v)) => vec![(root.key("agent"), v, Some("agent"))],
    };
    let mut out = Vec::new();
    let mut failed = false;
    for (path, value, default_id) in items {
        let built = doc
            .deserialize::<RawAgent>(value, &path)
            .and_then(|raw| agent(cx, &path, raw, default_id, diags));
        match built {
            Ok(a) => out.push(a),
            Err(e) => {
                diags.error(e);
                failed = true;
            }
        }
    }
    if failed {
        return None;
    }
    agents_agree(doc, &out, diags).then_some(out)
}

/// Checks across agents (unique ids, `vote_for` targets); `false` when one failed.
fn agents_agree(doc: &Document, out: &[AgentConfig], diags: &mut Diagnostics<'_>) -> bool {
    let root = KeyPath::root();
    let before = diags.has_errors();
    let result = agents_agree_inner(doc, out, &root);
    match result {
        Ok(()) => !before,
        Err(e) => {
            diags.error(e);
            false
        }
    }
}

fn agents_agree_inner(
    doc: &Document,
    out: &[AgentConfig],
    root: &KeyPath,
) -> Result<(), ConfigError> {
    let agent_path = |i: usize| {
        if doc.value.get("agent").is_some() {
            root.key("agent")
        } else {
            root.key("agents").index(i)
        }
    };
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, a) in out.iter().enumerate() {
        if let Some(first) = seen.insert(a.id.as_str(), i) {
            return Err(doc.error(
                &agent_path(i).key("id"),
                format!(
                    "duplicate id `{}` (also used by {}); every agent needs its own id",
                    a.id,
                    agent_path(first)
                ),
            ));
        }
    }
    let ids: Vec<&str> = out.iter().map(|a| a.id.as_str()).collect();
    for (i, a) in out.iter().enumerate() {
        if let Some(target) = &a.backend.simulated.vote_for {
            if !ids.contains(&target.as_str()) {
                let hint = suggestion(target, &ids);
                return Err(doc.error(
                    &agent_path(i)
                        .key("backend")
                        .key("simulated")
                        .key("vote_for"),
                    format!(
                        "no agent has id `{}`.{hint} Agents: {}",
                        shown(target),
                        ids.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}
