//! Client auth of the gateway: the clients of the config (`clients:`), each with a key kept
//! only as its SHA-256 digest, a role (`admin` / `user`) and its own quota.
//!
//! A request names its client with `Authorization: Bearer <key>` (or `x-api-key: <key>`); the
//! key is hashed and compared with every client's digest in constant time (the comparison
//! never stops at the first match, so its time says nothing about which client or how many
//! bytes matched). A request without a valid key is answered 401 with an OpenAI-style error
//! body and `WWW-Authenticate: Bearer`; a user on an admin route, 403.
//!
//! No clients configured means auth is off: every request is the anonymous admin client, and
//! the gateway must then listen on a loopback address only ([`ClientTable::check_listen`]).
//!
//! Wiring: `router.layer(axum::middleware::from_fn_with_state(table, require_client))` with
//! `table: Arc<ClientTable>`; handlers read the caller with `Extension<Arc<Client>>`.

mod config;
mod quota;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_fuzz;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::{ConditionallySelectable, ConstantTimeEq};

pub use config::{
    ClientConfigError, MAX_KEY_BYTES, MAX_NAME_CHARS, MIN_KEY_CHARS, RawClient, RawClientQuota,
    hash_key, hash_key_hex,
};
pub use quota::{
    ClientQuota, ClientScopeError, client_budgets, client_scope, register_client_scopes,
};

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, the admin endpoints included.
    Admin,
    /// The API (`/v1/...`), not the admin endpoints.
    User,
}

/// One client of the gateway. Holds the digest of its key, never the key.
pub struct Client {
    name: String,
    role: Role,
    digest: [u8; 32],
    quota: ClientQuota,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

/// The name of the client every request is when auth is off.
pub const ANONYMOUS: &str = "anonymous";

impl Client {
    fn new(name: String, role: Role, digest: [u8; 32], quota: ClientQuota) -> Self {
        Self {
            name,
            role,
            digest,
            quota,
        }
    }

    /// The client of every request when auth is off: an admin with no quota.
    fn anonymous() -> Self {
        Self::new(
            ANONYMOUS.to_owned(),
            Role::Admin,
            [0; 32],
            ClientQuota::default(),
        )
    }

    /// The name from the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether the client may use the admin endpoints.
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// The client's own limits.
    pub fn quota(&self) -> &ClientQuota {
        &self.quota
    }

    /// Who asks, for the supervisor (`AcquireRequest::requester`) and the usage ledger (a
    /// record's `agent`): `client:<name>`. A client's day budget counts the ledger records of
    /// this name ([`client_budgets`]).
    pub fn requester(&self) -> String {
        format!("client:{}", self.name)
    }
}

/// The clients of the config, ready to authenticate requests.
#[derive(Debug)]
pub struct ClientTable {
    clients: Vec<Arc<Client>>,
    anonymous: Arc<Client>,
}

impl Default for ClientTable {
    /// No clients: auth is off.
    fn default() -> Self {
        Self {
            clients: Vec::new(),
            anonymous: Arc::new(Client::anonymous()),
        }
    }
}

/// A listen address refused because auth is off.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "no clients are configured, so the gateway serves anyone who can reach it: it listens only on a loopback address (127.0.0.1 or [::1]), not {addr}; add `clients:` with keys to listen there"
)]
pub struct LoopbackOnly {
    /// The refused address.
    pub addr: SocketAddr,
}

impl ClientTable {
    /// The table of a config's `clients:` (empty or absent: auth is off).
    pub fn from_raw(raw: &[RawClient]) -> Result<Self, ClientConfigError> {
        Ok(Self {
            clients: config::clients(raw)?.into_iter().map(Arc::new).collect(),
            ..Self::default()
        })
    }

    /// Every configured client, in file order.
    pub fn clients(&self) -> &[Arc<Client>] {
        &self.clients
    }

    /// The client named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Client>> {
        self.clients.iter().find(|c| c.name == name)
    }

    /// Whether requests must carry a client key (some client is configured).
    pub fn is_enabled(&self) -> bool {
        !self.clients.is_empty()
    }

    /// Whether the gateway may listen only on loopback: auth is off.
    pub fn requires_loopback(&self) -> bool {
        !self.is_enabled()
    }

    /// Refuses a non-loopback `addr` when auth is off.
    pub fn check_listen(&self, addr: &SocketAddr) -> Result<(), LoopbackOnly> {
        if self.requires_loopback() && !addr.ip().is_loopback() {
            Err(LoopbackOnly { addr: *addr })
        } else {
            Ok(())
        }
    }

    /// The client a request's headers name (`Authorization: Bearer <key>`, else `x-api-key`);
    /// the anonymous admin when auth is off. The key's digest is compared with every client's
    /// in constant time.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Arc<Client>, AuthError> {
        if !self.is_enabled() {
            return Ok(self.anonymous.clone());
        }
        let presented = hash_key(presented_key(headers)?);
        let mut found = u32::MAX;
        for (i, client) in self.clients.iter().enumerate() {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            found.conditional_assign(&index, client.digest[..].ct_eq(&presented[..]));
        }
        usize::try_from(found)
            .ok()
            .and_then(|i| self.clients.get(i))
            .cloned()
            .ok_or(AuthError::Invalid)
    }
}

