//! Successful answers in each provider's real shapes: whole JSON and SSE event sequences.

use chrono::Utc;
use serde_json::{Value, json};

use super::convo::{MockDialect, MockRequest};
use super::script::{Finish, MockAnswer};

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
    pub(super) fn json(status: u16, headers: Vec<(String, String)>, body: &Value) -> Self {
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

/// A successful answer, whole or streamed, in `request.dialect`'s shape.
pub fn success(
    request: &MockRequest,
    a: &MockAnswer,
    headers: Vec<(String, String)>,
    id: u64,
) -> Rendered {
    let pieces = match (request.dialect, request.stream) {
        (MockDialect::OpenAi, false) => {
            vec![openai_whole(request, a, id).to_string()]
        }
        (MockDialect::OpenAi, true) => openai_stream(request, a, id),
        (MockDialect::Gemini, false) => {
            vec![gemini_chunk(request, a, &a.text, true).to_string()]
        }
        (MockDialect::Gemini, true) => {
            let mut out = Vec::new();
            for part in halves(&a.text).into_iter().filter(|p| !p.is_empty()) {
                out.push(sse(None, &gemini_chunk(request, a, part, false)));
            }
            out.push(sse(None, &gemini_chunk(request, a, "", true)));
            out
        }
        (MockDialect::Anthropic, false) => {
            vec![anthropic_whole(request, a, id).to_string()]
        }
        (MockDialect::Anthropic, true) => anthropic_stream(request, a, id),
    };
    Rendered {
        status: 200,
        headers,
        pieces,
        sse: request.stream,
    }
}

fn openai_finish(a: &MockAnswer) -> &'static str {
    match a.finish {
        Finish::Stop => "stop",
        Finish::Tool => "tool_calls",
        Finish::Length => "length",
    }
}

fn anthropic_finish(a: &MockAnswer) -> &'static str {
    match a.finish {
        Finish::Stop => "end_turn",
        Finish::Tool => "tool_use",
        Finish::Length => "max_tokens",
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
        "finish_reason": openai_finish(a)}],
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
    out.push(chunk(json!({}), json!(openai_finish(a))));
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
        candidate["finishReason"] = json!(if a.finish == Finish::Length {
            "MAX_TOKENS"
        } else {
            "STOP"
        });
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
        "content": content, "stop_reason": anthropic_finish(a),
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
    out.push(sse(
        Some("message_delta"),
        &json!({"type": "message_delta",
        "delta": {"stop_reason": anthropic_finish(a), "stop_sequence": null},
        "usage": {"output_tokens": a.output_tokens}}),
    ));
    out.push(sse(Some("message_stop"), &json!({"type": "message_stop"})));
    out
}
