//! A turn's conversation as it goes to the model. It is built again for every call, from the
//! answer board as it is at that moment: the first user message always lists the current
//! answers, and the turn's rejected replies follow in native form (the model's tool calls, then
//! one tool result per call saying why it was refused; a reply without a tool call is followed
//! by a user message instead).

use super::board::{AnswerBoard, coordination_tools, turn_message};
use super::checks::{Rejection, may_answer};
use crate::config::OrchestratorConfig;
use crate::provider::{ChatResponse, Message, ToolCall, ToolSpec};

/// A reply the turn checks refused, kept for the turn's next attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    /// The text the model wrote.
    pub text: String,
    /// The tool calls it made.
    pub calls: Vec<ToolCall>,
    /// Why it was refused.
    pub rejection: Rejection,
    /// The board generation it was checked against.
    pub generation: u64,
}

impl Rejected {
    /// `response`, refused for `rejection` against the board of `generation`.
    pub fn new(response: &ChatResponse, rejection: Rejection, generation: u64) -> Self {
        Self {
            text: response.text.clone(),
            calls: response.tool_calls.clone(),
            rejection,
            generation,
        }
    }
}

/// Added to a refusal when answers arrived after it was made.
pub const NEWER_ANSWERS: &str =
    "New answers have arrived since: the CURRENT ANSWERS above are up to date.";

/// The messages of a turn's next call: `system`, the question with the answers on `board`, and
/// every rejected reply so far with the reason it was refused.
pub fn turn_messages(
    system: &Message,
    question: &str,
    board: &AnswerBoard,
    rejected: &[Rejected],
) -> Vec<Message> {
    let mut messages = vec![system.clone(), turn_message(question, board)];
    for r in rejected {
        let mut reason = r.rejection.to_string();
        if r.generation != board.generation {
            reason.push_str("\n\n");
            reason.push_str(NEWER_ANSWERS);
        }
        if r.calls.is_empty() {
            // An empty reply has nothing to show; two user messages in a row are merged by the
            // adapters whose APIs want alternating roles.
            if !r.text.trim().is_empty() {
                messages.push(Message::assistant(r.text.clone()));
            }
            messages.push(Message::user(reason));
        } else {
            messages.push(Message::assistant_tool_calls(
                r.text.clone(),
                r.calls.clone(),
            ));
            for call in &r.calls {
                messages.push(Message::tool_error(call, reason.clone()));
            }
        }
    }
    messages
}

/// The tools offered to agent `me` on `board`: `new_answer` unless the agent has reached the
/// answer cap (an answer it could not record would be refused), and `vote` — except on a retry
/// (`retry`) while no answer exists, where a vote could only be refused again. The first
/// attempt offers `vote` on an empty board as MassGen does.
pub fn turn_tools(
    board: &AnswerBoard,
    me: &str,
    config: &OrchestratorConfig,
    retry: bool,
) -> Vec<ToolSpec> {
    let can_answer = may_answer(board, me, config);
    let can_vote = !(retry && board.current().is_empty());
    coordination_tools(board)
        .into_iter()
        .filter(|t| match t.name.as_str() {
            "new_answer" => can_answer,
            "vote" => can_vote,
            _ => true,
        })
        .collect()
}

#[cfg(test)]
mod tests;
