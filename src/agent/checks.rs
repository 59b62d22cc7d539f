//! Turn checks: what a model's reply must satisfy to count as an answer or a vote. A failed
//! check returns the message sent back to the model for its next attempt.

use std::collections::HashSet;

use super::board::AnswerBoard;
use crate::config::{NoveltyRequirement, OrchestratorConfig};
use crate::provider::ChatResponse;

/// What a valid turn decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A new answer.
    Answer(String),
    /// A vote for `for_agent` (a real id).
    Vote {
        /// The agent voted for (real id).
        for_agent: String,
        /// The reason given.
        reason: String,
    },
}

/// Sent when the model called no tool.
pub const NUDGE: &str = "You did not call a tool. Finish your turn by calling exactly one tool: \
     `vote` if the best current answer is good enough, or `new_answer` with a better answer.";

/// Why a reply did not count as a turn. Its `Display` is the message sent back to the model
/// (as the result of each of its tool calls, or as a user message when it called none).
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    /// A tool other than `new_answer` and `vote` was called.
    UnknownTool {
        /// The name the model used.
        name: String,
    },
    /// No tool was called.
    NoToolCall,
    /// More than one `vote`.
    SeveralVotes,
    /// `vote` together with `new_answer`.
    VoteAndAnswer,
    /// More than one `new_answer`.
    SeveralAnswers,
    /// A vote while no answer exists.
    NothingToVoteFor,
    /// A vote for an id with no current answer.
    UnknownVoteTarget {
        /// The id the model gave.
        target: String,
        /// The ids it could have voted for.
        valid: Vec<String>,
    },
    /// A `new_answer` with no content.
    EmptyAnswer,
    /// The agent has written `max_new_answers_per_agent` answers already.
    AnswerCap {
        /// The cap.
        cap: u32,
    },
    /// The answer repeats an existing one word for word.
    Duplicate {
        /// The label of the answer it repeats (`agent2.1`).
        label: String,
        /// That answer's author (anonymous id).
        author: String,
        /// Whether that answer is among the CURRENT ANSWERS (not since revised).
        current: bool,
    },
    /// The answer overlaps one of the agent's earlier answers too much.
    NotNovel {
        /// The label of the earlier answer.
        label: String,
        /// The word overlap found (0..=1).
        overlap: f64,
        /// The most allowed.
        limit: f64,
    },
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::UnknownTool { name } => write!(
                f,
                "Unknown tool `{name}`: only `new_answer` and `vote` exist."
            ),
            Rejection::NoToolCall => f.write_str(NUDGE),
            Rejection::SeveralVotes => {
                f.write_str("You voted more than once. Cast exactly one vote.")
            }
            Rejection::VoteAndAnswer => f.write_str(
                "You called `vote` and `new_answer` together. Choose one: vote, or give a new \
                 answer.",
            ),
            Rejection::SeveralAnswers => {
                f.write_str("Call `new_answer` once, with your complete answer.")
            }
            Rejection::NothingToVoteFor => f.write_str(
                "There are no answers to vote for yet. Use `new_answer` to give the first answer.",
            ),
            Rejection::UnknownVoteTarget { target, valid } => write!(
                f,
                "Unknown agent id `{target}`. Vote for one of: {}.",
                valid.join(", ")
            ),
            Rejection::EmptyAnswer => {
                f.write_str("Your `new_answer` had no content. Give the complete answer.")
            }
            Rejection::AnswerCap { cap } => write!(
                f,
                "You have reached the limit of {cap} answer(s). Vote for the best current answer."
            ),
            Rejection::Duplicate {
                label,
                author,
                current: true,
            } => write!(
                f,
                "That answer is identical to the existing answer {label} (shown in the CURRENT \
                 ANSWERS). Vote for it (agent_id `{author}`) instead, or write a different answer."
            ),
            Rejection::Duplicate { label, author, .. } => write!(
                f,
                "That answer is identical to the earlier answer {label}, which {author} has \
                 since revised (its latest is in the CURRENT ANSWERS). Vote for {author} \
                 instead, or write a different answer."
            ),
            Rejection::NotNovel {
                label,
                overlap,
                limit,
            } => write!(
                f,
                "Your new answer overlaps {:.0}% with your earlier answer {label} (the limit is \
                 {:.0}%). Make it substantially different, or vote.",
                overlap * 100.0,
                limit * 100.0
            ),
        }
    }
}

