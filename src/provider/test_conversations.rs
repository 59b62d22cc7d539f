//! Conversations the adapters' fixture tests send: one with every message form.

use serde_json::json;

use super::{ChatRequest, ImageInput, Message, ToolCall, ToolSpec};

/// A retried turn: a refused answer (text and a tool call carrying a signature), a refused pair
/// of votes, a reply without a tool call and the nudge that follows it.
pub(crate) fn retried_turn(model: &str) -> ChatRequest {
    let mut answer = ToolCall::new("call_1", "new_answer", json!({"content": "Blue."}));
    answer.signature = Some("sig-1".into());
    let v2 = ToolCall::new(
        "call_2",
        "vote",
        json!({"agent_id": "agent9", "reason": "r"}),
    );
    let v3 = ToolCall::new(
        "call_3",
        "vote",
        json!({"agent_id": "agent1", "reason": "s"}),
    );
    ChatRequest {
        options: Default::default(),
        model: model.into(),
        messages: vec![
            Message::system("Coordinate."),
            Message::user("Q?"),
            Message::assistant_tool_calls("Mine.", vec![answer.clone()]),
            Message::tool_error(&answer, "Identical."),
            Message::assistant_tool_calls("", vec![v2.clone(), v3.clone()]),
            Message::tool_error(&v2, "Once."),
            Message::tool_error(&v3, "Once."),
            Message::assistant("I would rather explain."),
            Message::user("Call a tool."),
        ],
        tools: vec![ToolSpec {
            name: "vote".into(),
            description: "Vote.".into(),
            parameters: json!({"type": "object"}),
        }],
        temperature: None,
        max_tokens: Some(256),
        stream: false,
    }
}

/// Messages of one role in a row: the question then a nudge (after an empty reply), and a tool
/// result followed by a user message.
pub(crate) fn same_role_runs(model: &str) -> ChatRequest {
    let call = ToolCall::new(
        "toolu_1",
        "vote",
        json!({"agent_id": "agent1", "reason": "r"}),
    );
    ChatRequest {
        options: Default::default(),
        model: model.into(),
        messages: vec![
            Message::user("Q?"),
            Message::user("Call a tool."),
            Message::assistant_tool_calls("", vec![call.clone()]),
            Message::tool_result(&call, "Recorded."),
            Message::user("Thanks."),
        ],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(64),
        stream: false,
    }
}

/// A conversation with images: a question with text and an inline PNG, the model's reply, a
/// follow-up that is only a web image (a `.jpg`), and a system message carrying an image (sent
/// in a user turn of its own).
pub(crate) fn with_images(model: &str) -> ChatRequest {
    let mut sys = Message::system("Look closely.");
    sys.images = vec![ImageInput::url("https://example.com/ref")];
    ChatRequest {
        options: Default::default(),
        model: model.into(),
        messages: vec![
            sys,
            Message::user_with_images(
                "What is this?",
                vec![ImageInput::inline("image/png", "iVBORw0KGgo=")],
            ),
            Message::assistant("A dot."),
            Message::user_with_images("", vec![ImageInput::url("https://example.com/b.jpg")]),
        ],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(256),
        stream: false,
    }
}
