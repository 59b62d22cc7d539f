//! The circuit breaker of a provider endpoint against the mock provider, counted by the mock:
//! repeated 5xx open it and nothing reaches the mock while it is open; after the cooldown one
//! probe goes; a failed probe reopens it for longer, a successful one closes it; 4xx and 429
//! answers never open it. And `/status` lists each endpoint with the mock's counts; a team's
//! `rate_limit.circuit` sets its keys' circuits too.
//!
//! Real time with short cooldowns (the mock serves real sockets): nothing asserts how fast
//! anything went, only what the mock saw.

use std::sync::Arc;
use std::time::Duration;

use massgen::config::{AgentConfig, BackendKind, SimulatedSettings, TeamConfig};
use massgen::mock_provider::MockServerHandle;
use massgen::provider::{
    ChatResponse, EndpointState, ProviderError, ProviderErrorKind, ProviderRef,
    actor::CircuitSettings,
};
use massgen::telemetry::{MetricsServer, MetricsServerOptions};
use massgen::{Runtime, RuntimeOptions};

use super::{FIRST, actors, mock, provider, request};
use massgen::keys::CircuitState;
use massgen::mock_provider::MockLimits;

/// Requests the mock received (answered well, with a fault, or refused by a limit).
fn seen(server: &MockServerHandle) -> u64 {
    let t = server.stats().total;
    t.admitted + t.refused
}

fn endpoint(server: &MockServerHandle, failures: u32, open_for: Duration) -> ProviderRef {
    ProviderRef::start_endpoint(
        actors(),
        provider(BackendKind::OpenAi, server),
        Some(&server.v1_url()),
        CircuitSettings {
            failures_to_open: failures,
            open_for,
        },
    )
}

async fn one(p: &ProviderRef) -> Result<ChatResponse, ProviderError> {
    p.chat(
        Arc::new(request(FIRST, true, false)),
        None,
        None,
        Duration::from_secs(10),
    )
    .await
}

/// The circuit as the actor holds it once it has counted every call answered so far (a
/// message answered after them).
async fn settled(p: &ProviderRef) -> EndpointState {
    let health = p.health().await.unwrap();
    assert_eq!(health.circuit, p.circuit().state, "the watch agrees");
    health.circuit
}

