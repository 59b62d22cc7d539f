//! The `massgen-rs` command line: flags, progress rendering and exit codes.
