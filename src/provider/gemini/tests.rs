//! Fixture tests: recorded Gemini answers parse into the right responses.
#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::provider::sse::SseParser;
use crate::provider::{Message, ToolSpec};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/providers/gemini/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn whole_answer_with_function_call_and_thoughts_counted() {
    let r = parse_response(&fixture("function_call.json")).unwrap();
    assert_eq!(r.text, "I will submit my answer.");
    assert_eq!(r.tool_calls[0].name, "new_answer");
    assert!(r.tool_calls[0].id.starts_with("call_mg_"));
    assert_eq!(
        r.tool_calls[0].arguments,
        json!({"content": "Paris is the capital of France."})
    );
    assert_eq!(r.usage, Some(Usage::new(310, 35)));
    assert_eq!(r.finish_reason.as_deref(), Some("STOP"));
}

#[test]
fn stream_text_then_function_call() {
    let mut parser = SseParser::new();
    let mut asm = StreamAssembler::default();
    let mut done = false;
    for event in parser.push(fixture("stream.sse").as_bytes()) {
        done = asm.push(&event, None).unwrap();
    }
    assert!(done);
    let r = asm.finish(None);
    assert_eq!(r.text, "Paris is the capital.");
    assert_eq!(r.tool_calls[0].arguments["agent_id"], "agent1");
    assert_eq!(r.usage.unwrap().total(), 21);
}

#[test]
fn blocked_prompt_and_empty_answers_are_errors() {
    let blocked = r#"{"promptFeedback": {"blockReason": "SAFETY"}}"#;
    assert_eq!(
        parse_response(blocked).unwrap_err().kind,
        ProviderErrorKind::BadRequest
    );
    assert_eq!(
        parse_response("{}").unwrap_err().kind,
        ProviderErrorKind::Malformed
    );
}

#[test]
fn request_body_shape() {
    let req = ChatRequest {
        model: "gemini-2.5-flash".into(),
        messages: vec![
            Message::system("be brief"),
            Message::user("hi"),
            Message::assistant("hello"),
        ],
        tools: vec![ToolSpec {
            name: "vote".into(),
            description: "vote".into(),
            parameters: json!({"type": "object", "additionalProperties": false,
                               "properties": {"a": {"type": "string"}}}),
        }],
        temperature: None,
        max_tokens: Some(64),
        stream: false,
        options: Default::default(),
    };
    let b = request_body(&req);
    assert_eq!(b["systemInstruction"]["parts"][0]["text"], "be brief");
    assert_eq!(b["contents"][1]["role"], "model");
    let params = &b["tools"][0]["functionDeclarations"][0]["parameters"];
    assert!(params.get("additionalProperties").is_none());
    assert_eq!(params["properties"]["a"]["type"], "string");
    assert_eq!(b["generationConfig"]["maxOutputTokens"], 64);
}

#[test]
fn tool_calls_and_results_go_back_as_function_call_and_response_parts() {
    let req = crate::provider::test_conversations::retried_turn("gemini-2.5-flash");
    let expected = json!({
        "systemInstruction": {"parts": [{"text": "Coordinate."}]},
        "contents": [
            {"role": "user", "parts": [{"text": "Q?"}]},
            {"role": "model", "parts": [
                {"text": "Mine."},
                {"functionCall": {"name": "new_answer", "args": {"content": "Blue."}},
                 "thoughtSignature": "sig-1"}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "new_answer", "response": {"error": "Identical."}}}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "vote", "args": {"agent_id": "agent9", "reason": "r"}}},
                {"functionCall": {"name": "vote", "args": {"agent_id": "agent1", "reason": "s"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "vote", "response": {"error": "Once."}}},
                {"functionResponse": {"name": "vote", "response": {"error": "Once."}}}]},
            {"role": "model", "parts": [{"text": "I would rather explain."}]},
            {"role": "user", "parts": [{"text": "Call a tool."}]}
        ],
        "tools": [{"functionDeclarations": [
            {"name": "vote", "description": "Vote.", "parameters": {"type": "object"}}]}],
        "generationConfig": {"maxOutputTokens": 256}
    });
    assert_eq!(request_body(&req), expected);
}

#[test]
fn consecutive_contents_of_one_role_are_merged() {
    let req = crate::provider::test_conversations::same_role_runs("gemini-2.5-flash");
    let expected = json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Q?"}, {"text": "Call a tool."}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "vote", "args": {"agent_id": "agent1", "reason": "r"}}}]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "vote", "response": {"output": "Recorded."}}},
                {"text": "Thanks."}]}
        ],
        "generationConfig": {"maxOutputTokens": 64}
    });
    assert_eq!(request_body(&req), expected);
}

