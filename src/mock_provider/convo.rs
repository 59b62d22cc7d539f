//! Each dialect's request, read from its documented wire format into one neutral conversation:
//! system text, turns of text, native tool calls and native tool results, tools offered, the
//! output cap sent and whether a stream was asked for.
//!
//! - OpenAI-compatible: `messages` with roles `system`/`developer`, `user`, `assistant` (text
//!   `content` and `tool_calls: [{id, type: "function", function: {name, arguments}}]`) and
//!   `tool` (`tool_call_id`, `content`); `tools: [{type: "function", function: {name,
//!   description, parameters}}]`; cap `max_completion_tokens` or `max_tokens`.
//! - Gemini: `systemInstruction.parts`, `contents` with roles `user`, `model` and `function`,
//!   parts `text`, `functionCall {name, args}` and `functionResponse {name, response}`;
//!   `tools: [{functionDeclarations: [...]}]`; cap `generationConfig.maxOutputTokens`.
//! - Anthropic: `system` (text or text blocks), `messages` with blocks `text`,
//!   `tool_use {id, name, input}` and `tool_result {tool_use_id, content, is_error}`;
//!   `tools: [{name, description, input_schema}]`; `max_tokens` (required, as the API does).
//! - Images in each dialect's form: [`super::images`].
//!
//! Text is taken as sent: an assistant message that describes a call in prose
//! (`[called new_answer({...})]`) is text, not a tool call.

use serde_json::Value;

use super::images::{self, MockImage};

/// The three API dialects the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MockDialect {
    /// `/v1/chat/completions`.
    OpenAi,
    /// `/v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
    Gemini,
    /// `/v1/messages`.
    Anthropic,
}

impl MockDialect {
    /// `openai`, `gemini` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            MockDialect::OpenAi => "openai",
            MockDialect::Gemini => "gemini",
            MockDialect::Anthropic => "anthropic",
        }
    }
}

/// Who speaks a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The user (or, in Gemini, the `function` role carrying results).
    User,
    /// The model.
    Assistant,
    /// An OpenAI `tool` message.
    Tool,
}

impl Role {
    /// User and tool turns: what the caller sends, as opposed to what the model said.
    pub fn user_side(self) -> bool {
        matches!(self, Role::User | Role::Tool)
    }
}

/// One piece of a turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text.
    Text(String),
    /// A native tool call the model made earlier.
    ToolCall {
        /// The call id (empty where the dialect has none).
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments as sent: OpenAI's argument string, or the JSON of Gemini's `args` /
        /// Anthropic's `input`.
        arguments: String,
    },
    /// A native tool result.
    ToolResult {
        /// The call it answers.
        id: String,
        /// The tool's name (looked up from the call for OpenAI and Anthropic).
        name: String,
        /// The result as text (Gemini's `response` object as JSON unless it holds one string).
        content: String,
        /// Anthropic's `is_error`.
        is_error: bool,
    },
    /// An image (read by [`super::images`]).
    Image(MockImage),
}

/// One message.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Who speaks.
    pub role: Role,
    /// What it holds.
    pub parts: Vec<Part>,
}

impl Turn {
    /// The text parts joined with newlines.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A tool offered.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolDecl {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: String,
    /// Its parameter schema as compact JSON.
    pub parameters: String,
}

/// A request in neutral form.
#[derive(Debug, Clone, PartialEq)]
pub struct MockRequest {
    /// Which dialect it came in.
    pub dialect: MockDialect,
    /// The model asked for.
    pub model: String,
    /// The system text (empty when none).
    pub system: String,
    /// The conversation, in order.
    pub turns: Vec<Turn>,
    /// The tools offered.
    pub tools: Vec<ToolDecl>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
    /// The output cap the request sent, if any.
    pub max_output: Option<u64>,
}

impl MockRequest {
    /// Whether a tool of this name is offered.
    pub fn offers(&self, name: &str) -> bool {
        self.tools.iter().any(|t| t.name == name)
    }

    /// The images the request carried, in order.
    pub fn images(&self) -> impl Iterator<Item = &MockImage> {
        self.turns
            .iter()
            .flat_map(|t| &t.parts)
            .filter_map(|p| match p {
                Part::Image(i) => Some(i),
                _ => None,
            })
    }

