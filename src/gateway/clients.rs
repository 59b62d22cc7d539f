//! The gateway's client auth wired into its server: the `clients:` section read into a
//! [`ClientTable`], every client's quota registered with the supervisor, the auth layer around
//! the API routes (each request's [`Caller`] is its client: the requester and the client's
//! scopes), and the admin endpoints behind it.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::Response;

use super::auth::{Client, ClientTable, RawClient, register_client_scopes, require_client};
use super::{Caller, GatewayConfig, GatewayHooks, GatewayState};

/// The clients of `config` (none: auth is off, every request is the anonymous client, and the
/// gateway must listen on loopback).
pub(crate) fn table(config: &GatewayConfig) -> Result<Arc<ClientTable>, String> {
    let file = config
        .source
        .as_ref()
        .map_or("the gateway file".to_owned(), |p| p.display().to_string());
    let raw: Vec<RawClient> = match &config.clients {
        None | Some(serde_yaml::Value::Null) => Vec::new(),
        Some(v) => {
            serde_yaml::from_value(v.clone()).map_err(|e| format!("{file}: clients: {e}"))?
        }
    };
    let table = ClientTable::from_raw(&raw).map_err(|e| e.in_file(&file).to_string())?;
    // A client's daily budget is not enforced by the server yet: refused rather than ignored.
    if let Some(i) = raw
        .iter()
        .position(|c| c.quota.as_ref().is_some_and(|q| q.per_day_usd.is_some()))
    {
        return Err(format!(
            "{file}: clients[{i}].quota.per_day_usd: per-client daily budgets are not enforced \
             by the gateway yet; remove it (rate_limit.budget limits the whole gateway)"
        ));
    }
    table
        .check_listen(&config.listen)
        .map_err(|e| format!("{file}: {e}"))?;
    Ok(Arc::new(table))
}

/// Registers every client's own quota scope with the gateway's supervisor.
pub(crate) async fn register(state: &GatewayState, table: &ClientTable) -> Result<(), String> {
    match state.runtime.quota_handle() {
        Some(handle) => register_client_scopes(handle, table)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

/// The auth layer around the API routes and the admin routes behind it.
pub(crate) fn hooks(table: Arc<ClientTable>) -> GatewayHooks {
    let admin_table = table.clone();
    GatewayHooks {
        api_layer: Some(Box::new(move |api: Router, _state: &Arc<GatewayState>| {
            // Layers run outermost first: authenticate, then name the caller.
            api.layer(from_fn(caller))
                .layer(from_fn_with_state(table, require_client))
        })),
        admin: Some(Box::new(move |state: &Arc<GatewayState>| {
            super::admin::router(state.runtime.key_registry().clone())
                .layer(from_fn_with_state(admin_table, require_client))
        })),
    }
}

/// Turns the authenticated client into the request's [`Caller`] (none for the anonymous client
/// of a gateway without clients: it is served as [`super::ANONYMOUS`]).
async fn caller(mut request: Request, next: Next) -> Response {
    let client = request.extensions().get::<Arc<Client>>().cloned();
    // Auth off: the anonymous client is served as the gateway's own requester.
    if let Some(client) = client.filter(|c| c.name() != super::auth::ANONYMOUS) {
        request.extensions_mut().insert(Caller {
            name: client.requester(),
            extra_scopes: client.scopes(),
        });
    }
    next.run(request).await
}
