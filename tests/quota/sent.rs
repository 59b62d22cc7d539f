//! What was sent, as the provider counts it. Calls go through `routing::call` (one endpoint, or
//! a key pool through `routing::keyed`) with the
//! supervisor to a fake provider that records every request exactly as the OpenAI adapter
//! serializes it, and when it arrived. An independent reference — tiktoken's own choice of
//! tokenizer for the sent model, OpenAI's documented chat counting, the sent `max_tokens` —
//! re-counts each request from that JSON and checks that no trailing window of any limit held
//! more than the limit. It never looks at the ledger or at the estimate code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use massgen::config::ModelLimits;
use massgen::keys::ApiKey;
use massgen::keys::{KeyPool, KeyRegistry};
use massgen::provider::ProviderRef;
use massgen::provider::{
    ChatRequest, ChatResponse, Message, Provider, ProviderError, StreamSink, ToolSpec, Usage,
};
use massgen::quota::{Dimension, Limit, ScopeId, ScopeKind, ScopeSpec};
use massgen::routing::{CallObserver, QuotaRoute, RetryPolicy, Route, call};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::system::ActorSystem;
use proptest::prelude::*;
use serde_json::Value;
use tokio::time::Instant;

// ---------- the fake provider: records what was sent ----------

#[derive(Debug)]
struct Sent {
    at: Instant,
    body: Value,
    request: ChatRequest,
}

#[derive(Debug)]
struct Fake {
    name: &'static str,
    sent: Mutex<Vec<Sent>>,
    /// Per call, in order: (latency, output tokens wanted); the output is cut at the sent cap.
    script: Mutex<VecDeque<(Duration, u64)>>,
}

impl Fake {
    fn new(name: &'static str, script: Vec<(Duration, u64)>) -> Arc<Fake> {
        Arc::new(Fake {
            name,
            sent: Mutex::new(Vec::new()),
            script: Mutex::new(script.into()),
        })
    }

    fn sent(&self) -> Vec<(Instant, Value)> {
        let sent = self.sent.lock().unwrap();
        sent.iter().map(|s| (s.at, s.body.clone())).collect()
    }

    fn caps(&self) -> Vec<Option<u32>> {
        let sent = self.sent.lock().unwrap();
        sent.iter().map(|s| s.request.max_tokens).collect()
    }
}

impl Provider for Fake {
    fn name(&self) -> &str {
        self.name
    }

    fn chat<'a>(
        &'a self,
        request: &'a ChatRequest,
        _key: Option<&'a ApiKey>,
        _sink: Option<&'a StreamSink>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            let body = massgen::provider::openai::request_body(request);
            let input = openai_input_tokens(&body).unwrap_or(0);
            self.sent.lock().unwrap().push(Sent {
                at: Instant::now(),
                body,
                request: request.clone(),
            });
            let (latency, wanted) = self
                .script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or((Duration::from_secs(1), 50));
            tokio::time::sleep(latency).await;
            let output = wanted.min(request.max_tokens.map_or(u64::MAX, u64::from));
            Ok(ChatResponse {
                text: "ok".into(),
                usage: Some(Usage::new(input, output)),
                ..ChatResponse::default()
            })
        })
    }
}

struct Quiet;
impl CallObserver for Quiet {
    fn retrying(&self, _: u32, _: &str, _: Duration) {}
}

// ---------- the independent reference ----------

/// Input tokens of a chat completions body the way OpenAI documents its counting: 3 per
/// message plus every field's tokens, 3 to prime the reply, and each tool's function object —
/// with the tokenizer tiktoken picks for the sent model.
fn openai_input_tokens(body: &Value) -> Option<u64> {
    let bpe = tiktoken_rs::bpe_for_model(body["model"].as_str()?).ok()?;
    let count = |s: &str| bpe.encode_ordinary(s).len() as u64;
    let mut n = 3;
    for m in body["messages"].as_array()? {
        n += 3;
        for v in m.as_object()?.values() {
            n += match v {
                Value::String(s) => count(s),
                other => count(&other.to_string()),
            };
        }
    }
    for t in body["tools"].as_array().into_iter().flatten() {
        n += count(&t["function"].to_string());
    }
    Some(n)
}

