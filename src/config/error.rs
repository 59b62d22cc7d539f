//! [`ConfigError`]: what went wrong in a configuration file, and exactly where.

use std::borrow::Cow;
use std::fmt;

/// How many characters of a value from the file an error message echoes.
pub(crate) const ECHO_CHARS: usize = 200;

/// Longest message an error keeps (a safety net behind [`shown`]).
const MESSAGE_CHARS: usize = 4000;

/// `text` as an error message may echo it: whole when short, else its first [`ECHO_CHARS`]
/// characters followed by `… (N bytes)`.
pub(crate) fn shown(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(ECHO_CHARS) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &text[..cut], text.len())),
    }
}

/// One step of a key path: a map key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Seg {
    /// A map key (`backend`).
    Key(String),
    /// A list index (`[1]`).
    Index(usize),
}

/// A key path such as `agents[1].backend.model`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub(crate) struct KeyPath(pub(crate) Vec<Seg>);

impl KeyPath {
    /// The empty path (the document itself).
    pub(crate) fn root() -> Self {
        Self(Vec::new())
    }

    /// This path extended by a map key.
    pub(crate) fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path extended by a list index.
    pub(crate) fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }

    /// The path one step up (`None` for the root).
    pub(crate) fn parent(&self) -> Option<KeyPath> {
        if self.0.is_empty() {
            None
        } else {
            Some(Self(self.0[..self.0.len() - 1].to_vec()))
        }
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let k = shown(k);
                    let plain = !k.is_empty()
                        && k.chars()
                            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '/' | ':'));
                    if plain {
                        f.write_str(&k)?;
                    } else {
                        write!(f, "\"{}\"", k.replace('"', "\\\""))?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A configuration problem: the file, the key path, the position and what would be valid.
///
/// Displays as `configs/team.yaml:12:7: agents[1].backend.model: missing; every agent needs a
/// model (e.g. gemini-2.5-flash)`. Never contains a secret: messages name environment variables
/// and key paths, not values of keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    file: String,
    path: String,
    line: Option<usize>,
    column: Option<usize>,
    message: String,
    /// Further errors of the same file, shown after this one (boxed: errors stay small).
    more: Box<[ConfigError]>,
}

impl ConfigError {
    /// An error in `file` at key `path` (`""` for the whole file), 1-based `line`/`column`
    /// when known.
    pub fn new(
        file: impl Into<String>,
        path: impl Into<String>,
        position: Option<(usize, usize)>,
        message: impl Into<String>,
    ) -> Self {
        let message = message.into();
        let message = match shown_long(&message) {
            Cow::Borrowed(_) => message,
            Cow::Owned(cut) => cut,
        };
        Self {
            file: file.into(),
            path: path.into(),
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            message,
            more: Box::default(),
        }
    }

    /// This error carrying `more` errors of the same file (shown after it).
    pub fn with_more(mut self, more: Vec<ConfigError>) -> Self {
        let mut all = std::mem::take(&mut self.more).into_vec();
        all.extend(more);
        self.more = all.into_boxed_slice();
        self
    }

    /// This error and the further ones it carries, in file order.
    pub fn all(&self) -> impl Iterator<Item = &ConfigError> {
        std::iter::once(self).chain(self.more.iter())
    }

    /// The file as it was named (e.g. `configs/team.yaml`, or `<builtin>/rate_limits.yaml`).
    pub fn file(&self) -> &str {
        &self.file
    }

    /// The key path, e.g. `agents[1].backend.model` (empty when the whole file is at fault).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The 1-based line, when known.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The 1-based column, when known.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// What is wrong and what would be valid.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn render(&self) -> String {
        let mut out = self.file.clone();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(col) = self.column {
                out.push_str(&format!(":{col}"));
            }
        }
        out.push_str(": ");
        if !self.path.is_empty() {
            out.push_str(&self.path);
            out.push_str(": ");
        }
        out.push_str(&self.message);
        for more in &self.more {
            out.push('\n');
            out.push_str(&more.render());
        }
        out
    }
}

