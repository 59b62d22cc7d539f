//! The run's progress on stderr: the terminal display, or lines ([`Progress`]), fed from the
//! run's events.

use std::collections::HashSet;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;

use super::print_stdout;
use crate::cli::progress::{Progress, ProgressMode, fmt_wait};
use crate::config::TeamConfig;
use crate::runtime::{AgentState, RunEvent, Runtime};

/// What the display task needs to know about the run.
pub(super) struct ShowOptions {
    pub(super) mode: ProgressMode,
    pub(super) question: String,
    /// Agent ids in config order.
    pub(super) agents: Vec<String>,
    /// Agents whose calls go through the quota supervisor.
    pub(super) supervised: HashSet<String>,
    pub(super) automation: bool,
}

/// The agents whose calls ask the quota supervisor for permits (rate limiting on, and not
/// turned off for the agent): their quota waits show as their `waiting for quota` state.
pub(super) fn supervised_agents(team: &TeamConfig, rate_limit: bool) -> HashSet<String> {
    team.agents
        .iter()
        .filter(|a| rate_limit && a.backend.enable_rate_limit != Some(false))
        .map(|a| a.id.clone())
        .collect()
}

/// Draws run events until the run finishes (or the stream closes): on the terminal display
/// when `mode` is live and the terminal takes it, else as lines.
pub(super) async fn show_progress(
    mut events: tokio::sync::broadcast::Receiver<RunEvent>,
    runtime: Arc<Runtime>,
    opts: ShowOptions,
) {
    let mut tui = if opts.mode == ProgressMode::Live {
        match crate::views::display::Tui::start(&opts.question, &opts.agents) {
            Ok(tui) => Some(tui),
            Err(e) => {
                // The in-place lines need nothing more than the cursor moves.
                eprintln!("note: terminal display unavailable ({e}); showing progress lines");
                None
            }
        }
    } else {
        None
    };
    let mut progress = Progress::new(std::io::stderr(), opts.mode, &opts.agents);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    // The quota strip's figures: the supervisor's snapshot, twice a second.
    let mut poll = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if let RunEvent::RunStarted { run_dir: Some(dir), .. } = &event {
                        if opts.automation {
                            // MassGen prints LOG_DIR first, so scripts can watch the run.
                            let _ = print_stdout(&format!("LOG_DIR: {}\n", dir.display()));
                        }
                    }
                    // Run metrics (turns, rounds, run duration) from the one stream the
                    // display reads anyway, so the last event is never lost to a shutdown.
                    crate::telemetry::record_run_event(&event);
                    let finished = matches!(event, RunEvent::RunFinished { .. });
                    match &mut tui {
                        Some(tui) => tui.event(&event),
                        None => apply(&mut progress, &event, &opts.supervised),
                    }
                    if finished {
                        break;
                    }
                }
                Err(RecvError::Lagged(n)) => match &mut tui {
                    Some(tui) => tui.note(format!("({n} events not shown)")),
                    None => progress.note(&format!("({n} events not shown)")),
                },
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => match &mut tui {
                Some(tui) => tui.tick(),
                None => progress.tick(),
            },
            _ = poll.tick(), if tui.is_some() => {
                // A busy supervisor delays the strip, never the events.
                let snapshot = tokio::time::timeout(Duration::from_millis(200), runtime.quota_status());
                if let (Some(tui), Ok(Some(snapshot))) = (&mut tui, snapshot.await) {
                    tui.snapshot(&snapshot);
                }
            }
        }
    }
    match tui {
        Some(tui) => tui.finish(),
        None => progress.finish(),
    }
}

/// Translates one run event into the display.
pub(super) fn apply<W: Write>(p: &mut Progress<W>, event: &RunEvent, supervised: &HashSet<String>) {
    match event {
        RunEvent::RunStarted {
            run_dir: Some(dir), ..
        } => {
            p.note(&format!("run directory {}", dir.display()));
        }
        RunEvent::AgentState { agent, state } => {
            let (label, detail, eta) = describe_state(state);
            p.set_state(agent, label, &detail, eta);
        }
        RunEvent::TurnRetry { .. } => {
            if let Some(note) = crate::views::event_note(event) {
                p.note(&format!("{note}; trying again"));
            }
        }
        RunEvent::ModelSelected {
            agent,
            pool,
            provider,
            model,
        } => {
            p.note(&format!("{agent}: pool {pool} chose {provider}/{model}"));
        }
        RunEvent::ModelRotated { .. } | RunEvent::ActorFailed { .. } => {
            if let Some(note) = crate::views::event_note(event) {
                p.note(&note);
            }
        }
        // A supervised agent's pool waits in the supervisor's queue: the supervisor's `waiting`
        // event already showed it as the agent's `waiting for quota` state (with the scope, the
        // blocking limit and the ETA), and the pool's event is that same wait seen from the pool
        // (it is sent in answer to it). Printing both showed every pooled wait twice. A pool
        // without a supervisor rests its models itself: that wait is shown only here.
        RunEvent::NoModelAvailable { agent, .. } if supervised.contains(agent) => {}
        RunEvent::NoModelAvailable {
            agent,
            pool,
            eta_ms,
        } => {
            let when = eta_ms.map_or_else(
                || "none is capable, or no time is known".to_owned(),
                |ms| format!("waiting {}", fmt_wait(Duration::from_millis(ms))),
            );
            p.note(&format!(
                "{agent}: no model of pool {pool} available; {when}"
            ));
        }
        RunEvent::WinnerSelected { agent, votes, .. } => {
            p.note(&format!("winner: {agent} with {votes} vote(s)"));
        }
        RunEvent::RunFinished {
            status,
            duration_ms,
            ..
        } => {
            p.note(&format!(
                "run {status} in {}",
                crate::cli::progress::fmt_elapsed(Duration::from_millis(*duration_ms))
            ));
        }
        _ => {}
    }
}

pub(super) fn describe_state(state: &AgentState) -> (&'static str, String, Option<Duration>) {
    let (label, what) = crate::views::state_words(state);
    match state {
        AgentState::WaitingQuota { eta_ms, .. } => {
            let eta = Duration::from_millis(*eta_ms);
            (label, format!("{what}, ETA {}", fmt_wait(eta)), Some(eta))
        }
        _ => (label, what, None),
    }
}
