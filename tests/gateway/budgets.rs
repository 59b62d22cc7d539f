//! Spending limits at the gateway: a client's own day budget (`clients[].quota.per_day_usd`)
//! inside the gateway's (`rate_limit.budget`), both counted from what the calls cost, and the
//! client's day spend read back from the usage ledger by a later gateway process.

use std::path::Path;

use serde_json::{Value, json};

use super::common::{bin, client, serve};

/// $1 per token in and out: a call's cost is its token count in dollars.
const PRICES: &str = "simulated:\n  sim-fast:\n    input: 1000000\n    output: 1000000\n    \
                      source: the test\n    as_of: 2026-01-01\n";

fn gateway_file(dir: &Path, gateway_day_usd: u32) -> String {
    std::fs::write(dir.join("prices.yaml"), PRICES).unwrap();
    format!(
        "models:\n  - name: sim\n    backend: {{type: simulated, model: sim-fast, max_tokens: 40}}\n\
         rate_limit:\n  prices: prices.yaml\n  state: '{}'\n  \
         budget: {{per_day_usd: {gateway_day_usd}}}\n\
         clients:\n  - {{name: alice, key: alice-key-0001, quota: {{per_day_usd: 400}}}}\n  \
         - {{name: bob, key: bob-key-00000002}}\n",
        dir.join("state.db").display()
    )
}

async fn ask(addr: &str, key: &str, n: usize) -> reqwest::Response {
    client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({
            "model": "sim",
            "messages": [{"role": "user", "content": format!("Question number {n}?")}]
        }))
        .send()
        .await
        .unwrap()
}

/// Asks as `key` until a call is refused; the answered count and the refusal's status,
/// Retry-After and body.
async fn spend_until_refused(addr: &str, key: &str) -> (usize, u16, Option<u64>, Value) {
    for n in 0..60 {
        let r = ask(addr, key, n).await;
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["object"], "chat.completion", "{body}");
            continue;
        }
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        return (n, status, retry, r.json().await.unwrap());
    }
    panic!("60 calls at $1 a token never reached a budget");
}

/// Each requester's recorded cost today, from `massgen-rs usage --by agent`.
fn spent_by(state: &Path) -> Value {
    let out = bin()
        .args(["usage", "--by", "agent", "--format", "json", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter()
        .map(|r| {
            (
                r["group"].as_str().unwrap_or("").to_owned(),
                r["cost_usd"].clone(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn cost(spent: &Value, who: &str) -> f64 {
    spent[who]
        .as_f64()
        .unwrap_or_else(|| panic!("no cost for {who}: {spent}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_day_budget_and_the_gateways_are_enforced_and_outlive_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr) = serve(dir.path(), &gateway_file(dir.path(), 600));

    // alice spends up to her own $400.
    let (answered, status, retry, body) = spend_until_refused(&addr, "alice-key-0001").await;
    assert!(answered >= 1, "{body}");
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("budget per day of $400.00"), "{message}");
    // Come back when the day is over (00:00 UTC), not sooner.
    let retry = retry.expect("a day budget refusal says when the day ends");
    assert!((1..=86_400).contains(&retry), "{retry}");

    // bob has no budget of his own: he may spend what is left of the gateway's $600.
    let (bob_answered, status, _, body) = spend_until_refused(&addr, "bob-key-00000002").await;
    assert!(bob_answered >= 1, "{body}");
    assert_eq!(status, 429, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("budget per day of $600.00"), "{message}");

    // What the ledger recorded: within each limit, and each refusal was needed (the next
    // call's worst case would not have fitted).
    drop(child);
    let spent = spent_by(&dir.path().join("state.db"));
    let alice = cost(&spent, "client:alice");
    let bob = cost(&spent, "client:bob");
    assert!(alice > 0.0 && alice <= 400.0, "{spent}");
    assert!(alice + bob <= 600.0, "{spent}");
    assert!(bob > 0.0, "{spent}");

    // A new gateway process on the same state: alice's spend today still counts.
    let (_child, addr) = serve(dir.path(), &gateway_file(dir.path(), 10_000));
    let r = ask(&addr, "alice-key-0001", 100).await;
    assert_eq!(r.status(), 429);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("budget per day of $400.00"), "{message}");
    assert!(message.contains(&format!("${alice:.2} spent")), "{message}");
    // bob, under the raised gateway budget, is served again.
    assert_eq!(ask(&addr, "bob-key-00000002", 101).await.status(), 200);
}
