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
//!
//! Text is taken as sent: an assistant message that describes a call in prose
//! (`[called new_answer({...})]`) is text, not a tool call.

use serde_json::Value;

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
        match m["role"].as_str().unwrap_or_default() {
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
                parts: vec![Part::Text(content)],
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
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    fn results(r: &MockRequest) -> Vec<(String, String, String)> {
        r.turns
            .iter()
            .flat_map(|t| &t.parts)
            .filter_map(|p| match p {
                Part::ToolResult {
                    id, name, content, ..
                } => Some((id.clone(), name.clone(), content.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn openai_native_tool_calls_and_results() {
        let b = json!({"model": "gpt-4o", "max_completion_tokens": 50, "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "new_answer", "arguments": "{\"content\":\"x\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "That answer is identical."}],
            "tools": [{"type": "function", "function": {"name": "vote", "description": "d",
                "parameters": {"type": "object"}}}], "stream": true,
            "stream_options": {"include_usage": true}});
        let r = read_request(MockDialect::OpenAi, &b, None, false).unwrap();
        assert_eq!(r.system, "sys");
        assert_eq!(r.max_output, Some(50));
        assert!(r.stream && r.include_usage && r.offers("vote"));
        assert_eq!(r.turns[2].role, Role::Tool);
        assert_eq!(
            results(&r),
            vec![(
                "c1".into(),
                "new_answer".into(),
                "That answer is identical.".into()
            )]
        );
        assert!(
            matches!(&r.turns[1].parts[0], Part::ToolCall { arguments, .. } if arguments == "{\"content\":\"x\"}")
        );
        assert!(read_request(MockDialect::OpenAi, &json!({}), None, false).is_err());
    }

    #[test]
    fn gemini_function_calls_and_responses() {
        let b = json!({"systemInstruction": {"parts": [{"text": "sys"}]},
            "generationConfig": {"maxOutputTokens": 64},
            "contents": [{"role": "user", "parts": [{"text": "q"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "vote", "args": {"agent_id": "agent9"}}}]},
                {"role": "user", "parts": [{"functionResponse": {"name": "vote", "response": {"error": "Unknown agent id"}}}]}],
            "tools": [{"functionDeclarations": [{"name": "new_answer"}]}]});
        let r = read_request(MockDialect::Gemini, &b, Some("gem"), true).unwrap();
        assert_eq!(
            (r.model.as_str(), r.stream, r.max_output),
            ("gem", true, Some(64))
        );
        assert_eq!(r.first_user_text(), "q");
        assert_eq!(results(&r)[0].2, "Unknown agent id");
        assert!(r.offers("new_answer"));
    }

    #[test]
    fn anthropic_blocks_and_required_max_tokens() {
        let b = json!({"model": "claude", "max_tokens": 100, "system": [{"type": "text", "text": "s"}],
            "messages": [{"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "vote", "input": {"agent_id": "agent1"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "is_error": true,
                    "content": [{"type": "text", "text": "no"}]}]}],
            "tools": [{"name": "vote", "input_schema": {}}]});
        let r = read_request(MockDialect::Anthropic, &b, None, false).unwrap();
        assert_eq!(r.system, "s");
        assert_eq!(results(&r), vec![("t1".into(), "vote".into(), "no".into())]);
        let mut no_cap = b.clone();
        no_cap.as_object_mut().unwrap().remove("max_tokens");
        assert!(read_request(MockDialect::Anthropic, &no_cap, None, false).is_err());
    }

    #[test]
    fn prose_calls_stay_text() {
        let b = json!({"model": "m", "messages": [{"role": "user", "content": "q"},
            {"role": "assistant", "content": "[called new_answer({\"content\":\"x\"})]"},
            {"role": "user", "content": "That answer is identical to an existing one."}]});
        let r = read_request(MockDialect::OpenAi, &b, None, false).unwrap();
        assert!(
            r.turns
                .iter()
                .flat_map(|t| &t.parts)
                .all(|p| matches!(p, Part::Text(_)))
        );
    }
}
