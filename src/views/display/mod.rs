//! The terminal display (`ui.display_type: rich_terminal` or `textual_terminal` when stderr is
//! a terminal): one panel per agent, a quota strip per scope with a gauge per limit, the
//! blocking limit and its ETA, cooldowns, and the winner. [`DisplayState`] is the data,
//! [`render`] draws it, [`Tui`] keeps a real terminal up to date and puts it back at the end.

mod render;
mod state;
mod term;

use std::time::{Duration, Instant};

pub use render::render;
pub use state::{AgentPanel, DisplayState, LimitGauge, ScopeStrip};
pub(crate) use term::{interrupt, restore};

use crate::runtime::RunEvent;
use crate::supervisor::QuotaSnapshot;

/// Events closer together than this are drawn together (a burst of events is one frame).
const MIN_FRAME_GAP: Duration = Duration::from_millis(40);

/// The display of one run on the terminal.
#[derive(Debug)]
pub(crate) struct Tui {
    screen: term::Screen,
    state: DisplayState,
    drawn: Instant,
}

impl Tui {
    /// Takes over stderr's terminal for a run of `agents` on `question`.
    pub(crate) fn start(question: &str, agents: &[String]) -> std::io::Result<Tui> {
        let mut tui = Tui {
            screen: term::Screen::start()?,
            state: DisplayState::new(question, agents, Instant::now()),
            drawn: Instant::now(),
        };
        tui.screen.draw(&mut tui.state);
        Ok(tui)
    }

    /// Shows one run event (at once, unless a frame was drawn a moment ago: then with the
    /// next event or tick).
    pub(crate) fn event(&mut self, event: &RunEvent) {
        let now = Instant::now();
        self.state.apply(event, now);
        if now.saturating_duration_since(self.drawn) >= MIN_FRAME_GAP
            || matches!(event, RunEvent::RunFinished { .. })
        {
            self.draw(now);
        }
    }

    /// Shows the supervisor's latest view of the scopes.
    pub(crate) fn snapshot(&mut self, snapshot: &QuotaSnapshot) {
        let now = Instant::now();
        self.state.apply_snapshot(snapshot, now);
        self.draw(now);
    }

    /// Redraws with the clock moved on (ETAs and cooldowns count down).
    pub(crate) fn tick(&mut self) {
        let now = Instant::now();
        self.state.tick(now);
        self.draw(now);
    }

    fn draw(&mut self, now: Instant) {
        self.screen.draw(&mut self.state);
        self.drawn = now;
    }

    /// A note about the run (events lost to a slow display).
    pub(crate) fn note(&mut self, text: String) {
        self.state.note(text);
    }

    /// Puts the terminal back and leaves the end of the run on the main screen: each agent's
    /// last state, the winner and how the run ended (the answer itself follows on stdout).
    pub(crate) fn finish(self) {
        let Tui { screen, state, .. } = self;
        drop(screen);
        eprint!("{}", summary(&state));
    }
}

/// The lines left on the main screen when the display closes.
pub fn summary(state: &DisplayState) -> String {
    let width = state.agents.iter().map(|a| a.id.len()).max().unwrap_or(0);
    let mut out = String::new();
    for a in &state.agents {
        let mut line = format!("  {:<width$}  {}", a.id, a.state);
        if !a.detail.is_empty() {
            line.push_str(" — ");
            line.push_str(&a.detail);
        }
        line.push_str(&format!(
            " · {} answer(s), {} vote(s) received",
            a.answers,
            state.votes_for(&a.id)
        ));
        out.push_str(&line);
        out.push('\n');
    }
    for note in &state.notes {
        out.push_str(&format!("  {note}\n"));
    }
    if let Some((winner, votes)) = &state.winner {
        out.push_str(&format!("winner: {winner} with {votes} vote(s)\n"));
    }
    if let Some((status, took)) = &state.finished {
        out.push_str(&format!("run {status} in {}\n", super::fmt_elapsed(*took)));
    }
    out
}

#[cfg(test)]
mod tests;
