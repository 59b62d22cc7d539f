//! Fixture tests: recorded Anthropic messages and streams parse into the right responses.
#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::provider::sse::SseParser;
use crate::provider::{Message, ProviderErrorKind, ToolSpec};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/providers/anthropic/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn whole_message_with_tool_use() {
    let r = parse_response(&fixture("tool_use.json")).unwrap();
    assert_eq!(r.text, "I'll vote for the clearest answer.");
    assert_eq!(r.tool_calls[0].id, "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(r.tool_calls[0].arguments["agent_id"], "agent1");
    assert_eq!(r.usage.unwrap().total(), 533);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_use"));
}

#[test]
fn stream_with_input_json_deltas() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let mut parser = SseParser::new();
    let mut asm = StreamAssembler::default();
    let mut done = false;
    for event in parser.push(fixture("stream_tool_use.sse").as_bytes()) {
        done = asm.push(&event, Some(&tx)).unwrap();
    }
    assert!(done);
    let r = asm.finish(Some(&tx));
    assert_eq!(r.text, "Here is my answer.");
    assert_eq!(r.tool_calls[0].name, "new_answer");
    assert_eq!(r.tool_calls[0].arguments, json!({"content": "Paris."}));
    assert_eq!(r.usage, Some(Usage::new(472, 89)));
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, 4, "two text deltas, one tool call, one usage");
}

#[test]
fn overloaded_mid_stream() {
    let mut asm = StreamAssembler::default();
    let event = SseEvent {
        event: Some("error".into()),
        data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            .into(),
    };
    let e = asm.push(&event, None).unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Overloaded);
    assert!(e.message.contains("Overloaded"));
}

#[test]
fn request_body_merges_turns_and_sets_max_tokens() {
    let req = ChatRequest {
        model: "claude-sonnet-4-20250514".into(),
        messages: vec![
            Message::system("a"),
            Message::system("b"),
            Message::user("q1"),
            Message::user("q2"),
        ],
        tools: vec![ToolSpec {
            name: "vote".into(),
            description: "vote".into(),
            parameters: json!({"type": "object"}),
        }],
        temperature: None,
        max_tokens: None,
        stream: true,
        options: Default::default(),
    };
    let b = request_body(&req);
    assert_eq!(b["system"], "a\n\nb");
    assert_eq!(b["messages"].as_array().unwrap().len(), 1);
    assert_eq!(b["messages"][0]["content"], "q1\n\nq2");
    assert_eq!(b["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(b["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(b["stream"], true);
}

#[test]
fn tool_calls_and_results_go_back_as_tool_use_and_tool_result_blocks() {
    let req = crate::provider::test_conversations::retried_turn("claude-sonnet-4-5");
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "Coordinate.",
        "messages": [
            {"role": "user", "content": "Q?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Mine."},
                {"type": "tool_use", "id": "call_1", "name": "new_answer",
                 "input": {"content": "Blue."}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "Identical.",
                 "is_error": true}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_2", "name": "vote",
                 "input": {"agent_id": "agent9", "reason": "r"}},
                {"type": "tool_use", "id": "call_3", "name": "vote",
                 "input": {"agent_id": "agent1", "reason": "s"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_2", "content": "Once.",
                 "is_error": true},
                {"type": "tool_result", "tool_use_id": "call_3", "content": "Once.",
                 "is_error": true}]},
            {"role": "assistant", "content": "I would rather explain."},
            {"role": "user", "content": "Call a tool."}
        ],
        "tools": [{"name": "vote", "description": "Vote.", "input_schema": {"type": "object"}}]
    });
    assert_eq!(request_body(&req), expected);
}

#[test]
fn consecutive_messages_of_one_role_are_merged_with_tool_results_first() {
    let req = crate::provider::test_conversations::same_role_runs("claude-sonnet-4-5");
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Q?\n\nCall a tool."},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "toolu_1", "name": "vote",
                 "input": {"agent_id": "agent1", "reason": "r"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "Recorded."},
                {"type": "text", "text": "Thanks."}]}
        ]
    });
    assert_eq!(request_body(&req), expected);
}

/// A message whose usage leaves out the output tokens keeps the output reservation when it is
/// settled, instead of refunding it as if nothing was written.
#[test]
fn usage_without_output_tokens_keeps_the_output_reservation() {
    use crate::quota::TokenCount;
    use crate::routing::reserve::{Counting, settlement};

    let raw = r#"{"content":[{"type":"text","text":"hi"}],"stop_reason":"end_turn",
        "usage":{"input_tokens":100}}"#;
    let r = parse_response(raw).unwrap();
    let usage = r.usage.unwrap();
    assert!(usage.output_unreported && !usage.input_unreported);
    assert_eq!(
        settlement(Counting::InputThenOutput, TokenCount::new(120, 500), &Ok(r)),
        Some(TokenCount::new(120, 500))
    );
}

#[test]
fn images_go_as_image_blocks_with_base64_or_url_sources() {
    // Images before the text of their turn as `image` blocks: inline data with a `base64`
    // source, a URL with a `url` source; a turn holding an image is sent as blocks.
    let req = crate::provider::test_conversations::with_images("claude-sonnet-4-5");
    let expected = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": "Look closely.",
        "messages": [
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/ref"}},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}},
                {"type": "text", "text": "What is this?"}]},
            {"role": "assistant", "content": "A dot."},
            {"role": "user", "content": [
                {"type": "image", "source": {"type": "url", "url": "https://example.com/b.jpg"}}]}
        ]
    });
    assert_eq!(request_body(&req), expected);
}
