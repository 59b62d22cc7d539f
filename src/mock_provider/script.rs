//! What the mock answers: a model following MassGen's protocol, replying from the conversation
//! as sent.
//!
//! 1. If the last user-side content is a native tool result that rejects the previous reply
//!    ([`Feedback`]), act on it: a duplicate answer or an answer cap -> `vote` for the answer the
//!    result names, else the first answer shown; a bad vote -> `vote` for the first id the result
//!    lists; "no answers to vote for" -> `new_answer`; a nudge (no tool called) or another
//!    rejection -> call a tool as in 2. "Shown" answers are those of the first user message,
//!    else of the latest answers block in any user message.
//! 2. No tools offered (final presentation) -> plain text starting `Final answer`.
//! 3. The first user message's `<CURRENT ANSWERS from the agents>` block lists answers
//!    (`<agentN.M> ... <end of agentN.M>`) and `vote` is offered -> `vote` for the first one.
//! 4. Otherwise, with `new_answer` offered -> `new_answer` whose content depends on the system
//!    text and the model (a hash of both), so two agents with different prompts or models give
//!    different answers, and the same agent gives the same one.
//! 5. Otherwise plain text.
//!
//! A rejection written as a plain user message after prose such as `[called new_answer(...)]`
//! is not a tool result: the mock decides by rules 2-5, as a model given stale prose would.

use serde_json::{Value, json};

use super::convo::{MockRequest, Part, Role};
use super::tokens;
use crate::provider::simulated::{ANSWERS_CLOSE, ANSWERS_OPEN};

/// Opens the question in MassGen's first user message.
pub const ORIGINAL_OPEN: &str = "<ORIGINAL MESSAGE>";
/// Closes the question.
pub const ORIGINAL_CLOSE: &str = "<END OF ORIGINAL MESSAGE>";

/// One answer shown in an answers block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownAnswer {
    /// The revision label, e.g. `agent2.1`.
    pub label: String,
    /// The anonymous id, e.g. `agent2`.
    pub anon: String,
    /// The answer's text.
    pub content: String,
}

/// The answers listed in the first answers block of `text` (empty when there is no block or
/// it says `(no answers available yet)`).
pub fn answers_shown(text: &str) -> Vec<ShownAnswer> {
    let Some(start) = text.find(ANSWERS_OPEN) else {
        return Vec::new();
    };
    let body = &text[start + ANSWERS_OPEN.len()..];
    let body = body.find(ANSWERS_CLOSE).map_or(body, |end| &body[..end]);
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(at) = rest.find("<agent") {
        let after = &rest[at + 1..];
        let Some(close) = after.find('>') else { break };
        let label = &after[..close];
        let valid = label
            .strip_prefix("agent")
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'));
        rest = &after[close + 1..];
        if !valid {
            continue;
        }
        let end_tag = format!("<end of {label}>");
        let (content, next) = match rest.find(&end_tag) {
            Some(e) => (&rest[..e], &rest[e + end_tag.len()..]),
            None => (rest, ""),
        };
        let anon = label.split('.').next().unwrap_or(label).to_owned();
        out.push(ShownAnswer {
            label: label.to_owned(),
            anon,
            content: content.trim().to_owned(),
        });
        rest = next;
    }
    out
}

/// The first anonymous id in `text`: `<agent2.1>`, `agent2` -> `agent2`.
pub fn first_answer_id(text: &str) -> Option<String> {
    agent_ids(text).into_iter().next()
}

/// Every `agentN` mentioned in `text`, in order.
fn agent_ids(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("agent") {
        let after = &rest[at + "agent".len()..];
        let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
        if !digits.is_empty() {
            out.push(format!("agent{digits}"));
        }
        rest = after;
    }
    out
}

/// What a rejecting tool result asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feedback {
    /// The answer duplicates an existing one.
    Duplicate,
    /// The agent reached its answer cap.
    AnswerCap,
    /// The answer is too close to the agent's earlier one.
    Overlap,
    /// The vote named an unknown id; the ids the result lists.
    BadVote(Vec<String>),
    /// There is nothing to vote for yet.
    NothingToVote,
    /// No tool was called.
    NoTool,
    /// Another rejection (several calls, unknown tool, empty answer, an error flag).
    Other,
}

