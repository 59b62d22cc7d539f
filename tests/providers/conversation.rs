//! End to end, per dialect: a 3-agent team through the mock server whose calls are paced by a
//! shared quota. Every call is built when its permit is granted, so the agents that call after
//! the first answer see it and vote: one answer in all, every agent stays live and votes, no
//! turn is retried, and the winner has more than one vote.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use massgen::agent::events::RunEvent;
use massgen::config::{
    AgentConfig, BackendConfig, BackendKind, ModelLimits, OrchestratorConfig, RateLimitSettings,
    SimulatedSettings, TeamConfig, TimeoutConfig, UiConfig,
};
use massgen::mock_provider::MockLimits;
use massgen::quota::{Dimension, Limit, ScopeKind};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::{Runtime, RuntimeOptions};

use super::{KINDS, key, mock};

fn agent(id: &str, kind: BackendKind, base_url: String) -> AgentConfig {
    AgentConfig {
        voting_sensitivity: None,
        id: id.to_owned(),
        backend: BackendConfig {
            options: Default::default(),
            pool: None,
            kind,
            model: "mock-model".to_owned(),
            base_url: Some(base_url),
            api_keys: vec![key("team")],
            temperature: None,
            max_tokens: Some(200),
            enable_rate_limit: Some(true),
            simulated: SimulatedSettings::default(),
        },
        system_message: None,
        priority: 0,
        profile: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_team_stays_live_and_votes_without_retries_in_every_dialect() {
    // Wide enough that the first answer is back before the next permit on a loaded machine.
    let window = Duration::from_millis(500);
    for kind in KINDS {
        let server = mock(
            MockLimits::uniform(vec![Limit::new(Dimension::Requests, 1, window).unwrap()]),
            "",
        )
        .await;
        let url = if kind == BackendKind::Gemini {
            server.gemini_url()
        } else {
            server.v1_url()
        };
        let limits = ModelLimits {
            matched: "test".into(),
            limits: vec![Limit::new(Dimension::Requests, 1, window.mul_f64(1.05)).unwrap()],
            scope: ScopeKind::PerKey,
            ..ModelLimits::default()
        };
        let table: HashMap<(String, String), ModelLimits> = HashMap::from([(
            (kind.limits_provider().to_owned(), "mock-model".to_owned()),
            limits,
        )]);
        let team = TeamConfig {
            source: None,
            agents: ["alpha", "beta", "gamma"]
                .map(|id| agent(id, kind, url.clone()))
                .into(),
            orchestrator: OrchestratorConfig::default(),
            timeouts: TimeoutConfig::default(),
            ui: UiConfig::default(),
            rate_limit: RateLimitSettings::default(),
        };
        let options = RuntimeOptions {
            rate_limit: true,
            limits: Some(Arc::new(table)),
            quota: Some(QuotaHandle::start(SupervisorSettings::default()).unwrap()),
            ..RuntimeOptions::default()
        };
        let rt = Runtime::new(team, options).unwrap();
        let mut events = rt.subscribe();
        let out = rt.run("What is 2+2?").await.unwrap();
        let mut retries = Vec::new();
        while let Ok(e) = events.try_recv() {
            if let RunEvent::TurnRetry { agent, reason, .. } = e {
                retries.push((agent, reason));
            }
        }
        assert!(retries.is_empty(), "{kind:?}: {retries:?}");
        assert_eq!(out.answers.len(), 1, "{kind:?}: {:?}", out.answers);
        assert!(
            out.agents.iter().all(|a| a.failure.is_none()),
            "{kind:?}: {:?}",
            out.agents
        );
        let winner = out.winner.clone().unwrap();
        let for_winner = out.votes.iter().filter(|v| v.for_agent == winner).count();
        assert!(for_winner > 1, "{kind:?}: {:?}", out.votes);
        let voters: std::collections::HashSet<&str> =
            out.votes.iter().map(|v| v.agent.as_str()).collect();
        assert_eq!(voters.len(), 3, "{kind:?}: {:?}", out.votes);
        assert_eq!(server.stats().total.refused, 0, "{kind:?}");
    }
}
