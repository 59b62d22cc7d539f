//! Checks that need both files: does every agent's request fit its limits, and does every
//! `shared_key` the team uses name a defined group?

use super::document::Document;
use super::error::{ConfigError, KeyPath};
use super::limits::LimitsTable;
use super::types::TeamConfig;
use crate::quota::Dimension;

/// Checks `team` against the effective limits `table` (built-in merged with the user's file):
/// a token limit smaller than one request's `max_tokens` can never admit that agent's calls,
/// and a `shared_key` must name a group under `shared:`. Errors point at the team file's
/// `agents[i].backend.max_tokens` (or at the limits entry for a missing group).
pub fn validate_limits_against_team(
    team: &TeamConfig,
    table: &LimitsTable,
) -> Result<(), ConfigError> {
    // Positions come from re-reading the team file; without it errors carry no line.
    let doc = team.source.as_ref().and_then(|p| {
        let text = std::fs::read_to_string(p).ok()?;
        Document::parse(&text, &p.display().to_string()).ok()
    });
    let file = team
        .source
        .as_ref()
        .map_or_else(|| "team".to_owned(), |p| p.display().to_string());
    let single = doc.as_ref().is_some_and(|d| d.value.get("agent").is_some());
    for (i, agent) in team.agents.iter().enumerate() {
        let base = if single {
            KeyPath::root().key("agent")
        } else {
            KeyPath::root().key("agents").index(i)
        };
        let provider = agent.backend.kind.limits_provider();
        let Some(entry) = table.lookup_entry(provider, &agent.backend.model) else {
            continue;
        };
        if let Some(group) = &entry.limits.shared_key {
            if table.shared_group(group).is_none() {
                let known: Vec<&str> = table.shared_groups().collect();
                let at = entry.path.key("shared_key");
                return Err(ConfigError::new(
                    entry.file.clone(),
                    at.to_string(),
                    entry.shared_key_position,
                    format!(
                        "names the group `{group}` (used by agent `{}`), which no `shared:` section defines{}",
                        agent.id,
                        if known.is_empty() {
                            String::new()
                        } else {
                            format!("; defined groups: {}", known.join(", "))
                        }
                    ),
                ));
            }
        }
        let cooldown = entry.limits.startup_cooldown;
        if let Some(acquire_timeout) = team.rate_limit.acquire_timeout.filter(|t| cooldown >= *t) {
            let path = KeyPath::root()
                .key("rate_limit")
                .key("acquire_timeout_seconds");
            let message = format!(
                "{} s is not longer than the {} s startup cooldown of {} ({}), used by agent `{}`: its first request would always give up; raise acquire_timeout_seconds above {} s or shorten startup_cooldown",
                acquire_timeout.as_secs_f64(),
                cooldown.as_secs_f64(),
                entry.limits.matched,
                entry.source(),
                agent.id,
                cooldown.as_secs_f64()
            );
            return Err(match &doc {
                Some(d) => d.error(&path, message),
                None => ConfigError::new(file.clone(), path.to_string(), None, message),
            });
        }
        let Some(max_tokens) = agent.backend.max_tokens else {
            continue;
        };
        let smallest = entry
            .limits
            .limits
            .iter()
            .filter(|l| matches!(l.dimension, Dimension::Tokens | Dimension::OutputTokens))
            .min_by_key(|l| l.amount);
        if let Some(limit) = smallest {
            if u64::from(max_tokens) > limit.amount.get() {
                let path = base.key("backend").key("max_tokens");
                let message = format!(
                    "{max_tokens} is more than the {} limit of {} tokens for {} ({}): one request could never be admitted; lower max_tokens or raise the limit in your limits file",
                    limit.short_name(),
                    limit.amount,
                    entry.limits.matched,
                    entry.source()
                );
                return Err(match &doc {
                    Some(d) => d.error(&path, message),
                    None => ConfigError::new(file.clone(), path.to_string(), None, message),
                });
            }
        }
    }
    Ok(())
}
