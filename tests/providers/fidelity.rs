//! Fidelity: the mock behaves like the real APIs on the wire (headers, resets, counting,
//! hostile replies), and whole teams hold the protocol and the quota guarantee against it,
//! checked from the server's side (its admission log and what it received).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use massgen::config::{
    AgentConfig, BackendConfig, BackendKind, ModelLimits, SimulatedSettings, TeamConfig,
};
use massgen::mock_provider::{
    FaultSpec, Hostile, MockAdmission, MockDimension, MockLimit, MockLimits, MockOptions,
    MockServerHandle, serve,
};
use massgen::orchestrator::FinalAgentState;
use massgen::quota::{Dimension, Limit, ScopeKind};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::{Runtime, RuntimeOptions};
use serde_json::{Value, json};

use super::{FIRST, KINDS, key, provider, request};

async fn mock_with(opts: MockOptions) -> MockServerHandle {
    serve(opts).await.unwrap()
}

fn limit(dim: MockDimension, n: u64, period: Duration) -> MockLimit {
    MockLimit::new(dim, n, period).unwrap()
}

async fn post(url: String, headers: &[(&str, &str)], body: &Value) -> reqwest::Response {
    let mut r = reqwest::Client::new().post(url).json(body);
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {name} header: {:?}", r.headers()))
}

fn openai_body(model: &str, max_tokens: Option<u64>) -> Value {
    let mut b = json!({"model": model, "messages": [
        {"role": "system", "content": "You are agent one."},
        {"role": "user", "content": FIRST}],
        "tools": [{"type": "function", "function": {"name": "new_answer", "description": "d",
            "parameters": {"type": "object"}}}]});
    if let Some(m) = max_tokens {
        b["max_tokens"] = json!(m);
    }
    b
}

#[tokio::test]
async fn openai_headers_describe_the_real_window_and_429s_say_exactly_when() {
    let window = Duration::from_secs(10);
    let server = mock_with(MockOptions {
        limits: MockLimits::uniform_mock(vec![limit(MockDimension::Requests, 2, window)]),
        ..MockOptions::default()
    })
    .await;
    let url = format!("{}/chat/completions", server.v1_url());
    let auth = [("authorization", "Bearer k-0123456789")];
    // Before the first request: its admission, which the window counts from, comes later.
    let started = std::time::Instant::now();
    let r = post(url.clone(), &auth, &openai_body("gpt-4o", Some(10))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "1");
    // Full reset: the whole 10 s window from now (a Go duration, at most 10s).
    let reset = header(&r, "x-ratelimit-reset-requests");
    assert!(reset == "10s" || reset.starts_with("9."), "{reset}");
    post(url.clone(), &auth, &openai_body("gpt-4o", Some(10))).await;
    let r = post(url.clone(), &auth, &openai_body("gpt-4o", Some(10))).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    let retry_ms: u64 = header(&r, "retry-after-ms").parse().unwrap();
    // Whole seconds, rounded up, of the same wait.
    assert_eq!(retry, retry_ms.div_ceil(1000), "{retry} s, {retry_ms} ms");
    let elapsed = u64::try_from(started.elapsed().as_millis()).unwrap();
    // The first admission fell between `started` and now, so its entry leaves the window
    // between 10 s - elapsed from now and 10 s from now, however slow the machine is.
    assert!(
        retry_ms <= 10_000 && retry_ms + 1 >= 10_000u64.saturating_sub(elapsed),
        "{retry_ms} ms, {elapsed} ms elapsed"
    );
    let body: Value = r.json().await.unwrap();
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("Limit 2, Used 2, Requested 1"), "{msg}");
    // The message names the same wait, in OpenAI's words ("Please try again in 9.873s").
    let (secs, frac) = (retry_ms / 1000, retry_ms % 1000);
    let said = if frac == 0 {
        format!("Please try again in {secs}s.")
    } else {
        format!("Please try again in {secs}.")
    };
    assert!(msg.contains(&said), "{msg}");
    assert_eq!(body["error"]["type"], "requests");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
}