/// A whole message cut at [`MESSAGE_CHARS`] characters.
fn shown_long(text: &str) -> Cow<'_, str> {
    match text.char_indices().nth(MESSAGE_CHARS) {
        None => Cow::Borrowed(text),
        Some((cut, _)) => Cow::Owned(format!("{}… ({} bytes)", &text[..cut], text.len())),
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    // A typo is about as long as the word it misspells: a long value is no candidate's typo,
    // and the edit distance below would cost its length times each candidate's.
    let longest = candidates.iter().map(|c| c.len()).max().unwrap_or(0);
    if word.len() > 2 * longest + 8 {
        return None;
    }
    let lower = word.to_lowercase();
    let mut best: Option<(f64, &'a str)> = None;
    for &cand in candidates {
        let c = cand.to_lowercase();
        let distance = strsim::damerau_levenshtein(&lower, &c);
        let allowed = (lower.chars().count().max(c.chars().count()) / 3).max(1);
        let score = strsim::jaro_winkler(&lower, &c);
        let close = distance <= allowed
            || score >= 0.85
            || (lower.len() >= 3 && c.starts_with(&lower))
            || shared_prefix(&lower, &c) >= (lower.len().min(c.len()) / 2).max(4);
        if close && best.is_none_or(|(s, _)| score > s) {
            best = Some((score, cand));
        }
    }
    best.map(|(_, c)| c)
}

/// How many leading characters `a` and `b` share.
fn shared_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// ` Did you mean `x`?` or nothing.
pub(crate) fn suggestion(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates) {
        Some(c) => format!(" Did you mean `{c}`?"),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_the_docs() {
        let p = KeyPath::root()
            .key("agents")
            .index(1)
            .key("backend")
            .key("model");
        assert_eq!(p.to_string(), "agents[1].backend.model");
        let q = KeyPath::root().key("openai").key("gpt-4.1").key("rpm");
        assert_eq!(q.to_string(), "openai.\"gpt-4.1\".rpm");
    }

    #[test]
    fn display_has_file_line_column_path_message() {
        let e = ConfigError::new(
            "t.yaml",
            "agents[1].backend.model",
            Some((12, 7)),
            "missing",
        );
        assert_eq!(
            e.to_string(),
            "t.yaml:12:7: agents[1].backend.model: missing"
        );
        let e = ConfigError::new("t.yaml", "", None, "empty file");
        assert_eq!(e.to_string(), "t.yaml: empty file");
    }

    #[test]
    fn long_values_are_cut_where_echoed() {
        assert_eq!(shown("gemini"), "gemini");
        let long = "é".repeat(300);
        let cut = shown(&long);
        assert_eq!(cut.chars().filter(|c| *c == 'é').count(), ECHO_CHARS);
        assert!(cut.ends_with("… (600 bytes)"), "{cut}");
        let key = KeyPath::root().key("agents").key(&"k".repeat(1000));
        assert!(key.to_string().len() < 260, "{key}");
        let e = ConfigError::new("t.yaml", "", None, "m".repeat(10_000));
        assert!(e.message().len() < 4100);
    }

    #[test]
    fn a_value_far_longer_than_every_candidate_is_no_typo() {
        // The edit distance would cost the value's length times each candidate's: never run.
        let long = "gemini".repeat(1 << 20);
        assert_eq!(did_you_mean(&long, &["gemini", "claude"]), None);
        assert_eq!(
            did_you_mean("geminii", &["gemini", "claude"]),
            Some("gemini")
        );
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(did_you_mean("modle", &["type", "model"]), Some("model"));
        assert_eq!(did_you_mean("gemni", &["gemini", "claude"]), Some("gemini"));
        assert_eq!(did_you_mean("banana", &["gemini", "claude"]), None);
        assert_eq!(
            did_you_mean("system_prompt", &["id", "backend", "system_message"]),
            Some("system_message")
        );
        assert_eq!(
            did_you_mean("enable", &["enable_rate_limit", "limits_file"]),
            Some("enable_rate_limit")
        );
    }
}
