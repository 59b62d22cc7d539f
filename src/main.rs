//! The `massgen-rs` binary: parses the command line and hands it to the library
//! (`massgen::cli::run`), which returns the exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    massgen::cli::run(massgen::cli::Cli::parse())
}
