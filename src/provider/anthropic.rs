//! Anthropic Messages (`POST {base_url}/messages`, `x-api-key` + `anthropic-version`): text and
//! `tool_use` content blocks, usage from `message_start` / `message_delta`, and SSE streams with
//! `input_json_delta` fragments assembled per block.

use std::collections::BTreeMap;

use chrono::Utc;
use futures_util::future::BoxFuture;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{parse_json, post_json, read_text};
use super::openai::{send, tool_call};
use super::signals::{Dialect, classify_error};
use super::sse::{SseEvent, drive};
use super::{
    ChatRequest, ChatResponse, ImageInput, Message, Provider, ProviderError, ProviderErrorKind,
    Role, StreamEvent, StreamSink, ToolCall, Usage,
};
use crate::keys::ApiKey;

/// The `anthropic-version` header sent with every request.
pub const API_VERSION: &str = "2023-06-01";

/// `max_tokens` is required by the Messages API: used when the request sets none.
pub const DEFAULT_MAX_TOKENS: u32 = 4096;

/// An Anthropic Messages endpoint.
#[derive(Debug, Clone)]
pub struct Anthropic {
    endpoint: String,
    client: reqwest::Client,
}

impl Anthropic {
    /// Anthropic at `base_url` (e.g. `https://host/v1`), sending with `client`.
    pub fn new(base_url: &str, client: reqwest::Client) -> Self {
        Self {
            endpoint: format!("{}/messages", base_url.trim_end_matches('/')),
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
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        if let Some(key) = key {
            headers.insert("x-api-key", super::http::key_header(key, "")?);
        }
        if let Some(betas) = beta_header(request) {
            let value = HeaderValue::from_str(&betas).map_err(|_| {
                ProviderError::new(
                    ProviderErrorKind::BadRequest,
                    "a `betas` entry holds a character a header cannot carry",
                )
            })?;
            headers.insert("anthropic-beta", value);
        }
        let body = request_body(request);
        let answer = post_json(
            &self.client,
            Dialect::Anthropic,
            &self.endpoint,
            headers,
            &body,
        )
        .await?;
        let observed = answer.observed.clone();
        let mut response = if request.stream {
            let mut asm = StreamAssembler::default();
            drive(answer.response, |event| asm.push(&event, sink)).await?;
            asm.finish(sink)
        } else {
            let (text, _) = read_text(answer).await?;
            parse_response(&text)?
        };
        response.observed = observed;
        Ok(response)
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        "claude"
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

/// The content blocks one message becomes, and the role it is sent under: a user message's
/// images as `image` blocks ([`image_block`]), text as a `text`
/// block (empty text is left out: the API refuses empty text blocks), an assistant's tool calls
/// as `tool_use` blocks, a tool result as a `tool_result` block in a user message.
fn wire_blocks(m: &Message) -> (Role, Vec<Value>) {
    let mut blocks = Vec::new();
    if let (Role::Tool, Some(result)) = (m.role, &m.tool_result) {
        let mut block = json!({"type": "tool_result", "tool_use_id": result.call_id,
                               "content": m.content});
        if result.is_error {
            block["is_error"] = json!(true);
        }
        blocks.push(block);
        return (Role::User, blocks);
    }
    blocks.extend(m.images.iter().map(image_block));
    if !m.content.is_empty() {
        blocks.push(json!({"type": "text", "text": m.content}));
    }
    let role = match m.role {
        Role::Assistant => {
            for call in &m.tool_calls {
                blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name,
                                   "input": call.arguments_object()}));
            }
            Role::Assistant
        }
        _ => Role::User,
    };
    (role, blocks)
}

/// An image as an `image` block, before the message's text (where Anthropic advises images
/// go): inline data with a `base64` source (`media_type`, `data`), a URL with a `url` source.
fn image_block(image: &ImageInput) -> Value {
    let source = match image {
        ImageInput::Inline { media_type, data } => {
            json!({"type": "base64", "media_type": media_type, "data": data})
        }
        ImageInput::Url { url, .. } => json!({"type": "url", "url": url}),
    };
    json!({"type": "image", "source": source})
}

