//! `no_model_available` is emitted as a pooled call starts waiting, with the earliest time the
//! supervisor knew then, not after the wait.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use super::{ModelPool, PoolMember};
use crate::agent::events::{Emitter, RunEvent};
use crate::config::{PoolEntry, Price};
use crate::keys::ApiKey;
use crate::provider::{
    ChatRequest, ChatResponse, Message, Provider, ProviderError, ProviderRef, StreamSink,
};
use crate::quota::{Dimension, Limit, ScopeId, ScopeSpec};
use crate::routing::{CallObserver, QuotaRoute, RetryPolicy, Route};
use crate::supervisor::{QuotaHandle, SupervisorSettings};
use crate::system::ActorSystem;

/// Answers every call at once and counts them.
#[derive(Debug, Default)]
struct Answers {
    calls: AtomicU32,
}

impl Provider for Answers {
    fn name(&self) -> &str {
        "sim"
    }
    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        _: Option<&'a ApiKey>,
        _: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let text = format!("answered by {}", request.model);
        Box::pin(async move {
            Ok(ChatResponse {
                text,
                ..ChatResponse::default()
            })
        })
    }
}

struct Quiet;
impl CallObserver for Quiet {
    fn retrying(&self, _: u32, _: &str, _: Duration) {}
}

fn member(provider: &ProviderRef, model: &str, usd: f64) -> PoolMember {
    PoolMember {
        provider: provider.clone(),
        entry: PoolEntry {
            provider: "sim".into(),
            model: model.into(),
            priority: 100,
            tools: true,
            parallel_tool_calls: true,
            vision: false,
            context_window: 100_000,
            max_output_tokens: 1000,
            base_url: None,
            source: "test".into(),
            as_of: "2025-01-01".into(),
        },
        price: Some(Price {
            input_per_mtok: usd,
            output_per_mtok: usd,
            source: "test".into(),
            as_of: "2025-01-01".into(),
        }),
        key: None,
        scopes: vec![ScopeId::new(format!("sim/{model}"))],
    }
}

fn request() -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![Message::user("hi")],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(100),
        stream: false,
        options: Default::default(),
    }
}

/// One request per `period` for `sim/<model>`.
async fn one_per(handle: &QuotaHandle, model: &str, period: u64) {
    let limit = Limit::new(Dimension::Requests, 1, Duration::from_secs(period)).unwrap();
    handle
        .register_scope(
            ScopeId::new(format!("sim/{model}")),
            ScopeSpec {
                limits: vec![limit],
                ..ScopeSpec::default()
            },
        )
        .await
        .unwrap();
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn no_model_available_is_emitted_when_the_wait_starts_with_the_earliest_eta() {
    let system = ActorSystem::current().unwrap();
    let answers = Arc::new(Answers::default());
    let provider = ProviderRef::start(&system, answers.clone());
    let handle = QuotaHandle::start_local(SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    })
    .unwrap();
    // The cheap model frees in 60 s, the dear one in 30 s: the earliest is the second candidate.
    one_per(&handle, "cheap", 60).await;
    one_per(&handle, "dear", 30).await;
    let (tx, mut rx) = broadcast::channel(64);
    let pool = ModelPool {
        name: "fast".into(),
        members: vec![
            member(&provider, "cheap", 1.0),
            member(&provider, "dear", 5.0),
        ],
        max_models: 3,
        events: Some(Emitter::new(tx, None)),
    };
    let route = Route {
        provider: provider.clone(),
        key: None,
        retry: RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        },
        requester: Arc::from("agent-a"),
        quota: Some(QuotaRoute {
            handle: handle.clone(),
            candidates: Vec::new(),
            deadline: Some(Duration::from_secs(120)),
            run_deadline: None,
            output_cap: None,
            extra_scopes: Vec::new(),
        }),
        pool: None,
        models: None,
        usage: None,
        budget: None,
    };
    let pool = Arc::new(pool);
    // Two calls use both models' windows (the cheap one first), with no wait.
    for _ in 0..2 {
        super::call(&route, &pool, request, None, 0, &Quiet)
            .await
            .unwrap();
    }
    assert_eq!(answers.calls.load(Ordering::SeqCst), 2);
    while let Ok(e) = rx.try_recv() {
        assert!(
            !matches!(e, RunEvent::NoModelAvailable { .. }),
            "nothing waited yet: {e:?}"
        );
    }
    let t0 = tokio::time::Instant::now();
    let (r, p) = (route.clone(), pool.clone());
    let third = actix_rt::spawn(async move { super::call(&r, &p, request, None, 0, &Quiet).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!third.is_finished(), "the third call waits for a model");
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let RunEvent::NoModelAvailable {
            agent,
            pool,
            eta_ms,
        } = e
        {
            seen.push((agent, pool, eta_ms));
        }
    }
    assert_eq!(seen.len(), 1, "announced once, while waiting: {seen:?}");
    let (agent, name, eta) = seen.remove(0);
    assert_eq!((agent.as_str(), name.as_str()), ("agent-a", "fast"));
    let eta = eta.expect("the supervisor knows when a window frees");
    assert!(
        (29_000..=30_000).contains(&eta),
        "the earliest freeing model (30 s), not the first candidate (60 s): {eta} ms"
    );
    let report = third.await.unwrap().unwrap();
    assert_eq!(report.response.text, "answered by dear");
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    assert_eq!(answers.calls.load(Ordering::SeqCst), 3);
}
