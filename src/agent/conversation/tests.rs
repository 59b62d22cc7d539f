//! The conversation of a turn's next call: current answers first, refusals in native form, and
//! no tool offered that could only be refused again.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;

use serde_json::{Value, json};

use super::*;
use crate::agent::board::{AnonIds, AnswerEntry};
use crate::agent::checks::{NUDGE, check_turn};
use crate::config::{NoveltyRequirement, OrchestratorConfig};
use crate::provider::Role;

const QUESTION: &str = "Why is the sky blue?";
const FIRST: &str = "Rayleigh scattering favours short wavelengths.";

fn empty() -> AnswerBoard {
    AnswerBoard::new(Arc::new(AnonIds::new(&[
        "a".to_owned(),
        "b".to_owned(),
        "c".to_owned(),
    ])))
}

fn with(mut board: AnswerBoard, agent: &str, anon: &str, content: &str) -> AnswerBoard {
    let revision = board.own(agent).count() as u32 + 1;
    board.generation += 1;
    board.answers.push(AnswerEntry {
        agent: agent.into(),
        anon: anon.into(),
        label: format!("{anon}.{revision}"),
        revision,
        content: content.into(),
    });
    board
}

fn one_answer() -> AnswerBoard {
    with(empty(), "a", "agent1", FIRST)
}

fn reply(text: &str, calls: &[(&str, Value)]) -> ChatResponse {
    ChatResponse {
        text: text.into(),
        tool_calls: calls
            .iter()
            .enumerate()
            .map(|(i, (n, v))| ToolCall::new(format!("call_{i}"), *n, v.clone()))
            .collect(),
        ..ChatResponse::default()
    }
}

fn answer(text: &str) -> (&'static str, Value) {
    ("new_answer", json!({ "content": text }))
}

fn vote(id: &str) -> (&'static str, Value) {
    ("vote", json!({"agent_id": id, "reason": "best"}))
}

fn system() -> Message {
    Message::system("coordinate")
}

fn names(tools: &[ToolSpec]) -> Vec<&str> {
    tools.iter().map(|t| t.name.as_str()).collect()
}

/// Checks `response` as agent `me` on `board`, then builds the retry on `now`.
fn retry(
    response: &ChatResponse,
    board: &AnswerBoard,
    now: &AnswerBoard,
    me: &str,
    config: &OrchestratorConfig,
) -> (Rejection, Vec<Message>, Vec<ToolSpec>) {
    let rejection = check_turn(response, board, me, config).unwrap_err();
    let rejected = [Rejected::new(response, rejection.clone(), board.generation)];
    let messages = turn_messages(&system(), QUESTION, now, &rejected);
    let tools = turn_tools(now, me, config, true);
    (rejection, messages, tools)
}

/// The shape every refused tool call comes back in: the assistant's own calls, then one error
/// result per call (same id and name) carrying the reason.
fn assert_native(messages: &[Message], response: &ChatResponse, reason: &str) {
    let n = response.tool_calls.len();
    assert_eq!(messages.len(), 3 + n, "{messages:#?}");
    let assistant = &messages[2];
    assert_eq!(assistant.role, Role::Assistant);
    assert_eq!(assistant.tool_calls, response.tool_calls);
    assert_eq!(assistant.content, response.text);
    for (call, result) in response.tool_calls.iter().zip(&messages[3..]) {
        assert_eq!(result.role, Role::Tool);
        let r = result.tool_result.as_ref().unwrap();
        assert_eq!(
            (r.call_id.as_str(), r.name.as_str()),
            (call.id.as_str(), call.name.as_str())
        );
        assert!(r.is_error);
        assert_eq!(result.content, reason);
    }
}

#[test]
fn the_first_call_lists_the_current_answers() {
    let messages = turn_messages(&system(), QUESTION, &one_answer(), &[]);
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0], system());
    let user = &messages[1].content;
    assert!(
        user.contains(&format!("<agent1.1> {FIRST} <end of agent1.1>")),
        "{user}"
    );
    assert!(!user.contains("(no answers available yet)"));
    assert!(!messages.iter().any(|m| m.content.contains("UPDATE")));
    let tools = turn_tools(&one_answer(), "b", &OrchestratorConfig::default(), false);
    assert_eq!(names(&tools), ["new_answer", "vote"]);
}

