//! The gateway under load on loopback: 1,000 concurrent clients (each with a connection of its
//! own) send chat completions to `massgen-rs mock-provider` directly, then the same load through
//! `massgen-rs serve` in front of that mock, alternately, twice. The gateway's overhead is the
//! difference of matched percentiles (gateway p50 minus direct p50, p99 minus p99) of the same
//! load; a single sequential client measures the overhead of one request with nothing queued.
//! Then 1,000 clients send one request each to a model whose limit (500 requests a minute)
//! binds, at the gateway and at the mock alike: every request must be answered, the mock must
//! refuse none, and its admission log must show no trailing minute over 500 (half of the
//! requests wait about a minute for the window to free).
//!
//! Run: `cargo bench --bench gateway_load` (the release binary is built for it). The three
//! processes hold about 4 descriptors per client: the bench checks the open-files limit first
//! (`ulimit -n 8192` raises it). `GATEWAY_LOAD_CLIENTS` and `GATEWAY_LOAD_ROUNDS` change the
//! load (1,000 clients, 5 measured requests each by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[allow(dead_code)]
#[path = "../tests/gateway/common.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/gateway/load.rs"]
mod load;

use std::time::{Duration, Instant};

use load::{Outcome, percentile};

const DIRECT_KEY: &str = "key-direct-00000000000";
const GATEWAY_KEY: &str = "key-gateway-0000000000";
const TIGHT: u64 = 500;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The soft limit on open files of this process (inherited by the two servers).
fn open_files_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX)
}

/// User and system CPU time a process has used so far (from `/proc/<pid>/stat`, in the usual
/// 100 ticks a second).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
        .sum();
    Duration::from_millis(ticks * 10)
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn signed_ms(a: Duration, b: Duration) -> String {
    format!("{:+.3}", (a.as_secs_f64() - b.as_secs_f64()) * 1000.0)
}

struct Phase {
    name: String,
    outcome: Outcome,
    cpu_gateway: Duration,
    cpu_mock: Duration,
}

fn row(p: &Phase) -> String {
    let l = &p.outcome.latencies;
    let rate = l.len() as f64 / p.outcome.elapsed.as_secs_f64().max(1e-9);
    format!(
        "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} |",
        p.name,
        l.len(),
        ms(percentile(l, 50.0)),
        ms(percentile(l, 90.0)),
        ms(percentile(l, 99.0)),
        ms(l.last().copied().unwrap_or_default()),
        rate,
        ms(p.cpu_gateway),
        ms(p.cpu_mock),
    )
}

