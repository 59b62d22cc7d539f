//! Whole runs over the simulated backend, through the library API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use massgen::config::{
    AgentConfig, BackendConfig, BackendKind, OrchestratorConfig, RateLimitSettings,
    SimulatedSettings, TeamConfig, TimeoutConfig, UiConfig,
};
use massgen::{RunError, RunEvent, RunStatus, Runtime, RuntimeOptions};
use tokio::sync::broadcast;

fn agent(id: &str, sim: SimulatedSettings) -> AgentConfig {
    AgentConfig {
        id: id.to_owned(),
        backend: BackendConfig {
            kind: BackendKind::Simulated,
            model: "sim-1".to_owned(),
            base_url: None,
            api_keys: Vec::new(),
            temperature: None,
            max_tokens: None,
            enable_rate_limit: None,
            simulated: sim,
        },
        system_message: None,
        priority: 0,
        profile: None,
    }
}

fn team(agents: Vec<AgentConfig>) -> TeamConfig {
    TeamConfig {
        source: None,
        agents,
        orchestrator: OrchestratorConfig::default(),
        timeouts: TimeoutConfig::default(),
        ui: UiConfig::default(),
        rate_limit: RateLimitSettings::default(),
    }
}

fn latency(ms: u64) -> SimulatedSettings {
    SimulatedSettings {
        latency: Duration::from_millis(ms),
        ..SimulatedSettings::default()
    }
}

fn drain(rx: &mut broadcast::Receiver<RunEvent>) -> Vec<RunEvent> {
    let mut out = Vec::new();
    while let Ok(e) = rx.try_recv() {
        out.push(e);
    }
    out
}

#[tokio::test(start_paused = true)]
async fn consensus_in_one_round() {
    let t = team(vec![
        agent("carol", latency(100)),
        agent("alice", latency(100)),
        agent("bob", latency(100)),
    ]);
    let rt = Runtime::new(t, RuntimeOptions::default()).unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("Why is the sky blue?").await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    // Every simulated agent votes for the first answer listed: agent1 = alice (sorted ids).
    assert_eq!(out.winner.as_deref(), Some("alice"));
    assert_eq!(out.answers.len(), 3);
    assert_eq!(out.votes.len(), 3);
    assert!(out.votes.iter().all(|v| v.for_agent == "alice"));
    assert!(out.final_answer.starts_with("Final answer."));
    // One answer call, one vote call each, plus the winner's presentation: 3 x 100 ms.
    assert_eq!(out.duration, Duration::from_millis(300));
    let calls: Vec<u32> = out.agents.iter().map(|a| a.calls).collect();
    assert_eq!(calls, [2, 3, 2]);
    let events = drain(&mut rx);
    assert!(!events.iter().any(|e| matches!(
        e,
        RunEvent::VotesDiscarded { .. } | RunEvent::Restart { .. }
    )));
    assert!(matches!(events.last(), Some(RunEvent::RunFinished { .. })));
}

