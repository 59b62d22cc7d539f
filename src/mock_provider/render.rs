//! Answers in each provider's real shapes: whole JSON, SSE event sequences, rate-limit refusals
//! (status, headers, body) and error bodies for injected statuses.

use std::time::Duration;

use chrono::Utc;
use serde_json::{Value, json};

use super::script::{MockAnswer, MockDialect, MockRequest};
use crate::quota::{Dimension, Limit};

/// A rendered answer before faults are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// HTTP status.
    pub status: u16,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body: one piece for a whole answer, one piece per SSE event for a stream.
    pub pieces: Vec<String>,
    /// Whether `pieces` are SSE events.
    pub sse: bool,
}

impl Rendered {
    fn json(status: u16, headers: Vec<(String, String)>, body: &Value) -> Self {
        Self {
            status,
            headers,
            pieces: vec![body.to_string()],
            sse: false,
        }
    }
}

fn sse(event: Option<&str>, data: &Value) -> String {
    match event {
        Some(e) => format!("event: {e}\ndata: {data}\n\n"),
        None => format!("data: {data}\n\n"),
    }
}

fn halves(s: &str) -> [&str; 2] {
    let mut mid = s.len() / 2;
    while !s.is_char_boundary(mid) {
        mid -= 1;
    }
    [&s[..mid], &s[mid..]]
}