#[tokio::test]
async fn openai_charges_input_plus_the_sent_cap_or_the_models_maximum() {
    let tpm = limit(MockDimension::Tokens, 20_000, Duration::from_secs(60));
    let server = mock_with(MockOptions {
        limits: MockLimits::uniform_mock(vec![tpm]),
        ..MockOptions::default()
    })
    .await;
    let url = format!("{}/chat/completions", server.v1_url());
    let auth = [("authorization", "Bearer k-0123456789")];
    let r = post(url.clone(), &auth, &openai_body("gpt-4o-mini", Some(100))).await;
    let body: Value = r.json().await.unwrap();
    let input = body["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(input > 30 && input < 400, "{input}");
    // No cap sent: charged the model's largest output (16384 for gpt-4o-mini).
    let r = post(url.clone(), &auth, &openai_body("gpt-4o-mini", None)).await;
    assert_eq!(r.status(), 200);
    let log = server.admissions();
    assert_eq!(log[0].charged.tokens, input + 100);
    assert_eq!(log[1].charged.tokens, input + 16_384);
    assert_eq!(log[1].max_output_sent, None);
    // The window now holds input*2 + 16484: another uncapped request does not fit.
    let r = post(url.clone(), &auth, &openai_body("gpt-4o-mini", None)).await;
    assert_eq!(r.status(), 429);
    let stats = server.stats();
    assert_eq!(stats.by_dialect["openai"].refused, 1);
    assert_eq!(stats.total.tokens, 2 * input + 16_484);
    // A tiny cap cuts the reply: no tool call, finish_reason length, output within the cap.
    let r = post(url, &auth, &openai_body("gpt-4o-mini", Some(3))).await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "length", "{body}");
    assert!(body["choices"][0]["message"]["tool_calls"].is_null());
    assert!(body["usage"]["completion_tokens"].as_u64().unwrap() <= 3);
}

#[tokio::test]
async fn groq_mode_describes_the_daily_request_limit() {
    let server = mock_with(MockOptions {
        limits: MockLimits::uniform_mock(vec![
            limit(MockDimension::Requests, 30, Duration::from_secs(60)),
            limit(MockDimension::Requests, 1000, Duration::from_secs(86_400)),
            limit(MockDimension::Tokens, 6000, Duration::from_secs(60)),
        ]),
        ..MockOptions::default()
    })
    .await;
    let url = format!("{}/chat/completions", server.v1_url());
    let auth = [("authorization", "Bearer k-0123456789")];
    let r = post(
        url.clone(),
        &auth,
        &openai_body("groq/llama-3.3-70b", Some(10)),
    )
    .await;
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "1000");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "999");
    let reset = header(&r, "x-ratelimit-reset-requests");
    assert!(reset.starts_with("23h59m") || reset == "24h0m0s", "{reset}");
    assert_eq!(header(&r, "x-ratelimit-limit-tokens"), "6000");
    let r = post(url, &auth, &openai_body("llama-3.3-70b", Some(10))).await;
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "30");
}