#[tokio::test(start_paused = true)]
async fn a_new_answer_restarts_agents_that_voted() {
    let slow_reviser = SimulatedSettings {
        answer_rounds: 2,
        ..latency(100)
    };
    let t = team(vec![agent("a", latency(10)), agent("b", slow_reviser)]);
    let rt = Runtime::new(t, RuntimeOptions::default()).unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("How do tides work?").await.unwrap();
    let labels: Vec<&str> = out.answers.iter().map(|a| a.label.as_str()).collect();
    assert_eq!(labels, ["agent1.1", "agent2.1", "agent2.2"]);
    let events = drain(&mut rx);
    let restarts: Vec<(Vec<String>, String)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::Restart { agents, trigger } => Some((agents.clone(), trigger.clone())),
            _ => None,
        })
        .collect();
    // a voted at 20 ms, b's first answer at 100 ms restarts it; a votes again at 110 ms, and
    // b's revision at 200 ms restarts it once more.
    assert_eq!(
        restarts,
        vec![
            (vec!["a".to_owned()], "b".to_owned()),
            (vec!["a".to_owned()], "b".to_owned())
        ]
    );
    assert_eq!(out.votes.len(), 2);
    assert_eq!(out.status, RunStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_vote_cast_against_stale_answers_is_discarded() {
    let t = team(vec![agent("a", latency(50)), agent("b", latency(60))]);
    let rt = Runtime::new(t, RuntimeOptions::default()).unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("What is entropy?").await.unwrap();
    let events = drain(&mut rx);
    // a started voting at 50 ms seeing only its own answer; b answered at 60 ms.
    let discarded: Vec<(Vec<String>, String)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::VotesDiscarded { agents, reason } => Some((agents.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(discarded, vec![(vec!["a".to_owned()], "stale".to_owned())]);
    assert_eq!(out.votes.len(), 2);
    // Answer, discarded vote, vote, and the winner's presentation.
    assert_eq!(out.agents[0].calls, 4);
}

#[tokio::test(start_paused = true)]
async fn a_failing_agent_is_retired_and_the_run_succeeds() {
    let mut broken = latency(10);
    broken.failure.always = true;
    let t = team(vec![
        agent("a", latency(10)),
        agent("b", latency(10)),
        agent("c", broken),
    ]);
    let rt = Runtime::new(t, RuntimeOptions::default()).unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("Name a prime.").await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(out.votes.len(), 2);
    let c = &out.agents[2];
    assert_eq!(c.state, massgen::runtime::FinalAgentState::Failed);
    assert_eq!(c.calls, 4, "one call and three retries");
    assert!(out.notes.iter().any(|n| n.starts_with("c failed")));
    let events = drain(&mut rx);
    let retries = events
        .iter()
        .filter(|e| matches!(e, RunEvent::TurnRetry { agent, .. } if agent == "c"))
        .count();
    assert_eq!(retries, 3);
}

#[tokio::test(start_paused = true)]
async fn all_agents_failing_is_an_error_with_exit_code_3() {
    let mut broken = SimulatedSettings::default();
    broken.failure.always = true;
    broken.failure.kind = "no_tool_call".to_owned();
    let t = team(vec![agent("a", broken.clone()), agent("b", broken)]);
    let rt = Runtime::new(t, RuntimeOptions::default()).unwrap();
    let err = rt.run("Anything?").await.unwrap_err();
    assert_eq!(err.exit_code(), 3);
    let RunError::AllAgentsFailed { failures, .. } = &err else {
        panic!("unexpected {err:?}");
    };
    assert_eq!(failures.len(), 2);
    assert!(
        err.to_string()
            .starts_with("no agent succeeded: a: no valid turn after 3")
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_picks_the_answer_that_exists() {
    let t = team(vec![agent("a", latency(100)), agent("b", latency(60_000))]);
    let opts = RuntimeOptions {
        orchestrator_timeout: Some(Duration::from_secs(1)),
        ..RuntimeOptions::default()
    };
    let rt = Runtime::new(t, opts).unwrap();
    let out = rt.run("Quick?").await.unwrap();
    assert_eq!(out.status, RunStatus::TimedOut);
    assert_eq!(out.winner.as_deref(), Some("a"));
    assert_eq!(out.duration, Duration::from_secs(1));
    assert_eq!(out.final_answer, out.answers[0].content);
    assert!(out.notes[0].contains("timeout"));
}

#[tokio::test(start_paused = true)]
async fn timeout_without_answers_is_an_error() {
    let t = team(vec![agent("a", latency(60_000))]);
    let opts = RuntimeOptions {
        orchestrator_timeout: Some(Duration::from_secs(2)),
        ..RuntimeOptions::default()
    };
    let err = Runtime::new(t, opts)
        .unwrap()
        .run("Slow?")
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::NoAnswer { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 3);
}

#[tokio::test(start_paused = true)]
async fn fifty_agents_finish() {
    let agents = (0..50)
        .map(|i| agent(&format!("agent-{i:02}"), latency(20)))
        .collect();
    let rt = Runtime::new(team(agents), RuntimeOptions::default()).unwrap();
    let out = rt.run("Summarise the plot of Hamlet.").await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(out.answers.len(), 50);
    assert_eq!(out.votes.len(), 50);
    assert_eq!(out.winner.as_deref(), Some("agent-00"));
}

#[tokio::test(start_paused = true)]
async fn a_reply_without_a_tool_call_is_nudged() {
    let mut forgetful = latency(10);
    forgetful.failure.on_calls = vec![1];
    forgetful.failure.kind = "no_tool_call".to_owned();
    let t = team(vec![agent("a", forgetful), agent("b", latency(10))]);
    let rt = Runtime::new(t, RuntimeOptions::default()).unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("Why?").await.unwrap();
    let events = drain(&mut rx);
    let nudges: Vec<(u32, String)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::TurnRetry {
                agent,
                attempt,
                reason,
            } if agent == "a" => Some((*attempt, reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(nudges.len(), 1);
    assert_eq!(nudges[0].0, 1);
    assert!(nudges[0].1.contains("did not call a tool"));
    assert_eq!(out.answers.iter().filter(|a| a.agent == "a").count(), 1);
    assert_eq!(out.status, RunStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn run_directory_holds_status_events_and_answers() {
    let tmp = tempfile::tempdir().unwrap();
    // b answers at 5 ms and votes at 10 ms; a answers at 20 ms, which sends b back to vote again.
    let t = team(vec![agent("a", latency(20)), agent("b", latency(5))]);
    let opts = RuntimeOptions {
        run_dir_root: Some(tmp.path().to_path_buf()),
        ..RuntimeOptions::default()
    };
    let rt = Runtime::new(t, opts).unwrap();
    let out = rt.run("Is water wet?").await.unwrap();
    let dir = out.run_dir.clone().unwrap();
    assert!(dir.starts_with(tmp.path()));
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("status.json")).unwrap()).unwrap();
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
        ..RuntimeOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn two_rpm_makes_the_run_wait_and_calls_respect_the_limit() {
    let wall = std::time::Instant::now();
    let mut t = team(vec![
        agent("a", SimulatedSettings::default()),
        agent("b", SimulatedSettings::default()),
    ]);
    t.rate_limit.acquire_timeout = Duration::from_secs(600);
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

#[tokio::test(start_paused = true)]
async fn quota_deadline_that_stops_every_agent_exits_4() {
    let mut t = team(vec![
        agent("a", SimulatedSettings::default()),
        agent("b", SimulatedSettings::default()),
    ]);
    t.rate_limit.acquire_timeout = Duration::from_secs(10);
    let rt = Runtime::new(t, quota_options(1)).unwrap();
    let err = rt.run("Too busy?").await.unwrap_err();
    assert!(matches!(err, RunError::QuotaDeadline { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 4);
    assert!(err.to_string().contains("simulated/sim-1"), "{err}");
}

/// Records every request's messages, then answers like the simulated model.
#[derive(Debug)]
struct Transcript {
    inner: massgen::provider::SimulatedProvider,
    requests: std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

impl massgen::provider::Provider for Transcript {
    fn name(&self) -> &str {
        "transcript"
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
        let texts = request.messages.iter().map(|m| m.content.clone()).collect();
        self.requests.lock().unwrap().push(texts);
        self.inner.chat(request, key, sink)
    }
}

#[tokio::test(start_paused = true)]
async fn a_running_agent_is_told_of_new_answers_at_its_next_attempt() {
    // a answers at 10 ms; its vote call (call 2) forgets the tool and is retried at 20 ms, after
    // b answered at 15 ms: the retry carries an UPDATE with both answers and its vote stands.
    let mut forgetful = latency(10);
    forgetful.failure.on_calls = vec![2];
    forgetful.failure.kind = "no_tool_call".to_owned();
    let ids = vec!["a".to_owned(), "b".to_owned()];
    let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let transcript = Transcript {
        inner: massgen::provider::SimulatedProvider::new("a", forgetful.clone(), &ids),
        requests: requests.clone(),
    };
    let t = team(vec![agent("a", forgetful), agent("b", latency(15))]);
    let rt = Runtime::new(t, RuntimeOptions::default())
        .unwrap()
        .with_provider("a", std::sync::Arc::new(transcript))
        .unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("Why do cats purr?").await.unwrap();
    let requests = requests.lock().unwrap().clone();
    let third = &requests[2];
    let update = third.last().unwrap();
    assert!(update.starts_with("UPDATE: new answers"), "{third:?}");
    assert!(update.contains("<agent2.1>"));
    let events = drain(&mut rx);
    assert!(!events.iter().any(|e| matches!(
        e,
        RunEvent::VotesDiscarded { agents, reason } if agents[0] == "a" && reason == "stale"
    )));
    assert!(out.votes.iter().any(|v| v.agent == "a"));
}

#[tokio::test]
async fn agents_without_a_provider_and_unknown_agents_are_reported() {
    let mut remote = agent("r", SimulatedSettings::default());
    remote.backend.kind = BackendKind::Gemini;
    let rt = Runtime::new(team(vec![remote]), RuntimeOptions::default()).unwrap();
    let err = rt.run("Hi?").await.unwrap_err();
    assert!(matches!(err, RunError::MissingProvider { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 1);
    let rt = Runtime::new(
        team(vec![agent("a", SimulatedSettings::default())]),
        RuntimeOptions::default(),
    )
    .unwrap();
    assert!(
        rt.with_provider(
            "zz",
            std::sync::Arc::new(massgen::provider::SimulatedProvider::new(
                "zz",
                SimulatedSettings::default(),
                &[]
            ))
        )
        .is_err()
    );
    let dup = team(vec![
        agent("a", SimulatedSettings::default()),
        agent("a", SimulatedSettings::default()),
    ]);
    assert!(Runtime::new(dup, RuntimeOptions::default()).is_err());
}
