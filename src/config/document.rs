//! One YAML file in memory: its value, a key path -> position index (built with yaml-rust2's
//! event parser, so validation errors found after deserializing still point at a line), and
//! deserialization into raw serde types with errors that name the key path.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_yaml::Value;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::error::{ConfigError, KeyPath, Seg, shown, suggestion};

/// A parsed YAML file: name, value and the position of every key and list item.
#[derive(Debug, Clone)]
pub(crate) struct Document {
    /// The file name used in errors.
    pub(crate) file: String,
    /// The document (`Null` for an empty file).
    pub(crate) value: Value,
    positions: HashMap<KeyPath, (usize, usize)>,
}

impl Document {
    /// Parses `text`; syntax errors name the line and column.
    pub(crate) fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        // libyaml (through serde_yaml) decides what is valid YAML and reports syntax errors;
        // yaml-rust2's events give the positions of keys and catch duplicate keys.
        let index = index_positions(text);
        let value: Value = match serde_yaml::from_str(text) {
            Ok(mut v) => {
                // `<<: *anchor` merge keys, as YAML 1.1 tools (and MassGen users) write them.
                let merged: Result<(), serde_yaml::Error> = Value::apply_merge(&mut v);
                merged.map_err(|e| {
                    ConfigError::new(
                        file,
                        "",
                        None,
                        format!("cannot apply a `<<` merge key: {e}"),
                    )
                })?;
                v
            }
            Err(e) => {
                if let Ok(Indexed {
                    duplicate: Some((path, at, first)),
                    ..
                }) = &index
                {
                    return Err(ConfigError::new(
                        file,
                        path.to_string(),
                        Some(*at),
                        format!(
                            "duplicate key (first written at line {}); each key may appear only once in a map",
                            first.0
                        ),
                    ));
                }
                if let Ok(Indexed {
                    second_document: Some(at),
                    ..
                }) = &index
                {
                    return Err(ConfigError::new(
                        file,
                        "",
                        Some(*at),
                        "a second YAML document starts here; a configuration file holds one document (remove the `---` or split the file)",
                    ));
                }
                let pos = e.location().map(|l| (l.line(), l.column()));
                // The commonest cause, said plainly: YAML indents with spaces only.
                let tab = pos
                    .and_then(|(line, _)| text.lines().nth(line.saturating_sub(1)))
                    .is_some_and(|l| l.trim_end().starts_with('\t') || l.contains(":\t"));
                let hint = if tab {
                    "; this line has a tab: YAML indents with spaces only"
                } else {
                    ""
                };
                return Err(ConfigError::new(
                    file,
                    "",
                    pos,
                    format!("not valid YAML: {e}{hint}"),
                ));
            }
        };
        Ok(Self {
            file: file.to_owned(),
            value,
            positions: index.map(|i| i.positions).unwrap_or_default(),
        })
    }

    /// The position of `path`, or of its nearest ancestor present in the file.
    pub(crate) fn position(&self, path: &KeyPath) -> Option<(usize, usize)> {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(pos) = self.positions.get(&cur) {
                return Some(*pos);
            }
            p = cur.parent();
        }
        None
    }

    /// An error at `path` in this file.
    pub(crate) fn error(&self, path: &KeyPath, message: impl Into<String>) -> ConfigError {
        ConfigError::new(
            self.file.clone(),
            path.to_string(),
            self.position(path),
            message,
        )
    }

    /// Deserializes `value` (found at `base` in this file) into a raw type; serde's errors are
    /// turned into [`ConfigError`]s that name the key path, with did-you-mean for typos.
    pub(crate) fn deserialize<T: DeserializeOwned>(
        &self,
        value: Value,
        base: &KeyPath,
    ) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let mut path = base.clone();
            for seg in e.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => path = path.index(*index),
                    serde_path_to_error::Segment::Map { key } => path = path.key(key),
                    serde_path_to_error::Segment::Enum { variant } => path = path.key(variant),
                    serde_path_to_error::Segment::Unknown => {}
                }
            }
            let message = cut_quoted(&explain_serde(&e.into_inner().to_string()));
            self.error(&path, message)
        })
    }
}