/// What the provider counts for one sent request at its arrival: 1 request, and its input
/// plus the sent output cap. A request sent without a cap has no bound: an error.
fn provider_count(body: &Value) -> Result<u64, String> {
    let cap = body["max_tokens"]
        .as_u64()
        .ok_or_else(|| format!("a request was sent without max_tokens: {body}"))?;
    let input = openai_input_tokens(body).ok_or("cannot count the sent body")?;
    Ok(input + cap)
}

/// The first trailing window of a limit that held more than the limit, if any.
fn first_overrun(sent: &[(Instant, u64)], limits: &[Limit]) -> Option<String> {
    for l in limits {
        for &(end, _) in sent {
            let in_window = sent
                .iter()
                .filter(|(t, _)| *t <= end && end.duration_since(*t) < l.period);
            let used: u64 = match l.dimension {
                Dimension::Requests => in_window.count() as u64,
                _ => in_window.map(|(_, w)| *w).sum(),
            };
            if used > l.amount.get() {
                return Some(format!("{used} > {l} in the window ending at {end:?}"));
            }
        }
    }
    None
}

// ---------- harness ----------

const SCOPE: &str = "openai/model";

async fn supervised(limits: &[Limit]) -> QuotaHandle {
    let q = QuotaHandle::start_local(SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    })
    .unwrap();
    let spec = ScopeSpec {
        limits: limits.to_vec(),
        ..ScopeSpec::default()
    };
    q.register_scope(ScopeId::from(SCOPE), spec).await.unwrap();
    q
}

fn route(fake: &Arc<Fake>, q: &QuotaHandle, who: &str, output_cap: u32) -> Route {
    Route {
        provider: ProviderRef::start(&ActorSystem::current().unwrap(), fake.clone()),
        key: None,
        retry: RetryPolicy::default(),
        requester: Arc::from(who),
        quota: Some(QuotaRoute {
            handle: q.clone(),
            candidates: vec![vec![ScopeId::from(SCOPE)]],
            deadline: Some(Duration::from_secs(3600)),
            run_deadline: None,
            output_cap: Some(output_cap),
            extra_scopes: Vec::new(),
        }),
        pool: None,
        models: None,
        usage: None,
        budget: None,
    }
}

fn tool() -> ToolSpec {
    ToolSpec {
        name: "new_answer".into(),
        description: "Provide an improved answer to the ORIGINAL MESSAGE".into(),
        parameters: serde_json::json!({"type": "object",
            "properties": {"content": {"type": "string"}}, "required": ["content"]}),
    }
}

fn chat(model: &str, system: &str, user: String, max_tokens: Option<u32>) -> ChatRequest {
    ChatRequest {
        options: Default::default(),
        model: model.into(),
        messages: vec![Message::system(system), Message::user(user)],
        tools: vec![tool()],
        temperature: None,
        max_tokens,
        stream: false,
    }
}

/// The output cap a route gets from a limits entry without `default_max_tokens`.
fn table_cap(limits: &[Limit]) -> u32 {
    ModelLimits {
        limits: limits.to_vec(),
        ..ModelLimits::default()
    }
    .output_cap("openai")
}

const WORDS: [&str; 16] = [
    "the",
    "answer",
    "is",
    "four",
    "because",
    "two",
    "plus",
    "equals",
    "agent",
    "votes",
    "Rayleigh",
    "scattering",
    "naïve",
    "Grüße",
    "quota",
    "window",
];

