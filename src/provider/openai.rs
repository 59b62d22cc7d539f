//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`): OpenAI, Groq,
//! Together, OpenRouter, Cerebras, Fireworks, vLLM, LM Studio, SGLang and any `base_url`.
//! Whole answers and SSE streams (tool-call deltas assembled by index, usage from the final
//! chunk via `stream_options.include_usage`).

use std::collections::BTreeMap;

use futures_util::future::BoxFuture;
use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{malformed, parse_json, post_json, read_text};
use super::signals::Dialect;
use super::sse::{SseEvent, drive};
use super::{
    ChatRequest, ChatResponse, Message, Provider, ProviderError, ProviderErrorKind, Role,
    StreamEvent, StreamSink, ToolCall, Usage,
};
use crate::keys::ApiKey;

/// A provider speaking the OpenAI chat completions dialect.
#[derive(Debug, Clone)]
pub struct OpenAiCompatible {
    name: &'static str,
    endpoint: String,
    dialect: Dialect,
    client: reqwest::Client,
}

impl OpenAiCompatible {
    /// A provider labelled `name` (e.g. `groq`) at `base_url` (e.g. `https://host/v1`), reading
    /// rate-limit headers as `dialect` (OpenAI or Groq), sending with `client`.
    pub fn new(
        name: &'static str,
        base_url: &str,
        dialect: Dialect,
        client: reqwest::Client,
    ) -> Self {
        Self {
            name,
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            dialect,
            client,
        }
    }

    async fn call(
        &self,
        request: &ChatRequest,
        key: Option<&ApiKey>,
        sink: Option<&StreamSink>,
    ) -> Result<ChatResponse, ProviderError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            headers.insert(AUTHORIZATION, super::http::key_header(key, "Bearer ")?);
        }
        let mut body = request_body(request);
        if self.name == "openai" || self.endpoint.contains("://api.openai.com/") {
            completion_cap(&mut body);
        }
        let answer = post_json(&self.client, self.dialect, &self.endpoint, headers, &body).await?;
        if request.stream {
            let observed = answer.observed.clone();
            let mut asm = StreamAssembler::default();
            drive(answer.response, |event| asm.push(&event, sink)).await?;
            let mut response = asm.finish(sink)?;
            response.observed = observed;
            Ok(response)
        } else {
            let (text, observed) = read_text(answer).await?;
            let mut response = parse_response(&text)?;
            response.observed = observed;
            Ok(response)
        }
    }
}

impl Provider for OpenAiCompatible {
    fn name(&self) -> &str {
        self.name
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        key: Option<&'a ApiKey>,
        sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(self.call(request, key, sink))
    }
}

/// One message in the chat completions form: an assistant's tool calls as `tool_calls` (with
/// `content: null` when it wrote no text), a tool result as `role: tool` with its
/// `tool_call_id`, a user message with images as content parts ([`content_parts`]).
fn wire_message(m: &Message) -> Value {
    match (&m.role, &m.tool_result) {
        (Role::Tool, Some(result)) => {
            json!({"role": "tool", "tool_call_id": result.call_id, "content": m.content})
        }
        // A tool result that lost its call cannot be sent as one: say it as the user.
        (Role::Tool, None) => json!({"role": "user", "content": m.content}),
        (Role::Assistant, _) if !m.tool_calls.is_empty() => {
            let calls: Vec<Value> = m
                .tool_calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function",
                           "function": {"name": c.name, "arguments": c.arguments_text()}})
                })
                .collect();
            let content = if m.content.is_empty() {
                Value::Null
            } else {
                json!(m.content)
            };
            json!({"role": "assistant", "content": content, "tool_calls": calls})
        }
        (Role::User, _) if !m.images.is_empty() => {
            json!({"role": "user", "content": content_parts(m)})
        }
        (role, _) => json!({"role": role, "content": m.content}),
    }
}