#[test]
fn a_duplicate_answer_comes_back_as_a_tool_error_next_to_the_answer_it_repeats() {
    let board = one_answer();
    let response = reply("Here is mine.", &[answer(FIRST)]);
    let (rejection, messages, tools) = retry(
        &response,
        &board,
        &board,
        "b",
        &OrchestratorConfig::default(),
    );
    assert!(matches!(
        rejection,
        Rejection::Duplicate { current: true, .. }
    ));
    let reason = rejection.to_string();
    assert!(
        reason.contains("agent1.1") && reason.contains("`agent1`"),
        "{reason}"
    );
    assert_native(&messages, &response, &reason);
    // The prompt shows the answer repeated, and voting for it is offered.
    assert!(messages[1].content.contains(FIRST));
    assert_eq!(names(&tools), ["new_answer", "vote"]);
    assert_eq!(
        tools[1].parameters["properties"]["agent_id"]["enum"],
        json!(["agent1"])
    );
}

#[test]
fn a_duplicate_of_a_revised_answer_names_its_author() {
    let board = with(one_answer(), "a", "agent1", "Blue light scatters most.");
    let response = reply("", &[answer(FIRST)]);
    let (rejection, messages, _) = retry(
        &response,
        &board,
        &board,
        "b",
        &OrchestratorConfig::default(),
    );
    assert_eq!(
        rejection,
        Rejection::Duplicate {
            label: "agent1.1".into(),
            author: "agent1".into(),
            current: false
        }
    );
    assert!(rejection.to_string().contains("since revised"));
    assert!(messages[1].content.contains("<agent1.2>"));
}

#[test]
fn a_reply_without_a_tool_call_is_followed_by_the_nudge() {
    let board = one_answer();
    let response = reply("I think it is scattering.", &[]);
    let (rejection, messages, _) = retry(
        &response,
        &board,
        &board,
        "b",
        &OrchestratorConfig::default(),
    );
    assert_eq!(rejection, Rejection::NoToolCall);
    assert_eq!(messages.len(), 4);
    assert_eq!(messages[2], Message::assistant("I think it is scattering."));
    assert_eq!(messages[3], Message::user(NUDGE));
    // An empty reply leaves nothing to show: the nudge alone follows the question.
    let (_, messages, _) = retry(
        &reply(" ", &[]),
        &board,
        &board,
        "b",
        &OrchestratorConfig::default(),
    );
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[2], Message::user(NUDGE));
}

#[test]
fn a_vote_with_no_answers_is_not_offered_again() {
    let board = empty();
    let response = reply("", &[vote("agent1")]);
    let (rejection, messages, tools) = retry(
        &response,
        &board,
        &board,
        "b",
        &OrchestratorConfig::default(),
    );
    assert_eq!(rejection, Rejection::NothingToVoteFor);
    assert_native(&messages, &response, &rejection.to_string());
    assert_eq!(names(&tools), ["new_answer"]);
    // The first attempt offers both, as MassGen does.
    let first = turn_tools(&board, "b", &OrchestratorConfig::default(), false);
    assert_eq!(names(&first), ["new_answer", "vote"]);
}

#[test]
fn answers_that_arrived_after_a_refusal_are_shown_and_can_be_voted_for() {
    let response = reply("", &[vote("agent1")]);
    let (rejection, messages, tools) = retry(
        &response,
        &empty(),
        &one_answer(),
        "b",
        &OrchestratorConfig::default(),
    );
    let user = &messages[1].content;
    assert!(user.contains("<agent1.1>") && !user.contains("(no answers available yet)"));
    let result = &messages[3];
    assert_eq!(
        result.content,
        format!("{rejection}\n\n{NEWER_ANSWERS}"),
        "the refusal says the answers changed"
    );
    assert_eq!(names(&tools), ["new_answer", "vote"]);
}