fn words(seed: u64, n: usize) -> String {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..n)
        .map(|_| WORDS[rng.usize(..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------- paused-time routing tests ----------

/// Nine small requests under 3000 TPM (three agents, three calls each).
async fn nine_calls(fake: &Arc<Fake>, q: &QuotaHandle, max_tokens: Option<u32>, cap: u32) {
    let mut tasks = Vec::new();
    for agent in 0..3u64 {
        let r = route(fake, q, &format!("agent{agent}"), cap);
        tasks.push(tokio::spawn(async move {
            for turn in 0..3u64 {
                let user = words(agent * 10 + turn, 40);
                let build = || chat("gpt-4o-mini", "You are an agent.", user.clone(), max_tokens);
                call(&r, build, None, 0, &Quiet).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn small_requests_under_3000_tpm_do_not_stall_for_a_minute() {
    let tpm = [Limit::tpm(std::num::NonZeroU64::new(3000).unwrap())];
    // OpenAI-style counting (input + cap, no refund) with a modest cap: all nine fit.
    let fake = Fake::new("openai", vec![(Duration::from_secs(2), 120); 9]);
    let q = supervised(&tpm).await;
    let start = Instant::now();
    nine_calls(&fake, &q, Some(200), table_cap(&tpm)).await;
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(fake.caps(), vec![Some(200); 9]);
    // Counting the way Gemini does (settled to the reported usage), even the table's default
    // cap (1/4 of the limit) keeps the nine flowing: each reservation is refunded as it ends.
    let fake = Fake::new("gemini", vec![(Duration::from_secs(2), 120); 9]);
    let q = supervised(&tpm).await;
    let start = Instant::now();
    let cap = table_cap(&tpm);
    assert_eq!(cap, 750);
    nine_calls(&fake, &q, None, cap).await;
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        fake.caps(),
        vec![Some(750); 9],
        "the cap reserved is the cap sent"
    );
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn requests_of_111_to_301_tokens_fit_1000_tpm_with_the_default_cap() {
    let tpm = [Limit::tpm(std::num::NonZeroU64::new(1000).unwrap())];
    let cap = table_cap(&tpm);
    assert_eq!(cap, 250);
    // Real usage 111..=301 tokens: about 70 of prompt and 40..230 of output.
    let outputs = [40u64, 230, 120, 90];
    let script = outputs
        .iter()
        .map(|&o| (Duration::from_secs(1), o))
        .collect();
    let fake = Fake::new("openai", script);
    let q = supervised(&tpm).await;
    let r = route(&fake, &q, "agent", cap);
    let mut used = Vec::new();
    for (i, _) in outputs.iter().enumerate() {
        let user = words(i as u64, 25);
        let report = call(
            &r,
            || chat("gpt-4o-mini", "Be brief.", user.clone(), None),
            None,
            0,
            &Quiet,
        )
        .await
        .unwrap();
        used.push(report.usage.total());
    }
    assert!(used.iter().all(|u| (100..=320).contains(u)), "{used:?}");
    assert_eq!(fake.caps(), vec![Some(250); 4]);
    let counted: Vec<(Instant, u64)> = fake
        .sent()
        .iter()
        .map(|(t, b)| (*t, provider_count(b).unwrap()))
        .collect();
    assert_eq!(first_overrun(&counted, &tpm), None);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_token_limit_tighter_than_the_routes_cap_lowers_the_cap_instead_of_refusing() {
    // The route's cap was chosen before a tighter limit was known (a provider's TPM learned
    // from its headers, or a shared group's): 4,096 can never fit 1,000 TPM, half of what the
    // limit leaves beside the prompt can, and that is both reserved and sent.
    let tpm = [Limit::tpm(std::num::NonZeroU64::new(1000).unwrap())];
    let fake = Fake::new("openai", vec![(Duration::from_secs(1), 40); 2]);
    let q = supervised(&tpm).await;
    let r = route(&fake, &q, "agent", 4096);
    let user = words(7, 25);
    call(
        &r,
        || chat("gpt-4o-mini", "Be brief.", user.clone(), None),
        None,
        0,
        &Quiet,
    )
    .await
    .unwrap();
    let caps = fake.caps();
    let cap = caps[0].unwrap();
    assert!((300..500).contains(&cap), "{caps:?}");
    let counted: Vec<(Instant, u64)> = fake
        .sent()
        .iter()
        .map(|(t, b)| (*t, provider_count(b).unwrap()))
        .collect();
    assert_eq!(first_overrun(&counted, &tpm), None);
    // A cap the agent set itself is not changed: the refusal stands.
    let err = call(
        &r,
        || chat("gpt-4o-mini", "Be brief.", user.clone(), Some(4096)),
        None,
        0,
        &Quiet,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("max_tokens"), "{err}");
    assert_eq!(fake.caps().len(), 1);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_prompt_that_grew_after_the_grant_is_topped_up_or_waits() {
    let tpm = [Limit::tpm(std::num::NonZeroU64::new(1000).unwrap())];
    let fake = Fake::new("openai", vec![(Duration::from_secs(1), 10); 4]);
    let q = supervised(&tpm).await;
    let r = route(&fake, &q, "agent", 100);
    // The first build (the estimate) sees `base`; every later one (after the grant) sees
    // `base` and one more answer.
    let grows = |base: String, extra: String| {
        let builds = std::sync::atomic::AtomicUsize::new(0);
        move || {
            let n = builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let prompt = if n == 0 {
                base.clone()
            } else {
                format!("{base}\n{extra}")
            };
            chat("gpt-4", "s", prompt, None)
        }
    };
    // Grows by ~60 words: fits, topped up, and the grown prompt is what is sent.
    let (base, extra) = (words(1, 20), words(2, 60));
    call(&r, grows(base.clone(), extra.clone()), None, 0, &Quiet)
        .await
        .unwrap();
    let sent = fake.sent();
    let content = sent[0].1["messages"][1]["content"].as_str().unwrap();
    assert_eq!(content, format!("{base}\n{extra}"));
    let held = q.snapshot().await.unwrap().scopes[0].limits[0].used;
    let counted = provider_count(&sent[0].1).unwrap();
    assert!(
        held >= counted,
        "the reservation {held} covers the grown prompt {counted}"
    );
    // Now it grows past what the window has left: the permit goes back uncounted and the call
    // waits for room, then sends the grown prompt.
    let start = Instant::now();
    let (base, extra) = (words(3, 20), words(4, 560));
    call(&r, grows(base.clone(), extra.clone()), None, 0, &Quiet)
        .await
        .unwrap();
    let sent = fake.sent();
    assert_eq!(sent.len(), 2);
    let content = sent[1].1["messages"][1]["content"].as_str().unwrap();
    assert_eq!(content, format!("{base}\n{extra}"));
    let counted: Vec<(Instant, u64)> = sent
        .iter()
        .map(|(t, b)| (*t, provider_count(b).unwrap()))
        .collect();
    assert!(counted[1].1 + counted[0].1 > 1000, "{counted:?}");
    assert!(
        start.elapsed() >= Duration::from_secs(59),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(first_overrun(&counted, &tpm), None);
}

#[test]
fn the_reference_sees_an_overrun() {
    let t = Instant::now();
    let tpm = [Limit::tpm(std::num::NonZeroU64::new(1000).unwrap())];
    assert_eq!(first_overrun(&[(t, 600)], &tpm), None);
    assert!(first_overrun(&[(t, 600), (t + Duration::from_secs(59), 401)], &tpm).is_some());
    assert_eq!(
        first_overrun(&[(t, 600), (t + Duration::from_secs(60), 1000)], &tpm),
        None
    );
    let body = serde_json::json!({"model": "gpt-4o", "messages": []});
    assert!(provider_count(&body).is_err(), "a request without a cap");
}

// ---------- the property ----------

/// One call of an agent: (prompt words, answer words, latency ms, output tokens).
type Turn = (usize, usize, u64, u64);

#[derive(Debug, Clone)]
struct Transcript {
    model: &'static str,
    rpm: u64,
    tpm: u64,
    period_s: u64,
    /// Through a key pool (`routing::keyed`) rather than a single endpoint.
    keyed: bool,
    /// Per agent: its max_tokens and, per call, (prompt words, answer words, latency ms,
    /// output tokens).
    agents: Vec<(Option<u32>, Vec<Turn>)>,
}

fn transcript() -> impl Strategy<Value = Transcript> {
    let call = (0usize..=120, 1usize..=60, 0u64..=5000, 1u64..=600);
    let agent = (
        proptest::option::of(16u32..=400),
        proptest::collection::vec(call, 1..=3),
    );
    (
        proptest::sample::select(vec![
            "gpt-4o-mini",
            "gpt-4",
            "gpt-4.1",
            "o3-mini",
            "gpt-3.5-turbo",
        ]),
        2u64..=30,
        600u64..=5000,
        proptest::sample::select(vec![10u64, 60]),
        proptest::collection::vec(agent, 1..=4),
        any::<bool>(),
    )
        .prop_map(|(model, rpm, tpm, period_s, agents, keyed)| Transcript {
            model,
            rpm,
            tpm,
            period_s,
            keyed,
            agents,
        })
}

/// Runs `t` on paused time; returns what was sent, as the provider counts it, and the limits.
fn run(t: &Transcript) -> (Vec<(Instant, Value)>, Vec<Limit>, usize) {
    let rt = crate::paused_system();
    rt.block_on(async {
        let period = Duration::from_secs(t.period_s);
        let limits = vec![
            Limit::new(Dimension::Requests, t.rpm, period).unwrap(),
            Limit::new(Dimension::Tokens, t.tpm, period).unwrap(),
        ];
        let q = supervised(&limits).await;
        let script = t
            .agents
            .iter()
            .flat_map(|(_, calls)| calls.iter().map(|c| (Duration::from_millis(c.2), c.3)))
            .collect();
        let fake = Fake::new("openai", script);
        let cap = table_cap(&limits);
        let board: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut tasks = Vec::new();
        for (i, (max_tokens, calls)) in t.agents.iter().cloned().enumerate() {
            let mut r = route(&fake, &q, &format!("agent{i}"), cap);
            if t.keyed {
                // Counted per account: the pool's one scope is the model's, `SCOPE`.
                let key = ApiKey::new("sk-test-0123456789abcdef", "test");
                let keys = KeyRegistry::new(&ActorSystem::current().unwrap());
                let pool = KeyPool::new(
                    &keys,
                    "openai",
                    "model",
                    vec![key],
                    ScopeKind::PerAccount,
                    None,
                );
                assert_eq!(pool.candidates()[0].scopes, vec![ScopeId::from(SCOPE)]);
                r.pool = Some(Arc::new(pool));
            }
            let board = board.clone();
            let model = t.model;
            tasks.push(tokio::spawn(async move {
                let mut failed = 0;
                for (j, (prompt, answer, _, _)) in calls.into_iter().enumerate() {
                    let question = words((i * 100 + j) as u64, prompt);
                    let build = || {
                        let answers = board.lock().unwrap().join("\n");
                        chat(
                            model,
                            "You are an agent.",
                            format!("{question}\n{answers}"),
                            max_tokens,
                        )
                    };
                    match call(&r, build, None, 0, &Quiet).await {
                        Ok(_) => board
                            .lock()
                            .unwrap()
                            .push(words((i * 1000 + j) as u64, answer)),
                        Err(_) => failed += 1,
                    }
                }
                failed
            }));
        }
        let mut failed = 0;
        for task in tasks {
            failed += task.await.unwrap();
        }
        (fake.sent(), limits, failed)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn what_was_sent_never_exceeds_a_limit_as_the_provider_counts_it(t in transcript()) {
        let (sent, limits, failed) = run(&t);
        let calls: usize = t.agents.iter().map(|a| a.1.len()).sum();
        prop_assert_eq!(sent.len() + failed, calls, "every call was sent or refused");
        let mut counted = Vec::new();
        for (at, body) in &sent {
            counted.push((*at, provider_count(body).map_err(TestCaseError::fail)?));
        }
        if let Some(overrun) = first_overrun(&counted, &limits) {
            return Err(TestCaseError::fail(overrun));
        }
    }
}