#[test]
fn a_thought_signature_is_kept_and_sent_back() {
    let raw = r#"{"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "vote", "args": {"agent_id": "agent1", "reason": "r"}},
         "thoughtSignature": "c2lnbmF0dXJl"}]}, "finishReason": "STOP"}]}"#;
    let r = parse_response(raw).unwrap();
    assert_eq!(r.tool_calls[0].signature.as_deref(), Some("c2lnbmF0dXJl"));
    let req = ChatRequest {
        options: Default::default(),
        model: "gemini-2.5-flash".into(),
        messages: vec![
            Message::user("Q?"),
            Message::assistant_tool_calls(r.text.clone(), r.tool_calls.clone()),
        ],
        tools: Vec::new(),
        temperature: None,
        max_tokens: None,
        stream: false,
    };
    assert_eq!(
        request_body(&req)["contents"][1],
        json!({"role": "model", "parts": [
            {"functionCall": {"name": "vote", "args": {"agent_id": "agent1", "reason": "r"}},
             "thoughtSignature": "c2lnbmF0dXJl"}]})
    );
}

/// A usage report that leaves out the prompt tokens does not say the prompt was free: the
/// settlement keeps the input reservation (and takes the reported output).
#[test]
fn usage_without_prompt_tokens_keeps_the_input_reservation() {
    use crate::quota::TokenCount;
    use crate::routing::reserve::{Counting, settlement};

    let raw = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],
        "usageMetadata":{"candidatesTokenCount":5}}"#;
    let r = parse_response(raw).unwrap();
    let usage = r.usage.unwrap();
    assert!(usage.input_unreported);
    assert!(!usage.output_unreported);
    assert_eq!(usage.output_tokens, 5);
    let reserved = TokenCount::new(6_000, 4_096);
    assert_eq!(
        settlement(Counting::ActualUsage, reserved, &Ok(r)),
        Some(TokenCount::new(6_000, 5))
    );
    // Neither output count: the output reservation stays too.
    let raw = r#"{"candidates":[{"content":{"parts":[{"text":"hi"}]},"finishReason":"STOP"}],
        "usageMetadata":{"promptTokenCount":5800}}"#;
    let r = parse_response(raw).unwrap();
    assert_eq!(
        settlement(Counting::ActualUsage, reserved, &Ok(r)),
        Some(TokenCount::new(5_800, 4_096))
    );
}

/// Absurd reported counts saturate instead of overflowing.
#[test]
fn absurd_usage_counts_saturate() {
    let raw = format!(
        r#"{{"candidates":[{{"content":{{"parts":[{{"text":"hi"}}]}},"finishReason":"STOP"}}],
        "usageMetadata":{{"promptTokenCount":{max},"candidatesTokenCount":{max},"thoughtsTokenCount":7}}}}"#,
        max = u64::MAX
    );
    let usage = parse_response(&raw).unwrap().usage.unwrap();
    assert_eq!(usage.output_tokens, u64::MAX);
    assert_eq!(usage.total(), u64::MAX);
}

/// Gemini function calls come without ids: the same answer parsed twice (a turn and its retry)
/// gets different ids, so the retried conversation never holds two calls with the same id.
#[test]
fn generated_function_call_ids_never_repeat_across_attempts() {
    let first = parse_response(&fixture("function_call.json")).unwrap();
    let again = parse_response(&fixture("function_call.json")).unwrap();
    assert_ne!(first.tool_calls[0].id, again.tool_calls[0].id);
}

#[test]
fn images_go_as_inline_data_and_file_data_parts() {
    // Images before the text of their turn; inline data as `inlineData {mimeType, data}`, a URL
    // as `fileData {fileUri}` with the media type its extension names (none for `/ref`). The
    // system's image opens the user turn it merges into.
    let req = crate::provider::test_conversations::with_images("gemini-2.5-flash");
    let expected = json!({
        "systemInstruction": {"parts": [{"text": "Look closely."}]},
        "contents": [
            {"role": "user", "parts": [
                {"fileData": {"fileUri": "https://example.com/ref"}},
                {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                {"text": "What is this?"}]},
            {"role": "model", "parts": [{"text": "A dot."}]},
            {"role": "user", "parts": [
                {"fileData": {"fileUri": "https://example.com/b.jpg", "mimeType": "image/jpeg"}}]}
        ],
        "generationConfig": {"maxOutputTokens": 256}
    });
    assert_eq!(request_body(&req), expected);
}
