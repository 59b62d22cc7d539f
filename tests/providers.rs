//! One matrix running every HTTP adapter (OpenAI-compatible, Gemini, Anthropic) through the same
//! cases against the mock provider server on 127.0.0.1 (port 0).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use massgen::config::{BackendConfig, BackendKind, SimulatedSettings};
use massgen::keys::ApiKey;
use massgen::mock_provider::{FaultSpec, MockLimits, MockOptions, MockServerHandle, serve};
use massgen::provider::{
    ChatRequest, Message, Provider, ProviderErrorKind, StreamEvent, ToolSpec, build_provider_with,
    http::{HttpSettings, build_client},
};
use massgen::quota::{Dimension, Limit, SignalKind};
use massgen::system::ActorSystem;
use serde_json::json;

const KINDS: [BackendKind; 3] = [
    BackendKind::OpenAi,
    BackendKind::Gemini,
    BackendKind::Claude,
];

fn key(name: &str) -> ApiKey {
    ApiKey::new(format!("test-key-{name}-0123456789"), "test")
}

async fn mock(limits: MockLimits, faults: &str) -> MockServerHandle {
    serve(MockOptions {
        limits,
        faults: FaultSpec::parse(faults).unwrap(),
        ..MockOptions::default()
    })
    .await
    .unwrap()
}

fn provider(kind: BackendKind, server: &MockServerHandle) -> Arc<dyn Provider> {
    let base_url = if kind == BackendKind::Gemini {
        server.gemini_url()
    } else {
        server.v1_url()
    };
    let backend = BackendConfig {
        kind,
        model: "mock-model".into(),
        base_url: Some(base_url),
        api_keys: vec![],
        temperature: None,
        max_tokens: Some(256),
        enable_rate_limit: None,
        simulated: SimulatedSettings::default(),
        options: Default::default(),
        pool: None,
    };
    let client = build_client(HttpSettings {
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
    })
    .unwrap();
    build_provider_with(&backend, client).unwrap()
}

/// One owned actor system for the tests that run on plain tokio (real time).
fn actors() -> &'static ActorSystem {
    static ACTORS: std::sync::OnceLock<ActorSystem> = std::sync::OnceLock::new();
    ACTORS.get_or_init(|| ActorSystem::start_with_workers(2).unwrap())
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "new_answer".into(),
            description: "Submit a new answer".into(),
            parameters: json!({"type": "object", "properties": {"content": {"type": "string"}},
                               "required": ["content"], "additionalProperties": false}),
        },
        ToolSpec {
            name: "vote".into(),
            description: "Vote for an answer".into(),
            parameters: json!({"type": "object", "properties": {"agent_id": {"type": "string"},
                               "reason": {"type": "string"}}}),
        },
    ]
}

fn request(prompt: &str, with_tools: bool, stream: bool) -> ChatRequest {
    ChatRequest {
        model: "mock-model".into(),
        messages: vec![Message::system("You are agent one."), Message::user(prompt)],
        tools: if with_tools { tools() } else { vec![] },
        temperature: Some(0.2),
        max_tokens: Some(256),
        stream,
        options: Default::default(),
    }
}

const FIRST: &str = "<ORIGINAL MESSAGE> What is 2+2? <END OF ORIGINAL MESSAGE>\n<CURRENT ANSWERS from the agents>\n(no answers available yet)\n<END OF CURRENT ANSWERS>";
const LATER: &str = "<ORIGINAL MESSAGE> What is 2+2? <END OF ORIGINAL MESSAGE>\n<CURRENT ANSWERS from the agents>\n<agent2.1> 4 <end of agent2.1>\n<END OF CURRENT ANSWERS>";

#[tokio::test]
async fn text_tool_calls_and_usage_whole_and_streamed() {
    let server = mock(MockLimits::unlimited(), "").await;
    for kind in KINDS {
        let p = provider(kind, &server);
        for stream in [false, true] {
            let ctx = format!("{kind:?} stream={stream}");
            let (tx, mut rx) = tokio::sync::mpsc::channel(256);
            let r = p
                .chat(&request(FIRST, true, stream), Some(&key("a")), Some(&tx))
                .await;
            let r = r.unwrap_or_else(|e| panic!("{ctx}: {e}"));
            assert_eq!(r.tool_calls.len(), 1, "{ctx}");
            assert_eq!(r.tool_calls[0].name, "new_answer", "{ctx}");
            assert!(
                r.tool_calls[0].arguments["content"]
                    .as_str()
                    .unwrap()
                    .contains("mock answer")
            );
            let usage = r.usage.expect(&ctx);
            assert!(
                usage.input_tokens > 20 && usage.output_tokens > 0,
                "{ctx} {usage:?}"
            );
            if stream {
                let mut saw_call = false;
                while let Ok(e) = rx.try_recv() {
                    saw_call |= matches!(e, StreamEvent::ToolCall(_));
                }
                assert!(saw_call, "{ctx}: streamed tool call event");
            }

            let r = p
                .chat(&request(LATER, true, stream), Some(&key("a")), None)
                .await
                .unwrap();
            assert_eq!(r.tool_calls[0].name, "vote", "{ctx}");
            assert_eq!(r.tool_calls[0].arguments["agent_id"], "agent2", "{ctx}");

            let r = p
                .chat(
                    &request("Present the final answer.", false, stream),
                    Some(&key("a")),
                    None,
                )
                .await
                .unwrap();
            assert!(r.tool_calls.is_empty(), "{ctx}");
            assert!(r.text.contains("Final answer"), "{ctx}: {}", r.text);
        }
    }
    let stats = server.stats();
    assert_eq!(stats.total.admitted, 18);
    assert_eq!(stats.total.refused, 0);
    assert!(
        stats.by_key_model.keys().all(|k| !k.contains("test-key")),
        "keys never shown"
    );
}

