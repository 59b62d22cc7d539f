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
