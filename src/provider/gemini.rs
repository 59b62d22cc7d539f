//! Gemini native REST: `POST {base_url}/models/{model}:generateContent` and
//! `:streamGenerateContent?alt=sse`, the key in the `x-goog-api-key` header, tools as
//! `functionDeclarations`, answers as `functionCall` / text parts with `usageMetadata`.

use futures_util::future::BoxFuture;
use reqwest::header::HeaderMap;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{malformed, parse_json, post_json, read_text};
use super::openai::send;
use super::signals::Dialect;
use super::sse::{SseEvent, drive};
use super::{
    ChatRequest, ChatResponse, ImageInput, Message, Provider, ProviderError, ProviderErrorKind,
    Role, StreamEvent, StreamSink, ToolCall, Usage,
};
use crate::keys::ApiKey;

/// A Gemini endpoint.
#[derive(Debug, Clone)]
pub struct Gemini {
    base_url: String,
    client: reqwest::Client,
}

impl Gemini {
    /// Gemini at `base_url` (e.g. `https://host/v1beta`), sending with `client`.
    pub fn new(base_url: &str, client: reqwest::Client) -> Self {
        Self {
            base_url: base_url.trim_end_matches('/').to_owned(),
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
            headers.insert("x-goog-api-key", super::http::key_header(key, "")?);
        }
        let action = if request.stream {
            "streamGenerateContent?alt=sse"
        } else {
            "generateContent"
        };
        let url = format!("{}/models/{}:{action}", self.base_url, request.model);
        let body = request_body(request);
        let answer = post_json(&self.client, Dialect::Gemini, &url, headers, &body).await?;
        if request.stream {
            let mut asm = StreamAssembler::default();
            drive(answer.response, |event| asm.push(&event, sink)).await?;
            Ok(asm.finish(sink))
        } else {
            let (text, _) = read_text(answer).await?;
            parse_response(&text)
        }
    }
}

impl Provider for Gemini {
    fn name(&self) -> &str {
        "gemini"
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

/// Gemini accepts an OpenAPI subset of JSON schema: drop the keys it refuses.
fn gemini_schema(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !matches!(k.as_str(), "additionalProperties" | "$schema"))
                .map(|(k, v)| (k.clone(), gemini_schema(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(gemini_schema).collect()),
        other => other.clone(),
    }
}

/// The parts one message becomes, and the role it is sent under: text as a `text` part (after
/// a user message's images, [`image_part`]), an
/// assistant's tool calls as `functionCall` parts (role `model`, each with its thought
/// signature when the model gave one), a tool result as a `functionResponse` part (role
/// `user`; a refusal under the `error` key, a result under `output`).
fn wire_parts(m: &Message) -> (&'static str, Vec<Value>) {
    let mut parts = Vec::new();
    match (m.role, &m.tool_result) {
        (Role::Tool, Some(result)) => {
            let key = if result.is_error { "error" } else { "output" };
            parts.push(json!({"functionResponse": {
                "name": result.name, "response": {key: m.content}}}));
            return ("user", parts);
        }
        (Role::Assistant, _) => {
            if !m.content.is_empty() {
                parts.push(json!({"text": m.content}));
            }
            for call in &m.tool_calls {
                let mut part = json!({"functionCall": {
                    "name": call.name, "args": call.arguments_object()}});
                if let Some(sig) = &call.signature {
                    part["thoughtSignature"] = json!(sig);
                }
                parts.push(part);
            }
            return ("model", parts);
        }
        _ => {}
    }
    parts.extend(m.images.iter().map(image_part));
    if !m.content.is_empty() {
        parts.push(json!({"text": m.content}));
    }
    ("user", parts)
}

/// An image as a part, before the message's text (Gemini's advice for prompts with an
/// image): inline data as `inlineData {mimeType, data}`, a URL as `fileData {mimeType,
/// fileUri}` (the media type left out when neither given nor named by the URL's extension).
fn image_part(image: &ImageInput) -> Value {
    match image {
        ImageInput::Inline { media_type, data } => {
            json!({"inlineData": {"mimeType": media_type, "data": data}})
        }
        ImageInput::Url { url, .. } => {
            let mut file = json!({"fileUri": url});
            if let Some(m) = image.media_type() {
                file["mimeType"] = json!(m);
            }
            json!({"fileData": file})
        }
    }
}

/// The JSON body of a `generateContent` request: system messages become `systemInstruction`,
/// assistant turns become role `model`, and consecutive messages of one role are merged into
/// one content (Gemini wants the roles to alternate).
pub fn request_body(request: &ChatRequest) -> Value {
    let messages = super::image::images_on_user_side(&request.messages);
    let system: Vec<Value> = messages
        .iter()
        .filter(|m| m.role == Role::System)
        .map(|m| json!({"text": m.content}))
        .collect();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in messages.iter().filter(|m| m.role != Role::System) {
        let (role, parts) = wire_parts(m);
        if parts.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, merged)) if *last == role => merged.extend(parts),
            _ => turns.push((role, parts)),
        }
    }
    let contents: Vec<Value> = turns
        .into_iter()
        .map(|(role, parts)| json!({"role": role, "parts": parts}))
        .collect();
    let mut body = json!({"contents": contents});
    if !system.is_empty() {
        body["systemInstruction"] = json!({"parts": system});
    }
    if !request.tools.is_empty() {
        let decls: Vec<Value> = request
            .tools
            .iter()
            .map(|t| {
                json!({"name": t.name, "description": t.description,
                       "parameters": gemini_schema(&t.parameters)})
            })
            .collect();
        body["tools"] = json!([{"functionDeclarations": decls}]);
    }
    let mut config = serde_json::Map::new();
    if let Some(t) = request.temperature {
        config.insert("temperature".into(), json!(t));
    }
    if let Some(m) = request.max_tokens {
        config.insert("maxOutputTokens".into(), json!(m));
    }
    write_options(&mut config, &request.options, request.max_tokens);
    if !config.is_empty() {
        body["generationConfig"] = Value::Object(config);
    }
    body
}

