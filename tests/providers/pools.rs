//! Routing over a pool of models against the mock (which serves several models, each with its
//! own limits, and counts admissions and 429s per model): the cheapest capable model is chosen,
//! a 429 moves the call to another model at once, and once the limit is known no further 429
//! reaches the limited model while the pool keeps answering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use massgen::agent::events::{Emitter, RunEvent};
use massgen::config::{BackendKind, PoolEntry, Price};
use massgen::mock_provider::{MockLimits, MockServerHandle};
use massgen::provider::{ChatRequest, Message, ProviderRef};
use massgen::quota::{Dimension, Limit, ScopeId, ScopeSpec};
use massgen::routing::pooled::{ModelPool, Needs, PoolMember};
use massgen::routing::{CallObserver, QuotaRoute, RetryPolicy, Route, call};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};

use super::{FIRST, actors, mock, provider, request};

#[derive(Default)]
struct Delays(Mutex<Vec<Duration>>);

impl CallObserver for Delays {
    fn retrying(&self, _attempt: u32, _reason: &str, delay: Duration) {
        self.0.lock().unwrap().push(delay);
    }
}

fn entry(model: &str, priority: u32, context_window: u64, vision: bool) -> PoolEntry {
    PoolEntry {
        provider: "openai".into(),
        model: model.into(),
        priority,
        tools: true,
        parallel_tool_calls: true,
        vision,
        context_window,
        max_output_tokens: 4096,
        base_url: None,
        source: "test".into(),
        as_of: "2025-01-01".into(),
    }
}

fn price(input: f64, output: f64) -> Option<Price> {
    Some(Price {
        input_per_mtok: input,
        output_per_mtok: output,
        source: "test".into(),
        as_of: "2025-01-01".into(),
    })
}

/// `(model, $/Mtok in, priority, context window, vision)` on one OpenAI-compatible endpoint.
fn pool(
    server: &MockServerHandle,
    models: &[(&str, f64, u32, u64, bool)],
    events: Option<Emitter>,
) -> ModelPool {
    let endpoint = ProviderRef::start(actors(), provider(BackendKind::OpenAi, server));
    ModelPool {
        name: "fast".into(),
        members: models
            .iter()
            .map(|&(m, usd, prio, ctx, vision)| PoolMember {
                provider: endpoint.clone(),
                entry: entry(m, prio, ctx, vision),
                price: price(usd, usd * 4.0),
                key: None,
                scopes: vec![ScopeId::new(format!("openai/{m}"))],
            })
            .collect(),
        max_models: 3,
        events,
    }
}

async fn route(pool: ModelPool, quota: bool) -> Route {
    let quota = if quota {
        let handle = QuotaHandle::start(SupervisorSettings {
            stagger: Duration::ZERO,
            ..SupervisorSettings::default()
        })
        .unwrap();
        for m in &pool.members {
            handle
                .register_scope(m.scopes[0].clone(), ScopeSpec::default())
                .await
                .unwrap();
        }
        Some(QuotaRoute {
            handle,
            candidates: Vec::new(),
            deadline: Some(Duration::from_secs(5)),
            run_deadline: None,
            output_cap: None,
        })
    } else {
        None
    };
    Route {
        provider: pool.members[0].provider.clone(),
        key: None,
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
        requester: Arc::from("agent-a"),
        quota,
        pool: None,
        models: Some(Arc::new(pool)),
        usage: None,
        budget: None,
    }
}

fn counts(server: &MockServerHandle, model: &str) -> (u64, u64) {
    let stats = server.stats();
    stats
        .by_key_model
        .get(&format!("key:none/{model}"))
        .map_or((0, 0), |c| (c.admitted, c.refused))
}

fn to_model(model: &str) -> ChatRequest {
    let mut r = request(FIRST, true, false);
    r.model = model.into();
    r
}

