//! One call as the provider actor runs it: wait for a slot, call the adapter under the call's
//! timeout with panics caught, race all of it against the caller leaving, answer the caller.

use std::any::Any;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tracing::Instrument;

use super::Chat;
use crate::provider::{ChatResponse, Provider, ProviderError, ProviderErrorKind};

/// How a call ended, for the actor's health figures.
#[derive(Debug)]
pub(super) enum Finished {
    /// The adapter answered (or the timeout cut it); the caller got the result.
    Answered {
        /// From the slot being granted to the answer.
        elapsed: Duration,
        /// The error's text when it failed.
        error: Option<String>,
        /// The error's kind when it failed.
        kind: Option<ProviderErrorKind>,
        /// Whether the call timeout cut it.
        timed_out: bool,
    },
    /// The caller left first: the call was cancelled.
    Abandoned,
    /// The adapter panicked; the caller got an error naming the panic.
    Panicked {
        /// The error the caller got.
        error: String,
    },
}

/// Runs `msg`'s call on `provider` with one of `slots` (see the module docs of the actor).
pub(super) async fn run(provider: Arc<dyn Provider>, slots: Arc<Semaphore>, msg: Chat) -> Finished {
    let Chat {
        request,
        key,
        sink,
        timeout,
        mut reply,
        span,
    } = msg;
    let work = async {
        // The semaphore is never closed; were it, the call would go on without a slot.
        let _slot = slots.acquire().await.ok();
        let started = Instant::now();
        // The adapter is called inside the future so a panic before its first await is caught.
        let call =
            AssertUnwindSafe(async { provider.chat(&request, key.as_ref(), sink.as_ref()).await })
                .catch_unwind();
        let outcome = tokio::time::timeout(timeout, call).instrument(span).await;
        (outcome, started.elapsed())
    };
    let done = tokio::select! {
        biased;
        () = reply.closed() => None,
        done = work => Some(done),
    };
    let Some((outcome, elapsed)) = done else {
        return Finished::Abandoned;
    };
    // The caller may take the request back without a copy once this share is gone.
    drop(request);
    let (result, finished): (Result<ChatResponse, ProviderError>, Finished) = match outcome {
        Ok(Ok(result)) => {
            let error = result.as_ref().err().map(ToString::to_string);
            let kind = result.as_ref().err().map(|e| e.kind);
            (
                result,
                Finished::Answered {
                    elapsed,
                    error,
                    kind,
                    timed_out: false,
                },
            )
        }
        Ok(Err(payload)) => {
            let error = ProviderError::new(
                ProviderErrorKind::Internal,
                format!(
                    "the provider actor `{}` panicked during the call ({}); the call failed \
                     and the actor was restarted",
                    provider.name(),
                    panic_text(payload.as_ref())
                ),
            );
            let text = error.to_string();
            (Err(error), Finished::Panicked { error: text })
        }
        Err(_) => {
            let error = timed_out(timeout);
            let text = error.to_string();
            (
                Err(error),
                Finished::Answered {
                    elapsed,
                    error: Some(text),
                    kind: Some(ProviderErrorKind::Transient),
                    timed_out: true,
                },
            )
        }
    };
    // A caller that left just now misses the answer; the call counts as made either way.
    let _ = reply.send(result);
    finished
}

/// The error of a call cut by its timeout.
pub(super) fn timed_out(timeout: Duration) -> ProviderError {
    ProviderError::new(
        ProviderErrorKind::Transient,
        format!(
            "the call took longer than {} s and was cancelled (timeout_settings.call_timeout_seconds)",
            timeout.as_secs_f64()
        ),
    )
}

/// The message of a panic payload (`panic!` with a literal or a formatted string), or a
/// placeholder for other payloads.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "a panic without a message"
    }
}
