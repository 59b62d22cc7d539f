//! How a run ends: the coordination's result turned into an outcome or an error, and the run
//! directory's `status.json` and `final_answer.md`.

use std::path::PathBuf;
use std::time::Duration;

use super::{AgentStats, RunDir, RunError, RunOutcome, RunStatus};
use crate::orchestrator::Coordination;
use crate::supervisor::QuotaSnapshot;

/// The status word of a run that ended without an answer.
pub(super) fn failed_status(error: &RunError) -> &'static str {
    match error {
        RunError::Interrupted { .. } => "interrupted",
        RunError::BudgetExceeded { .. } => "budget_exceeded",
        _ => "failed",
    }
}

/// The run's result and the per-agent figures (kept for `status.json` when the run failed).
type Concluded = (Result<RunOutcome, RunError>, Vec<AgentStats>);

pub(super) fn conclude(c: Coordination, duration: Duration, run_dir: Option<PathBuf>) -> Concluded {
    let agents = c.agents.clone();
    (decide(c, duration, run_dir), agents)
}

fn decide(
    c: Coordination,
    duration: Duration,
    run_dir: Option<PathBuf>,
) -> Result<RunOutcome, RunError> {
    let all_failed = c.failures.len() == c.agents.len();
    if all_failed {
        let failures: Vec<(String, String)> = c
            .failures
            .iter()
            .map(|(a, r, _)| (a.clone(), r.clone()))
            .collect();
        if c.failures.iter().all(|(_, _, quota)| *quota) {
            return Err(RunError::QuotaDeadline { failures, run_dir });
        }
        return Err(RunError::AllAgentsFailed { failures, run_dir });
    }
    let Some(final_answer) = c.final_answer else {
        let reason = match c.status {
            RunStatus::TimedOut => "the orchestrator timeout expired before any agent answered",
            RunStatus::Completed => "the agents finished without any answer",
            RunStatus::Interrupted | RunStatus::BudgetExceeded => {
                return Err(RunError::Interrupted { run_dir });
            }
        };
        return Err(RunError::NoAnswer {
            reason: reason.to_owned(),
            run_dir,
        });
    };
    let mut notes = c.notes;
    for (agent, reason, _) in &c.failures {
        notes.push(format!("{agent} failed and was retired: {reason}"));
    }
    Ok(RunOutcome {
        status: c.status,
        winner: c.winner,
        final_answer,
        votes: c.votes,
        answers: c.answers,
        agents: c.agents,
        duration,
        run_dir,
        answer_file: None,
        notes,
    })
}

pub(super) fn write_summary(
    dir: &RunDir,
    question: &str,
    result: &Concluded,
    duration: Duration,
    quota: Option<&QuotaSnapshot>,
    usage: Option<&serde_json::Value>,
) -> Result<(), RunError> {
    let io = |e: std::io::Error| RunError::RunDir(e.to_string());
    let duration_ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let (result, agents) = result;
    let mut status = match result {
        Ok(o) => {
            dir.write("final_answer.md", &o.final_answer).map_err(io)?;
            serde_json::json!({
                "question": question,
                "status": o.status,
                "winner": o.winner,
                "votes": o.votes,
                "answers": o.answers.iter().map(|a| serde_json::json!({
                    "agent": a.agent, "label": a.label, "t_ms": a.t_ms, "path": a.path,
                })).collect::<Vec<_>>(),
                "agents": o.agents,
                "duration_ms": duration_ms,
                "notes": o.notes,
                "answer_file": dir.path().join("final_answer.md"),
            })
        }
        Err(e) => serde_json::json!({
            "question": question,
            "status": failed_status(e),
            "error": e.to_string(),
            "exit_code": e.exit_code(),
            "agents": agents,
            "duration_ms": duration_ms,
        }),
    };
    if let Some(agents) = status.get_mut("agents") {
        // Agents whose calls went through a pool: the models used, rotations, waits for a model.
        dir.model_moves().annotate(agents);
    }
    if let (Some(snapshot), Some(map)) = (quota, status.as_object_mut()) {
        // Every scope at the end of the run: limits, usage, queue, cooldowns, learned limits.
        let scopes = serde_json::to_value(&snapshot.scopes).unwrap_or_default();
        map.insert("quota".to_owned(), serde_json::json!({ "scopes": scopes }));
    }
    if let (Some(usage), Some(map)) = (usage, status.as_object_mut()) {
        // The run's provider calls: outcomes, tokens and cost (what the usage ledger got).
        map.insert("usage".to_owned(), usage.clone());
    }
    let text =
        serde_json::to_string_pretty(&status).map_err(|e| RunError::RunDir(e.to_string()))?;
    dir.write("status.json", &text).map_err(io)?;
    Ok(())
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
