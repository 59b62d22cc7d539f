//! The wake-up listener: a thread of its own running a small tokio runtime that subscribes to
//! the store's wake-up channel on its own connection (reconnecting after a failure) and raises
//! flags when another process committed (`dirty`: the change stream has news) and when it
//! released or settled something lower (`wake`: waiters may go sooner).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt;

/// How long the listener waits before subscribing again after losing its connection.
const RESUBSCRIBE: Duration = Duration::from_millis(500);

/// Stops the listener when dropped.
pub(super) struct Listener {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The flags the listener raises, and whether it is subscribed.
#[derive(Debug, Clone, Default)]
pub(super) struct Flags {
    /// Another process released or settled something lower.
    pub(super) wake: Arc<AtomicBool>,
    /// Another process committed something.
    pub(super) dirty: Arc<AtomicBool>,
    /// The subscription is up: while it is down, both flags are to be taken as raised.
    pub(super) subscribed: Arc<AtomicBool>,
}

/// Starts listening on `channel`; messages from `me` (this process) are ignored.
pub(super) fn spawn(
    client: redis::Client,
    channel: String,
    me: String,
    flags: Flags,
) -> Option<Listener> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    let spawned = std::thread::Builder::new()
        .name("quota-store-wake".to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::select! {
                    _ = stopped => {}
                    () = listen(client, channel, me, flags) => {}
                }
            });
        });
    match spawned {
        Ok(_) => Some(Listener { stop: Some(stop) }),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the quota store's wake-up listener: other processes' releases are seen at the next poll");
            None
        }
    }
}

async fn listen(client: redis::Client, channel: String, me: String, flags: Flags) {
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                flags.subscribed.store(true, Ordering::Release);
                // What was committed before the subscription took effect is read anyway.
                flags.dirty.store(true, Ordering::Release);
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let payload: String = msg.get_payload().unwrap_or_default();
                    let (from, kind) = payload.split_once(':').unwrap_or((payload.as_str(), "w"));
                    if from != me {
                        flags.dirty.store(true, Ordering::Release);
                        if kind != "c" {
                            flags.wake.store(true, Ordering::Release);
                        }
                    }
                }
            }
        }
        flags.subscribed.store(false, Ordering::Release);
        flags.wake.store(true, Ordering::Release);
        flags.dirty.store(true, Ordering::Release);
        tokio::time::sleep(RESUBSCRIBE).await;
    }
}
