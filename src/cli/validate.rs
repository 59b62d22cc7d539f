//! `--validate` and `--list-backends`: what a user sees before anything runs.

use std::fmt::Write as _;

use crate::cli::progress::fmt_wait as humanize_period;
use crate::config::{BackendKind, LimitsTable, ModelLimits, TeamConfig};
use crate::quota::ScopeKind;

/// The `--list-backends` table.
pub fn list_backends() -> String {
    let mut out = String::from("Supported backend types (backend.type):\n");
    let _ = writeln!(
        out,
        "  {:<15} {:<20} default base_url",
        "type", "key variable"
    );
    for kind in BackendKind::ALL {
        let _ = writeln!(
            out,
            "  {:<15} {:<20} {}",
            kind.as_str(),
            match kind {
                BackendKind::ChatCompletion => "OPENAI_API_KEY *",
                _ => kind.default_key_env().unwrap_or("(none)"),
            },
            kind.default_base_url().unwrap_or(match kind {
                BackendKind::Simulated => "(in-process, no network)",
                _ => "(base_url required)",
            })
        );
    }
    out.push_str(
        "  * chatcompletion reads the key variable of the provider its base_url names \
         (e.g. CEREBRAS_API_KEY for api.cerebras.ai), else OPENAI_API_KEY when set\n",
    );
    out
}

/// The `--validate` summary: agents, where rate limiting stands and why, and the effective
/// limits of every model the team uses.
pub fn summary(team: &TeamConfig, table: &LimitsTable, rate_limit: bool, why: &str) -> String {
    let mut out = String::new();
    let file = team
        .source
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let _ = writeln!(out, "{file}: valid — {} agent(s)", team.agents.len());
    let _ = writeln!(out, "\nAgents:");
    for agent in &team.agents {
        let b = &agent.backend;
        let keys = match b.api_keys.len() {
            0 => "no key".to_owned(),
            1 => format!(
                "key {} ({})",
                b.api_keys[0].masked(),
                b.api_keys[0].origin()
            ),
            n => format!("{n} keys"),
        };
        let _ = writeln!(
            out,
            "  {:<16} {:<14} {:<28} priority {}  {}{}",
            agent.id,
            b.kind.as_str(),
            b.model,
            agent.priority,
            keys,
            agent
                .profile
                .as_ref()
                .map(|p| format!("  profile {p}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "\nRate limiting: {} ({why})",
        if rate_limit { "on" } else { "off" }
    );
    let state = team.rate_limit.state.clone().unwrap_or_default();
    let shared = match state {
        crate::store::StoreSpec::Memory => "limits hold inside this process only",
        crate::store::StoreSpec::Sqlite(_) => {
            "limits hold across runs and processes that use this file"
        }
        crate::store::StoreSpec::Redis { .. } => {
            "limits hold across runs, processes and machines that use this database"
        }
    };
    let _ = writeln!(out, "Quota state: {state} ({shared})");
    let _ = writeln!(out, "\nEffective limits per model:");
    let mut seen = Vec::new();
    for agent in &team.agents {
        let provider = agent.backend.kind.limits_provider();
        let key = (provider, agent.backend.model.as_str());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let limits = table.lookup(provider, &agent.backend.model);
        let _ = writeln!(
            out,
            "  {provider}/{}: {}",
            agent.backend.model,
            describe(&limits)
        );
    }
    out
}

/// One line describing effective limits: `2 rpm, 120000 tpm, 48 rpd; concurrency 2; ...`.
pub fn describe(limits: &ModelLimits) -> String {
    let mut parts: Vec<String> = limits
        .limits
        .iter()
        .map(|l| format!("{} {}", l.amount, l.short_name()))
        .collect();
    if parts.is_empty() {
        parts.push("unlimited".to_owned());
    }
    let mut text = parts.join(", ");
    if let Some(c) = limits.concurrency {
        let _ = write!(text, "; concurrency {c}");
    }
    if !limits.startup_cooldown.is_zero() {
        let _ = write!(
            text,
            "; startup cooldown {}",
            humanize_period(limits.startup_cooldown)
        );
    }
    if limits.pacing {
        text.push_str("; paced");
    }
    text.push_str(match limits.scope {
        ScopeKind::PerKey => "; per key",
        ScopeKind::PerAccount => "; per account",
    });
    if let Some(reset) = &limits.daily_reset {
        let _ = write!(
            text,
            "; daily reset {:02}:{:02} {}",
            reset.hour, reset.minute, reset.tz
        );
    }
    if let Some(group) = &limits.shared_key {
        let _ = write!(text, "; shared group {group}");
    }
    let _ = write!(text, "  [entry {}]", limits.matched);
    text
}
