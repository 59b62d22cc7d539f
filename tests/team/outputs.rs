//! The run directory.

use std::path::Path;

use super::*;

/// A runtime for `t` writing its run directories under `tmp`.
fn writing_runs(t: massgen::config::TeamConfig, tmp: &tempfile::TempDir) -> Runtime {
    let opts = RuntimeOptions {
        run_dir_root: Some(tmp.path().to_path_buf()),
        ..local()
    };
    Runtime::new(t, opts).unwrap()
}

/// The run directory's `status.json`.
fn status_of(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap()
}

/// The last line of the run directory's `events.jsonl`.
fn last_event(dir: &Path) -> serde_json::Value {
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    serde_json::from_str(events.lines().last().unwrap()).unwrap()
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn run_directory_holds_status_events_and_answers() {
    let tmp = tempfile::tempdir().unwrap();
    // b answers at 5 ms and votes at 10 ms; a answers at 20 ms, which sends b back to vote again.
    let t = team(vec![agent("a", latency(20)), agent("b", latency(5))]);
    let rt = writing_runs(t, &tmp);
    let out = rt.run("Is water wet?").await.unwrap();
    let dir = out.run_dir.clone().unwrap();
    assert!(dir.starts_with(tmp.path()));
    let status = status_of(&dir);
    assert_eq!(status["question"], "Is water wet?");
    assert_eq!(status["status"], "completed");
    assert_eq!(status["winner"], "a");
    assert_eq!(status["votes"].as_array().unwrap().len(), 2);
    assert_eq!(status["agents"][0]["calls"], 3);
    assert_eq!(status["agents"][1]["calls"], 3);
    assert!(status["agents"][1]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(status["agents"][1]["quota_wait_ms"], 0);
    let final_text = std::fs::read_to_string(out.answer_file.as_ref().unwrap()).unwrap();
    assert_eq!(final_text, out.final_answer);
    for a in &out.answers {
        let p = a.path.as_ref().unwrap();
        assert_eq!(std::fs::read_to_string(p).unwrap(), a.content);
    }
    assert!(dir.join("answers/a.1.md").exists() && dir.join("answers/b.1.md").exists());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(dir.join("events.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "run_started");
    assert_eq!(lines.last().unwrap()["event"], "run_finished");
    let t: Vec<u64> = lines.iter().map(|l| l["t_ms"].as_u64().unwrap()).collect();
    assert!(t.windows(2).all(|w| w[0] <= w[1]));
    let first_answer = lines.iter().find(|l| l["event"] == "new_answer").unwrap();
    assert_eq!(first_answer["t_ms"], 5);
    assert_eq!(first_answer["agent"], "b");
    // A second run in the same second gets its own directory.
    let again = rt.run("Is water wet?").await.unwrap();
    assert_ne!(again.run_dir, out.run_dir);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn an_interrupted_run_keeps_its_answers_status_and_last_event() {
    let tmp = tempfile::tempdir().unwrap();
    // Each call takes 1 s: both agents have answered at 1 s and are voting when the stop comes.
    let t = team(vec![agent("a", latency(1000)), agent("b", latency(1000))]);
    let rt = writing_runs(t, &tmp);
    let stop = tokio::time::sleep(Duration::from_millis(1500));
    let out = rt.run_until("Stop me?", stop).await.unwrap();
    assert_eq!(out.status, RunStatus::Interrupted);
    assert_eq!(out.answers.len(), 2);
    assert!(!out.final_answer.is_empty());
    assert!(
        out.notes.iter().any(|n| n.contains("interrupted")),
        "{:?}",
        out.notes
    );
    let dir = out.run_dir.clone().unwrap();
    let status = status_of(&dir);
    assert_eq!(status["status"], "interrupted");
    assert_eq!(
        std::fs::read_to_string(dir.join("final_answer.md")).unwrap(),
        out.final_answer
    );
    let last = last_event(&dir);
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["status"], "interrupted");
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_run_interrupted_before_any_answer_says_so_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let t = team(vec![agent("a", latency(1000)), agent("b", latency(1000))]);
    let rt = writing_runs(t, &tmp);
    let err = rt
        .run_until(
            "Stop me now?",
            tokio::time::sleep(Duration::from_millis(500)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::Interrupted { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 130);
    let dir = err.run_dir().unwrap();
    let status = status_of(dir);
    assert_eq!(status["status"], "interrupted");
    assert_eq!(status["exit_code"], 130);
    let last = last_event(dir);
    assert_eq!(last["event"], "run_finished");
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn an_interrupt_during_the_final_presentation_ends_the_run_at_once() {
    // Answers at 1 s, votes at 2 s, the presentation would take until 3 s: stop at 2.5 s.
    let t = team(vec![agent("a", latency(1000)), agent("b", latency(1000))]);
    let rt = Runtime::new(t, local()).unwrap();
    let start = tokio::time::Instant::now();
    let out = rt
        .run_until(
            "Stop the presentation?",
            tokio::time::sleep(Duration::from_millis(2500)),
        )
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(2500));
    assert_eq!(out.status, RunStatus::Interrupted);
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("during the final presentation")),
        "{:?}",
        out.notes
    );
    assert_eq!(
        Some(out.final_answer.as_str()),
        out.answers
            .iter()
            .rev()
            .find(|a| Some(&a.agent) == out.winner.as_ref())
            .map(|a| a.content.as_str())
    );
}
