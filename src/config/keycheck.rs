//! The key pass over a team file, before its sections are deserialized: every key of every map
//! massgen-rs reads is sorted into "read here" (kept), "MassGen's, feature not implemented"
//! (one warning per key, then removed) and "unknown" (an error with a did-you-mean, then
//! removed) — so every key problem of the file is found in one pass, not one per run.

use serde::de::DeserializeOwned;
use serde_yaml::{Mapping, Value};

use super::diagnostics::Diagnostics;
use super::document::Document;
use super::error::{KeyPath, shown, suggestion};
use super::massgen_keys::{Section, lacking};
use super::team_raw::{
    RawAgent, RawBackend, RawOrchestrator, RawRateLimit, RawTeam, RawTimeouts, RawUi,
};

/// The keys the raw type `T` reads, as its serde definition names them (so a key added to a
/// raw type is known here without a second list).
pub(crate) fn fields_of<T: DeserializeOwned>() -> Vec<String> {
    const PROBE: &str = "__key_probe__";
    let mut probe = Mapping::new();
    probe.insert(Value::from(PROBE), Value::Null);
    match serde_yaml::from_value::<T>(Value::Mapping(probe)) {
        Ok(_) => Vec::new(),
        Err(e) => {
            let msg = e.to_string();
            let tail = msg.split_once("expected").map_or("", |(_, t)| t);
            tail.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        }
    }
}

/// Checks the keys of the whole team `value` (profiles already merged in), recording
/// problems in `diags` and removing every key that is not read.
pub(crate) fn check_team_keys(doc: &Document, value: &mut Value, diags: &mut Diagnostics<'_>) {
    let root = KeyPath::root();
    let Value::Mapping(map) = value else {
        return;
    };
    check::<RawTeam>(doc, map, &root, Section::Top, diags);
    if let Some(Value::Sequence(list)) = map.get_mut("agents") {
        for (i, item) in list.iter_mut().enumerate() {
            check_agent(doc, item, &root.key("agents").index(i), diags);
        }
    }
    if let Some(item) = map.get_mut("agent") {
        check_agent(doc, item, &root.key("agent"), diags);
    }
    if let Some(Value::Mapping(m)) = map.get_mut("orchestrator") {
        let at = root.key("orchestrator");
        if let Some(Value::Mapping(c)) = m.get_mut("coordination") {
            // None of it is implemented: each key is MassGen's (one warning for the section)
            // or unknown (an error).
            check_map(
                doc,
                c,
                &at.key("coordination"),
                Section::Coordination,
                &[],
                diags,
            );
            if c.is_empty() {
                m.remove("coordination");
            }
        }
        check::<RawOrchestrator>(doc, m, &at, Section::Orchestrator, diags);
    }
    if let Some(Value::Mapping(m)) = map.get_mut("timeout_settings") {
        let at = root.key("timeout_settings");
        check::<RawTimeouts>(doc, m, &at, Section::Timeouts, diags);
    }
    if let Some(Value::Mapping(m)) = map.get_mut("ui") {
        check::<RawUi>(doc, m, &root.key("ui"), Section::Ui, diags);
    }
    if let Some(Value::Mapping(m)) = map.get_mut("rate_limit") {
        // Ours alone: no MassGen keys live here.
        check::<RawRateLimit>(doc, m, &root.key("rate_limit"), Section::Own, diags);
    }
}

fn check_agent(doc: &Document, item: &mut Value, at: &KeyPath, diags: &mut Diagnostics<'_>) {
    let Value::Mapping(map) = item else {
        return;
    };
    check::<RawAgent>(doc, map, at, Section::Agent, diags);
    if let Some(Value::Mapping(b)) = map.get_mut("backend") {
        check::<RawBackend>(doc, b, &at.key("backend"), Section::Backend, diags);
    }
}