#[tokio::test]
async fn anthropic_counts_itpm_and_otpm_and_adjusts_output_at_completion() {
    let minute = Duration::from_secs(60);
    let server = mock_with(MockOptions {
        limits: MockLimits::uniform_mock(vec![
            limit(MockDimension::Requests, 50, minute),
            limit(MockDimension::InputTokens, 10_000, minute),
            limit(MockDimension::OutputTokens, 1_000, minute),
        ]),
        ..MockOptions::default()
    })
    .await;
    let url = format!("{}/messages", server.v1_url());
    let h = [("x-api-key", "k-0123456789")];
    let body = |max: u64| {
        json!({"model": "claude-x", "max_tokens": max, "system": "s",
        "messages": [{"role": "user", "content": FIRST}],
        "tools": [{"name": "new_answer", "input_schema": {"type": "object"}}]})
    };
    let r = post(url.clone(), &h, &body(900)).await;
    assert_eq!(r.status(), 200);
    let reset = header(&r, "anthropic-ratelimit-output-tokens-reset");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&reset).is_ok(),
        "{reset}"
    );
    // Charged 900 at arrival, so the header says 100 left...
    assert_eq!(
        header(&r, "anthropic-ratelimit-output-tokens-remaining"),
        "100"
    );
    let v: Value = r.json().await.unwrap();
    let out = v["usage"]["output_tokens"].as_u64().unwrap();
    assert!(out > 0 && out < 100, "{out}");
    // ...and adjusted to the actual output once answered: another 900 fits.
    let r = post(url.clone(), &h, &body(900)).await;
    assert_eq!(r.status(), 200);
    let log = server.admissions();
    assert_eq!(log[0].charged_at_arrival.output_tokens, 900);
    assert_eq!(log[0].charged.output_tokens, out);
    let settled = log[0].settled_at.unwrap();
    assert_eq!(log[0].weight_at(log[0].at).output_tokens, 900);
    assert_eq!(log[0].weight_at(settled).output_tokens, out);
    // Without max_tokens the API refuses the request.
    let mut no_cap = body(1);
    no_cap.as_object_mut().unwrap().remove("max_tokens");
    let r = post(url, &h, &no_cap).await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn gemini_refusals_name_minute_or_day_quotas_and_charge_actual_usage() {
    let server = mock_with(MockOptions {
        limits: MockLimits::uniform_mock(vec![limit(
            MockDimension::Requests,
            1,
            Duration::from_secs(86_400),
        )])
        .with_model_mock(
            "per-minute",
            vec![limit(MockDimension::Requests, 1, Duration::from_secs(60))],
        ),
        ..MockOptions::default()
    })
    .await;
    let h = [("x-goog-api-key", "k-0123456789")];
    let body = json!({"contents": [{"role": "user", "parts": [{"text": FIRST}]}],
        "generationConfig": {"maxOutputTokens": 500}});
    for (model, quota) in [
        (
            "per-day",
            "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
        ),
        (
            "per-minute",
            "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
        ),
    ] {
        let url = format!("{}/models/{model}:generateContent", server.gemini_url());
        let r = post(url.clone(), &h, &body).await;
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()
                .keys()
                .all(|k| !k.as_str().contains("ratelimit"))
        );
        let v: Value = r.json().await.unwrap();
        let usage = &v["usageMetadata"];
        let total = usage["totalTokenCount"].as_u64().unwrap();
        let r = post(url, &h, &body).await;
        assert_eq!(r.status(), 429);
        let v: Value = r.json().await.unwrap();
        let details = v["error"]["details"].as_array().unwrap();
        assert_eq!(details[0]["violations"][0]["quotaId"], quota, "{v}");
        let delay = details[1]["retryDelay"].as_str().unwrap();
        assert!(delay.ends_with('s') && delay[..delay.len() - 1].parse::<u64>().is_ok());
        let charged = server
            .admissions()
            .iter()
            .find(|a| a.model == model)
            .unwrap()
            .charged
            .tokens;
        assert_eq!(
            charged, total,
            "Gemini is charged what it used, not the cap"
        );
    }
}

#[tokio::test]
async fn hostile_replies_are_served_as_specified() {
    let server = mock_with(MockOptions {
        faults: FaultSpec::parse("hostile-huge:first=1,hostile-limits:first=2").unwrap(),
        ..MockOptions::default()
    })
    .await;
    let url = format!("{}/chat/completions", server.v1_url());
    let auth = [("authorization", "Bearer k-0123456789")];
    let r = post(url.clone(), &auth, &openai_body("gpt-4o", Some(10))).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), "99999999999999999999");
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("try again in 99999999999999999999h")
    );
    let r = post(url, &auth, &openai_body("gpt-4o", Some(10))).await;
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-ratelimit-limit-requests"), "0");
    assert_eq!(header(&r, "x-ratelimit-remaining-requests"), "-3");
}

#[tokio::test]
async fn every_hostile_reply_reaches_the_adapters_without_a_panic() {
    for h in Hostile::ALL {
        let spec = format!("hostile-{}:1.0", h.name());
        let server = mock_with(MockOptions {
            faults: FaultSpec::parse(&spec).unwrap(),
            ..MockOptions::default()
        })
        .await;
        for kind in KINDS {
            let p = provider(kind, &server);
            let r = p
                .chat(&request(FIRST, true, false), Some(&key("h")), None)
                .await;
            assert_eq!(r.is_ok(), h.is_answer(), "{spec} {kind:?}: {r:?}");
        }
    }
}

