//! Durations in words, shared by the terminal display and the plain progress lines.

use std::time::Duration;

use crate::runtime::{AgentState, RunEvent};

/// `75.3s` -> `1m15s`, `4.2s` -> `4.2s`.
pub fn fmt_elapsed(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

/// A wait in words a user reads at a glance: `850ms`, `12s`, `3m05s`, `2h10m`.
pub fn fmt_wait(d: Duration) -> String {
    let ms = d.as_millis();
    let s = d.as_secs();
    if ms < 1000 {
        format!("{ms}ms")
    } else if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

/// An agent's state in a word and what goes with it (the scope and limit it waits for, its
/// answer's label, whom it voted for...), as both the terminal display and the plain lines
/// show it.
pub fn state_words(state: &AgentState) -> (&'static str, String) {
    match state {
        AgentState::Thinking => ("thinking", String::new()),
        AgentState::WaitingQuota { scope, limit, .. } => (
            "waiting for quota",
            limit
                .as_deref()
                .map_or_else(|| scope.clone(), |l| format!("{scope} {l}")),
        ),
        AgentState::Answered { label } => ("answered", label.clone()),
        AgentState::Voted { for_agent } => ("voted", format!("for {for_agent}")),
        AgentState::Restarting => ("restarting", "new answers to consider".to_owned()),
        AgentState::Failed { reason } => ("failed", reason.clone()),
        AgentState::Presenting => ("presenting", "writing the final answer".to_owned()),
        AgentState::Done => ("done", String::new()),
    }
}

/// The note a run event makes in either view, for the events that are notes: a failed
/// attempt, a pool moving a call to another model, an actor that stopped.
pub fn event_note(event: &RunEvent) -> Option<String> {
    match event {
        RunEvent::TurnRetry {
            agent,
            attempt,
            reason,
        } => Some(format!("{agent}: attempt {attempt} failed ({reason})")),
        RunEvent::ModelRotated {
            agent,
            pool,
            from,
            to,
            reason,
        } => Some(format!(
            "{agent}: pool {pool} moved {from} -> {to} ({reason})"
        )),
        RunEvent::ActorFailed { actor, reason } => {
            Some(format!("{actor} stopped unexpectedly: {reason}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_formatting() {
        assert_eq!(fmt_wait(Duration::from_millis(850)), "850ms");
        assert_eq!(fmt_wait(Duration::from_secs(12)), "12s");
        assert_eq!(fmt_wait(Duration::from_secs(185)), "3m05s");
        assert_eq!(fmt_wait(Duration::from_secs(7800)), "2h10m");
        assert_eq!(fmt_elapsed(Duration::from_millis(4200)), "4.2s");
        assert_eq!(fmt_elapsed(Duration::from_secs(75)), "1m15s");
    }
}
