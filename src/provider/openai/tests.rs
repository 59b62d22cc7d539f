//! Fixture tests: recorded chat completions parse into the right responses.
#![allow(clippy::unwrap_used)]

use serde_json::json;

use super::*;
use crate::provider::sse::SseParser;
use crate::provider::{Message, ToolSpec};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/providers/openai/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn whole_answer_with_tool_call() {
    let r = parse_response(&fixture("tool_call.json")).unwrap();
    assert_eq!(r.text, "");
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(r.tool_calls[0].id, "call_q0Xk2bMGr3WcVzRuyc0pTD0B");
    assert_eq!(r.tool_calls[0].name, "vote");
    assert_eq!(r.tool_calls[0].arguments["agent_id"], "agent2");
    assert_eq!(r.usage, Some(Usage::new(812, 24)));
}

#[test]
fn whole_text_answer() {
    let r = parse_response(&fixture("text.json")).unwrap();
    assert_eq!(r.text, "Paris is the capital of France.");
    assert!(r.tool_calls.is_empty());
    assert_eq!(r.usage.unwrap().total(), 50);
}

#[test]
fn malformed_answers_say_what_failed() {
    let e = parse_response("{\"choices\": [").unwrap_err();
    assert_eq!(e.kind, ProviderErrorKind::Malformed);
    assert!(e.message.contains("chat completion"), "{}", e.message);
    let e = parse_response("{\"choices\": []}").unwrap_err();
    assert!(e.message.contains("no choices"), "{}", e.message);
}

#[test]
fn stream_assembles_interleaved_tool_calls_and_usage() {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let mut parser = SseParser::new();
    let mut asm = StreamAssembler::default();
    let mut done = false;
    for event in parser.push(fixture("stream_tool_calls.sse").as_bytes()) {
        done = asm.push(&event, Some(&tx)).unwrap();
    }
    assert!(done);
    let r = asm.finish(Some(&tx)).unwrap();
    assert_eq!(r.text, "Let me answer. ");
    assert_eq!(r.tool_calls.len(), 2);
    assert_eq!(r.tool_calls[0].name, "new_answer");
    assert_eq!(r.tool_calls[0].arguments, json!({"content": "Paris."}));
    assert_eq!(r.tool_calls[1].id, "call_b2");
    assert_eq!(r.tool_calls[1].arguments["agent_id"], "agent1");
    assert_eq!(r.usage.unwrap().total(), 151);
    assert_eq!(r.finish_reason.as_deref(), Some("tool_calls"));
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    assert_eq!(events[0], StreamEvent::TextDelta("Let me answer. ".into()));
    assert!(matches!(events[1], StreamEvent::Usage(_)));
    assert!(matches!(&events[2], StreamEvent::ToolCall(c) if c.name == "new_answer"));
}

#[test]
fn unparseable_arguments_keep_the_raw_text() {
    let c = tool_call(None, "vote".into(), "{\"agent_id\": ".into());
    assert!(c.id.starts_with("call_mg_"), "{}", c.id);
    assert_eq!(c.arguments, Value::Null);
    assert_eq!(c.raw_arguments, "{\"agent_id\": ");
}

#[test]
fn request_body_shape() {
    let req = ChatRequest {
        model: "gpt-4o-mini".into(),
        messages: vec![Message::system("be brief"), Message::user("hi")],
        tools: vec![ToolSpec {
            name: "vote".into(),
            description: "vote".into(),
            parameters: json!({"type": "object"}),
        }],
        temperature: Some(0.5),
        max_tokens: Some(100),
        stream: true,
        options: Default::default(),
    };
    let b = request_body(&req);
    assert_eq!(b["messages"][0]["role"], "system");
    assert_eq!(b["tools"][0]["function"]["name"], "vote");
    assert_eq!(b["stream_options"]["include_usage"], true);
    assert_eq!(b["max_tokens"], 100);
}

