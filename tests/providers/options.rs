//! Pass-through provider options (`top_p`, reasoning effort, verbosity, `parallel_tool_calls`,
//! Anthropic `betas`, `chat_template_kwargs`, `extra_body`): the exact JSON (and header) each
//! adapter sends for them, and nothing for a request that sets none.

use massgen::provider::{
    ChatRequest, Message, RequestOptions, ToolSpec, anthropic, gemini, openai,
};
use serde_json::{Value, json};

fn request(options: RequestOptions) -> ChatRequest {
    ChatRequest {
        model: "m".into(),
        messages: vec![Message::user("q")],
        tools: vec![ToolSpec {
            name: "vote".into(),
            description: "vote".into(),
            parameters: json!({"type": "object"}),
        }],
        max_tokens: Some(64),
        options,
        ..ChatRequest::default()
    }
}

fn every_option() -> RequestOptions {
    let mut extra = serde_json::Map::new();
    extra.insert("repetition_penalty".into(), json!(1.1));
    extra.insert("model".into(), json!("not-this-one"));
    RequestOptions {
        top_p: Some(0.5),
        top_k: Some(40),
        reasoning_effort: Some("high".into()),
        verbosity: Some("low".into()),
        parallel_tool_calls: Some(false),
        betas: vec![
            "computer-use-2025-01-24".into(),
            "files-api-2025-04-14".into(),
        ],
        chat_template_kwargs: Some(json!({"enable_thinking": true})),
        extra_body: Some(extra),
    }
}

/// The body without the keys every request has, for comparing the options part alone.
fn options_part(body: &Value, common: &[&str]) -> Value {
    let mut map = body.as_object().cloned().unwrap_or_default();
    for k in common {
        map.remove(*k);
    }
    Value::Object(map)
}

#[test]
fn chat_completions_take_the_options_in_their_own_names() {
    let body = openai::request_body(&request(every_option()));
    let part = options_part(&body, &["messages", "tools", "stream", "max_tokens"]);
    assert_eq!(
        part,
        json!({
            "model": "m",
            "top_p": 0.5,
            "top_k": 40,
            "reasoning_effort": "high",
            "verbosity": "low",
            "parallel_tool_calls": false,
            "chat_template_kwargs": {"enable_thinking": true},
            "repetition_penalty": 1.1,
        })
    );
    // Without tools, the API refuses `parallel_tool_calls`: it is left out.
    let mut no_tools = request(every_option());
    no_tools.tools.clear();
    assert!(
        openai::request_body(&no_tools)
            .get("parallel_tool_calls")
            .is_none()
    );
}

#[test]
fn gemini_takes_them_in_generation_config() {
    let body = gemini::request_body(&request(every_option()));
    assert_eq!(
        body["generationConfig"],
        json!({
            "maxOutputTokens": 64,
            "topP": 0.5,
            "topK": 40,
            // "high" is 24576, but thinking counts within the cap: half of it is left to the
            // answer.
            "thinkingConfig": {"thinkingBudget": 32},
        })
    );
    let mut uncapped = request(every_option());
    uncapped.max_tokens = None;
    assert_eq!(
        gemini::request_body(&uncapped)["generationConfig"]["thinkingConfig"],
        json!({"thinkingBudget": 24576})
    );
    for absent in [
        "verbosity",
        "parallel_tool_calls",
        "chat_template_kwargs",
        "top_p",
    ] {
        assert!(body.get(absent).is_none(), "{absent}: {body}");
    }
    assert_eq!(gemini::thinking_budget("low"), Some(1024));
    assert_eq!(gemini::thinking_budget("none"), Some(0));
    assert_eq!(gemini::thinking_budget("extreme"), None);
}

#[test]
fn anthropic_takes_sampling_tool_choice_and_the_beta_header() {
    let req = request(every_option());
    let body = anthropic::request_body(&req);
    let part = options_part(&body, &["model", "messages", "tools", "max_tokens"]);
    assert_eq!(
        part,
        json!({
            "top_p": 0.5,
            "top_k": 40,
            "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
        })
    );
    assert_eq!(
        anthropic::beta_header(&req).as_deref(),
        Some("computer-use-2025-01-24,files-api-2025-04-14")
    );
}

#[test]
fn a_request_without_options_sends_none_of_them() {
    let req = request(RequestOptions::default());
    let openai = openai::request_body(&req);
    for k in [
        "top_p",
        "top_k",
        "reasoning_effort",
        "verbosity",
        "parallel_tool_calls",
    ] {
        assert!(openai.get(k).is_none(), "{k}: {openai}");
    }
    assert_eq!(
        gemini::request_body(&req)["generationConfig"],
        json!({"maxOutputTokens": 64})
    );
    let claude = anthropic::request_body(&req);
    assert!(claude.get("tool_choice").is_none() && claude.get("top_p").is_none());
    assert_eq!(anthropic::beta_header(&req), None);
}