// ---- Teams end to end ----------------------------------------------------------------------

const WINDOW: Duration = Duration::from_secs(1);
const REQUESTS: u64 = 4;
const TOKENS: u64 = 3_000;

fn agent(id: &str, kind: BackendKind, server: &MockServerHandle) -> AgentConfig {
    let base_url = if kind == BackendKind::Gemini {
        server.gemini_url()
    } else {
        server.v1_url()
    };
    AgentConfig {
        voting_sensitivity: None,
        id: id.to_owned(),
        backend: BackendConfig {
            options: Default::default(),
            pool: None,
            kind,
            model: "gpt-4o-mini".to_owned(),
            base_url: Some(base_url),
            api_keys: vec![key("team")],
            temperature: None,
            max_tokens: Some(200),
            enable_rate_limit: Some(true),
            simulated: SimulatedSettings::default(),
        },
        system_message: Some(format!("You are {id}, a careful analyst.")),
        priority: 0,
        profile: None,
    }
}

/// The most any trailing window of `limit` held at an admission, replaying the admission log
/// with each earlier admission at the weight it had then (arrival weight until settled).
fn max_in_window(log: &[MockAdmission], scope: &str, limit: &MockLimit) -> u64 {
    let of_scope: Vec<&MockAdmission> = log.iter().filter(|a| a.scope == scope).collect();
    let mut worst = 0;
    for (j, last) in of_scope.iter().enumerate() {
        let held: u64 = of_scope[..=j]
            .iter()
            .filter(|a| last.at.duration_since(a.at) < limit.period)
            .map(|a| a.weight_at(last.at).weight(limit.dimension))
            .sum();
        worst = worst.max(held);
    }
    worst
}

