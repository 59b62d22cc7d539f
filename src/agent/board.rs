//! The answer board every agent reads (MassGen's "current answers"), anonymous ids, the two
//! coordination tools and the prompts built from them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::VotingSensitivity;
use crate::provider::simulated::{ANSWERS_CLOSE, ANSWERS_OPEN};
use crate::provider::{Message, ToolSpec};

/// Anonymous ids: `agent1`..`agentN` over the sorted real ids, so agents judge answers, not names.
#[derive(Debug, Clone, Default)]
pub struct AnonIds {
    to_anon: HashMap<String, String>,
    to_real: HashMap<String, String>,
}

impl AnonIds {
    /// Ids for a team with these real ids (any order).
    pub fn new(real_ids: &[String]) -> Self {
        let mut sorted: Vec<&String> = real_ids.iter().collect();
        sorted.sort();
        let mut ids = Self::default();
        for (i, real) in sorted.into_iter().enumerate() {
            let anon = format!("agent{}", i + 1);
            ids.to_anon.insert(real.clone(), anon.clone());
            ids.to_real.insert(anon, real.clone());
        }
        ids
    }

    /// The anonymous id of `real`.
    pub fn anon(&self, real: &str) -> Option<&str> {
        self.to_anon.get(real).map(String::as_str)
    }

    /// The real id behind `anon` (`agent2`; a revision label like `agent2.1` is accepted too).
    pub fn real(&self, anon: &str) -> Option<&str> {
        let base = anon.trim().split_once('.').map_or(anon.trim(), |(b, _)| b);
        self.to_real.get(base).map(String::as_str)
    }
}

/// One accepted answer.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerEntry {
    /// The author's real id.
    pub agent: String,
    /// The author's anonymous id (`agent2`).
    pub anon: String,
    /// The revision label (`agent2.1` for its first answer).
    pub label: String,
    /// The revision number (1-based).
    pub revision: u32,
    /// The answer text.
    pub content: String,
}

/// Every accepted answer so far, and a generation that grows with each new one. Published by
/// the orchestrator; agents read the latest at every attempt.
#[derive(Debug, Clone, Default)]
pub struct AnswerBoard {
    /// Grows by one with each accepted answer.
    pub generation: u64,
    /// All answers, oldest first.
    pub answers: Vec<AnswerEntry>,
    /// The team's anonymous ids.
    pub ids: Arc<AnonIds>,
}

impl AnswerBoard {
    /// An empty board for a team.
    pub fn new(ids: Arc<AnonIds>) -> Self {
        Self {
            generation: 0,
            answers: Vec::new(),
            ids,
        }
    }

    /// Each agent's latest answer, ordered by anonymous id (`agent1`, `agent2`, ..., `agent10`).
    pub fn current(&self) -> Vec<&AnswerEntry> {
        let mut latest: HashMap<&str, &AnswerEntry> = HashMap::new();
        for a in &self.answers {
            latest.insert(a.agent.as_str(), a);
        }
        let mut out: Vec<&AnswerEntry> = latest.into_values().collect();
        out.sort_by_key(|a| anon_number(&a.anon));
        out
    }

    /// The answers `agent` wrote, oldest first.
    pub fn own<'a>(&'a self, agent: &'a str) -> impl Iterator<Item = &'a AnswerEntry> + 'a {
        self.answers.iter().filter(move |a| a.agent == agent)
    }

    /// The `<CURRENT ANSWERS ...>` block.
    pub fn answers_block(&self) -> String {
        let current = self.current();
        let mut s = String::from(ANSWERS_OPEN);
        s.push('\n');
        if current.is_empty() {
            s.push_str("(no answers available yet)\n");
        }
        for a in current {
            s.push_str(&format!("<{0}> {1} <end of {0}>\n", a.label, a.content));
        }
        s.push_str(ANSWERS_CLOSE);
        s
    }
}

fn anon_number(anon: &str) -> u64 {
    anon.trim_start_matches("agent").parse().unwrap_or(u64::MAX)
}

/// The opening user message: the question and the current answers.
pub fn turn_message(question: &str, board: &AnswerBoard) -> Message {
    Message::user(format!(
        "<ORIGINAL MESSAGE> {question} <END OF ORIGINAL MESSAGE>\n\n{}",
        board.answers_block()
    ))
}

