//! [`LimitsTable`]: the provider/model limits from the built-in `configs/rate_limits.yaml`,
//! overridden entry by entry by a user's limits file, and MassGen's lookup order.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::OnceLock;

use super::error::{ConfigError, KeyPath};
use super::limits_parse::parse_table;
use super::types::{ModelLimits, TeamConfig};

/// The built-in limits file, compiled into the binary.
const BUILTIN: &str = include_str!("../../configs/rate_limits.yaml");
/// The name the built-in file has in errors and `matched` sources.
pub(crate) const BUILTIN_NAME: &str = "built-in configs/rate_limits.yaml";

/// One entry of the table and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// The limits, with `matched` already naming the entry (`gemini/gemini-2.5-pro`).
    pub(crate) limits: ModelLimits,
    /// The file the entry was written in.
    pub(crate) file: String,
    /// Its key path there (`gemini."gemini-2.5-pro"`).
    pub(crate) path: KeyPath,
    /// Its line and column there.
    pub(crate) position: Option<(usize, usize)>,
    /// The line and column of its `shared_key`, if any.
    pub(crate) shared_key_position: Option<(usize, usize)>,
}

impl Entry {
    /// `file:line` of the entry, for messages.
    pub(crate) fn source(&self) -> String {
        match self.position {
            Some((line, _)) => format!("{}:{line}", self.file),
            None => self.file.clone(),
        }
    }
}

/// Limits per provider and model, plus shared groups and a global default.
///
/// Lookup order for `(provider, model)` (MassGen's, made deterministic):
/// 1. the provider's entry named exactly `model`;
/// 2. the provider's entries whose name is contained in `model` — the longest name wins, ties go
///    to the alphabetically first (so `gemini-2.5-flash` serves `gemini-2.5-flash-lite` unless
///    that has its own entry);
/// 3. the provider's `default` entry;
/// 4. the top-level `default` entry;
/// 5. otherwise no limits at all (`matched` is `none`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitsTable {
    pub(crate) providers: BTreeMap<String, BTreeMap<String, Entry>>,
    pub(crate) shared: BTreeMap<String, Entry>,
    pub(crate) global_default: Option<Entry>,
}

impl LimitsTable {
    /// The built-in table (compiled in from `configs/rate_limits.yaml`; a test guarantees it
    /// parses, so this never comes back empty in a released build).
    pub fn builtin() -> LimitsTable {
        static PARSED: OnceLock<LimitsTable> = OnceLock::new();
        PARSED
            .get_or_init(|| parse_table(BUILTIN, BUILTIN_NAME).unwrap_or_default())
            .clone()
    }

