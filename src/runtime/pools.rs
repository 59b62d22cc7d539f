//! Agents on `type: pool`: the [`ModelPool`] each run's calls choose from (one member per
//! model and key, with its provider actor, price and quota scopes), and the pools' status.

use std::sync::Arc;

use super::Runtime;
use crate::agent::events::Emitter;
use crate::config::{AgentConfig, ModelLimits, entry_kind};
use crate::routing::Route;
use crate::routing::pooled::{ModelPool, PoolMember};
use crate::telemetry::{LeftOutStatus, ModelStatus, PoolStatus, ScopeStatus};

/// The provider name the limits and price tables use for a pool entry's `provider`.
pub(super) fn limits_provider(provider: &str) -> &str {
    entry_kind(provider).map_or(provider, |k| k.limits_provider())
}

impl Runtime {
    /// Gives each pool agent's route the models it chooses among, their events going to
    /// `emitter`.
    pub(super) fn attach_pools(&self, routes: &mut [Route], emitter: &Emitter) {
        for (agent, route) in self.team.agents.iter().zip(routes.iter_mut()) {
            if let Some(pool) = self.model_pool(agent, Some(emitter.clone())) {
                route.models = Some(Arc::new(pool));
                // The pool's members carry their own keys and scopes.
                route.pool = None;
            }
        }
    }

    /// The models of `agent`'s pool (`None` when it is not on a pool or none can be reached).
    pub(super) fn model_pool(
        &self,
        agent: &AgentConfig,
        events: Option<Emitter>,
    ) -> Option<ModelPool> {
        let pool = agent.backend.pool.as_ref()?;
        let actors = self.pool_members.get(&agent.id)?;
        let mut members = Vec::new();
        for (config, actor) in pool.members.iter().zip(actors) {
            let Some(actor) = actor else {
                continue;
            };
            let provider = limits_provider(&config.entry.provider);
            let limits = self.member_limits(provider, &config.entry.model);
            let price = self.prices.lookup(provider, &config.entry.model).cloned();
            let keys: Vec<Option<&crate::keys::ApiKey>> = if config.backend.api_keys.is_empty() {
                vec![None]
            } else {
                config.backend.api_keys.iter().map(Some).collect()
            };
            for key in keys {
                members.push(PoolMember {
                    provider: actor.clone(),
                    entry: config.entry.clone(),
                    price: price.clone(),
                    key: key.cloned(),
                    scopes: super::quota::backend_scopes(
                        provider,
                        &config.entry.model,
                        key,
                        &limits,
                    ),
                });
            }
        }
        if members.is_empty() {
            return None;
        }
        Some(ModelPool {
            name: pool.name.clone(),
            members,
            max_models: pool.max_models,
            events,
        })
    }

    fn member_limits(&self, provider: &str, model: &str) -> ModelLimits {
        self.options
            .limits
            .as_ref()
            .map(|l| l.lookup(provider, model))
            .unwrap_or_default()
    }
}

impl Runtime {
    /// Every pool the team's agents choose models from (agents naming one pool share it), each
    /// model with its endpoint circuit and its quota scope from `scopes` (the `/status` view of
    /// the supervisor; empty when rate limiting is off): what `/status` lists under `pools`.
    pub fn pool_status(&self, scopes: &[ScopeStatus]) -> Vec<PoolStatus> {
        let now = std::time::Instant::now();
        let mut out: Vec<PoolStatus> = Vec::new();
        for agent in &self.team.agents {
            let Some(config) = &agent.backend.pool else {
                continue;
            };
            if let Some(p) = out.iter_mut().find(|p| p.pool == config.name) {
                p.agents.push(agent.id.clone());
                continue;
            }
            let models: Vec<ModelStatus> = self
                .model_pool(agent, None)
                .map(|pool| pool.members)
                .unwrap_or_default()
                .iter()
                .map(|m| {
                    let scope = m
                        .scopes
                        .first()
                        .and_then(|id| scopes.iter().find(|s| s.scope == id.as_str()));
                    ModelStatus::new(
                        &m.entry.provider,
                        &m.entry.model,
                        m.key.as_ref().map(|k| k.masked()),
                        m.provider.circuit(),
                        scope,
                        now,
                    )
                })
                .collect();
            out.push(PoolStatus {
                pool: config.name.clone(),
                agents: vec![agent.id.clone()],
                available: models.iter().filter(|m| m.available).count(),
                models,
                left_out: config
                    .left_out
                    .iter()
                    .map(|l| LeftOutStatus {
                        model: l.label.clone(),
                        reason: l.reason.clone(),
                    })
                    .collect(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::sync::Arc;

    use crate::config::{LimitsTable, LoadOptions, parse_team};
    use crate::runtime::{Runtime, RuntimeOptions};
    use crate::telemetry::StatusReport;

    /// The shipped pool team: its first model's limit (two a minute at the simulated server) is
    /// learned from a 429 during the run, and the pool status then shows that model closed with
    /// its return time and the learned limit, while the others are available.
    #[test]
    fn the_shipped_pool_team_rotates_and_its_status_shows_the_closed_model() {
        let text = include_str!("../../configs/pool_team.yaml");
        let team = parse_team(text, "pool_team.yaml", &LoadOptions::default()).unwrap();
        let options = RuntimeOptions {
            rate_limit: true,
            limits: Some(Arc::new(LimitsTable::builtin())),
            ..RuntimeOptions::default()
        };
        let runtime = Runtime::new(team, options).unwrap();
        let app = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut events = runtime.subscribe();
        let outcome = app.block_on(runtime.run("Which sort suits nearly sorted data?"));
        assert!(outcome.is_ok(), "{outcome:?}");
        let mut rotations = Vec::new();
        while let Ok(e) = events.try_recv() {
            if let crate::agent::events::RunEvent::ModelRotated {
                from, to, reason, ..
            } = e
            {
                rotations.push((from, to, reason));
            }
        }
        assert!(
            rotations.contains(&(
                "simulated/sim-small".to_owned(),
                "simulated/sim-medium".to_owned(),
                "rate_limited".to_owned()
            )),
            "{rotations:?}"
        );
        let snapshot = app.block_on(runtime.quota_status()).unwrap();
        let report = StatusReport::from_snapshot(&snapshot);
        let pools = runtime.pool_status(&report.scopes);
        assert_eq!(pools.len(), 1);
        let pool = &pools[0];
        assert_eq!(pool.pool, "simulated");
        assert_eq!(pool.agents, ["researcher", "critic", "summarizer"]);
        let small = &pool.models[0];
        assert_eq!(small.model, "sim-small");
        assert!(!small.available, "{small:?}");
        assert!(
            small
                .available_in_secs
                .is_some_and(|s| s > 0.0 && s <= 60.0),
            "{small:?}"
        );
        let quota = small.quota.as_ref().unwrap();
        let requests = quota
            .limits
            .iter()
            .find(|l| l.dimension == "requests")
            .unwrap();
        assert!(requests.learned && requests.limit == 2, "{requests:?}");
        assert!(pool.models[1..].iter().all(|m| m.available), "{pool:?}");
        assert_eq!(pool.available, 2);
    }
}