/// The thinking budget (tokens) Gemini is given for a reasoning effort, as Google maps the
/// efforts of its OpenAI-compatible endpoint; `None` for an effort it does not name.
pub fn thinking_budget(effort: &str) -> Option<u32> {
    match effort {
        "none" => Some(0),
        "minimal" | "low" => Some(1024),
        "medium" => Some(8192),
        "high" => Some(24576),
        _ => None,
    }
}

/// Writes the pass-through options `generationConfig` takes: `topP`, `topK`, and a reasoning
/// effort as `thinkingConfig.thinkingBudget`. Gemini counts thinking within `maxOutputTokens`,
/// so the budget is kept to half of the cap when a cap is sent: a budget as large as the cap
/// could spend it all on thinking and leave no answer (no tool call, a wasted turn).
fn write_options(
    config: &mut serde_json::Map<String, Value>,
    o: &super::RequestOptions,
    cap: Option<u32>,
) {
    if let Some(p) = o.top_p {
        config.insert("topP".into(), json!(p));
    }
    if let Some(k) = o.top_k {
        config.insert("topK".into(), json!(k));
    }
    if let Some(budget) = o.reasoning_effort.as_deref().and_then(thinking_budget) {
        let budget = cap.map_or(budget, |c| budget.min(c / 2));
        config.insert("thinkingConfig".into(), json!({"thinkingBudget": budget}));
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResponse {
    #[serde(default)]
    candidates: Vec<WireCandidate>,
    usage_metadata: Option<WireUsage>,
    prompt_feedback: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireCandidate {
    content: Option<WireContent>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireContent {
    #[serde(default)]
    parts: Vec<WirePart>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WirePart {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    function_call: Option<WireFunctionCall>,
    thought_signature: Option<String>,
}

#[derive(Deserialize)]
struct WireFunctionCall {
    id: Option<String>,
    name: String,
    #[serde(default)]
    args: Value,
}

/// `usageMetadata`: a count the answer leaves out is unknown, not 0 (settlement keeps the
/// reservation for it).
#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "camelCase")]
struct WireUsage {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
}

impl From<WireUsage> for Usage {
    fn from(u: WireUsage) -> Self {
        // Output is the answer's tokens plus the thinking ones; an answer that reports neither
        // leaves its output unknown.
        let output = match (u.candidates_token_count, u.thoughts_token_count) {
            (None, None) => None,
            (c, t) => Some(c.unwrap_or(0).saturating_add(t.unwrap_or(0))),
        };
        Usage::partial(u.prompt_token_count, output)
    }
}

fn function_call(f: WireFunctionCall, signature: Option<String>) -> ToolCall {
    let args = if f.args.is_null() { json!({}) } else { f.args };
    ToolCall {
        id: f
            .id
            .filter(|s| !s.is_empty())
            .unwrap_or_else(ToolCall::generated_id),
        name: f.name,
        raw_arguments: args.to_string(),
        arguments: args,
        signature: signature.filter(|s| !s.is_empty()),
    }
}

/// Parses a whole `generateContent` answer.
pub fn parse_response(raw: &str) -> Result<ChatResponse, ProviderError> {
    let wire: WireResponse = parse_json("Gemini answer", raw)?;
    let mut asm = StreamAssembler::default();
    asm.take(wire, None)?;
    if asm.finish_reason.is_none() && asm.text.is_empty() && asm.calls.is_empty() {
        return Err(malformed("Gemini answer", "no candidates", raw));
    }
    Ok(asm.finish(None))
}

/// Assembles `streamGenerateContent` chunks (each a whole `GenerateContentResponse` carrying a
/// part of the answer). A chunk with a `finishReason` ends the answer.
#[derive(Default)]
pub struct StreamAssembler {
    text: String,
    calls: Vec<ToolCall>,
    usage: Option<Usage>,
    finish_reason: Option<String>,
}

impl StreamAssembler {
    fn take(&mut self, wire: WireResponse, sink: Option<&StreamSink>) -> Result<(), ProviderError> {
        if let Some(u) = wire.usage_metadata {
            self.usage = Some(u.into());
        }
        if wire.candidates.is_empty() {
            if let Some(reason) = wire
                .prompt_feedback
                .as_ref()
                .and_then(|f| f.get("blockReason"))
                .and_then(Value::as_str)
            {
                return Err(ProviderError::new(
                    ProviderErrorKind::BadRequest,
                    format!("Gemini refused the prompt: {reason}"),
                ));
            }
        }
        for candidate in wire.candidates.into_iter().take(1) {
            for part in candidate.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(text) = part.text.filter(|t| !part.thought && !t.is_empty()) {
                    self.text.push_str(&text);
                    send(sink, StreamEvent::TextDelta(text));
                }
                if let Some(f) = part.function_call {
                    let call = function_call(f, part.thought_signature);
                    send(sink, StreamEvent::ToolCall(call.clone()));
                    self.calls.push(call);
                }
            }
            if candidate.finish_reason.is_some() {
                self.finish_reason = candidate.finish_reason;
            }
        }
        Ok(())
    }

    /// Takes one event; `Ok(true)` once a chunk carried a finish reason.
    pub fn push(
        &mut self,
        event: &SseEvent,
        sink: Option<&StreamSink>,
    ) -> Result<bool, ProviderError> {
        if event.data.trim().is_empty() {
            return Ok(false);
        }
        let wire: WireResponse = parse_json("Gemini stream chunk", &event.data)?;
        self.take(wire, sink)?;
        Ok(self.finish_reason.is_some())
    }

    /// The whole answer (usage sent to `sink`: Gemini repeats cumulative usage in chunks, so it
    /// is reported once, at the end).
    pub fn finish(self, sink: Option<&StreamSink>) -> ChatResponse {
        if let Some(u) = self.usage {
            send(sink, StreamEvent::Usage(u));
        }
        ChatResponse {
            text: self.text,
            tool_calls: self.calls,
            usage: self.usage,
            finish_reason: self.finish_reason,
            observed: None,
        }
    }
}

#[cfg(test)]
mod tests;
