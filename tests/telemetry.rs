//! Telemetry: the exposition after realistic recordings, its validity under `promtool`, the
//! `/metrics` + `/status` server over loopback, and the tracing formats.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use massgen::provider::{ChatResponse, ProviderError, ProviderErrorKind, Usage};
use massgen::quota::{Dimension, RateLimitSignal, SignalKind};
use massgen::telemetry::{
    self, LogFormat, MetricsServer, MetricsServerOptions, catalog, provider, quota, run,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One parsed sample line: metric name, labels, value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn parse_exposition(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_owned(), BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').expect("closing brace");
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").expect("label pair");
                    labels.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
                }
                (name.to_owned(), labels)
            }
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The value of the series `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    samples
        .iter()
        .find(|s| s.name == name && s.labels == want)
        .map(|s| s.value)
}

fn type_of(text: &str, name: &str) -> Option<String> {
    let prefix = format!("# TYPE {name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_owned))
}

/// Fails (never skips) when promtool is missing, saying how to get it.
fn promtool_check(exposition: &str) {
    let spawned = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => panic!(
            "promtool is needed to validate the exposition but could not be run ({e}). Install \
             it with `apt-get install -y --no-install-recommends prometheus` (Debian package \
             `prometheus`), then run the tests again."
        ),
    };
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(exposition.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics found problems:\n{report}\n--- exposition ---\n{exposition}"
    );
}

/// A realistic quota + provider + run sequence: two agents share Gemini Pro at 2 RPM, the third
/// call waits a minute, a 429 closes the scope, the team votes and finishes.
fn record_realistic_sequence() {
    let scope = "gemini/gemini-2.5-pro";
    quota::cooldown_started(scope, quota::CooldownReason::Startup);
    quota::permit_granted(scope, Duration::from_millis(0));
    quota::permit_granted(scope, Duration::from_millis(250));
    quota::in_flight(scope, 2);
    quota::queue_depth(scope, 1);
    quota::window_usage(scope, Dimension::Requests, Duration::from_secs(60), 2, 2);
    quota::window_usage(
        scope,
        Dimension::Tokens,
        Duration::from_secs(60),
        3000,
        32_000,
    );
    quota::limit_source(scope, Dimension::Requests, Duration::from_secs(60), false);
    quota::permit_granted(scope, Duration::from_secs(60));
    quota::queue_depth(scope, 0);
    quota::permit_denied(scope, quota::DenyReason::DeadlineExceeded);

    let ok = Ok(ChatResponse {
        usage: Some(Usage {
            input_tokens: 1200,
            output_tokens: 300,
        }),
        ..ChatResponse::default()
    });
    provider::call_finished("gemini", "gemini-2.5-pro", Duration::from_millis(800), &ok);
    provider::call_finished("gemini", "gemini-2.5-pro", Duration::from_millis(1200), &ok);
    let limited: Result<ChatResponse, ProviderError> = Err(ProviderError::new(
        ProviderErrorKind::RateLimited,
        "quota exceeded",
    )
    .with_status(429)
    .with_signal(
        RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(Duration::from_secs(26)),
    ));
    provider::call_finished(
        "gemini",
        "gemini-2.5-pro",
        Duration::from_millis(90),
        &limited,
    );
    quota::cooldown_started(scope, quota::CooldownReason::RateLimited);
    quota::cooldown_remaining(scope, 26.0);
    quota::limit_learned(scope);
    quota::scope_closed(scope, false);

    run::coordination_round();
    run::agent_turn(run::TurnOutcome::Answer);
    run::agent_turn(run::TurnOutcome::Answer);
    run::agent_turn(run::TurnOutcome::Retry);
    run::agent_turn(run::TurnOutcome::Vote);
    run::vote();
    run::agent_turn(run::TurnOutcome::Presented);
    run::run_duration(Duration::from_secs(95), run::RunStatusLabel::Completed);
}

#[test]
fn exposition_has_the_expected_families_labels_and_values() {
    let recorder = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&recorder, record_realistic_sequence);
    let text = recorder.handle().render();
    let s = parse_exposition(&text);
    let scope = [("scope", "gemini/gemini-2.5-pro")];
    let gm = [("provider", "gemini"), ("model", "gemini-2.5-pro")];

    assert_eq!(
        type_of(&text, catalog::PERMITS_GRANTED).as_deref(),
        Some("counter")
    );
    assert_eq!(value(&s, catalog::PERMITS_GRANTED, &scope), Some(3.0));
    assert_eq!(
        value(
            &s,
            catalog::PERMITS_DENIED,
            &[scope[0], ("reason", "deadline_exceeded")]
        ),
        Some(1.0)
    );
    // The wait histogram: real buckets, 2 grants under 1 s, the minute wait in the 60 s bucket.
    assert_eq!(
        type_of(&text, catalog::PERMIT_WAIT).as_deref(),
        Some("histogram")
    );
    let bucket = |le: &str| {
        value(
            &s,
            &format!("{}_bucket", catalog::PERMIT_WAIT),
            &[scope[0], ("le", le)],
        )
    };
    assert_eq!(bucket("0.001"), Some(1.0));
    assert_eq!(bucket("0.25"), Some(2.0));
    assert_eq!(bucket("30"), Some(2.0));
    assert_eq!(bucket("60"), Some(3.0));
    assert_eq!(bucket("+Inf"), Some(3.0));
    assert_eq!(
        value(&s, &format!("{}_count", catalog::PERMIT_WAIT), &scope),
        Some(3.0)
    );
    let wait_sum = value(&s, &format!("{}_sum", catalog::PERMIT_WAIT), &scope).unwrap();
    assert!((wait_sum - 60.25).abs() < 1e-9, "{wait_sum}");

    assert_eq!(value(&s, catalog::QUEUE_DEPTH, &scope), Some(0.0));
    let rpm = [scope[0], ("dimension", "requests"), ("period", "1m")];
    assert_eq!(value(&s, catalog::WINDOW_USED, &rpm), Some(2.0));
    assert_eq!(value(&s, catalog::WINDOW_LIMIT, &rpm), Some(2.0));
    assert_eq!(value(&s, catalog::WINDOW_UTILIZATION, &rpm), Some(1.0));
    assert_eq!(value(&s, catalog::LIMIT_LEARNED, &rpm), Some(0.0));
    let tpm = [scope[0], ("dimension", "tokens"), ("period", "1m")];
    assert_eq!(
        value(&s, catalog::WINDOW_UTILIZATION, &tpm),
        Some(3000.0 / 32_000.0)
    );
    assert_eq!(value(&s, catalog::COOLDOWN_REMAINING, &scope), Some(26.0));
    assert_eq!(
        value(&s, catalog::COOLDOWNS, &[scope[0], ("reason", "startup")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::COOLDOWNS,
            &[scope[0], ("reason", "rate_limited")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, catalog::LIMITS_LEARNED, &scope), Some(1.0));

    assert_eq!(
        value(
            &s,
            catalog::PROVIDER_REQUESTS,
            &[gm[0], gm[1], ("status_class", "2xx")]
        ),
        Some(2.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::PROVIDER_REQUESTS,
            &[gm[0], gm[1], ("status_class", "4xx")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::RATE_LIMIT_RESPONSES,
            &[gm[0], gm[1], ("kind", "rate_limited")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&s, catalog::TOKENS, &[gm[0], gm[1], ("direction", "input")]),
        Some(2400.0)
    );
    assert_eq!(
        value(
            &s,
            catalog::TOKENS,
            &[gm[0], gm[1], ("direction", "output")]
        ),
        Some(600.0)
    );
    // gemini-2.5-pro list price: 1.25 $/Mtok in, 10 $/Mtok out -> 0.0045 $ per call.
    let cost = value(&s, &format!("{}_sum", catalog::COST), &gm).unwrap();
    assert!((cost - 0.009).abs() < 1e-12, "{cost}");
    assert_eq!(
        value(
            &s,
            &format!("{}_count", catalog::PROVIDER_REQUEST_DURATION),
            &gm
        ),
        Some(3.0)
    );

    assert_eq!(
        value(&s, catalog::AGENT_TURNS, &[("outcome", "answer")]),
        Some(2.0)
    );
    assert_eq!(
        value(&s, catalog::AGENT_TURNS, &[("outcome", "retry")]),
        Some(1.0)
    );
    assert_eq!(
        value(&s, catalog::AGENT_TURNS, &[("outcome", "presented")]),
        Some(1.0)
    );
    assert_eq!(value(&s, catalog::COORDINATION_ROUNDS, &[]), Some(1.0));
    assert_eq!(value(&s, catalog::VOTES, &[]), Some(1.0));
    assert_eq!(
        value(
            &s,
            &format!("{}_count", catalog::RUN_DURATION),
            &[("status", "completed")]
        ),
        Some(1.0)
    );

    // Every family recorded is described, and no label value is free text.
    for name in catalog::ALL {
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP line:\n{text}"
        );
    }
    let allowed = [
        "scope",
        "reason",
        "dimension",
        "period",
        "provider",
        "model",
        "status_class",
        "kind",
        "direction",
        "outcome",
        "status",
        "le",
    ];
    for sample in &s {
        for key in sample.labels.keys() {
            assert!(allowed.contains(&key.as_str()), "unexpected label {key}");
        }
    }
}

#[test]
fn exposition_passes_promtool() {
    let recorder = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&recorder, record_realistic_sequence);
    promtool_check(&recorder.handle().render());
}

#[test]
fn simulated_backend_is_not_priced_and_observed_headers_are_not_429s() {
    let recorder = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&recorder, || {
        let ok = Ok(ChatResponse {
            usage: Some(Usage {
                input_tokens: 10,
                output_tokens: 5,
            }),
            observed: Some(RateLimitSignal::new(SignalKind::Observed)),
            ..ChatResponse::default()
        });
        provider::call_finished("simulated", "sim-1", Duration::from_millis(1), &ok);
        provider::rate_limit_response("simulated", "sim-1", &SignalKind::Observed);
    });
    let text = recorder.handle().render();
    assert!(!text.contains(catalog::COST), "{text}");
    assert!(!text.contains(catalog::RATE_LIMIT_RESPONSES), "{text}");
    assert!(text.contains(catalog::TOKENS), "{text}");
}

/// A plain HTTP/1.1 GET over loopback: (status, headers, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test]
async fn server_serves_metrics_and_status_and_shuts_down() {
    let recorder = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&recorder, || {
        quota::queue_depth("groq/llama-3.3-70b-versatile", 4);
    });
    let scrapes = Arc::new(Mutex::new(0u32));
    let counted = scrapes.clone();
    let options = MetricsServerOptions::new("127.0.0.1:0".parse().unwrap())
        .with_status(|| async { serde_json::json!({"scopes": [{"scope": "x", "queue_depth": 4}]}) })
        .with_before_scrape(move || {
            let counted = counted.clone();
            async move {
                *counted.lock().unwrap() += 1;
            }
        });
    let server = MetricsServer::start(recorder.handle(), options)
        .await
        .unwrap();
    let addr = server.local_addr();
    assert!(addr.ip().is_loopback() && addr.port() != 0);

    let (status, head, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let s = parse_exposition(&body);
    assert_eq!(
        value(
            &s,
            catalog::QUEUE_DEPTH,
            &[("scope", "groq/llama-3.3-70b-versatile")]
        ),
        Some(4.0)
    );
    assert_eq!(*scrapes.lock().unwrap(), 1);

    let (status, head, body) = http_get(addr, "/status").await;
    assert_eq!(status, 200);
    assert!(head.contains("application/json"), "{head}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["scopes"][0]["queue_depth"], 4);

    let (status, _, _) = http_get(addr, "/nope").await;
    assert_eq!(status, 404);

    server.shutdown().await.unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn status_without_a_source_is_404_and_busy_port_is_a_clear_error() {
    let recorder = telemetry::local_recorder().unwrap();
    let options = MetricsServerOptions::new("127.0.0.1:0".parse().unwrap());
    let server = MetricsServer::start(recorder.handle(), options)
        .await
        .unwrap();
    let (status, _, body) = http_get(server.local_addr(), "/status").await;
    assert_eq!(status, 404);
    assert!(body.contains("no status source"), "{body}");

    let again = MetricsServer::start(
        recorder.handle(),
        MetricsServerOptions::new(server.local_addr()),
    )
    .await;
    let err = again.unwrap_err().to_string();
    assert!(err.contains(&server.local_addr().to_string()), "{err}");
    server.shutdown().await.unwrap();
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn json_logs_carry_span_fields_and_the_filter_applies() {
    let buf = Buffer::default();
    let filter = telemetry::build_filter(0, None).unwrap();
    let sub = telemetry::subscriber(LogFormat::Json, filter, buf.clone(), true);
    tracing::subscriber::with_default(sub, || {
        let span = telemetry::spans::provider_call("gemini", "gemini-2.5-pro", Some("1a2b3c4d"), 2);
        let _g = span.enter();
        tracing::info!(target: "massgen::routing", retry_after_ms = 26_000u64, "rate limited");
        tracing::debug!(target: "massgen::routing", "hidden at verbosity 0");
        tracing::info!(target: "hyper", "hidden: libraries log warnings only");
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{out}");
    let line = &lines[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["retry_after_ms"], 26_000);
    assert_eq!(line["span"]["name"], telemetry::spans::PROVIDER_CALL);
    assert_eq!(line["span"]["key_id"], "1a2b3c4d");
    assert_eq!(line["span"]["attempt"], 2);
}

#[test]
fn pretty_logs_are_plain_lines() {
    let buf = Buffer::default();
    let filter = telemetry::build_filter(1, None).unwrap();
    let sub = telemetry::subscriber(LogFormat::Pretty, filter, buf.clone(), false);
    tracing::subscriber::with_default(sub, || {
        let span = telemetry::spans::agent_turn("agent_a", 3);
        let _g = span.enter();
        tracing::debug!(target: "massgen::agent", "turn started");
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(out.contains("agent_turn"), "{out}");
    assert!(out.contains("agent=\"agent_a\" turn=3"), "{out}");
    assert!(
        !out.contains('\u{1b}'),
        "no colour codes when not asked: {out}"
    );
    assert!(out.contains("turn started"), "{out}");
    assert!(!out.trim_start().starts_with('{'), "{out}");
}

const DASHBOARD: &str = include_str!("../docs/grafana-dashboard.json");
const OBSERVABILITY_DOC: &str = include_str!("../docs/observability.md");

/// Every `massgen_*` identifier in `text`.
fn metric_names_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("massgen_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

fn is_catalog_series(name: &str) -> bool {
    catalog::ALL.iter().any(|m| {
        name == *m
            || catalog::HISTOGRAM_BUCKETS.iter().any(|(h, _)| {
                h == m
                    && ["_bucket", "_sum", "_count"]
                        .iter()
                        .any(|s| name == format!("{m}{s}"))
            })
    })
}

/// The PromQL expressions of the dashboard, with Grafana's variables made concrete.
fn dashboard_exprs() -> Vec<String> {
    let dash: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let mut exprs = Vec::new();
    for panel in dash["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap();
            exprs.push(
                expr.replace("$__rate_interval", "5m")
                    .replace("$__range", "1h")
                    .replace("$scope", ".*"),
            );
        }
    }
    exprs
}

/// The ```promql blocks of the observability doc.
fn doc_exprs() -> Vec<String> {
    OBSERVABILITY_DOC
        .split("```promql")
        .skip(1)
        .map(|block| block.split("```").next().unwrap().trim().to_owned())
        .collect()
}

