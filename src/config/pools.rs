//! [`PoolTable`]: model pools per task type (`fast`, `research`, `code`, `vision`, `cheap`,
//! `smart`, `simulated`), from the built-in `configs/pools.yaml`, overridden entry by entry by a
//! user's pools file (`rate_limit.pools`, like `rate_limit.prices`). Entries carry capabilities
//! and sizes only: prices come from the price table, limits from the limits table.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_yaml::Value;

use super::document::Document;
use super::error::{ConfigError, KeyPath, suggestion};
use super::types::BackendKind;

/// The built-in pools file, compiled into the binary.
const BUILTIN: &str = include_str!("../../configs/pools.yaml");
/// The name the built-in file has in errors.
const BUILTIN_NAME: &str = "built-in configs/pools.yaml";

/// The logical name that means every entry of every pool.
pub const ANY_POOL: &str = "any";

/// One model of a pool, with what it can do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PoolEntry {
    /// The provider as the limits file names it (`gemini`, `openai`, `anthropic`, `simulated`,
    /// or any backend type such as `chatcompletion` with a `base_url`).
    pub provider: String,
    /// The model name as the provider knows it.
    pub model: String,
    /// Tie-break between candidates of equal estimated cost: lower first (default 100).
    #[serde(default = "default_priority")]
    pub priority: u32,
    /// Whether it takes tool definitions.
    #[serde(default)]
    pub tools: bool,
    /// Whether it may call several tools in one answer.
    #[serde(default)]
    pub parallel_tool_calls: bool,
    /// Whether it takes images.
    #[serde(default)]
    pub vision: bool,
    /// Context window in tokens (input and output together).
    pub context_window: u64,
    /// Most output tokens one answer may have.
    pub max_output_tokens: u32,
    /// An OpenAI-compatible endpoint serving this model (`None`: the provider's default).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Where the figures come from.
    pub source: String,
    /// When they were read there (`YYYY-MM-DD`).
    pub as_of: String,
}

fn default_priority() -> u32 {
    100
}

/// Pools by name (see `configs/pools.yaml` for the format).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolTable {
    pools: BTreeMap<String, Vec<PoolEntry>>,
}

impl PoolTable {
    /// The built-in pools (a test guarantees they parse).
    pub fn builtin() -> PoolTable {
        static PARSED: OnceLock<PoolTable> = OnceLock::new();
        PARSED
            .get_or_init(|| parse(BUILTIN, BUILTIN_NAME).unwrap_or_default())
            .clone()
    }

    /// Validates pools-file text; `file_name` is used in errors.
    pub fn parse(text: &str, file_name: &str) -> Result<PoolTable, ConfigError> {
        parse(text, file_name)
    }

    /// The built-in pools overridden by `user` (a pools file), entry by entry.
    pub fn with_file(user: Option<&Path>) -> Result<PoolTable, ConfigError> {
        let mut table = Self::builtin();
        if let Some(path) = user {
            let name = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(name.clone(), "", None, format!("cannot read: {e}"))
            })?;
            table = table.merged_with(&parse(&text, &name)?);
        }
        Ok(table)
    }

    /// This table with `user`'s entries replacing those of the same pool, provider and model;
    /// new entries and pools are added at the end.
    pub fn merged_with(&self, user: &PoolTable) -> PoolTable {
        let mut out = self.clone();
        for (pool, entries) in &user.pools {
            let slot = out.pools.entry(pool.clone()).or_default();
            for e in entries {
                match slot
                    .iter_mut()
                    .find(|x| x.provider == e.provider && x.model == e.model)
                {
                    Some(x) => *x = e.clone(),
                    None => slot.push(e.clone()),
                }
            }
        }
        out
    }

    /// The entries of pool `name` in order; `any` is every entry of every pool (each provider
    /// and model once). `None` for an unknown name.
    pub fn resolve(&self, name: &str) -> Option<Vec<PoolEntry>> {
        if name == ANY_POOL {
            let mut all: Vec<PoolEntry> = Vec::new();
            for e in self.pools.values().flatten() {
                if !all
                    .iter()
                    .any(|x| x.provider == e.provider && x.model == e.model)
                {
                    all.push(e.clone());
                }
            }
            return Some(all);
        }
        self.pools.get(name).cloned()
    }

    /// Every pool name (with `any`).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.pools.keys().map(String::as_str).collect();
        names.push(ANY_POOL);
        names
    }
}

