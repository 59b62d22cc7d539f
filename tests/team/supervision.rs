//! Supervision: a provider actor that panics mid-call is reported, restarted, and fails only
//! the turn of the agent that called it; the run finishes without that agent. (An agent actor
//! that panics in its own code is tested in the agent's unit tests.)

use super::*;

/// Answers like the simulated model, except that every call panics.
#[derive(Debug)]
struct Exploding;

impl massgen::provider::Provider for Exploding {
    fn name(&self) -> &str {
        "exploding"
    }

    fn chat<'a>(
        &'a self,
        _: &'a massgen::provider::ChatRequest,
        _: Option<&'a massgen::keys::ApiKey>,
        _: Option<&'a massgen::provider::StreamSink>,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<massgen::provider::ChatResponse, massgen::provider::ProviderError>,
    > {
        Box::pin(async { panic!("the adapter hit a bug") })
    }
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_provider_that_panics_mid_call_retires_its_agent_and_the_others_finish() {
    let t = team(vec![
        agent("a", latency(10)),
        agent("b", latency(10)),
        agent("c", latency(10)),
    ]);
    let rt = Runtime::new(t, local())
        .unwrap()
        .with_provider("c", std::sync::Arc::new(Exploding))
        .unwrap();
    let mut rx = rt.subscribe();
    let out = rt.run("Who survives?").await.unwrap();
    assert_eq!(out.status, RunStatus::Completed);
    assert_eq!(out.winner.as_deref(), Some("a"));
    assert!(out.final_answer.starts_with("Final answer."));
    assert_eq!(out.votes.len(), 2);
    let c = &out.agents[2];
    assert_eq!(c.state, massgen::runtime::FinalAgentState::Failed);
    let failure = c.failure.as_deref().unwrap();
    assert!(
        failure.contains("panicked") && failure.contains("the adapter hit a bug"),
        "{failure}"
    );
    assert!(
        out.notes
            .iter()
            .any(|n| n.starts_with("c failed and was retired: ") && n.contains("panicked")),
        "{:?}",
        out.notes
    );
    let events = drain(&mut rx);
    let failed: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            RunEvent::ActorFailed { actor, reason } => Some((actor.clone(), reason.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "provider:exploding");
    assert!(failed[0].1.contains("the adapter hit a bug"));
    assert!(failed[0].1.contains("restarted"));
    // Restarted by its supervisor: the runtime's provider health says so.
    let health = rt.provider_health().await;
    assert_eq!(health["c"].restarts, 1, "{health:?}");
    assert!(matches!(events.last(), Some(RunEvent::RunFinished { .. })));
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn actor_failed_is_logged_in_events_jsonl() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = RuntimeOptions {
        run_dir_root: Some(tmp.path().to_path_buf()),
        ..local()
    };
    let t = team(vec![agent("a", latency(10)), agent("b", latency(10))]);
    let rt = Runtime::new(t, opts)
        .unwrap()
        .with_provider("b", std::sync::Arc::new(Exploding))
        .unwrap();
    let out = rt.run("Logged?").await.unwrap();
    let dir = out.run_dir.unwrap();
    let events = std::fs::read_to_string(dir.join("events.jsonl")).unwrap();
    let failed: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == "actor_failed")
        .collect();
    assert_eq!(failed.len(), 1, "{events}");
    assert_eq!(failed[0]["actor"], "provider:exploding");
    assert!(
        failed[0]["reason"]
            .as_str()
            .unwrap()
            .contains("the adapter hit a bug")
    );
}
