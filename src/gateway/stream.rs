//! `stream: true`: server-sent `chat.completion.chunk` events — a first chunk with the role,
//! content deltas, tool call deltas, a last chunk with the finish reason, a usage chunk when
//! `stream_options.include_usage` asked for one, then `data: [DONE]`.
//!
//! The response starts once the first piece of the answer exists: a request that waits for
//! quota and runs out of time still gets a plain 429 with `Retry-After`. The call is driven by
//! the response body itself, never by a task of its own, so a client that goes away stops it.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::chat::{Quiet, completion_id};
use super::error::ApiError;
use super::wire::{finish_reason, tool_call_json, usage_json};
use crate::provider::{ChatRequest, StreamEvent};
use crate::routing::{self, CallError, CallReport, Route};

/// Events a provider may send before the body reads them (the sink never blocks; whatever
/// is dropped is sent from the final answer instead).
const SINK_CAPACITY: usize = 1024;

type CallFuture = Pin<Box<dyn Future<Output = Result<CallReport, CallError>> + Send>>;

struct Chunks {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    call: Option<CallFuture>,
    events: mpsc::Receiver<StreamEvent>,
    out: VecDeque<Bytes>,
    /// The text sent so far.
    text: String,
    /// The ids of the tool calls sent so far.
    calls: Vec<String>,
    /// The response has started: what is in `out` may have reached the client.
    started: bool,
    done: bool,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> Value {
        let mut c = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}],
        });
        if self.include_usage {
            c["usage"] = Value::Null;
        }
        c
    }

    fn push(&mut self, value: &Value) {
        self.out
            .push_back(Bytes::from(format!("data: {value}\n\n")));
    }

    fn event(&mut self, event: StreamEvent) {
        match event {
            StreamEvent::TextDelta(t) if !t.is_empty() => {
                self.text.push_str(&t);
                let c = self.chunk(json!({"content": t}), None);
                self.push(&c);
            }
            StreamEvent::ToolCall(call) => {
                if self.calls.contains(&call.id) {
                    return;
                }
                let mut delta = tool_call_json(&call);
                delta["index"] = json!(self.calls.len());
                self.calls.push(call.id.clone());
                let c = self.chunk(json!({"tool_calls": [delta]}), None);
                self.push(&c);
            }
            // Nothing sent yet: the next attempt's answer is streamed as if it were the first.
            StreamEvent::Retrying(_) if !self.started => {
                self.out.clear();
                self.text.clear();
                self.calls.clear();
            }
            StreamEvent::Retrying(_) if self.text.is_empty() && self.calls.is_empty() => {}
            // Part of an answer is out and cannot be taken back: splicing another attempt's
            // answer onto it would hand the client text no model wrote. Stop the call (its
            // permit is given back) and end the stream with an error, as a provider whose
            // stream broke would.
            StreamEvent::Retrying(reason) => {
                self.call = None;
                let error = ApiError::new(
                    axum::http::StatusCode::BAD_GATEWAY,
                    "api_error",
                    format!(
                        "upstream provider failed after part of the answer was sent ({reason}); \
                         the answer above is incomplete: send the request again"
                    ),
                );
                self.push(&error.body());
                self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                self.done = true;
            }
            _ => {}
        }
    }

    /// The end: whatever of the answer the events did not carry, the finish reason, the usage
    /// and `[DONE]`.
    fn finish(&mut self, report: &CallReport) {
        while let Ok(e) = self.events.try_recv() {
            self.event(e);
            if self.done {
                return;
            }
        }
        let response = &report.response;
        if let Some(rest) = response.text.strip_prefix(self.text.as_str()) {
            if !rest.is_empty() {
                self.event(StreamEvent::TextDelta(rest.to_owned()));
            }
        }
        for call in &response.tool_calls {
            self.event(StreamEvent::ToolCall(call.clone()));
        }
        let last = self.chunk(json!({}), Some(finish_reason(response)));
        self.push(&last);
        if self.include_usage {
            let usage = response.usage.unwrap_or(report.usage);
            let u = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage_json(&usage),
            });
            self.push(&u);
        }
        self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        self.done = true;
    }

    /// A failure after the stream began: an error event (OpenAI's SDKs raise it), then the end.
    fn fail(&mut self, error: &CallError) {
        let e = ApiError::from_call(error);
        self.push(&e.body());
        self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        self.done = true;
    }

    /// Drives the call until there is something to send; `Err` when the call failed before
    /// anything was sent.
    async fn advance(&mut self) -> Result<(), CallError> {
        while self.out.is_empty() && !self.done {
            let Some(call) = self.call.as_mut() else {
                self.done = true;
                break;
            };
            tokio::select! {
                biased;
                Some(e) = self.events.recv() => {
                    self.event(e);
                    if self.done {
                        break;
                    }
                }
                result = call => {
                    self.call = None;
                    match result {
                        Ok(report) => self.finish(&report),
                        Err(e) if self.text.is_empty() && self.calls.is_empty() => return Err(e),
                        Err(e) => self.fail(&e),
                    }
                }
            }
        }
        Ok(())
    }
}

/// Answers a streamed request: an error response when the call fails before its first piece,
/// else the event stream.
pub(super) async fn respond(
    route: Route,
    request: ChatRequest,
    model: String,
    include_usage: bool,
) -> Result<Response, ApiError> {
    let (sink, events) = mpsc::channel(SINK_CAPACITY);
    let call: CallFuture =
        Box::pin(
            async move { routing::call(&route, || request.clone(), Some(&sink), 0, &Quiet).await },
        );
    let mut chunks = Chunks {
        id: completion_id(),
        created: chrono::Utc::now().timestamp(),
        model,
        include_usage,
        call: Some(call),
        events,
        out: VecDeque::new(),
        text: String::new(),
        calls: Vec::new(),
        started: false,
        done: false,
    };
    // The role first, as OpenAI sends it; it goes out with the first piece of the answer.
    let first = chunks.chunk(json!({"role": "assistant", "content": ""}), None);
    chunks
        .advance()
        .await
        .map_err(|e| ApiError::from_call(&e))?;
    chunks
        .out
        .push_front(Bytes::from(format!("data: {first}\n\n")));
    chunks.started = true;
    let body = futures_util::stream::unfold(chunks, |mut chunks| async move {
        if chunks.out.is_empty() {
            // A failure here is sent as an error event by `advance`.
            let _ = chunks.advance().await;
        }
        let next = chunks.out.pop_front()?;
        Some((Ok::<Bytes, std::convert::Infallible>(next), chunks))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(response)
}