/// Sorts the keys of one map of `section` (read by `T`); removes those `T` does not read.
fn check<T: DeserializeOwned>(
    doc: &Document,
    map: &mut Mapping,
    at: &KeyPath,
    section: Section,
    diags: &mut Diagnostics<'_>,
) {
    let fields = fields_of::<T>();
    let read: Vec<&str> = fields.iter().map(String::as_str).collect();
    check_map(doc, map, at, section, &read, diags);
}

/// Sorts the keys of one map of `section` whose readable keys are `read`; removes the others.
fn check_map(
    doc: &Document,
    map: &mut Mapping,
    at: &KeyPath,
    section: Section,
    read: &[&str],
    diags: &mut Diagnostics<'_>,
) {
    let mut drop = Vec::new();
    for key in map.keys() {
        let Some(name) = key.as_str() else {
            diags.error(doc.error(
                at,
                format!(
                    "a key here is not text (`{}`); keys are names such as {}",
                    shown(&key_text(key)),
                    read.first().copied().unwrap_or("id")
                ),
            ));
            drop.push(key.clone());
            continue;
        };
        if read.contains(&name) {
            continue;
        }
        let path = at.key(name);
        if let Some(why) = lacking(section, name) {
            let group = match section {
                Section::Coordination => "coordination".to_owned(),
                _ => format!("{}.{name}", section_name(section)),
            };
            diags.warn(
                &group,
                &path,
                format!("MassGen's `{name}` has no effect here — {why}"),
            );
        } else {
            let hint = suggestion(name, read);
            let message = if read.is_empty() {
                format!(
                    "unknown key `{}`: not one of MassGen's keys for this section",
                    shown(name)
                )
            } else {
                format!(
                    "unknown key `{}`.{hint} Valid keys here: {}",
                    shown(name),
                    read.join(", ")
                )
            };
            diags.error(doc.error(&path, message));
        }
        drop.push(key.clone());
    }
    for key in drop {
        map.remove(&key);
    }
}

fn key_text(key: &Value) -> String {
    serde_yaml::to_string(key)
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn section_name(section: Section) -> &'static str {
    match section {
        Section::Top => "top",
        Section::Agent => "agent",
        Section::Backend => "backend",
        Section::Orchestrator => "orchestrator",
        Section::Coordination => "coordination",
        Section::Timeouts => "timeout_settings",
        Section::Ui => "ui",
        Section::Own => "own",
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_from_the_raw_types() {
        let backend = fields_of::<RawBackend>();
        for key in ["type", "model", "top_p", "reasoning", "betas", "simulated"] {
            assert!(backend.iter().any(|f| f == key), "{key}: {backend:?}");
        }
        let agent = fields_of::<RawAgent>();
        assert!(agent.iter().any(|f| f == "voting_sensitivity"), "{agent:?}");
        assert!(agent.iter().any(|f| f == "description"), "{agent:?}");
    }

    #[test]
    fn massgen_keys_warn_once_unknown_keys_err_and_both_are_removed() {
        let text = "agents:\n  - id: a\n    backend: {type: gemini, model: m, cwd: w1, modle: x}\n  - id: b\n    backend: {type: gemini, model: m, cwd: w2}\nbogus: 1\n";
        let doc = Document::parse(text, "t.yaml").unwrap();
        let mut value = doc.value.clone();
        let mut diags = Diagnostics::new(&doc);
        check_team_keys(&doc, &mut value, &mut diags);
        let problems = diags.finish(false);
        assert_eq!(problems.errors.len(), 2, "{problems}");
        assert!(
            problems.errors[0]
                .message()
                .contains("Did you mean `model`?")
        );
        assert_eq!(problems.errors[1].path(), "bogus");
        assert_eq!(problems.warnings.len(), 1, "{problems}");
        let w = &problems.warnings[0];
        assert_eq!(w.path(), "agents[0].backend.cwd");
        assert!(w.message().contains("also at agents[1].backend.cwd"), "{w}");
        assert_eq!(w.line(), Some(3));
        assert!(value["agents"][0]["backend"].get("cwd").is_none());
        assert!(value["agents"][0]["backend"].get("modle").is_none());
        assert!(value.get("bogus").is_none());
    }
}
