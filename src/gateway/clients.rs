//! The gateway's client auth wired into its server: the `clients:` section read into a
//! [`ClientTable`], every client's quota registered with the supervisor, the auth layer around
//! the API routes (each request's [`Caller`] is its client: the requester and the client's
//! scopes), and the admin endpoints behind it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;

use super::auth::{
    Client, ClientTable, RawClient, client_budgets, register_client_scopes, require_client,
};
use super::{Caller, GatewayConfig, GatewayHooks, GatewayState};
use crate::usage::budget::BudgetGuard;

/// Each client's own budget (`quota.per_day_usd`), by client name.
pub(crate) type ClientBudgets = Arc<HashMap<String, Arc<BudgetGuard>>>;

/// The budget of every client with a `per_day_usd`, made within the gateway's own budget
/// (`rate_limit.budget`); the day limits read the usage ledger of the gateway's state, so what a
/// client spent through earlier gateway processes today counts.
pub(crate) fn budgets(state: &GatewayState, table: &ClientTable, run_id: &str) -> ClientBudgets {
    let store = state.runtime.team().rate_limit.state.clone();
    let open_ledger = || {
        let spec = store.as_ref()?;
        match spec.open_usage() {
            Ok(ledger) => ledger,
            Err(e) => {
                tracing::warn!(
                    "a client's day budget counts only this process: cannot read the usage \
                     ledger: {e}"
                );
                None
            }
        }
    };
    Arc::new(client_budgets(
        table,
        state.runtime.prices(),
        run_id,
        open_ledger,
        state.routes.budget(),
    ))
}

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
pub(crate) fn hooks(table: Arc<ClientTable>, budgets: ClientBudgets) -> GatewayHooks {
    let admin_table = table.clone();
    GatewayHooks {
        api_layer: Some(Box::new(move |api: Router, _state: &Arc<GatewayState>| {
            // Layers run outermost first: authenticate, then name the caller.
            api.layer(from_fn_with_state(budgets, caller))
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
async fn caller(
    State(budgets): State<ClientBudgets>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = request.extensions().get::<Arc<Client>>().cloned();
    // Auth off: the anonymous client is served as the gateway's own requester.
    if let Some(client) = client.filter(|c| c.name() != super::auth::ANONYMOUS) {
        request.extensions_mut().insert(Caller {
            name: client.requester(),
            extra_scopes: client.scopes(),
            budget: budgets.get(client.name()).cloned(),
        });
    }
    next.run(request).await
}