/// Checks `response` from agent `me` against the `board` it saw.
pub fn check_turn(
    response: &ChatResponse,
    board: &AnswerBoard,
    me: &str,
    config: &OrchestratorConfig,
) -> Result<Decision, Rejection> {
    let mut answers = Vec::new();
    let mut votes = Vec::new();
    for call in &response.tool_calls {
        match call.name.as_str() {
            "new_answer" => answers.push(call),
            "vote" => votes.push(call),
            other => {
                return Err(Rejection::UnknownTool {
                    name: other.to_owned(),
                });
            }
        }
    }
    match (answers.len(), votes.len()) {
        (0, 0) => Err(Rejection::NoToolCall),
        (_, v) if v > 1 => Err(Rejection::SeveralVotes),
        (a, 1) if a > 0 => Err(Rejection::VoteAndAnswer),
        (a, 0) if a > 1 => Err(Rejection::SeveralAnswers),
        (0, _) => {
            let args = &votes[0].arguments;
            let target = args["agent_id"].as_str().unwrap_or_default();
            let reason = args["reason"].as_str().unwrap_or_default().to_owned();
            check_vote(board, target, reason)
        }
        _ => {
            let content = answers[0].arguments["content"].as_str().unwrap_or_default();
            check_answer(board, me, content.trim(), config).map(Decision::Answer)
        }
    }
}

/// Whether agent `me` may still write an answer under `config`'s answer cap.
pub fn may_answer(board: &AnswerBoard, me: &str, config: &OrchestratorConfig) -> bool {
    config
        .max_new_answers_per_agent
        .is_none_or(|cap| board.own(me).count() < cap as usize)
}

fn check_vote(board: &AnswerBoard, target: &str, reason: String) -> Result<Decision, Rejection> {
    let current = board.current();
    if current.is_empty() {
        return Err(Rejection::NothingToVoteFor);
    }
    let known = board
        .ids
        .real(target)
        .filter(|real| current.iter().any(|a| a.agent == *real));
    match known {
        Some(real) => Ok(Decision::Vote {
            for_agent: real.to_owned(),
            reason,
        }),
        None => Err(Rejection::UnknownVoteTarget {
            target: target.to_owned(),
            valid: current.iter().map(|a| a.anon.clone()).collect(),
        }),
    }
}

fn check_answer(
    board: &AnswerBoard,
    me: &str,
    content: &str,
    config: &OrchestratorConfig,
) -> Result<String, Rejection> {
    if content.is_empty() {
        return Err(Rejection::EmptyAnswer);
    }
    if let Some(cap) = config
        .max_new_answers_per_agent
        .filter(|_| !may_answer(board, me, config))
    {
        return Err(Rejection::AnswerCap { cap });
    }
    if let Some(same) = board
        .answers
        .iter()
        .rev()
        .find(|a| a.content.trim() == content)
    {
        let current = board.current().iter().any(|a| a.label == same.label);
        return Err(Rejection::Duplicate {
            label: same.label.clone(),
            author: same.anon.clone(),
            current,
        });
    }
    let threshold = match config.answer_novelty_requirement {
        NoveltyRequirement::Lenient => None,
        NoveltyRequirement::Balanced => Some(0.7),
        NoveltyRequirement::Strict => Some(0.5),
    };
    if let Some(limit) = threshold {
        if let Some((label, overlap)) = board
            .own(me)
            .map(|old| (&old.label, jaccard(&old.content, content)))
            .find(|(_, o)| *o > limit)
        {
            return Err(Rejection::NotNovel {
                label: label.clone(),
                overlap,
                limit,
            });
        }
    }
    Ok(content.to_owned())
}

