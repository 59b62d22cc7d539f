//! The quota engine and the QuotaSupervisor: property tests against an independent brute-force
//! reference, and deterministic actor tests on paused time. One test binary for both.

mod cancel;
mod props;
mod reserve;
mod sent;
mod shared;
mod signals;
mod supervisor;
mod waiting;

/// An actix System on a current-thread tokio runtime paused from the start: the supervisor is
/// an actix actor, and one arbiter with one clock lets paused time drive it exactly. (Pausing a
/// clock that already ran leaves it off the millisecond grid, and every timer one tick late.)
#[allow(clippy::unwrap_used)]
fn paused_system() -> actix_rt::SystemRunner {
    actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap()
    })
}

/// The System of `#[actix_rt::test(system = "crate::Paused")]`: [`paused_system`].
pub struct Paused;

impl Paused {
    /// A paused actix System.
    pub fn new() -> actix_rt::SystemRunner {
        paused_system()
    }
}
