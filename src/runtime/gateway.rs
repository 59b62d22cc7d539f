//! Serving single calls instead of runs (the gateway): [`Runtime::serve_routes`] prepares one
//! route per agent (each agent a model the gateway serves) once — its quota scopes registered
//! with the supervisor, its model pool, its key pool — and [`ServedRoutes::route`] hands out a
//! copy for one request, with the request's requester, quota deadline and extra scopes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::quota::Forwarder;
use super::{RunError, Runtime};
use crate::agent::events::Emitter;
use crate::quota::ScopeId;
use crate::routing::Route;
use crate::usage::RunUsage;
use crate::usage::budget::BudgetGuard;

/// One prepared route per model, for as long as the gateway serves.
pub struct ServedRoutes {
    routes: HashMap<String, Route>,
    usage: Arc<RunUsage>,
    /// The gateway's own spending limits (`rate_limit.budget`), shared by every route.
    budget: Option<Arc<BudgetGuard>>,
    /// Feeds quota events to metrics and logs while the routes serve.
    _forwarder: Option<Forwarder>,
}

impl std::fmt::Debug for ServedRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut models: Vec<&String> = self.routes.keys().collect();
        models.sort();
        f.debug_struct("ServedRoutes")
            .field("models", &models)
            .finish_non_exhaustive()
    }
}

/// What one request asks of its route.
#[derive(Debug, Clone, Default)]
pub struct RequestRoute<'a> {
    /// Who is calling (the client's name), for quota queues, logs and the usage ledger.
    pub requester: &'a str,
    /// How long the request may wait for quota (`None`: the supervisor's default).
    pub max_wait: Option<Duration>,
    /// Scopes the request's permit must also reserve in (the client's own quota scopes,
    /// registered with the supervisor by whoever made them), after the model's own.
    pub extra_scopes: Vec<ScopeId>,
    /// The requester's own spending limits, made within [`ServedRoutes::budget`] (so a call
    /// fits both); `None`: only the gateway's budget applies.
    pub budget: Option<Arc<BudgetGuard>>,
}

impl ServedRoutes {
    /// A ready route for one call to agent `model` (`None` when no agent has that id).
    pub fn route(&self, model: &str, request: &RequestRoute<'_>) -> Option<Route> {
        let mut route = self.routes.get(model)?.clone();
        route.requester = Arc::from(request.requester);
        route.usage = Some(self.usage.tap(request.requester));
        if let Some(q) = &mut route.quota {
            q.deadline = request.max_wait;
            q.run_deadline = None;
            q.extra_scopes = request.extra_scopes.clone();
        }
        if let Some(budget) = &request.budget {
            route.budget = Some(budget.clone());
        }
        Some(route)
    }

    /// The gateway's own spending limits (`rate_limit.budget`), if any: what a requester's
    /// budget must be made within.
    pub fn budget(&self) -> Option<&Arc<BudgetGuard>> {
        self.budget.as_ref()
    }

    /// The usage of every call served so far.
    pub fn usage(&self) -> &Arc<RunUsage> {
        &self.usage
    }
}

impl Runtime {
    /// Prepares one route per agent for serving single calls (a gateway): provider and key
    /// actors, model pools and usage as for a run; with rate limiting on, every scope is
    /// registered with the supervisor now, once. `name` names the usage records' run.
    pub async fn serve_routes(&self, name: &str) -> Result<ServedRoutes, RunError> {
        let usage = RunUsage::new(name, self.usage.clone(), self.prices.clone());
        let mut routes = self.routes(&usage)?;
        // The file's budget limits everything the gateway serves; its day limit also counts
        // what earlier runs and gateways recorded in the ledger.
        let budget = super::budget::guard(&self.team, &self.prices, name);
        for route in &mut routes {
            route.budget = budget.clone();
        }
        let emitter = Emitter::new(self.events.clone(), None);
        self.attach_pools(&mut routes, &emitter);
        let forwarder = match &self.quota {
            Some(handle) => Some(
                super::quota::attach(
                    handle,
                    &self.team,
                    self.options.limits.as_deref(),
                    &mut routes,
                    None,
                    &emitter,
                    true,
                )
                .await?,
            ),
            None => None,
        };
        let routes = self
            .team
            .agents
            .iter()
            .map(|a| a.id.clone())
            .zip(routes)
            .collect();
        Ok(ServedRoutes {
            routes,
            usage,
            budget,
            _forwarder: forwarder,
        })
    }
}
