//! Fuzz-style tests of the auth surface: malformed, non-UTF-8, huge and repeated key headers,
//! header injection on a real socket: always a clear 4xx, never a panic, and the server keeps
//! answering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Extension;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::ServiceExt;

use super::*;

const KEY: &str = "fuzz-client-key-0123";

fn app() -> Router {
    let mut admin = RawClient {
        name: Some("root".to_owned()),
        key: Some("fuzz-admin-key-0123".to_owned()),
        role: Some("admin".to_owned()),
        ..RawClient::default()
    };
    let user = RawClient {
        name: Some("user".to_owned()),
        key: Some(KEY.to_owned()),
        ..RawClient::default()
    };
    admin.quota = None;
    let table = Arc::new(ClientTable::from_raw(&[admin, user]).unwrap());
    Router::new()
        .route(
            "/v1/whoami",
            get(|Extension(c): Extension<Arc<Client>>| async move { c.name().to_owned() }),
        )
        .route("/admin/ping", get(|| async { "pong" }))
        .layer(axum::middleware::from_fn_with_state(table, require_client))
}

async fn send(req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = app().oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn with_auth(values: &[&[u8]]) -> Request<Body> {
    let mut b = Request::get("/v1/whoami");
    for v in values {
        b = b.header(
            "authorization",
            axum::http::HeaderValue::from_bytes(v).unwrap(),
        );
    }
    b.body(Body::empty()).unwrap()
}

/// A 401 with the OpenAI-style body whose message contains `says`.
fn assert_refused(got: &(StatusCode, axum::http::HeaderMap, String), says: &str) {
    let (status, headers, body) = got;
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key", "{body}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(says), "`{says}` not in `{message}`");
    assert!(!message.contains(KEY), "{message}");
}

#[tokio::test]
async fn the_right_key_passes_and_roles_hold() {
    let (s, _, body) = send(with_auth(&[format!("Bearer {KEY}").as_bytes()])).await;
    assert_eq!((s, body.as_str()), (StatusCode::OK, "user"));
    let req = Request::get("/v1/whoami")
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::OK);
    // A user on an admin route: 403; the admin: 200.
    let req = Request::get("/admin/ping")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::empty())
        .unwrap();
    let (s, _, body) = send(req).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("admin role"), "{body}");
    let req = Request::get("/admin/ping")
        .header("authorization", "Bearer fuzz-admin-key-0123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(req).await.0, StatusCode::OK);
    // No key at all on an admin route: 401, not 403.
    let req = Request::get("/admin/ping").body(Body::empty()).unwrap();
    assert_refused(&send(req).await, "missing API key");
}

#[tokio::test]
async fn malformed_key_headers_are_clear_401s() {
    let huge = format!("Bearer {}", "a".repeat(100_000));
    let key_twice = format!("Bearer {KEY} {KEY}");
    let right = format!("Bearer {KEY}");
    let cases: Vec<(Vec<&[u8]>, &str)> = vec![
        (vec![b"Bearer \xff\xfe\xfd"], "visible ASCII"),
        (vec![b"\x80\x81"], "visible ASCII"),
        (vec![b"Bearer"], "`Bearer` with no key"),
        (vec![b"Bearer "], "`Bearer` with no key"),
        (vec![b"Bearer \t "], "`Bearer` with no key"),
        (vec![b""], "must be `Bearer <key>`"),
        (vec![b"Basic dXNlcjpwYXNz"], "must be `Bearer <key>`"),
        (vec![KEY.as_bytes()], "must be `Bearer <key>`"),
        (vec![key_twice.as_bytes()], "spaces"),
        (vec![huge.as_bytes()], "too long"),
        (
            vec![right.as_bytes(), b"Bearer other-key-000"],
            "more than one Authorization header",
        ),
        (vec![b"Bearer wrong-key-0000"], "invalid API key"),
    ];
    for (values, says) in cases {
        let got = send(with_auth(&values)).await;
        assert_refused(&got, says);
    }
    let req = Request::get("/v1/whoami")
        .header("x-api-key", "")
        .body(Body::empty())
        .unwrap();
    assert_refused(&send(req).await, "empty x-api-key");
    let req = Request::get("/v1/whoami")
        .header("x-api-key", KEY)
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    assert_refused(&send(req).await, "more than one x-api-key");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Any bytes a header value may hold, with or without the scheme: refused, never a panic.
    #[test]
    fn arbitrary_authorization_values_are_refused(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        bearer in any::<bool>(),
    ) {
        let mut value = if bearer { b"Bearer ".to_vec() } else { Vec::new() };
        value.extend(bytes);
        let Ok(header) = axum::http::HeaderValue::from_bytes(&value) else {
            return Ok(());
        };
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let status = rt.block_on(async {
            let req = Request::get("/v1/whoami")
                .header("authorization", header)
                .body(Body::empty())
                .unwrap();
            app().oneshot(req).await.unwrap().status()
        });
        prop_assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

/// Sends `raw` on a new connection and reads the answer's status line (bounded in time).
async fn raw_status(addr: std::net::SocketAddr, raw: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer (and close) before reading all of a huge request.
    let _ = s.write_all(raw).await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), async {
        let mut chunk = [0u8; 4096];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    if buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "no answer to {:?}",
        String::from_utf8_lossy(raw)
    );
    let text = String::from_utf8_lossy(&buf).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn header_injection_on_a_real_socket_gets_4xx_and_the_server_lives_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app()).await;
    });
    let ok = format!(
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(addr, ok.as_bytes()).await, "HTTP/1.1 200 OK");
    let big = format!(
        "GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        "k".repeat(200_000)
    );
    let attacks: Vec<Vec<u8>> = vec![
        // A bare CR or LF inside the value, trying to start a header of its own.
        format!("GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\rX-Role: admin\r\n\r\n").into_bytes(),
        b"GET /admin/ping HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\nX-Role: admin\r\n\r\n".to_vec(),
        // Obsolete line folding of the key header.
        format!("GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\r\n {KEY}\r\n\r\n").into_bytes(),
        // A NUL byte, a space in a header name, no colon.
        b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\x00b\r\n\r\n".to_vec(),
        b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthor ization: Bearer abc\r\n\r\n".to_vec(),
        b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization Bearer abc\r\n\r\n".to_vec(),
        // Non-UTF-8 bytes that are legal in a value (obs-text): reaches the middleware.
        b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xc3\x28\xff\r\nConnection: close\r\n\r\n".to_vec(),
        // A key header of 200 kB (under the server's header limit: the middleware refuses it).
        big.into_bytes(),
    ];
    for raw in &attacks {
        let status = raw_status(addr, raw).await;
        let code: u16 = status
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("no status in {status:?}"));
        assert!(
            (400..500).contains(&code),
            "{status} for {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(120)])
        );
    }
    assert_eq!(raw_status(addr, ok.as_bytes()).await, "HTTP/1.1 200 OK");
    assert!(!server.is_finished());
    server.abort();
}