fn parse(text: &str, file: &str) -> Result<PoolTable, ConfigError> {
    let doc = Document::parse(text, file)?;
    let root = KeyPath::root();
    let Value::Mapping(map) = &doc.value else {
        return Err(doc.error(&root, "expected a map of pool names to lists of models"));
    };
    let providers: Vec<&str> = BackendKind::ALL
        .iter()
        .map(|k| k.limits_provider())
        .collect();
    let mut table = PoolTable::default();
    for (k, v) in map {
        let Value::String(pool) = k else {
            return Err(doc.error(&root, "pool names must be text"));
        };
        let ppath = root.key(pool);
        if pool == ANY_POOL {
            return Err(doc.error(
                &ppath,
                "`any` means every pool's entries: choose another name",
            ));
        }
        let entries: Vec<PoolEntry> = doc.deserialize(v.clone(), &ppath)?;
        for (i, e) in entries.iter().enumerate() {
            let epath = ppath.index(i);
            if !providers.contains(&e.provider.as_str()) {
                let hint = suggestion(&e.provider, &providers);
                return Err(doc.error(
                    &epath.key("provider"),
                    format!("unknown provider `{}`.{hint}", e.provider),
                ));
            }
            if e.context_window == 0 || e.max_output_tokens == 0 {
                return Err(doc.error(&epath, "context_window and max_output_tokens must be > 0"));
            }
            if chrono::NaiveDate::parse_from_str(&e.as_of, "%Y-%m-%d").is_err() {
                return Err(doc.error(
                    &epath.key("as_of"),
                    format!("`{}` is not a date like 2025-08-07", e.as_of),
                ));
            }
            if e.source.trim().is_empty() {
                return Err(doc.error(
                    &epath.key("source"),
                    "must name where the figures come from",
                ));
            }
        }
        table.pools.insert(pool.clone(), entries);
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_builtin_pools_parse_and_logical_names_resolve() {
        let t = parse(BUILTIN, BUILTIN_NAME).unwrap();
        for name in [
            "fast",
            "research",
            "code",
            "vision",
            "cheap",
            "smart",
            "simulated",
        ] {
            assert!(!t.resolve(name).unwrap().is_empty(), "{name}");
        }
        let any = t.resolve("any").unwrap();
        assert!(any.len() >= t.resolve("fast").unwrap().len() + 3);
        assert!(t.resolve("nope").is_none());
    }

    #[test]
    fn a_user_file_replaces_entries_one_by_one_and_errors_name_the_line() {
        let user = parse(
            "fast:\n  - {provider: openai, model: gpt-4o-mini, priority: 0, context_window: 9, max_output_tokens: 9, source: mine, as_of: 2025-09-01}\n",
            "u.yaml",
        )
        .unwrap();
        let merged = PoolTable::builtin().merged_with(&user);
        let fast = merged.resolve("fast").unwrap();
        assert_eq!(
            fast.len(),
            PoolTable::builtin().resolve("fast").unwrap().len()
        );
        let e = fast.iter().find(|e| e.model == "gpt-4o-mini").unwrap();
        assert_eq!((e.priority, e.context_window), (0, 9));
        let err = parse(
            "fast:\n  - provider: opnai\n    model: m\n    context_window: 1\n    max_output_tokens: 1\n    source: s\n    as_of: 2025-01-01\n",
            "u.yaml",
        )
        .unwrap_err();
        assert_eq!(err.file(), "u.yaml");
        assert_eq!(err.path(), "fast[0].provider");
        assert_eq!(err.line(), Some(2));
        assert!(err.message().contains("openai"), "{}", err.message());
        let err = parse(
            "fast:\n  - {provider: openai, model: m, colour: red}\n",
            "u.yaml",
        )
        .unwrap_err();
        assert!(err.message().contains("colour"), "{}", err.message());
    }
}
