//! The HTTP side of the mock: routes, the shared state behind one lock (never held across an
//! await), and turning a rendered answer plus a fault into a response.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use futures_util::stream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::faults::{Fault, FaultDice};
use super::limits::{Verdict, Windows};
use super::refuse::{error_status, limit_headers, refusal};
use super::render::{Rendered, success};
use super::script::{MockDialect, answer, read_request};
use super::{MockOptions, MockStats};
use crate::keys::ApiKey;

/// How the mock answered one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MockOutcome {
    /// Admitted and answered normally.
    Admitted,
    /// Refused by a limit (429, or 413 when it can never fit).
    Refused,
    /// Answered with an injected fault.
    Faulted(Fault),
}

/// One request as the mock saw it (kept when [`MockOptions::record_events`] is set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockEvent {
    /// When it arrived.
    pub at: Instant,
    /// `key:<short id>` or `key:none`.
    pub key: String,
    /// The model asked for.
    pub model: String,
    /// Tokens charged (zero unless admitted).
    pub tokens: u64,
    /// What the mock did.
    pub outcome: MockOutcome,
}

struct Inner {
    windows: HashMap<(String, String), Windows>,
    dice: FaultDice,
    stats: MockStats,
    events: Vec<MockEvent>,
    next_id: u64,
}

struct Shared {
    opts: MockOptions,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running mock server. Dropping it stops the server.
pub struct MockServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for MockServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl MockServerHandle {
    /// The address it listens on (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR/v1`: the `base_url` for OpenAI-compatible and Anthropic backends.
    pub fn v1_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// `http://ADDR/v1beta`: the `base_url` for Gemini backends.
    pub fn gemini_url(&self) -> String {
        format!("http://{}/v1beta", self.addr)
    }

    /// Counts so far.
    pub fn stats(&self) -> MockStats {
        self.shared.lock().stats.clone()
    }

    /// Every request so far, in arrival order (empty unless `record_events` was set).
    pub fn events(&self) -> Vec<MockEvent> {
        self.shared.lock().events.clone()
    }

    /// Stops accepting and ends the server.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for MockServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the mock server on `opts.listen` (port 0 picks one) and returns at once.
pub async fn serve(opts: MockOptions) -> std::io::Result<MockServerHandle> {
    let listener = tokio::net::TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            windows: HashMap::new(),
            dice: FaultDice::new(opts.faults.clone()),
            stats: MockStats::default(),
            events: Vec::new(),
            next_id: 0,
        }),
        opts,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .route("/v1beta/models/{action}", post(gemini))
        .route("/stats", get(stats))
        .with_state(shared.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    Ok(MockServerHandle {
        addr,
        shared,
        stop: Some(stop),
        task,
    })
}

async fn stats(State(s): State<Arc<Shared>>) -> Response {
    let stats = s.lock().stats.clone();
    axum::Json(stats).into_response()
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

async fn openai(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = header_str(&headers, "authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    handle(&s, MockDialect::OpenAi, key, None, false, &body).await
}

async fn anthropic(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let key = header_str(&headers, "x-api-key").map(str::to_owned);
    handle(&s, MockDialect::Anthropic, key, None, false, &body).await
}

async fn gemini(
    State(s): State<Arc<Shared>>,
    Path(action): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, method)) = action.split_once(':') else {
        return plain(
            StatusCode::NOT_FOUND,
            "expected /v1beta/models/{model}:{method}",
        );
    };
    let stream = match method {
        "generateContent" => false,
        "streamGenerateContent" => true,
        _ => return plain(StatusCode::NOT_FOUND, "unknown method"),
    };
    let query_key = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("key="))
            .map(str::to_owned)
    });
    let key = header_str(&headers, "x-goog-api-key")
        .map(str::to_owned)
        .or(query_key);
    handle(&s, MockDialect::Gemini, key, Some(model), stream, &body).await
}

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