#[test]
fn docs_and_dashboard_name_only_catalog_metrics_and_document_all_of_them() {
    for name in metric_names_in(DASHBOARD)
        .into_iter()
        .chain(metric_names_in(OBSERVABILITY_DOC))
    {
        assert!(
            is_catalog_series(&name),
            "{name} is not a metric of the catalog"
        );
    }
    for name in catalog::ALL {
        assert!(
            OBSERVABILITY_DOC.contains(&format!("| `{name}` |")),
            "{name} is missing from the metric table of docs/observability.md"
        );
    }
    assert!(dashboard_exprs().len() >= 10);
    assert!(doc_exprs().len() >= 5);
}

#[test]
fn dashboard_and_doc_promql_parse_under_promtool() {
    let exprs: Vec<String> = dashboard_exprs().into_iter().chain(doc_exprs()).collect();
    let mut rules = String::from("groups:\n  - name: massgen_docs\n    rules:\n");
    for (i, expr) in exprs.iter().enumerate() {
        let one_line = expr.split_whitespace().collect::<Vec<_>>().join(" ");
        rules.push_str(&format!(
            "      - record: massgen:docs_check_{i}\n        expr: {}\n",
            serde_json::to_string(&one_line).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.yml");
    std::fs::write(&path, &rules).unwrap();
    let out = match std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(out) => out,
        Err(e) => panic!(
            "promtool is needed to check the PromQL ({e}). Install it with `apt-get install -y \
             --no-install-recommends prometheus`, then run the tests again."
        ),
    };
    assert!(
        out.status.success(),
        "promtool check rules failed:\n{}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

mod with_supervisor_and_runtime {
    use std::num::NonZeroU64;
    use std::time::Duration;

    use massgen::config::{
        AgentConfig, BackendConfig, BackendKind, OrchestratorConfig, RateLimitSettings,
        SimulatedSettings, TeamConfig, TimeoutConfig, UiConfig,
    };
    use massgen::quota::{Limit, RateLimitSignal, ScopeId, ScopeSpec, SignalKind};
    use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};
    use massgen::telemetry::{
        self, MetricsServer, MetricsServerOptions, ScopeState, StatusReport, catalog,
    };
    use massgen::{RunEvent, Runtime, RuntimeOptions};

    use super::{http_get, parse_exposition, promtool_check, value};

    const SCOPE: &str = "gemini/gemini-2.5-pro";

    /// Polls the supervisor's snapshot until `n` requests wait in `scope` (real time: the
    /// supervisor runs on its own thread), failing after 30 s.
    async fn until_waiting(quota: &QuotaHandle, scope: &str, n: usize) {
        let polled = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let snap = quota.snapshot().await.unwrap();
                if snap
                    .scopes
                    .iter()
                    .any(|s| s.scope == scope && s.queue_depth >= n)
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
        assert!(polled.is_ok(), "{n} requests never queued in {scope}");
    }

    /// A run waiting on quota: Gemini Pro at 1 RPM, one call granted, a 429 closes the scope for
    /// 600 s, two more agents queue. /metrics and /status over loopback show the wait.
    #[tokio::test]
    async fn scrape_during_a_quota_wait_shows_queue_and_cooldown() {
        let recorder = telemetry::local_recorder().unwrap();
        // Current-thread runtime: the bridge task and the server's handlers run on this thread.
        let _local = metrics::set_default_local_recorder(&recorder);

        let quota = QuotaHandle::start(SupervisorSettings::default()).unwrap();
        let mut events = quota.subscribe();
        let spec = ScopeSpec {
            limits: vec![Limit::rpm(NonZeroU64::MIN)],
            ..ScopeSpec::default()
        };
        quota
            .register_scope(ScopeId::new(SCOPE), spec)
            .await
            .unwrap();
        let request = |who: &str| AcquireRequest {
            deadline: Some(Duration::from_secs(3600)),
            ..AcquireRequest::new(vec![ScopeId::new(SCOPE)], 1500, who)
        };
        let first = quota.acquire(request("alice")).await.unwrap();
        first.settle(1400);
        quota.feedback(
            ScopeId::new(SCOPE),
            RateLimitSignal::new(SignalKind::RateLimited)
                .with_retry_after(Duration::from_secs(600)),
        );
        let waiters: Vec<_> = ["bob", "carol"]
            .into_iter()
            .map(|who| {
                let quota = quota.clone();
                let req = request(who);
                tokio::spawn(async move { quota.acquire(req).await })
            })
            .collect();
        until_waiting(&quota, SCOPE, 2).await;
        // Everything before the snapshot's answer has been emitted: record it all.
        quota.snapshot().await.unwrap();
        while let Ok(event) = events.try_recv() {
            telemetry::record_quota_event(&event);
        }

        let server = MetricsServer::start(
            recorder.handle(),
            MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()).with_quota(quota.clone()),
        )
        .await
        .unwrap();
        let (status, _, body) = http_get(server.local_addr(), "/metrics").await;
        assert_eq!(status, 200);
        let s = parse_exposition(&body);
        let scope = [("scope", SCOPE)];
        assert_eq!(value(&s, catalog::QUEUE_DEPTH, &scope), Some(2.0), "{body}");
        let cooldown = value(&s, catalog::COOLDOWN_REMAINING, &scope).unwrap();
        assert!(cooldown > 590.0 && cooldown <= 600.0, "{cooldown}");
        let rpm = [scope[0], ("dimension", "requests"), ("period", "1m")];
        assert_eq!(value(&s, catalog::WINDOW_USED, &rpm), Some(1.0));
        assert_eq!(value(&s, catalog::WINDOW_LIMIT, &rpm), Some(1.0));
        assert_eq!(value(&s, catalog::WINDOW_UTILIZATION, &rpm), Some(1.0));
        assert_eq!(value(&s, catalog::PERMITS_GRANTED, &scope), Some(1.0));
        assert_eq!(
            value(
                &s,
                catalog::COOLDOWNS,
                &[scope[0], ("reason", "rate_limited")]
            ),
            Some(1.0)
        );
        assert_eq!(value(&s, catalog::SCOPE_CLOSED, &scope), Some(0.0));
        promtool_check(&body);

        let (status, _, body) = http_get(server.local_addr(), "/status").await;
        assert_eq!(status, 200);
        let report: StatusReport = serde_json::from_str(&body).unwrap();
        assert_eq!(report.waiting_total, 2);
        assert_eq!(report.closed_scopes, 1);
        let st = &report.scopes[0];
        assert_eq!(st.scope, SCOPE);
        assert_eq!(st.state, ScopeState::CoolingDown);
        assert_eq!(st.queue_depth, 2);
        assert!(st.cooldown_remaining_secs > 590.0, "{body}");
        assert_eq!(st.limits[0].used, 1);
        assert_eq!(st.limits[0].remaining, 0);
        assert_eq!(st.limits[0].utilization_pct, 100.0);
        assert_eq!(st.cooldown_reason.as_deref(), Some("429 rate limited"));

        for w in &waiters {
            w.abort();
        }
        server.shutdown().await.unwrap();
    }

    /// Denials, learned limits and a spend cap reach the counters with bounded reasons.
    #[tokio::test]
    async fn denials_learned_limits_and_spend_caps_are_counted() {
        let recorder = telemetry::local_recorder().unwrap();
        let _local = metrics::set_default_local_recorder(&recorder);
        let quota = QuotaHandle::start(SupervisorSettings::default()).unwrap();
        let bridge = telemetry::spawn_quota_bridge(&quota);
        let scope = ScopeId::new("openai/gpt-4o-mini/key:1a2b3c4d");
        let spec = ScopeSpec {
            limits: vec![Limit::tpm(NonZeroU64::new(32_000).unwrap())],
            ..ScopeSpec::default()
        };
        quota.register_scope(scope.clone(), spec).await.unwrap();
        let too_big = AcquireRequest::new(vec![scope.clone()], 50_000, "alice");
        assert!(quota.acquire(too_big).await.is_err());
        let mut learned = RateLimitSignal::new(SignalKind::Observed);
        learned.learned_limits = vec![Limit::tpm(NonZeroU64::new(20_000).unwrap())];
        quota.feedback(scope.clone(), learned);
        let mut cap = RateLimitSignal::new(SignalKind::SpendCapReached);
        cap.message = Some("You exceeded your current quota, check your plan".to_owned());
        quota.feedback(scope.clone(), cap);
        let closed = AcquireRequest::new(vec![scope.clone()], 100, "bob");
        assert!(quota.acquire(closed).await.is_err());

        let snapshot = quota.snapshot().await.unwrap();
        telemetry::apply_quota_snapshot(&snapshot);
        let report = StatusReport::from_snapshot(&snapshot);
        // The last handle gone, the supervisor stops and the bridge ends having seen everything.
        drop(quota);
        tokio::time::timeout(Duration::from_secs(30), bridge)
            .await
            .expect("the bridge ends when the supervisor stops")
            .unwrap();
        let text = recorder.handle().render();
        let s = parse_exposition(&text);
        let sc = [("scope", scope.as_str())];
        assert_eq!(
            value(
                &s,
                catalog::PERMITS_DENIED,
                &[sc[0], ("reason", "never_fits")]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            value(
                &s,
                catalog::PERMITS_DENIED,
                &[sc[0], ("reason", "scope_closed")]
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(value(&s, catalog::LIMITS_LEARNED, &sc), Some(1.0));
        assert_eq!(
            value(&s, catalog::COOLDOWNS, &[sc[0], ("reason", "spend_cap")]),
            Some(1.0)
        );
        assert_eq!(value(&s, catalog::SCOPE_CLOSED, &sc), Some(1.0));
        let tpm = [sc[0], ("dimension", "tokens"), ("period", "1m")];
        assert_eq!(value(&s, catalog::WINDOW_LIMIT, &tpm), Some(20_000.0));
        assert_eq!(value(&s, catalog::LIMIT_LEARNED, &tpm), Some(1.0));
        assert!(
            !text.contains("exceeded your current quota"),
            "free text leaked: {text}"
        );
        promtool_check(&text);

        assert_eq!(report.scopes[0].state, ScopeState::Closed);
        assert_eq!(
            report.scopes[0].learned_limits,
            ["tokens per 1m: 20000 (configured 32000)"]
        );
    }

    /// A real team run (simulated backend, real time) held by a 600 s startup cooldown: scraped
    /// over loopback while both agents wait, then abandoned.
    #[tokio::test]
    async fn scrape_during_a_team_run_waiting_on_quota() {
        let recorder = telemetry::local_recorder().unwrap();
        let _local = metrics::set_default_local_recorder(&recorder);
        let quota = QuotaHandle::start(SupervisorSettings::default()).unwrap();
        let limits = massgen::config::ModelLimits {
            matched: "simulated/sim-1".to_owned(),
            limits: vec![Limit::rpm(NonZeroU64::new(2).unwrap())],
            startup_cooldown: Duration::from_secs(600),
            ..massgen::config::ModelLimits::default()
        };
        let mut table = std::collections::HashMap::new();
        table.insert(("simulated".to_owned(), "sim-1".to_owned()), limits);
        let options = RuntimeOptions {
            rate_limit: true,
            limits: Some(std::sync::Arc::new(table)),
            quota: Some(quota.clone()),
            ..RuntimeOptions::default()
        };
        let team = TeamConfig {
            source: None,
            agents: vec![agent("alice"), agent("bob")],
            orchestrator: OrchestratorConfig::default(),
            timeouts: TimeoutConfig::default(),
            ui: UiConfig::default(),
            rate_limit: RateLimitSettings::default(),
        };
        let rt = std::sync::Arc::new(Runtime::new(team, options).unwrap());
        let run_bridge = telemetry::spawn_run_bridge(rt.subscribe());
        let running = {
            let rt = rt.clone();
            tokio::spawn(async move { rt.run("Why is the sky blue?").await })
        };
        let scope = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if let Some(snap) = rt.quota_status().await {
                    if let Some(s) = snap.scopes.iter().find(|s| s.queue_depth >= 2) {
                        return s.scope.clone();
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("both agents queue behind the startup cooldown");

        let server = MetricsServer::start(
            recorder.handle(),
            MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()).with_quota(quota.clone()),
        )
        .await
        .unwrap();
        let (_, _, body) = http_get(server.local_addr(), "/metrics").await;
        let s = parse_exposition(&body);
        let sc = [("scope", scope.as_str())];
        assert_eq!(value(&s, catalog::QUEUE_DEPTH, &sc), Some(2.0), "{body}");
        let cooldown = value(&s, catalog::COOLDOWN_REMAINING, &sc).unwrap();
        assert!(cooldown > 500.0, "{cooldown}");
        assert_eq!(
            value(&s, catalog::COORDINATION_ROUNDS, &[]),
            Some(1.0),
            "{body}"
        );
        promtool_check(&body);
        let (_, _, body) = http_get(server.local_addr(), "/status").await;
        let report: StatusReport = serde_json::from_str(&body).unwrap();
        let st = report.scopes.iter().find(|s| s.scope == scope).unwrap();
        assert_eq!(st.state, ScopeState::CoolingDown);
        assert_eq!(st.queue_depth, 2);
        assert_eq!(st.cooldown_reason.as_deref(), Some("startup"));
        assert!(!running.is_finished());

        running.abort();
        server.shutdown().await.unwrap();
        run_bridge.abort();
    }

    fn agent(id: &str) -> AgentConfig {
        AgentConfig {
            id: id.to_owned(),
            backend: BackendConfig {
                kind: BackendKind::Simulated,
                model: "sim-1".to_owned(),
                base_url: None,
                api_keys: Vec::new(),
                temperature: None,
                max_tokens: None,
                enable_rate_limit: None,
                simulated: SimulatedSettings {
                    latency: Duration::from_millis(100),
                    ..SimulatedSettings::default()
                },
            },
            system_message: None,
            priority: 0,
            profile: None,
        }
    }

    /// A whole simulated run through the run bridge: turns, votes, rounds and duration.
    #[tokio::test(start_paused = true)]
    async fn simulated_run_metrics() {
        let recorder = telemetry::local_recorder().unwrap();
        let _local = metrics::set_default_local_recorder(&recorder);
        let team = TeamConfig {
            source: None,
            agents: vec![agent("carol"), agent("alice"), agent("bob")],
            orchestrator: OrchestratorConfig::default(),
            timeouts: TimeoutConfig::default(),
            ui: UiConfig::default(),
            rate_limit: RateLimitSettings::default(),
        };
        let rt = Runtime::new(team, RuntimeOptions::default()).unwrap();
        let mut watch = rt.subscribe();
        let bridge = telemetry::spawn_run_bridge(rt.subscribe());
        let out = rt.run("Why is the sky blue?").await.unwrap();
        drop(rt); // closes the event stream: the bridge has seen everything when it ends
        bridge.await.unwrap();
        let mut restarts = 0.0;
        let mut presented = 0.0;
        while let Ok(e) = watch.try_recv() {
            match e {
                RunEvent::Restart { .. } => restarts += 1.0,
                RunEvent::FinalAnswer {
                    presented: true, ..
                } => presented += 1.0,
                _ => {}
            }
        }

        let text = recorder.handle().render();
        let s = parse_exposition(&text);
        let turns = |o: &str| value(&s, catalog::AGENT_TURNS, &[("outcome", o)]);
        assert_eq!(turns("answer"), Some(out.answers.len() as f64), "{text}");
        assert_eq!(turns("vote"), Some(out.votes.len() as f64));
        assert_eq!(turns("presented"), Some(presented));
        assert_eq!(presented, 1.0);
        assert_eq!(value(&s, catalog::VOTES, &[]), Some(3.0));
        assert_eq!(
            value(&s, catalog::COORDINATION_ROUNDS, &[]),
            Some(1.0 + restarts)
        );
        let done = [("status", "completed")];
        let count = format!("{}_count", catalog::RUN_DURATION);
        let sum = format!("{}_sum", catalog::RUN_DURATION);
        assert_eq!(value(&s, &count, &done), Some(1.0));
        assert_eq!(value(&s, &sum, &done), Some(out.duration.as_secs_f64()));
        let le1 = [("status", "completed"), ("le", "1")];
        assert_eq!(
            value(&s, &format!("{}_bucket", catalog::RUN_DURATION), &le1),
            Some(1.0)
        );
        promtool_check(&text);
    }
}

/// The cached bridge and the one-off function record the same exposition for the same events.
#[test]
fn cached_bridge_matches_the_one_off_recording() {
    use massgen::supervisor::QuotaEvent;
    let events = vec![
        QuotaEvent::Waiting {
            requester: "bob".into(),
            scope: "groq/llama-3.3-70b-versatile".into(),
            limit: Some("rpm".into()),
            eta_ms: Some(1200),
            queue_depth: 3,
        },
        QuotaEvent::Granted {
            requester: "bob".into(),
            scopes: vec![
                "groq/llama-3.3-70b-versatile".into(),
                "groq/llama-3.3-70b-versatile/key:1a2b3c4d".into(),
            ],
            waited_ms: 1200,
        },
        QuotaEvent::Settled {
            scopes: vec!["groq/llama-3.3-70b-versatile".into()],
            estimate: 900,
            actual: 700,
        },
        QuotaEvent::Denied {
            requester: "carol".into(),
            scope: "groq/llama-3.3-70b-versatile".into(),
            reason: "gave up after 120.0 s waiting for scope `groq/llama-3.3-70b-versatile`: it was cooling down".into(),
        },
        QuotaEvent::CooldownStarted {
            scope: "groq/llama-3.3-70b-versatile".into(),
            reason: "429 rate limited".into(),
            duration_ms: 7_500,
        },
        QuotaEvent::LimitLearned {
            scope: "groq/llama-3.3-70b-versatile".into(),
            limit: "6000 tokens per 1m".into(),
        },
    ];
    let one_off = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&one_off, || {
        for e in &events {
            telemetry::record_quota_event(e);
        }
    });
    let cached = telemetry::local_recorder().unwrap();
    metrics::with_local_recorder(&cached, || {
        let mut bridge = telemetry::QuotaMetricsBridge::new();
        for e in &events {
            bridge.record(e);
        }
    });
    // Same series and values; the cached bridge may also show series registered at zero (a
    // scope's queue depth before anything waited), and families render in any order.
    let a = one_off.handle().render();
    let b = cached.handle().render();
    let as_map = |text: &str| -> BTreeMap<String, f64> {
        parse_exposition(text)
            .into_iter()
            .map(|s| (format!("{}{:?}", s.name, s.labels), s.value))
            .collect()
    };
    let (ma, mb) = (as_map(&a), as_map(&b));
    for key in ma.keys().chain(mb.keys()) {
        let (va, vb) = (ma.get(key).copied(), mb.get(key).copied());
        assert_eq!(va.unwrap_or(0.0), vb.unwrap_or(0.0), "{key}");
    }
    assert!(ma.len() >= 40);
    let s = parse_exposition(&a);
    let key = [("scope", "groq/llama-3.3-70b-versatile/key:1a2b3c4d")];
    assert_eq!(value(&s, catalog::PERMITS_GRANTED, &key), Some(1.0));
    let groq = [("scope", "groq/llama-3.3-70b-versatile")];
    assert_eq!(value(&s, catalog::QUEUE_DEPTH, &groq), Some(3.0));
    assert_eq!(value(&s, catalog::COOLDOWN_REMAINING, &groq), Some(7.5));
    assert_eq!(
        value(
            &s,
            catalog::PERMITS_DENIED,
            &[groq[0], ("reason", "deadline_exceeded")]
        ),
        Some(1.0)
    );
    promtool_check(&a);
}

/// Rate-limit events are logged at info with the numbers a user needs; grants stay at debug.
#[test]
fn quota_events_are_logged_with_their_numbers() {
    use massgen::supervisor::QuotaEvent;
    let buf = Buffer::default();
    let filter = telemetry::build_filter(0, None).unwrap();
    let sub = telemetry::subscriber(LogFormat::Json, filter, buf.clone(), false);
    tracing::subscriber::with_default(sub, || {
        telemetry::log_quota_event(&QuotaEvent::Waiting {
            requester: "bob".into(),
            scope: "gemini/gemini-2.5-pro".into(),
            limit: Some("rpm".into()),
            eta_ms: Some(59_999),
            queue_depth: 2,
        });
        telemetry::log_quota_event(&QuotaEvent::Granted {
            requester: "bob".into(),
            scopes: vec!["gemini/gemini-2.5-pro".into()],
            waited_ms: 59_999,
        });
        telemetry::log_quota_event(&QuotaEvent::CooldownStarted {
            scope: "gemini/gemini-2.5-pro".into(),
            reason: "429 rate limited".into(),
            duration_ms: 26_000,
        });
    });
    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(lines[0]["level"], "INFO");
    assert_eq!(lines[0]["scope"], "gemini/gemini-2.5-pro");
    assert_eq!(lines[0]["limit"], "rpm");
    assert_eq!(lines[0]["eta_ms"], 59_999);
    assert_eq!(lines[0]["queue_depth"], 2);
    assert_eq!(lines[1]["kind"], "rate_limited");
    assert_eq!(lines[1]["duration_ms"], 26_000);
    assert!(
        lines[1]["message"]
            .as_str()
            .unwrap()
            .contains("429 rate limited"),
        "{out}"
    );
}
