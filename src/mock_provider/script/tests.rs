#![allow(clippy::unwrap_used)]
use super::*;
use crate::mock_provider::convo::{MockDialect, ToolDecl, Turn};

const EMPTY: &str = "<ORIGINAL MESSAGE> Q? <END OF ORIGINAL MESSAGE>\n\n<CURRENT ANSWERS from the agents>\n(no answers available yet)\n<END OF CURRENT ANSWERS>";
const TWO: &str = "<ORIGINAL MESSAGE> Q? <END OF ORIGINAL MESSAGE>\n\n<CURRENT ANSWERS from the agents>\n<agent2.1> two\nlines <end of agent2.1>\n<agent3.2> three <end of agent3.2>\n<END OF CURRENT ANSWERS>";

fn req(system: &str, turns: Vec<Turn>, tools: &[&str]) -> MockRequest {
    MockRequest {
        dialect: MockDialect::OpenAi,
        model: "m".into(),
        system: system.into(),
        turns,
        tools: tools
            .iter()
            .map(|n| ToolDecl {
                name: (*n).into(),
                description: String::new(),
                parameters: String::new(),
            })
            .collect(),
        stream: false,
        include_usage: false,
        max_output: None,
    }
}

fn user(t: &str) -> Turn {
    Turn {
        role: Role::User,
        parts: vec![Part::Text(t.into())],
    }
}

fn call(name: &str) -> Turn {
    Turn {
        role: Role::Assistant,
        parts: vec![Part::ToolCall {
            id: "c".into(),
            name: name.into(),
            arguments: "{}".into(),
        }],
    }
}

fn result(text: &str) -> Turn {
    Turn {
        role: Role::Tool,
        parts: vec![Part::ToolResult {
            id: "c".into(),
            name: String::new(),
            content: text.into(),
            is_error: false,
        }],
    }
}

fn decide(r: &MockRequest) -> (String, Value) {
    let out = reply(r, &read(r));
    out.tool
        .map_or_else(|| ("text".to_owned(), json!(out.text)), |(n, a)| (n, a))
}

const BOTH: [&str; 2] = ["new_answer", "vote"];

#[test]
fn parses_answers_blocks() {
    assert!(answers_shown(EMPTY).is_empty());
    let a = answers_shown(TWO);
    assert_eq!(a.len(), 2);
    assert_eq!(
        (a[0].label.as_str(), a[0].anon.as_str()),
        ("agent2.1", "agent2")
    );
    assert_eq!(a[0].content, "two\nlines");
    assert_eq!(a[1].anon, "agent3");
    assert_eq!(
        first_answer_id("<agents> <agent> <agent12>"),
        Some("agent12".into())
    );
}

#[test]
fn first_answers_differ_by_identity_and_votes_follow_the_block() {
    let (n, a1) = decide(&req("You are alpha.", vec![user(EMPTY)], &BOTH));
    assert_eq!(n, "new_answer");
    let (_, a2) = decide(&req("You are beta.", vec![user(EMPTY)], &BOTH));
    assert_ne!(a1, a2);
    let (_, again) = decide(&req("You are alpha.", vec![user(EMPTY)], &BOTH));
    assert_eq!(a1, again);
    assert!(a1["content"].as_str().unwrap().contains("Q?"));
    let (n, v) = decide(&req("s", vec![user(TWO)], &BOTH));
    assert_eq!(
        (n.as_str(), v["agent_id"].as_str()),
        ("vote", Some("agent2"))
    );
    let (n, t) = decide(&req("s", vec![user(TWO)], &[]));
    assert_eq!(n, "text");
    assert!(t.as_str().unwrap().starts_with("Final answer"));
    let (n, _) = decide(&req("s", vec![user(TWO)], &["new_answer"]));
    assert_eq!(n, "new_answer");
}

#[test]
fn acts_on_native_rejections() {
    // Stale first message, fresh block in a later message, duplicate rejection -> vote.
    let update = format!(
        "UPDATE: new answers.\n\n{}",
        &TWO[TWO.find("<CURRENT").unwrap()..]
    );
    let r = req(
        "s",
        vec![
            user(EMPTY),
            user(&update),
            call("new_answer"),
            result("That answer is identical to an existing one."),
        ],
        &BOTH,
    );
    let reading = read(&r);
    assert_eq!(reading.rejection, Some(Feedback::Duplicate));
    assert!(reading.native_rejection);
    assert_eq!(reading.tool_results, 1);
    let (n, v) = decide(&r);
    assert_eq!(
        (n.as_str(), v["agent_id"].as_str()),
        ("vote", Some("agent2"))
    );
    // A duplicate naming its original votes for that one.
    let r = req(
        "s",
        vec![
            user(TWO),
            call("new_answer"),
            result("Duplicate of agent3's answer."),
        ],
        &BOTH,
    );
    assert_eq!(decide(&r).1["agent_id"], "agent3");
    // A bad vote: the listed id.
    let r = req(
        "s",
        vec![
            user(TWO),
            call("vote"),
            result("Unknown agent id `agent9`. Vote for one of: agent3, agent2."),
        ],
        &BOTH,
    );
    assert_eq!(decide(&r).1["agent_id"], "agent3");
    // Nothing to vote for -> answer; a nudge with answers shown -> vote.
    let r = req(
        "s",
        vec![
            user(EMPTY),
            call("vote"),
            result("There are no answers to vote for yet."),
        ],
        &BOTH,
    );
    assert_eq!(decide(&r).0, "new_answer");
    let nudge = "You did not call a tool. Call exactly one tool.";
    let r = req("s", vec![user(TWO), call("x"), result(nudge)], &BOTH);
    assert_eq!(decide(&r).0, "vote");
    // A duplicate with nothing shown anywhere: a revised answer, unlike the first.
    let r = req(
        "s",
        vec![user(EMPTY), call("new_answer"), result("identical")],
        &BOTH,
    );
    let (n, revised) = decide(&r);
    let (_, first) = decide(&req("s", vec![user(EMPTY)], &BOTH));
    assert_eq!(n, "new_answer");
    assert_ne!(revised, first);
}

#[test]
fn prose_rejections_are_read_but_not_obeyed() {
    let prose = Turn {
        role: Role::Assistant,
        parts: vec![Part::Text(
            "[called new_answer({\"content\":\"x\"})]".into(),
        )],
    };
    let r = req(
        "s",
        vec![
            user(EMPTY),
            prose,
            user("That answer is identical to an existing one."),
        ],
        &BOTH,
    );
    let reading = read(&r);
    assert_eq!(reading.prose_calls, 1);
    assert_eq!(reading.rejection, Some(Feedback::Duplicate));
    assert!(!reading.native_rejection);
    assert_eq!(
        decide(&r).0,
        "new_answer",
        "decided by the stale first message"
    );
    assert_eq!(classify("Answer recorded.", false), None);
    assert_eq!(classify("ok", true), Some(Feedback::Other));
}
