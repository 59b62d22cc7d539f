//! The admin endpoints over the provider keys of a runtime ([`KeyRegistry`]):
//!
//! - `GET /admin/keys`: every key, masked to its last four characters (`…abcd`), with its id,
//!   origin, health, circuit, admin state and usage;
//! - `POST /admin/keys/{id}/disable`: the key is skipped by every pool like a retired one;
//! - `POST /admin/keys/{id}/enable`: ends a disable or a forced rest (a key the provider
//!   refused stays retired);
//! - `POST /admin/keys/{id}/cooldown` with `{"seconds": N}`: the key rests N seconds, then is
//!   used again by itself.
//!
//! `id` is the key's short id ([`crate::keys::ApiKey::short_id`], as in `GET /admin/keys`, quota
//! scope names and metrics). Answers are JSON; an unknown id is a 404, a bad body a 400, both
//! with an OpenAI-style error body. The router only lets admin clients through
//! ([`super::auth::require_admin`]), so it must be mounted behind
//! [`super::auth::require_client`].

#[cfg(test)]
mod tests;

use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use super::auth::{error_body, require_admin};
use crate::keys::{CircuitState, KeyHealth, KeyRegistry, KeyStatus, KeyUsage};

/// The longest rest an admin may order: 7 days.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(7 * 86_400);

/// The admin routes over `keys`, for any outer router state `S` (merge it into the gateway's
/// router behind [`super::auth::require_client`]).
pub fn router<S: Clone + Send + Sync + 'static>(keys: KeyRegistry) -> Router<S> {
    Router::new()
        .route("/admin/keys", get(list))
        .route("/admin/keys/{id}/disable", post(disable))
        .route("/admin/keys/{id}/enable", post(enable))
        .route("/admin/keys/{id}/cooldown", post(cooldown))
        .route_layer(axum::middleware::from_fn(require_admin))
        .with_state(keys)
}

/// One provider key as the admin endpoints show it (never the secret).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyView {
    /// The short id the other endpoints take.
    pub id: String,
    /// `…` and the key's last four characters (only `…` for a key under 12 characters).
    pub key: String,
    /// Where the key came from (an env var name or a config path).
    pub origin: String,
    /// Whether calls may use it now.
    pub usable: bool,
    /// Healthy or retired (with the reason).
    pub health: KeyHealth,
    /// Disabled by an admin.
    pub disabled: bool,
    /// The end of a rest an admin ordered (RFC 3339, UTC), while it lasts.
    pub cooling_until: Option<String>,
    /// The circuit breaker.
    pub circuit: CircuitState,
    /// Transport, 5xx or timeout failures in a row.
    pub consecutive_failures: u32,
    /// Calls, successes, rate-limited and failed calls, tokens.
    pub usage: KeyUsage,
    /// The last error seen with the key.
    pub last_error: Option<String>,
}

impl From<KeyStatus> for KeyView {
    fn from(s: KeyStatus) -> Self {
        let usable = s.is_live();
        let cooling_until = s.cooling_until_ms.map(|ms| {
            chrono::DateTime::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_default()
        });
        Self {
            id: s.id,
            key: format!("…{}", s.key.trim_start_matches('*')),
            origin: s.origin,
            usable,
            health: s.health,
            disabled: s.disabled,
            cooling_until,
            circuit: s.circuit,
            consecutive_failures: s.consecutive_failures,
            usage: s.usage,
            last_error: s.last_error,
        }
    }
}

/// The answer of every admin endpoint: `{"keys": [...]}`: every key (`GET /admin/keys`), or
/// the key(s) with the id after the change (`POST /admin/keys/{id}/...`).
#[derive(Debug, Serialize)]
struct KeyList {
    keys: Vec<KeyView>,
}

async fn list(State(keys): State<KeyRegistry>) -> Response {
    let keys = keys.status().into_iter().map(KeyView::from).collect();
    axum::Json(KeyList { keys }).into_response()
}

/// Why an admin request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AdminError {
    /// No key has the id.
    NotFound(String),
    /// The body is not what the endpoint takes.
    BadBody(String),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            AdminError::NotFound(m) => (StatusCode::NOT_FOUND, "key_not_found", m),
            AdminError::BadBody(m) => (StatusCode::BAD_REQUEST, "invalid_body", m),
        };
        let body = error_body(&message, "invalid_request_error", code);
        (status, axum::Json(body)).into_response()
    }
}

/// The handles with short id `id`, or a 404 naming it (when it looks like an id at all).
fn find(
    keys: &KeyRegistry,
    id: &str,
) -> Result<Vec<std::sync::Arc<crate::keys::KeyHandle>>, AdminError> {
    let found = keys.by_id(id);
    if found.is_empty() {
        let shown = if id.len() <= 16 && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            format!(" `{id}`")
        } else {
            String::new()
        };
        return Err(AdminError::NotFound(format!(
            "no provider key has the id{shown}; GET /admin/keys lists the keys and their ids"
        )));
    }
    Ok(found)
}

fn answer(found: &[std::sync::Arc<crate::keys::KeyHandle>]) -> Response {
    let keys = found.iter().map(|h| KeyView::from(h.status())).collect();
    axum::Json(KeyList { keys }).into_response()
}

async fn disable(State(keys): State<KeyRegistry>, Path(id): Path<String>) -> Response {
    match find(&keys, &id) {
        Ok(found) => {
            for h in &found {
                h.disable().await;
                tracing::warn!(key = %h.key(), id = %id, "provider key disabled by an admin");
            }
            answer(&found)
        }
        Err(e) => e.into_response(),
    }
}

async fn enable(State(keys): State<KeyRegistry>, Path(id): Path<String>) -> Response {
    match find(&keys, &id) {
        Ok(found) => {
            for h in &found {
                h.enable().await;
                tracing::info!(key = %h.key(), id = %id, "provider key enabled by an admin");
            }
            answer(&found)
        }
        Err(e) => e.into_response(),
    }
}

/// The body of `POST /admin/keys/{id}/cooldown`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CooldownBody {
    seconds: f64,
}

fn rest_of(body: &[u8]) -> Result<Duration, AdminError> {
    let usage = "send a JSON body {\"seconds\": N}, N between 1 and 604800 (7 days)";
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(AdminError::BadBody(format!("no body: {usage}")));
    }
    let parsed: CooldownBody = serde_json::from_slice(body).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "not the expected fields",
            _ => "not valid JSON",
        };
        AdminError::BadBody(format!("the body is {what}: {usage}"))
    })?;
    let s = parsed.seconds;
    if !(1.0..=MAX_COOLDOWN.as_secs_f64()).contains(&s) {
        return Err(AdminError::BadBody(format!(
            "seconds out of range: {usage}"
        )));
    }
    Ok(Duration::from_secs_f64(s))
}

async fn cooldown(
    State(keys): State<KeyRegistry>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let found = match find(&keys, &id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let rest = match rest_of(&body) {
        Ok(d) => d,
        Err(e) => return e.into_response(),
    };
    for h in &found {
        h.rest_for(rest).await;
        tracing::warn!(
            key = %h.key(),
            id = %id,
            seconds = rest.as_secs_f64(),
            "provider key resting by an admin's order"
        );
    }
    answer(&found)
}
