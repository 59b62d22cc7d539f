//! The HTTP surface fed what no well-behaved client sends, over raw TCP (so nothing in between
//! tidies the bytes): broken request lines and headers, line breaks smuggled into header
//! values and JSON strings, absurd numbers, lying lengths, oversized bodies sent chunked, and
//! seeded random mutations of a valid request. Every answer is a clear 4xx (or a 200 for what
//! is still a valid request), no answer reflects what was smuggled as a header of its own, and
//! the server keeps serving.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::common::{chat, serve, sim_config};

/// Sends `raw` on a new connection and reads until the server closes it or 10 s pass; the
/// status (0 when the server closed without an answer), the head and the body.
async fn raw(addr: &str, raw: &[u8]) -> (u16, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

fn post(body: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn valid() -> String {
    json!({"model": "sim", "messages": [{"role": "user", "content": "Is this fine?"}]}).to_string()
}

/// No header of the answer came from the request (a smuggled `x-evil`).
fn assert_no_smuggled_header(head: &str) {
    assert!(
        !head.to_ascii_lowercase().contains("\r\nx-evil"),
        "a smuggled header came back: {head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_http_gets_clear_4xx_never_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &sim_config("max_body_bytes: 4096\nrate_limit: {state: none}\n"),
    );
    let big = "x".repeat(9000);
    let chunked_big = {
        let chunk = format!(
            "{{\"model\": \"sim\", \"messages\": [{{\"role\": \"user\", \"content\": \"{big}\"}}]}}"
        );
        format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
            chunk.len()
        )
        .into_bytes()
    };
    // (what, request bytes, the statuses that are a clear answer to it)
    let cases: Vec<(&str, Vec<u8>, &[u16])> = vec![
        ("garbage request line", b"\x00\x01\x02 nonsense\r\n\r\n".to_vec(), &[0, 400]),
        ("no HTTP version", b"POST /v1/chat/completions\r\n\r\n".to_vec(), &[0, 400]),
        // HTTP/1.1 lets a server take a bare LF as a line end: then it is two headers.
        ("bare LF in a header value", post(&valid(), "x-massgen-max-wait: 1\nx-evil: 1\r\n"), &[0, 200, 400]),
        ("bare CR in a header value", post(&valid(), "x-massgen-max-wait: 1\rx-evil: 1\r\n"), &[0, 400]),
        ("folded header line", post(&valid(), "x-massgen-max-wait: 1\r\n x-evil: 1\r\n"), &[0, 400]),
        ("header name with a space", post(&valid(), "x evil: 1\r\n"), &[0, 400]),
        ("non-UTF-8 bearer key", post(&valid(), "authorization: Bearer \u{ff}\u{fe}\r\n"), &[200, 400, 401]),
        ("huge max wait", post(&valid(), "x-massgen-max-wait: 1e308\r\n"), &[200]),
        ("overflowing max wait", post(&valid(), "x-massgen-max-wait: 99999999999999999999999\r\n"), &[200]),
        ("negative max wait", post(&valid(), "x-massgen-max-wait: -5\r\n"), &[400]),
        ("NaN max wait", post(&valid(), "x-massgen-max-wait: NaN\r\n"), &[400]),
        ("max wait with non-ASCII", post(&valid(), "x-massgen-max-wait: \u{e9}\r\n"), &[400]),
        ("content-length too big for the body", {
            let mut r = post(&valid(), "");
            let text = String::from_utf8(r.clone()).unwrap()
                .replace(&format!("content-length: {}", valid().len()), "content-length: 99");
            r = text.into_bytes();
            r
        }, &[0, 400]),
        ("content-length past the limit", (
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 10000000000\r\n\r\n{}"
        ).to_vec(), &[413]),
        ("two content-lengths", post(&valid(), "content-length: 3\r\n"), &[0, 400]),
        ("chunked body past the limit", chunked_big, &[413]),
        ("a line break in the model name", post(&json!({"model": "sim\r\nx-evil: 1", "messages": [{"role": "user", "content": "x"}]}).to_string(), ""), &[404]),
        ("deep nesting", post(&format!("{}{}", "[".repeat(5000), "]".repeat(5000)), ""), &[400, 413]),
        ("numbers out of range", post(&json!({"model": "sim", "messages": [{"role": "user", "content": "x"}], "max_tokens": 1e300, "temperature": -1e308}).to_string(), ""), &[400]),
        ("wrong method", b"DELETE /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(), &[405]),
        ("unknown path", b"GET /v1/%00%ff/../../etc HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n".to_vec(), &[404]),
    ];
    for (what, bytes, ok) in cases {
        let (status, head, body) = raw(&addr, &bytes).await;
        assert!(
            ok.contains(&status),
            "{what}: {status}\n{head}\n{body:.300}"
        );
        assert_no_smuggled_header(&head);
        if (400..500).contains(&status) && head.contains("application/json") {
            let v: Value =
                serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e}: {body}"));
            assert!(v["error"]["message"].is_string(), "{what}: {v}");
        }
        // Still serving after each one.
        assert_eq!(
            chat(
                &addr,
                json!({"model": "sim", "messages": [{"role": "user", "content": "ok?"}]})
            )
            .await
            .status(),
            200,
            "after {what}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_mutations_of_a_valid_request_never_get_a_5xx() {
    let dir = tempfile::tempdir().unwrap();
    let (_child, addr) = serve(
        dir.path(),
        &sim_config("max_body_bytes: 65536\nrate_limit: {state: none}\n"),
    );
    let base = json!({
        "model": "sim",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "42"}
        ],
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "max_tokens": 50,
        "stream": false
    })
    .to_string()
    .into_bytes();
    // Seeded: a failure names its seed and replays exactly.
    let seed = 0x5eed_u64;
    let mut rng = fastrand::Rng::with_seed(seed);
    let specials: &[u8] = b"{}[]\",:\\\x00\xff\r\n0-e.";
    let mut statuses = std::collections::BTreeMap::new();
    for i in 0..150 {
        let mut body = base.clone();
        for _ in 0..rng.usize(1..4) {
            let at = rng.usize(..body.len());
            match rng.u8(..4) {
                0 => body[at] = specials[rng.usize(..specials.len())],
                1 => {
                    body.remove(at);
                }
                2 => body.insert(at, specials[rng.usize(..specials.len())]),
                _ => body.truncate(at.max(1)),
            }
        }
        let mut request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        let (status, head, text) = raw(&addr, &request).await;
        assert!(
            status == 200 || (400..500).contains(&status),
            "seed {seed:#x}, case {i}: {status}\n{head}\n{text:.300}\nbody: {}",
            String::from_utf8_lossy(&body)
        );
        *statuses.entry(status).or_insert(0) += 1;
    }
    // The mutations did reach the parser (most are refused) and the server still answers.
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 50,
        "{statuses:?}"
    );
    assert_eq!(
        chat(
            &addr,
            json!({"model": "sim", "messages": [{"role": "user", "content": "ok?"}]})
        )
        .await
        .status(),
        200
    );
}