/// Waits (at most 30 s past its `until`) for an open circuit to turn half-open.
async fn until_half_open(p: &ProviderRef) {
    let until = p.circuit().until.expect("an open circuit says until when");
    tokio::time::sleep(until.saturating_duration_since(std::time::Instant::now())).await;
    for _ in 0..3000 {
        if p.circuit().state == EndpointState::HalfOpen {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the circuit never turned half-open: {:?}", p.circuit());
}

/// Three calls at once on a half-open circuit: exactly one goes (the probe), the others are
/// refused. Returns the probe's result.
async fn probe_among_three(p: &ProviderRef) -> Result<ChatResponse, ProviderError> {
    let (a, b, c) = tokio::join!(one(p), one(p), one(p));
    let mut probes = Vec::new();
    for r in [a, b, c] {
        match r {
            Err(e) if e.kind == ProviderErrorKind::CircuitOpen => assert!(e.not_sent),
            other => probes.push(other),
        }
    }
    assert_eq!(probes.len(), 1, "exactly one probe: {probes:?}");
    probes.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_5xx_open_the_circuit_and_nothing_is_sent_until_one_probe_decides() {
    // The first four requests fail with a 500, every later one succeeds.
    let server = mock(MockLimits::unlimited(), "500:first=4").await;
    let p = endpoint(&server, 3, Duration::from_secs(2));
    for i in 1..=3 {
        let e = one(&p).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::Transient, "{e}");
        assert_eq!(seen(&server), i);
    }
    assert_eq!(settled(&p).await, EndpointState::Open);
    let first_until = p.circuit().until.unwrap();

    // Open: answered at once, never sent.
    for _ in 0..5 {
        let e = one(&p).await.unwrap_err();
        assert_eq!(e.kind, ProviderErrorKind::CircuitOpen, "{e}");
        assert!(e.not_sent && e.is_retryable());
        assert!(e.message.contains("rate_limit.circuit"), "{e}");
        assert!(e.message.contains(&server.v1_url()), "{e}");
    }
    assert_eq!(seen(&server), 3, "no request while the circuit is open");
    assert_eq!(p.health().await.unwrap().rejected, 5);

    // Half-open: one probe reaches the mock (its 4th 500), and the circuit opens again for
    // twice as long.
    until_half_open(&p).await;
    assert!(p.circuit().admits());
    let e = probe_among_three(&p).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Transient, "{e}");
    assert_eq!(seen(&server), 4, "exactly one probe reached the mock");
    assert_eq!(settled(&p).await, EndpointState::Open);
    let second_until = p.circuit().until.unwrap();
    assert!(
        second_until.duration_since(first_until) >= Duration::from_secs(4),
        "the second cooldown (4 s) starts after the first ended"
    );
    let e = one(&p).await.unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::CircuitOpen, "{e}");
    assert_eq!(seen(&server), 4);

    // The next probe succeeds: closed, and calls go again.
    until_half_open(&p).await;
    probe_among_three(&p).await.unwrap();
    assert_eq!(seen(&server), 5);
    assert_eq!(settled(&p).await, EndpointState::Closed);
    assert!(p.circuit().until.is_none());
    one(&p).await.unwrap();
    one(&p).await.unwrap();
    assert_eq!(seen(&server), 7);
    let h = p.health().await.unwrap();
    assert_eq!((h.calls, h.failures, h.rejected), (7, 4, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_429_and_4xx_between_5xx_never_open_the_circuit() {
    for (answer, kind) in [
        ("429", ProviderErrorKind::RateLimited),
        ("400", ProviderErrorKind::BadRequest),
    ] {
        // Every second request gets `answer`, every other one a 500: never two 5xx in a row.
        let server = mock(MockLimits::unlimited(), &format!("{answer}:every=2,500:1")).await;
        let p = endpoint(&server, 2, Duration::from_secs(60));
        for i in 1..=8u64 {
            let e = one(&p).await.unwrap_err();
            let want = if i % 2 == 0 {
                kind
            } else {
                ProviderErrorKind::Transient
            };
            assert_eq!(e.kind, want, "{answer} #{i}: {e}");
            assert_eq!(seen(&server), i, "{answer}: every call reached the mock");
        }
        assert_eq!(settled(&p).await, EndpointState::Closed, "{answer}");
        // And `answer`s alone, many in a row, do not open it either.
        let server = mock(MockLimits::unlimited(), &format!("{answer}:1")).await;
        let p = endpoint(&server, 2, Duration::from_secs(60));
        for _ in 0..5 {
            assert_eq!(one(&p).await.unwrap_err().kind, kind);
        }
        assert_eq!(seen(&server), 5);
        assert_eq!(settled(&p).await, EndpointState::Closed, "{answer}");
    }
}

/// `/status` as the metrics server of a run serves it, fetched over loopback.
async fn get_status(rt: &Arc<Runtime>) -> serde_json::Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let recorder = massgen::telemetry::local_recorder().unwrap();
    let rt = rt.clone();
    let options =
        MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()).with_status(move || {
            let rt = rt.clone();
            async move { massgen::views::status_json(&rt).await }
        });
    let server = MetricsServer::start(recorder.handle(), options)
        .await
        .unwrap();
    let addr = server.local_addr();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    server.shutdown().await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}

fn openai_agent(id: &str, server: &MockServerHandle) -> AgentConfig {
    let mut a = AgentConfig::simulated(id, SimulatedSettings::default());
    a.backend.kind = BackendKind::OpenAi;
    a.backend.model = "mock-model".to_owned();
    a.backend.base_url = Some(server.v1_url());
    a.backend.api_keys = vec![super::key(id)];
    a.backend.max_tokens = Some(200);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_lists_each_endpoint_with_the_counts_the_mock_saw() {
    // One agent (no restarts, so no call is cut short): its first request fails with a 500,
    // the retry and every later call succeed.
    let server = mock(MockLimits::unlimited(), "500:first=1").await;
    let mut team = TeamConfig::new(vec![openai_agent("solo", &server)]);
    team.rate_limit.circuit = CircuitSettings {
        failures_to_open: 2,
        open_for: Duration::from_secs(60),
    };
    let rt = Arc::new(Runtime::new(team, RuntimeOptions::default()).unwrap());
    rt.run("What is 2+2?").await.unwrap();
    let status = get_status(&rt).await;
    let providers = status["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 1, "{status}");
    let p = &providers[0];
    let stats = server.stats();
    let mock_seen = stats.total.admitted + stats.total.refused;
    assert!(mock_seen >= 2, "{stats:?}");
    assert_eq!(p["calls"], mock_seen, "{p}");
    assert_eq!(p["errors"], stats.total.faulted, "{p}");
    assert_eq!(p["errors"], 1, "{p}");
    assert_eq!(p["rejected"], 0, "{p}");
    assert_eq!(p["state"], "closed", "{p}");
    assert_eq!(p["kind"], "openai", "{p}");
    assert_eq!(p["base_url"], server.v1_url(), "{p}");
    assert_eq!(p["agents"], serde_json::json!(["solo"]), "{p}");
    assert_eq!(p["in_flight"], 0, "{p}");
    let rate = p["error_rate"].as_f64().unwrap();
    assert!((rate - 1.0 / mock_seen as f64).abs() < 1e-9, "{p}");
    let (p50, p99) = (
        p["latency_p50_ms"].as_u64().unwrap(),
        p["latency_p99_ms"].as_u64().unwrap(),
    );
    assert!(p50 <= p99, "{p}");
}

/// A failure that counts toward a circuit (a 503).
fn unavailable() -> ProviderError {
    ProviderError::new(ProviderErrorKind::Transient, "503 unavailable").with_status(503)
}

/// Waits (at most 20 s) for `key`'s circuit to leave `Open`.
async fn key_half_open(key: &massgen::keys::KeyHandle) -> bool {
    for _ in 0..2000 {
        if key.circuit() == CircuitState::HalfOpen {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_of_a_team_opens_after_the_failures_rate_limit_circuit_sets() {
    let server = mock(MockLimits::unlimited(), "").await;
    // The team's setting (2 failures, 1 s rest), then the default (5 failures, 30 s rest).
    for (configured, failures) in [(true, 2u32), (false, 5)] {
        let mut team = TeamConfig::new(vec![openai_agent("solo", &server)]);
        if configured {
            team.rate_limit.circuit = CircuitSettings {
                failures_to_open: 2,
                open_for: Duration::from_secs(1),
            };
        }
        let rt = Runtime::new(team, RuntimeOptions::default()).unwrap();
        let handles = rt.key_registry().handles();
        assert_eq!(handles.len(), 1, "the agent's one key is registered");
        let key = &handles[0];
        for i in 1..failures {
            key.record_error(&unavailable()).await;
            assert_eq!(key.circuit(), CircuitState::Closed, "after {i} failures");
        }
        key.record_error(&unavailable()).await;
        assert_eq!(
            key.circuit(),
            CircuitState::Open,
            "after {failures} failures"
        );
        let status = &rt.key_status()[0];
        assert_eq!(
            (status.circuit, status.consecutive_failures),
            (CircuitState::Open, failures)
        );
        if configured {
            // The team's rest (1 s), not the default 30 s, ends within the 20 s waited.
            assert!(key_half_open(key).await, "{:?}", key.status());
        }
    }
    assert_eq!(seen(&server), 0, "no request was made");
}
