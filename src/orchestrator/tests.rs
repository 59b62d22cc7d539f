//! The orchestrator actor's supervision and cancellation, below the runtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::sync::{Notify, broadcast};

use super::*;
use crate::agent::events::{Emitter, RunEvent};
use crate::config::{AgentConfig, SimulatedSettings};
use crate::keys::ApiKey;
use crate::provider::{ChatRequest, ChatResponse, Provider, ProviderError, SimulatedProvider};
use crate::quota::{ScopeId, ScopeSpec};
use crate::routing::{QuotaRoute, RetryPolicy, Route};
use crate::supervisor::{QuotaHandle, SupervisorSettings};

/// A provider whose calls never return; `arrived` is notified at each call.
#[derive(Debug, Default)]
struct Hanging {
    calls: AtomicU32,
    arrived: Notify,
}

impl Provider for Hanging {
    fn name(&self) -> &str {
        "simulated"
    }

    fn chat<'a>(
        &'a self,
        _: &'a ChatRequest,
        _: Option<&'a ApiKey>,
        _: Option<&'a crate::provider::StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.arrived.notify_one();
        Box::pin(std::future::pending())
    }
}

fn spec(
    system: &ActorSystem,
    id: &str,
    provider: Arc<dyn Provider>,
    quota: Option<QuotaRoute>,
) -> AgentSpec {
    AgentSpec {
        config: AgentConfig::simulated(id, SimulatedSettings::default()),
        route: Route {
            provider: crate::provider::ProviderRef::start(system, provider),
            key: None,
            retry: RetryPolicy::default(),
            requester: Arc::from(id),
            quota,
            pool: None,
            models: None,
            usage: None,
            budget: None,
        },
        orchestrator: OrchestratorConfig::default(),
        question: Arc::from("Who is left?"),
    }
}

fn simulated(id: &str, team: &[String]) -> Arc<dyn Provider> {
    Arc::new(SimulatedProvider::new(
        id,
        SimulatedSettings::default(),
        team,
    ))
}

#[test]
fn agents_whose_arbiter_dies_mid_turn_are_reported_and_retired() {
    // Two worker arbiters: a and c land on the first, b and the orchestrator on the second.
    // a and c hang in their first call; their arbiter is then stopped under them. The
    // orchestrator sees their mailboxes close, reports both and finishes with b's answer.
    let system = ActorSystem::start_with_workers(2).unwrap();
    let first = system.worker();
    let _second = system.worker();
    let team: Vec<String> = ["a", "b", "c"].map(str::to_owned).to_vec();
    let hanging = Arc::new(Hanging::default());
    let specs = vec![
        spec(&system, "a", hanging.clone(), None),
        spec(&system, "b", simulated("b", &team), None),
        spec(&system, "c", hanging.clone(), None),
    ];
    // Agents go to the worker of their index (a and c: the first, b: the second); the three
    // provider actors took the workers in turn (first, second, first), so the orchestrator,
    // next in turn, lands on the second.
    let (tx, mut events) = broadcast::channel(256);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = OrchestratorConfig::default();
    let c = rt.block_on(async {
        let killer = async {
            while hanging.calls.load(Ordering::SeqCst) < 2 {
                hanging.arrived.notified().await;
            }
            assert!(first.stop());
        };
        let run = coordinate(
            &system,
            specs,
            &config,
            Duration::from_secs(600),
            Emitter::new(tx, None),
            std::future::pending(),
        );
        tokio::time::timeout(
            Duration::from_secs(60),
            futures_util::future::join(run, killer),
        )
        .await
        .expect("the run finishes")
        .0
    });
    assert_eq!(c.status, RunStatus::Completed);
    assert_eq!(c.winner.as_deref(), Some("b"));
    assert!(c.final_answer.is_some());
    let failed: Vec<&str> = c.failures.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(failed, ["a", "c"]);
    for (_, reason, quota) in &c.failures {
        assert_eq!(reason, "the agent stopped unexpectedly");
        assert!(!quota);
    }
    let mut reported = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let RunEvent::ActorFailed { actor, reason } = e {
            assert!(reason.contains("mailbox closed during a turn"), "{reason}");
            reported.push(actor);
        }
    }
    reported.sort();
    assert_eq!(reported, ["agent:a", "agent:c"]);
}

#[actix_rt::test]
async fn abandoning_a_run_stops_its_agents_and_returns_their_permits() {
    let quota = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
    let scope = ScopeId::new("simulated/sim-1");
    let scope_spec = ScopeSpec {
        concurrency: NonZeroU32::new(4),
        ..ScopeSpec::default()
    };
    quota
        .register_scope(scope.clone(), scope_spec)
        .await
        .unwrap();
    let route = QuotaRoute {
        handle: quota.clone(),
        candidates: vec![vec![scope]],
        deadline: Some(Duration::from_secs(600)),
        run_deadline: None,
        output_cap: None,
        extra_scopes: Vec::new(),
    };
    let hanging = Arc::new(Hanging::default());
    let system = ActorSystem::current().unwrap();
    let specs = vec![
        spec(&system, "a", hanging.clone(), Some(route.clone())),
        spec(&system, "b", hanging.clone(), Some(route)),
    ];
    let (tx, _events) = broadcast::channel(64);
    let run = actix_rt::spawn(async move {
        coordinate(
            &system,
            specs,
            &OrchestratorConfig::default(),
            Duration::from_secs(600),
            Emitter::new(tx, None),
            std::future::pending(),
        )
        .await
    });
    while hanging.calls.load(Ordering::SeqCst) < 2 {
        hanging.arrived.notified().await;
    }
    assert_eq!(quota.snapshot().await.unwrap().scopes[0].in_flight, 2);
    run.abort();
    let mut in_flight = u32::MAX;
    for _ in 0..200 {
        tokio::task::yield_now().await;
        in_flight = quota.snapshot().await.unwrap().scopes[0].in_flight;
        if in_flight == 0 {
            break;
        }
    }
    assert_eq!(in_flight, 0, "both permits came back");
}
