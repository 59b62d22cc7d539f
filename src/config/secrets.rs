//! Where keys come from: an injectable environment ([`EnvLookup`]) and `${VAR}` interpolation.
//!
//! Rules (documented in `docs/configuration.md`):
//! - `${NAME}` anywhere in a value is replaced by the variable `NAME`;
//! - a value that is exactly `$NAME` is the variable `NAME` too (a `$` elsewhere is literal);
//! - `$${` writes a literal `${`;
//! - a variable that is unset or empty is an error naming the variable and the key path.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// How configuration loading reads environment variables: the process environment (the
/// default) or a fixed map (tests, embedding applications).
#[derive(Clone, Default)]
pub struct EnvLookup {
    map: Option<Arc<HashMap<String, String>>>,
}

impl EnvLookup {
    /// Reads the process environment.
    pub fn process() -> Self {
        Self { map: None }
    }

    /// Reads only the given `(name, value)` pairs.
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let map = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self {
            map: Some(Arc::new(map)),
        }
    }

    /// The value of `name`; unset, empty or non-UTF-8 values are `None`.
    pub fn get(&self, name: &str) -> Option<String> {
        let value = match &self.map {
            Some(map) => map.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        value.filter(|v| !v.is_empty())
    }
}

impl fmt::Debug for EnvLookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.map {
            None => f.write_str("EnvLookup(process)"),
            Some(map) => {
                let mut names: Vec<&String> = map.keys().collect();
                names.sort();
                f.debug_tuple("EnvLookup").field(&names).finish()
            }
        }
    }
}

/// Why interpolation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InterpolateError {
    /// `${NAME}` names a variable that is unset or empty.
    Unset(String),
    /// `${` without a closing `}`, or an empty/invalid name.
    Malformed(String),
}

impl fmt::Display for InterpolateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterpolateError::Unset(name) => write!(
                f,
                "environment variable {name} is not set (or is empty); export it or change the reference"
            ),
            InterpolateError::Malformed(why) => write!(
                f,
                "malformed variable reference ({why}); write ${{NAME}} with NAME made of letters, digits and _"
            ),
        }
    }
}

/// `NAME` when the whole value is one reference (`${NAME}` or `$NAME`).
pub(crate) fn whole_reference(text: &str) -> Option<&str> {
    let name = text
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .or_else(|| text.strip_prefix('$'))?;
    valid_name(name).then_some(name)
}

/// `$NAME` when the whole value is one bare reference.
fn whole_dollar_name(text: &str) -> Option<&str> {
    let name = text.strip_prefix('$')?;
    valid_name(name).then_some(name)
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces `${NAME}` (and a whole-value `$NAME`) with values from `env`.
pub(crate) fn interpolate(text: &str, env: &EnvLookup) -> Result<String, InterpolateError> {
    if let Some(name) = whole_dollar_name(text) {
        return env
            .get(name)
            .ok_or_else(|| InterpolateError::Unset(name.to_owned()));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(InterpolateError::Malformed("no closing `}`".to_owned()));
            };
            let name = &tail[..end];
            if !valid_name(name) {
                return Err(InterpolateError::Malformed(format!(
                    "`{name}` is not a variable name"
                )));
            }
            let value = env
                .get(name)
                .ok_or_else(|| InterpolateError::Unset(name.to_owned()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> EnvLookup {
        EnvLookup::from_pairs([("KEY_A", "alpha-123"), ("HOST", "127.0.0.1"), ("EMPTY", "")])
    }

    #[test]
    fn braces_anywhere_and_bare_whole_value() {
        assert_eq!(interpolate("${KEY_A}", &env()), Ok("alpha-123".to_owned()));
        assert_eq!(interpolate("$KEY_A", &env()), Ok("alpha-123".to_owned()));
        assert_eq!(
            interpolate("http://${HOST}:8000/v1", &env()),
            Ok("http://127.0.0.1:8000/v1".to_owned())
        );
        assert_eq!(interpolate("plain", &env()), Ok("plain".to_owned()));
        assert_eq!(interpolate("a$b", &env()), Ok("a$b".to_owned()));
        assert_eq!(interpolate("$${KEY_A}", &env()), Ok("${KEY_A}".to_owned()));
    }

    #[test]
    fn unset_empty_and_malformed_are_errors() {
        assert_eq!(
            interpolate("${NOPE}", &env()),
            Err(InterpolateError::Unset("NOPE".to_owned()))
        );
        assert_eq!(
            interpolate("$EMPTY", &env()),
            Err(InterpolateError::Unset("EMPTY".to_owned()))
        );
        assert!(matches!(
            interpolate("${KEY_A", &env()),
            Err(InterpolateError::Malformed(_))
        ));
        assert!(matches!(
            interpolate("${1X}", &env()),
            Err(InterpolateError::Malformed(_))
        ));
    }

    #[test]
    fn whole_references() {
        assert_eq!(whole_reference("${A_1}"), Some("A_1"));
        assert_eq!(whole_reference("$A"), Some("A"));
        assert_eq!(whole_reference("x${A}"), None);
        assert_eq!(whole_reference("sk-abc"), None);
    }

    #[test]
    fn debug_lists_names_never_values() {
        let shown = format!("{:?}", env());
        assert!(shown.contains("KEY_A"), "{shown}");
        assert!(!shown.contains("alpha-123"), "{shown}");
    }
}
