//! The agent actor's requests as sent: built from the board at the moment they go out, and
//! retries in each provider's native tool form.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::num::NonZeroU64;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::sync::broadcast;

use super::board::{AnonIds, AnswerEntry};
use super::*;
use crate::agent::board::AnswerBoard;
use crate::agent::checks::Decision;
use crate::agent::events::{Emitter, RunEvent};
use crate::config::SimulatedSettings;
use crate::keys::ApiKey;
use crate::provider::{ChatRequest, Message};
use crate::provider::{
    ChatResponse, Provider, ProviderError, Role, SimulatedProvider, StreamSink, ToolCall,
};
use crate::quota::{Limit, ScopeId, ScopeSpec};
use crate::routing::Route;
use crate::routing::{QuotaRoute, RetryPolicy};
use crate::supervisor::{QuotaHandle, SupervisorSettings};
use tokio::sync::watch;

type Hook = Box<dyn Fn(u32) + Send + Sync>;

/// Records every request as sent; answers with the scripted replies in order, else like the
/// simulated model. `hook(n)` runs when call `n` arrives (before the reply).
struct Recorder {
    sent: Arc<StdMutex<Vec<ChatRequest>>>,
    script: StdMutex<VecDeque<ChatResponse>>,
    inner: SimulatedProvider,
    hook: Hook,
    /// When set, calls never return (a call in flight until cancelled).
    hang: Arc<AtomicBool>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Provider for Recorder {
    fn name(&self) -> &str {
        "simulated"
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        key: Option<&'a ApiKey>,
        sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        let n = {
            let mut sent = self.sent.lock().unwrap();
            sent.push(request.clone());
            sent.len() as u32
        };
        (self.hook)(n);
        if self.hang.load(Ordering::SeqCst) {
            return Box::pin(std::future::pending());
        }
        let scripted = self.script.lock().unwrap().pop_front();
        match scripted {
            Some(r) => Box::pin(async move { Ok(r) }),
            None => self.inner.chat(request, key, sink),
        }
    }
}

fn ids() -> Arc<AnonIds> {
    Arc::new(AnonIds::new(&["a".to_owned(), "b".to_owned()]))
}

/// The board after `a` answered `text`.
fn answered(text: &str) -> Arc<AnswerBoard> {
    let mut board = AnswerBoard::new(ids());
    board.generation = 1;
    board.answers.push(AnswerEntry {
        agent: "a".into(),
        anon: "agent1".into(),
        label: "agent1.1".into(),
        revision: 1,
        content: text.into(),
    });
    Arc::new(board)
}

fn voter() -> SimulatedSettings {
    SimulatedSettings {
        answer_rounds: 0,
        ..SimulatedSettings::default()
    }
}

type BoardTx = Arc<watch::Sender<Arc<AnswerBoard>>>;

struct Rig {
    addr: actix::Addr<AgentActor>,
    sent: Arc<StdMutex<Vec<ChatRequest>>>,
    board: BoardTx,
    events: broadcast::Receiver<RunEvent>,
    hang: Arc<AtomicBool>,
}

/// Agent `b` (a voter) on an empty board; `hook` is made with the board's sender.
fn rig(
    script: Vec<ChatResponse>,
    quota: Option<QuotaRoute>,
    hook: impl FnOnce(BoardTx) -> Hook,
) -> Rig {
    rig_logged(script, quota, hook, None)
}

/// [`rig`] with an event log that every event the agent emits also goes to.
fn rig_logged(
    script: Vec<ChatResponse>,
    quota: Option<QuotaRoute>,
    hook: impl FnOnce(BoardTx) -> Hook,
    log: Option<Arc<dyn crate::agent::events::EventLog>>,
) -> Rig {
    let (board, rx) = watch::channel(Arc::new(AnswerBoard::new(ids())));
    let board = Arc::new(board);
    let sent = Arc::new(StdMutex::new(Vec::new()));
    let team = ["a".to_owned(), "b".to_owned()];
    let provider = Recorder {
        sent: sent.clone(),
        script: StdMutex::new(script.into()),
        inner: SimulatedProvider::new("b", voter(), &team),
        hook: hook(board.clone()),
        hang: Arc::new(AtomicBool::new(false)),
    };
    let hang = provider.hang.clone();
    let route = Route {
        provider: crate::provider::ProviderRef::start(
            &crate::system::ActorSystem::current().unwrap(),
            Arc::new(provider),
        ),
        key: None,
        retry: RetryPolicy::default(),
        requester: Arc::from("b"),
        quota,
        pool: None,
        models: None,
        usage: None,
        budget: None,
    };
    let spec = AgentSpec {
        config: AgentConfig::simulated("b", voter()),
        route,
        orchestrator: OrchestratorConfig::default(),
        question: Arc::from("Why is the sky blue?"),
    };
    let (tx, events) = broadcast::channel(64);
    let system = crate::system::ActorSystem::current().unwrap();
    let addr = AgentActor::start_in(&system, spec, rx, Emitter::new(tx, log));
    Rig {
        addr,
        sent,
        board,
        events,
        hang,
    }
}

fn no_hook(_: BoardTx) -> Hook {
    Box::new(|_| {})
}

fn reply(calls: Vec<ToolCall>) -> ChatResponse {
    ChatResponse {
        tool_calls: calls,
        ..ChatResponse::default()
    }
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_call_that_waited_for_quota_shows_the_answers_of_the_moment_it_is_sent() {
    // One request per minute: the slot is taken, so b's first call waits ~60 s for its permit.
    // a's answer arrives during the wait: the request sent lists it, as a fresh first message.
    let quota = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
    let scope = ScopeId::new("simulated/sim-1");
    let spec = ScopeSpec {
        limits: vec![Limit::rpm(NonZeroU64::new(1).unwrap())],
        ..ScopeSpec::default()
    };
    quota.register_scope(scope.clone(), spec).await.unwrap();
    let route = QuotaRoute {
        handle: quota.clone(),
        candidates: vec![vec![scope]],
        deadline: Some(Duration::from_secs(600)),
        run_deadline: None,
        output_cap: None,
        extra_scopes: Vec::new(),
    };
    let taken = quota
        .acquire(crate::supervisor::AcquireRequest {
            candidates: route.candidates.clone(),
            est_tokens: 1,
            est_output: 0,
            priority: 0,
            deadline: None,
            requester: Arc::from("other"),
        })
        .await
        .unwrap();
    taken.settle(1);
    let r = rig(Vec::new(), Some(route), no_hook);
    let start = tokio::time::Instant::now();
    let report = r.addr.send(Turn);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(r.sent.lock().unwrap().is_empty(), "still waiting for quota");
    r.board.send(answered("Rayleigh scattering.")).unwrap();
    let report = report.await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(55),
        "{:?}",
        start.elapsed()
    );

    let sent = r.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let messages = &sent[0].messages;
    assert_eq!(messages.len(), 2, "{messages:#?}");
    assert!(
        messages[1]
            .content
            .contains("<agent1.1> Rayleigh scattering. <end of agent1.1>")
    );
    for m in messages {
        assert!(
            !m.content.contains("(no answers available yet)"),
            "{}",
            m.content
        );
        assert!(!m.content.contains("UPDATE"), "{}", m.content);
    }
    assert_eq!(
        sent[0].tools[1].parameters["properties"]["agent_id"]["enum"],
        json!(["agent1"])
    );
    assert_eq!(report.generation, 1);
    assert_eq!(
        report.outcome,
        TurnOutcome::Decided(Decision::Vote {
            for_agent: "a".into(),
            reason: "agent1 answers the question most completely.".into()
        })
    );
}

#[actix_rt::test]
async fn a_duplicate_answer_is_retried_with_a_native_tool_result() {
    let duplicate = ToolCall::new(
        "call_dup",
        "new_answer",
        json!({"content": "Rayleigh scattering."}),
    );
    let mut r = rig(vec![reply(vec![duplicate.clone()])], None, no_hook);
    r.board.send(answered("Rayleigh scattering.")).unwrap();
    let report = r.addr.send(Turn).await.unwrap();
    assert!(matches!(
        report.outcome,
        TurnOutcome::Decided(Decision::Vote { ref for_agent, .. }) if for_agent == "a"
    ));
    let sent = r.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let retry = &sent[1].messages;
    assert_eq!(retry.len(), 4, "{retry:#?}");
    assert_eq!(retry[..2], sent[0].messages[..]);
    assert_eq!(
        retry[2],
        Message::assistant_tool_calls("", vec![duplicate.clone()])
    );
    assert_eq!(retry[3].role, Role::Tool);
    let result = retry[3].tool_result.as_ref().unwrap();
    assert_eq!(
        (result.call_id.as_str(), result.name.as_str()),
        ("call_dup", "new_answer")
    );
    assert!(result.is_error);
    assert!(
        retry[3]
            .content
            .contains("identical to the existing answer agent1.1")
    );
    assert!(!retry.iter().any(|m| m.content.contains("[called")));
    let mut retries = Vec::new();
    while let Ok(event) = r.events.try_recv() {
        if let RunEvent::TurnRetry {
            attempt, reason, ..
        } = event
        {
            retries.push((attempt, reason));
        }
    }
    assert_eq!(retries, [(1, retry[3].content.clone())]);
}

#[actix_rt::test]
async fn answers_that_arrive_between_attempts_rebuild_the_first_message() {
    // b votes on an empty board (refused); a's answer lands while that call is out. The retry's
    // first message shows it, `vote` is offered again, and the refusal says answers changed.
    let early = ToolCall::new("v1", "vote", json!({"agent_id": "agent1", "reason": "x"}));
    let hook = |board: BoardTx| -> Hook {
        Box::new(move |n| {
            if n == 1 {
                board.send(answered("Short waves scatter.")).unwrap();
            }
        })
    };
    let r = rig(vec![reply(vec![early.clone()])], None, hook);
    let report = r.addr.send(Turn).await.unwrap();
    assert_eq!(report.generation, 1);
    assert!(matches!(
        report.outcome,
        TurnOutcome::Decided(Decision::Vote { .. })
    ));
    let sent = r.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert!(
        sent[0].messages[1]
            .content
            .contains("(no answers available yet)")
    );
    let retry = &sent[1];
    assert!(
        retry.messages[1]
            .content
            .contains("<agent1.1> Short waves scatter.")
    );
    assert!(
        !retry.messages[1]
            .content
            .contains("(no answers available yet)")
    );
    assert!(
        retry.messages[3]
            .content
            .contains(conversation::NEWER_ANSWERS)
    );
    let tools: Vec<&str> = retry.tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tools, ["new_answer", "vote"]);
}

