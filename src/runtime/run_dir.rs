//! The run directory: `<root>/<UTC timestamp>[-N]/` with `events.jsonl` (written as events
//! happen), `answers/<agent>.<n>.md` (written the moment each answer is accepted),
//! `status.json` and `final_answer.md` (written at the end).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crate::agent::events::{EventLog, RunEvent};
use crate::agent::model_moves::ModelMoves;

/// An open run directory.
#[derive(Debug)]
pub struct RunDir {
    path: PathBuf,
    events: Mutex<BufWriter<File>>,
    /// The pool moves of the run's agents, folded as their events are recorded.
    moves: Mutex<ModelMoves>,
}

impl RunDir {
    /// Creates a fresh directory under `root` named after the current UTC time (with `-2`,
    /// `-3`... when that name is taken).
    pub fn create(root: &Path) -> io::Result<Self> {
        fs::create_dir_all(root)?;
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        let mut n = 1;
        let path = loop {
            let name = if n == 1 {
                stamp.clone()
            } else {
                format!("{stamp}-{n}")
            };
            let candidate = root.join(name);
            match fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 10_000 => n += 1,
                Err(e) => return Err(e),
            }
        };
        fs::create_dir(path.join("answers"))?;
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(path.join("events.jsonl"))?;
        Ok(Self {
            path,
            events: Mutex::new(BufWriter::new(file)),
            moves: Mutex::new(ModelMoves::new()),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `name` in the directory.
    pub fn write(&self, name: &str, contents: &str) -> io::Result<PathBuf> {
        let p = self.path.join(name);
        fs::write(&p, contents)?;
        Ok(p)
    }

    /// What the agents' pooled calls did so far (for `status.json`).
    pub fn model_moves(&self) -> ModelMoves {
        self.moves
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Flushes `events.jsonl`.
    pub fn flush(&self) -> io::Result<()> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .flush()
    }
}

/// A file-name-safe form of an agent id.
fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl EventLog for RunDir {
    fn record(&self, t: Duration, event: &RunEvent) {
        if ModelMoves::concerns(event) {
            self.moves
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(event);
        }
        let Ok(mut value) = serde_json::to_value(event) else {
            return;
        };
        if let Some(obj) = value.as_object_mut() {
            let t_ms = u64::try_from(t.as_millis()).unwrap_or(u64::MAX);
            obj.insert("t_ms".to_owned(), t_ms.into());
        }
        let mut w = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        // A failing disk must not stop the run; the final flush reports the error.
        let _ = serde_json::to_writer(&mut *w, &value);
        let _ = w.write_all(b"\n");
        if matches!(
            event,
            RunEvent::NewAnswer { .. } | RunEvent::RunFinished { .. }
        ) {
            let _ = w.flush();
        }
    }

    fn answer(&self, agent: &str, n: u32, content: &str) -> Option<PathBuf> {
        let name = format!("answers/{}.{n}.md", safe_name(agent));
        self.write(&name, content).ok()
    }
}