fn main() {
    let clients = env_usize("GATEWAY_LOAD_CLIENTS", 1000);
    let rounds = env_usize("GATEWAY_LOAD_ROUNDS", 5);
    let need = clients as u64 * 4 + 256;
    let have = open_files_limit();
    assert!(
        have >= need,
        "{clients} clients need about {need} open files per process, the limit is {have}: \
         raise it (`ulimit -n 8192`) and run again"
    );
    let dir = tempfile::tempdir().unwrap();
    let limits = format!(
        "chatcompletion:\n  mock-fast: {{rpm: 100000000, tpm: 100000000000}}\n  \
         mock-tight: {{rpm: {TIGHT}}}\n"
    );
    std::fs::write(dir.path().join("limits.yaml"), &limits).unwrap();
    let (mock_child, mock) = common::spawn_listening(&[
        "mock-provider",
        "--listen",
        "127.0.0.1:0",
        "--limits",
        dir.path().join("limits.yaml").to_str().unwrap(),
    ]);
    let model = |name: &str, upstream: &str| {
        format!(
            "  - name: {name}\n    backend: {{type: chatcompletion, model: {upstream}, \
             base_url: 'http://{mock}/v1', api_key: {GATEWAY_KEY}}}\n"
        )
    };
    let config = format!(
        "max_wait: 300s\nmodels:\n{}{}rate_limit: {{limits_file: limits.yaml, state: none}}\n",
        model("fast", "mock-fast"),
        model("tight", "mock-tight"),
    );
    let (gateway_child, gateway) = common::serve(dir.path(), &config);
    let (mock_pid, gateway_pid) = (mock_child.0.id(), gateway_child.0.id());
    let direct_url = format!("http://{mock}/v1/chat/completions");
    let gateway_url = format!("http://{gateway}/v1/chat/completions");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let phase = |name: &str, url: &str, key: &str, model: &str, clients, warmup, rounds| {
        let (g0, m0) = (cpu_time(gateway_pid), cpu_time(mock_pid));
        let outcome = rt.block_on(load::run(url, key, model, clients, warmup, rounds));
        let p = Phase {
            name: name.to_owned(),
            outcome,
            cpu_gateway: cpu_time(gateway_pid).saturating_sub(g0),
            cpu_mock: cpu_time(mock_pid).saturating_sub(m0),
        };
        eprintln!("{}", row(&p));
        p
    };
    let began = Instant::now();
    let mut phases = Vec::new();
    for pass in 1..=2 {
        let label = |what: &str| format!("{what}, {clients} clients, pass {pass}");
        phases.push(phase(
            &label("direct"),
            &direct_url,
            DIRECT_KEY,
            "mock-fast",
            clients,
            1,
            rounds,
        ));
        phases.push(phase(
            &label("gateway"),
            &gateway_url,
            GATEWAY_KEY,
            "fast",
            clients,
            1,
            rounds,
        ));
    }
    let sequential = 2000;
    phases.push(phase(
        "direct, 1 client",
        &direct_url,
        DIRECT_KEY,
        "mock-fast",
        1,
        50,
        sequential,
    ));
    phases.push(phase(
        "gateway, 1 client",
        &gateway_url,
        GATEWAY_KEY,
        "fast",
        1,
        50,
        sequential,
    ));
    let tight = phase(
        &format!("gateway, {clients} clients, limit {TIGHT}/min"),
        &gateway_url,
        GATEWAY_KEY,
        "tight",
        clients,
        0,
        1,
    );

    // The mock's own records.
    let stats = common::get_blocking(&mock, "/stats");
    let admissions = common::get_blocking(&mock, "/admissions");
    let status = common::get_blocking(&gateway, "/status");
    let (fast_admitted, fast_refused) = load::mock_counts(&stats, "mock-fast");
    let (tight_admitted, tight_refused) = load::mock_counts(&stats, "mock-tight");
    let busiest = load::busiest_window(&admissions, "mock-tight", Duration::from_secs(60));
    let sent: u64 = phases.iter().map(|p| p.outcome.sent).sum::<u64>() + tight.outcome.sent;
    let answered: u64 =
        phases.iter().map(|p| p.outcome.answered).sum::<u64>() + tight.outcome.answered;
    let failures: Vec<&String> = phases
        .iter()
        .chain(std::iter::once(&tight))
        .flat_map(|p| p.outcome.failures.iter())
        .collect();

    println!("\n## Gateway under load ({clients} clients, {rounds} measured requests each)\n");
    println!(
        "| Load | Measured | p50 ms | p90 ms | p99 ms | max ms | answers/s | gateway CPU ms | mock CPU ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for p in &phases {
        println!("{}", row(p));
    }
    println!("{}", row(&tight));
    println!("\nOverhead (gateway minus direct, matched percentiles):\n");
    println!("| Load | p50 ms | p99 ms | gateway CPU per request µs |");
    println!("|---|---|---|---|");
    for pair in phases.chunks(2) {
        let (d, g) = (&pair[0].outcome.latencies, &pair[1].outcome.latencies);
        let per = pair[1].cpu_gateway.as_secs_f64() * 1e6 / pair[1].outcome.sent.max(1) as f64;
        println!(
            "| {} | {} | {} | {per:.0} |",
            pair[1].name.replace("gateway, ", ""),
            signed_ms(percentile(g, 50.0), percentile(d, 50.0)),
            signed_ms(percentile(g, 99.0), percentile(d, 99.0)),
        );
    }
    let fast_sent: u64 = phases.iter().map(|p| p.outcome.sent).sum();
    println!(
        "\nRequests: {sent} sent, {answered} answered 200, {} failed; the mock admitted \
         {fast_admitted} of mock-fast (sent {fast_sent}) and {tight_admitted} of mock-tight \
         (sent {}), refused {} (mock-fast {fast_refused}, mock-tight {tight_refused}); \
         busiest trailing minute of mock-tight at the mock: {busiest} (limit {TIGHT}); \
         total {:.1} s.",
        failures.len(),
        tight.outcome.sent,
        fast_refused + tight_refused,
        began.elapsed().as_secs_f64(),
    );
    for f in failures.iter().take(5) {
        println!("failure: {f}");
    }
    let waits = status["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| format!("{}: {}", s["scope"], s))
        .collect::<Vec<_>>();
    eprintln!("gateway /status scopes:\n{}", waits.join("\n"));
    assert!(failures.is_empty(), "requests lost or refused");
    assert_eq!(answered, sent, "every request answered");
    assert_eq!(
        fast_admitted, fast_sent,
        "the mock saw every mock-fast request"
    );
    assert_eq!(
        tight_admitted, tight.outcome.sent,
        "the mock saw every mock-tight request"
    );
    assert_eq!(fast_refused + tight_refused, 0, "the mock refused none");
    assert!(busiest <= TIGHT, "a minute held {busiest} > {TIGHT}");
}
