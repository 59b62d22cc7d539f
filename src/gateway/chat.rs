//! `POST /v1/chat/completions`: read the request (content type, size, JSON, model), make the
//! call through the model's route, and answer as OpenAI does — a `chat.completion`, or
//! `chat.completion.chunk` events when `stream` is true.
//!
//! The call runs inside the request's own future: a client that goes away while its request
//! waits for quota drops the request, and with it the permit request (nothing is consumed).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::wire::{WireRequest, completion_json};
use super::{Caller, GatewayState};
use crate::routing::{self, CallObserver};
use crate::runtime::RequestRoute;

/// The header a client sets to say how long (seconds) its request may wait for quota.
pub const MAX_WAIT_HEADER: &str = "x-massgen-max-wait";
/// The longest wait a client may ask for.
const MAX_WAIT_CEILING: Duration = Duration::from_secs(3600);
/// The requester name when no auth layer named the client.
pub const ANONYMOUS: &str = "gateway";

/// Retries are not reported to the client (the answer or the error says what happened).
pub(super) struct Quiet;

impl CallObserver for Quiet {
    fn retrying(&self, attempt: u32, reason: &str, delay: Duration) {
        tracing::debug!(attempt, reason, ?delay, "gateway call retrying");
    }
}

/// The handler.
pub(super) async fn completions(
    State(state): State<Arc<GatewayState>>,
    caller: Option<Extension<Caller>>,
    request: Request,
) -> Response {
    match serve(&state, caller.map(|Extension(c)| c), request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn serve(
    state: &GatewayState,
    caller: Option<Caller>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    json_content_type(&parts.headers)?;
    let bytes = read_body(body, state.config.max_body_bytes, &parts.headers).await?;
    let wire: WireRequest = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "the body is not a valid chat completions request: {e}"
        ))
    })?;
    let Some(agent) = state.config.team.agents.iter().find(|a| a.id == wire.model) else {
        return Err(ApiError::unknown_model(
            &wire.model,
            &state.config.model_names(),
        ));
    };
    let chat = wire.to_chat(agent).map_err(ApiError::bad_request)?;
    let max_wait = max_wait(&parts.headers, state.config.max_wait)?;
    let (requester, extra_scopes, budget) = match caller {
        Some(c) => (c.name, c.extra_scopes, c.budget),
        None => (ANONYMOUS.to_owned(), Vec::new(), None),
    };
    let ask = RequestRoute {
        requester: &requester,
        max_wait: Some(max_wait),
        extra_scopes,
        budget,
    };
    let Some(route) = state.routes.route(&agent.id, &ask) else {
        return Err(ApiError::unknown_model(
            &wire.model,
            &state.config.model_names(),
        ));
    };
    let mut response = if wire.streams() {
        super::stream::respond(route, chat, wire.model.clone(), wire.include_usage()).await?
    } else {
        let report = routing::call(&route, || chat.clone(), None, 0, &Quiet)
            .await
            .map_err(|e| ApiError::from_call(&e))?;
        let usage = report.response.usage.or(Some(report.usage));
        let body = completion_json(
            &completion_id(),
            chrono::Utc::now().timestamp(),
            &wire.model,
            &report.response,
            usage.as_ref(),
        );
        axum::Json(body).into_response()
    };
    let ignored = super::wire::ignored_fields(&bytes);
    if !ignored.is_empty()
        && let Ok(value) = HeaderValue::from_str(&ignored.join(", "))
    {
        response.headers_mut().insert("x-massgen-ignored", value);
    }
    Ok(response)
}

/// A fresh `chatcmpl-...` id.
pub(super) fn completion_id() -> String {
    format!(
        "chatcmpl-{:016x}{:08x}",
        fastrand::u64(..),
        fastrand::u32(..)
    )
}

fn json_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let given = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    let essence = given
        .map(|t| {
            t.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if essence == "application/json" {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "invalid_request_error",
        format!(
            "the body must be JSON sent with `Content-Type: application/json` (got {})",
            given.map_or_else(
                || "no content type".to_owned(),
                |t| format!("`{}`", crate::config::shown(t))
            )
        ),
    ))
}

async fn read_body(
    body: Body,
    limit: usize,
    headers: &HeaderMap,
) -> Result<bytes_alias::Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            format!(
                "the request body is larger than this gateway accepts ({limit} bytes, `max_body_bytes`)"
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

mod bytes_alias {
    pub use axum::body::Bytes;
}

fn max_wait(headers: &HeaderMap, default: Duration) -> Result<Duration, ApiError> {
    let Some(v) = headers.get(MAX_WAIT_HEADER) else {
        return Ok(default);
    };
    let secs = v
        .to_str()
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0);
    match secs {
        // Capped before converting: a huge number of seconds is no Duration at all.
        Some(s) => Ok(Duration::from_secs_f64(
            s.min(MAX_WAIT_CEILING.as_secs_f64()),
        )),
        None => Err(ApiError::bad_request(format!(
            "`{MAX_WAIT_HEADER}` must be a number of seconds (e.g. 2.5)"
        ))),
    }
}
