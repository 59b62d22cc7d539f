//! [`ApiKey`]: a secret whose `Debug` and `Display` show only its last four characters.

use std::fmt;
use std::sync::Arc;

/// An API key. Cloning is cheap; the secret is shown only through [`ApiKey::expose`].
///
/// `Debug` and `Display` print `****` followed by at most the last four characters (and nothing
/// of keys shorter than 12 characters), so a key can appear in an error without leaking.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    secret: Arc<str>,
    /// Where the key came from, e.g. `env GEMINI_API_KEY` or `team.yaml agents[0].backend.api_key`.
    origin: Arc<str>,
}

impl ApiKey {
    /// Wraps a secret, remembering where it came from (an env var name or a config path).
    pub fn new(secret: impl Into<Arc<str>>, origin: impl Into<Arc<str>>) -> Self {
        Self {
            secret: secret.into(),
            origin: origin.into(),
        }
    }

    /// The secret itself: only for building an HTTP request.
    pub fn expose(&self) -> &str {
        &self.secret
    }

    /// Where the key came from (never the secret).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The masked form: `****` plus the last four characters when the key is long enough.
    pub fn masked(&self) -> String {
        let n = self.secret.chars().count();
        if n >= 12 {
            let tail: String = self.secret.chars().skip(n - 4).collect();
            format!("****{tail}")
        } else {
            "****".to_owned()
        }
    }

    /// What the usage ledger records of the key: the masked form and the short id
    /// (`****1234#1a2b3c4d`): stable across runs, never the secret.
    pub fn fingerprint(&self) -> String {
        format!("{}#{}", self.masked(), self.short_id())
    }

    /// A short stable identifier for metrics and logs: 8 hex digits of a hash of the secret.
    pub fn short_id(&self) -> String {
        // FNV-1a: stable across runs and platforms, and not reversible to the secret.
        let mut h: u32 = 0x811c_9dc5;
        for b in self.secret.as_bytes() {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
        format!("{h:08x}")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("secret", &self.masked())
            .field("origin", &self.origin)
            .finish()
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_secret() {
        let key = ApiKey::new("sk-live-abcdefghijklmnop1234", "env OPENAI_API_KEY");
        let shown = format!("{key} {key:?}");
        assert!(!shown.contains("abcdefghijklmnop"), "{shown}");
        assert!(shown.contains("****1234"), "{shown}");
        assert!(shown.contains("env OPENAI_API_KEY"), "{shown}");
        assert_eq!(key.expose(), "sk-live-abcdefghijklmnop1234");
    }

    #[test]
    fn short_keys_show_nothing() {
        let key = ApiKey::new("short-key", "test");
        assert_eq!(key.masked(), "****");
    }

    #[test]
    fn short_id_is_stable_and_distinct() {
        let a = ApiKey::new("key-a-0000000000", "a");
        let b = ApiKey::new("key-b-0000000000", "b");
        assert_eq!(a.short_id(), a.clone().short_id());
        assert_ne!(a.short_id(), b.short_id());
        assert_eq!(a.short_id().len(), 8);
    }
}
