//! Whole runs over the simulated backend, through the library API (one test binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use massgen::config::{
    AgentConfig, BackendConfig, BackendKind, OrchestratorConfig, RateLimitSettings,
    SimulatedSettings, TeamConfig, TimeoutConfig, UiConfig,
};
use massgen::{RunError, RunEvent, RunStatus, Runtime, RuntimeOptions};
use tokio::sync::broadcast;

fn agent(id: &str, sim: SimulatedSettings) -> AgentConfig {
    AgentConfig {
        id: id.to_owned(),
        backend: BackendConfig {
            kind: BackendKind::Simulated,
            model: "sim-1".to_owned(),
            base_url: None,
            api_keys: Vec::new(),
            temperature: None,
            max_tokens: None,
            enable_rate_limit: None,
            simulated: sim,
        },
        system_message: None,
        priority: 0,
        profile: None,
    }
}

fn team(agents: Vec<AgentConfig>) -> TeamConfig {
    TeamConfig {
        source: None,
        agents,
        orchestrator: OrchestratorConfig::default(),
        timeouts: TimeoutConfig::default(),
        ui: UiConfig::default(),
        rate_limit: RateLimitSettings::default(),
    }
}

fn latency(ms: u64) -> SimulatedSettings {
    SimulatedSettings {
        latency: Duration::from_millis(ms),
        ..SimulatedSettings::default()
    }
}

fn drain(rx: &mut broadcast::Receiver<RunEvent>) -> Vec<RunEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

mod outputs;
mod protocol;
mod quota;
