//! Concurrent chat-completion clients, and checks against the mock provider's own records:
//! shared by the gateway load test (tests/gateway_e2e.rs) and bench (benches/gateway_load.rs).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// What one batch of clients saw.
#[derive(Debug, Default)]
pub struct Outcome {
    /// The latency of every measured request that was answered 200 with a completion.
    pub latencies: Vec<Duration>,
    /// Requests answered otherwise (status and a piece of the body), or not answered at all.
    pub failures: Vec<String>,
    /// Every request sent (warm-up included).
    pub sent: u64,
    /// Requests answered 200 with a completion (warm-up included).
    pub answered: u64,
    /// From the first measured request to the last answer.
    pub elapsed: Duration,
}

/// A small request: a short question and a small output cap, so token windows stay light.
pub fn body(model: &str, client: usize, round: usize) -> Value {
    json!({
        "model": model,
        "max_tokens": 16,
        "messages": [{"role": "user", "content": format!("Client {client}, question {round}: what is the capital of France?")}],
    })
}

/// `clients` concurrent clients, each with a connection of its own, post to `url` (a
/// `/chat/completions` URL) with bearer `key`: each sends `warmup` unmeasured requests, all
/// wait for each other, then each sends `rounds` requests one after the other, timing each from
/// sending to the whole body read.
pub async fn run(
    url: &str,
    key: &str,
    model: &str,
    clients: usize,
    warmup: usize,
    rounds: usize,
) -> Outcome {
    let start = Arc::new(tokio::sync::Barrier::new(clients + 1));
    let mut tasks = Vec::with_capacity(clients);
    for c in 0..clients {
        let (url, key, model, start) = (
            url.to_owned(),
            key.to_owned(),
            model.to_owned(),
            start.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(300))
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            let mut out = Outcome::default();
            for w in 0..warmup {
                one(&http, &url, &key, body(&model, c, w), &mut out).await;
            }
            start.wait().await;
            for r in 0..rounds {
                let began = Instant::now();
                if one(&http, &url, &key, body(&model, c, warmup + r), &mut out).await {
                    out.latencies.push(began.elapsed());
                }
            }
            out
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut all = Outcome::default();
    for t in tasks {
        match t.await {
            Ok(o) => {
                all.latencies.extend(o.latencies);
                all.failures.extend(o.failures);
                all.sent += o.sent;
                all.answered += o.answered;
            }
            Err(e) => all.failures.push(format!("client task: {e}")),
        }
    }
    all.elapsed = began.elapsed();
    all.latencies.sort();
    all
}

/// Sends one request; whether it was answered 200 with a completion.
async fn one(http: &reqwest::Client, url: &str, key: &str, body: Value, out: &mut Outcome) -> bool {
    out.sent += 1;
    let sent = http.post(url).bearer_auth(key).json(&body).send().await;
    let answer = match sent {
        Ok(a) => a,
        Err(e) => {
            out.failures.push(format!("not answered: {e}"));
            return false;
        }
    };
    let status = answer.status();
    let text = answer.text().await.unwrap_or_default();
    let completion = serde_json::from_str::<Value>(&text).ok().is_some_and(|v| {
        v["object"] == "chat.completion" && v["choices"][0]["message"].is_object()
    });
    if status == 200 && completion {
        out.answered += 1;
        true
    } else {
        let head: String = text.chars().take(200).collect();
        out.failures.push(format!("{status}: {head}"));
        false
    }
}

/// The `p`-th percentile (0 < p <= 100) of sorted `xs`, nearest rank.
pub fn percentile(xs: &[Duration], p: f64) -> Duration {
    if xs.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * xs.len() as f64).ceil() as usize;
    xs[rank.clamp(1, xs.len()) - 1]
}

/// The mock's `/stats` counts for `key:<short id>/<model>` whose model is `model` (all keys).
pub fn mock_counts(stats: &Value, model: &str) -> (u64, u64) {
    let mut admitted = 0;
    let mut refused = 0;
    if let Some(map) = stats["by_key_model"].as_object() {
        for (label, counts) in map {
            if label.rsplit('/').next() == Some(model) {
                admitted += counts["admitted"].as_u64().unwrap_or(0);
                refused += counts["refused"].as_u64().unwrap_or(0);
            }
        }
    }
    (admitted, refused)
}

/// From the mock's `/admissions` log: the most requests of `model` that any trailing window of
/// `period` held, per scope (the mock's own windows), as the largest over its scopes.
pub fn busiest_window(admissions: &Value, model: &str, period: Duration) -> u64 {
    busiest(admissions, model, period, |_| 1)
}

/// The same for tokens, as the mock charged them at arrival.
pub fn busiest_tokens(admissions: &Value, model: &str, period: Duration) -> u64 {
    busiest(admissions, model, period, |a| {
        a["charged_at_arrival"]["tokens"].as_u64().unwrap_or(0)
    })
}

fn busiest(
    admissions: &Value,
    model: &str,
    period: Duration,
    weight: impl Fn(&Value) -> u64,
) -> u64 {
    let mut by_scope: std::collections::BTreeMap<String, Vec<(u64, u64)>> = Default::default();
    for a in admissions.as_array().into_iter().flatten() {
        if a["model"] == model {
            let scope = a["scope"].as_str().unwrap_or_default().to_owned();
            let at = a["at_us"].as_u64().unwrap_or(0);
            by_scope.entry(scope).or_default().push((at, weight(a)));
        }
    }
    let period = period.as_micros() as u64;
    let mut most = 0;
    for entries in by_scope.values_mut() {
        entries.sort_unstable();
        let (mut first, mut held) = (0, 0);
        for &(t, w) in entries.iter() {
            held += w;
            // Entries `period` or more before `t` have left the window ending at `t`.
            while t - entries[first].0 >= period {
                held -= entries[first].1;
                first += 1;
            }
            most = most.max(held);
        }
    }
    most
}