#[test]
fn at_the_answer_cap_only_vote_is_offered() {
    let board = one_answer();
    let capped = OrchestratorConfig {
        max_new_answers_per_agent: Some(1),
        ..OrchestratorConfig::default()
    };
    let response = reply("", &[answer("Something else entirely.")]);
    let (rejection, messages, tools) = retry(&response, &board, &board, "a", &capped);
    assert_eq!(rejection, Rejection::AnswerCap { cap: 1 });
    assert_native(&messages, &response, &rejection.to_string());
    assert_eq!(names(&tools), ["vote"]);
    // Not only on a retry: an answer that could only be refused is never offered.
    assert_eq!(names(&turn_tools(&board, "a", &capped, false)), ["vote"]);
    assert_eq!(
        names(&turn_tools(&board, "b", &capped, false)),
        ["new_answer", "vote"]
    );
}

#[test]
fn every_call_of_a_refused_reply_gets_its_result() {
    let board = one_answer();
    let cfg = OrchestratorConfig::default();
    let cases = [
        reply("", &[vote("agent1"), vote("agent1")]),
        reply("", &[vote("agent1"), answer("x y z")]),
        reply("", &[answer("x y z"), answer("u v w")]),
        reply("", &[("search", json!({"q": "sky"}))]),
    ];
    let expected = [
        Rejection::SeveralVotes,
        Rejection::VoteAndAnswer,
        Rejection::SeveralAnswers,
        Rejection::UnknownTool {
            name: "search".into(),
        },
    ];
    for (response, want) in cases.iter().zip(expected) {
        let (rejection, messages, tools) = retry(response, &board, &board, "b", &cfg);
        assert_eq!(rejection, want);
        assert_native(&messages, response, &rejection.to_string());
        assert_eq!(names(&tools), ["new_answer", "vote"]);
    }
}

#[test]
fn a_vote_for_an_unknown_id_is_told_the_valid_ones() {
    let board = with(
        one_answer(),
        "c",
        "agent3",
        "Oxygen and nitrogen scatter blue.",
    );
    let response = reply("", &[vote("agent2")]);
    let (rejection, messages, tools) = retry(
        &response,
        &board,
        &board,
        "b",
        &OrchestratorConfig::default(),
    );
    assert!(
        rejection.to_string().contains("agent1, agent3"),
        "{rejection}"
    );
    assert_native(&messages, &response, &rejection.to_string());
    assert_eq!(
        tools[1].parameters["properties"]["agent_id"]["enum"],
        json!(["agent1", "agent3"])
    );
}

#[test]
fn empty_and_unoriginal_answers_say_what_to_change() {
    let board = one_answer();
    let response = reply("", &[answer("  ")]);
    let (rejection, messages, _) = retry(
        &response,
        &board,
        &board,
        "b",
        &OrchestratorConfig::default(),
    );
    assert_eq!(rejection, Rejection::EmptyAnswer);
    assert_native(&messages, &response, &rejection.to_string());

    let strict = OrchestratorConfig {
        answer_novelty_requirement: NoveltyRequirement::Strict,
        ..OrchestratorConfig::default()
    };
    let response = reply(
        "",
        &[answer(
            "Rayleigh scattering favours short wavelengths a lot.",
        )],
    );
    let (rejection, messages, _) = retry(&response, &board, &board, "a", &strict);
    assert!(
        matches!(&rejection, Rejection::NotNovel { label, .. } if label == "agent1.1"),
        "{rejection:?}"
    );
    assert!(rejection.to_string().contains("agent1.1"));
    assert_native(&messages, &response, &rejection.to_string());
}

#[test]
fn a_second_refusal_follows_the_first() {
    let board = one_answer();
    let first = reply("", &[vote("agent7")]);
    let second = reply("hmm", &[]);
    let cfg = OrchestratorConfig::default();
    let rejected = [
        Rejected::new(
            &first,
            check_turn(&first, &board, "b", &cfg).unwrap_err(),
            1,
        ),
        Rejected::new(&second, Rejection::NoToolCall, 1),
    ];
    let messages = turn_messages(&system(), QUESTION, &board, &rejected);
    let roles: Vec<Role> = messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            Role::System,
            Role::User,
            Role::Assistant,
            Role::Tool,
            Role::Assistant,
            Role::User
        ]
    );
}