/// Reads a tool result's text as a rejection, or `None` when it does not reject anything.
pub fn classify(content: &str, is_error: bool) -> Option<Feedback> {
    let t = content.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
    if has(&["no answers to vote", "nothing to vote"]) {
        Some(Feedback::NothingToVote)
    } else if has(&["identical", "duplicate"]) {
        Some(Feedback::Duplicate)
    } else if has(&["unknown agent", "vote for one of", "invalid agent"]) {
        let ids = t
            .split_once("one of")
            .map_or_else(Vec::new, |(_, list)| agent_ids(list));
        Some(Feedback::BadVote(ids))
    } else if has(&["limit of", "answer limit", "reached the limit"]) {
        Some(Feedback::AnswerCap)
    } else if has(&["overlap", "too similar", "substantially different"]) {
        Some(Feedback::Overlap)
    } else if has(&[
        "did not call a tool",
        "no tool call",
        "call a tool",
        "call exactly one tool",
    ]) {
        Some(Feedback::NoTool)
    } else if is_error
        || has(&[
            "error",
            "invalid",
            "rejected",
            "not accepted",
            "more than once",
            "together",
            "unknown tool",
            "no content",
            "choose one",
        ])
    {
        Some(Feedback::Other)
    } else {
        None
    }
}

/// What the conversation tells the mock, besides the decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// Native tool results in the last user-side content.
    pub tool_results: u64,
    /// The last user-side content rejects the previous reply: natively (a tool result) or in
    /// prose (a user message after a model reply that reads as a rejection). Either way the
    /// request is a retry of a rejected turn.
    pub rejection: Option<Feedback>,
    /// Whether that rejection came as a native tool result.
    pub native_rejection: bool,
    /// Model replies in the history written as prose calls (`[called name(...)]`).
    pub prose_calls: u64,
    /// Native tool calls replayed in the history.
    pub replayed_calls: u64,
}

/// Reads the history of `request`.
pub fn read(request: &MockRequest) -> Reading {
    let mut r = Reading::default();
    for t in &request.turns {
        for p in &t.parts {
            match p {
                Part::ToolCall { .. } => r.replayed_calls += 1,
                Part::Text(text) if t.role == Role::Assistant && text.contains("[called ") => {
                    r.prose_calls += 1;
                }
                _ => {}
            }
        }
    }
    // The last run of user-side turns (OpenAI sends one `tool` message per call).
    let last_reply = request
        .turns
        .iter()
        .rposition(|t| t.role == Role::Assistant);
    let tail = last_reply.map_or(&request.turns[..0], |i| &request.turns[i + 1..]);
    for t in tail.iter().filter(|t| t.role.user_side()) {
        for p in &t.parts {
            match p {
                Part::ToolResult {
                    content, is_error, ..
                } => {
                    r.tool_results += 1;
                    if let Some(f) = classify(content, *is_error) {
                        r.rejection = Some(f);
                        r.native_rejection = true;
                    }
                }
                Part::Text(text) if r.rejection.is_none() => {
                    r.rejection = classify(text, false);
                }
                _ => {}
            }
        }
    }
    r
}

/// The scripted reply, before token counting.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// Text before any tool call.
    pub text: String,
    /// At most one tool call: `(name, arguments)`.
    pub tool: Option<(String, Value)>,
}

/// A stable 64-bit FNV-1a hash.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn question(text: &str) -> String {
    let q = match (text.find(ORIGINAL_OPEN), text.find(ORIGINAL_CLOSE)) {
        (Some(a), Some(b)) if b > a => &text[a + ORIGINAL_OPEN.len()..b],
        _ => text,
    };
    q.trim().chars().take(200).collect()
}

fn vote(id: &str, reason: &str) -> Reply {
    Reply {
        text: String::new(),
        tool: Some(("vote".to_owned(), json!({"agent_id": id, "reason": reason}))),
    }
}

fn new_answer(request: &MockRequest, first_user: &str, revision: usize) -> Reply {
    let tag = fnv(&format!("{}\n{}", request.system, request.model));
    let mut content = format!(
        "A mock answer from {} (perspective {tag:016x}) to: {}",
        request.model,
        question(first_user)
    );
    if revision > 0 {
        content.push_str(&format!(" Revised ({revision}) after feedback."));
    }
    Reply {
        text: "Submitting my answer.".to_owned(),
        tool: Some(("new_answer".to_owned(), json!({ "content": content }))),
    }
}

