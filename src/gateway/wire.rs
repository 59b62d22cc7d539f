//! The OpenAI chat completions wire format as the gateway reads and writes it: the request
//! (`messages` with string or text-part content, `tools`, sampling, streaming options) into a
//! [`ChatRequest`], and a [`ChatResponse`] into a `chat.completion` or its chunks.

use serde::Deserialize;
use serde_json::{Value, json};

use crate::config::AgentConfig;
use crate::config::options::{EFFORTS, VERBOSITY};
use crate::provider::{
    ChatRequest, ChatResponse, ImageInput, Message, Role, ToolCall, ToolResult, ToolSpec, Usage,
};

/// A chat completions request as clients send it (unknown fields are ignored, as OpenAI's
/// SDKs send fields a server may not know).
#[derive(Debug, Deserialize)]
pub struct WireRequest {
    /// The gateway model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<WireMessage>,
    /// Tools offered.
    #[serde(default)]
    pub tools: Option<Vec<WireTool>>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f32>,
    /// The output cap (older name).
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// The output cap (newer name; wins over `max_tokens`).
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    /// Answer as server-sent events.
    #[serde(default)]
    pub stream: Option<bool>,
    /// `{include_usage: true}`: a last chunk with the usage.
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    /// Nucleus sampling, passed to the provider as its API takes it.
    #[serde(default)]
    pub top_p: Option<f32>,
    /// Reasoning effort, passed to APIs that take it.
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    /// Answer verbosity, passed to APIs that take it.
    #[serde(default)]
    pub verbosity: Option<String>,
    /// Whether the model may call several tools in one turn.
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// How many choices: only 1 is served.
    #[serde(default)]
    pub n: Option<u32>,
}

/// The top-level fields [`WireRequest`] acts on; any other is accepted (OpenAI's SDKs send
/// fields a server may not know) and named in the `x-massgen-ignored` header.
const ACTED_ON: [&str; 13] = [
    "model",
    "messages",
    "tools",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "stream",
    "stream_options",
    "top_p",
    "reasoning_effort",
    "verbosity",
    "parallel_tool_calls",
    "n",
];

/// The top-level fields of `body` (a request [`WireRequest`] was read from) the gateway does
/// not act on, `tool_choice` among them, for the `x-massgen-ignored` header: names of letters,
/// digits, `_`, `-` and `.` only, at most 16, in order. Reading the keys again skips over the
/// values without keeping them.
pub fn ignored_fields(body: &[u8]) -> Vec<String> {
    let Ok(keys) =
        serde_json::from_slice::<std::collections::BTreeMap<String, serde::de::IgnoredAny>>(body)
    else {
        return Vec::new();
    };
    keys.into_keys()
        .filter(|k| !ACTED_ON.contains(&k.as_str()))
        .filter(|k| {
            !k.is_empty()
                && k.len() <= 64
                && k.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        })
        .take(16)
        .collect()
}

/// `stream_options`.
#[derive(Debug, Deserialize, Default)]
pub struct StreamOptions {
    /// Send a last chunk with the usage.
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// One message.
#[derive(Debug, Deserialize)]
pub struct WireMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// A string, a list of parts (`{type: text, text}`), or null.
    #[serde(default)]
    pub content: Option<Value>,
    /// An assistant message's tool calls.
    #[serde(default)]
    pub tool_calls: Option<Vec<WireToolCall>>,
    /// A tool message's call id.
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A tool call in an assistant message.
#[derive(Debug, Deserialize)]
pub struct WireToolCall {
    /// The call's id.
    pub id: String,
    /// The function called.
    pub function: WireFunctionCall,
}

/// `tool_calls[i].function`.
#[derive(Debug, Deserialize)]
pub struct WireFunctionCall {
    /// The tool's name.
    pub name: String,
    /// The arguments as JSON text.
    #[serde(default)]
    pub arguments: String,
}

/// A tool offered.
#[derive(Debug, Deserialize)]
pub struct WireTool {
    /// `function` (the only kind).
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    /// The function.
    pub function: WireFunction,
}

/// `tools[i].function`.
#[derive(Debug, Deserialize)]
pub struct WireFunction {
    /// Its name.
    pub name: String,
    /// What it does.
    #[serde(default)]
    pub description: Option<String>,
    /// JSON schema of its arguments.
    #[serde(default)]
    pub parameters: Option<Value>,
}

impl WireRequest {
    /// Whether the answer is streamed.
    pub fn streams(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// Whether a streamed answer ends with a usage chunk.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false)
    }