/// A user message's content with images: an array of parts, its text (when there is any) as a
/// `text` part, then each image as an `image_url` part whose `url` is the image's own or, for
/// inline data, a `data:<media type>;base64,...` URL.
fn content_parts(m: &Message) -> Vec<Value> {
    let text = (!m.content.is_empty()).then(|| json!({"type": "text", "text": m.content}));
    let images = m
        .images
        .iter()
        .map(|i| json!({"type": "image_url", "image_url": {"url": i.as_url()}}));
    text.into_iter().chain(images).collect()
}

/// OpenAI's own API (the `openai` backend, or any backend whose base URL is OpenAI's) takes the
/// output cap as `max_completion_tokens` (its reasoning models refuse `max_tokens` with a 400;
/// every other model takes both); other OpenAI-compatible servers keep `max_tokens`, which they
/// all read.
pub fn completion_cap(body: &mut Value) {
    if let Some(cap) = body.as_object_mut().and_then(|o| o.remove("max_tokens")) {
        body["max_completion_tokens"] = cap;
    }
}

/// The JSON body of a chat completions request.
pub fn request_body(request: &ChatRequest) -> Value {
    let messages: Vec<Value> = super::image::images_on_user_side(&request.messages)
        .iter()
        .map(wire_message)
        .collect();
    let mut body = json!({"model": request.model, "messages": messages, "stream": request.stream});
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters}})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if let Some(m) = request.max_tokens {
        body["max_tokens"] = json!(m);
    }
    if request.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    write_options(&mut body, request);
    body
}

