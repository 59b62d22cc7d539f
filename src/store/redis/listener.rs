//! The wake-up listener: a thread of its own running a small tokio runtime that subscribes to
//! the store's wake-up channel on its own connection (reconnecting after a failure) and raises
//! a flag when another process released or settled something lower.

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

/// Starts listening on `channel`; messages whose payload is `me` (this process's own) are
/// ignored. `flag` is raised for every other one, and while the subscription is down (unsure).
pub(super) fn spawn(
    client: redis::Client,
    channel: String,
    me: String,
    flag: Arc<AtomicBool>,
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
                    () = listen(client, channel, me, flag) => {}
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

async fn listen(client: redis::Client, channel: String, me: String, flag: Arc<AtomicBool>) {
    loop {
        if let Ok(mut pubsub) = client.get_async_pubsub().await {
            if pubsub.subscribe(&channel).await.is_ok() {
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let from: String = msg.get_payload().unwrap_or_default();
                    if from != me {
                        flag.store(true, Ordering::Release);
                    }
                }
            }
        }
        flag.store(true, Ordering::Release);
        tokio::time::sleep(RESUBSCRIBE).await;
    }
}
