//! The provider actors of a team: one per distinct HTTP endpoint, one per simulated agent (on
//! that agent's thread).

use std::collections::HashMap;
use std::sync::Arc;

use super::{CircuitSettings, ProviderRef};
use crate::config::{AgentConfig, BackendKind};
use crate::provider::{Provider, SimulatedProvider, build_provider};
use crate::system::ActorSystem;

/// Starts the provider actors of `agents` on `system` and says which serves each agent: one
/// actor per distinct (backend kind, base URL) for HTTP backends, shared by every agent on that
/// endpoint (their calls share its concurrency and health); one per agent for the simulated
/// backend, which is built per agent. An agent whose backend cannot be built (an
/// OpenAI-compatible `chatcompletion` without a `base_url`) gets none. Every HTTP endpoint has
/// the circuit breaker `circuit` (`rate_limit.circuit`).
pub fn start_for_team(
    system: &ActorSystem,
    agents: &[AgentConfig],
    circuit: CircuitSettings,
) -> HashMap<String, ProviderRef> {
    let ids: Vec<String> = agents.iter().map(|a| a.id.clone()).collect();
    let mut endpoints: HashMap<(BackendKind, String), ProviderRef> = HashMap::new();
    let mut by_agent = HashMap::new();
    for (i, agent) in agents.iter().enumerate() {
        let backend = &agent.backend;
        let provider = if backend.kind == BackendKind::Simulated {
            let simulated: Arc<dyn Provider> = Arc::new(SimulatedProvider::new(
                &agent.id,
                backend.simulated.clone(),
                &ids,
            ));
            // Its agent only: on the agent's own thread (`worker_at` of its index).
            Some(ProviderRef::start_on(
                &system.worker_at(i),
                simulated,
                None,
                super::DEFAULT_MAX_IN_FLIGHT,
                circuit,
            ))
        } else {
            let base_url = backend
                .base_url
                .as_deref()
                .or(backend.kind.default_base_url());
            match base_url {
                Some(url) => {
                    let endpoint = (backend.kind, url.to_owned());
                    match endpoints.get(&endpoint) {
                        Some(p) => Some(p.clone()),
                        None => build_provider(backend).ok().map(|p| {
                            let p = ProviderRef::start_endpoint(system, p, Some(url), circuit);
                            endpoints.insert(endpoint, p.clone());
                            p
                        }),
                    }
                }
                None => None,
            }
        };
        if let Some(p) = provider {
            by_agent.insert(agent.id.clone(), p);
        }
    }
    by_agent
}