#[test]
fn tool_calls_and_results_go_back_as_tool_calls_and_tool_messages() {
    let req = crate::provider::test_conversations::retried_turn("gpt-4o-mini");
    let expected = json!({
        "model": "gpt-4o-mini",
        "stream": false,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "Coordinate."},
            {"role": "user", "content": "Q?"},
            {"role": "assistant", "content": "Mine.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "new_answer", "arguments": "{\"content\":\"Blue.\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "Identical."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_2", "type": "function", "function": {"name": "vote",
                  "arguments": "{\"agent_id\":\"agent9\",\"reason\":\"r\"}"}},
                {"id": "call_3", "type": "function", "function": {"name": "vote",
                  "arguments": "{\"agent_id\":\"agent1\",\"reason\":\"s\"}"}}]},
            {"role": "tool", "tool_call_id": "call_2", "content": "Once."},
            {"role": "tool", "tool_call_id": "call_3", "content": "Once."},
            {"role": "assistant", "content": "I would rather explain."},
            {"role": "user", "content": "Call a tool."}
        ],
        "tools": [{"type": "function", "function": {
            "name": "vote", "description": "Vote.", "parameters": {"type": "object"}}}]
    });
    assert_eq!(request_body(&req), expected);
}

#[test]
fn replayed_arguments_are_the_text_the_model_sent() {
    // Unparseable arguments go back exactly as they came; OpenAI keeps consecutive user
    // messages as they are.
    let call = tool_call(Some("c9".into()), "vote".into(), "{\"agent_id\": ".into());
    let mut req = crate::provider::test_conversations::same_role_runs("gpt-4o-mini");
    req.messages = vec![
        Message::user("Q?"),
        Message::user("Call a tool."),
        Message::assistant_tool_calls("", vec![call.clone()]),
        Message::tool_result(&call, "ok"),
    ];
    let b = request_body(&req);
    assert_eq!(b["messages"].as_array().unwrap().len(), 4);
    assert_eq!(
        b["messages"][2]["tool_calls"][0]["function"]["arguments"],
        "{\"agent_id\": "
    );
    assert_eq!(
        b["messages"][3],
        json!({"role": "tool", "tool_call_id": "c9", "content": "ok"})
    );
}

/// A server that sends tool calls without ids, answering a turn and its retry alike: every
/// generated id differs, within one answer, between the whole and the streamed form, and across
/// attempts, so a conversation never holds two calls (or two results) with the same id.
#[test]
fn generated_tool_call_ids_never_repeat_across_attempts() {
    let raw = r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[
        {"type":"function","function":{"name":"vote","arguments":"{}"}},
        {"type":"function","function":{"name":"new_answer","arguments":"{}"}}]},
        "finish_reason":"tool_calls"}]}"#;
    let sse = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,",
        "\"type\":\"function\",\"function\":{\"name\":\"vote\",\"arguments\":\"{}\"}}]}}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
        "data: [DONE]\n\n",
    );
    let mut ids = Vec::new();
    for _attempt in 0..2 {
        let r = parse_response(raw).unwrap();
        ids.extend(r.tool_calls.into_iter().map(|c| c.id));
        let mut parser = SseParser::new();
        let mut asm = StreamAssembler::default();
        for event in parser.push(sse.as_bytes()) {
            asm.push(&event, None).unwrap();
        }
        ids.extend(
            asm.finish(None)
                .unwrap()
                .tool_calls
                .into_iter()
                .map(|c| c.id),
        );
    }
    assert_eq!(ids.len(), 6);
    let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    assert!(ids.iter().all(|id| id.starts_with("call_mg_")), "{ids:?}");
}

#[test]
fn images_go_as_image_url_content_parts() {
    // The documented form: a user message's content as an array of parts, text then
    // `image_url` parts; inline data as a base64 data URL; text-only messages as plain strings.
    let req = crate::provider::test_conversations::with_images("gpt-4o-mini");
    let expected = json!({
        "model": "gpt-4o-mini",
        "stream": false,
        "max_tokens": 256,
        "messages": [
            {"role": "system", "content": "Look closely."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/ref"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": "A dot."},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "https://example.com/b.jpg"}}]}
        ]
    });
    assert_eq!(request_body(&req), expected);
}
