//! Ctrl-C and SIGTERM: the first ends the run the orderly way (its status and best answer are
//! written), a second quits at once.

use super::run::EXIT_INTERRUPTED;

/// Starts listening for Ctrl-C and SIGTERM now; the returned future completes at the first
/// one. A second one ends the process at once.
pub(super) fn interrupted() -> impl std::future::Future<Output = ()> + Send {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        // The terminal display shows the interruption in its header; a line printed over it
        // would be lost with its screen.
        if !crate::views::display::interrupt() {
            eprintln!(
                "\ninterrupted: stopping the agents and saving the run (Ctrl-C again quits at once)"
            );
        }
        let _ = tx.send(true);
        shutdown_signal().await;
        // Quitting at once skips every destructor: give the terminal back first.
        crate::views::display::restore();
        std::process::exit(i32::from(EXIT_INTERRUPTED));
    });
    async move {
        if rx.wait_for(|stopped| *stopped).await.is_err() {
            // The listener is gone without a signal: nothing will ever stop the run.
            std::future::pending::<()>().await;
        }
    }
}

/// The next Ctrl-C (SIGINT) or, on Unix, SIGTERM. Never completes when no handler could be set.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { std::future::pending::<()>().await },
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
