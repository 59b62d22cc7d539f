//! [`ModelMoves`]: what each agent's pooled calls did, folded from a run's events
//! (`model_selected`, `model_rotated`, `no_model_available`): the models they went to, the
//! rotations (counted, and the latest kept with their reason) and the times no model of the
//! pool could take a call at once. The run directory keeps one for `status.json`; programs that
//! read `Runtime::subscribe()` can keep their own.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

use super::events::RunEvent;

/// How many rotations per agent are kept with their details (the count goes on beyond).
pub const ROTATIONS_KEPT: usize = 50;

/// One move of a pooled call to another model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// `<provider>/<model>` it left.
    pub from: String,
    /// `<provider>/<model>` it moved to.
    pub to: String,
    /// Why (`rate_limited`, `overloaded`, `transient`, `auth`, `error`).
    pub reason: String,
}

/// One agent's pooled calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgentModels {
    /// The pools its calls used.
    pub pools: BTreeSet<String>,
    /// Per `<provider>/<model>`: the attempts that went to it, a call's first model (its
    /// selection) and each model it was rotated to. An attempt retried on the same model after
    /// a transient error is not counted again.
    pub used: BTreeMap<String, u64>,
    /// Moves to another model.
    pub rotations: u64,
    /// The latest [`ROTATIONS_KEPT`] moves, oldest first.
    pub recent_rotations: VecDeque<Rotation>,
    /// Times no model of the pool could take a call at once: it waited for the earliest freeing
    /// one, or none was capable.
    pub no_model_available: u64,
}

/// Per agent, what its pooled calls did ([`AgentModels`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelMoves {
    agents: BTreeMap<String, AgentModels>,
}

impl ModelMoves {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `event` is one of the pool moves this folds.
    pub fn concerns(event: &RunEvent) -> bool {
        matches!(
            event,
            RunEvent::ModelSelected { .. }
                | RunEvent::ModelRotated { .. }
                | RunEvent::NoModelAvailable { .. }
        )
    }

    fn entry(&mut self, agent: &str, pool: &str) -> &mut AgentModels {
        let a = self.agents.entry(agent.to_owned()).or_default();
        if !a.pools.contains(pool) {
            a.pools.insert(pool.to_owned());
        }
        a
    }

    /// Folds `event` in (any event that is not a pool move is ignored).
    pub fn record(&mut self, event: &RunEvent) {
        match event {
            RunEvent::ModelSelected {
                agent,
                pool,
                provider,
                model,
            } => {
                let a = self.entry(agent, pool);
                *a.used.entry(format!("{provider}/{model}")).or_default() += 1;
            }
            RunEvent::ModelRotated {
                agent,
                pool,
                from,
                to,
                reason,
            } => {
                let a = self.entry(agent, pool);
                *a.used.entry(to.clone()).or_default() += 1;
                a.rotations += 1;
                if a.recent_rotations.len() == ROTATIONS_KEPT {
                    a.recent_rotations.pop_front();
                }
                a.recent_rotations.push_back(Rotation {
                    from: from.clone(),
                    to: to.clone(),
                    reason: reason.clone(),
                });
            }
            RunEvent::NoModelAvailable { agent, pool, .. } => {
                self.entry(agent, pool).no_model_available += 1;
            }
            _ => {}
        }
    }

    /// What `agent`'s pooled calls did (`None`: it made none).
    pub fn agent(&self, agent: &str) -> Option<&AgentModels> {
        self.agents.get(agent)
    }

    /// Whether no pool move was recorded.
    pub fn is_empty(&self) -> bool {
        self.agents.is_empty()
    }

    /// Adds a `models` object to each agent of `agents` (a JSON array of objects with an `id`,
    /// as `status.json` lists them) whose calls went through a pool; other entries are left as
    /// they are.
    pub fn annotate(&self, agents: &mut serde_json::Value) {
        let Some(list) = agents.as_array_mut() else {
            return;
        };
        for entry in list {
            let Some(obj) = entry.as_object_mut() else {
                continue;
            };
            let Some(moves) = obj
                .get("id")
                .and_then(serde_json::Value::as_str)
                .and_then(|id| self.agents.get(id))
            else {
                continue;
            };
            if let Ok(value) = serde_json::to_value(moves) {
                obj.insert("models".to_owned(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn selected(agent: &str, model: &str) -> RunEvent {
        RunEvent::ModelSelected {
            agent: agent.into(),
            pool: "fast".into(),
            provider: "openai".into(),
            model: model.into(),
        }
    }

    fn rotated(agent: &str, from: &str, to: &str) -> RunEvent {
        RunEvent::ModelRotated {
            agent: agent.into(),
            pool: "fast".into(),
            from: format!("openai/{from}"),
            to: format!("openai/{to}"),
            reason: "rate_limited".into(),
        }
    }

    #[test]
    fn folds_selections_rotations_and_waits_per_agent() {
        let mut m = ModelMoves::new();
        for e in [
            selected("a", "cheap"),
            rotated("a", "cheap", "mid"),
            selected("a", "mid"),
            selected("b", "cheap"),
            RunEvent::NoModelAvailable {
                agent: "b".into(),
                pool: "fast".into(),
                eta_ms: Some(900),
            },
            RunEvent::Restart {
                agents: vec!["a".into()],
                trigger: "b".into(),
            },
        ] {
            m.record(&e);
        }
        let a = m.agent("a").unwrap();
        assert_eq!(
            a.used,
            BTreeMap::from([("openai/cheap".into(), 1), ("openai/mid".into(), 2)])
        );
        assert_eq!(a.rotations, 1);
        assert_eq!(a.recent_rotations[0].to, "openai/mid");
        assert_eq!(a.no_model_available, 0);
        let b = m.agent("b").unwrap();
        assert_eq!(b.used, BTreeMap::from([("openai/cheap".into(), 1)]));
        assert_eq!((b.rotations, b.no_model_available), (0, 1));
        assert!(m.agent("c").is_none());
    }

    #[test]
    fn keeps_the_latest_rotations_and_counts_them_all() {
        let mut m = ModelMoves::new();
        let n = ROTATIONS_KEPT + 7;
        for i in 0..n {
            m.record(&rotated("a", &format!("m{i}"), &format!("m{}", i + 1)));
        }
        let a = m.agent("a").unwrap();
        assert_eq!(a.rotations, n as u64);
        assert_eq!(a.recent_rotations.len(), ROTATIONS_KEPT);
        assert_eq!(a.recent_rotations[0].from, "openai/m7");
        assert_eq!(
            a.recent_rotations.back().unwrap().to,
            format!("openai/m{n}")
        );
    }

    #[test]
    fn annotates_only_the_pooled_agents() {
        let mut m = ModelMoves::new();
        m.record(&selected("a", "cheap"));
        let mut agents = serde_json::json!([{"id": "a", "calls": 1}, {"id": "b", "calls": 2}]);
        m.annotate(&mut agents);
        assert_eq!(agents[0]["calls"], 1);
        assert_eq!(agents[0]["models"]["used"]["openai/cheap"], 1);
        assert_eq!(agents[0]["models"]["pools"], serde_json::json!(["fast"]));
        assert_eq!(agents[1], serde_json::json!({"id": "b", "calls": 2}));
    }
}
