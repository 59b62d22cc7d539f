//! Runs with rate limiting on, under paused time.

use super::*;

/// Wraps a provider and records when each call reached it.
#[derive(Debug)]
struct Recording {
    inner: std::sync::Arc<dyn massgen::provider::Provider>,
    start: tokio::time::Instant,
    calls: std::sync::Arc<std::sync::Mutex<Vec<(String, Duration)>>>,
    who: String,
}

impl massgen::provider::Provider for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    fn chat<'a>(
        &'a self,
        request: &'a massgen::provider::ChatRequest,
        key: Option<&'a massgen::keys::ApiKey>,
        sink: Option<&'a massgen::provider::StreamSink>,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<massgen::provider::ChatResponse, massgen::provider::ProviderError>,
    > {
        self.calls
            .lock()
            .unwrap()
            .push((self.who.clone(), self.start.elapsed()));
        self.inner.chat(request, key, sink)
    }
}

type CallLog = std::sync::Arc<std::sync::Mutex<Vec<(String, Duration)>>>;

fn rpm_limits(rpm: u64) -> std::sync::Arc<dyn massgen::LimitsSource> {
    let limits = massgen::config::ModelLimits {
        matched: "simulated/sim-1".to_owned(),
        limits: vec![massgen::quota::Limit::rpm(
            std::num::NonZeroU64::new(rpm).unwrap(),
        )],
        ..massgen::config::ModelLimits::default()
    };
    let mut map = std::collections::HashMap::new();
    map.insert(("simulated".to_owned(), "sim-1".to_owned()), limits);
    std::sync::Arc::new(map)
}

fn recorded(mut rt: Runtime, ids: &[&str], log: &CallLog) -> Runtime {
    let team_ids: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    for id in ids {
        let inner = std::sync::Arc::new(massgen::provider::SimulatedProvider::new(
            *id,
            SimulatedSettings::default(),
            &team_ids,
        ));
        let rec = Recording {
            inner,
            start: tokio::time::Instant::now(),
            calls: log.clone(),
            who: (*id).to_owned(),
        };
        rt = rt.with_provider(id, std::sync::Arc::new(rec)).unwrap();
    }
    rt
}

fn quota_options(rpm: u64) -> RuntimeOptions {
    RuntimeOptions {
        rate_limit: true,
        limits: Some(rpm_limits(rpm)),
        quota: Some(
            massgen::supervisor::QuotaHandle::start_local(
                massgen::supervisor::SupervisorSettings::default(),
            )
            .unwrap(),
        ),
        ..local()
    }
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn two_rpm_makes_the_run_wait_and_calls_respect_the_limit() {
    let wall = std::time::Instant::now();
    let mut t = team(vec![
        agent("a", SimulatedSettings::default()),
        agent("b", SimulatedSettings::default()),
    ]);
    t.rate_limit.acquire_timeout = Some(Duration::from_secs(600));
    let log = CallLog::default();
    let rt = recorded(
        Runtime::new(t, quota_options(2)).unwrap(),
        &["a", "b"],
        &log,
    );
    let mut rx = rt.subscribe();
    let out = rt.run("What limits a free tier?").await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    let calls = log.lock().unwrap().clone();
    // Two answers, two votes and the presentation: five calls, never more than two in any
    // trailing minute.
    assert_eq!(calls.len(), 5, "{calls:?}");
    for w in calls.windows(3) {
        assert!(w[2].1 - w[0].1 >= Duration::from_secs(60), "{calls:?}");
    }
    assert!(out.duration >= Duration::from_secs(120));
    assert!(
        out.duration < Duration::from_secs(125),
        "{:?}",
        out.duration
    );
    let waited: Duration = out.agents.iter().map(|a| a.quota_wait).sum();
    assert!(waited >= Duration::from_secs(60));
    let events = drain(&mut rx);
    assert!(events.iter().any(|e| matches!(
        e,
        RunEvent::AgentState { state: massgen::AgentState::WaitingQuota { scope, .. }, .. }
            if scope == "simulated/sim-1"
    )));
    assert!(events.iter().any(|e| matches!(e, RunEvent::Quota { .. })));
    let snapshot = rt.quota_status().await.unwrap();
    assert_eq!(snapshot.scopes.len(), 1);
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "paused time keeps it fast"
    );
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn quota_deadline_that_stops_every_agent_exits_4() {
    let mut t = team(vec![
        agent("a", SimulatedSettings::default()),
        agent("b", SimulatedSettings::default()),
    ]);
    t.rate_limit.acquire_timeout = Some(Duration::from_secs(10));
    let tmp = tempfile::tempdir().unwrap();
    let opts = RuntimeOptions {
        run_dir_root: Some(tmp.path().to_path_buf()),
        ..quota_options(1)
    };
    let rt = Runtime::new(t, opts).unwrap();
    let err = rt.run("Too busy?").await.unwrap_err();
    assert!(matches!(err, RunError::QuotaDeadline { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 4);
    assert!(err.to_string().contains("simulated/sim-1"), "{err}");
    // The failed run still leaves its status, its events and the one answer that was written.
    let dir = err.run_dir().unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
    assert_eq!(status["status"], "failed");
    assert_eq!(status["exit_code"], 4);
    assert_eq!(status["agents"].as_array().unwrap().len(), 2);
    assert_eq!(std::fs::read_dir(dir.join("answers")).unwrap().count(), 1);
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let quota_kinds: Vec<String> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "quota")
        .map(|v| v["quota"]["event"].as_str().unwrap().to_owned())
        .collect();
    // The next call fits only after its 10 s deadline: it is refused at once, without a wait.
    for kind in ["granted", "denied"] {
        assert!(quota_kinds.iter().any(|k| k == kind), "{quota_kinds:?}");
    }
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_wait_inside_the_run_is_not_cut_short_by_default() {
    // 1 request per minute and four agents: the fourth agent's first call is served at 180 s,
    // having waited three minutes in the queue. With no acquire_timeout_seconds a call may wait
    // as long as the run has left, and nobody is retired.
    let ids = ["a", "b", "c", "d"];
    let t = team(
        ids.iter()
            .map(|id| agent(id, SimulatedSettings::default()))
            .collect(),
    );
    assert_eq!(t.rate_limit.acquire_timeout, None);
    let log = CallLog::default();
    let rt = recorded(
        Runtime::new(t.clone(), quota_options(1)).unwrap(),
        &ids,
        &log,
    );
    let out = rt.run("How long may a call wait?").await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert!(
        out.notes.iter().all(|n| !n.contains("retired")),
        "{:?}",
        out.notes
    );
    let calls = log.lock().unwrap().clone();
    let last = calls.last().unwrap().1;
    assert!(last >= Duration::from_secs(180), "{calls:?}");
    for w in calls.windows(2) {
        assert!(w[1].1 - w[0].1 >= Duration::from_secs(60), "{calls:?}");
    }
    let longest = out.agents.iter().map(|a| a.quota_wait).max().unwrap();
    assert!(longest > Duration::from_secs(120), "{:?}", out.agents);

    // The same run with the old fixed 120 s deadline loses an agent to it.
    let mut fixed = t;
    fixed.rate_limit.acquire_timeout = Some(Duration::from_secs(120));
    let log = CallLog::default();
    let rt = recorded(Runtime::new(fixed, quota_options(1)).unwrap(), &ids, &log);
    let out = rt.run("How long may a call wait?").await.unwrap();
    assert!(
        out.notes.iter().any(|n| n.contains("retired")),
        "{:?}",
        out.notes
    );
}