#[actix_rt::test]
async fn an_answer_repeating_one_that_arrived_while_it_was_out_is_refused() {
    // b's call goes out on an empty board; a's identical answer lands before b's reply. b's
    // answer would only repeat it: it is refused, and the retry shows a's answer to vote for.
    let same = ToolCall::new(
        "n1",
        "new_answer",
        json!({"content": "Short waves scatter."}),
    );
    let hook = |board: BoardTx| -> Hook {
        Box::new(move |n| {
            if n == 1 {
                board.send(answered("Short waves scatter.")).unwrap();
            }
        })
    };
    let r = rig(vec![reply(vec![same.clone()])], None, hook);
    let report = r.addr.send(Turn).await.unwrap();
    assert_eq!(report.generation, 1);
    assert!(matches!(
        report.outcome,
        TurnOutcome::Decided(Decision::Vote { .. })
    ));
    let sent = r.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    let retry = &sent[1].messages;
    assert!(retry[1].content.contains("<agent1.1> Short waves scatter."));
    assert!(
        retry[3]
            .content
            .contains("identical to the existing answer agent1.1")
    );
    // Checked against the answers it then saw: no "answers changed" note.
    assert!(!retry[3].content.contains(conversation::NEWER_ANSWERS));
}

#[test]
fn an_agents_own_voting_sensitivity_wins_over_the_orchestrators() {
    use crate::config::VotingSensitivity;
    let orchestrator = OrchestratorConfig {
        voting_sensitivity: VotingSensitivity::Lenient,
        ..OrchestratorConfig::default()
    };
    let mut agent = AgentConfig::simulated("a", Default::default());
    assert_eq!(
        super::voting_sensitivity(&agent, &orchestrator),
        VotingSensitivity::Lenient
    );
    agent.voting_sensitivity = Some(VotingSensitivity::Strict);
    assert_eq!(
        super::voting_sensitivity(&agent, &orchestrator),
        VotingSensitivity::Strict
    );
    let strict =
        super::board::system_message(None, super::voting_sensitivity(&agent, &orchestrator));
    let lenient = super::board::system_message(None, VotingSensitivity::Lenient);
    assert_ne!(strict.content, lenient.content);
}

