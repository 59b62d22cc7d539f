//! Live views of a runtime: what a user watches while a team runs or the gateway serves.
//!
//! - [`display`]: the terminal display of a run (ratatui): agent panels, a quota strip per
//!   scope, the winner. The CLI drives it when stderr is a terminal.
//! - [`dashboard`]: the web dashboard at `/` (page, stylesheet and script compiled into the
//!   binary), mounted by the CLI's `--metrics-addr` server and by the gateway.
//! - [`status_json`]: the `/status` document both servers answer and the dashboard reads.
//!
//! Views sit beside [`crate::cli`] and [`crate::gateway`] at the top of the layers: they read
//! the runtime, supervisor and telemetry, and nothing below imports them.

pub mod dashboard;
pub mod display;
mod format;
mod status;

pub use dashboard::DashboardMode;
pub use format::{event_note, fmt_elapsed, fmt_wait, state_words};
pub use status::{status_json, status_json_with};