async fn team_against_the_mock(kind: BackendKind, n: usize) {
    let ctx = format!("{kind:?} x{n}");
    let mock_limits = vec![
        limit(MockDimension::Requests, REQUESTS, WINDOW),
        limit(MockDimension::Tokens, TOKENS, WINDOW),
    ];
    let server = mock_with(MockOptions {
        limits: MockLimits::uniform_mock(mock_limits.clone()),
        keys_share_limits: kind == BackendKind::Gemini,
        ..MockOptions::default()
    })
    .await;
    let model_limits = ModelLimits {
        matched: "test".into(),
        limits: vec![
            Limit::new(Dimension::Requests, REQUESTS, WINDOW).unwrap(),
            Limit::new(Dimension::Tokens, TOKENS, WINDOW).unwrap(),
        ],
        scope: ScopeKind::PerKey,
        window_guard: Duration::from_millis(100),
        ..ModelLimits::default()
    };
    let mut table: HashMap<(String, String), ModelLimits> = HashMap::new();
    table.insert(
        (kind.limits_provider().to_owned(), "gpt-4o-mini".to_owned()),
        model_limits,
    );
    let ids = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"];
    let agents = ids[..n].iter().map(|id| agent(id, kind, &server)).collect();
    let quota = QuotaHandle::start(SupervisorSettings {
        stagger: Duration::from_millis(50),
        ..SupervisorSettings::default()
    })
    .unwrap();
    let options = RuntimeOptions {
        rate_limit: true,
        limits: Some(Arc::new(table)),
        quota: Some(quota.clone()),
        ..RuntimeOptions::default()
    };
    let run = tokio::time::timeout(
        Duration::from_secs(30),
        Runtime::new(TeamConfig::new(agents), options)
            .unwrap()
            .run("Which is larger, 2^10 or 10^3?"),
    )
    .await;
    let stats = server.stats();
    let log = server.admissions();
    let Ok(run) = run else {
        let limits: Vec<_> = quota
            .snapshot()
            .await
            .map(|s| s.scopes.into_iter().map(|s| format!("{s:?}")).collect())
            .unwrap_or_default();
        panic!("{ctx}: the run did not end in 30 s; mock saw {stats:?}; supervisor: {limits:?}");
    };
    let out = run.unwrap_or_else(|e| panic!("{ctx}: the run failed: {e}; mock saw {stats:?}"));

    // The server's side first: no 429, no window over its limit, no retried turn.
    let seen = &stats.by_dialect[match kind {
        BackendKind::Gemini => "gemini",
        BackendKind::Claude => "anthropic",
        _ => "openai",
    }];
    assert_eq!(stats.total.refused, 0, "{ctx}: 429s: {stats:?}");
    let scopes: std::collections::BTreeSet<&str> = log.iter().map(|a| a.scope.as_str()).collect();
    for scope in scopes {
        for l in &mock_limits {
            let held = max_in_window(&log, scope, l);
            assert!(
                held <= l.amount.get(),
                "{ctx}: {scope} held {held} of {l:?}"
            );
        }
    }
    assert_eq!(
        (seen.rejections, seen.prose_calls),
        (0, 0),
        "{ctx}: provider calls retried rejected turns: {:?}",
        log.iter()
            .filter(|a| a.rejection.is_some())
            .map(|a| (&a.key, &a.rejection, a.native_rejection))
            .collect::<Vec<_>>()
    );
    // Bounded: at most one answer, one vote per restart and a presentation per agent.
    assert!(
        stats.total.admitted <= 4 * n as u64 + 1,
        "{ctx}: {} calls",
        stats.total.admitted
    );

    // The team's side: every agent live, several voters, a winner with more than one vote.
    let failed: Vec<_> = out
        .agents
        .iter()
        .filter(|a| a.state == FinalAgentState::Failed)
        .map(|a| (&a.id, &a.failure))
        .collect();
    assert!(failed.is_empty(), "{ctx}: retired agents: {failed:?}");
    let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &out.votes {
        *votes.entry(v.for_agent.as_str()).or_default() += 1;
    }
    let voters: std::collections::BTreeSet<&str> =
        out.votes.iter().map(|v| v.agent.as_str()).collect();
    assert!(voters.len() >= 2, "{ctx}: voters {voters:?}");
    let winner = out.winner.as_deref().unwrap();
    assert!(
        votes.get(winner).copied().unwrap_or(0) >= 2,
        "{ctx}: winner {winner} has votes {votes:?}"
    );
    assert!(out.final_answer.contains("Final answer"), "{ctx}");
    assert!(seen.votes >= 2 && seen.new_answers >= 1, "{ctx}: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_team_of_three_holds_protocol_and_limits() {
    team_against_the_mock(BackendKind::OpenAi, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_team_of_six_holds_protocol_and_limits() {
    team_against_the_mock(BackendKind::OpenAi, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_team_of_three_holds_protocol_and_limits() {
    team_against_the_mock(BackendKind::Gemini, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_team_of_six_holds_protocol_and_limits() {
    team_against_the_mock(BackendKind::Gemini, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_team_of_three_holds_protocol_and_limits() {
    team_against_the_mock(BackendKind::Claude, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_team_of_six_holds_protocol_and_limits() {
    team_against_the_mock(BackendKind::Claude, 6).await;
}

#[tokio::test]
async fn openais_reasoning_models_get_the_cap_as_max_completion_tokens() {
    let server = mock_with(MockOptions::default()).await;
    let mut r = request(FIRST, true, false);
    r.model = "gpt-5-mini".into();
    r.max_tokens = Some(200);
    // OpenAI's own API: the cap goes as max_completion_tokens, which every model takes.
    provider(BackendKind::OpenAi, &server)
        .chat(&r, Some(&key("r")), None)
        .await
        .unwrap();
    assert_eq!(server.admissions()[0].max_output_sent, Some(200));
    // The same request as max_tokens is what OpenAI refuses for these models (400).
    let err = provider(BackendKind::Vllm, &server)
        .chat(&r, Some(&key("r")), None)
        .await
        .unwrap_err();
    assert_eq!(err.status, Some(400), "{err}");
    assert!(err.message.contains("max_completion_tokens"), "{err}");
}
