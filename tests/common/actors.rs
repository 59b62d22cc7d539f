//! Actors for tests: an actix System on paused tokio time, and runtime options that put every
//! actor on the test's own arbiter (included with `#[path]` by the test binaries that run
//! teams).

use massgen::RuntimeOptions;
use massgen::system::ActorSystem;

/// An actix System whose tokio clock is paused from the start, for
/// `#[actix_rt::test(system = "crate::actors::PausedSystem")]`.
///
/// Pausing inside the test (`tokio::time::pause()` under a plain `#[actix_rt::test]`) stops the
/// clock a fraction of a millisecond after the runtime started: off the timer's millisecond
/// grid, every sleep then lasts one millisecond longer than asked (measured: 100 ms sleeps take
/// 101 ms), which exact timings cannot tolerate.
pub struct PausedSystem;

impl PausedSystem {
    /// The System's runner (the test macro calls `<system>::new().block_on(..)`, hence the name).
    #[allow(clippy::new_ret_no_self)]
    pub fn new() -> actix_rt::SystemRunner {
        actix_rt::System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("a current-thread tokio runtime")
        })
    }
}

/// Options that put every actor of the runtime on this test's actix arbiter: one thread and
/// one (paused) clock drive the agents, the orchestrator and the quota supervisor.
pub fn local() -> RuntimeOptions {
    RuntimeOptions {
        actors: Some(ActorSystem::current().expect("inside an actix System")),
        ..RuntimeOptions::default()
    }
}
