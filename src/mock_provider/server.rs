//! The HTTP side of the mock: routes, the shared state behind one lock (never held across an
//! await), charging each request the way its dialect's provider counts, the admission log, and
//! turning a rendered answer plus a fault into a response.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use chrono::Utc;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::convo::{MockDialect, MockRequest, read_request};
use super::faults::{Fault, FaultDice};
use super::headers::limit_headers;
use super::hostile;
use super::limits::{Charge, Verdict, Windows};
use super::records::{MockAdmission, MockEvent, MockOutcome};
use super::refuse::{Over, error_status, refusal};
use super::render::{Rendered, success};
use super::respond::{error_message, plain, respond};
use super::script::{self, MockAnswer, Reading};
use super::{MockOptions, MockStats};
use crate::keys::ApiKey;

/// Admissions kept in the log; older ones are dropped first.
pub const ADMISSION_LOG_CAP: usize = 100_000;

struct Inner {
    windows: HashMap<(String, String), Windows>,
    dice: FaultDice,
    stats: MockStats,
    events: Vec<MockEvent>,
    admissions: VecDeque<MockAdmission>,
    next_id: u64,
}

struct Shared {
    opts: MockOptions,
    started: Instant,
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

    /// The admission log, oldest first (the last [`ADMISSION_LOG_CAP`]).
    pub fn admissions(&self) -> Vec<MockAdmission> {
        self.shared.lock().admissions.iter().cloned().collect()
    }

    /// The options it runs with (its limits, among others).
    pub fn options(&self) -> &MockOptions {
        &self.shared.opts
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

/// Starts the mock server on `opts.listen` (port 0 picks one) and returns once it listens (the
/// first start in a process also builds the tokenizers the mock counts with).
pub async fn serve(opts: MockOptions) -> std::io::Result<MockServerHandle> {
    // Requests are stamped after they are counted: count with tokenizers built beforehand.
    tokio::task::spawn_blocking(super::tokens::build_tokenizers)
        .await
        .map_err(std::io::Error::other)?;
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
            admissions: VecDeque::new(),
            next_id: 0,
        }),
        started: Instant::now(),
        opts,
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .route("/v1beta/models/{action}", post(gemini))
        .route("/stats", get(stats))
        .route("/admissions", get(admissions))
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

async fn admissions(State(s): State<Arc<Shared>>) -> Response {
    let log: Vec<MockAdmission> = s.lock().admissions.iter().cloned().collect();
    axum::Json(log).into_response()
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

/// What a request weighs at arrival and once answered, as its dialect's provider counts:
/// OpenAI-compatible input + the sent cap (else the model's largest output) at arrival, never
/// refunded; Gemini the actual input + output (known at arrival: the answer is scripted);
/// Anthropic input + `max_tokens` at arrival, the output adjusted to the actual at completion.
fn charges(dialect: MockDialect, a: &MockAnswer) -> (Charge, Charge) {
    let used = Charge {
        requests: 1,
        tokens: a.total_tokens(),
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
    };
    let capped = Charge {
        requests: 1,
        tokens: a.input_tokens.saturating_add(a.output_cap),
        input_tokens: a.input_tokens,
        output_tokens: a.output_cap,
    };
    match dialect {
        MockDialect::OpenAi => (capped, capped),
        MockDialect::Gemini => (used, used),
        MockDialect::Anthropic => (capped, used),
    }
}

fn reply_name(a: &MockAnswer) -> &'static str {
    match a.tool.as_ref().map(|(n, _)| n.as_str()) {
        Some("vote") => "vote",
        Some("new_answer") => "new_answer",
        Some(_) => "tool",
        None => "text",
    }
}

fn feedback_name(f: &script::Feedback) -> &'static str {
    match f {
        script::Feedback::Duplicate => "duplicate",
        script::Feedback::AnswerCap => "answer_cap",
        script::Feedback::Overlap => "overlap",
        script::Feedback::BadVote(_) => "bad_vote",
        script::Feedback::NothingToVote => "nothing_to_vote",
        script::Feedback::NoTool => "no_tool",
        script::Feedback::Other => "other",
    }
}

