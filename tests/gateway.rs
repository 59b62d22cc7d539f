//! `massgen-rs serve` as clients use it: raw HTTP for every route and error, and the official
//! openai Python SDK (tests/fixtures/gateway/sdk_client.py) for the paths SDK users take.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "gateway/common.rs"]
mod common;

#[path = "gateway/budgets.rs"]
mod budgets;

#[path = "gateway/fuzz.rs"]
mod fuzz;

use std::time::Duration;

use common::{chat, client, get_json, sdk, serve, sim_config, spawn_listening};
use serde_json::{Value, json};

fn question(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "What is the capital of France?"}]})
}

/// One request a minute for `sim`, so a second request has to wait.
fn one_a_minute(dir: &std::path::Path) -> String {
    std::fs::write(
        dir.join("limits.yaml"),
        "simulated:\n  sim-fast:\n    rpm: 1\n",
    )
    .unwrap();
    sim_config("rate_limit: {limits_file: limits.yaml, state: none}\n")
}

fn scope<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == name)
        .unwrap_or_else(|| panic!("no scope {name}: {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_probes_metrics_and_status_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(dir.path(), &sim_config("rate_limit: {state: none}\n"));
    let models = get_json(&addr, "/v1/models").await;
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["sim", "sim-pool"]);
    assert_eq!(models["data"][1]["served_by"]["pool"], "simulated");
    let http = client();
    let health = http
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    // One call, then the status and metrics show it.
    assert_eq!(chat(&addr, question("sim")).await.status(), 200);
    let status = get_json(&addr, "/status").await;
    assert_eq!(
        scope(&status, "simulated/sim-fast")["granted_total"],
        1,
        "{status}"
    );
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("agent=\"gateway\""), "{metrics}");
    let unknown = http
        .get(format!("http://{addr}/v2/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unknown_url");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_streams_answer_in_openai_shape() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(dir.path(), &sim_config("rate_limit: {state: none}\n"));
    let response = chat(&addr, question("sim")).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "sim");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let text = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(text.starts_with("Final answer"), "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_u64().unwrap(),
        usage["completion_tokens"].as_u64().unwrap(),
    );
    assert!(p > 0 && c > 0, "{body}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), p + c);

    let mut streamed = question("sim-pool");
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let response = chat(&addr, streamed).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let sse = response.text().await.unwrap();
    let events: Vec<&str> = sse
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not an SSE data line: {e}"))
        })
        .collect();
    assert_eq!(events.last(), Some(&"[DONE]"), "{sse}");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(content.starts_with("Final answer"), "{sse}");
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    assert!(
        last["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{sse}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_clear_4xx_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &sim_config("max_body_bytes: 4096\nrate_limit: {state: none}\n"),
    );
    let http = client();
    let url = format!("http://{addr}/v1/chat/completions");
    let send = |body: String, content_type: Option<&'static str>| {
        let mut r = http.post(&url).body(body);
        if let Some(t) = content_type {
            r = r.header("content-type", t);
        }
        r.send()
    };
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        (question("sim").to_string(), None, 415, "Content-Type"),
        (question("sim").to_string(), Some("text/plain"), 415, "text/plain"),
        ("{\"model\": \"sim\", \"messages\": [".into(), Some("application/json"), 400, "not a valid"),
        ("[1, 2]".into(), Some("application/json"), 400, "not a valid"),
        (json!({"model": "sim"}).to_string(), Some("application/json"), 400, "messages"),
        (json!({"model": "sim", "messages": []}).to_string(), Some("application/json"), 400, "empty"),
        (json!({"model": "sim", "messages": [{"role": "wizard", "content": "x"}]}).to_string(), Some("application/json"), 400, "wizard"),
        (json!({"model": "sim", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}]}).to_string(), Some("application/json; charset=utf-8"), 400, "text and image_url parts"),
        (json!({"model": "sim", "messages": [{"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]}).to_string(), Some("application/json"), 400, "`user` messages only"),
        (question("gpt-unknown").to_string(), Some("application/json"), 404, "gpt-unknown"),
        (json!({"model": "sim", "messages": [{"role": "user", "content": "x".repeat(8000)}]}).to_string(), Some("application/json"), 413, "max_body_bytes"),
    ];
    for (body, content_type, status, says) in cases {
        let response = send(body.clone(), content_type).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body:.200}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{status}: {message}");
        assert!(error["error"]["type"].is_string(), "{error}");
    }
    let not_found = send(question("nope").to_string(), Some("application/json"))
        .await
        .unwrap();
    let error: Value = not_found.json().await.unwrap();
    assert_eq!(error["error"]["code"], "model_not_found");
    let bad_wait = http
        .post(&url)
        .header("x-massgen-max-wait", "soon")
        .json(&question("sim"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad_wait.status(), 400);
    // Line breaks smuggled into headers and other raw-HTTP abuse: tests/gateway/fuzz.rs.
    assert_eq!(chat(&addr, question("sim")).await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_past_its_wait_gets_429_with_the_supervisors_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(dir.path(), &one_a_minute(dir.path()));
    assert_eq!(chat(&addr, question("sim")).await.status(), 200);
    let refused = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .header("x-massgen-max-wait", "0.2")
        .json(&question("sim"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    let after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // The minute's one request was just made: it frees within the minute (plus the
    // supervisor's safety margin, rounded up to whole seconds).
    assert!((1..=62).contains(&after), "Retry-After {after}");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("simulated/sim-fast"),
        "{body}"
    );
    let status = get_json(&addr, "/status").await;
    let s = scope(&status, "simulated/sim-fast");
    assert_eq!(
        (s["granted_total"].as_u64(), s["denied_total"].as_u64()),
        (Some(1), Some(1)),
        "{status}"
    );
    // The refusal of a client's request is in the metrics too, as a team agent's would be.
    let metrics = client()
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let denied = metrics.lines().any(|l| {
        l.starts_with("massgen_quota_permits_denied_total{")
            && l.contains("simulated/sim-fast")
            && l.ends_with(" 1")
    });
    assert!(denied, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_while_queued_consumes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(dir.path(), &one_a_minute(dir.path()));
    assert_eq!(chat(&addr, question("sim")).await.status(), 200);
    // A request willing to wait ten minutes, from a client that gives up after a moment.
    let url = format!("http://{addr}/v1/chat/completions");
    let waiting = tokio::spawn(async move {
        client()
            .post(url)
            .header("x-massgen-max-wait", "600")
            .json(&question("sim"))
            .send()
            .await
    });
    let queued = poll_status(&addr, |s| s["waiting_total"] == 1).await;
    assert_eq!(
        scope(&queued, "simulated/sim-fast")["queue_depth"],
        1,
        "{queued}"
    );
    waiting.abort();
    let _ = waiting.await;
    // Its permit request left the queue with it: nothing granted, nothing refused.
    let after = poll_status(&addr, |s| s["waiting_total"] == 0).await;
    let s = scope(&after, "simulated/sim-fast");
    assert_eq!(s["queue_depth"], 0, "{after}");
    assert_eq!(
        (s["granted_total"].as_u64(), s["denied_total"].as_u64()),
        (Some(1), Some(0)),
        "{after}"
    );
}

/// `/status` once `ready` holds (polled for up to 20 s).
async fn poll_status(addr: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = get_json(addr, "/status").await;
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("status never reached the expected state: {last}");
}

#[test]
fn the_shipped_example_serves_and_a_remote_listen_is_refused() {
    let (child, addr) = common::serve_file(std::path::Path::new("configs/gateway.yaml"));
    // The shipped file has one client, `demo` (a user): its key is needed, and enough.
    let sdk_answer = common::sdk_as(&addr, "nonstream", "sim-pool", Some("demo-client-key"));
    assert_eq!(sdk_answer["object"], "chat.completion");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = |path: &str, key: Option<&str>, post: bool| {
        rt.block_on(async {
            let url = format!("http://{addr}{path}");
            let mut req = if post {
                common::client().post(url).json(&serde_json::json!({
                    "model": "sim", "messages": [{"role": "user", "content": "hi"}]
                }))
            } else {
                common::client().get(url)
            };
            if let Some(key) = key {
                req = req.bearer_auth(key);
            }
            let resp = req.send().await.unwrap();
            let code = resp.status().as_u16();
            let www = resp.headers().get("www-authenticate").is_some();
            (code, www)
        })
    };
    assert_eq!(status("/v1/chat/completions", None, true), (401, true));
    assert_eq!(
        status("/v1/chat/completions", Some("wrong-key"), true),
        (401, true)
    );
    assert_eq!(
        status("/v1/chat/completions", Some("demo-client-key"), true).0,
        200
    );
    assert_eq!(status("/v1/models", None, false).0, 401);
    // Probes stay open; the admin routes are for admins only.
    assert_eq!(status("/healthz", None, false).0, 200);
    assert_eq!(status("/admin/keys", Some("demo-client-key"), false).0, 403);
    // The demo client's own quota scope is registered and counts its requests.
    let report = common::get_blocking(&addr, "/status");
    let scope = report["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["scope"] == "client:demo")
        .unwrap_or_else(|| panic!("no client:demo scope in {report}"));
    assert!(scope["granted_total"].as_u64().unwrap() >= 2, "{scope}");
    drop(child);
    let out = common::bin()
        .args([
            "serve",
            "--config",
            "configs/gateway.yaml",
            "--listen",
            "0.0.0.0:0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("allow_remote"));
}

#[test]
fn the_openai_sdk_gets_answers_streams_404s_and_429s() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(dir.path(), &one_a_minute(dir.path()));
    // The pool model first: `sim` has one request a minute.
    let plain = sdk(&addr, "nonstream", "sim-pool");
    assert_eq!(plain["object"], "chat.completion");
    assert_eq!(plain["model"], "sim-pool");
    assert!(
        plain["content"]
            .as_str()
            .unwrap()
            .starts_with("Final answer"),
        "{plain}"
    );
    let (p, c) = (
        plain["prompt_tokens"].as_u64().unwrap(),
        plain["completion_tokens"].as_u64().unwrap(),
    );
    assert_eq!(plain["total_tokens"].as_u64().unwrap(), p + c);
    let streamed = sdk(&addr, "stream", "sim-pool");
    assert!(
        streamed["content_chunks"].as_u64().unwrap() > 1,
        "{streamed}"
    );
    assert!(
        streamed["content"]
            .as_str()
            .unwrap()
            .starts_with("Final answer"),
        "{streamed}"
    );
    assert_eq!(streamed["finish_reason"], "stop");
    assert!(
        streamed["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{streamed}"
    );
    let missing = sdk(&addr, "notfound", "no-such-model");
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["code"], "model_not_found");
    // `sim`'s one request of the minute, then a request that may wait 0.2 s.
    assert_eq!(sdk(&addr, "nonstream", "sim")["object"], "chat.completion");
    let limited = sdk(&addr, "ratelimit", "sim");
    assert_eq!(limited["status"], 429, "{limited}");
    let after: u64 = limited["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=62).contains(&after), "{limited}");
    assert_eq!(limited["type"], "rate_limit_exceeded");
}

#[test]
fn the_openai_sdk_makes_a_tool_call_round_trip_through_the_gateway_to_the_mock() {
    let (_mock, mock) = spawn_listening(&["mock-provider", "--listen", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &format!(
            "models:\n  - name: mocked\n    backend: {{type: chatcompletion, model: mock-a, \
             base_url: 'http://{mock}/v1', api_key: key-gw-000000000000}}\n\
             rate_limit: {{state: none}}\n"
        ),
    );
    let round = sdk(&addr, "tools", "mocked");
    assert_eq!(round["finish_reason"], "tool_calls", "{round}");
    assert_eq!(round["tool"], "new_answer");
    assert!(round["arguments"]["content"].is_string(), "{round}");
    assert!(
        round["final"].as_str().unwrap().starts_with("Final answer"),
        "{round}"
    );
    // The mock saw both calls, and refused none.
    let stats = common::get_blocking(&mock, "/stats");
    assert_eq!(stats["total"]["admitted"], 2, "{stats}");
    assert_eq!(stats["total"]["refused"], 0, "{stats}");
}

/// Gemini and Anthropic models are served in OpenAI's shape: the official SDK asks, the
/// gateway's adapters translate to each API's own wire format (tool calls and their results
/// included), and the mock, which speaks each format, counts every request under its dialect.
#[test]
fn the_openai_sdk_reaches_gemini_and_anthropic_models_through_the_adapters() {
    let (_mock, mock) = spawn_listening(&["mock-provider", "--listen", "127.0.0.1:0"]);
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &format!(
            "models:\n  - name: gem\n    backend: {{type: gemini, model: gemini-2.5-flash, \
             base_url: 'http://{mock}/v1beta', api_key: key-gem-000000000000}}\n\
             \x20 - name: claude\n    backend: {{type: claude, model: claude-sonnet-4-5, \
             base_url: 'http://{mock}/v1', api_key: key-cla-000000000000}}\n\
             rate_limit: {{state: none}}\n"
        ),
    );
    for model in ["gem", "claude"] {
        let plain = sdk(&addr, "nonstream", model);
        assert_eq!(plain["object"], "chat.completion", "{plain}");
        assert_eq!(plain["model"], model, "{plain}");
        assert_eq!(plain["finish_reason"], "stop", "{plain}");
        assert!(!plain["content"].as_str().unwrap().is_empty(), "{plain}");
        let (p, c) = (
            plain["prompt_tokens"].as_u64().unwrap(),
            plain["completion_tokens"].as_u64().unwrap(),
        );
        assert!(p > 0 && c > 0, "{plain}");
        assert_eq!(plain["total_tokens"].as_u64().unwrap(), p + c, "{plain}");

        let streamed = sdk(&addr, "stream", model);
        assert_eq!(streamed["finish_reason"], "stop", "{streamed}");
        assert!(
            !streamed["content"].as_str().unwrap().is_empty(),
            "{streamed}"
        );
        assert!(
            streamed["usage"]["completion_tokens"].as_u64().unwrap() > 0,
            "{streamed}"
        );

        let round = sdk(&addr, "tools", model);
        assert_eq!(round["finish_reason"], "tool_calls", "{round}");
        assert_eq!(round["tool"], "new_answer", "{round}");
        assert!(round["arguments"]["content"].is_string(), "{round}");
        assert!(!round["call_id"].as_str().unwrap().is_empty(), "{round}");
        assert!(!round["final"].as_str().unwrap().is_empty(), "{round}");
    }
    // Each model's four requests (answer, stream, tool call, tool result) reached the mock in
    // its own API's format; none in OpenAI's, none refused.
    let stats = common::get_blocking(&mock, "/stats");
    for dialect in ["gemini", "anthropic"] {
        assert_eq!(stats["by_dialect"][dialect]["admitted"], 4, "{stats}");
        assert_eq!(stats["by_dialect"][dialect]["refused"], 0, "{stats}");
    }
    assert_eq!(
        stats["by_dialect"]["openai"]["requests"]
            .as_u64()
            .unwrap_or(0),
        0,
        "{stats}"
    );
}

/// An upstream of one request: keeps the body it was sent and answers a fixed completion.
async fn one_request_upstream() -> (String, tokio::sync::oneshot::Receiver<Value>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        let (head_end, length) = loop {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed before a whole request");
            got.extend_from_slice(&buf[..n]);
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map(|v| v.trim().parse().unwrap())
                    .unwrap_or_else(|| panic!("no content-length: {head}"));
                break (end + 4, length);
            }
        };
        while got.len() < head_end + length {
            let n = sock.read(&mut buf).await.unwrap();
            assert!(n > 0);
            got.extend_from_slice(&buf[..n]);
        }
        let sent: Value = serde_json::from_slice(&got[head_end..head_end + length]).unwrap();
        let answer = json!({
            "id": "chatcmpl-up", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
        })
        .to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             connection: close\r\n\r\n{answer}",
            answer.len()
        );
        sock.write_all(reply.as_bytes()).await.unwrap();
        let _ = tx.send(sent);
    });
    (addr, rx)
}

/// Sampling options a client sets reach the provider as its API takes them (read back from
/// the bytes the upstream received); `n` above 1, an out-of-range `top_p` and an unknown effort
/// get 400; fields the gateway does not act on are named in `x-massgen-ignored` and not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_options_reach_the_provider_and_ignored_fields_are_named() {
    let (upstream, sent) = one_request_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &format!(
            "models:\n  - name: up\n    backend: {{type: chatcompletion, model: gpt-4o-mini, \
             base_url: 'http://{upstream}/v1', api_key: key-up-000000000000}}\n\
             rate_limit: {{state: none}}\n"
        ),
    );
    let mut ask = question("up");
    for (field, value) in [
        ("top_p", json!(0.25)),
        ("reasoning_effort", json!("low")),
        ("seed", json!(7)),
        ("user", json!("u-1")),
        ("response_format", json!({"type": "text"})),
        ("tool_choice", json!("auto")),
        ("bad\r\nname", json!(1)),
        ("n", json!(1)),
    ] {
        ask[field] = value;
    }
    let answer = chat(&addr, ask.clone()).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["x-massgen-ignored"],
        "response_format, seed, tool_choice, user"
    );
    let body: Value = answer.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "ok", "{body}");
    let sent = tokio::time::timeout(Duration::from_secs(10), sent)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sent["top_p"], 0.25, "{sent}");
    assert_eq!(sent["reasoning_effort"], "low", "{sent}");
    assert_eq!(sent["model"], "gpt-4o-mini", "{sent}");
    for never in [
        "seed",
        "user",
        "response_format",
        "tool_choice",
        "n",
        "bad\r\nname",
    ] {
        assert!(sent.get(never).is_none(), "{never} was sent: {sent}");
    }

    // What cannot be honoured is refused, saying why.
    for (field, value, says) in [
        ("n", json!(3), "one choice"),
        ("top_p", json!(1.5), "top_p"),
        ("reasoning_effort", json!("extreme"), "reasoning_effort"),
        ("verbosity", json!("loud"), "verbosity"),
    ] {
        let mut bad = question("up");
        bad[field] = value;
        let refused = chat(&addr, bad).await;
        assert_eq!(refused.status(), 400, "{field}");
        let body: Value = refused.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().contains(says),
            "{field}: {body}"
        );
    }
}

