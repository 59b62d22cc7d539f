#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::*;
use crate::keys::ApiKey;
use crate::provider::{Message, StreamSink};
use crate::system::ActorSystem;

/// Sets a flag when dropped: tells whether a provider's future was dropped (cancelled).
struct DropFlag(Arc<AtomicU32>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A provider that takes `latency` per call, panics on the calls listed in `panic_on`, and
/// counts calls, futures dropped and the most calls running at once.
#[derive(Debug, Default)]
struct Probe {
    latency: Duration,
    panic_on: Vec<u32>,
    calls: AtomicU32,
    dropped: Arc<AtomicU32>,
    running: Arc<AtomicU32>,
    most: Arc<AtomicU32>,
}

impl Provider for Probe {
    fn name(&self) -> &str {
        "probe"
    }

    fn chat<'a>(
        &'a self,
        _request: &'a ChatRequest,
        _key: Option<&'a ApiKey>,
        _sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            let _flag = DropFlag(self.dropped.clone());
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.running.fetch_sub(1, Ordering::SeqCst);
            if self.panic_on.contains(&n) {
                panic!("probe call {n} blew up");
            }
            Ok(ChatResponse {
                text: format!("answer {n}"),
                ..ChatResponse::default()
            })
        })
    }
}

fn request() -> Arc<ChatRequest> {
    Arc::new(ChatRequest {
        model: "m".into(),
        messages: vec![Message::user("hi")],
        tools: Vec::new(),
        temperature: None,
        max_tokens: None,
        stream: false,
        options: Default::default(),
    })
}

const LONG: Duration = Duration::from_secs(3600);

