//! Collecting every problem of one file before reporting: errors, and warnings grouped so that
//! a key repeated on many agents warns once (naming where else it appears).

use std::collections::HashMap;

use super::document::Document;
use super::error::{ConfigError, KeyPath, shown};
use super::types::TeamConfig;

/// How many further places a grouped warning names before it only counts them.
const NAMED_PLACES: usize = 3;

/// Every problem found in one configuration file: errors (the file cannot be used) and
/// warnings (it can, without some of what it asks for), each in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigProblems {
    /// Problems that stop the file from loading.
    pub errors: Vec<ConfigError>,
    /// Problems the file loads with (errors under `--strict`).
    pub warnings: Vec<ConfigError>,
}

impl ConfigProblems {
    /// Every problem, one per line: errors first (`error: ...`), then warnings (`warning: ...`).
    pub fn render(&self) -> String {
        let errors = self.errors.iter().map(|e| format!("error: {e}"));
        let warnings = self.warnings.iter().map(|w| format!("warning: {w}"));
        errors.chain(warnings).collect::<Vec<_>>().join("\n")
    }

    /// The errors as one [`ConfigError`]: the first, carrying the others (all shown by its
    /// `Display`). `None` when there are no errors.
    pub fn into_error(self) -> Option<ConfigError> {
        let mut errors = self.errors.into_iter();
        let first = errors.next()?;
        Some(first.with_more(errors.collect()))
    }
}

/// A team file that loaded, with the warnings it loaded with.
#[derive(Debug, Clone)]
pub struct CheckedTeam {
    /// The validated team.
    pub team: TeamConfig,
    /// What the team will lack (MassGen keys massgen-rs accepts without their feature,
    /// options a backend does not take), in file order.
    pub warnings: Vec<ConfigError>,
}

struct Warning {
    path: KeyPath,
    message: String,
    also: Vec<KeyPath>,
}

/// The problems of one file, collected while it is checked.
pub(crate) struct Diagnostics<'a> {
    doc: &'a Document,
    errors: Vec<ConfigError>,
    warnings: Vec<Warning>,
    groups: HashMap<String, usize>,
    /// Warnings `--strict` leaves as warnings (keys missing from this environment).
    notes: Vec<ConfigError>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(doc: &'a Document) -> Self {
        Self {
            doc,
            errors: Vec::new(),
            warnings: Vec::new(),
            groups: HashMap::new(),
            notes: Vec::new(),
        }
    }

    /// Records an error.
    pub(crate) fn error(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    /// Records the error of `result`, if any, and passes its value on.
    pub(crate) fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(e);
                None
            }
        }
    }

    /// Whether any error was recorded.
    pub(crate) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// Records a warning about this environment rather than the file (a key variable that is
    /// not set): a warning even under `--strict`.
    pub(crate) fn note(&mut self, path: &KeyPath, message: impl Into<String>) {
        let note = self.doc.error(path, message);
        self.notes.push(note);
    }

    /// Records a warning at `path`. Warnings of the same `group` (e.g. `backend.cwd`) are one
    /// warning: the first place, and the others named after it.
    pub(crate) fn warn(&mut self, group: &str, path: &KeyPath, message: impl Into<String>) {
        if let Some(&i) = self.groups.get(group) {
            if let Some(w) = self.warnings.get_mut(i) {
                w.also.push(path.clone());
            }
            return;
        }
        self.groups.insert(group.to_owned(), self.warnings.len());
        self.warnings.push(Warning {
            path: path.clone(),
            message: message.into(),
            also: Vec::new(),
        });
    }

    /// The problems, each list in file order; under `strict` the warnings are errors too.
    pub(crate) fn finish(self, strict: bool) -> ConfigProblems {
        let doc = self.doc;
        let mut warnings: Vec<ConfigError> = self
            .warnings
            .into_iter()
            .map(|w| {
                let mut message = w.message;
                if !w.also.is_empty() {
                    let named: Vec<String> = w
                        .also
                        .iter()
                        .take(NAMED_PLACES)
                        .map(|p| shown(&p.to_string()).into_owned())
                        .collect();
                    let more = w.also.len().saturating_sub(NAMED_PLACES);
                    let tail = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    message.push_str(&format!(" (also at {}{tail})", named.join(", ")));
                }
                doc.error(&w.path, message)
            })
            .collect();
        let mut errors = self.errors;
        if strict {
            errors.extend(warnings.drain(..).map(|w| {
                let message = format!("{} (an error under --strict)", w.message());
                ConfigError::new(w.file(), w.path(), w.line().zip(w.column()), message)
            }));
        }
        warnings.extend(self.notes);
        let order = |e: &ConfigError| (e.line().unwrap_or(0), e.column().unwrap_or(0));
        errors.sort_by_key(order);
        warnings.sort_by_key(order);
        ConfigProblems { errors, warnings }
    }
}
