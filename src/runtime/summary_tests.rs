//! `status.json` from a synthetic run: the pool moves recorded in the run directory's event log
//! show per agent, and every field written before pools existed stays as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;
use crate::agent::events::{EventLog, RunEvent};
use crate::agent::model_moves::ROTATIONS_KEPT;
use crate::orchestrator::FinalAgentState;

fn stats(id: &str, calls: u32) -> AgentStats {
    AgentStats {
        id: id.into(),
        calls,
        input_tokens: 100,
        output_tokens: 20,
        quota_wait: Duration::from_millis(1500),
        answers: 1,
        state: FinalAgentState::Voted,
        failure: None,
    }
}

fn rotated(agent: &str, from: &str, to: &str, reason: &str) -> RunEvent {
    RunEvent::ModelRotated {
        agent: agent.into(),
        pool: "fast".into(),
        from: from.into(),
        to: to.into(),
        reason: reason.into(),
    }
}

/// A run of `pooled` (calls through pool `fast`) and `plain` (no pool): the pooled agent's first
/// call is rate-limited on `groq/llama` and moves to `openai/mini`, its second finds every model
/// busy and waits, then many more moves overflow the kept list.
fn synthetic_run(dir: &RunDir) {
    let t = Duration::ZERO;
    let events = [
        RunEvent::RunStarted {
            question: "q".into(),
            agents: vec!["pooled".into(), "plain".into()],
            rate_limit: true,
            run_dir: Some(dir.path().to_path_buf()),
        },
        RunEvent::ModelSelected {
            agent: "pooled".into(),
            pool: "fast".into(),
            provider: "groq".into(),
            model: "llama".into(),
        },
        rotated("pooled", "groq/llama", "openai/mini", "rate_limited"),
        RunEvent::NoModelAvailable {
            agent: "pooled".into(),
            pool: "fast".into(),
            eta_ms: Some(4_000),
        },
        RunEvent::ModelSelected {
            agent: "pooled".into(),
            pool: "fast".into(),
            provider: "openai".into(),
            model: "mini".into(),
        },
        RunEvent::Vote {
            agent: "plain".into(),
            for_agent: "pooled".into(),
            reason: "fine".into(),
        },
    ];
    for e in &events {
        dir.record(t, e);
    }
    // 60 more moves back and forth: 61 in all, the latest 50 kept.
    for i in 0..60 {
        let (from, to) = if i % 2 == 0 {
            ("openai/mini", "groq/llama")
        } else {
            ("groq/llama", "openai/mini")
        };
        dir.record(t, &rotated("pooled", from, to, "overloaded"));
    }
}

fn status_of(dir: &RunDir) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.path().join("status.json")).unwrap()).unwrap()
}

fn check_agents(status: &serde_json::Value, agents: &[AgentStats]) {
    let listed = status["agents"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    // The plain agent's entry is exactly what it always was.
    assert_eq!(listed[1], serde_json::to_value(&agents[1]).unwrap());
    // The pooled agent's entry: the old fields unchanged, plus `models`.
    let mut pooled = listed[0].clone();
    let models = pooled.as_object_mut().unwrap().remove("models").unwrap();
    assert_eq!(pooled, serde_json::to_value(&agents[0]).unwrap());
    assert_eq!(models["pools"], serde_json::json!(["fast"]));
    // llama: its selection and 30 rotations to it; mini: a selection, 1 + 30 rotations to it.
    assert_eq!(
        models["used"],
        serde_json::json!({"groq/llama": 31, "openai/mini": 32})
    );
    assert_eq!(models["rotations"], 61);
    assert_eq!(models["no_model_available"], 1);
    let recent = models["recent_rotations"].as_array().unwrap();
    assert_eq!(recent.len(), ROTATIONS_KEPT);
    // The first (rate-limited) move fell off the kept list; the last one is the 60th overload.
    assert!(recent.iter().all(|r| r["reason"] == "overloaded"));
    assert_eq!(
        recent.last().unwrap(),
        &serde_json::json!({"from": "groq/llama", "to": "openai/mini", "reason": "overloaded"})
    );
}

#[test]
fn status_json_lists_each_pooled_agents_models_rotations_and_waits() {
    let root = tempfile::tempdir().unwrap();
    let dir = RunDir::create(root.path()).unwrap();
    synthetic_run(&dir);
    let agents = vec![stats("pooled", 4), stats("plain", 2)];
    let outcome = RunOutcome {
        status: RunStatus::Completed,
        winner: Some("pooled".into()),
        final_answer: "42".into(),
        votes: Vec::new(),
        answers: Vec::new(),
        agents: agents.clone(),
        duration: Duration::from_secs(3),
        run_dir: Some(dir.path().to_path_buf()),
        answer_file: None,
        notes: Vec::new(),
    };
    let result = (Ok(outcome), agents.clone());
    write_summary(&dir, "q", &result, Duration::from_secs(3), None, None).unwrap();
    let status = status_of(&dir);
    assert_eq!(status["status"], "completed");
    assert_eq!(status["winner"], "pooled");
    assert_eq!(status["duration_ms"], 3000);
    check_agents(&status, &agents);
}

#[test]
fn a_failed_run_lists_the_pool_moves_too() {
    let root = tempfile::tempdir().unwrap();
    let dir = RunDir::create(root.path()).unwrap();
    synthetic_run(&dir);
    let agents = vec![stats("pooled", 4), stats("plain", 2)];
    let error = RunError::NoAnswer {
        reason: "timeout".into(),
        run_dir: None,
    };
    let result = (Err(error), agents.clone());
    write_summary(&dir, "q", &result, Duration::from_secs(3), None, None).unwrap();
    let status = status_of(&dir);
    assert_eq!(status["status"], "failed");
    check_agents(&status, &agents);
}

#[test]
fn a_run_without_pools_writes_no_models_field() {
    let root = tempfile::tempdir().unwrap();
    let dir = RunDir::create(root.path()).unwrap();
    let agents = vec![stats("a", 1)];
    let result = (
        Err(RunError::NoAnswer {
            reason: "timeout".into(),
            run_dir: None,
        }),
        agents.clone(),
    );
    write_summary(&dir, "q", &result, Duration::from_secs(1), None, None).unwrap();
    let status = status_of(&dir);
    assert_eq!(
        status["agents"],
        serde_json::to_value(&agents).unwrap(),
        "{status}"
    );
}
