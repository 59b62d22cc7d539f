//! Routing over a pool of models against the mock (which serves several models, each with its
//! own limits, and counts admissions and 429s per model): the cheapest capable model is chosen,
//! a 429 moves the call to another model at once, and once the limit is known no further 429
//! reaches the limited model while the pool keeps answering.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use massgen::agent::events::{Emitter, RunEvent};
use massgen::config::{BackendKind, PoolEntry, Price};
use massgen::mock_provider::{MockLimits, MockServerHandle};
use massgen::provider::{ChatRequest, ImageInput, Message, ProviderRef};
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
            extra_scopes: Vec::new(),
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
async fn a_vision_request_skips_text_only_models() {
    let server = mock(MockLimits::unlimited(), "").await;
    // The cheapest model reads text only.
    let models = [
        ("text-cheap", 0.1, 1, 1_000_000, false),
        ("sees", 1.0, 2, 1_000_000, true),
    ];
    let r = route(pool(&server, &models, None), true).await;
    let with_image = || ChatRequest {
        messages: vec![Message::user_with_images(
            FIRST,
            vec![ImageInput::inline("image/png", "iVBORw0KGgo=")],
        )],
        ..request(FIRST, false, false)
    };
    let report = call(&r, with_image, None, 0, &Delays::default())
        .await
        .unwrap();
    assert_eq!(report.sent.model, "sees");
    // A text request still goes to the cheap text model.
    let report = call(
        &r,
        || request(FIRST, false, false),
        None,
        0,
        &Delays::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.sent.model, "text-cheap");
    // What reached the mock: the image only at the vision model, the text only at the other.
    let seen: Vec<(String, u64)> = server
        .admissions()
        .iter()
        .map(|a| (a.model.clone(), a.images))
        .collect();
    assert_eq!(seen, [("sees".to_owned(), 1), ("text-cheap".to_owned(), 0)]);
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

/// The value of the series `name{labels}` in a Prometheus text exposition (labels in any order).
fn series(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix('{')?;
        let (body, value) = rest.rsplit_once("} ")?;
        let got: std::collections::BTreeMap<&str, &str> = body
            .split("\",")
            .filter_map(|pair| {
                let (k, v) = pair.split_once("=\"")?;
                Some((k, v.trim_end_matches('"')))
            })
            .collect();
        (got == want).then(|| value.parse().ok()).flatten()
    })
}

/// Every pool move ends up once in the Prometheus exposition, and the counts agree with what the
/// mock saw: a selection or rotation per request it received, a rotation per 429 it sent.
#[tokio::test]
async fn pool_moves_are_counted_in_the_exposition_as_the_mock_saw_them() {
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let server = mock(MockLimits::unlimited().with_model("cheap-a", vec![rpm]), "").await;
    provider(BackendKind::OpenAi, &server)
        .chat(&to_model("cheap-a"), None, None)
        .await
        .unwrap();
    let before = server.stats().total.admitted + server.stats().total.refused;
    let recorder = massgen::telemetry::local_recorder().unwrap();
    // The calls run on this thread (a current-thread test runtime), where the recorder is in
    // force; the run's events also reach a subscriber, which must not change the counts.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (tx, mut rx) = tokio::sync::broadcast::channel(64);
    let models = [
        ("cheap-a", 0.1, 1, 1_000_000, true),
        ("mid-b", 1.0, 1, 1_000_000, true),
    ];
    let r = route(pool(&server, &models, Some(Emitter::new(tx, None))), true).await;
    for _ in 0..3 {
        call(
            &r,
            || request(FIRST, true, false),
            None,
            0,
            &Delays::default(),
        )
        .await
        .unwrap();
    }
    while let Ok(e) = rx.try_recv() {
        massgen::telemetry::record_run_event(&e);
    }
    // A pool whose every model is too small for the prompt: no model, and no request.
    let mut tiny = pool(&server, &[("small", 0.1, 1, 500, false)], None);
    tiny.name = "tiny".into();
    let long = format!(
        "<ORIGINAL MESSAGE> {} <END OF ORIGINAL MESSAGE>",
        "word ".repeat(2_000)
    );
    let refused = call(
        &route(tiny, true).await,
        || ChatRequest {
            messages: vec![Message::user(long.clone())],
            ..request(FIRST, false, false)
        },
        None,
        0,
        &Delays::default(),
    )
    .await;
    assert!(refused.is_err());

    let text = recorder.handle().render();
    let selected = |model: &str| {
        series(
            &text,
            "massgen_model_selected_total",
            &[("pool", "fast"), ("provider", "openai"), ("model", model)],
        )
        .unwrap_or(0.0)
    };
    let rotated = series(
        &text,
        "massgen_model_rotations_total",
        &[
            ("pool", "fast"),
            ("from", "openai/cheap-a"),
            ("to", "openai/mid-b"),
            ("reason", "rate_limited"),
        ],
    )
    .unwrap_or(0.0);
    let (a_ok, a_429) = counts(&server, "cheap-a");
    let (b_ok, b_429) = counts(&server, "mid-b");
    // Each 429 of the cheap model moved its call to the other one.
    assert_eq!(a_429, 1, "{text}");
    assert_eq!(rotated, a_429 as f64, "{text}");
    // Calls given the cheap model: the ones it refused (its one success came before routing).
    assert_eq!(selected("cheap-a"), (a_ok - 1 + a_429) as f64, "{text}");
    // Every request mid-b received was a selection of it or a rotation to it.
    assert_eq!(b_429, 0);
    assert_eq!(selected("mid-b") + rotated, b_ok as f64, "{text}");
    // And nothing else: the requests the mock received since are exactly the moves counted.
    let after = server.stats().total.admitted + server.stats().total.refused;
    assert_eq!(
        (after - before) as f64,
        selected("cheap-a") + selected("mid-b") + rotated
    );
    assert_eq!(
        series(
            &text,
            "massgen_model_unavailable_total",
            &[("pool", "tiny")]
        ),
        Some(1.0),
        "{text}"
    );
}