/// The key a request presents, checked for shape (not yet for validity).
fn presented_key(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    if let Some(value) = auth.next() {
        if auth.next().is_some() {
            return Err(AuthError::Malformed("more than one Authorization header"));
        }
        let text = visible(value)?;
        let (scheme, rest) = text.split_once([' ', '\t']).unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(AuthError::Malformed(
                "the Authorization header must be `Bearer <key>`",
            ));
        }
        return key_shape(rest.trim_matches([' ', '\t']), "`Bearer` with no key");
    }
    let mut keys = headers.get_all("x-api-key").iter();
    let Some(value) = keys.next() else {
        return Err(AuthError::Missing);
    };
    if keys.next().is_some() {
        return Err(AuthError::Malformed("more than one x-api-key header"));
    }
    key_shape(
        visible(value)?.trim_matches([' ', '\t']),
        "an empty x-api-key header",
    )
}

fn visible(value: &HeaderValue) -> Result<&str, AuthError> {
    value
        .to_str()
        .map_err(|_| AuthError::Malformed("the key header holds bytes other than visible ASCII"))
}

fn key_shape<'a>(key: &'a str, empty: &'static str) -> Result<&'a str, AuthError> {
    if key.is_empty() {
        Err(AuthError::Malformed(empty))
    } else if key.len() > MAX_KEY_BYTES {
        Err(AuthError::Malformed("the key is too long"))
    } else if !config::sendable(key) {
        Err(AuthError::Malformed("the key holds spaces"))
    } else {
        Ok(key)
    }
}

/// Why a request was refused. Renders as an OpenAI-style error: 401 with
/// `WWW-Authenticate: Bearer` (code `invalid_api_key`), or 403 for [`AuthError::Forbidden`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` or `x-api-key` header.
    #[error(
        "missing API key: send `Authorization: Bearer <key>` (or `x-api-key: <key>`) with a client key of this gateway"
    )]
    Missing,
    /// A key header that cannot hold a key.
    #[error("malformed API key header: {0}; send `Authorization: Bearer <key>`")]
    Malformed(&'static str),
    /// A key no client has.
    #[error("invalid API key: no client of this gateway has it")]
    Invalid,
    /// A valid client without the role a route needs.
    #[error("this endpoint needs a client with the admin role")]
    Forbidden,
}

impl AuthError {
    /// 401, or 403 for [`AuthError::Forbidden`].
    pub fn status(&self) -> StatusCode {
        match self {
            AuthError::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The error body's `code`.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Forbidden => "insufficient_permissions",
            _ => "invalid_api_key",
        }
    }
}

/// An OpenAI-style error body: `{"error": {"message", "type", "param": null, "code"}}`.
pub fn error_body(message: &str, kind: &str, code: &str) -> serde_json::Value {
    serde_json::json!({
        "error": {"message": message, "type": kind, "param": null, "code": code}
    })
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let body = error_body(&self.to_string(), "invalid_request_error", self.code());
        let mut response = (self.status(), axum::Json(body)).into_response();
        if self.status() == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Whether `path` is an admin route (`/admin` and below): only admins may call it.
pub fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/")
}

/// The shared state of [`require_client`].
pub type AuthState = Arc<ClientTable>;

/// Middleware (`axum::middleware::from_fn_with_state(table, require_client)`): authenticates
/// the request, refuses admin routes ([`is_admin_path`]) to non-admins with 403, and puts the
/// `Arc<Client>` into the request's extensions for the handlers.
pub async fn require_client(
    State(table): State<AuthState>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = match table.authenticate(request.headers()) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if is_admin_path(request.uri().path()) && !client.is_admin() {
        return AuthError::Forbidden.into_response();
    }
    request.extensions_mut().insert(client);
    next.run(request).await
}

/// Middleware (`axum::middleware::from_fn(require_admin)`) behind [`require_client`]: lets
/// only admin clients through. Without a client in the extensions ([`require_client`] not in
/// front) it refuses with 401: an admin route is never open by mistake.
pub async fn require_admin(request: Request, next: Next) -> Response {
    match request.extensions().get::<Arc<Client>>() {
        Some(c) if c.is_admin() => next.run(request).await,
        Some(_) => AuthError::Forbidden.into_response(),
        None => AuthError::Missing.into_response(),
    }
}