#[test]
fn a_turn_is_judged_against_the_board_of_the_request_that_was_sent() {
    // Routing built twice (the second grew past its permit too often) and sent the first: the
    // reply answers the first board, not the latest.
    let ids = Arc::new(AnonIds::new(&["a".to_owned(), "b".to_owned()]));
    let first = Arc::new(AnswerBoard::new(ids.clone()));
    let mut second = AnswerBoard::new(ids);
    second.generation = 1;
    let second = Arc::new(second);
    let mut st = super::turn::TurnState::new(first.clone());
    let m1 = vec![Message::user("built from the first board")];
    let m2 = vec![Message::user("built from the second board")];
    st.built(&m1, first.clone());
    st.built(&m2, second.clone());
    assert_eq!(st.board.generation, 1);
    let sent = ChatRequest {
        messages: m1,
        ..ChatRequest::default()
    };
    st.sent(&sent);
    assert_eq!(st.board.generation, 0);
    st.sent(&ChatRequest {
        messages: m2,
        ..ChatRequest::default()
    });
    assert_eq!(st.board.generation, 1);
}

/// A quota supervisor on this arbiter with one scope of at most `concurrency` calls at once,
/// and the route through it.
async fn quota_route(concurrency: u32) -> (QuotaHandle, QuotaRoute) {
    let quota = QuotaHandle::start_local(SupervisorSettings::default()).unwrap();
    let scope = ScopeId::new("simulated/sim-1");
    let spec = ScopeSpec {
        concurrency: std::num::NonZeroU32::new(concurrency),
        ..ScopeSpec::default()
    };
    quota.register_scope(scope.clone(), spec).await.unwrap();
    let route = QuotaRoute {
        handle: quota.clone(),
        candidates: vec![vec![scope]],
        deadline: Some(Duration::from_secs(600)),
        run_deadline: None,
        output_cap: None,
        extra_scopes: Vec::new(),
    };
    (quota, route)
}

