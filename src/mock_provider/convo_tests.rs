//! Reading each dialect's requests.
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
