//! Configuration: the team file (`team.yaml`, MassGen's format plus our additions) and the limits
//! file (`rate_limits.yaml`), loaded in two stages — raw serde types with unknown keys refused,
//! then validated runtime types. Every error names the file, the key path and the line, and says
//! what would be valid.
//!
//! MassGen's own keys whose feature massgen-rs does not have load with a warning (an error
//! with [`LoadOptions::strict`]); every problem of a file is reported at once
//! ([`check_team`] returns them all as [`ConfigProblems`]).
//!
//! Entry points: [`load_team`] / [`parse_team`] (team file, with [`LoadOptions`]),
//! [`LimitsTable`] (limits files and lookup), [`validate_limits_against_team`] (checks that need
//! both). Every key is described in `docs/configuration.md`.

mod agent;
mod backend_kind;
mod crosscheck;
mod diagnostics;
mod document;
mod duration;
mod error;
mod keycheck;
mod limits;
mod limits_parse;
mod massgen_keys;
pub(crate) mod options;
mod pool_backend;
mod pools;
mod prices;
mod profiles;
mod secrets;
mod sections;
mod team;
mod team_raw;
mod types;

pub use crosscheck::validate_limits_against_team;
// For other files built on the team file's machinery (the gateway's config).
pub(crate) use diagnostics::Diagnostics;
pub use diagnostics::{CheckedTeam, ConfigProblems};
pub(crate) use document::Document;
pub(crate) use duration::duration_from_value;
pub use error::ConfigError;
pub(crate) use error::{KeyPath, shown};
pub use limits::LimitsTable;
pub(crate) use limits_parse::{DEFAULT_WINDOW_GUARD, shorthand_limit};
pub use pool_backend::{LeftOut, PoolBackend, PoolMemberConfig, entry_kind};
pub use pools::{ANY_POOL, PoolEntry, PoolTable};
pub use prices::{Price, PriceTable};
pub use profiles::builtin_profile_names;
pub use secrets::EnvLookup;
pub use team::{LoadOptions, check_team, check_team_text, load_team, parse_team};
pub(crate) use team::{Sections, models_team, read_file as read_config_file};
pub use types::{
    AgentConfig, BackendConfig, BackendKind, BudgetSettings, DEFAULT_CALL_TIMEOUT, DisplayType,
    ModelLimits, NoveltyRequirement, OrchestratorConfig, RateLimitSettings, SimFailure,
    SimulatedSettings, TeamConfig, TimeoutConfig, UiConfig, VotingSensitivity,
};
