//! What the mock answers: a reading of each dialect's request into one neutral shape, and the
//! scripted answer that drives the MassGen protocol.
//!
//! - No tools offered (final presentation) -> plain text.
//! - The prompt names an anonymous answer id (`<agent2.1>` or `<agent2>`) and a `vote` tool is
//!   offered -> `vote` for the first id found.
//! - Otherwise, with a `new_answer` tool -> `new_answer`.
//!
//! Tokens are counted the simple way, a quarter of the characters rounded up: the mock reports
//! exactly what it charges against its token windows.

use serde_json::{Value, json};

/// The three API dialects the mock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MockDialect {
    /// `/v1/chat/completions`.
    OpenAi,
    /// `/v1beta/models/{model}:generateContent` and `:streamGenerateContent`.
    Gemini,
    /// `/v1/messages`.
    Anthropic,
}

/// A request in neutral form.
#[derive(Debug, Clone, PartialEq)]
pub struct MockRequest {
    /// Which dialect it came in.
    pub dialect: MockDialect,
    /// The model asked for.
    pub model: String,
    /// Every message's text, in order, joined with newlines.
    pub prompt: String,
    /// Names of the tools offered.
    pub tools: Vec<String>,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`.
    pub include_usage: bool,
}

/// The scripted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct MockAnswer {
    /// Text before any tool call.
    pub text: String,
    /// At most one tool call: `(name, arguments)`.
    pub tool: Option<(String, Value)>,
    /// Tokens reported (and charged).
    pub input_tokens: u64,
    /// Output tokens reported (and charged).
    pub output_tokens: u64,
}

impl MockAnswer {
    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// A quarter of the characters, rounded up.
pub fn count_tokens(text: &str) -> u64 {
    let chars = u64::try_from(text.chars().count()).unwrap_or(u64::MAX);
    chars.div_ceil(4)
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

/// Reads a request body of `dialect` (`model` comes from the path for Gemini).
pub fn read_request(
    dialect: MockDialect,
    body: &Value,
    path_model: Option<&str>,
    stream_path: bool,
) -> Result<MockRequest, String> {
    let mut texts = Vec::new();
    let mut tools = Vec::new();
    let (model, stream) = match dialect {
        MockDialect::OpenAi | MockDialect::Anthropic => {
            let model = body
                .get("model")
                .and_then(Value::as_str)
                .ok_or("missing `model`")?;
            if let Some(system) = body.get("system") {
                texts.push(text_of(system));
            }
            let messages = body
                .get("messages")
                .and_then(Value::as_array)
                .ok_or("missing `messages`")?;
            texts.extend(messages.iter().map(|m| text_of(&m["content"])));
            for t in body
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = t["function"]["name"].as_str().or(t["name"].as_str());
                tools.extend(name.map(str::to_owned));
            }
            let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
            (model.to_owned(), stream)
        }
        MockDialect::Gemini => {
            if let Some(parts) = body["systemInstruction"].get("parts") {
                texts.push(text_of(parts));
            }
            let contents = body
                .get("contents")
                .and_then(Value::as_array)
                .ok_or("missing `contents`")?;
            texts.extend(contents.iter().map(|c| text_of(&c["parts"])));
            for t in body
                .get("tools")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                for d in t["functionDeclarations"].as_array().into_iter().flatten() {
                    tools.extend(d["name"].as_str().map(str::to_owned));
                }
            }
            (path_model.unwrap_or_default().to_owned(), stream_path)
        }
    };
    Ok(MockRequest {
        dialect,
        model,
        prompt: texts.join("\n"),
        tools,
        stream,
        include_usage: body["stream_options"]["include_usage"]
            .as_bool()
            .unwrap_or(false),
    })
}

/// The first anonymous id in the prompt: `<agent2.1>` or `<agent2>` -> `agent2`.
pub fn first_answer_id(prompt: &str) -> Option<String> {
    let mut rest = prompt;
    while let Some(at) = rest.find("<agent") {
        let after = &rest[at + "<agent".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        let next = after[digits.len()..].chars().next();
        if !digits.is_empty() && matches!(next, Some('.' | '>')) {
            return Some(format!("agent{digits}"));
        }
        rest = after;
    }
    None
}

/// The scripted answer to `request`.
pub fn answer(request: &MockRequest) -> MockAnswer {
    let offers = |name: &str| request.tools.iter().any(|t| t == name);
    let (text, tool) = if request.tools.is_empty() {
        (
            format!(
                "Final answer from the mock {}: the team's best answer, presented.",
                request.model
            ),
            None,
        )
    } else if let (Some(id), true) = (first_answer_id(&request.prompt), offers("vote")) {
        (
            String::new(),
            Some((
                "vote".to_owned(),
                json!({"agent_id": id, "reason": "The first answer is complete and correct."}),
            )),
        )
    } else if offers("new_answer") {
        let content = format!(
            "A mock answer from {} after reading {} prompt characters.",
            request.model,
            request.prompt.chars().count()
        );
        (
            "Submitting my answer.".to_owned(),
            Some(("new_answer".to_owned(), json!({"content": content}))),
        )
    } else {
        ("I have nothing to add.".to_owned(), None)
    };
    let out_chars = text.clone()
        + &tool
            .as_ref()
            .map(|(n, a)| format!("{n}{a}"))
            .unwrap_or_default();
    MockAnswer {
        input_tokens: count_tokens(&request.prompt),
        output_tokens: count_tokens(&out_chars).max(1),
        text,
        tool,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(prompt: &str, tools: &[&str]) -> MockRequest {
        MockRequest {
            dialect: MockDialect::OpenAi,
            model: "m".into(),
            prompt: prompt.into(),
            tools: tools.iter().map(|s| (*s).to_owned()).collect(),
            stream: false,
            include_usage: false,
        }
    }

    #[test]
    fn drives_the_protocol() {
        let tools = ["new_answer", "vote"];
        let first = answer(&req("q\n(no answers available yet)", &tools));
        assert_eq!(first.tool.unwrap().0, "new_answer");
        let later = answer(&req(
            "<CURRENT ANSWERS>\n<agent3.1> x <end of agent3.1>\n<agent1.1> y",
            &tools,
        ));
        let (name, args) = later.tool.unwrap();
        assert_eq!(name, "vote");
        assert_eq!(args["agent_id"], "agent3");
        let last = answer(&req("present <agent1.1>", &[]));
        assert!(last.tool.is_none() && !last.text.is_empty());
        assert_eq!(
            first_answer_id("<agents> <agent> <agent12>"),
            Some("agent12".into())
        );
    }

    #[test]
    fn reads_each_dialect() {
        let oa = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "vote"}}], "stream": true,
            "stream_options": {"include_usage": true}});
        let r = read_request(MockDialect::OpenAi, &oa, None, false).unwrap();
        assert_eq!(
            (
                r.model.as_str(),
                r.tools[0].as_str(),
                r.stream,
                r.include_usage
            ),
            ("gpt", "vote", true, true)
        );
        let g = json!({"systemInstruction": {"parts": [{"text": "sys"}]},
            "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "tools": [{"functionDeclarations": [{"name": "new_answer"}]}]});
        let r = read_request(MockDialect::Gemini, &g, Some("gem"), true).unwrap();
        assert_eq!(
            (r.prompt.as_str(), r.model.as_str(), r.stream),
            ("sys\nhi", "gem", true)
        );
        let a = json!({"model": "claude", "system": "s", "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "tools": [{"name": "vote", "input_schema": {}}]});
        let r = read_request(MockDialect::Anthropic, &a, None, false).unwrap();
        assert_eq!((r.prompt.as_str(), r.tools[0].as_str()), ("s\nhi", "vote"));
        assert!(read_request(MockDialect::OpenAi, &json!({}), None, false).is_err());
        assert_eq!(count_tokens("abcde"), 2);
    }
}