    /// The text of the first user message (empty when there is none).
    pub fn first_user_text(&self) -> String {
        self.turns
            .iter()
            .find(|t| t.role == Role::User && t.parts.iter().any(|p| matches!(p, Part::Text(_))))
            .map(Turn::text)
            .unwrap_or_default()
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn compact(v: &Value) -> String {
    if v.is_null() {
        String::new()
    } else {
        v.to_string()
    }
}

fn cap(v: Option<&Value>) -> Option<u64> {
    v.and_then(Value::as_u64)
}

fn name_of_call(turns: &[Turn], id: &str) -> String {
    turns
        .iter()
        .flat_map(|t| &t.parts)
        .find_map(|p| match p {
            Part::ToolCall { id: i, name, .. } if i == id => Some(name.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn array(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

/// Reads a request body of `dialect` (`model` comes from the path for Gemini).
pub fn read_request(
    dialect: MockDialect,
    body: &Value,
    path_model: Option<&str>,
    stream_path: bool,
) -> Result<MockRequest, String> {
    let mut r = MockRequest {
        dialect,
        model: String::new(),
        system: String::new(),
        turns: Vec::new(),
        tools: Vec::new(),
        stream: body.get("stream").and_then(Value::as_bool).unwrap_or(false),
        include_usage: body["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false),
        max_output: None,
    };
    match dialect {
        MockDialect::OpenAi => read_openai(body, &mut r)?,
        MockDialect::Gemini => {
            read_gemini(body, &mut r)?;
            r.model = path_model.unwrap_or_default().to_owned();
            r.stream = stream_path;
        }
        MockDialect::Anthropic => read_anthropic(body, &mut r)?,
    }
    Ok(r)
}

fn model(body: &Value) -> Result<String, String> {
    body.get("model")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| "missing `model`".to_owned())
}

/// OpenAI's reasoning models (o1, o3, o4 and gpt-5 families) as OpenAI's own API names them,
/// which refuse `max_tokens`. A name behind a router's prefix (`openai/gpt-5-mini`) is a router's,
/// and routers take `max_tokens` for every model.
fn reasoning_model(model: &str) -> bool {
    if model.contains('/') {
        return false;
    }
    let m = model.to_ascii_lowercase();
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| {
        m.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '.']))
    })
}

fn read_openai(body: &Value, r: &mut MockRequest) -> Result<(), String> {
    r.model = model(body)?;
    if reasoning_model(&r.model) && body.get("max_tokens").is_some() {
        // What OpenAI answers (400) for these models.
        return Err(
            "Unsupported parameter: 'max_tokens' is not supported with this model. \
                    Use 'max_completion_tokens' instead."
                .to_owned(),
        );
    }
    r.max_output = cap(body.get("max_completion_tokens")).or(cap(body.get("max_tokens")));
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("missing `messages`")?;
    let mut system = Vec::new();
    for m in messages {
        let content = text_of(&m["content"]);
        let mut pictures = Vec::new();
        for p in array(m.get("content")) {
            pictures.extend(images::openai(p)?.map(Part::Image));
        }
        let role = m["role"].as_str().unwrap_or_default();
        if !pictures.is_empty() && role != "user" {
            return Err(format!(
                "image content parts are only allowed in user messages, not `{role}`"
            ));
        }
        match role {
            "system" | "developer" => system.push(content),
            "assistant" => {
                let mut parts = Vec::new();
                if !content.is_empty() {
                    parts.push(Part::Text(content));
                }
                for c in array(m.get("tool_calls")) {
                    parts.push(Part::ToolCall {
                        id: c["id"].as_str().unwrap_or_default().to_owned(),
                        name: c["function"]["name"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                        arguments: c["function"]["arguments"]
                            .as_str()
                            .map_or_else(|| compact(&c["function"]["arguments"]), str::to_owned),
                    });
                }
                r.turns.push(Turn {
                    role: Role::Assistant,
                    parts,
                });
            }
            "tool" => {
                let id = m["tool_call_id"].as_str().unwrap_or_default().to_owned();
                let name = name_of_call(&r.turns, &id);
                r.turns.push(Turn {
                    role: Role::Tool,
                    parts: vec![Part::ToolResult {
                        id,
                        name,
                        content,
                        is_error: false,
                    }],
                });
            }
            "user" => r.turns.push(Turn {
                role: Role::User,
                parts: std::iter::once(Part::Text(content))
                    .chain(pictures)
                    .collect(),
            }),
            other => return Err(format!("unknown message role `{other}`")),
        }
    }
    r.system = system.join("\n");
    for t in array(body.get("tools")) {
        let f = &t["function"];
        r.tools.push(ToolDecl {
            name: f["name"].as_str().unwrap_or_default().to_owned(),
            description: f["description"].as_str().unwrap_or_default().to_owned(),
            parameters: compact(&f["parameters"]),
        });
    }
    Ok(())
}

fn read_gemini(body: &Value, r: &mut MockRequest) -> Result<(), String> {
    r.system = text_of(&body["systemInstruction"]["parts"]);
    r.max_output = cap(body["generationConfig"].get("maxOutputTokens"));
    let contents = body
        .get("contents")
        .and_then(Value::as_array)
        .ok_or("missing `contents`")?;
    for c in contents {
        let role = match c["role"].as_str().unwrap_or("user") {
            "model" => Role::Assistant,
            "user" | "function" => Role::User,
            other => return Err(format!("unknown content role `{other}`")),
        };
        let mut parts = Vec::new();
        for p in array(c.get("parts")) {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                parts.push(Part::Text(t.to_owned()));
            } else if let Some(f) = p.get("functionCall") {
                parts.push(Part::ToolCall {
                    id: f["id"].as_str().unwrap_or_default().to_owned(),
                    name: f["name"].as_str().unwrap_or_default().to_owned(),
                    arguments: compact(&f["args"]),
                });
            } else if let Some(image) = images::gemini(p)? {
                parts.push(Part::Image(image));
            } else if let Some(f) = p.get("functionResponse") {
                let response = &f["response"];
                let single = response.as_object().and_then(|o| {
                    let mut strings = o.values().filter_map(Value::as_str);
                    match (strings.next(), strings.next(), o.len()) {
                        (Some(s), None, 1) => Some(s.to_owned()),
                        _ => None,
                    }
                });
                parts.push(Part::ToolResult {
                    id: f["id"].as_str().unwrap_or_default().to_owned(),
                    name: f["name"].as_str().unwrap_or_default().to_owned(),
                    content: single.unwrap_or_else(|| compact(response)),
                    is_error: false,
                });
            }
        }
        r.turns.push(Turn { role, parts });
    }
    for t in array(body.get("tools")) {
        for d in array(t.get("functionDeclarations")) {
            r.tools.push(ToolDecl {
                name: d["name"].as_str().unwrap_or_default().to_owned(),
                description: d["description"].as_str().unwrap_or_default().to_owned(),
                parameters: compact(&d["parameters"]),
            });
        }
    }
    Ok(())
}

fn read_anthropic(body: &Value, r: &mut MockRequest) -> Result<(), String> {
    r.model = model(body)?;
    r.max_output = Some(
        cap(body.get("max_tokens"))
            .ok_or("max_tokens: Field required (the Messages API needs it)")?,
    );
    r.system = text_of(&body["system"]);
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or("missing `messages`")?;
    for m in messages {
        let role = match m["role"].as_str().unwrap_or_default() {
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(format!("unknown message role `{other}`")),
        };
        let mut parts = Vec::new();
        match &m["content"] {
            Value::String(s) => parts.push(Part::Text(s.clone())),
            Value::Array(blocks) => {
                for b in blocks {
                    match b["type"].as_str().unwrap_or_default() {
                        "text" => parts.push(Part::Text(
                            b["text"].as_str().unwrap_or_default().to_owned(),
                        )),
                        "tool_use" => parts.push(Part::ToolCall {
                            id: b["id"].as_str().unwrap_or_default().to_owned(),
                            name: b["name"].as_str().unwrap_or_default().to_owned(),
                            arguments: compact(&b["input"]),
                        }),
                        "tool_result" => {
                            let id = b["tool_use_id"].as_str().unwrap_or_default().to_owned();
                            let name = name_of_call(&r.turns, &id);
                            parts.push(Part::ToolResult {
                                id,
                                name,
                                content: text_of(&b["content"]),
                                is_error: b["is_error"].as_bool().unwrap_or(false),
                            });
                        }
                        "image" if role == Role::Assistant => {
                            return Err("image blocks are not allowed in assistant turns".into());
                        }
                        "image" => parts.extend(images::anthropic(b)?.map(Part::Image)),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        r.turns.push(Turn { role, parts });
    }
    for t in array(body.get("tools")) {
        r.tools.push(ToolDecl {
            name: t["name"].as_str().unwrap_or_default().to_owned(),
            description: t["description"].as_str().unwrap_or_default().to_owned(),
            parameters: compact(&t["input_schema"]),
        });
    }
    Ok(())
}

#[cfg(test)]
#[path = "convo_tests.rs"]
mod tests;
