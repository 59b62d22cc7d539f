//! The web dashboard in a real browser: headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven by Selenium loads the page of a run's `--metrics-addr` server while
//! the run waits for quota, and checks the gauges, key statuses and usage chart show what
//! `/status` and `/usage/series` report (tests/fixtures/dashboard/check_dashboard.py); the
//! chart's calls are checked against the mock provider's own count here. The tools are
//! installed by `.ci/setup`; without them these tests fail, never skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/runs.rs"]
mod runs;

use runs::{Child, bin, get, mock_with, text};

const SCRIPT: &str = "tests/fixtures/dashboard/check_dashboard.py";
const KEY_A: &str = "dash-key-alpha-000000001111";
const KEY_B: &str = "dash-key-bravo-000000002222";

/// Fails with what to run when the browser, its driver or Selenium is missing.
fn require_browser_tools() {
    let mut missing = Vec::new();
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !Path::new(tool).exists() {
            missing.push(tool.to_owned());
        }
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !selenium {
        missing.push("the selenium Python package".to_owned());
    }
    assert!(
        missing.is_empty(),
        "the dashboard browser test needs {}: run .ci/setup (it installs the \
         Debian packages chromium and chromium-driver and selenium from PyPI)",
        missing.join(", ")
    );
}

/// Where a screenshot goes: the variable `var` if set (the docs' images are made this way),
/// else `name` in the test's own directory.
fn screenshot_path(var: &str, dir: &Path, name: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| dir.join(name), PathBuf::from)
}

/// Runs the check script; panics with its output when it fails. Returns its report.
fn check(args: &[String], dir: &Path) -> serde_json::Value {
    let report = dir.join("report.json");
    let out = Command::new("python3")
        .arg(SCRIPT)
        .args(args)
        .arg("--report")
        .arg(&report)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "the dashboard check failed:\n{shown}");
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