    /// The request for `agent` (the model's backend: its model name, sampling defaults and
    /// provider options, which the request's own `top_p`, `reasoning_effort`, `verbosity` and
    /// `parallel_tool_calls` override), or why it cannot be made.
    pub fn to_chat(&self, agent: &AgentConfig) -> Result<ChatRequest, String> {
        if self.messages.is_empty() {
            return Err("`messages` is empty: send at least one message".to_owned());
        }
        let mut messages = Vec::with_capacity(self.messages.len());
        for (i, m) in self.messages.iter().enumerate() {
            messages.push(message(i, m, &messages)?);
        }
        let mut tools = Vec::new();
        for (i, t) in self.tools.iter().flatten().enumerate() {
            if t.kind.as_deref().is_some_and(|k| k != "function") {
                return Err(format!(
                    "tools[{i}].type: only `function` tools are supported"
                ));
            }
            tools.push(ToolSpec {
                name: t.function.name.clone(),
                description: t.function.description.clone().unwrap_or_default(),
                parameters: t
                    .function
                    .parameters
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            });
        }
        if let Some(t) = self.temperature {
            if !(0.0..=2.0).contains(&t) {
                return Err(format!("temperature {t} is out of range (0 to 2)"));
            }
        }
        let cap = self.max_completion_tokens.or(self.max_tokens);
        if cap == Some(0) {
            return Err("max_tokens must be at least 1".to_owned());
        }
        if let Some(n) = self.n.filter(|&n| n != 1) {
            return Err(format!(
                "n = {n}: the gateway answers with one choice; send the request {n} times \
                 for {n} answers"
            ));
        }
        let mut options = agent.backend.options.clone();
        if let Some(p) = self.top_p {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("top_p {p} is out of range (0 to 1)"));
            }
            options.top_p = Some(p);
        }
        let word = |field: &str, value: &Option<String>, allowed: &[&str]| match value {
            Some(v) if !allowed.contains(&v.as_str()) => Err(format!(
                "{field} `{v}` is not one of {}",
                allowed.join(", ")
            )),
            v => Ok(v.clone()),
        };
        if let Some(e) = word("reasoning_effort", &self.reasoning_effort, &EFFORTS)? {
            options.reasoning_effort = Some(e);
        }
        if let Some(v) = word("verbosity", &self.verbosity, &VERBOSITY)? {
            options.verbosity = Some(v);
        }
        if let Some(p) = self.parallel_tool_calls {
            options.parallel_tool_calls = Some(p);
        }
        Ok(ChatRequest {
            model: agent.backend.model.clone(),
            messages,
            tools,
            temperature: self.temperature.or(agent.backend.temperature),
            max_tokens: cap.or(agent.backend.max_tokens),
            stream: self.streams(),
            options,
        })
    }
}

fn message(i: usize, m: &WireMessage, earlier: &[Message]) -> Result<Message, String> {
    let (content, images) = text(i, m.content.as_ref())?;
    if !images.is_empty() && m.role != "user" {
        return Err(format!(
            "messages[{i}].content: image parts are taken in `user` messages only"
        ));
    }
    match m.role.as_str() {
        "system" | "developer" => Ok(Message::system(content)),
        "user" => Ok(Message::user_with_images(content, images)),
        "assistant" => {
            let calls: Vec<ToolCall> = m
                .tool_calls
                .iter()
                .flatten()
                .map(|c| {
                    let arguments =
                        serde_json::from_str(&c.function.arguments).unwrap_or(Value::Null);
                    ToolCall {
                        id: c.id.clone(),
                        name: c.function.name.clone(),
                        arguments,
                        raw_arguments: c.function.arguments.clone(),
                        signature: None,
                    }
                })
                .collect();
            Ok(Message::assistant_tool_calls(content, calls))
        }
        "tool" => {
            let Some(id) = m.tool_call_id.clone() else {
                return Err(format!(
                    "messages[{i}]: a `tool` message needs `tool_call_id`"
                ));
            };
            // The tool's name, from the assistant message that made the call.
            let name = earlier
                .iter()
                .flat_map(|e| e.tool_calls.iter())
                .find(|c| c.id == id)
                .map(|c| c.name.clone())
                .unwrap_or_default();
            Ok(Message {
                role: Role::Tool,
                content,
                tool_calls: Vec::new(),
                tool_result: Some(ToolResult {
                    call_id: id,
                    name,
                    is_error: false,
                }),
                images: Vec::new(),
            })
        }
        other => Err(format!(
            "messages[{i}].role: `{}` is not a role (system, developer, user, assistant, tool)",
            crate::config::shown(other)
        )),
    }
}

