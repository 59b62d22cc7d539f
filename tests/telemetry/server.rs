//! The `/metrics` + `/status` server over loopback.

use std::sync::{Arc, Mutex};

use massgen::telemetry::{self, MetricsServer, MetricsServerOptions, catalog, quota};

use super::{http_get, parse_exposition, value};

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

/// The dashboard's page and assets at `/`, and `/usage/series` from a ledger written here.
#[tokio::test]
async fn server_serves_the_dashboard_and_the_usage_series() {
    use massgen::store::{SqliteUsageStore, StoreSpec, UsageRecord, UsageStore};
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state.db");
    let now = chrono::Utc::now().timestamp_millis();
    let record = |at_ms: i64, outcome: &str| UsageRecord {
        at_ms,
        run_id: "r1".into(),
        agent: "a".into(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        key: String::new(),
        input_tokens: 100,
        output_tokens: 10,
        cost_usd: Some(0.5),
        outcome: outcome.into(),
        latency_ms: 5,
    };
    let mut store = SqliteUsageStore::open(&db).unwrap();
    // Two calls in the last minute, one 3 h ago (outside `since=1h`).
    store
        .append(&[
            record(now - 3 * 3_600_000, "ok"),
            record(now - 1_000, "ok"),
            record(now - 500, "rate_limited"),
        ])
        .unwrap();
    drop(store);
    let recorder = telemetry::local_recorder().unwrap();
    let options = MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()).with_routes(
        massgen::views::dashboard::routes(
            massgen::views::DashboardMode::Run,
            Some(StoreSpec::Sqlite(db)),
        ),
    );
    let server = MetricsServer::start(recorder.handle(), options)
        .await
        .unwrap();
    let addr = server.local_addr();

    let (status, head, body) = http_get(addr, "/").await;
    assert_eq!(status, 200);
    assert!(head.contains("text/html"), "{head}");
    assert!(head.contains("content-security-policy"), "{head}");
    assert!(
        body.contains("dashboard.js") && body.contains("data-mode=\"run\""),
        "{body}"
    );
    for (path, kind) in [
        ("/dashboard.js", "javascript"),
        ("/dashboard.css", "text/css"),
    ] {
        let (status, head, body) = http_get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert!(head.contains(kind) && !body.is_empty(), "{path}: {head}");
    }

    let (status, _, body) = http_get(addr, "/usage/series?since=1h&bucket=1m").await;
    assert_eq!(status, 200, "{body}");
    let s: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(s["bucket_ms"], 60_000);
    assert_eq!(s["total"]["calls"], 2, "{s}");
    assert_eq!(s["total"]["failed"], 1, "{s}");
    assert_eq!(s["total"]["cost_usd"], 1.0, "{s}");
    assert_eq!(
        s["models"]["openai/gpt-4o-mini"]["input_tokens"], 200,
        "{s}"
    );
    let (status, _, _) = http_get(addr, "/usage/series?since=24h").await;
    assert_eq!(status, 200);
    let (status, _, body) = http_get(addr, "/usage/series?bucket=never").await;
    assert_eq!(status, 400, "{body}");
    server.shutdown().await.unwrap();

    // Without a ledger the series is a 404 that says why, and the page is still served.
    let options = MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()).with_routes(
        massgen::views::dashboard::routes(massgen::views::DashboardMode::Run, None),
    );
    let server = MetricsServer::start(recorder.handle(), options)
        .await
        .unwrap();
    let (status, _, body) = http_get(server.local_addr(), "/usage/series").await;
    assert_eq!(status, 404);
    assert!(body.contains("no usage ledger"), "{body}");
    let (status, _, _) = http_get(server.local_addr(), "/").await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();

    // A server given no routes of its own serves /metrics and /status only.
    let server = MetricsServer::start(
        recorder.handle(),
        MetricsServerOptions::new("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let (status, _, _) = http_get(server.local_addr(), "/").await;
    assert_eq!(status, 404);
    let (status, _, _) = http_get(server.local_addr(), "/metrics").await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}