/// After the answer went out: what to re-weigh (Anthropic's output tokens).
struct Completion {
    window: (String, String),
    ticket: u64,
    id: u64,
    arrival: Charge,
    done: Charge,
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
        Err(e) => return respond(error_message(dialect, 400, &e), None),
    };
    let key_label = key.as_deref().map_or_else(
        || "key:none".to_owned(),
        |k| format!("key:{}", ApiKey::new(k, "mock").short_id()),
    );
    let reading = script::read(&request);
    let scripted = script::answer(&request, &reading);
    let (arrival, done) = charges(dialect, &scripted);
    let groq = dialect == MockDialect::OpenAi
        && (s.opts.groq || request.model.to_ascii_lowercase().contains("groq"));
    let now = Instant::now();
    let now_utc = Utc::now();
    let raw_key = key.unwrap_or_default();
    let window_key = if s.opts.keys_share_limits {
        "project".to_owned()
    } else {
        key_label.clone()
    };
    let window = (window_key, request.model.clone());

    let (rendered, fault, completion) = {
        let mut inner = s.lock();
        let inner = &mut *inner;
        let label = format!("{key_label}/{}", request.model);
        let d = inner
            .stats
            .by_dialect
            .entry(dialect.as_str().to_owned())
            .or_default();
        d.requests += 1;
        let record = s.opts.record_events;
        let log = |inner: &mut Inner, outcome, tokens| {
            if record {
                inner.events.push(MockEvent {
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
            if let Some(d) = inner.stats.by_dialect.get_mut(dialect.as_str()) {
                d.faulted += 1;
            }
            log(inner, MockOutcome::Faulted(f), 0);
            (None, Some(f), None)
        } else {
            let limits = s.opts.limits.for_model(&request.model);
            let windows = inner
                .windows
                .entry(window.clone())
                .or_insert_with(|| Windows::new(limits));
            match windows.try_admit(&arrival, now) {
                Verdict::Refused {
                    limit,
                    used,
                    requested,
                    retry_after,
                } => {
                    let states = windows.states(now);
                    let over = Over {
                        dialect,
                        groq,
                        model: &request.model,
                        limit,
                        used,
                        requested,
                        retry_after,
                    };
                    let r = refusal(&over, &states, now_utc);
                    inner.stats.record(label, |c| c.refused += 1);
                    if let Some(d) = inner.stats.by_dialect.get_mut(dialect.as_str()) {
                        d.refused += 1;
                    }
                    log(inner, MockOutcome::Refused, 0);
                    (Some(r), None, None)
                }
                Verdict::Admitted(ticket) => {
                    let mut headers = limit_headers(dialect, groq, &windows.states(now), now_utc);
                    let fault = inner.dice.draw(&raw_key, false);
                    if let Some(Fault::Hostile(h)) = fault {
                        headers = hostile::headers(dialect, h);
                    }
                    inner.stats.record(label, |c| {
                        c.admitted += 1;
                        c.tokens += arrival.tokens;
                        c.faulted += u64::from(fault.is_some());
                    });
                    if let Some(d) = inner.stats.by_dialect.get_mut(dialect.as_str()) {
                        count_admitted(d, &scripted, &reading, arrival.tokens, fault.is_some());
                    }
                    log(
                        inner,
                        fault.map_or(MockOutcome::Admitted, MockOutcome::Faulted),
                        arrival.tokens,
                    );
                    inner.next_id += 1;
                    let id = inner.next_id;
                    push_admission(
                        inner,
                        MockAdmission {
                            id,
                            at: now,
                            at_us: u64::try_from(
                                now.saturating_duration_since(s.started).as_micros(),
                            )
                            .unwrap_or(u64::MAX),
                            dialect,
                            key: key_label.clone(),
                            model: request.model.clone(),
                            scope: format!("{}/{}", window.0, window.1),
                            charged_at_arrival: arrival,
                            charged: arrival,
                            settled_at: None,
                            settled_us: None,
                            max_output_sent: request.max_output,
                            reply: reply_name(&scripted).to_owned(),
                            tool_results: reading.tool_results,
                            rejection: reading
                                .rejection
                                .as_ref()
                                .map(|f| feedback_name(f).to_owned()),
                            native_rejection: reading.native_rejection,
                            prose_calls: reading.prose_calls,
                            fault: fault.map(|f| format!("{f:?}")),
                            images: u64::try_from(request.images().count()).unwrap_or(u64::MAX),
                        },
                    );
                    let completion = (arrival != done && fault.is_none()).then(|| Completion {
                        window: window.clone(),
                        ticket,
                        id,
                        arrival,
                        done,
                    });
                    (
                        Some(success(&request, &scripted, headers, id)),
                        fault,
                        completion,
                    )
                }
            }
        }
    };
    answer_with(s, dialect, &request, rendered, fault, completion).await
}

fn count_admitted(
    d: &mut super::MockDialectCounts,
    a: &MockAnswer,
    reading: &Reading,
    tokens: u64,
    faulted: bool,
) {
    d.admitted += 1;
    d.faulted += u64::from(faulted);
    d.tokens += tokens;
    d.input_tokens += a.input_tokens;
    d.output_tokens += a.output_tokens;
    d.tool_results += reading.tool_results;
    d.rejections += u64::from(reading.rejection.is_some());
    d.native_rejections += u64::from(reading.native_rejection);
    d.prose_calls += u64::from(reading.prose_calls > 0);
    d.replayed_calls += reading.replayed_calls;
    match reply_name(a) {
        "vote" => d.votes += 1,
        "new_answer" => d.new_answers += 1,
        _ => d.texts += 1,
    }
}

fn push_admission(inner: &mut Inner, a: MockAdmission) {
    if inner.admissions.len() >= ADMISSION_LOG_CAP {
        inner.admissions.pop_front();
    }
    inner.admissions.push_back(a);
}

/// Re-weighs an admission once its answer has gone out.
fn complete(s: &Shared, c: &Completion) {
    let mut inner = s.lock();
    let inner = &mut *inner;
    if let Some(w) = inner.windows.get_mut(&c.window) {
        w.settle(c.ticket, &c.done);
    }
    if let Some(a) = inner.admissions.iter_mut().rev().find(|a| a.id == c.id) {
        let now = Instant::now();
        a.charged = c.done;
        a.settled_at = Some(now);
        a.settled_us = u64::try_from(now.saturating_duration_since(s.started).as_micros()).ok();
        let label = format!("{}/{}", a.key, a.model);
        let (before, after) = (c.arrival.tokens, c.done.tokens);
        if let Some(counts) = inner.stats.by_key_model.get_mut(&label) {
            counts.tokens = counts.tokens.saturating_sub(before).saturating_add(after);
        }
        inner.stats.total.tokens = inner
            .stats
            .total
            .tokens
            .saturating_sub(before)
            .saturating_add(after);
        if let Some(d) = inner.stats.by_dialect.get_mut(a.dialect.as_str()) {
            d.tokens = d.tokens.saturating_sub(before).saturating_add(after);
        }
    }
}

async fn answer_with(
    s: &Shared,
    dialect: MockDialect,
    request: &MockRequest,
    rendered: Option<Rendered>,
    fault: Option<Fault>,
    completion: Option<Completion>,
) -> Response {
    if let Some(Fault::Hostile(h)) = fault {
        if !h.is_answer() {
            return respond(hostile::refusal(dialect, &request.model, h), None);
        }
    }
    let passes = |f: Fault| matches!(f, Fault::Slow | Fault::Hostile(_));
    if fault.is_some_and(|f| !passes(f)) {
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
    if let Some(c) = &completion {
        complete(s, c);
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
