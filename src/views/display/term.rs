//! The real terminal: the display draws on stderr's alternate screen with the cursor hidden,
//! and the terminal is put back however the process ends: when the display is dropped (a
//! normal end or an error), from a panic hook, and before a second Ctrl-C quits at once.
//!
//! The terminal stays in cooked mode (no raw mode: the display reads no keys), so Ctrl-C keeps
//! reaching the process as SIGINT and the run's own interrupt handling applies. Only its echo
//! is off while the display is up: a key typed then (Enter above all) would otherwise be
//! written over the display and scroll it. What was typed meanwhile is discarded when the
//! terminal is given back, rather than run unseen by the shell.

use std::io::{Stderr, Write};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use crossterm::{cursor, execute, terminal};
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;

use super::render::render;
use super::state::DisplayState;

/// Whether the alternate screen is up (and the cursor hidden).
static ACTIVE: AtomicBool = AtomicBool::new(false);
/// Whether Ctrl-C was pressed while the display was up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// The terminal display, up while this value lives.
pub struct Screen {
    terminal: Terminal<CrosstermBackend<Stderr>>,
}

impl std::fmt::Debug for Screen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Screen").finish_non_exhaustive()
    }
}

impl Screen {
    /// Switches stderr to the alternate screen and hides the cursor. On failure the terminal
    /// is left as it was.
    pub fn start() -> std::io::Result<Screen> {
        install_panic_hook();
        let mut err = std::io::stderr();
        ACTIVE.store(true, Ordering::SeqCst);
        echo::off();
        if let Err(e) = execute!(err, terminal::EnterAlternateScreen, cursor::Hide) {
            restore();
            return Err(e);
        }
        match Terminal::new(CrosstermBackend::new(std::io::stderr())) {
            Ok(terminal) => Ok(Screen { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }

    /// Draws `state`; a terminal that refuses output is not an error worth stopping a run.
    pub fn draw(&mut self, state: &mut DisplayState) {
        if !ACTIVE.load(Ordering::SeqCst) {
            // Given back already (a panic elsewhere, a second Ctrl-C): never draw over the
            // main screen.
            return;
        }
        state.interrupted |= INTERRUPTED.load(Ordering::SeqCst);
        let _ = self.terminal.draw(|frame| render(frame, state));
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the terminal back (main screen, cursor shown, echo as it was) if the display had
/// changed it. Safe to call any number of times, from any thread.
pub fn restore() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        let mut err = std::io::stderr();
        let _ = execute!(err, cursor::Show, terminal::LeaveAlternateScreen);
        let _ = err.flush();
        echo::restore();
    }
}

/// The terminal's echo, off while the display is up.
#[cfg(unix)]
mod echo {
    use std::sync::Mutex;

    use rustix::termios::{self, LocalModes, OptionalActions, QueueSelector, Termios};

    /// The settings found when the display started, put back when it ends.
    static SAVED: Mutex<Option<Termios>> = Mutex::new(None);

    fn saved() -> std::sync::MutexGuard<'static, Option<Termios>> {
        // Nothing panics while holding it; a poisoned lock still holds the settings.
        SAVED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Turns echo off on stderr's terminal (the same terminal the keys come from).
    pub(super) fn off() {
        let err = std::io::stderr();
        let Ok(found) = termios::tcgetattr(&err) else {
            return;
        };
        let mut quiet = found.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        if termios::tcsetattr(&err, OptionalActions::Now, &quiet).is_ok() {
            *saved() = Some(found);
        }
    }

    /// Discards what was typed while the display was up and puts the settings back.
    pub(super) fn restore() {
        if let Some(found) = saved().take() {
            let err = std::io::stderr();
            let _ = termios::tcflush(&err, QueueSelector::IFlush);
            let _ = termios::tcsetattr(&err, OptionalActions::Now, &found);
        }
    }
}

#[cfg(not(unix))]
mod echo {
    pub(super) fn off() {}
    pub(super) fn restore() {}
}

/// Notes a Ctrl-C for the display; returns whether the display is up (then it shows the
/// interruption itself instead of a line printed over it).
pub fn interrupt() -> bool {
    INTERRUPTED.store(true, Ordering::SeqCst);
    ACTIVE.load(Ordering::SeqCst)
}

/// A panic restores the terminal first, so its message lands on the main screen, then runs the
/// hook that was in place before.
pub(super) fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Marks the display as up (or not) without touching the terminal: for tests of the restoring
/// paths.
#[cfg(test)]
pub(super) fn set_active(active: bool) {
    ACTIVE.store(active, Ordering::SeqCst);
}

/// Whether the display holds the terminal now.
#[cfg(test)]
pub(super) fn is_active() -> bool {
    ACTIVE.load(Ordering::SeqCst)
}
