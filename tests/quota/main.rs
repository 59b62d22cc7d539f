//! The quota engine and the QuotaSupervisor: property tests against an independent brute-force
//! reference, and deterministic actor tests on paused time. One test binary for both.

mod cancel;
mod compact;
mod props;
mod reserve;
mod sent;
mod shared;
mod shared_redis;
mod signals;
mod status;
mod supervisor;
mod waiting;

#[path = "../common/redis.rs"]
mod redis_server;

#[path = "../common/actors.rs"]
#[allow(dead_code, clippy::expect_used)]
mod actors;

/// An actix System paused from the start, for the tests that build their own (property tests
/// run many cases, each on a fresh System): see [`actors::PausedSystem`].
fn paused_system() -> actix_rt::SystemRunner {
    actors::PausedSystem::new()
}