/// Writes the pass-through options chat completions take: `top_p`, `top_k` (servers that take
/// it, e.g. vLLM), `reasoning_effort`, `verbosity`, `parallel_tool_calls` (only with tools, as
/// the API requires), `chat_template_kwargs`, and `extra_body` fields the request does not set.
fn write_options(body: &mut Value, request: &ChatRequest) {
    let o = &request.options;
    if let Some(p) = o.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(k) = o.top_k {
        body["top_k"] = json!(k);
    }
    if let Some(e) = &o.reasoning_effort {
        body["reasoning_effort"] = json!(e);
    }
    if let Some(v) = &o.verbosity {
        body["verbosity"] = json!(v);
    }
    if let Some(p) = o.parallel_tool_calls.filter(|_| !request.tools.is_empty()) {
        body["parallel_tool_calls"] = json!(p);
    }
    if let Some(k) = &o.chat_template_kwargs {
        body["chat_template_kwargs"] = k.clone();
    }
    if let (Some(extra), Value::Object(map)) = (&o.extra_body, body) {
        for (k, v) in extra {
            map.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

#[derive(Deserialize)]
struct WireResponse {
    choices: Vec<WireChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChoice {
    message: WireMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireMessage {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolCall>,
}

#[derive(Deserialize)]
struct WireToolCall {
    id: Option<String>,
    function: WireFunction,
}

#[derive(Deserialize)]
struct WireFunction {
    name: String,
    #[serde(default)]
    arguments: String,
}

#[derive(Deserialize, Clone, Copy)]
struct WireUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        Usage::new(u.prompt_tokens, u.completion_tokens)
    }
}

/// A tool call from its id (generated, unique in the process, when missing: see
/// [`ToolCall::generated_id`]), name and raw argument text.
pub(crate) fn tool_call(id: Option<String>, name: String, raw: String) -> ToolCall {
    let arguments = if raw.trim().is_empty() {
        json!({})
    } else {
        serde_json::from_str(&raw).unwrap_or(Value::Null)
    };
    ToolCall {
        id: id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(ToolCall::generated_id),
        name,
        arguments,
        raw_arguments: raw,
        signature: None,
    }
}

/// Parses a whole (non-streamed) chat completion.
pub fn parse_response(raw: &str) -> Result<ChatResponse, ProviderError> {
    let wire: WireResponse = parse_json("chat completion", raw)?;
    let choice = wire
        .choices
        .into_iter()
        .next()
        .ok_or_else(|| malformed("chat completion", "no choices", raw))?;
    Ok(ChatResponse {
        text: choice.message.content.unwrap_or_default(),
        tool_calls: choice
            .message
            .tool_calls
            .into_iter()
            .map(|c| tool_call(c.id, c.function.name, c.function.arguments))
            .collect(),
        usage: wire.usage.map(Usage::from),
        finish_reason: choice.finish_reason,
        observed: None,
    })
}

#[derive(Deserialize)]
struct WireChunk {
    #[serde(default)]
    choices: Vec<WireChunkChoice>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct WireChunkChoice {
    #[serde(default)]
    delta: WireDelta,
    finish_reason: Option<String>,
}

#[derive(Deserialize, Default)]
struct WireDelta {
    content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<WireToolDelta>,
}

#[derive(Deserialize)]
struct WireToolDelta {
    #[serde(default)]
    index: usize,
    id: Option<String>,
    function: Option<WireFunctionDelta>,
}

#[derive(Deserialize)]
struct WireFunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Default)]
struct PartialCall {
    id: Option<String>,
    name: String,
    arguments: String,
}

/// Assembles a streamed chat completion: text deltas, tool-call fragments by index, the finish
/// reason and the usage chunk. `[DONE]` ends the stream.
#[derive(Default)]
pub struct StreamAssembler {
    text: String,
    calls: BTreeMap<usize, PartialCall>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
}

impl StreamAssembler {
    /// Takes one event; `Ok(true)` at `[DONE]`. Text deltas go to `sink` as they arrive.
    pub fn push(
        &mut self,
        event: &SseEvent,
        sink: Option<&StreamSink>,
    ) -> Result<bool, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        if let Ok(err) = serde_json::from_str::<Value>(data) {
            if let Some(e) = err.get("error") {
                let msg = e.get("message").and_then(Value::as_str).unwrap_or("error");
                return Err(ProviderError::new(
                    ProviderErrorKind::Transient,
                    format!("the provider reported an error mid-stream: {msg}"),
                ));
            }
        }
        let chunk: WireChunk = parse_json("stream chunk", data)?;
        if let Some(u) = chunk.usage {
            self.usage = Some(u.into());
            send(sink, StreamEvent::Usage(u.into()));
        }
        for choice in chunk.choices {
            if let Some(text) = choice.delta.content.filter(|t| !t.is_empty()) {
                self.text.push_str(&text);
                send(sink, StreamEvent::TextDelta(text));
            }
            for d in choice.delta.tool_calls {
                let call = self.calls.entry(d.index).or_default();
                if d.id.is_some() {
                    call.id = d.id;
                }
                if let Some(f) = d.function {
                    if let Some(n) = f.name {
                        call.name.push_str(&n);
                    }
                    if let Some(a) = f.arguments {
                        call.arguments.push_str(&a);
                    }
                }
            }
            if choice.finish_reason.is_some() {
                self.finish_reason = choice.finish_reason;
            }
        }
        Ok(false)
    }

    /// The whole answer; each assembled tool call is also sent to `sink`.
    pub fn finish(self, sink: Option<&StreamSink>) -> Result<ChatResponse, ProviderError> {
        let tool_calls: Vec<ToolCall> = self
            .calls
            .into_values()
            .map(|c| tool_call(c.id, c.name, c.arguments))
            .collect();
        for c in &tool_calls {
            send(sink, StreamEvent::ToolCall(c.clone()));
        }
        Ok(ChatResponse {
            text: self.text,
            tool_calls,
            usage: self.usage,
            finish_reason: self.finish_reason,
            observed: None,
        })
    }
}

/// Sends an event without ever blocking the call (dropped when the receiver is full or gone).
pub(crate) fn send(sink: Option<&StreamSink>, event: StreamEvent) {
    if let Some(s) = sink {
        let _ = s.try_send(event);
    }
}

#[cfg(test)]
mod tests;