    /// The text of the built-in limits file.
    pub fn builtin_text() -> &'static str {
        BUILTIN
    }

    /// Reads and validates a limits file.
    pub fn load_file(path: &Path) -> Result<LimitsTable, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(name.clone(), "", None, format!("cannot read: {e}")))?;
        Self::parse(&text, &name)
    }

    /// Validates limits-file text; `file_name` is used in errors.
    pub fn parse(text: &str, file_name: &str) -> Result<LimitsTable, ConfigError> {
        parse_table(text, file_name)
    }

    /// The limits a team runs under: the built-in table, overridden by the team file's
    /// `rate_limit.limits_file` (if any), then by `extra` (e.g. a `--limits FILE` flag), each
    /// entry by entry.
    pub fn for_team(team: &TeamConfig, extra: Option<&Path>) -> Result<LimitsTable, ConfigError> {
        let mut table = Self::builtin();
        for file in team
            .rate_limit
            .limits_file
            .as_deref()
            .into_iter()
            .chain(extra)
        {
            table = table.merged_with(&Self::load_file(file)?);
        }
        Ok(table)
    }

    /// This table with `user`'s entries replacing same-named ones (per provider/model, per
    /// shared group, and the global default); entries `user` does not name are kept.
    pub fn merged_with(&self, user: &LimitsTable) -> LimitsTable {
        let mut out = self.clone();
        for (provider, models) in &user.providers {
            let slot = out.providers.entry(provider.clone()).or_default();
            for (model, entry) in models {
                slot.insert(model.clone(), entry.clone());
            }
        }
        for (name, entry) in &user.shared {
            out.shared.insert(name.clone(), entry.clone());
        }
        if let Some(d) = &user.global_default {
            out.global_default = Some(d.clone());
        }
        out
    }

    /// The effective limits of `model` at `provider` (see the type's doc for the order).
    pub fn lookup(&self, provider: &str, model: &str) -> ModelLimits {
        self.lookup_entry(provider, model)
            .map(|e| e.limits.clone())
            .unwrap_or_else(|| ModelLimits {
                matched: "none".to_owned(),
                ..ModelLimits::default()
            })
    }

    /// The entry [`LimitsTable::lookup`] uses, if any.
    pub(crate) fn lookup_entry(&self, provider: &str, model: &str) -> Option<&Entry> {
        if let Some(models) = self.providers.get(provider) {
            if let Some(e) = models.get(model).filter(|_| model != "default") {
                return Some(e);
            }
            let mut best: Option<(&String, &Entry)> = None;
            for (name, e) in models {
                if name == "default" || name.is_empty() || !model.contains(name.as_str()) {
                    continue;
                }
                if best.is_none_or(|(b, _)| name.len() > b.len()) {
                    best = Some((name, e));
                }
            }
            if let Some((_, e)) = best {
                return Some(e);
            }
            if let Some(e) = models.get("default") {
                return Some(e);
            }
        }
        self.global_default.as_ref()
    }

    /// The limits of the shared group `name` (defined under `shared:`), `matched` =
    /// `shared:<name>`.
    pub fn shared_group(&self, name: &str) -> Option<ModelLimits> {
        self.shared.get(name).map(|e| e.limits.clone())
    }

    /// Every provider entry as `(provider, model or "default", limits)`, sorted by provider
    /// then model. Shared groups and the global default are not included.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str, &ModelLimits)> {
        self.providers.iter().flat_map(|(p, models)| {
            models
                .iter()
                .map(move |(m, e)| (p.as_str(), m.as_str(), &e.limits))
        })
    }

    /// Names of the shared groups.
    pub fn shared_groups(&self) -> impl Iterator<Item = &str> {
        self.shared.keys().map(String::as_str)
    }

    /// The top-level `default` entry, if any.
    pub fn global_default(&self) -> Option<&ModelLimits> {
        self.global_default.as_ref().map(|e| &e.limits)
    }
}

impl ModelLimits {
    /// A one-line human summary for `--validate` and logs, e.g.
    /// `gemini/gemini-2.5-flash: 9 rpm, 240000 tpm, 245 rpd; startup cooldown 3s; per account;
    /// daily reset 00:00 America/Los_Angeles`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .limits
            .iter()
            .map(|l| format!("{} {}", l.amount, l.short_name()))
            .collect();
        if let Some(c) = self.concurrency {
            parts.push(format!("{c} in flight"));
        }
        if parts.is_empty() {
            parts.push("no limits".to_owned());
        }
        let mut out = format!("{}: {}", self.matched, parts.join(", "));
        if !self.startup_cooldown.is_zero() {
            out.push_str(&format!(
                "; startup cooldown {}",
                super::duration::show_duration(self.startup_cooldown)
            ));
        }
        if !self.limits.is_empty() {
            out.push_str(match self.scope {
                crate::quota::ScopeKind::PerAccount => "; per account",
                crate::quota::ScopeKind::PerKey => "; per key",
            });
        }
        if let Some(group) = &self.shared_key {
            out.push_str(&format!("; shared group {group}"));
        }
        if self.pacing {
            out.push_str("; paced");
        }
        if let Some(n) = self.default_max_tokens {
            out.push_str(&format!("; default max_tokens {n}"));
        }
        if let Some(r) = &self.daily_reset {
            out.push_str(&format!(
                "; daily reset {:02}:{:02} {}",
                r.hour, r.minute, r.tz
            ));
        }
        out
    }
}