/// A message's text and images: a string, or its `{type: text}` parts' text and its
/// `{type: image_url, image_url: {url}}` parts (a URL or a `data:` URL).
fn text(i: usize, content: Option<&Value>) -> Result<(String, Vec<ImageInput>), String> {
    match content {
        None | Some(Value::Null) => Ok((String::new(), Vec::new())),
        Some(Value::String(s)) => Ok((s.clone(), Vec::new())),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            let mut images = Vec::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    (Some("image_url"), _) => {
                        let url = part
                            .get("image_url")
                            .and_then(|u| u.get("url").or(Some(u)))
                            .and_then(Value::as_str);
                        match url.and_then(ImageInput::from_url_or_data) {
                            Some(image) => images.push(image),
                            None => {
                                return Err(format!(
                                    "messages[{i}].content[{j}].image_url: give `{{url: \"https://...\"}}` or a `data:<type>;base64,...` URL"
                                ));
                            }
                        }
                    }
                    (kind, _) => {
                        return Err(format!(
                            "messages[{i}].content[{j}]: only text and image_url parts are supported (got `{}`)",
                            crate::config::shown(kind.unwrap_or("?"))
                        ));
                    }
                }
            }
            Ok((out, images))
        }
        Some(_) => Err(format!(
            "messages[{i}].content: expected a string or a list of text and image_url parts"
        )),
    }
}

/// OpenAI's `finish_reason` for a response.
pub fn finish_reason(response: &ChatResponse) -> &'static str {
    if !response.tool_calls.is_empty() {
        return "tool_calls";
    }
    let said = response
        .finish_reason
        .as_deref()
        .unwrap_or("stop")
        .to_ascii_lowercase();
    match said.as_str() {
        "length" | "max_tokens" => "length",
        "content_filter" | "safety" | "recitation" => "content_filter",
        "tool_calls" | "tool_use" | "function_call" => "tool_calls",
        _ => "stop",
    }
}

/// `usage` as OpenAI writes it.
pub fn usage_json(usage: &Usage) -> Value {
    json!({
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
    })
}

/// One tool call as OpenAI writes it (`index` is added in stream deltas).
pub fn tool_call_json(call: &ToolCall) -> Value {
    json!({
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_text()},
    })
}

/// A whole `chat.completion`.
pub fn completion_json(
    id: &str,
    created: i64,
    model: &str,
    response: &ChatResponse,
    usage: Option<&Usage>,
) -> Value {
    let mut message = json!({"role": "assistant", "content": response.text});
    if !response.tool_calls.is_empty() {
        if response.text.is_empty() {
            message["content"] = Value::Null;
        }
        message["tool_calls"] = response.tool_calls.iter().map(tool_call_json).collect();
    }
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(response),
            "logprobs": null,
        }],
        "usage": usage.map_or(Value::Null, usage_json),
    })
}

#[cfg(test)]
mod tests {
    use super::ignored_fields;

    #[test]
    fn ignored_fields_are_the_unknown_top_level_names_that_fit_a_header() {
        let body = br#"{"model": "m", "messages": [], "top_p": 1, "seed": 1,
            "tool_choice": "auto", "a\r\nb": 1, "metadata": {"seed": 2}, "n": 1}"#;
        assert_eq!(ignored_fields(body), ["metadata", "seed", "tool_choice"]);
        let many: String = (0..40).map(|i| format!(r#""f{i:02}": 0,"#)).collect();
        let body = format!(r#"{{{many} "model": "m"}}"#);
        assert_eq!(ignored_fields(body.as_bytes()).len(), 16);
        assert!(ignored_fields(b"not json").is_empty());
        assert!(ignored_fields(br#"{"model": "m", "messages": []}"#).is_empty());
    }
}
