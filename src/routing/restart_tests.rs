//! A panic in one agent's call on a shared provider actor restarts the actor; the calls of
//! other agents it dropped are retried at once and charged to nobody's key.
#![allow(clippy::unwrap_used, clippy::panic)]
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::keys::{ApiKey, CircuitSettings, KeyPool, KeyRegistry};
use crate::provider::{
    ChatRequest, ChatResponse, Message, Provider, ProviderError, ProviderRef, StreamSink,
};
use crate::quota::ScopeKind;
use crate::routing::{CallObserver, RetryPolicy, Route};
use crate::system::ActorSystem;

#[derive(Debug, Default)]
struct Probe {
    calls: AtomicU32,
}

impl Provider for Probe {
    fn name(&self) -> &str {
        "openai"
    }
    fn chat<'a>(
        &'a self,
        _: &'a ChatRequest,
        _: Option<&'a ApiKey>,
        _: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if n == 1 {
                panic!("adapter bug on call {n}");
            }
            Ok(ChatResponse {
                text: "ok".into(),
                ..ChatResponse::default()
            })
        })
    }
}

struct Quiet;
impl CallObserver for Quiet {
    fn retrying(&self, _: u32, _: &str, _: Duration) {}
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![Message::user("hi")],
        tools: Vec::new(),
        temperature: None,
        max_tokens: None,
        stream: false,
        options: Default::default(),
    }
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_call_dropped_by_a_restart_is_retried_at_once_and_not_charged_to_its_key() {
    let system = ActorSystem::current().unwrap();
    let registry = KeyRegistry::with_circuit(
        &system,
        CircuitSettings {
            failures_to_open: 1,
            open_for: Duration::from_secs(30),
        },
    );
    let provider = ProviderRef::start(&system, Arc::new(Probe::default()));
    let route = |id: &str, key: &str| Route {
        provider: provider.clone(),
        key: None,
        retry: RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        requester: Arc::from(id),
        quota: None,
        pool: Some(Arc::new(KeyPool::new(
            &registry,
            "openai",
            "m",
            vec![ApiKey::new(key.to_owned(), "test")],
            ScopeKind::PerKey,
            None,
        ))),
        models: None,
        usage: None,
        budget: None,
    };
    let a = route("a", "sk-key-of-agent-a-000");
    let b = route("b", "sk-key-of-agent-b-000");
    let ta =
        actix_rt::spawn(async move { crate::routing::call(&a, request, None, 0, &Quiet).await });
    tokio::task::yield_now().await;
    let b2 = b.clone();
    let tb =
        actix_rt::spawn(async move { crate::routing::call(&b2, request, None, 0, &Quiet).await });
    let t0 = tokio::time::Instant::now();
    let ra = ta.await.unwrap();
    assert!(ra.is_err(), "a's own call panicked");
    let rb = tb.await.unwrap().unwrap();
    // b's first call was dropped by the restart at 1 s and sent again at once: done at 2 s.
    assert_eq!(rb.calls, 2);
    assert_eq!(
        t0.elapsed(),
        Duration::from_secs(2),
        "no backoff before the retry"
    );
    let status = b.pool.as_ref().unwrap().keys()[0].status();
    assert_eq!(
        status.usage.failures, 0,
        "b's key did nothing wrong: {status:?}"
    );
    assert_eq!(
        status.usage.calls, 1,
        "the dropped call is not a call of the key"
    );
    assert_eq!(status.circuit, crate::keys::CircuitState::Closed);
}