/// A turn's content: a plain string when it is only text (text blocks joined by a blank line),
/// else the blocks.
fn wire_content(blocks: Vec<Value>) -> Value {
    let texts: Option<Vec<&str>> = blocks
        .iter()
        .map(|b| b.get("text").filter(|_| b["type"] == "text")?.as_str())
        .collect();
    match texts {
        Some(texts) => json!(texts.join("\n\n")),
        None => Value::Array(blocks),
    }
}

/// The JSON body of a Messages request: system messages joined into `system`, consecutive turns
/// of one role merged (the API wants them alternating, starting with the user; a user turn with
/// tool results keeps them first).
pub fn request_body(request: &ChatRequest) -> Value {
    let messages = super::image::images_on_user_side(&request.messages);
    let system: Vec<&str> = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| m.content.as_str())
        .collect();
    let mut turns: Vec<(Role, Vec<Value>)> = Vec::new();
    for m in messages.iter().filter(|m| m.role != Role::System) {
        let (role, blocks) = wire_blocks(m);
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, merged)) if *last == role => merged.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.first().is_some_and(|(r, _)| *r == Role::Assistant) {
        turns.insert(
            0,
            (
                Role::User,
                vec![json!({"type": "text", "text": "(continue)"})],
            ),
        );
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, blocks)| json!({"role": role, "content": wire_content(blocks)}))
        .collect();
    let mut body = json!({
        "model": request.model,
        "max_tokens": request.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
    });
    if !system.is_empty() {
        body["system"] = json!(system.join("\n\n"));
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        body["tools"] = Value::Array(tools);
    }
    if let Some(t) = request.temperature {
        body["temperature"] = json!(t);
    }
    if request.stream {
        body["stream"] = json!(true);
    }
    write_options(&mut body, request);
    body
}

/// The `anthropic-beta` header value for the request's `betas` (comma-separated), if any.
pub fn beta_header(request: &ChatRequest) -> Option<String> {
    let betas: Vec<&str> = request
        .options
        .betas
        .iter()
        .map(|b| b.trim())
        .filter(|b| !b.is_empty())
        .collect();
    (!betas.is_empty()).then(|| betas.join(","))
}

