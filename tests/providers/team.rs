//! End to end: a 3-agent team through the mock server with limits tight enough to bind.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use massgen::config::{
    AgentConfig, BackendConfig, BackendKind, ModelLimits, OrchestratorConfig, RateLimitSettings,
    SimulatedSettings, TeamConfig, TimeoutConfig, UiConfig,
};
use massgen::mock_provider::MockLimits;
use massgen::quota::{Dimension, Limit, ScopeKind};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::{Runtime, RuntimeOptions};

use super::{key, mock};

fn agent(id: &str, kind: BackendKind, base_url: String) -> AgentConfig {
    AgentConfig {
        id: id.to_owned(),
        backend: BackendConfig {
            kind,
            model: "mock-model".to_owned(),
            base_url: Some(base_url),
            api_keys: vec![key(id)],
            temperature: None,
            max_tokens: Some(200),
            enable_rate_limit: Some(true),
            simulated: SimulatedSettings::default(),
            options: Default::default(),
            pool: None,
        },
        system_message: Some(format!("You are agent {id}.")),
        priority: 0,
        profile: None,
        voting_sensitivity: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_through_the_mock_with_binding_limits_get_no_429() {
    // The mock allows 2 requests per second per key; the supervisor is told the same limit with
    // a 5 % longer window, a margin for the time between a grant and the request's arrival.
    let window = Duration::from_secs(1);
    let mock_limit = Limit::new(Dimension::Requests, 2, window).unwrap();
    let server = mock(MockLimits::uniform(vec![mock_limit]), "").await;
    let margin = window.mul_f64(1.05);
    let limits = ModelLimits {
        matched: "test".into(),
        limits: vec![Limit::new(Dimension::Requests, 2, margin).unwrap()],
        concurrency: NonZeroU32::new(2),
        scope: ScopeKind::PerKey,
        ..ModelLimits::default()
    };
    let mut table: HashMap<(String, String), ModelLimits> = HashMap::new();
    for kind in [
        BackendKind::OpenAi,
        BackendKind::Gemini,
        BackendKind::Claude,
    ] {
        table.insert(
            (kind.limits_provider().to_owned(), "mock-model".to_owned()),
            limits.clone(),
        );
    }
    // One key shared by the whole team, so the limit binds across agents.
    let mut agents = vec![
        agent("alpha", BackendKind::OpenAi, server.v1_url()),
        agent("beta", BackendKind::OpenAi, server.v1_url()),
        agent("gamma", BackendKind::OpenAi, server.v1_url()),
    ];
    for a in &mut agents {
        a.backend.api_keys = vec![key("team")];
    }
    let team = TeamConfig {
        source: None,
        agents,
        orchestrator: OrchestratorConfig::default(),
        timeouts: TimeoutConfig::default(),
        ui: UiConfig::default(),
        rate_limit: RateLimitSettings {
            enabled: Some(true),
            limits_file: None,
            acquire_timeout: Some(Duration::from_secs(60)),
            state: None,
            prices: None,
            circuit: Default::default(),
            budget: None,
            pools: None,
        },
    };
    let options = RuntimeOptions {
        rate_limit: true,
        limits: Some(Arc::new(table)),
        quota: Some(QuotaHandle::start(SupervisorSettings::default()).unwrap()),
        ..RuntimeOptions::default()
    };
    let rt = Runtime::new(team, options).unwrap();
    let out = rt.run("What is 2+2?").await.unwrap();
    assert!(
        out.final_answer.contains("Final answer"),
        "{}",
        out.final_answer
    );
    assert!(out.winner.is_some());
    let stats = server.stats();
    assert_eq!(stats.total.refused, 0, "zero 429s: {stats:?}");
    assert!(stats.total.admitted >= 4, "{stats:?}");
    let waited: Duration = out.agents.iter().map(|a| a.quota_wait).sum();
    assert!(
        waited > Duration::ZERO,
        "the limit bound: agents waited for quota"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_team_of_all_three_dialects_gets_no_429() {
    // Each agent speaks another dialect with its own key; 1 request per second per key binds
    // every agent (each makes at least two calls).
    let window = Duration::from_secs(1);
    let server = mock(
        MockLimits::uniform(vec![Limit::new(Dimension::Requests, 1, window).unwrap()]),
        "",
    )
    .await;
    let limits = ModelLimits {
        matched: "test".into(),
        limits: vec![Limit::new(Dimension::Requests, 1, window.mul_f64(1.05)).unwrap()],
        scope: ScopeKind::PerKey,
        ..ModelLimits::default()
    };
    let mut table: HashMap<(String, String), ModelLimits> = HashMap::new();
    for kind in [
        BackendKind::OpenAi,
        BackendKind::Gemini,
        BackendKind::Claude,
    ] {
        table.insert(
            (kind.limits_provider().to_owned(), "mock-model".to_owned()),
            limits.clone(),
        );
    }
    let team = TeamConfig {
        source: None,
        agents: vec![
            agent("alpha", BackendKind::OpenAi, server.v1_url()),
            agent("beta", BackendKind::Gemini, server.gemini_url()),
            agent("gamma", BackendKind::Claude, server.v1_url()),
        ],
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
    let out = Runtime::new(team, options)
        .unwrap()
        .run("What is 2+2?")
        .await
        .unwrap();
    assert!(
        out.final_answer.contains("Final answer"),
        "{}",
        out.final_answer
    );
    let stats = server.stats();
    assert_eq!(stats.total.refused, 0, "zero 429s: {stats:?}");
    assert_eq!(
        stats.by_key_model.len(),
        3,
        "each agent used its own key: {stats:?}"
    );
}
