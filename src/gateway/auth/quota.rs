//! Per-client quotas: a client's `rpm` / `tpm` / `rpd` become the limits of its own quota scope
//! `client:<name>` in the supervisor (built the way a limits entry's shorthands are), which every
//! permit of that client also reserves in; its `per_day_usd` becomes a [`BudgetGuard`] whose day
//! limit counts that client's calls only.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use super::{Client, ClientTable};
use crate::config::{BudgetSettings, ModelLimits, PriceTable};
use crate::quota::{LimitError, ScopeId, ScopeSpec};
use crate::store::UsageStore;
use crate::supervisor::{QuotaHandle, SupervisorError};
use crate::usage::budget::BudgetGuard;

/// A client's own limits (`clients[i].quota`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClientQuota {
    /// Requests per minute.
    pub rpm: Option<NonZeroU64>,
    /// Tokens (input + output) per minute.
    pub tpm: Option<NonZeroU64>,
    /// Requests per any 24 hours.
    pub rpd: Option<NonZeroU64>,
    /// US dollars per UTC day.
    pub per_day_usd: Option<f64>,
}

impl ClientQuota {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.rpd.is_none() && self.per_day_usd.is_none()
    }

    /// Whether a rate limit (rpm, tpm or rpd) is set: then the client has a quota scope.
    pub fn has_rate_limits(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some() || self.rpd.is_some()
    }

    /// The supervisor's spec of the client's scope: its rate limits, read as the same
    /// shorthand keys of a limits entry (`rpm` = requests per 60 s, ...), with a limits
    /// entry's default window guard.
    pub fn scope_spec(&self) -> Result<ScopeSpec, LimitError> {
        let mut limits = Vec::new();
        for (key, amount) in [("rpm", self.rpm), ("tpm", self.tpm), ("rpd", self.rpd)] {
            if let Some(n) = amount {
                if let Some(limit) = crate::config::shorthand_limit(key, n.get()) {
                    limits.push(limit?);
                }
            }
        }
        Ok(ModelLimits {
            limits,
            window_guard: crate::config::DEFAULT_WINDOW_GUARD,
            ..ModelLimits::default()
        }
        .scope_spec())
    }
}

/// The quota scope of the client named `name`: `client:<name>`.
pub fn client_scope(name: &str) -> ScopeId {
    ScopeId::new(format!("client:{name}"))
}

/// Why the client scopes could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum ClientScopeError {
    /// A limit could not be built (never for a validated config).
    #[error("client `{client}`: {error}")]
    Limit {
        /// The client.
        client: String,
        /// What was wrong.
        error: LimitError,
    },
    /// The supervisor is gone.
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
}

/// Registers the scope `client:<name>` of every client with rate limits (rpm, tpm, rpd) with
/// the supervisor. Returns the registered scopes.
pub async fn register_client_scopes(
    quota: &QuotaHandle,
    clients: &ClientTable,
) -> Result<Vec<ScopeId>, ClientScopeError> {
    let mut registered = Vec::new();
    for client in clients.clients() {
        if !client.quota().has_rate_limits() {
            continue;
        }
        let spec = client
            .quota()
            .scope_spec()
            .map_err(|error| ClientScopeError::Limit {
                client: client.name().to_owned(),
                error,
            })?;
        let id = client_scope(client.name());
        quota.register_scope(id.clone(), spec).await?;
        registered.push(id);
    }
    Ok(registered)
}

/// One [`BudgetGuard`] per client with a `per_day_usd`, by client name. Each guard prices with
/// `prices`; its day limit counts the usage ledger's records of *that client* (records whose
/// `agent` is the client's [`Client::requester`]) written by other runs (`run_id` other than
/// `run_id`: earlier gateway processes, other gateways on the same ledger) plus what it settled
/// itself. `open_ledger` opens the usage ledger once per guard (`None`: only this process's
/// calls count). Unpriced models count as free for a client budget (the gateway's own budget,
/// if any, decides whether they may be called at all). With `gateway` (the gateway's own
/// budget, `rate_limit.budget`), each client's calls must fit it too.
pub fn client_budgets(
    clients: &ClientTable,
    prices: &Arc<PriceTable>,
    run_id: &str,
    mut open_ledger: impl FnMut() -> Option<Box<dyn UsageStore>>,
    gateway: Option<&Arc<BudgetGuard>>,
) -> HashMap<String, Arc<BudgetGuard>> {
    clients
        .clients()
        .iter()
        .filter_map(|c| {
            let per_day = c.quota().per_day_usd?;
            let settings = BudgetSettings {
                per_run_usd: None,
                per_day_usd: Some(per_day),
                allow_unpriced: true,
            };
            let guard = BudgetGuard::for_requester(
                settings,
                prices.clone(),
                run_id,
                &c.requester(),
                open_ledger(),
                gateway.cloned(),
            );
            Some((c.name().to_owned(), guard))
        })
        .collect()
}

impl Client {
    /// The extra scopes every permit of this client must also reserve in (`client:<name>`
    /// when it has rate limits; none otherwise).
    pub fn scopes(&self) -> Vec<ScopeId> {
        if self.quota().has_rate_limits() {
            vec![client_scope(self.name())]
        } else {
            Vec::new()
        }
    }

    /// Adds [`Client::scopes`] to every alternative of a permit request
    /// (`AcquireRequest::candidates`), so whichever key or model the supervisor picks, the
    /// call also reserves in the client's own scope.
    pub fn add_scopes(&self, candidates: &mut [Vec<ScopeId>]) {
        let own = self.scopes();
        if own.is_empty() {
            return;
        }
        for c in candidates {
            for s in &own {
                if !c.contains(s) {
                    c.push(s.clone());
                }
            }
        }
    }
}
