//! The gateway in front of the mock provider, with both enforcing the same limits, as real
//! clients use it: 200 concurrent clients at once, three gateway processes sharing one limit
//! through their state file, and MassGen itself (the Python package) running a 3-agent team
//! through it. Checked against the mock's own records (`/stats`,
//! `/admissions`): every request answered, none lost, none refused, no window over its limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "gateway/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "gateway/load.rs"]
#[allow(dead_code)]
mod load;
#[path = "gateway/massgen.rs"]
mod massgen;

use std::time::Duration;

use common::{get_blocking, serve, spawn_listening};

/// Writes `limits` to `limits.yaml` in `dir` and starts the mock enforcing them.
fn mock_with(dir: &std::path::Path, limits: &str) -> (common::Child, String) {
    let file = dir.join("limits.yaml");
    std::fs::write(&file, limits).unwrap();
    spawn_listening(&[
        "mock-provider",
        "--listen",
        "127.0.0.1:0",
        "--limits",
        file.to_str().unwrap(),
    ])
}

/// The sum of the gateway's permit waits, from its `/metrics`.
fn waited_secs(gateway: &str) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let text = rt.block_on(async {
        common::client()
            .get(format!("http://{gateway}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    text.lines()
        .filter(|l| l.starts_with("massgen_quota_permit_wait_seconds_sum"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn two_hundred_concurrent_clients_are_all_answered_within_the_mocks_limit() {
    const CLIENTS: usize = 200;
    // Per minute, as OpenAI-compatible providers count (and describe in their headers): the
    // first 150 go at once, the other 50 wait for the window to free.
    const RPM: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let limits = format!("chatcompletion:\n  mock-a: {{rpm: {RPM}, tpm: 1000000}}\n");
    let (_mock, mock) = mock_with(dir.path(), &limits);
    let (_gateway, gateway) = serve(
        dir.path(),
        &format!(
            "max_wait: 120s\nmodels:\n  - name: mocked\n    backend: {{type: chatcompletion, \
             model: mock-a, base_url: 'http://{mock}/v1', api_key: key-load-000000000000}}\n\
             rate_limit: {{limits_file: limits.yaml, state: none}}\n"
        ),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("http://{gateway}/v1/chat/completions");
    let out = rt.block_on(load::run(&url, "none", "mocked", CLIENTS, 0, 1));
    assert!(
        out.failures.is_empty(),
        "{:?}",
        &out.failures[..5.min(out.failures.len())]
    );
    assert_eq!(out.sent, CLIENTS as u64);
    assert_eq!(out.answered, CLIENTS as u64);
    // The mock's side: every request arrived once, none was refused, and no trailing second
    // held more than the limit.
    let stats = get_blocking(&mock, "/stats");
    assert_eq!(
        load::mock_counts(&stats, "mock-a"),
        (CLIENTS as u64, 0),
        "{stats}"
    );
    let admissions = get_blocking(&mock, "/admissions");
    assert_eq!(admissions.as_array().unwrap().len(), CLIENTS);
    let minute = Duration::from_secs(60);
    let busiest = load::busiest_window(&admissions, "mock-a", minute);
    // The gateway used the whole limit and never more.
    assert_eq!(busiest, RPM, "the most requests in one minute at the mock");
    let tokens = load::busiest_tokens(&admissions, "mock-a", minute);
    assert!(
        tokens <= 1_000_000,
        "{tokens} tokens in one minute at the mock"
    );
    let status = get_blocking(&gateway, "/status");
    let scope = status["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"].as_str().unwrap_or_default().contains("mock-a"))
        .unwrap_or_else(|| panic!("{status}"))
        .clone();
    assert_eq!(scope["granted_total"], CLIENTS as u64, "{status}");
    assert_eq!(scope["denied_total"], 0, "{status}");
    assert!(waited_secs(&gateway) > 1.0, "no request waited for quota");
}

/// Three gateway processes on one state file keep one provider limit together: whichever
/// gateway a client asks, the minute admits its requests and no more; the rest wait out their
/// deadline and get 429 with a Retry-After, and the mock refuses nothing.
#[test]
fn three_gateways_on_one_state_file_keep_one_limit_together() {
    const RPM: u64 = 20;
    const PER_GATEWAY: usize = 15;
    let dir = tempfile::tempdir().unwrap();
    let limits = format!("chatcompletion:\n  mock-a: {{rpm: {RPM}, tpm: 1000000}}\n");
    let (_mock, mock) = mock_with(dir.path(), &limits);
    let config = format!(
        "max_wait: 15s\nmodels:\n  - name: mocked\n    backend: {{type: chatcompletion, \
         model: mock-a, base_url: 'http://{mock}/v1', api_key: key-shared-0000000000}}\n\
         rate_limit: {{limits_file: limits.yaml, state: '{}'}}\n",
        dir.path().join("state.db").display()
    );
    let gateways: Vec<_> = (0..3).map(|_| serve(dir.path(), &config)).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let outcomes = rt.block_on(async {
        let runs = gateways.iter().map(|(_, addr)| {
            let url = format!("http://{addr}/v1/chat/completions");
            async move { load::run(&url, "none", "mocked", PER_GATEWAY, 0, 1).await }
        });
        futures_util::future::join_all(runs).await
    });
    let answered: u64 = outcomes.iter().map(|o| o.answered).sum();
    let failures: Vec<&String> = outcomes.iter().flat_map(|o| &o.failures).collect();
    // Every request was answered: a completion, or a 429 once its 15 s were up.
    assert_eq!(answered + failures.len() as u64, 3 * PER_GATEWAY as u64);
    assert!(
        failures
            .iter()
            .all(|f| f.starts_with("429") && f.contains("rate_limit_exceeded")),
        "{failures:?}"
    );
    // The minute's whole limit was used, and never more, by the three together.
    assert_eq!(answered, RPM, "{failures:?}");
    let stats = get_blocking(&mock, "/stats");
    assert_eq!(load::mock_counts(&stats, "mock-a"), (RPM, 0), "{stats}");
    let admissions = get_blocking(&mock, "/admissions");
    assert_eq!(
        load::busiest_window(&admissions, "mock-a", Duration::from_secs(60)),
        RPM
    );
    // What each gateway granted, from its own /status.
    let granted: Vec<u64> = gateways
        .iter()
        .map(|(_, addr)| {
            let status = get_blocking(addr, "/status");
            status["scopes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["scope"].as_str().unwrap_or_default().contains("mock-a"))
                .unwrap_or_else(|| panic!("{status}"))["granted_total"]
                .as_u64()
                .unwrap()
        })
        .collect();
    // Each gateway granted what its own clients saw answered, together exactly the limit (no
    // one gateway could take it all: 15 clients each).
    let answered_per: Vec<u64> = outcomes.iter().map(|o| o.answered).collect();
    assert_eq!(granted, answered_per);
    assert_eq!(granted.iter().sum::<u64>(), RPM, "{granted:?}");
}

#[test]
fn massgen_runs_a_three_agent_team_through_the_gateway_without_a_429() {
    let massgen = massgen::installed();
    let dir = tempfile::tempdir().unwrap();
    // One request every 2 s, 20 a minute and 200,000 tokens a minute (a MassGen call weighs
    // about 8,000: its prompt and the output cap) per key and model, at the mock as at a real
    // provider: MassGen's three agents start their calls at once, so without the gateway's
    // waiting two of the three would be refused.
    let limits = "chatcompletion:\n  mock-a: {rpm: 20, tpm: 200000, \
                  windows: [{requests: 1, per: 2s}]}\n";
    let (_mock, mock) = mock_with(dir.path(), limits);
    let (_gateway, gateway) = serve(
        dir.path(),
        &format!(
            "max_wait: 120s\nmodels:\n  - name: {}\n    backend: {{type: chatcompletion, \
             model: mock-a, base_url: 'http://{mock}/v1', api_key: key-massgen-0000000000}}\n\
             rate_limit: {{limits_file: limits.yaml, state: none}}\n\
             clients:\n  - name: massgen\n    key: {}\n    role: user\n",
            massgen::MODEL,
            massgen::CLIENT_KEY
        ),
    );
    let run = massgen::run_team(&massgen, &gateway, "What is the capital of France?");
    assert!(run.success, "MassGen failed:\n{}", run.output);
    // The answer MassGen kept is one the mock wrote.
    assert!(
        run.answer.starts_with("A mock answer from mock-a"),
        "answer {:?}:\n{}",
        run.answer,
        run.output
    );
    // Nothing left the machine: every other host MassGen tried went to the test's proxy trap,
    // which refused it. The only one allowed is MassGen's own price-list download, which it
    // still tries for some lookups even for a model its bundled table knows.
    let unexpected: Vec<&String> = run
        .strays
        .iter()
        .filter(|s| !s.starts_with("CONNECT raw.githubusercontent.com:443 "))
        .collect();
    assert!(
        unexpected.is_empty(),
        "MassGen tried to reach other hosts: {unexpected:?}\n{}",
        run.output
    );
    // The mock's own records: MassGen's calls all arrived, none was refused, none too close.
    let stats = get_blocking(&mock, "/stats");
    let (admitted, refused) = load::mock_counts(&stats, "mock-a");
    assert!(
        admitted >= 4,
        "three answers or votes and a final answer: {stats}"
    );
    assert_eq!(refused, 0, "{stats}");
    let openai = &stats["by_dialect"]["openai"];
    assert!(
        openai["votes"].as_u64().unwrap() >= 1,
        "the mock voted for MassGen: {stats}"
    );
    let admissions = get_blocking(&mock, "/admissions");
    let busiest = load::busiest_window(&admissions, "mock-a", Duration::from_secs(2));
    assert_eq!(busiest, 1, "two requests within 2 s at the mock");
    let minute = Duration::from_secs(60);
    assert!(load::busiest_window(&admissions, "mock-a", minute) <= 20);
    let tokens = load::busiest_tokens(&admissions, "mock-a", minute);
    assert!(
        tokens <= 200_000,
        "{tokens} tokens within a minute at the mock"
    );
    // The gateway held MassGen's parallel calls rather than passing them on, and granted
    // exactly what the mock admitted.
    assert!(waited_secs(&gateway) > 1.0, "no MassGen call waited");
    let status = get_blocking(&gateway, "/status");
    let scope = status["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "chatcompletion/mock-a")
        .unwrap_or_else(|| panic!("{status}"));
    assert_eq!(scope["granted_total"], admitted, "{status}");
    assert_eq!(scope["denied_total"], 0, "{status}");
}
