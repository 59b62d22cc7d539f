//! The provider actors of a team: one per distinct HTTP endpoint, one per simulated agent (on
//! that agent's thread).

use std::collections::HashMap;
use std::sync::Arc;

use super::{CircuitSettings, ProviderRef};
use crate::config::{AgentConfig, BackendConfig, BackendKind};
use crate::provider::{Provider, SimServer, SimulatedProvider, build_provider};
use crate::system::ActorSystem;

/// The provider actors serving a team.
#[derive(Debug, Default)]
pub struct TeamProviders {
    /// The actor serving each agent (for a pool agent: its pool's first model's).
    pub by_agent: HashMap<String, ProviderRef>,
    /// For each agent on `type: pool`: the actor serving each model of its pool, in the pool's
    /// order (`None` where that model's endpoint cannot be built).
    pub pool_members: HashMap<String, Vec<Option<ProviderRef>>>,
}

/// Starts the provider actors of `agents` on `system` and says which serves each agent: one
/// actor per distinct (backend kind, base URL) for HTTP backends, shared by every agent and
/// pool model on that endpoint (their calls share its concurrency and health); one per agent
/// for the simulated backend, which is built per agent (a pool agent's simulated models share
/// it, and every simulated model of the team counts `model_rpm` on one server). An agent whose
/// backend cannot be built (an OpenAI-compatible `chatcompletion` without a `base_url`) gets
/// none. Every HTTP endpoint has the circuit breaker `circuit` (`rate_limit.circuit`).
pub fn start_for_team(
    system: &ActorSystem,
    agents: &[AgentConfig],
    circuit: CircuitSettings,
) -> TeamProviders {
    let mut starter = Starter {
        system,
        circuit,
        ids: agents.iter().map(|a| a.id.clone()).collect(),
        endpoints: HashMap::new(),
        server: Arc::new(SimServer::new()),
    };
    let mut out = TeamProviders::default();
    for (i, agent) in agents.iter().enumerate() {
        let mut simulated = None;
        if let Some(p) = starter.start(i, agent, &agent.backend, &mut simulated) {
            out.by_agent.insert(agent.id.clone(), p);
        }
        if let Some(pool) = &agent.backend.pool {
            let members = pool
                .members
                .iter()
                .map(|m| starter.start(i, agent, &m.backend, &mut simulated))
                .collect();
            out.pool_members.insert(agent.id.clone(), members);
        }
    }
    out
}

struct Starter<'a> {
    system: &'a ActorSystem,
    circuit: CircuitSettings,
    ids: Vec<String>,
    endpoints: HashMap<(BackendKind, String), ProviderRef>,
    server: Arc<SimServer>,
}

impl Starter<'_> {
    /// The actor serving `backend` for agent number `i`; `simulated` holds the agent's own
    /// simulated actor once started.
    fn start(
        &mut self,
        i: usize,
        agent: &AgentConfig,
        backend: &BackendConfig,
        simulated: &mut Option<ProviderRef>,
    ) -> Option<ProviderRef> {
        if backend.kind == BackendKind::Simulated {
            if let Some(p) = simulated {
                return Some(p.clone());
            }
            let provider: Arc<dyn Provider> = Arc::new(
                SimulatedProvider::new(&agent.id, backend.simulated.clone(), &self.ids)
                    .with_server(self.server.clone()),
            );
            // Its agent only: on the agent's own thread (`worker_at` of its index).
            let p = ProviderRef::start_on(
                &self.system.worker_at(i),
                provider,
                None,
                super::DEFAULT_MAX_IN_FLIGHT,
                self.circuit,
            );
            *simulated = Some(p.clone());
            return Some(p);
        }
        let url = backend
            .base_url
            .as_deref()
            .or(backend.kind.default_base_url())?;
        let endpoint = (backend.kind, url.to_owned());
        if let Some(p) = self.endpoints.get(&endpoint) {
            return Some(p.clone());
        }
        let p = build_provider(backend).ok()?;
        let p = ProviderRef::start_endpoint(self.system, p, Some(url), self.circuit);
        self.endpoints.insert(endpoint, p.clone());
        Some(p)
    }
}
