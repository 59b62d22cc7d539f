//! The runtime's long-lived actors seen from outside: provider endpoints' health and API keys'
//! status, both shared by every run.

use std::collections::BTreeMap;

use super::Runtime;
use crate::config::TeamConfig;
use crate::keys::{KeyRegistry, KeyStatus};
use crate::provider::ProviderHealth;
use crate::system::ActorSystem;

/// The key registry of a runtime, with every configured key's actor started (so
/// [`Runtime::key_status`] lists each key from the start, used or not). Each key's circuit
/// breaker takes the team's `rate_limit.circuit`, as every endpoint's does.
pub(super) fn key_registry(system: &ActorSystem, team: &TeamConfig) -> KeyRegistry {
    let registry = KeyRegistry::with_circuit(system, team.rate_limit.circuit);
    for agent in &team.agents {
        for key in &agent.backend.api_keys {
            registry.handle(key);
        }
        for member in agent.backend.pool.iter().flat_map(|p| &p.members) {
            for key in &member.backend.api_keys {
                registry.handle(key);
            }
        }
    }
    registry
}

impl Runtime {
    /// The health of the provider actor serving each agent, by agent id: calls, failures,
    /// consecutive failures, timeouts, cancellations, panics, restarts, latencies. Agents on
    /// one HTTP endpoint share its actor, so they show the same figures. An agent whose actor
    /// cannot answer (the runtime's actor system stopped) is left out.
    pub async fn provider_health(&self) -> BTreeMap<String, ProviderHealth> {
        let mut health = BTreeMap::new();
        for (agent, provider) in &self.providers {
            if let Ok(h) = provider.health().await {
                health.insert(agent.clone(), h);
            }
        }
        health
    }

    /// Each provider endpoint's health once (agents sharing an endpoint share its actor),
    /// with the agents it serves, in agent order: what `/status` lists under `providers`. A
    /// pool agent is served by the endpoint of every model of its pool.
    pub async fn endpoint_health(&self) -> Vec<(ProviderHealth, Vec<String>)> {
        let mut seen: Vec<(crate::provider::ProviderRef, Vec<String>)> = Vec::new();
        let mut agents: Vec<&String> = self.providers.keys().collect();
        agents.sort();
        for agent in agents {
            let own = self.providers.get(agent).into_iter();
            let members = self.pool_members.get(agent).into_iter().flatten().flatten();
            for provider in own.chain(members) {
                match seen.iter_mut().find(|(p, _)| p.same_actor(provider)) {
                    Some((_, served)) if served.last() != Some(agent) => served.push(agent.clone()),
                    Some(_) => {}
                    None => seen.push((provider.clone(), vec![agent.clone()])),
                }
            }
        }
        let mut out = Vec::new();
        for (provider, served) in seen {
            if let Ok(h) = provider.health().await {
                out.push((h, served));
            }
        }
        out
    }

    /// Every API key's status (masked, never the secret): healthy or retired with the reason,
    /// circuit breaker state, usage over every agent and run, last error.
    pub fn key_status(&self) -> Vec<KeyStatus> {
        self.keys.status()
    }

    /// The runtime's key registry: one handle per distinct key, shared by every agent and run.
    pub fn key_registry(&self) -> &KeyRegistry {
        &self.keys
    }
}