/// Rewrites serde's messages into ours: unknown keys get a did-you-mean and the valid list,
/// type names become words.
fn explain_serde(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        let (word, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let valid = backticked(tail);
        let hint = suggestion(word, &valid);
        return if valid.is_empty() {
            format!("unknown key `{word}`: no keys are allowed here")
        } else {
            format!(
                "unknown key `{word}`.{hint} Valid keys here: {}",
                valid.join(", ")
            )
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant `") {
        let (word, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let valid = backticked(tail);
        let hint = suggestion(word, &valid);
        return format!(
            "unknown value `{word}`.{hint} Valid values: {}",
            valid.join(", ")
        );
    }
    let mut out = msg.to_owned();
    for (from, to) in [
        ("expected u8", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u64", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        out = out.replace(from, to);
    }
    if let Some(i) = out.find("expected struct ") {
        out.truncate(i);
        out.push_str("expected a map of keys (key: value)");
    }
    if out.contains("expected a sequence") {
        out = out.replace("expected a sequence", "expected a list");
    }
    out.replace("invalid type: sequence", "invalid type: a list")
        .replace("invalid type: map", "invalid type: a map")
}

/// `msg` with every quoted or backticked value cut to what an error may echo (serde's
/// messages quote the offending value whole).
fn cut_quoted(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len().min(4096));
    let mut rest = msg;
    while let Some(i) = rest.find(['"', '`']) {
        let (head, tail) = rest.split_at(i);
        out.push_str(head);
        let quote = &tail[..1];
        let body = &tail[1..];
        match body.find(quote) {
            Some(end) => {
                out.push_str(quote);
                out.push_str(&shown(&body[..end]));
                out.push_str(quote);
                rest = &body[end + 1..];
            }
            None => {
                out.push_str(quote);
                out.push_str(&shown(body));
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The backticked words of `text`: "expected one of `a`, `b`" -> [a, b].
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// A line and column, both 1-based.
type Pos = (usize, usize);

/// A key written twice in one map: its path, the second position and the first.
type Duplicate = (KeyPath, Pos, Pos);

/// What the event pass learns: positions, and the first duplicated key with both positions.
struct Indexed {
    positions: HashMap<KeyPath, (usize, usize)>,
    duplicate: Option<Duplicate>,
    second_document: Option<Pos>,
}

/// Builds the path -> (line, column) index with yaml-rust2's event parser.
fn index_positions(text: &str) -> Result<Indexed, yaml_rust2::ScanError> {
    let mut recv = Indexer::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut recv, true)?;
    Ok(Indexed {
        positions: recv.positions,
        duplicate: recv.duplicate,
        second_document: recv.second_document,
    })
}

enum Frame {
    Map {
        path: KeyPath,
        key: Option<Seg>,
        awaiting_key: bool,
    },
    Seq {
        path: KeyPath,
        next: usize,
    },
}

#[derive(Default)]
struct Indexer {
    stack: Vec<Frame>,
    positions: HashMap<KeyPath, (usize, usize)>,
    duplicate: Option<Duplicate>,
    root_seen: bool,
    /// Where a second document starts (`---` after the first), if any.
    second_document: Option<Pos>,
}

impl Indexer {
    /// Where a node starting now lives; records keys and list items; returns `None` for a
    /// node that is itself a map key.
    /// Containers are positioned by their first entry (see below), scalars where they start.
    fn place_node(
        &mut self,
        scalar: Option<&str>,
        container: bool,
        mark: (usize, usize),
    ) -> Option<KeyPath> {
        match self.stack.last_mut() {
            None => {
                if self.root_seen {
                    return None;
                }
                self.root_seen = true;
                if !container {
                    self.positions.entry(KeyPath::root()).or_insert(mark);
                }
                Some(KeyPath::root())
            }
            Some(Frame::Map {
                path,
                key,
                awaiting_key,
            }) => {
                if *awaiting_key {
                    *awaiting_key = false;
                    let seg = Seg::Key(scalar.unwrap_or("?").to_owned());
                    // A map's own position is that of its first key (the start event of a
                    // block map points past it).
                    self.positions.entry(path.clone()).or_insert(mark);
                    let mut p = path.clone();
                    p.0.push(seg.clone());
                    match self.positions.get(&p) {
                        Some(first) if self.duplicate.is_none() && scalar.is_some() => {
                            self.duplicate = Some((p, mark, *first));
                        }
                        Some(_) => {}
                        None => {
                            self.positions.insert(p, mark);
                        }
                    }
                    *key = Some(seg);
                    None
                } else {
                    let mut p = path.clone();
                    if let Some(seg) = key.take() {
                        p.0.push(seg);
                    }
                    Some(p)
                }
            }
            Some(Frame::Seq { path, next }) => {
                self.positions.entry(path.clone()).or_insert(mark);
                let p = path.index(*next);
                if !container {
                    self.positions.entry(p.clone()).or_insert(mark);
                }
                Some(p)
            }
        }
    }

    /// A node (scalar or container) at the top of the stack has finished.
    fn node_done(&mut self) {
        match self.stack.last_mut() {
            Some(Frame::Map {
                awaiting_key, key, ..
            }) if key.is_none() => *awaiting_key = true,
            Some(Frame::Seq { next, .. }) => *next += 1,
            _ => {}
        }
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, ev: Event, marker: Marker) {
        let mark = (marker.line(), marker.col() + 1);
        if self.second_document.is_some() {
            return;
        }
        let finished_value = match ev {
            Event::DocumentStart if self.root_seen => {
                self.second_document = Some(mark);
                false
            }
            Event::Scalar(ref s, ..) => self.place_node(Some(s), false, mark).is_some(),
            Event::Alias(_) => self.place_node(None, false, mark).is_some(),
            Event::MappingStart(..) => {
                let path = self
                    .place_node(None, true, mark)
                    .unwrap_or_else(|| KeyPath::root().key("?"));
                self.stack.push(Frame::Map {
                    path,
                    key: None,
                    awaiting_key: true,
                });
                false
            }
            Event::SequenceStart(..) => {
                let path = self
                    .place_node(None, true, mark)
                    .unwrap_or_else(|| KeyPath::root().key("?"));
                self.stack.push(Frame::Seq { path, next: 0 });
                false
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
                true
            }
            _ => false,
        };
        if finished_value {
            self.node_done();
        }
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_keys_and_items() {
        let text = "agents:\n  - id: a\n    backend:\n      type: gemini\n  - id: b\n";
        let doc = Document::parse(text, "t.yaml").unwrap();
        let p = KeyPath::root().key("agents").index(1).key("id");
        assert_eq!(doc.position(&p), Some((5, 5)));
        let p = KeyPath::root()
            .key("agents")
            .index(0)
            .key("backend")
            .key("type");
        assert_eq!(doc.position(&p), Some((4, 7)));
        // A missing key falls back to its nearest ancestor.
        let p = KeyPath::root()
            .key("agents")
            .index(0)
            .key("backend")
            .key("model");
        assert_eq!(doc.position(&p), Some((3, 5)));
    }

    #[test]
    fn flow_maps_and_nested_lists_are_indexed() {
        let text = "a: {b: 1, c: [x, {d: 2}]}\ne: 3\n";
        let doc = Document::parse(text, "t.yaml").unwrap();
        let p = KeyPath::root().key("a").key("c").index(1).key("d");
        assert_eq!(doc.position(&p).map(|p| p.0), Some(1));
        assert_eq!(doc.position(&KeyPath::root().key("e")), Some((2, 1)));
    }

    #[test]
    fn merge_keys_are_applied() {
        let text = "base: &b {type: simulated, model: sim}\nagent:\n  backend:\n    <<: *b\n    model: other\n";
        let doc = Document::parse(text, "t.yaml").unwrap();
        assert_eq!(
            doc.value["agent"]["backend"]["type"],
            Value::from("simulated")
        );
        assert_eq!(doc.value["agent"]["backend"]["model"], Value::from("other"));
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let err = Document::parse("a: [1, 2\nb: 3\n", "t.yaml").err();
        let err = err.unwrap();
        assert!(err.line().is_some(), "{err}");
        assert!(err.message().contains("not valid YAML"), "{err}");
    }
}