/// A duration as a Go duration string (`644ms`, `1.5s`), the way OpenAI writes resets.
pub fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{}ms", ms.max(1))
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Rate-limit headers of a successful answer or a refusal, for limits counted per minute (the
/// only window the real headers describe; others are left out rather than misdescribed).
pub fn limit_headers(
    dialect: MockDialect,
    remaining: &[(Limit, u64, Duration)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (limit, left, reset) in remaining
        .iter()
        .filter(|(l, _, _)| l.period.as_secs() == 60)
    {
        let dim = limit.dimension.as_str();
        match dialect {
            MockDialect::OpenAi => {
                out.push((format!("x-ratelimit-limit-{dim}"), limit.amount.to_string()));
                out.push((format!("x-ratelimit-remaining-{dim}"), left.to_string()));
                out.push((format!("x-ratelimit-reset-{dim}"), go_duration(*reset)));
            }
            MockDialect::Anthropic => {
                let at = Utc::now() + chrono::Duration::from_std(*reset).unwrap_or_default();
                let base = format!("anthropic-ratelimit-{dim}");
                out.push((format!("{base}-limit"), limit.amount.to_string()));
                out.push((format!("{base}-remaining"), left.to_string()));
                out.push((
                    format!("{base}-reset"),
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                ));
            }
            MockDialect::Gemini => {}
        }
    }
    out
}

fn window_words(limit: &Limit) -> String {
    match limit.period.as_secs() {
        60 => "min".to_owned(),
        86_400 => "day".to_owned(),
        _ => go_duration(limit.period),
    }
}

/// The refusal of an over-limit request in `dialect`'s real shape. `retry_after: None` means the
/// request can never fit (too large).
pub fn refusal(
    dialect: MockDialect,
    model: &str,
    limit: &Limit,
    used: u64,
    requested: u64,
    retry_after: Option<Duration>,
    remaining: &[(Limit, u64, Duration)],
) -> Rendered {
    let dim = limit.dimension.as_str();
    let amount = limit.amount.get();
    let Some(wait) = retry_after else {
        return too_large(dialect, model, limit, requested);
    };
    let mut headers = limit_headers(dialect, remaining);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    match dialect {
        MockDialect::OpenAi => {
            headers.push(("retry-after".into(), secs.to_string()));
            let ms = wait.as_millis() + u128::from(wait.subsec_nanos() % 1_000_000 > 0);
            headers.push(("retry-after-ms".into(), ms.to_string()));
            let message = format!(
                "Rate limit reached for {model} in organization org-mock on {dim} per {}: Limit {amount}, Used {used}, Requested {requested}. Please try again in {}.",
                window_words(limit),
                go_duration(wait)
            );
            let body = json!({"error": {"message": message, "type": dim, "param": null, "code": "rate_limit_exceeded"}});
            Rendered::json(429, headers, &body)
        }
        MockDialect::Gemini => {
            let per = match limit.period.as_secs() {
                60 => "Minute".to_owned(),
                86_400 => "Day".to_owned(),
                _ => go_duration(limit.period),
            };
            let what = match limit.dimension {
                Dimension::Requests => "GenerateRequests",
                Dimension::Tokens => "GenerateContentInputTokens",
            };
            let body = json!({"error": {
            "code": 429,
            "message": "You exceeded your current quota, please check your plan and billing details.",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
                    "quotaMetric": format!("generativelanguage.googleapis.com/generate_content_{dim}"),
                    "quotaId": format!("{what}Per{per}PerProjectPerModel-Mock"),
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": amount.to_string()}]},
                {"@type": "type.googleapis.com/google.rpc.RetryInfo",
                 "retryDelay": format!("{}s", wait.as_secs_f64())}
            ]}});
            Rendered::json(429, headers, &body)
        }
        MockDialect::Anthropic => {
            headers.push(("retry-after".into(), secs.to_string()));
            let message = format!(
                "This request would exceed the rate limit for your organization of {amount} {dim} per {}. For details, refer to the rate limits documentation.",
                window_words(limit)
            );
            let body =
                json!({"type": "error", "error": {"type": "rate_limit_error", "message": message}});
            Rendered::json(429, headers, &body)
        }
    }
}

fn too_large(dialect: MockDialect, model: &str, limit: &Limit, requested: u64) -> Rendered {
    let amount = limit.amount.get();
    let dim = limit.dimension.as_str();
    match dialect {
        MockDialect::OpenAi => {
            let message = format!(
                "Request too large for model `{model}` in organization org-mock on {dim} per {}: Limit {amount}, Requested {requested}, please reduce your message size and try again.",
                window_words(limit)
            );
            Rendered::json(
                413,
                Vec::new(),
                &json!({"error": {"message": message, "type": dim, "code": "rate_limit_exceeded"}}),
            )
        }
        MockDialect::Gemini => Rendered::json(
            400,
            Vec::new(),
            &json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": format!("Request too large: Limit {amount}, Requested {requested}.")}}),
        ),
        MockDialect::Anthropic => Rendered::json(
            413,
            Vec::new(),
            &json!({"type": "error", "error": {"type": "request_too_large",
                "message": format!("Request too large: Limit {amount}, Requested {requested}.")}}),
        ),
    }
}

/// An injected error status in `dialect`'s shape (a bare 429 carries no retry information).
pub fn error_status(dialect: MockDialect, status: u16) -> Rendered {
    let (message, openai_type, gemini_status, anthropic_type) = match status {
        401 => (
            "Incorrect API key provided.",
            "invalid_request_error",
            "UNAUTHENTICATED",
            "authentication_error",
        ),
        403 => (
            "The key may not use this model.",
            "invalid_request_error",
            "PERMISSION_DENIED",
            "permission_error",
        ),
        429 => (
            "Too many requests.",
            "requests",
            "RESOURCE_EXHAUSTED",
            "rate_limit_error",
        ),
        503 => (
            "The model is overloaded. Please try again later.",
            "server_error",
            "UNAVAILABLE",
            "api_error",
        ),
        529 => (
            "Overloaded",
            "server_error",
            "UNAVAILABLE",
            "overloaded_error",
        ),
        s if s >= 500 => (
            "The server had an error while processing your request.",
            "server_error",
            "INTERNAL",
            "api_error",
        ),
        _ => (
            "The request was refused.",
            "invalid_request_error",
            "INVALID_ARGUMENT",
            "invalid_request_error",
        ),
    };
    let body = match dialect {
        MockDialect::OpenAi => {
            let code = if status == 401 {
                json!("invalid_api_key")
            } else {
                Value::Null
            };
            json!({"error": {"message": message, "type": openai_type, "param": null, "code": code}})
        }
        MockDialect::Gemini => {
            json!({"error": {"code": status, "message": message, "status": gemini_status}})
        }
        MockDialect::Anthropic => {
            json!({"type": "error", "error": {"type": anthropic_type, "message": message}})
        }
    };
    Rendered::json(status, Vec::new(), &body)
}

/// A successful answer, whole or streamed, in `request.dialect`'s shape.
pub fn success(
    request: &MockRequest,
    a: &MockAnswer,
    headers: Vec<(String, String)>,
    id: u64,
) -> Rendered {
    let pieces = match (request.dialect, request.stream) {
        (MockDialect::OpenAi, false) => vec![openai_whole(request, a, id).to_string()],
        (MockDialect::OpenAi, true) => openai_stream(request, a, id),
        (MockDialect::Gemini, false) => vec![gemini_chunk(request, a, &a.text, true).to_string()],
        (MockDialect::Gemini, true) => {
            let mut out = Vec::new();
            for part in halves(&a.text).into_iter().filter(|p| !p.is_empty()) {
                out.push(sse(None, &gemini_chunk(request, a, part, false)));
            }
            out.push(sse(None, &gemini_chunk(request, a, "", true)));
            out
        }
        (MockDialect::Anthropic, false) => vec![anthropic_whole(request, a, id).to_string()],
        (MockDialect::Anthropic, true) => anthropic_stream(request, a, id),
    };
    Rendered {
        status: 200,
        headers,
        pieces,
        sse: request.stream,
    }
}

fn openai_usage(a: &MockAnswer) -> Value {
    json!({"prompt_tokens": a.input_tokens, "completion_tokens": a.output_tokens, "total_tokens": a.total_tokens()})
}

fn openai_whole(r: &MockRequest, a: &MockAnswer, id: u64) -> Value {
    let mut message = json!({"role": "assistant", "content": if a.text.is_empty() { Value::Null } else { json!(a.text) }});
    if let Some((name, args)) = &a.tool {
        message["tool_calls"] = json!([{"id": format!("call_mock{id}"), "type": "function",
            "function": {"name": name, "arguments": args.to_string()}}]);
    }
    json!({"id": format!("chatcmpl-mock{id}"), "object": "chat.completion", "created": Utc::now().timestamp(),
        "model": r.model, "choices": [{"index": 0, "message": message,
        "finish_reason": if a.tool.is_some() { "tool_calls" } else { "stop" }}],
        "usage": openai_usage(a)})
}

fn openai_stream(r: &MockRequest, a: &MockAnswer, id: u64) -> Vec<String> {
    let chunk = |delta: Value, finish: Value| {
        sse(
            None,
            &json!({"id": format!("chatcmpl-mock{id}"), "object": "chat.completion.chunk",
            "model": r.model, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
        )
    };
    let mut out = vec![chunk(
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    for part in halves(&a.text).into_iter().filter(|p| !p.is_empty()) {
        out.push(chunk(json!({"content": part}), Value::Null));
    }
    if let Some((name, args)) = &a.tool {
        out.push(chunk(
            json!({"tool_calls": [{"index": 0, "id": format!("call_mock{id}"), "type": "function",
            "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        ));
        for part in halves(&args.to_string()) {
            out.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
    }
    out.push(chunk(
        json!({}),
        json!(if a.tool.is_some() {
            "tool_calls"
        } else {
            "stop"
        }),
    ));
    if r.include_usage {
        out.push(sse(
            None,
            &json!({"id": format!("chatcmpl-mock{id}"), "object": "chat.completion.chunk",
            "model": r.model, "choices": [], "usage": openai_usage(a)}),
        ));
    }
    out.push("data: [DONE]\n\n".to_owned());
    out
}

fn gemini_chunk(r: &MockRequest, a: &MockAnswer, text: &str, last: bool) -> Value {
    let mut parts = Vec::new();
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    let mut candidate = json!({"index": 0});
    if last {
        if let Some((name, args)) = &a.tool {
            parts.push(json!({"functionCall": {"name": name, "args": args}}));
        }
        candidate["finishReason"] = json!("STOP");
    }
    candidate["content"] = json!({"role": "model", "parts": parts});
    let mut out = json!({"candidates": [candidate], "modelVersion": r.model});
    if last {
        out["usageMetadata"] = json!({"promptTokenCount": a.input_tokens,
            "candidatesTokenCount": a.output_tokens, "totalTokenCount": a.total_tokens()});
    }
    out
}

fn anthropic_whole(r: &MockRequest, a: &MockAnswer, id: u64) -> Value {
    let mut content = Vec::new();
    if !a.text.is_empty() {
        content.push(json!({"type": "text", "text": a.text}));
    }
    if let Some((name, args)) = &a.tool {
        content.push(json!({"type": "tool_use", "id": format!("toolu_mock{id}"), "name": name, "input": args}));
    }
    json!({"id": format!("msg_mock{id}"), "type": "message", "role": "assistant", "model": r.model,
        "content": content, "stop_reason": if a.tool.is_some() { "tool_use" } else { "end_turn" },
        "stop_sequence": null, "usage": {"input_tokens": a.input_tokens, "output_tokens": a.output_tokens}})
}

fn anthropic_stream(r: &MockRequest, a: &MockAnswer, id: u64) -> Vec<String> {
    let mut out = vec![sse(
        Some("message_start"),
        &json!({"type": "message_start", "message": {
        "id": format!("msg_mock{id}"), "type": "message", "role": "assistant", "model": r.model,
        "content": [], "stop_reason": null, "usage": {"input_tokens": a.input_tokens, "output_tokens": 1}}}),
    )];
    let mut index = 0;
    if !a.text.is_empty() {
        out.push(sse(
            Some("content_block_start"),
            &json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "text", "text": ""}}),
        ));
        for part in halves(&a.text) {
            out.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": part}}),
            ));
        }
        out.push(sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    if let Some((name, args)) = &a.tool {
        out.push(sse(Some("content_block_start"), &json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "tool_use", "id": format!("toolu_mock{id}"), "name": name, "input": {}}})));
        for part in halves(&args.to_string()) {
            out.push(sse(
                Some("content_block_delta"),
                &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "input_json_delta", "partial_json": part}}),
            ));
        }
        out.push(sse(
            Some("content_block_stop"),
            &json!({"type": "content_block_stop", "index": index}),
        ));
    }
    out.push(sse(Some("message_delta"), &json!({"type": "message_delta",
        "delta": {"stop_reason": if a.tool.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null},
        "usage": {"output_tokens": a.output_tokens}})));
    out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
    out
}
