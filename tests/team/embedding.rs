//! Embedding: a `Runtime` with actor threads of its own, used from plain tokio applications
//! (multi-thread and current-thread), with no actix anywhere in the caller.

use std::sync::Arc;

use super::*;

fn small_team() -> massgen::config::TeamConfig {
    team(vec![
        agent("a", SimulatedSettings::default()),
        agent("b", SimulatedSettings::default()),
        agent("c", SimulatedSettings::default()),
    ])
}

/// Runs a simulated team on an owned actor system from inside `rt`, the run spawned as a task
/// of the app (so its future must be `Send`), and checks the final answer.
fn run_on(rt: &tokio::runtime::Runtime) {
    let runtime = Arc::new(Runtime::new(small_team(), RuntimeOptions::default()).unwrap());
    assert!(runtime.actor_system().is_owned());
    let outcome = rt.block_on(async {
        let r = runtime.clone();
        tokio::spawn(async move { r.run("Embedded?").await })
            .await
            .unwrap()
    });
    let out = outcome.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(out.winner.as_deref(), Some("a"));
    assert!(out.final_answer.starts_with("Final answer."), "{out:?}");
    assert_eq!(out.votes.len(), 3);
    // A second run on the same runtime works too, then the runtime goes away with the app.
    let again = rt.block_on(runtime.run("Again?")).unwrap();
    assert_eq!(again.status, RunStatus::Completed);
}

#[test]
fn a_multi_thread_tokio_app_runs_a_team() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run_on(&rt);
}

#[test]
fn a_current_thread_tokio_app_runs_a_team() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    run_on(&rt);
}

#[test]
fn an_interrupt_from_a_plain_tokio_app_ends_the_run() {
    // The stop future lives in the app's task; the run (1 s per call on real time would be
    // slow) is interrupted as soon as it starts: no answer yet, exit code 130.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let slow = team(vec![
        agent("a", latency(60_000)),
        agent("b", latency(60_000)),
    ]);
    let runtime = Runtime::new(slow, RuntimeOptions::default()).unwrap();
    let started = std::time::Instant::now();
    let err = rt
        .block_on(runtime.run_until("Stop?", async {}))
        .unwrap_err();
    assert!(matches!(err, RunError::Interrupted { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
