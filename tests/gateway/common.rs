//! Starting `massgen-rs serve` (and `mock-provider`) as a user would, and talking to them.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

/// A child process stopped when the test ends, pass or fail.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_massgen-rs"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd.env_remove("RUST_LOG");
    // Quota state goes to a directory of this test process, never the user's.
    cmd.env(
        "XDG_STATE_HOME",
        std::env::temp_dir().join(format!("massgen-rs-gateway-tests-{}", std::process::id())),
    );
    cmd
}

/// Starts `args` and returns the child with the address its first stderr line names.
pub fn spawn_listening(args: &[&str]) -> (Child, String) {
    let mut child = Child(bin().args(args).stderr(Stdio::piped()).spawn().unwrap());
    let stderr = child.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let first = lines
        .next()
        .unwrap_or_else(|| Ok(String::new()))
        .unwrap_or_default();
    // Keep reading so the server never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = first
        .rsplit("http://")
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    assert!(addr.starts_with("127.0.0.1:"), "first stderr line: {first}");
    (child, addr)
}

/// Writes `yaml` as `gateway.yaml` in `dir` and serves it on a free loopback port.
pub fn serve(dir: &Path, yaml: &str) -> (Child, String) {
    let config = dir.join("gateway.yaml");
    std::fs::write(&config, yaml).unwrap();
    serve_file(&config)
}

pub fn serve_file(config: &Path) -> (Child, String) {
    spawn_listening(&[
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
    ])
}

/// One simulated model `sim` (and a pool `sim-pool`), quota state in memory, plus `extra`.
pub fn sim_config(extra: &str) -> String {
    format!(
        "models:\n\
         \x20 - name: sim\n    backend: {{type: simulated, model: sim-fast}}\n\
         \x20 - name: sim-pool\n    backend: {{type: pool, pool: simulated}}\n\
         {extra}"
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap()
}

/// `POST /v1/chat/completions` with `body` as JSON.
pub async fn chat(addr: &str, body: serde_json::Value) -> reqwest::Response {
    client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

pub async fn get_json(addr: &str, path: &str) -> serde_json::Value {
    client()
        .get(format!("http://{addr}{path}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs the openai SDK client script in `mode` against the gateway at `addr`; its JSON output.
/// Fails (never skips) when python or the openai package is missing.
pub fn sdk(addr: &str, mode: &str, model: &str) -> serde_json::Value {
    sdk_as(addr, mode, model, None)
}

/// [`sdk`] with the client key `key` (a gateway with `clients:`).
pub fn sdk_as(addr: &str, mode: &str, model: &str, key: Option<&str>) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gateway/sdk_client.py");
    let mut cmd = Command::new("python3");
    if let Some(key) = key {
        cmd.env("GATEWAY_KEY", key);
    }
    let out = cmd
        .arg(&script)
        .args([&format!("http://{addr}/v1"), mode, model])
        .output()
        .unwrap_or_else(|e| {
            panic!("python3 cannot run ({e}): run .ci/setup, which installs python's openai SDK")
        });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the openai SDK client failed ({mode}); if openai is missing, run .ci/setup\n{stdout}{stderr}"
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"))
}

/// `GET path` as JSON, from a test without an async runtime.
pub fn get_blocking(addr: &str, path: &str) -> serde_json::Value {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(get_json(addr, path))
}
