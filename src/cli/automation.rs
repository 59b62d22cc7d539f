//! `--automation` output: MassGen's machine-readable lines, so scripts written for
//! `massgen --automation` read massgen-rs the same way.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// The facts of a finished run that `--automation` prints.
#[derive(Debug, Clone, Default)]
pub struct AutomationReport<'a> {
    /// The run directory, if one was written.
    pub log_dir: Option<&'a Path>,
    /// `completed`, `timeout`, `failed`...
    pub status: &'a str,
    /// The question.
    pub question: &'a str,
    /// The winning agent's id.
    pub winner: Option<&'a str>,
    /// Where the final answer was written.
    pub answer_file: Option<&'a Path>,
    /// Wall time of the run.
    pub duration: Duration,
    /// The final answer (empty when there is none).
    pub answer: &'a str,
}

/// Renders the report as `KEY: value` lines (the answer last, as MassGen prints it).
pub fn render(report: &AutomationReport<'_>) -> String {
    let mut out = String::new();
    if let Some(dir) = report.log_dir {
        let _ = writeln!(out, "LOG_DIR: {}", dir.display());
    }
    let _ = writeln!(out, "STATUS: {}", report.status);
    let _ = writeln!(out, "QUESTION: {}", one_line(report.question));
    let _ = writeln!(out, "WINNER: {}", report.winner.unwrap_or("none"));
    if let Some(file) = report.answer_file {
        let _ = writeln!(out, "ANSWER_FILE: {}", file.display());
    }
    let _ = writeln!(out, "DURATION: {:.1}s", report.duration.as_secs_f64());
    let _ = writeln!(out, "ANSWER: {}", report.answer);
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_massgen_keys_in_order() {
        let report = AutomationReport {
            log_dir: Some(Path::new("runs/x")),
            status: "completed",
            question: "What is\n2+2?",
            winner: Some("agent_b"),
            answer_file: Some(Path::new("runs/x/final_answer.md")),
            duration: Duration::from_millis(1234),
            answer: "4",
        };
        let text = render(&report);
        let keys: Vec<&str> = text.lines().filter_map(|l| l.split(':').next()).collect();
        assert_eq!(
            keys,
            [
                "LOG_DIR",
                "STATUS",
                "QUESTION",
                "WINNER",
                "ANSWER_FILE",
                "DURATION",
                "ANSWER"
            ]
        );
        assert!(text.contains("QUESTION: What is 2+2?\n"), "{text}");
        assert!(text.contains("DURATION: 1.2s\n"), "{text}");
        assert!(text.ends_with("ANSWER: 4\n"), "{text}");
    }

    #[test]
    fn missing_winner_says_none() {
        let report = AutomationReport {
            status: "failed",
            question: "q",
            ..Default::default()
        };
        assert!(render(&report).contains("WINNER: none\n"));
    }
}
