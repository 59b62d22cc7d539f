//! The `massgen-rs` command line: flags, progress rendering and exit codes. `main` calls
//! [`main`]; everything else lives in the library.

mod args;
mod automation;
mod progress;

pub use args::{Cli, Command, LogFormatArg, MockProviderArgs, RunArgs};
pub use automation::{AutomationReport, render as render_automation};
pub use progress::{Progress, ProgressMode, fmt_elapsed, fmt_wait};
