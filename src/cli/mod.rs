//! The `massgen-rs` command line: flags, progress rendering and exit codes. The binary's `main`
//! parses [`Cli`] and calls [`run`]; everything else lives in the library.

mod args;
mod automation;
mod interrupt;
mod metrics;
mod mock;
mod progress;
mod report;
mod run;
mod serve;
mod stored;
mod usage;
mod validate;

pub use args::{Cli, Command, LogFormatArg, MockProviderArgs, RunArgs, ServeArgs, UsageArgs};
pub use automation::{AutomationReport, render as render_automation};
pub use progress::{Progress, ProgressMode, fmt_elapsed, fmt_wait};
pub use run::{EXIT_CONFIG, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, run};
pub use validate::{describe as describe_limits, list_backends, summary as validate_summary};