#[tokio::test]
async fn over_limit_answers_carry_each_providers_signal() {
    let rpm = Limit::new(Dimension::Requests, 1, Duration::from_secs(60)).unwrap();
    let server = mock(MockLimits::uniform(vec![rpm]), "").await;
    for kind in KINDS {
        let p = provider(kind, &server);
        let k = key(&format!("{kind:?}"));
        p.chat(&request(FIRST, true, false), Some(&k), None)
            .await
            .unwrap();
        let e = p
            .chat(&request(FIRST, true, false), Some(&k), None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::RateLimited, "{kind:?}: {e}");
        assert_eq!(e.status, Some(429));
        let s = e.signal.expect("signal");
        assert_eq!(s.kind, SignalKind::RateLimited, "{kind:?}");
        let wait = s.retry_after.expect("retry after");
        assert!(
            wait > Duration::from_secs(50) && wait <= Duration::from_secs(60),
            "{kind:?} {wait:?}"
        );
        assert!(
            s.learned_limits.contains(&rpm),
            "{kind:?}: {:?}",
            s.learned_limits
        );
        // Another key has its own window.
        p.chat(
            &request(FIRST, true, false),
            Some(&key(&format!("other{kind:?}"))),
            None,
        )
        .await
        .unwrap();
    }
    assert_eq!(server.stats().total.refused, 3);
}

#[tokio::test]
async fn gemini_daily_quota_and_openai_too_large() {
    let rpd = Limit::new(Dimension::Requests, 1, Duration::from_secs(86_400)).unwrap();
    let tiny = Limit::new(Dimension::Tokens, 10, Duration::from_secs(60)).unwrap();
    let limits = MockLimits::uniform(vec![rpd]).with_model("tiny", vec![tiny]);
    let server = mock(limits, "").await;
    let p = provider(BackendKind::Gemini, &server);
    p.chat(&request(FIRST, true, false), Some(&key("g")), None)
        .await
        .unwrap();
    let e = p
        .chat(&request(FIRST, true, false), Some(&key("g")), None)
        .await
        .unwrap_err();
    assert_eq!(e.signal.unwrap().kind, SignalKind::DailyQuotaExhausted);

    let p = provider(BackendKind::OpenAi, &server);
    let mut r = request(FIRST, true, false);
    r.model = "tiny".into();
    let e = p.chat(&r, Some(&key("o")), None).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::RequestTooLarge, "{e}");
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn faults_map_to_clear_errors_and_the_next_call_works() {
    for (spec, expect) in [
        ("401:key=test-key-bad-0123456789", ProviderErrorKind::Auth),
        ("500:first=1", ProviderErrorKind::Transient),
        ("503:first=1", ProviderErrorKind::Transient),
        ("529:first=1", ProviderErrorKind::Overloaded),
        ("429:first=1", ProviderErrorKind::RateLimited),
        ("reset:first=1", ProviderErrorKind::Transient),
        ("malformed:first=1", ProviderErrorKind::Malformed),
    ] {
        for kind in KINDS {
            for stream in [false, true] {
                let server = mock(MockLimits::unlimited(), spec).await;
                let p = provider(kind, &server);
                let k = if expect == ProviderErrorKind::Auth {
                    key("bad")
                } else {
                    key("a")
                };
                let e = p
                    .chat(&request(FIRST, true, stream), Some(&k), None)
                    .await
                    .unwrap_err();
                let ctx = format!("{spec} {kind:?} stream={stream}: {e}");
                assert_eq!(e.kind, expect, "{ctx}");
                assert!(!e.message.is_empty(), "{ctx}");
                let again = p
                    .chat(&request(FIRST, true, stream), Some(&key("a")), None)
                    .await;
                assert!(again.is_ok(), "{ctx}: then {:?}", again.err());
            }
        }
    }
}

#[tokio::test]
async fn a_stream_cut_mid_way_is_an_error_not_a_partial_answer() {
    for kind in KINDS {
        for stream in [true, false] {
            let server = mock(MockLimits::unlimited(), "truncate:first=1").await;
            let p = provider(kind, &server);
            let e = p
                .chat(&request(FIRST, true, stream), Some(&key("a")), None)
                .await
                .unwrap_err();
            assert_eq!(
                e.kind,
                ProviderErrorKind::Transient,
                "{kind:?} stream={stream}: {e}"
            );
            assert!(e.is_retryable());
            p.chat(&request(FIRST, true, stream), Some(&key("a")), None)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn stats_endpoint_serves_json() {
    let server = mock(MockLimits::unlimited(), "").await;
    provider(BackendKind::OpenAi, &server)
        .chat(&request(FIRST, true, false), Some(&key("a")), None)
        .await
        .unwrap();
    let body: serde_json::Value = reqwest::get(format!("http://{}/stats", server.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["total"]["admitted"], 1);
    assert_eq!(body["by_key_model"].as_object().unwrap().len(), 1);
    server.shutdown().await;
}

#[path = "providers/actors.rs"]
mod actor_layer;
#[path = "providers/circuit.rs"]
mod circuit;
#[path = "providers/conversation.rs"]
mod conversation;
#[path = "providers/fidelity.rs"]
mod fidelity;
#[path = "providers/massgen_corpus.rs"]
mod massgen_corpus;
#[path = "providers/massgen_team.rs"]
mod massgen_team;
#[path = "providers/options.rs"]
mod options;
#[path = "providers/pools.rs"]
mod pools;
#[path = "providers/routing.rs"]
mod routing;
#[path = "providers/team.rs"]
mod team;
#[path = "providers/vision.rs"]
mod vision;