/// A stream the upstream provider cuts after part of the answer was sent is not retried onto
/// the same response (that would splice two attempts' text): the client gets the part, then an
/// error event saying the answer is incomplete. A stream cut before anything was sent is
/// retried cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_broken_upstream_after_text_was_sent_ends_with_an_error_not_a_splice() {
    let (_mock, mock) = spawn_listening(&[
        "mock-provider",
        "--listen",
        "127.0.0.1:0",
        "--faults",
        "truncate:first=1",
    ]);
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &format!(
            "models:\n  - name: mocked\n    backend: {{type: chatcompletion, model: mock-a, \
             base_url: 'http://{mock}/v1', api_key: key-gw-000000000000}}\n\
             rate_limit: {{state: none}}\n"
        ),
    );
    let mut body = question("mocked");
    body["stream"] = json!(true);
    let read = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 200);
        let text = r.text().await.unwrap();
        let mut content = String::new();
        let mut error = None;
        for data in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
            if data == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(data).unwrap();
            if v.get("error").is_some() {
                error = Some(v);
            } else if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
                content.push_str(c);
            }
        }
        (content, error, text)
    };
    let (partial, error, raw) = read(chat(&addr, body.clone()).await).await;
    let error = error.unwrap_or_else(|| panic!("no error event after a broken stream: {raw}"));
    assert_eq!(error["error"]["type"], "api_error", "{raw}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("incomplete"),
        "{raw}"
    );
    // The part sent is the start of one answer, never two answers run together.
    assert!(!partial.is_empty(), "{raw}");
    assert_eq!(partial.matches("Final answer").count(), 1, "{raw}");
    // The next request is answered whole.
    let (whole, error, raw) = read(chat(&addr, body).await).await;
    assert!(error.is_none(), "{raw}");
    assert!(whole.starts_with("Final answer"), "{raw}");
    // The mock answers a question the same way each time: what was sent first is the start
    // of that answer.
    assert!(whole.starts_with(partial.as_str()), "{partial} / {raw}");
}