/// Lets every actor on this arbiter run until `done` holds (at most 1,000 rounds).
async fn settle_until(done: impl Fn() -> bool) {
    for _ in 0..1000 {
        if done() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("the condition never held");
}

#[actix_rt::test]
async fn stop_mid_call_cancels_it_and_returns_the_quota_permit() {
    let (quota, route) = quota_route(1).await;
    let r = rig(Vec::new(), Some(route), no_hook);
    r.hang.store(true, Ordering::SeqCst);
    let turn = actix_rt::spawn(r.addr.send(Turn));
    let sent = r.sent.clone();
    settle_until(|| sent.lock().unwrap().len() == 1).await;
    let busy = quota.snapshot().await.unwrap();
    assert_eq!(busy.scopes[0].in_flight, 1, "the call holds its permit");

    let stats = r.addr.send(Stop).await.unwrap();
    assert_eq!(stats.calls, 0, "the cancelled call never returned");
    let reply = turn.await.unwrap();
    assert!(
        matches!(reply, Err(actix::MailboxError::Closed)),
        "{reply:?}"
    );
    assert!(r.addr.send(Stats).await.is_err(), "the agent is gone");
    let mut idle = quota.snapshot().await.unwrap();
    for _ in 0..100 {
        if idle.scopes[0].in_flight == 0 {
            break;
        }
        tokio::task::yield_now().await;
        idle = quota.snapshot().await.unwrap();
    }
    assert_eq!(idle.scopes[0].in_flight, 0, "the permit came back");
    assert_eq!(idle.scopes[0].granted_total, 1);
}

/// An event log with a bug: it panics when it records the agent's `nth` state change.
struct FaultyLog {
    states: std::sync::atomic::AtomicU32,
    nth: u32,
}

impl crate::agent::events::EventLog for FaultyLog {
    fn record(&self, _: Duration, event: &RunEvent) {
        if matches!(event, RunEvent::AgentState { .. })
            && self
                .states
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
                + 1
                == self.nth
        {
            panic!("the event log exploded");
        }
    }

    fn answer(&self, _: &str, _: u32, _: &str) -> Option<std::path::PathBuf> {
        None
    }
}

#[actix_rt::test]
async fn a_panic_mid_turn_fails_the_turn_names_the_panic_and_stops_the_agent() {
    // Attempt 1 is refused (a vote on an empty board) and counted; announcing attempt 2
    // ("thinking", the agent's second state change) panics inside the agent's own code.
    let early = ToolCall::new("v1", "vote", json!({"agent_id": "agent1", "reason": "x"}));
    let log = Arc::new(FaultyLog {
        states: std::sync::atomic::AtomicU32::new(0),
        nth: 2,
    });
    let mut r = rig_logged(vec![reply(vec![early])], None, no_hook, Some(log));
    let report = r.addr.send(Turn).await.unwrap();
    let TurnOutcome::Failed {
        reason,
        quota_deadline,
    } = &report.outcome
    else {
        panic!("{report:?}");
    };
    assert!(
        reason.starts_with("the agent panicked during a turn: the event log exploded"),
        "{reason}"
    );
    assert!(!quota_deadline);
    assert_eq!(
        report.stats.calls, 1,
        "the call before the panic stays counted"
    );
    let mut failed = Vec::new();
    while let Ok(event) = r.events.try_recv() {
        if let RunEvent::ActorFailed { actor, reason } = event {
            failed.push((actor, reason));
        }
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "agent:b");
    assert!(failed[0].1.contains("exploded"));
    assert!(r.addr.send(Stats).await.is_err(), "the agent stopped");
}

#[actix_rt::test]
async fn counters_are_carried_in_reports_and_read_on_request() {
    let r = rig(Vec::new(), None, no_hook);
    r.board.send(answered("Rayleigh scattering.")).unwrap();
    let report = r.addr.send(Turn).await.unwrap();
    assert_eq!(report.stats.calls, 1);
    assert!(report.stats.input_tokens > 0);
    assert_eq!(r.addr.send(Stats).await.unwrap(), report.stats);
    assert_eq!(r.addr.send(Stop).await.unwrap(), report.stats);
}