/// The system message: the agent's own plus MassGen's coordination instructions.
pub fn system_message(own: Option<&str>, sensitivity: VotingSensitivity) -> Message {
    let bar = match sensitivity {
        VotingSensitivity::Lenient => {
            "If the best CURRENT ANSWER addresses the ORIGINAL MESSAGE reasonably well, vote for it."
        }
        VotingSensitivity::Balanced => {
            "Vote only if the best CURRENT ANSWER is good: accurate, clear and addressing the ORIGINAL MESSAGE."
        }
        VotingSensitivity::Strict => {
            "Vote only if the best CURRENT ANSWER is complete and correct in every part; otherwise improve on it."
        }
    };
    let mut text = own.map(|s| format!("{s}\n\n")).unwrap_or_default();
    text.push_str(
        "You are one of several agents answering the same message. You see the ORIGINAL MESSAGE \
         and the CURRENT ANSWERS of all agents (under anonymous ids). Does the best CURRENT ANSWER \
         address the ORIGINAL MESSAGE well? If yes, use the `vote` tool to record your vote. \
         Otherwise, digest the existing answers, combine their strengths, fix their weaknesses, \
         and use the `new_answer` tool to record a better answer. Call exactly one tool, once.\n",
    );
    text.push_str(bar);
    Message::system(text)
}

/// The `new_answer(content)` and `vote(agent_id, reason)` tools; `vote` lists the anonymous ids
/// that currently have an answer.
pub fn coordination_tools(board: &AnswerBoard) -> Vec<ToolSpec> {
    let ids: Vec<String> = board.current().iter().map(|a| a.anon.clone()).collect();
    let mut agent_id = serde_json::json!({
        "type": "string",
        "description": "The anonymous id of the agent whose answer is best (e.g. agent1)."
    });
    if !ids.is_empty() {
        agent_id["enum"] = serde_json::json!(ids);
    }
    vec![
        ToolSpec {
            name: "new_answer".to_owned(),
            description: "Record a new, better answer to the ORIGINAL MESSAGE.".to_owned(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": { "content": {
                    "type": "string",
                    "description": "The complete answer."
                } },
                "required": ["content"]
            }),
        },
        ToolSpec {
            name: "vote".to_owned(),
            description: "Vote for the best current answer (your own is allowed).".to_owned(),
            parameters: serde_json::json!({
                "type": "object",
                "properties": {
                    "agent_id": agent_id,
                    "reason": { "type": "string", "description": "Why this answer is best." }
                },
                "required": ["agent_id", "reason"]
            }),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> AnswerBoard {
        let ids = Arc::new(AnonIds::new(&[
            "zed".to_owned(),
            "amy".to_owned(),
            "bob".to_owned(),
        ]));
        let mut b = AnswerBoard::new(ids);
        for (agent, anon, rev, text) in [
            ("zed", "agent3", 1, "z1"),
            ("amy", "agent1", 1, "a1"),
            ("zed", "agent3", 2, "z2"),
        ] {
            b.generation += 1;
            b.answers.push(AnswerEntry {
                agent: agent.into(),
                anon: anon.into(),
                label: format!("{anon}.{rev}"),
                revision: rev,
                content: text.into(),
            });
        }
        b
    }

    #[test]
    fn anonymous_ids_follow_sorted_real_ids() {
        let b = board();
        assert_eq!(b.ids.anon("amy"), Some("agent1"));
        assert_eq!(b.ids.anon("zed"), Some("agent3"));
        assert_eq!(b.ids.real("agent2"), Some("bob"));
        assert_eq!(b.ids.real("agent3.2"), Some("zed"));
        assert_eq!(b.ids.real("agent9"), None);
    }

    #[test]
    fn current_answers_are_latest_per_agent_in_anonymous_order() {
        let b = board();
        let labels: Vec<&str> = b.current().iter().map(|a| a.label.as_str()).collect();
        assert_eq!(labels, ["agent1.1", "agent3.2"]);
        let block = b.answers_block();
        assert!(block.contains("<agent3.2> z2 <end of agent3.2>"));
        assert!(!block.contains("z1"));
        let tools = coordination_tools(&b);
        assert_eq!(
            tools[1].parameters["properties"]["agent_id"]["enum"],
            serde_json::json!(["agent1", "agent3"])
        );
    }

    #[test]
    fn empty_board_says_no_answers() {
        let b = AnswerBoard::new(Arc::new(AnonIds::new(&["a".to_owned()])));
        assert!(
            turn_message("q?", &b)
                .content
                .contains("(no answers available yet)")
        );
    }
}
