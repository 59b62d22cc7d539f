//! Four processes sharing one limit through the Redis store: this bench starts a
//! `redis-server` of its own and the mock provider (enforcing the same limit exactly), then
//! runs itself four times as child processes that acquire permits and call the mock for a
//! fixed time. It prints the utilization (what the mock admitted / what the limit allows in
//! that time) and the mock's 429 count. Run: `cargo bench --bench store_processes`
//! (`STORE_PROCESSES_SECS` changes the duration, 35 s by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/redis.rs"]
mod redis_server;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use massgen::quota::{Dimension, Limit, ScopeId, ScopeSpec};
use massgen::store::StoreSpec;
use massgen::supervisor::{AcquireRequest, QuotaHandle, SupervisorSettings};

const LIMIT: u64 = 200;
const WINDOW: Duration = Duration::from_secs(10);
const PROCESSES: usize = 4;
const TASKS_PER_PROCESS: usize = 8;
const CHILD_ENV: &str = "STORE_PROCESSES_CHILD";

fn get(addr: &str, path: &str) -> serde_json::Value {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap()
}

/// One child: acquire, call the mock, settle, until `secs` passed.
fn child(spec: &str) {
    let mut parts = spec.split(' ');
    let (url, addr, secs) = (
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().to_owned(),
        parts.next().unwrap().parse::<f64>().unwrap(),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ok, refused) = rt.block_on(async move {
        let q = QuotaHandle::start(SupervisorSettings {
            stagger: Duration::ZERO,
            store: StoreSpec::parse(&url),
            ..SupervisorSettings::default()
        })
        .unwrap();
        let scope = ScopeSpec {
            limits: vec![Limit::new(Dimension::Requests, LIMIT, WINDOW).unwrap()],
            window_guard: Duration::from_millis(250),
            ..ScopeSpec::default()
        };
        q.register_scope(ScopeId::from("mock/bench"), scope)
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = (0..TASKS_PER_PROCESS)
            .map(|i| {
                let (q, http, addr) = (q.clone(), http.clone(), addr.clone());
                tokio::spawn(async move {
                    let (mut ok, mut refused) = (0u64, 0u64);
                    loop {
                        let left = end.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        let mut r = AcquireRequest::new(
                            vec![ScopeId::from("mock/bench")],
                            10,
                            format!("t{i}"),
                        );
                        r.deadline = Some(left);
                        let Ok(permit) = q.acquire(r).await else {
                            break;
                        };
                        let sent = http
                            .post(format!("http://{addr}/v1/chat/completions"))
                            .bearer_auth("bench-key-0000000000")
                            .json(&serde_json::json!({
                                "model": "bench",
                                "max_tokens": 5,
                                "messages": [{"role": "user", "content": "hi"}],
                            }))
                            .send()
                            .await;
                        match sent.map(|r| r.status().as_u16()) {
                            Ok(429) => refused += 1,
                            Ok(_) => ok += 1,
                            Err(_) => {}
                        }
                        permit.settle(10);
                    }
                    (ok, refused)
                })
            })
            .collect();
        let (mut ok, mut refused) = (0, 0);
        for t in tasks {
            let (a, b) = t.await.unwrap();
            ok += a;
            refused += b;
        }
        (ok, refused)
    });
    println!("{ok} {refused}");
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        child(&spec);
        return;
    }
    let secs: f64 = std::env::var("STORE_PROCESSES_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(35.0);
    let server = redis_server::RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let limits = dir.path().join("mock_limits.yaml");
    std::fs::write(
        &limits,
        format!(
            "default:\n  windows: [{{requests: {LIMIT}, per: {}s}}]\n",
            WINDOW.as_secs()
        ),
    )
    .unwrap();
    let mut mock = Command::new(env!("CARGO_BIN_EXE_massgen-rs"))
        .args([
            "mock-provider",
            "--listen",
            "127.0.0.1:0",
            "--latency",
            "20",
        ])
        .arg("--limits")
        .arg(&limits)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(mock.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    std::thread::spawn(move || lines.for_each(drop));
    let addr = first.rsplit("http://").next().unwrap().trim().to_owned();
    println!(
        "store_processes bench: {PROCESSES} processes x {TASKS_PER_PROCESS} callers, limit {LIMIT} per {} s, {secs} s, Redis {}",
        WINDOW.as_secs(),
        server.url()
    );
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .env(CHILD_ENV, format!("{} {addr} {secs}", server.url()))
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut per_process = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        per_process.push(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = get(&addr, "/stats");
    let admitted = stats["total"]["admitted"].as_u64().unwrap_or(0);
    let refused = stats["total"]["refused"].as_u64().unwrap_or(0);
    // What any trailing window allows over `secs`: one full limit per started window.
    let windows = (secs / WINDOW.as_secs_f64()).ceil();
    let allowed = LIMIT as f64 * windows;
    println!("per process (ok refused): {per_process:?}");
    println!(
        "mock admitted {admitted} in {elapsed:.1} s, refused (429) {refused}; the limit allows {allowed:.0}: utilization {:.1} %",
        100.0 * admitted as f64 / allowed
    );
    let _ = mock.kill();
    let _ = mock.wait();
}
