//! Configuration: the team file (`team.yaml`, MassGen's format plus our additions) and the limits
//! file (`rate_limits.yaml`), loaded in two stages — raw serde types with unknown keys refused,
//! then validated runtime types. Every error names the file, the key path and the line, and says
//! what would be valid.

mod types;

pub use types::{
    AgentConfig, BackendConfig, BackendKind, DisplayType, ModelLimits, NoveltyRequirement,
    OrchestratorConfig, RateLimitSettings, SimFailure, SimulatedSettings, TeamConfig,
    TimeoutConfig, UiConfig, VotingSensitivity,
};
