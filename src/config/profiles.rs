//! Reusable agent profiles (`profile: researcher`): a system message and backend settings kept
//! in `agents/<name>.yaml`, merged under the team file's own agent fields.
//!
//! Search order for `profile: NAME`: `LoadOptions::profiles_dir` when given; otherwise
//! `agents/` inside the team file's directory, then `agents/` beside it (the repository layout
//! `configs/` + `agents/`); finally the profiles compiled into the binary.

use std::path::{Path, PathBuf};

use serde_yaml::{Mapping, Value};

use super::document::Document;
use super::error::{ConfigError, KeyPath, suggestion};
use super::team_raw::RawAgent;
use super::types::BackendKind;

/// The profiles shipped in `agents/`, compiled in.
const BUILTIN: [(&str, &str); 4] = [
    ("researcher", include_str!("../../agents/researcher.yaml")),
    ("critic", include_str!("../../agents/critic.yaml")),
    ("summarizer", include_str!("../../agents/summarizer.yaml")),
    (
        "fact_checker",
        include_str!("../../agents/fact_checker.yaml"),
    ),
];

/// Names of the profiles compiled into the binary (`agents/*.yaml` of the repository).
pub fn builtin_profile_names() -> impl Iterator<Item = &'static str> {
    BUILTIN.iter().map(|(n, _)| *n)
}

/// The directories searched for profiles, in order.
pub(crate) fn search_dirs(explicit: Option<&Path>, team_dir: Option<&Path>) -> Vec<PathBuf> {
    match (explicit, team_dir) {
        (Some(dir), _) => vec![dir.to_path_buf()],
        (None, Some(dir)) => {
            let mut dirs = vec![dir.join("agents")];
            if let Some(parent) = dir.parent() {
                dirs.push(parent.join("agents"));
            }
            dirs
        }
        (None, None) => Vec::new(),
    }
}

/// Loads profile `name` and returns its validated value (a map without `id`/`profile`).
/// `team` and `at` locate the `profile:` key for errors about the name.
pub(crate) fn load_profile(
    name: &str,
    dirs: &[PathBuf],
    team: &Document,
    at: &KeyPath,
) -> Result<Value, ConfigError> {
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        return Err(team.error(
            at,
            format!("`{name}` is not a profile name (letters, digits, `_` and `-` only)"),
        ));
    }
    let (file, text) = match find(name, dirs) {
        Some(found) => found,
        None => {
            let mut known: Vec<String> = builtin_profile_names().map(str::to_owned).collect();
            for dir in dirs {
                known.extend(names_in(dir));
            }
            known.sort();
            known.dedup();
            let refs: Vec<&str> = known.iter().map(String::as_str).collect();
            let hint = suggestion(name, &refs);
            return Err(team.error(
                at,
                format!(
                    "no profile named `{name}`.{hint} Known profiles: {}",
                    known.join(", ")
                ),
            ));
        }
    };
    let doc = Document::parse(&text, &file)?;
    let root = KeyPath::root();
    if !doc.value.is_mapping() {
        return Err(doc.error(
            &root,
            "a profile is a map of agent settings (system_message, backend, priority, description)",
        ));
    }
    for forbidden in ["id", "profile"] {
        if doc.value.get(forbidden).is_some() {
            return Err(doc.error(
                &root.key(forbidden),
                format!("a profile cannot set `{forbidden}`; set it in the team file"),
            ));
        }
    }
    let checked: RawAgent = doc.deserialize(doc.value.clone(), &root)?;
    let kind = checked.backend.and_then(|b| b.kind);
    if let Some(kind) = kind.filter(|k| BackendKind::parse(k).is_none()) {
        let names: Vec<&str> = BackendKind::ALL.iter().map(|k| k.as_str()).collect();
        let hint = suggestion(&kind, &names);
        return Err(doc.error(
            &root.key("backend").key("type"),
            format!(
                "unknown backend type `{kind}`.{hint} Supported: {}",
                names.join(", ")
            ),
        ));
    }
    Ok(doc.value)
}

/// The file name and text of profile `name`: the first directory that has it, else built in.
fn find(name: &str, dirs: &[PathBuf]) -> Option<(String, String)> {
    for dir in dirs {
        for ext in ["yaml", "yml"] {
            let path = dir.join(format!("{name}.{ext}"));
            if let Ok(text) = std::fs::read_to_string(&path) {
                return Some((path.display().to_string(), text));
            }
        }
    }
    BUILTIN
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| (format!("built-in agents/{n}.yaml"), (*text).to_owned()))
}

/// Profile names found in `dir` (for "known profiles" lists).
fn names_in(dir: &Path) -> Vec<String> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            let ext = p.extension()?.to_str()?;
            if ext == "yaml" || ext == "yml" {
                Some(p.file_stem()?.to_str()?.to_owned())
            } else {
                None
            }
        })
        .collect()
}

/// `top` laid over `base`: maps merge key by key (recursively), anything else in `top` wins.
pub(crate) fn overlay(base: Value, top: Value) -> Value {
    match (base, top) {
        (Value::Mapping(mut b), Value::Mapping(t)) => {
            for (k, v) in t {
                let merged = match b.remove(&k) {
                    Some(old) => overlay(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            Value::Mapping(b)
        }
        (_, top) => top,
    }
}

/// An empty map value.
pub(crate) fn empty_map() -> Value {
    Value::Mapping(Mapping::new())
}

#[cfg(test)]
#[expect(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn overlay_merges_maps_and_replaces_the_rest() {
        let base: Value = serde_yaml::from_str(
            "system_message: a\nbackend: {type: gemini, model: m, temperature: 0.2}",
        )
        .unwrap();
        let top: Value = serde_yaml::from_str("backend: {model: n}\nid: x").unwrap();
        let out = overlay(base, top);
        assert_eq!(out["backend"]["type"], Value::from("gemini"));
        assert_eq!(out["backend"]["model"], Value::from("n"));
        assert_eq!(out["system_message"], Value::from("a"));
        assert_eq!(out["id"], Value::from("x"));
    }

    #[test]
    fn every_builtin_profile_parses() {
        let team = Document::parse("a: 1", "t.yaml").unwrap();
        for name in builtin_profile_names() {
            let v = load_profile(name, &[], &team, &KeyPath::root());
            assert!(v.is_ok(), "{name}: {v:?}");
        }
    }
}
