//! The runtime's provider and API key actors seen end to end: a key is one actor shared by
//! every agent and run (retired for all after a 401, usage counted once), a provider actor
//! that panics fails only its call and is restarted, and a caller that gives up cancels the
//! provider's call.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use massgen::config::{AgentConfig, BackendKind, ModelLimits, SimulatedSettings, TeamConfig};
use massgen::keys::{ApiKey, KeyHealth};
use massgen::mock_provider::{FaultSpec, MockOptions, MockServerHandle, serve};
use massgen::provider::{
    ChatRequest, ChatResponse, Provider, ProviderError, ProviderRef, SimulatedProvider, StreamSink,
};
use massgen::quota::ScopeKind;
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::{Runtime, RuntimeOptions};

use super::{FIRST, actors, key, request};

fn openai_agent(id: &str, server: &MockServerHandle, keys: Vec<ApiKey>) -> AgentConfig {
    let mut a = AgentConfig::simulated(id, SimulatedSettings::default());
    a.backend.kind = BackendKind::OpenAi;
    a.backend.model = "mock-model".to_owned();
    a.backend.base_url = Some(server.v1_url());
    a.backend.api_keys = keys;
    a.backend.max_tokens = Some(200);
    a
}

/// The mock's counts for `key` (requests it saw with the key, by outcome).
fn seen_with(server: &MockServerHandle, key: &ApiKey) -> massgen::mock_provider::MockCounts {
    server
        .stats()
        .by_key_model
        .get(&format!("key:{}/mock-model", key.short_id()))
        .copied()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_refused_for_one_agent_is_never_sent_again_by_any_agent_or_run() {
    let bad = key("refused");
    let good = key("accepted");
    let server = serve(MockOptions {
        faults: FaultSpec::parse(&format!("401:key={}", bad.expose())).unwrap(),
        ..MockOptions::default()
    })
    .await
    .unwrap();
    // Both agents try the refused key first. One call at a time over the team (the keys count
    // per account, so they share one scope with a concurrency of one): once the first 401 is
    // back, every later call of either agent, in either run, must already know the key is
    // retired.
    let limits = ModelLimits {
        matched: "test".into(),
        concurrency: NonZeroU32::new(1),
        scope: ScopeKind::PerAccount,
        ..ModelLimits::default()
    };
    let table: HashMap<(String, String), ModelLimits> =
        HashMap::from([(("openai".to_owned(), "mock-model".to_owned()), limits)]);
    let team = TeamConfig::new(vec![
        openai_agent("alpha", &server, vec![bad.clone(), good.clone()]),
        openai_agent("beta", &server, vec![bad.clone(), good.clone()]),
    ]);
    let options = RuntimeOptions {
        rate_limit: true,
        limits: Some(Arc::new(table)),
        quota: Some(
            QuotaHandle::start(SupervisorSettings {
                stagger: Duration::ZERO,
                ..SupervisorSettings::default()
            })
            .unwrap(),
        ),
        ..RuntimeOptions::default()
    };
    let rt = Runtime::new(team, options).unwrap();
    for run in 1..=2 {
        let out = rt.run("What is 2+2?").await.unwrap();
        assert!(out.final_answer.contains("Final answer"), "run {run}");
        let refused = seen_with(&server, &bad);
        assert_eq!(
            refused.faulted,
            1,
            "run {run}: the refused key was sent once, ever: {:?}",
            server.stats()
        );
        assert_eq!(refused.admitted, 0);
    }
    let status = rt.key_status();
    assert_eq!(status.len(), 2, "one status per distinct key: {status:?}");
    let retired = status.iter().find(|s| s.id == bad.short_id()).unwrap();
    let KeyHealth::Retired { reason } = &retired.health else {
        panic!("the refused key is retired: {retired:?}");
    };
    assert!(reason.contains(&bad.masked()), "{reason}");
    assert!(!reason.contains(bad.expose()), "never the secret: {reason}");
    assert_eq!(retired.usage.calls, 1);
    let used = status.iter().find(|s| s.id == good.short_id()).unwrap();
    assert_eq!(used.health, KeyHealth::Healthy);
    assert_eq!(used.usage.calls, seen_with(&server, &good).admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_usage_is_counted_once_across_agents_and_runs() {
    let shared = key("team");
    let server = serve(MockOptions::default()).await.unwrap();
    let team = TeamConfig::new(vec![
        openai_agent("alpha", &server, vec![shared.clone()]),
        openai_agent("beta", &server, vec![shared.clone()]),
    ]);
    let rt = Runtime::new(team, RuntimeOptions::default()).unwrap();
    for _ in 0..2 {
        rt.run("What is 2+2?").await.unwrap();
    }
    let seen = server.stats();
    let openai = seen.by_dialect["openai"];
    let status = rt.key_status();
    assert_eq!(status.len(), 1, "{status:?}");
    let usage = status[0].usage;
    // Every call of both agents over both runs, each counted once, with the tokens the mock
    // reported.
    assert!(usage.calls >= 8, "two agents, two runs: {usage:?}");
    assert_eq!(usage.calls, seen.total.admitted);
    assert_eq!(usage.successes, usage.calls);
    assert_eq!(usage.input_tokens, openai.input_tokens);
    assert_eq!(usage.output_tokens, openai.output_tokens);
    // The two agents share the endpoint's one provider actor.
    let health = rt.provider_health().await;
    assert_eq!(health.len(), 2);
    assert_eq!(health["alpha"], health["beta"]);
    assert_eq!(health["alpha"].calls, usage.calls);
    assert_eq!(health["alpha"].provider, "openai");
}

/// The simulated model, except that its first call panics.
#[derive(Debug)]
struct PanicsFirst {
    inner: SimulatedProvider,
    calls: AtomicU32,
}

impl Provider for PanicsFirst {
    fn name(&self) -> &str {
        "simulated"
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        key: Option<&'a ApiKey>,
        sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            Box::pin(async { panic!("adapter bug: index out of range") })
        } else {
            self.inner.chat(request, key, sink)
        }
    }
}

#[tokio::test]
async fn a_provider_actor_that_panics_fails_one_turn_and_is_restarted() {
    let ids = ["a".to_owned(), "b".to_owned()];
    let settings = SimulatedSettings {
        latency: Duration::from_millis(5),
        ..SimulatedSettings::default()
    };
    let team = TeamConfig::new(vec![
        AgentConfig::simulated("a", settings.clone()),
        AgentConfig::simulated("b", settings.clone()),
    ]);
    let faulty = PanicsFirst {
        inner: SimulatedProvider::new("a", settings, &ids),
        calls: AtomicU32::new(0),
    };
    let rt = Runtime::new(team, RuntimeOptions::default())
        .unwrap()
        .with_provider("a", Arc::new(faulty))
        .unwrap();
    let out = rt.run("Why is the sky blue?").await.unwrap();
    assert_eq!(out.winner.as_deref(), Some("b"), "{out:?}");
    let note = out
        .notes
        .iter()
        .find(|n| n.starts_with("a failed"))
        .unwrap_or_else(|| panic!("a's turn failed: {:?}", out.notes));
    assert!(
        note.contains("panicked") && note.contains("adapter bug: index out of range"),
        "{note}"
    );
    assert!(note.contains("after 1 call"), "not retried as is: {note}");
    let health = rt.provider_health().await;
    let a = &health["a"];
    assert_eq!((a.restarts, a.panics), (1, 1), "{a:?}");
    assert_eq!(health["b"].restarts, 0);
    // The restarted actor serves the next run: a takes part again.
    let out = rt.run("Why is the sky blue?").await.unwrap();
    assert!(
        !out.notes.iter().any(|n| n.starts_with("a failed")),
        "{:?}",
        out.notes
    );
    assert!(out.answers.iter().any(|x| x.agent == "a"), "{out:?}");
    let a = &rt.provider_health().await["a"];
    assert_eq!(a.restarts, 1);
    assert!(a.successes >= 1, "{a:?}");
}

/// A provider whose calls never end on their own; records when a call's future is dropped.
#[derive(Debug, Default)]
struct Hangs {
    started: AtomicU32,
    dropped: Arc<AtomicBool>,
}

struct OnDrop(Arc<AtomicBool>);

impl Drop for OnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Provider for Hangs {
    fn name(&self) -> &str {
        "hangs"
    }

    fn chat<'a>(
        &'a self,
        _request: &'a ChatRequest,
        _key: Option<&'a ApiKey>,
        _sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        let guard = OnDrop(self.dropped.clone());
        Box::pin(async move {
            let _guard = guard;
            std::future::pending().await
        })
    }
}

#[tokio::test]
async fn a_caller_that_gives_up_cancels_the_provider_call() {
    let hangs = Arc::new(Hangs::default());
    let p = ProviderRef::start(actors(), hangs.clone());
    let call = p.chat(
        Arc::new(request(FIRST, true, false)),
        None,
        None,
        Duration::from_secs(3600),
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), call)
            .await
            .is_err(),
        "the call hangs until its caller gives up"
    );
    assert_eq!(hangs.started.load(Ordering::SeqCst), 1);
    // The actor notices on its own thread.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !hangs.dropped.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the provider's future was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let h = p.health().await.unwrap();
    assert_eq!((h.abandoned, h.in_flight, h.calls), (1, 0, 0), "{h:?}");
}