/// Polls `path` at `addr` until `ok` holds of its JSON (fails after 90 s).
fn until(addr: &str, path: &str, what: &str, ok: impl Fn(&serde_json::Value) -> bool) {
    let start = Instant::now();
    loop {
        let v = get(addr, path);
        if ok(&v) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(90), "{what}: {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_dashboard_shows_what_status_reports_while_a_run_waits_for_quota() {
    require_browser_tools();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The mock admits 2 requests per 60 s per key and model; the team knows the same limit per
    // key, so its three agents (two on one key) soon wait for quota.
    std::fs::write(
        d.join("mock_limits.yaml"),
        "default:\n  windows: [{requests: 2, per: 60s}]\n",
    )
    .unwrap();
    let limits = d.join("mock_limits.yaml").display().to_string();
    let (_mock, mock_addr) = mock_with(d, &["--latency", "100", "--limits", &limits]);
    let mut yaml = String::from("agents:\n");
    for (id, key) in [("a", KEY_A), ("b", KEY_A), ("c", KEY_B)] {
        yaml.push_str(&format!(
            "- id: {id}\n  backend: {{type: chatcompletion, model: gpt-4o-mini, \
             base_url: 'http://{mock_addr}/v1', api_key: {key}}}\n"
        ));
    }
    yaml.push_str("rate_limit: {limits_file: limits.yaml, prices: prices.yaml}\n");
    std::fs::write(d.join("team.yaml"), yaml).unwrap();
    // Priced, so the cost chart has something to show.
    std::fs::write(
        d.join("prices.yaml"),
        "chatcompletion:\n  gpt-4o-mini: {input: 150.0, output: 600.0, source: test, as_of: 2026-01-01}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("limits.yaml"),
        "chatcompletion:\n  default:\n    windows: [{requests: 2, per: 60s}]\n    scope: per_key\n",
    )
    .unwrap();
    // Paths relative to the test's directory: the page (and the docs' screenshot) names them.
    let mut run = Child(
        bin(d)
            .current_dir(d)
            .args(["--config", "team.yaml", "--state", "state.db"])
            .args([
                "--rate-limit",
                "--no-run-dir",
                "--automation",
                "--metrics-addr",
                "127.0.0.1:0",
                "Name a prime number.",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = run.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the run ended without printing its metrics address")
            .unwrap();
        if let Some(rest) = line.split("serving metrics at http://").nth(1) {
            break rest.split('/').next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    // The run waits for quota, and the ledger holds its first calls.
    until(&addr, "/status", "no request waited for quota", |s| {
        s["waiting_total"].as_u64().unwrap_or(0) >= 1
    });
    until(
        &addr,
        "/usage/series?since=1h",
        "the ledger holds no call",
        |s| s["total"]["calls"].as_u64().unwrap_or(0) >= 1,
    );
    let shot = screenshot_path("DASHBOARD_SCREENSHOT", d, "dashboard.png");
    let args: Vec<String> = vec![
        "--url".into(),
        format!("http://{addr}/"),
        "--screenshot".into(),
        shot.display().to_string(),
        "--expect-mask".into(),
        "…1111".into(),
        "--expect-mask".into(),
        "…2222".into(),
        "--secret".into(),
        KEY_A.into(),
        "--secret".into(),
        KEY_B.into(),
    ];
    let report = check(&args, d);
    // The chart's calls are calls the mock provider really answered.
    let stats = get(&mock_addr, "/stats");
    let answered = stats["total"]["admitted"].as_u64().unwrap();
    let charted = report["chart_total_calls"].as_u64().unwrap();
    assert!(
        charted >= 1 && charted <= answered,
        "the chart shows {charted} calls, the mock answered {answered}: {report}"
    );
    let cost = report["chart_total_cost"].as_f64().unwrap();
    assert!(
        cost > 0.0,
        "the priced calls cost nothing on the chart: {report}"
    );
    assert_eq!(report["keys"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(report["admin_form_hidden"], true, "{report}");
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "no screenshot"
    );
}

const ADMIN_KEY: &str = "dash-admin-client-key-0001";
const USER_KEY: &str = "dash-user-client-key-0002";

#[test]
fn the_gateway_dashboard_offers_admin_actions_only_with_an_admin_client_key() {
    require_browser_tools();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_mock, mock_addr) = mock_with(d, &["--latency", "20"]);
    std::fs::write(
        d.join("gateway.yaml"),
        format!(
            "listen: 127.0.0.1:0\n\
             models:\n\
             \x20 - name: m\n    backend: {{type: chatcompletion, model: gpt-4o-mini, \
             base_url: 'http://{mock_addr}/v1', api_key: {KEY_A}}}\n\
             \x20 - name: p\n    backend: {{type: pool, pool: simulated}}\n\
             rate_limit: {{enable_rate_limit: true, state: state.db}}\n\
             clients:\n\
             \x20 - {{name: boss, key: {ADMIN_KEY}, role: admin}}\n\
             \x20 - {{name: someone, key: {USER_KEY}, role: user}}\n"
        ),
    )
    .unwrap();
    let mut gateway = Child(
        bin(d)
            .current_dir(d)
            .args([
                "serve",
                "--config",
                "gateway.yaml",
                "--listen",
                "127.0.0.1:0",
            ])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = gateway.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the gateway stopped before listening")
            .unwrap();
        if let Some(rest) = line.split("gateway listening on http://").nth(1) {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    let status = get(&addr, "/status");
    let key = status["keys"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(status["keys"][0]["status"], "active", "{status}");
    let shot = screenshot_path("DASHBOARD_GATEWAY_SCREENSHOT", d, "gateway.png");
    let args: Vec<String> = vec![
        "--gateway".into(),
        "--url".into(),
        format!("http://{addr}/"),
        "--screenshot".into(),
        shot.display().to_string(),
        "--user-key".into(),
        USER_KEY.into(),
        "--admin-key".into(),
        ADMIN_KEY.into(),
    ];
    let report = check(&args, d);
    assert_eq!(report["before_key"], "off", "{report}");
    assert_eq!(
        report["pools"],
        serde_json::json!(["simulated"]),
        "{report}"
    );
    assert_eq!(report["disabled_key"], key.as_str(), "{report}");
    // The click reached the admin route: the gateway itself says the key is disabled.
    let after = get(&addr, "/status");
    assert_eq!(after["keys"][0]["status"], "disabled", "{after}");
}