/// Writes the pass-through options the Messages API takes: `top_p`, `top_k`, and
/// `parallel_tool_calls: false` as `tool_choice.disable_parallel_tool_use` (only with tools).
fn write_options(body: &mut Value, request: &ChatRequest) {
    let o = &request.options;
    if let Some(p) = o.top_p {
        body["top_p"] = json!(p);
    }
    if let Some(k) = o.top_k {
        body["top_k"] = json!(k);
    }
    if o.parallel_tool_calls == Some(false) && !request.tools.is_empty() {
        body["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
    }
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    content: Vec<WireBlock>,
    stop_reason: Option<String>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Clone, Copy, Default)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

/// Parses a whole Messages answer.
pub fn parse_response(raw: &str) -> Result<ChatResponse, ProviderError> {
    let wire: WireMessage = parse_json("Anthropic message", raw)?;
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for block in wire.content {
        match block {
            WireBlock::Text { text: t } => text.push_str(&t),
            WireBlock::ToolUse { id, name, input } => tool_calls.push(ToolCall {
                id,
                name,
                raw_arguments: input.to_string(),
                arguments: input,
                signature: None,
            }),
            WireBlock::Other => {}
        }
    }
    Ok(ChatResponse {
        text,
        tool_calls,
        usage: wire
            .usage
            .map(|u| Usage::partial(u.input_tokens, u.output_tokens)),
        finish_reason: wire.stop_reason,
        observed: None,
    })
}

struct PartialTool {
    id: String,
    name: String,
    json: String,
}

/// Assembles a Messages SSE stream: `message_start` (input usage), `content_block_start`
/// (text or `tool_use`), `content_block_delta` (`text_delta`, `input_json_delta`),
/// `content_block_stop`, `message_delta` (stop reason, output usage), `message_stop` (the end).
/// An `error` event becomes the matching error (e.g. `overloaded_error` -> `Overloaded`).
#[derive(Default)]
pub struct StreamAssembler {
    text: String,
    tools: BTreeMap<u64, PartialTool>,
    calls: Vec<ToolCall>,
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    stop_reason: Option<String>,
}

impl StreamAssembler {
    /// Takes one event; `Ok(true)` at `message_stop`.
    pub fn push(
        &mut self,
        event: &SseEvent,
        sink: Option<&StreamSink>,
    ) -> Result<bool, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(false);
        }
        let v: Value = parse_json("Anthropic stream event", &event.data)?;
        let ty = v.get("type").and_then(Value::as_str).unwrap_or_default();
        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
        match ty {
            "message_start" => {
                let usage = &v["message"]["usage"];
                self.read_usage(usage);
            }
            "content_block_start" => {
                let block = &v["content_block"];
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let s = |k: &str| {
                        block
                            .get(k)
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned()
                    };
                    self.tools.insert(
                        index,
                        PartialTool {
                            id: s("id"),
                            name: s("name"),
                            json: String::new(),
                        },
                    );
                } else if let Some(t) = block
                    .get("text")
                    .and_then(Value::as_str)
                    .filter(|t| !t.is_empty())
                {
                    self.text.push_str(t);
                    send(sink, StreamEvent::TextDelta(t.to_owned()));
                }
            }
            "content_block_delta" => {
                let delta = &v["delta"];
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        if let Some(t) = delta.get("text").and_then(Value::as_str) {
                            self.text.push_str(t);
                            send(sink, StreamEvent::TextDelta(t.to_owned()));
                        }
                    }
                    Some("input_json_delta") => {
                        if let (Some(tool), Some(part)) = (
                            self.tools.get_mut(&index),
                            delta.get("partial_json").and_then(Value::as_str),
                        ) {
                            tool.json.push_str(part);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                if let Some(t) = self.tools.remove(&index) {
                    let call = tool_call(Some(t.id), t.name, t.json);
                    send(sink, StreamEvent::ToolCall(call.clone()));
                    self.calls.push(call);
                }
            }
            "message_delta" => {
                if let Some(r) = v["delta"].get("stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_owned());
                }
                self.read_usage(&v["usage"]);
            }
            "message_stop" => return Ok(true),
            "error" => {
                let err_type = v["error"]["type"].as_str().unwrap_or_default();
                let status = match err_type {
                    "overloaded_error" => 529,
                    "rate_limit_error" => 429,
                    "api_error" => 500,
                    _ => 400,
                };
                let mut e = classify_error(
                    Dialect::Anthropic,
                    status,
                    &HeaderMap::new(),
                    &event.data,
                    Utc::now(),
                );
                e.status = None;
                e.message = format!("mid-stream error: {}", e.message);
                return Err(e);
            }
            _ => {}
        }
        Ok(false)
    }

    fn read_usage(&mut self, usage: &Value) {
        if let Some(n) = usage.get("input_tokens").and_then(Value::as_u64) {
            self.input_tokens = Some(n);
        }
        if let Some(n) = usage.get("output_tokens").and_then(Value::as_u64) {
            self.output_tokens = Some(n);
        }
    }

    /// The whole answer (usage sent to `sink`).
    pub fn finish(self, sink: Option<&StreamSink>) -> ChatResponse {
        let usage = (self.input_tokens.is_some() || self.output_tokens.is_some())
            .then(|| Usage::partial(self.input_tokens, self.output_tokens));
        if let Some(u) = usage {
            send(sink, StreamEvent::Usage(u));
        }
        ChatResponse {
            text: self.text,
            tool_calls: self.calls,
            usage,
            finish_reason: self.stop_reason,
            observed: None,
        }
    }
}

#[cfg(test)]
mod tests;