fn start(probe: Probe) -> (ProviderRef, Arc<Probe>) {
    let probe = Arc::new(probe);
    let p = ProviderRef::start(&ActorSystem::current().unwrap(), probe.clone());
    (p, probe)
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn calls_run_concurrently_and_the_mailbox_keeps_flowing() {
    let (p, probe) = start(Probe {
        latency: Duration::from_secs(10),
        ..Probe::default()
    });
    let started = tokio::time::Instant::now();
    let calls: Vec<_> = (0..5)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.chat(request(), None, None, LONG).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Answered while five calls are in flight.
    let h = p.health().await.unwrap();
    assert_eq!((h.in_flight, h.calls), (5, 0), "{h:?}");
    for c in calls {
        assert!(c.await.unwrap().is_ok());
    }
    assert_eq!(started.elapsed(), Duration::from_secs(10), "side by side");
    assert_eq!(probe.most.load(Ordering::SeqCst), 5);
    let h = p.health().await.unwrap();
    assert_eq!((h.calls, h.successes, h.in_flight), (5, 5, 0));
    assert_eq!(h.mean_latency_ms, Some(10_000.0));
    assert_eq!(h.max_in_flight, DEFAULT_MAX_IN_FLIGHT);
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn at_most_max_in_flight_calls_run_at_once() {
    let probe = Arc::new(Probe {
        latency: Duration::from_secs(1),
        ..Probe::default()
    });
    let p = ProviderRef::start_with(&ActorSystem::current().unwrap(), probe.clone(), 2);
    let started = tokio::time::Instant::now();
    let calls: Vec<_> = (0..6)
        .map(|_| {
            let p = p.clone();
            tokio::spawn(async move { p.chat(request(), None, None, LONG).await })
        })
        .collect();
    for c in calls {
        assert!(c.await.unwrap().is_ok());
    }
    assert_eq!(probe.most.load(Ordering::SeqCst), 2);
    assert_eq!(started.elapsed(), Duration::from_secs(3));
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_call_past_its_timeout_is_cancelled_with_a_clear_error() {
    let (p, probe) = start(Probe {
        latency: Duration::from_secs(10),
        ..Probe::default()
    });
    let e = p
        .chat(request(), None, None, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Transient);
    assert!(
        e.message.contains("longer than 2 s")
            && e.message.contains("timeout_settings.call_timeout_seconds"),
        "{e}"
    );
    assert_eq!(
        probe.dropped.load(Ordering::SeqCst),
        1,
        "the call was dropped"
    );
    let h = p.health().await.unwrap();
    assert_eq!((h.calls, h.failures, h.timeouts), (1, 1, 1), "{h:?}");
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_caller_that_gives_up_cancels_the_provider_call() {
    let (p, probe) = start(Probe {
        latency: LONG,
        ..Probe::default()
    });
    let gave_up =
        tokio::time::timeout(Duration::from_secs(5), p.chat(request(), None, None, LONG)).await;
    assert!(gave_up.is_err(), "the caller's own timeout ended the wait");
    // The actor sees the reply channel close on its next turn.
    tokio::task::yield_now().await;
    tokio::task::yield_now().await;
    assert_eq!(probe.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        probe.dropped.load(Ordering::SeqCst),
        1,
        "the provider's future was dropped"
    );
    let h = p.health().await.unwrap();
    assert_eq!((h.abandoned, h.calls, h.in_flight), (1, 0, 0), "{h:?}");
    // A caller gone before its message is read costs no call at all.
    let (reply, answer) = tokio::sync::oneshot::channel();
    drop(answer);
    p.addr.do_send(Chat {
        request: request(),
        key: None,
        sink: None,
        timeout: LONG,
        reply,
        span: tracing::Span::none(),
    });
    let h = p.health().await.unwrap();
    assert_eq!(h.abandoned, 2);
    assert_eq!(probe.calls.load(Ordering::SeqCst), 1);
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_panic_fails_its_call_clearly_and_the_actor_is_restarted() {
    let (p, probe) = start(Probe {
        latency: Duration::from_secs(1),
        panic_on: vec![1],
        ..Probe::default()
    });
    // Call 1 panics after 1 s; call 2 is in flight then, on the same actor.
    let first = {
        let p = p.clone();
        tokio::spawn(async move { p.chat(request(), None, None, LONG).await })
    };
    tokio::task::yield_now().await;
    let second = {
        let p = p.clone();
        tokio::spawn(async move { p.chat(request(), None, None, LONG).await })
    };
    let e = first.await.unwrap().unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Internal);
    assert!(!e.is_retryable());
    assert!(
        e.message.contains("panicked")
            && e.message.contains("probe call 1 blew up")
            && e.message.contains("restarted"),
        "{e}"
    );
    // The call in flight on the stopped actor fails at once (retryable), never hangs.
    let e2 = tokio::time::timeout(Duration::from_secs(60), second)
        .await
        .expect("no hang")
        .unwrap()
        .unwrap_err();
    assert_eq!(e2.kind, ProviderErrorKind::Dropped, "{e2}");
    assert!(e2.message.contains("stopped before answering"), "{e2}");
    // Restarted: the next call works, and the figures survived the restart.
    let ok = p.chat(request(), None, None, LONG).await.unwrap();
    assert_eq!(ok.text, "answer 3");
    let h = p.health().await.unwrap();
    assert_eq!((h.restarts, h.panics, h.successes), (1, 1, 1), "{h:?}");
    assert_eq!(probe.dropped.load(Ordering::SeqCst), 3);
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn timeouts_open_the_circuit_whose_timer_turns_it_half_open_for_one_probe() {
    let probe = Arc::new(Probe {
        latency: Duration::from_secs(10),
        ..Probe::default()
    });
    let circuit = CircuitSettings {
        failures_to_open: 2,
        open_for: Duration::from_secs(30),
    };
    let p = ProviderRef::start_on(
        &ActorSystem::current().unwrap().worker(),
        probe.clone(),
        Some("https://user:pw@example.test/v1?k=1"),
        DEFAULT_MAX_IN_FLIGHT,
        circuit,
    );
    assert_eq!(p.endpoint(), "https://example.test/v1");
    // A caller that gives up first counts for nothing.
    let gave_up = tokio::time::timeout(Duration::from_secs(1), p.chat(request(), None, None, LONG));
    assert!(gave_up.await.is_err());
    let short = Duration::from_secs(1);
    for _ in 0..2 {
        let e = p.chat(request(), None, None, short).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Transient, "{e}");
    }
    let h = p.health().await.unwrap();
    assert_eq!(
        (h.circuit, h.timeouts, h.abandoned),
        (EndpointState::Open, 2, 1)
    );
    assert_eq!(h.circuit_open_ms, Some(30_000));
    let e = p.chat(request(), None, None, LONG).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::CircuitOpen, "{e}");
    assert!(e.message.contains("https://example.test/v1") && !e.message.contains("pw"));
    assert_eq!(
        probe.calls.load(Ordering::SeqCst),
        3,
        "nothing sent while open"
    );
    // The actor's timer turns it half-open with no call needed.
    tokio::time::sleep(Duration::from_secs(30)).await;
    tokio::task::yield_now().await;
    assert_eq!(p.circuit().state, EndpointState::HalfOpen);
    let ok = p.chat(request(), None, None, LONG).await;
    assert!(ok.is_ok(), "{ok:?}");
    assert_eq!(probe.calls.load(Ordering::SeqCst), 4);
    let h = p.health().await.unwrap();
    assert_eq!(
        (h.circuit, h.rejected, h.calls),
        (EndpointState::Closed, 1, 3)
    );
    assert_eq!(h.latency_p50_ms, Some(1000));
    assert_eq!(h.latency_p99_ms, Some(10_000));
    assert!((h.error_rate.unwrap() - 2.0 / 3.0).abs() < 1e-9);
}
