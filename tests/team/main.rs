//! Whole runs over the simulated backend, through the library API (one test binary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use massgen::config::{AgentConfig, BackendKind, SimulatedSettings, TeamConfig};
use massgen::{RunError, RunEvent, RunStatus, Runtime, RuntimeOptions};
use tokio::sync::broadcast;

use actors::local;

fn agent(id: &str, sim: SimulatedSettings) -> AgentConfig {
    AgentConfig::simulated(id, sim)
}

fn team(agents: Vec<AgentConfig>) -> TeamConfig {
    TeamConfig::new(agents)
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

#[path = "../common/actors.rs"]
mod actors;
mod embedding;
mod outputs;
mod protocol;
mod quota;
mod supervision;