#[tokio::test]
async fn a_429_moves_the_call_to_the_next_model_at_once_and_the_limited_one_is_then_skipped() {
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let server = mock(MockLimits::unlimited().with_model("cheap-a", vec![rpm]), "").await;
    // Use up the cheap model's minute outside routing: the supervisor does not know.
    provider(BackendKind::OpenAi, &server)
        .chat(&to_model("cheap-a"), None, None)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::broadcast::channel(64);
    let models = [
        ("dear-c", 3.0, 1, 1_000_000, true),
        ("cheap-a", 0.1, 9, 1_000_000, true),
        ("mid-b", 1.0, 5, 1_000_000, true),
    ];
    let r = route(pool(&server, &models, Some(Emitter::new(tx, None))), true).await;
    let delays = Delays::default();
    for n in 1..=3 {
        let report = call(&r, || request(FIRST, true, false), None, 0, &delays)
            .await
            .unwrap();
        // The request sent names the model it went to, not the agent's configured one.
        assert_eq!(report.sent.model, "mid-b", "call {n}");
    }
    // One 429 on the cheapest model (the one that taught the limit), none after; the next
    // cheapest kept answering; the dearest was never used.
    assert_eq!(counts(&server, "cheap-a"), (1, 1));
    assert_eq!(counts(&server, "mid-b"), (3, 0));
    assert_eq!(counts(&server, "dear-c"), (0, 0));
    // The move took no sleep of ours.
    assert_eq!(*delays.0.lock().unwrap(), vec![Duration::ZERO]);
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        match e {
            RunEvent::ModelSelected { model, .. } => seen.push(format!("selected {model}")),
            RunEvent::ModelRotated {
                from, to, reason, ..
            } => {
                seen.push(format!("rotated {from} -> {to} ({reason})"));
            }
            _ => {}
        }
    }
    assert_eq!(
        seen,
        [
            "selected cheap-a",
            "rotated openai/cheap-a -> openai/mid-b (rate_limited)",
            "selected mid-b",
            "selected mid-b",
        ]
    );
}

#[tokio::test]
async fn without_a_supervisor_a_429_still_moves_to_another_model() {
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let server = mock(MockLimits::unlimited().with_model("cheap-a", vec![rpm]), "").await;
    provider(BackendKind::OpenAi, &server)
        .chat(&to_model("cheap-a"), None, None)
        .await
        .unwrap();
    let models = [
        ("cheap-a", 0.1, 1, 1_000_000, true),
        ("mid-b", 1.0, 1, 1_000_000, true),
    ];
    let r = route(pool(&server, &models, None), false).await;
    let report = call(
        &r,
        || request(FIRST, true, false),
        None,
        0,
        &Delays::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.sent.model, "mid-b");
    assert_eq!(counts(&server, "cheap-a"), (1, 1));
    assert_eq!(counts(&server, "mid-b"), (1, 0));
}

#[tokio::test]
async fn a_long_prompt_skips_the_small_context_model() {
    let server = mock(MockLimits::unlimited(), "").await;
    let models = [
        ("small", 0.1, 1, 2_000, false),
        ("big", 1.0, 2, 1_000_000, false),
    ];
    let r = route(pool(&server, &models, None), true).await;
    let long = format!(
        "<ORIGINAL MESSAGE> {} <END OF ORIGINAL MESSAGE>",
        "word ".repeat(4_000)
    );
    let long_request = || ChatRequest {
        messages: vec![Message::user(long.clone())],
        ..request(FIRST, false, false)
    };
    let report = call(&r, long_request, None, 0, &Delays::default())
        .await
        .unwrap();
    assert_eq!(report.sent.model, "big");
    assert_eq!(counts(&server, "small"), (0, 0));
    // A short one fits the cheaper small model.
    let report = call(
        &r,
        || request(FIRST, true, false),
        None,
        0,
        &Delays::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.sent.model, "small");
    assert_eq!(counts(&server, "small"), (1, 0));
}

#[tokio::test]
async fn selection_orders_capable_models_by_cost_then_priority() {
    let server = mock(MockLimits::unlimited(), "").await;
    let models = [
        ("text-dear", 5.0, 0, 1_000_000, false),
        ("vision-mid", 1.0, 3, 1_000_000, true),
        ("text-cheap", 0.2, 9, 1_000_000, false),
        ("vision-mid-prio", 1.0, 1, 1_000_000, true),
        ("tiny", 0.01, 0, 1_000, true),
    ];
    let p = pool(&server, &models, None);
    let names = |needs: Needs| -> Vec<&str> {
        p.order(&needs, 1_500, 500)
            .into_iter()
            .map(|i| p.members[i].entry.model.as_str())
            .collect()
    };
    let text = Needs {
        context: 2_000,
        tools: true,
        vision: false,
    };
    assert_eq!(
        names(text),
        ["text-cheap", "vision-mid-prio", "vision-mid", "text-dear"]
    );
    // A vision request skips the text-only models.
    assert_eq!(
        names(Needs {
            vision: true,
            ..text
        }),
        ["vision-mid-prio", "vision-mid"]
    );
    // A small request fits the tiny model, cheapest of all.
    assert_eq!(
        names(Needs {
            context: 900,
            ..text
        })[0],
        "tiny"
    );
}