/// Jaccard similarity of the lower-cased word sets of `a` and `b` (1.0 when both are empty).
pub fn jaccard(a: &str, b: &str) -> f64 {
    let words = |s: &str| -> HashSet<String> {
        s.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let (x, y) = (words(a), words(b));
    let union = x.union(&y).count();
    if union == 0 {
        return 1.0;
    }
    x.intersection(&y).count() as f64 / union as f64
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::agent::board::{AnonIds, AnswerEntry};
    use crate::provider::ToolCall;

    fn board() -> AnswerBoard {
        let mut b = AnswerBoard::new(Arc::new(AnonIds::new(&["a".to_owned(), "b".to_owned()])));
        b.answers.push(AnswerEntry {
            agent: "a".into(),
            anon: "agent1".into(),
            label: "agent1.1".into(),
            revision: 1,
            content: "the sky is blue because of rayleigh scattering".into(),
        });
        b
    }

    fn reply(calls: &[(&str, serde_json::Value)]) -> ChatResponse {
        ChatResponse {
            tool_calls: calls
                .iter()
                .map(|(n, v)| ToolCall::new("c", *n, v.clone()))
                .collect(),
            ..ChatResponse::default()
        }
    }

    fn vote(id: &str) -> (&'static str, serde_json::Value) {
        (
            "vote",
            serde_json::json!({"agent_id": id, "reason": "good"}),
        )
    }

    fn answer(text: &str) -> (&'static str, serde_json::Value) {
        ("new_answer", serde_json::json!({ "content": text }))
    }

    #[test]
    fn each_rule_is_enforced() {
        let cfg = OrchestratorConfig::default();
        let b = board();
        let check = |r: &ChatResponse| check_turn(r, &b, "a", &cfg).map_err(|e| e.to_string());
        assert_eq!(check(&reply(&[])), Err(NUDGE.to_owned()));
        assert!(check(&reply(&[vote("agent1"), vote("agent1")])).is_err());
        assert!(check(&reply(&[vote("agent1"), answer("x")])).is_err());
        assert!(
            check(&reply(&[vote("agent2")]))
                .unwrap_err()
                .contains("Unknown agent")
        );
        assert!(
            check(&reply(&[answer(
                "the sky is blue because of rayleigh scattering"
            )]))
            .unwrap_err()
            .contains("identical")
        );
        assert_eq!(
            check(&reply(&[vote("agent1.1")])),
            Ok(Decision::Vote {
                for_agent: "a".into(),
                reason: "good".into()
            })
        );
        let empty = AnswerBoard::new(b.ids.clone());
        assert!(
            check_turn(&reply(&[vote("agent1")]), &empty, "a", &cfg)
                .unwrap_err()
                .to_string()
                .contains("no answers")
        );
    }

    #[test]
    fn answer_cap_and_novelty() {
        let b = board();
        let capped = OrchestratorConfig {
            max_new_answers_per_agent: Some(1),
            ..OrchestratorConfig::default()
        };
        assert!(
            check_turn(&reply(&[answer("new")]), &b, "a", &capped)
                .unwrap_err()
                .to_string()
                .contains("limit of 1")
        );
        assert!(check_turn(&reply(&[answer("new")]), &b, "b", &capped).is_ok());
        let strict = OrchestratorConfig {
            answer_novelty_requirement: NoveltyRequirement::Strict,
            ..OrchestratorConfig::default()
        };
        let similar = "the sky is blue because of rayleigh scattering indeed";
        assert!(check_turn(&reply(&[answer(similar)]), &b, "a", &strict).is_err());
        assert!(check_turn(&reply(&[answer("sunsets look red")]), &b, "a", &strict).is_ok());
        assert!((jaccard("a b c", "a b d") - 0.5).abs() < 1e-9);
    }
}
