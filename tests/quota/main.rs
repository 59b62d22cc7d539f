//! The quota engine and the QuotaSupervisor: property tests against an independent brute-force
//! reference, and deterministic actor tests on paused time. One test binary for both.

mod props;
mod reserve;
mod sent;
mod signals;
mod supervisor;
mod waiting;
