//! The runtime's own actor threads: a run on them from a plain thread, and their end when the
//! runtime goes away.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;
use crate::config::{AgentConfig, SimulatedSettings};

#[test]
fn dropping_a_runtime_after_a_run_stops_its_threads() {
    let team = TeamConfig::new(vec![
        AgentConfig::simulated("a", SimulatedSettings::default()),
        AgentConfig::simulated("b", SimulatedSettings::default()),
    ]);
    let runtime = Runtime::new(team, RuntimeOptions::default()).unwrap();
    assert!(runtime.actor_system().is_owned());
    let workers: Vec<_> = (0..runtime.actor_system().workers())
        .map(|_| runtime.actor_system().worker())
        .collect();
    let quota = runtime.actor_system().quota_arbiter().clone();
    let app = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = app.block_on(runtime.run("Still there?")).unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert!(
        workers.iter().all(|w| w.spawn_fn(|| {})),
        "alive during use"
    );

    // Dropped on another thread so a hang fails the test instead of blocking it.
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(runtime);
        let _ = done.send(());
    });
    dropped
        .recv_timeout(Duration::from_secs(30))
        .expect("dropping the runtime returns");
    for arbiter in workers.iter().chain([&quota]) {
        assert!(!arbiter.spawn_fn(|| {}), "every arbiter stopped");
    }
}

#[test]
fn the_runtime_and_its_run_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Runtime>();
    let team = TeamConfig::new(vec![AgentConfig::simulated(
        "a",
        SimulatedSettings::default(),
    )]);
    let runtime = Runtime::new(team, RuntimeOptions::default()).unwrap();
    let run = runtime.run("Send?");
    assert_send(&run);
    let until = runtime.run_until("Send?", async {});
    assert_send(&until);
}

#[test]
fn a_runtime_with_a_state_file_records_every_call_of_its_runs_in_the_usage_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut team = TeamConfig::new(vec![
        AgentConfig::simulated("a", SimulatedSettings::default()),
        AgentConfig::simulated("b", SimulatedSettings::default()),
    ]);
    team.rate_limit.state = Some(crate::store::StoreSpec::Sqlite(path.clone()));
    let runtime = Runtime::new(team, RuntimeOptions::default()).unwrap();
    assert!(runtime.usage_ledger().is_some());
    let app = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let out = app.block_on(runtime.run("Counted?")).unwrap();
    drop(runtime);
    let mut store = crate::store::SqliteUsageStore::open(&path).unwrap();
    let records = crate::store::UsageStore::since(&mut store, 0).unwrap();
    // What the agents themselves counted: one record per call, the same tokens.
    for stats in &out.agents {
        let mine: Vec<_> = records.iter().filter(|r| r.agent == stats.id).collect();
        assert_eq!(mine.len(), stats.calls as usize, "{}", stats.id);
        let input: u64 = mine.iter().map(|r| r.input_tokens).sum();
        let output: u64 = mine.iter().map(|r| r.output_tokens).sum();
        assert_eq!((input, output), (stats.input_tokens, stats.output_tokens));
        assert!(mine.iter().all(|r| r.outcome == "ok"
            && r.provider == "simulated"
            && r.cost_usd == Some(0.0)
            && r.key.is_empty()));
    }
    assert!(records.len() >= 2);
    let runs: std::collections::BTreeSet<&str> =
        records.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(runs.len(), 1);
}

#[test]
fn a_library_runtime_without_a_state_keeps_no_usage() {
    let team = TeamConfig::new(vec![AgentConfig::simulated(
        "a",
        SimulatedSettings::default(),
    )]);
    let runtime = Runtime::new(team, RuntimeOptions::default()).unwrap();
    assert!(runtime.usage_ledger().is_none());
}
