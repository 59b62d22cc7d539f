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
