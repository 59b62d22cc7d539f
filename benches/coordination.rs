//! Coordination overhead per LLM call with a zero-latency simulated backend, and the peak
//! memory of a 100-agent team.
//!
//! Run with `cargo bench --bench coordination`. Prints one line per figure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use massgen::config::{AgentConfig, SimulatedSettings, TeamConfig};
use massgen::supervisor::{QuotaHandle, SupervisorSettings};
use massgen::{Runtime, RuntimeOptions};

fn team(n: usize) -> TeamConfig {
    let agents = (0..n)
        .map(|i| {
            AgentConfig::simulated(
                format!("agent-{i:03}"),
                SimulatedSettings {
                    seed: i as u64,
                    ..SimulatedSettings::default()
                },
            )
        })
        .collect();
    TeamConfig::new(agents)
}

/// Peak resident set size of this process so far, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn options(rate_limit: bool) -> RuntimeOptions {
    let quota = rate_limit.then(|| {
        QuotaHandle::start(SupervisorSettings {
            stagger: Duration::ZERO,
            ..SupervisorSettings::default()
        })
        .unwrap()
    });
    RuntimeOptions {
        rate_limit,
        quota,
        ..RuntimeOptions::default()
    }
}

/// Runs `runs` questions on a team of `agents`; returns (calls, elapsed).
async fn measure(agents: usize, runs: usize, rate_limit: bool) -> (u64, Duration) {
    let rt = Runtime::new(team(agents), options(rate_limit)).unwrap();
    // Warm up (the tokenizer loads on first use when rate limiting is on).
    rt.run("Warm up the caches please").await.unwrap();
    let start = Instant::now();
    let mut calls = 0u64;
    for i in 0..runs {
        let out = rt
            .run(&format!("Question number {i}: how do tides work?"))
            .await
            .unwrap();
        calls += out.agents.iter().map(|a| u64::from(a.calls)).sum::<u64>();
    }
    (calls, start.elapsed())
}

fn report(label: &str, calls: u64, elapsed: Duration) {
    let per_call = elapsed.as_secs_f64() * 1e6 / calls as f64;
    println!("{label}: {calls} calls in {elapsed:.2?} -> {per_call:.1} us/call");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let before = peak_rss_kib();
    let (calls, elapsed) = rt.block_on(async {
        let rt100 = Runtime::new(team(100), options(false)).unwrap();
        let start = Instant::now();
        let out = rt100
            .run("Summarise the causes of the French Revolution")
            .await
            .unwrap();
        let calls: u64 = out.agents.iter().map(|a| u64::from(a.calls)).sum();
        (calls, start.elapsed())
    });
    let after = peak_rss_kib();
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "100-agent team: peak RSS {:.1} MiB (process before the run: {:.1} MiB)",
            a as f64 / 1024.0,
            b as f64 / 1024.0
        );
    }
    report("100-agent team, one run", calls, elapsed);
    let (calls, elapsed) = rt.block_on(measure(5, 200, false));
    report("5-agent team, rate limiting off", calls, elapsed);
    let (calls, elapsed) = rt.block_on(measure(5, 200, true));
    report(
        "5-agent team, rate limiting on (unlimited scope)",
        calls,
        elapsed,
    );
    tokenizer_cost();
}

/// What one uncached cl100k_base count of a 5-answer prompt costs.
fn tokenizer_cost() {
    let answer = "The core of the question is how tides interact with the moon. Evidence from \
                  practice suggests that gravity matters most when constraints are tight. ";
    let prompt = answer.repeat(5);
    let _ = massgen::routing::estimate::count_tokens(&prompt);
    let reps = 200u32;
    let start = Instant::now();
    let mut tokens = 0;
    for _ in 0..reps {
        tokens = massgen::routing::estimate::count_tokens(&prompt);
    }
    let each = start.elapsed() / reps;
    println!("cl100k_base count of a {tokens}-token prompt (uncached): {each:.1?}");
}