async fn handle(
    s: &Shared,
    dialect: MockDialect,
    key: Option<String>,
    path_model: Option<&str>,
    stream_path: bool,
    body: &[u8],
) -> Response {
    let json: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return plain(
                StatusCode::BAD_REQUEST,
                &format!("request body is not JSON: {e}"),
            );
        }
    };
    let request = match read_request(dialect, &json, path_model, stream_path) {
        Ok(r) => r,
        Err(e) => return plain(StatusCode::BAD_REQUEST, &e),
    };
    let key_label = key.as_deref().map_or_else(
        || "key:none".to_owned(),
        |k| format!("key:{}", ApiKey::new(k, "mock").short_id()),
    );
    let label = format!("{key_label}/{}", request.model);
    let scripted = answer(&request);
    let now = Instant::now();
    let raw_key = key.unwrap_or_default();

    let (rendered, fault) = {
        let mut inner = s.lock();
        let inner = &mut *inner;
        let record = s.opts.record_events;
        let log = |inner: &mut Inner, outcome| {
            if record {
                let charged = match outcome {
                    MockOutcome::Admitted => true,
                    MockOutcome::Refused => false,
                    MockOutcome::Faulted(f) => !f.is_auth(),
                };
                let tokens = if charged { scripted.total_tokens() } else { 0 };
                inner.events.push(super::MockEvent {
                    at: now,
                    key: key_label.clone(),
                    model: request.model.clone(),
                    tokens,
                    outcome,
                });
            }
        };
        if let Some(f) = inner.dice.draw(&raw_key, true) {
            inner.stats.record(label, |c| c.faulted += 1);
            log(inner, MockOutcome::Faulted(f));
            (None, Some(f))
        } else {
            let limits = s.opts.limits.for_model(&request.model);
            let window_key = if s.opts.keys_share_limits {
                "project".to_owned()
            } else {
                key_label.clone()
            };
            let windows = inner
                .windows
                .entry((window_key, request.model.clone()))
                .or_insert_with(|| Windows::new(limits));
            match windows.try_admit(scripted.total_tokens(), now) {
                Verdict::Refused {
                    limit,
                    used,
                    requested,
                    retry_after,
                } => {
                    let remaining = windows.remaining(now);
                    let r = refusal(
                        dialect,
                        &request.model,
                        &limit,
                        used,
                        requested,
                        retry_after,
                        &remaining,
                    );
                    inner.stats.record(label, |c| c.refused += 1);
                    log(inner, MockOutcome::Refused);
                    (Some(r), None)
                }
                Verdict::Admitted => {
                    let headers = limit_headers(dialect, &windows.remaining(now));
                    let fault = inner.dice.draw(&raw_key, false);
                    let tokens = scripted.total_tokens();
                    inner.stats.record(label, |c| {
                        c.admitted += 1;
                        c.tokens += tokens;
                        c.faulted += u64::from(fault.is_some());
                    });
                    log(
                        inner,
                        fault.map_or(MockOutcome::Admitted, MockOutcome::Faulted),
                    );
                    inner.next_id += 1;
                    (
                        Some(success(&request, &scripted, headers, inner.next_id)),
                        fault,
                    )
                }
            }
        }
    };
    if fault.is_some_and(|f| f != Fault::Slow) {
        // Auth faults and injected faults on admitted requests.
        return faulted(s, dialect, fault, rendered).await;
    }
    let Some(rendered) = rendered else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "mock: nothing rendered");
    };
    if rendered.status == 200 {
        sleep(
            s.opts.latency
                + if fault == Some(Fault::Slow) {
                    slow(s)
                } else {
                    Duration::ZERO
                },
        )
        .await;
    }
    respond(rendered, None)
}

fn slow(s: &Shared) -> Duration {
    s.lock().dice.slow_delay()
}

async fn sleep(d: Duration) {
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

async fn faulted(
    s: &Shared,
    dialect: MockDialect,
    fault: Option<Fault>,
    rendered: Option<Rendered>,
) -> Response {
    match (fault, rendered) {
        (Some(Fault::Status(code)), _) => respond(error_status(dialect, code), None),
        (Some(f @ (Fault::Reset | Fault::Truncate | Fault::Malformed)), Some(r)) => {
            sleep(s.opts.latency).await;
            respond(r, Some(f))
        }
        _ => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "mock: inconsistent fault",
        ),
    }
}

/// Builds the response; `Reset` sends no body byte, `Truncate` cuts half-way, `Malformed` breaks
/// the JSON (the whole body, or the middle stream event).
fn respond(mut r: Rendered, fault: Option<Fault>) -> Response {
    let content_type = if r.sse {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", content_type);
    for (k, v) in &r.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let cut = || std::io::Error::new(std::io::ErrorKind::ConnectionReset, "mock: connection cut");
    let body = match fault {
        Some(Fault::Reset) => Body::from_stream(stream::iter([Err::<Bytes, _>(cut())])),
        Some(Fault::Truncate) => {
            let mut text = r.pieces.concat();
            let mut mid = if r.sse && r.pieces.len() > 1 {
                r.pieces[..r.pieces.len() / 2].concat().len()
            } else {
                text.len() / 2
            };
            while !text.is_char_boundary(mid) {
                mid -= 1;
            }
            text.truncate(mid);
            Body::from_stream(stream::iter([Ok(Bytes::from(text)), Err(cut())]))
        }
        Some(Fault::Malformed) => {
            let i = r.pieces.len() / 2;
            if let Some(p) = r.pieces.get_mut(i) {
                *p = if r.sse {
                    "data: {\"choices\": [{\"delta\": \n\n".to_owned()
                } else {
                    "{\"id\": \"broken\", \"choices\": [{\"mess".to_owned()
                };
            }
            Body::from(r.pieces.concat())
        }
        _ => Body::from(r.pieces.concat()),
    };
    builder
        .body(body)
        .unwrap_or_else(|_| plain(StatusCode::INTERNAL_SERVER_ERROR, "mock: bad response"))
}
