//! What the CLI prints when a run ends with an answer: the answer (or MassGen's automation
//! lines), notes, the `--output-file`, and the exit code.

use super::args::RunArgs;
use super::automation::{AutomationReport, render};
use super::run::{EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, print_stdout};
use crate::runtime::RunOutcome;

/// An interrupted run that had answers: where they are, exit code 130. The answer is not
/// printed as if the run had finished; `final_answer.md` in the run directory holds it.
pub(super) fn report_interrupted(args: &RunArgs, question: &str, outcome: &RunOutcome) -> u8 {
    if args.automation {
        let _ = print_stdout(&automation_text(question, outcome));
    }
    let winner = outcome.winner.as_deref().unwrap_or("no agent");
    match &outcome.answer_file {
        Some(file) => eprintln!(
            "interrupted: the best answer so far ({winner}'s) is in {}",
            file.display()
        ),
        None => eprintln!("interrupted: the best answer so far was {winner}'s"),
    }
    EXIT_INTERRUPTED
}

/// MassGen's `--automation` lines for a run that produced an answer.
fn automation_text(question: &str, outcome: &RunOutcome) -> String {
    render(&AutomationReport {
        // LOG_DIR: was printed when the run started, as MassGen does.
        log_dir: None,
        status: outcome.status.as_str(),
        question,
        winner: outcome.winner.as_deref(),
        answer_file: outcome.answer_file.as_deref(),
        duration: outcome.duration,
        answer: &outcome.final_answer,
    })
}

pub(super) fn report_success(args: &RunArgs, question: &str, outcome: &RunOutcome) -> u8 {
    for note in &outcome.notes {
        eprintln!("note: {note}");
    }
    let mut code = EXIT_OK;
    if let Some(file) = &args.output_file {
        let mut text = outcome.final_answer.trim_end().to_owned();
        text.push('\n');
        if let Err(e) = std::fs::write(file, text) {
            // The answer still goes to stdout below (and is in the run directory): nothing is
            // lost, but the exit code says the file is missing.
            eprintln!("error: cannot write --output-file {}: {e}", file.display());
            code = EXIT_INTERNAL;
        }
    }
    let text = if args.automation {
        automation_text(question, outcome)
    } else {
        format!("{}\n", outcome.final_answer.trim_end())
    };
    match print_stdout(&text) {
        Ok(()) => code,
        Err(EXIT_OK) => code,
        Err(failed) => failed,
    }
}
