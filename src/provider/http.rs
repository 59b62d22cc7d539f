//! The HTTP plumbing every adapter shares: one `reqwest` client (rustls, connect and read
//! timeouts), sending a JSON body, and turning transport failures and non-2xx answers into
//! [`ProviderError`]s with their rate-limit signal.
//!
//! Dropping the future of a call drops the `reqwest` future, which cancels the request.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::Utc;
use reqwest::header::HeaderMap;

use super::signals::{Dialect, classify_error, observe};
use super::{ProviderError, ProviderErrorKind};
use crate::quota::RateLimitSignal;

/// Connection and read time limits of the shared client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpSettings {
    /// Longest wait to open a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// Longest silence while reading an answer (between two chunks of a stream).
    pub read_timeout: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// The header value carrying `key`, written as `{prefix}{key}` (`"Bearer "` for OpenAI, empty
/// for Gemini and Anthropic). A key with characters a header cannot hold is an auth error that
/// shows the key masked.
pub fn key_header(
    key: &crate::keys::ApiKey,
    prefix: &str,
) -> Result<reqwest::header::HeaderValue, ProviderError> {
    reqwest::header::HeaderValue::from_str(&format!("{prefix}{}", key.expose())).map_err(|_| {
        ProviderError::new(
            ProviderErrorKind::Auth,
            format!("the key {key} contains characters not allowed in a header"),
        )
    })
}

/// Builds a client with `settings` (rustls, HTTP/1.1 keep-alive pool, `TCP_NODELAY`).
pub fn build_client(settings: HttpSettings) -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .connect_timeout(settings.connect_timeout)
        .read_timeout(settings.read_timeout)
        .tcp_nodelay(true)
        .user_agent(concat!("massgen-rs/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            ProviderError::new(
                ProviderErrorKind::BadRequest,
                format!("cannot build the HTTP client: {e}"),
            )
        })
}

/// The process-wide client with default settings, built once and shared by every adapter (so
/// connections are pooled across agents).
pub fn shared_client() -> Result<reqwest::Client, ProviderError> {
    static CLIENT: OnceLock<Result<reqwest::Client, ProviderError>> = OnceLock::new();
    CLIENT
        .get_or_init(|| build_client(HttpSettings::default()))
        .clone()
}

/// A transport failure (no HTTP answer, or the body broke off) as a [`ProviderError`]:
/// timeouts, refused or reset connections and cut bodies are `Transient`; a connection that
/// could not be opened is marked [`ProviderError::not_sent`].
pub fn transport_error(e: &reqwest::Error) -> ProviderError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    // reqwest's Display never includes headers, so no key can leak; the URL has no secret
    // either (keys travel in headers).
    let error = ProviderError::new(ProviderErrorKind::Transient, format!("{what}: {e}"));
    // No connection, no request: nothing of it reached the provider.
    if e.is_connect() {
        error.never_sent()
    } else {
        error
    }
}

/// A successful answer: its headers' rate-limit observation and the response to read.
pub struct Answer {
    /// The answer, body unread.
    pub response: reqwest::Response,
    /// What the headers said about remaining capacity.
    pub observed: Option<RateLimitSignal>,
}

/// POSTs `body` as JSON to `url` with `headers`; a non-2xx answer is read and classified
/// (status, headers, body) into an error with its signal.
pub async fn post_json(
    client: &reqwest::Client,
    dialect: Dialect,
    url: &str,
    headers: HeaderMap,
    body: &serde_json::Value,
) -> Result<Answer, ProviderError> {
    let response = client
        .post(url)
        .headers(headers)
        .json(body)
        .send()
        .await
        .map_err(|e| transport_error(&e))?;
    let status = response.status().as_u16();
    let observed = observe(dialect, response.headers(), Utc::now());
    if response.status().is_success() {
        return Ok(Answer { response, observed });
    }
    let headers = response.headers().clone();
    let text = response.text().await.map_err(|e| transport_error(&e))?;
    Err(classify_error(dialect, status, &headers, &text, Utc::now()))
}

/// Reads a whole (non-streamed) answer's body as text.
pub async fn read_text(answer: Answer) -> Result<(String, Option<RateLimitSignal>), ProviderError> {
    let text = answer
        .response
        .text()
        .await
        .map_err(|e| transport_error(&e))?;
    Ok((text, answer.observed))
}

/// A `Malformed` error naming what could not be parsed, with the start of the offending text.
pub fn malformed(what: &str, detail: impl std::fmt::Display, raw: &str) -> ProviderError {
    let mut end = raw.len().min(200);
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    ProviderError::new(
        ProviderErrorKind::Malformed,
        format!(
            "could not parse the {what}: {detail}; it began: {:?}",
            &raw[..end]
        ),
    )
}

/// Parses a JSON answer into `T`, or a clear `Malformed` error.
pub fn parse_json<T: serde::de::DeserializeOwned>(
    what: &str,
    raw: &str,
) -> Result<T, ProviderError> {
    serde_json::from_str(raw).map_err(|e| malformed(what, e, raw))
}
