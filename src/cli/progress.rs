//! Live progress on stderr: one redrawn line per agent on a terminal, plain appended lines
//! otherwise. The renderer knows agents and states, not the runtime's event types; `cli::run`
//! translates events into [`Progress`] calls.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

pub use crate::views::{fmt_elapsed, fmt_wait};

/// How progress is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Stderr is a terminal and `ui.display_type` asks for a rich one: the CLI shows its
    /// terminal display; [`Progress`] itself (the fallback when the terminal cannot be taken
    /// over) redraws a block of per-agent lines in place.
    Live,
    /// Append one line per change (stderr is a file or pipe, or `ui.display_type: simple`).
    Plain,
    /// Nothing (`-q` or `--automation`).
    Off,
}

#[derive(Debug, Clone)]
struct AgentLine {
    state: String,
    detail: String,
    /// For waits: when the wait is expected to end, so the ETA counts down between events.
    until: Option<Instant>,
}

/// The progress display of one run.
#[derive(Debug)]
pub struct Progress<W: Write> {
    out: W,
    mode: ProgressMode,
    started: Instant,
    order: Vec<String>,
    agents: BTreeMap<String, AgentLine>,
    drawn_lines: usize,
    footer: String,
}

impl<W: Write> Progress<W> {
    /// A display for `agents` (in config order) writing to `out`.
    pub fn new(out: W, mode: ProgressMode, agents: &[String]) -> Self {
        let agents_map = agents
            .iter()
            .map(|a| {
                (
                    a.clone(),
                    AgentLine {
                        state: "starting".into(),
                        detail: String::new(),
                        until: None,
                    },
                )
            })
            .collect();
        Self {
            out,
            mode,
            started: Instant::now(),
            order: agents.to_vec(),
            agents: agents_map,
            drawn_lines: 0,
            footer: String::new(),
        }
    }

    /// Records an agent's new state; `eta` counts down on the live display.
    pub fn set_state(&mut self, agent: &str, state: &str, detail: &str, eta: Option<Duration>) {
        let line = AgentLine {
            state: state.to_owned(),
            detail: detail.to_owned(),
            until: eta.map(|d| crate::quota::time::instant_after(Instant::now(), d)),
        };
        if !self.agents.contains_key(agent) {
            self.order.push(agent.to_owned());
        }
        let changed = self
            .agents
            .get(agent)
            .is_none_or(|old| old.state != line.state || old.detail != line.detail);
        self.agents.insert(agent.to_owned(), line);
        match self.mode {
            ProgressMode::Plain if changed => {
                let text = self.agent_text(agent);
                let elapsed = fmt_elapsed(self.started.elapsed());
                let _ = writeln!(self.out, "[{elapsed}] {text}");
            }
            ProgressMode::Live => self.redraw(),
            _ => {}
        }
    }

    /// A line about the whole run (a winner, a timeout, a note).
    pub fn note(&mut self, text: &str) {
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Plain => {
                let elapsed = fmt_elapsed(self.started.elapsed());
                let _ = writeln!(self.out, "[{elapsed}] {text}");
            }
            ProgressMode::Live => {
                self.footer = text.to_owned();
                self.redraw();
            }
        }
    }

    /// Redraws the live block (call on a timer so ETAs and elapsed time move).
    pub fn tick(&mut self) {
        if self.mode == ProgressMode::Live {
            self.redraw();
        }
    }

    /// Leaves the final state on screen.
    pub fn finish(&mut self) {
        if self.mode == ProgressMode::Live {
            self.redraw();
            let _ = self.out.flush();
        }
    }

    fn agent_text(&self, agent: &str) -> String {
        let Some(line) = self.agents.get(agent) else {
            return agent.to_owned();
        };
        let mut text = format!("{agent}: {}", line.state);
        if !line.detail.is_empty() {
            text.push_str(" — ");
            text.push_str(&line.detail);
        }
        if let (Some(until), ProgressMode::Live) = (line.until, self.mode) {
            let left = until.saturating_duration_since(Instant::now());
            text.push_str(&format!(" (about {} left)", fmt_wait(left)));
        }
        text
    }

    fn redraw(&mut self) {
        let mut buf = String::new();
        if self.drawn_lines > 0 {
            // Move up over the previous block and clear it line by line.
            buf.push_str(&format!("\x1b[{}A", self.drawn_lines));
        }
        let mut lines = 0;
        let width = self.order.iter().map(|a| a.len()).max().unwrap_or(0);
        for agent in &self.order {
            let text = self.agent_text(agent);
            let pad = width.saturating_sub(agent.len());
            let text = text.replacen(": ", &format!(":{} ", " ".repeat(pad)), 1);
            buf.push_str("\x1b[2K  ");
            buf.push_str(&text);
            buf.push('\n');
            lines += 1;
        }
        buf.push_str("\x1b[2K");
        buf.push_str(&format!(
            "  elapsed {}",
            fmt_elapsed(self.started.elapsed())
        ));
        if !self.footer.is_empty() {
            buf.push_str(" · ");
            buf.push_str(&self.footer);
        }
        buf.push('\n');
        lines += 1;
        self.drawn_lines = lines;
        let _ = self.out.write_all(buf.as_bytes());
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mode_prints_one_line_per_change() {
        let mut out = Vec::new();
        {
            let mut p = Progress::new(&mut out, ProgressMode::Plain, &["a".into(), "b".into()]);
            p.set_state("a", "thinking", "", None);
            p.set_state("a", "thinking", "", None); // unchanged: no new line
            p.set_state("b", "waiting for quota", "gemini/gemini-2.5-pro rpm", None);
            p.note("winner: a");
        }
        let text = String::from_utf8_lossy(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("a: thinking"), "{text}");
        assert!(
            lines[1].contains("b: waiting for quota — gemini/gemini-2.5-pro rpm"),
            "{text}"
        );
        assert!(lines[2].ends_with("winner: a"), "{text}");
    }

    #[test]
    fn live_mode_redraws_in_place() {
        let mut out = Vec::new();
        {
            let mut p = Progress::new(&mut out, ProgressMode::Live, &["a".into()]);
            p.set_state("a", "thinking", "", None);
            p.set_state("a", "answered", "agent1.1", None);
        }
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.contains("\x1b[2A"),
            "second draw moves up over the first: {text:?}"
        );
        assert!(text.contains("a: answered — agent1.1"), "{text:?}");
    }

    #[test]
    fn off_mode_is_silent() {
        let mut out = Vec::new();
        {
            let mut p = Progress::new(&mut out, ProgressMode::Off, &["a".into()]);
            p.set_state("a", "thinking", "", None);
            p.note("x");
            p.finish();
        }
        assert!(out.is_empty());
    }
}