/// The reply to `request`, following the rules in the module docs.
pub fn reply(request: &MockRequest, reading: &Reading) -> Reply {
    let first_user = request.first_user_text();
    let shown = answers_shown(&first_user);
    if request.tools.is_empty() {
        return Reply {
            text: format!(
                "Final answer from the mock {}: the team's best answer to \"{}\", presented.",
                request.model,
                question(&first_user)
            ),
            tool: None,
        };
    }
    let can_vote = request.offers("vote");
    let can_answer = request.offers("new_answer");
    let revisions = request
        .turns
        .iter()
        .filter(|t| t.role == Role::Assistant)
        .count();
    if let (true, Some(feedback)) = (reading.native_rejection, &reading.rejection) {
        let visible = if shown.is_empty() {
            latest_block(request)
        } else {
            shown.clone()
        };
        let first_shown = visible.first().map(|a| a.anon.clone());
        let named = |text_ids: &[String]| {
            text_ids
                .iter()
                .find(|id| visible.iter().any(|a| &a.anon == *id))
                .cloned()
        };
        let target = match feedback {
            Feedback::Duplicate | Feedback::AnswerCap | Feedback::Overlap => {
                named(&agent_ids(&last_result_text(request))).or(first_shown)
            }
            Feedback::BadVote(listed) => listed.first().cloned().or(first_shown),
            Feedback::NothingToVote => None,
            Feedback::NoTool | Feedback::Other => None,
        };
        match (target, feedback) {
            (Some(id), _) if can_vote => {
                return vote(
                    &id,
                    "Following the feedback: this answer already covers it.",
                );
            }
            (_, Feedback::NoTool | Feedback::Other) => {}
            _ if can_answer => return new_answer(request, &first_user, revisions),
            _ => {}
        }
    }
    match shown.first() {
        Some(a) if can_vote => vote(&a.anon, "The first answer is complete and correct."),
        _ if can_answer => new_answer(request, &first_user, 0),
        _ => Reply {
            text: "I have nothing to add.".to_owned(),
            tool: None,
        },
    }
}

/// Why a reply ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Plain text, complete.
    Stop,
    /// A tool call.
    Tool,
    /// Cut at the output cap the request sent (or the model's largest output).
    Length,
}

/// The answer the mock sends, with its token counts.
#[derive(Debug, Clone, PartialEq)]
pub struct MockAnswer {
    /// Text before any tool call.
    pub text: String,
    /// At most one tool call: `(name, arguments)`.
    pub tool: Option<(String, Value)>,
    /// Input tokens, counted as the dialect's provider counts them.
    pub input_tokens: u64,
    /// Output tokens, never above the output cap.
    pub output_tokens: u64,
    /// The output cap in force: the one sent, else the model's largest output.
    pub output_cap: u64,
    /// Why it ended.
    pub finish: Finish,
}

impl MockAnswer {
    /// Input plus output tokens.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }
}

/// The answer to `request`: [`reply`], counted, and cut at the output cap. A reply over the cap
/// loses its tool call and keeps the longest prefix of its text (or of the call written out)
/// that fits, ending with [`Finish::Length`], as a provider cuts a reply at `max_tokens`.
pub fn answer(request: &MockRequest, reading: &Reading) -> MockAnswer {
    let Reply { text, tool } = reply(request, reading);
    let d = request.dialect;
    let m = request.model.as_str();
    let output_cap = request
        .max_output
        .unwrap_or_else(|| tokens::model_max_output(d, m));
    let args = tool.as_ref().map(|(n, a)| (n.clone(), a.to_string()));
    let out = tokens::output_tokens(
        d,
        m,
        &text,
        args.as_ref().map(|(n, a)| (n.as_str(), a.as_str())),
    );
    let input_tokens = tokens::input_tokens(request);
    if out <= output_cap {
        let finish = if tool.is_some() {
            Finish::Tool
        } else {
            Finish::Stop
        };
        return MockAnswer {
            text,
            tool,
            input_tokens,
            output_tokens: out,
            output_cap,
            finish,
        };
    }
    let whole = match &args {
        Some((n, a)) => format!("{text}{n}{a}"),
        None => text,
    };
    let cut = tokens::cut_to(d, m, &whole, output_cap);
    MockAnswer {
        output_tokens: tokens::output_tokens(d, m, &cut, None),
        text: cut,
        tool: None,
        input_tokens,
        output_cap,
        finish: Finish::Length,
    }
}

fn last_result_text(request: &MockRequest) -> String {
    request
        .turns
        .iter()
        .rev()
        .flat_map(|t| t.parts.iter().rev())
        .find_map(|p| match p {
            Part::ToolResult { content, .. } => Some(content.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

fn latest_block(request: &MockRequest) -> Vec<ShownAnswer> {
    request
        .turns
        .iter()
        .rev()
        .filter(|t| t.role.user_side())
        .map(|t| answers_shown(&t.text()))
        .find(|a| !a.is_empty())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
