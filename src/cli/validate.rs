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
        if let Some(pool) = &b.pool {
            let _ = writeln!(
                out,
                "  {:<16} {:<14} {:<28} priority {}  {} model(s){}",
                agent.id,
                "pool",
                pool.name,
                agent.priority,
                pool.members.len(),
                agent
                    .profile
                    .as_ref()
                    .map(|p| format!("  profile {p}"))
                    .unwrap_or_default()
            );
            continue;
        }
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
    for backend in team.agents.iter().flat_map(|a| a.backends()) {
        let provider = backend.kind.limits_provider();
        let key = (provider, backend.model.as_str());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        let limits = table.lookup(provider, &backend.model);
        let _ = writeln!(out, "  {provider}/{}: {}", backend.model, describe(&limits));
    }
    pools(&mut out, team);
    out
}

/// The models of each agent's pool, in the pool's order, with what they can do and cost, and
/// the pool's entries that cannot be used here.
fn pools(out: &mut String, team: &TeamConfig) {
    let prices = crate::config::PriceTable::with_file(team.rate_limit.prices.as_deref())
        .unwrap_or_else(|_| crate::config::PriceTable::builtin());
    let mut shown: Vec<&str> = Vec::new();
    for agent in &team.agents {
        let Some(pool) = &agent.backend.pool else {
            continue;
        };
        let users: Vec<&str> = team
            .agents
            .iter()
            .filter(|a| a.backend.pool.as_ref().is_some_and(|p| p.name == pool.name))
            .map(|a| a.id.as_str())
            .collect();
        if shown.contains(&pool.name.as_str()) {
            continue;
        }
        shown.push(&pool.name);
        let _ = writeln!(
            out,
            "\nPool {} (agents {}; a call moves through at most {} models on rate limits):",
            pool.name,
            users.join(", "),
            pool.max_models
        );
        for m in &pool.members {
            let e = &m.entry;
            let mut can = vec![format!("context {}", e.context_window)];
            can.push(format!("output {}", e.max_output_tokens));
            for (on, what) in [
                (e.tools, "tools"),
                (e.parallel_tool_calls, "parallel tools"),
                (e.vision, "vision"),
            ] {
                if on {
                    can.push(what.to_owned());
                }
            }
            let price = prices
                .lookup(m.backend.kind.limits_provider(), &e.model)
                .map_or("no price".to_owned(), |p| {
                    format!(
                        "${}/${} per Mtok in/out",
                        p.input_per_mtok, p.output_per_mtok
                    )
                });
            let keys = match m.backend.api_keys.len() {
                0 => String::new(),
                1 => format!("; key {}", m.backend.api_keys[0].masked()),
                n => format!("; {n} keys"),
            };
            let _ = writeln!(
                out,
                "  {}/{} priority {}: {}; {price}{keys}",
                e.provider,
                e.model,
                e.priority,
                can.join(", ")
            );
        }
        for l in &pool.left_out {
            let _ = writeln!(out, "  {} left out: {}", l.label, l.reason);
        }
    }
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
