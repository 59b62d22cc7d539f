//! The coordination protocol: consensus, restarts, stale votes, failures, timeouts, turn checks.

use super::*;

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn consensus_in_one_round() {
    let t = team(vec![
        agent("carol", latency(100)),
        agent("alice", latency(100)),
        agent("bob", latency(100)),
    ]);
    let rt = Runtime::new(t, local()).unwrap();
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

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_new_answer_restarts_agents_that_voted() {
    let slow_reviser = SimulatedSettings {
        answer_rounds: 2,
        ..latency(100)
    };
    let t = team(vec![agent("a", latency(10)), agent("b", slow_reviser)]);
    let rt = Runtime::new(t, local()).unwrap();
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

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_vote_cast_against_stale_answers_is_discarded() {
    let t = team(vec![agent("a", latency(50)), agent("b", latency(60))]);
    let rt = Runtime::new(t, local()).unwrap();
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

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_failing_agent_is_retired_and_the_run_succeeds() {
    let mut broken = latency(10);
    broken.failure.always = true;
    let t = team(vec![
        agent("a", latency(10)),
        agent("b", latency(10)),
        agent("c", broken),
    ]);
    let rt = Runtime::new(t, local()).unwrap();
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

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn all_agents_failing_is_an_error_with_exit_code_3() {
    let mut broken = SimulatedSettings::default();
    broken.failure.always = true;
    broken.failure.kind = "no_tool_call".to_owned();
    let t = team(vec![agent("a", broken.clone()), agent("b", broken)]);
    let rt = Runtime::new(t, local()).unwrap();
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

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn timeout_picks_the_answer_that_exists() {
    let t = team(vec![agent("a", latency(100)), agent("b", latency(60_000))]);
    let opts = RuntimeOptions {
        orchestrator_timeout: Some(Duration::from_secs(1)),
        ..local()
    };
    let rt = Runtime::new(t, opts).unwrap();
    let out = rt.run("Quick?").await.unwrap();
    assert_eq!(out.status, RunStatus::TimedOut);
    assert_eq!(out.winner.as_deref(), Some("a"));
    assert_eq!(out.duration, Duration::from_secs(1));
    assert_eq!(out.final_answer, out.answers[0].content);
    assert!(out.notes[0].contains("timeout"));
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn timeout_without_answers_is_an_error() {
    let t = team(vec![agent("a", latency(60_000))]);
    let opts = RuntimeOptions {
        orchestrator_timeout: Some(Duration::from_secs(2)),
        ..local()
    };
    let err = Runtime::new(t, opts)
        .unwrap()
        .run("Slow?")
        .await
        .unwrap_err();
    assert!(matches!(err, RunError::NoAnswer { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 3);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn fifty_agents_finish() {
    let agents = (0..50)
        .map(|i| agent(&format!("agent-{i:02}"), latency(20)))
        .collect();
    let rt = Runtime::new(team(agents), local()).unwrap();
    let out = rt.run("Summarise the plot of Hamlet.").await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(out.answers.len(), 50);
    assert_eq!(out.votes.len(), 50);
    assert_eq!(out.winner.as_deref(), Some("agent-00"));
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_reply_without_a_tool_call_is_nudged() {
    let mut forgetful = latency(10);
    forgetful.failure.on_calls = vec![1];
    forgetful.failure.kind = "no_tool_call".to_owned();
    let t = team(vec![agent("a", forgetful), agent("b", latency(10))]);
    let rt = Runtime::new(t, local()).unwrap();
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

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_retry_is_rebuilt_with_the_answers_that_arrived_meanwhile() {
    // a answers at 10 ms; its vote call (call 2) forgets the tool and is retried at 20 ms, after
    // b answered at 15 ms: the retry's first message lists both answers (no UPDATE is appended:
    // turns are not streamed, so no call is in flight when answers arrive), the nudge follows
    // a's reply, and its vote stands.
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
    let rt = Runtime::new(t, local())
        .unwrap()
        .with_provider("a", std::sync::Arc::new(transcript))
        .unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("Why do cats purr?").await.unwrap();
    let requests = requests.lock().unwrap().clone();
    let third = &requests[2];
    assert_eq!(third.len(), 4, "{third:?}");
    assert!(
        third[1].contains("<agent1.1>") && third[1].contains("<agent2.1>"),
        "{third:?}"
    );
    assert!(!third.iter().any(|m| m.contains("UPDATE")), "{third:?}");
    assert!(
        third[3].starts_with("You did not call a tool."),
        "{third:?}"
    );
    let events = drain(&mut rx);
    assert!(!events.iter().any(|e| matches!(
        e,
        RunEvent::VotesDiscarded { agents, reason } if agents[0] == "a" && reason == "stale"
    )));
    assert!(out.votes.iter().any(|v| v.agent == "a"));
}

#[actix_rt::test]
async fn agents_without_a_provider_and_unknown_agents_are_reported() {
    // A chat-completions backend with no base_url cannot be built: no provider, no network.
    let mut remote = agent("r", SimulatedSettings::default());
    remote.backend.kind = BackendKind::ChatCompletion;
    remote.backend.base_url = None;
    let rt = Runtime::new(team(vec![remote]), local()).unwrap();
    let err = rt.run("Hi?").await.unwrap_err();
    assert!(matches!(err, RunError::MissingProvider { .. }), "{err:?}");
    assert_eq!(err.exit_code(), 1);
    let rt = Runtime::new(
        team(vec![agent("a", SimulatedSettings::default())]),
        local(),
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
    assert!(Runtime::new(dup, local()).is_err());
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn the_answer_cap_turns_a_second_answer_into_a_vote() {
    let eager = SimulatedSettings {
        answer_rounds: 2,
        ..latency(10)
    };
    let mut t = team(vec![agent("a", eager), agent("b", latency(10))]);
    t.orchestrator.max_new_answers_per_agent = Some(1);
    let rt = Runtime::new(t, local()).unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("Cap it?").await.unwrap();
    assert_eq!(out.answers.iter().filter(|a| a.agent == "a").count(), 1);
    assert_eq!(out.votes.len(), 2);
    let events = drain(&mut rx);
    assert!(events.iter().any(|e| matches!(
        e,
        RunEvent::TurnRetry { agent, reason, .. } if agent == "a" && reason.contains("limit of 1")
    )));
}

#[test]
fn a_runtime_can_be_shared_and_its_run_spawned() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: T) {}
    let rt = Runtime::new(
        team(vec![agent("a", SimulatedSettings::default())]),
        RuntimeOptions::default(),
    )
    .unwrap();
    send_sync(&rt);
    send_sync(rt.actor_system());
    send(rt.run("Spawnable?"));
    send(rt.run_until("Spawnable?", std::future::pending()));
}
