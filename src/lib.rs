//! # massgen
//!
//! Runs teams of LLM agents the MassGen way — every agent answers in parallel, sees the others'
//! answers, refines or votes, and the winner presents the final answer — under a quota
//! supervisor that never lets the team exceed a provider's limits.
//!
//! Layers (each module may use only those below it in this list):
//!
//! - [`cli`] — flag parsing and terminal rendering for the `massgen-rs` binary.
//! - [`gateway`] — `massgen-rs serve`: an OpenAI-compatible server in front of the runtime.
//! - [`views`] — live views: the terminal display, the web dashboard, the `/status` document.
//! - [`config`] — team file + limits file -> validated runtime types (two-stage load).
//! - [`runtime`] — the library entry point: build a team, run a question, watch events.
//! - [`orchestrator`] — the MassGen coordination protocol.
//! - [`agent`] — one actor per agent: prompts, tool-call parsing, turn checks.
//! - [`routing`] — key choice, quota acquisition, retries and failover for one LLM call.
//! - [`usage`] — the usage ledger: one record per provider call, priced, written in batches.
//! - [`supervisor`] — the `QuotaSupervisor` actor: all quota state, wait queues, wake-ups.
//! - [`system`] — where the actix actors live: threads of their own or the caller's arbiter.
//! - [`quota`] — pure quota logic: windows, limits, reservations, settlement, clock.
//! - [`provider`] — provider adapters (simulated, OpenAI-compatible, Gemini, Anthropic).
//! - [`keys`] — API keys: secrets that never print, health, usage.
//! - [`telemetry`] — metric catalog, Prometheus exporter, tracing setup.

pub mod agent;
pub mod cli;
pub mod config;
pub mod gateway;
pub mod keys;
pub mod mock_provider;
pub mod orchestrator;
pub mod provider;
pub mod quota;
pub mod routing;
pub mod runtime;
pub mod store;
pub mod supervisor;
pub mod system;
pub mod telemetry;
pub mod usage;
pub mod views;

pub use runtime::{
    AgentState, AgentStats, AnswerRecord, LimitsSource, RunError, RunEvent, RunOutcome, RunStatus,
    Runtime, RuntimeError, RuntimeOptions, VoteRecord,
};
