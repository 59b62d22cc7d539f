//! The `massgen-rs` binary: see the library crate `massgen`.

fn main() {}
