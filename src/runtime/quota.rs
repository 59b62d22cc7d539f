//! Rate limiting for a run: the scopes each agent counts against, their registration with the
//! supervisor, and the forwarding of quota events into the run's event stream.
//!
//! Scope names: `<provider>/<model>` for limits counted per account or project, and
//! `<provider>/<model>/key:<short id>` for limits counted per key; a model in a shared group
//! also counts against `shared:<name>`.

use std::collections::HashSet;

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use super::{LimitsSource, RunError};
use crate::agent::events::{AgentState, Emitter, RunEvent};
use crate::config::{AgentConfig, ModelLimits, TeamConfig};
use crate::quota::{ScopeId, ScopeKind};
use crate::routing::estimate::TokenCounter;
use crate::routing::{QuotaRoute, Route};
use crate::supervisor::{QuotaEvent, QuotaHandle};

/// The scopes one agent's calls reserve in, first the one provider feedback goes to.
pub fn agent_scopes(agent: &AgentConfig, limits: &ModelLimits) -> Vec<ScopeId> {
    backend_scopes(
        agent.backend.kind.limits_provider(),
        &agent.backend.model,
        agent.backend.api_keys.first(),
        limits,
    )
}

/// The scopes a call to `model` at `provider` (as the limits file names it) with `key`
/// reserves in, first the one provider feedback goes to.
pub fn backend_scopes(
    provider: &str,
    model: &str,
    key: Option<&crate::keys::ApiKey>,
    limits: &ModelLimits,
) -> Vec<ScopeId> {
    let base = match (limits.scope, key) {
        (ScopeKind::PerKey, Some(key)) => format!("{provider}/{model}/key:{}", key.short_id()),
        _ => format!("{provider}/{model}"),
    };
    let mut scopes = vec![ScopeId::new(base)];
    if let Some(group) = &limits.shared_key {
        scopes.push(ScopeId::new(format!("shared:{group}")));
    }
    scopes
}

/// Forwards supervisor events for this run until stopped.
pub struct Forwarder {
    task: JoinHandle<()>,
}

impl Forwarder {
    /// Lets already-sent events through, then stops forwarding.
    pub async fn stop(self) {
        tokio::task::yield_now().await;
        self.task.abort();
    }
}

impl Drop for Forwarder {
    /// A run whose future was dropped forwards nothing more (a later run of the same agents
    /// would otherwise see its quota events twice).
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers every agent's scopes, gives each opted-in route its quota admission, and starts
/// forwarding quota events into `emitter`: the events of the agents' own requests, or with
/// `any_requester` those of every requester (a gateway's requesters are its clients).
pub async fn attach(
    handle: &QuotaHandle,
    team: &TeamConfig,
    limits: Option<&dyn LimitsSource>,
    routes: &mut [Route],
    run_deadline: Option<tokio::time::Instant>,
    emitter: &Emitter,
    any_requester: bool,
) -> Result<Forwarder, RunError> {
    let mut scopes_seen = HashSet::new();
    let mut agents = HashSet::new();
    for (agent, route) in team.agents.iter().zip(routes.iter_mut()) {
        if agent.backend.enable_rate_limit == Some(false) {
            continue;
        }
        let provider = agent.backend.kind.limits_provider();
        let model_limits = limits
            .map(|l| l.lookup(provider, &agent.backend.model))
            .unwrap_or_default();
        if let Some(models) = route.models.clone() {
            let mut candidates = Vec::new();
            let mut cap = u32::MAX;
            for member in &models.members {
                let provider = super::pools::limits_provider(&member.entry.provider);
                let own = limits
                    .map(|l| l.lookup(provider, &member.entry.model))
                    .unwrap_or_default();
                cap = cap.min(output_cap(&own, provider, limits));
                for scope in &member.scopes {
                    if scopes_seen.insert(scope.clone()) {
                        register(handle, scope, &own, limits).await?;
                    }
                }
                candidates.push(member.scopes.clone());
            }
            agents.insert(agent.id.clone());
            route.quota = Some(QuotaRoute {
                handle: handle.clone(),
                candidates,
                deadline: team.rate_limit.acquire_timeout,
                run_deadline,
                output_cap: Some(cap),
                extra_scopes: Vec::new(),
            });
            continue;
        }
        let scopes = agent_scopes(agent, &model_limits);
        // With a key pool, every key's scope is registered and each key is a candidate.
        let mut to_register: Vec<ScopeId> = scopes.clone();
        let mut candidates = vec![scopes];
        if let Some(pool) = &route.pool {
            to_register = pool
                .scope_specs(&model_limits.scope_spec())
                .into_iter()
                .map(|(id, _)| id)
                .chain(pool.shared_scope().cloned())
                .collect();
            candidates = pool.candidates().into_iter().map(|c| c.scopes).collect();
        }
        for scope in &to_register {
            if scopes_seen.insert(scope.clone()) {
                register(handle, scope, &model_limits, limits).await?;
            }
        }
        agents.insert(agent.id.clone());
        route.quota = Some(QuotaRoute {
            handle: handle.clone(),
            candidates,
            deadline: team.rate_limit.acquire_timeout,
            run_deadline,
            output_cap: Some(output_cap(&model_limits, provider, limits)),
            extra_scopes: Vec::new(),
        });
    }
    // Counting a prompt must never stall a worker to build a tokenizer once permits are out.
    let mut counters: Vec<TokenCounter> = Vec::new();
    for (agent, route) in team.agents.iter().zip(routes.iter()) {
        if route.quota.is_none() {
            continue;
        }
        match &route.models {
            Some(models) => counters.extend(
                models
                    .members
                    .iter()
                    .map(|m| TokenCounter::for_model(m.provider.name(), &m.entry.model)),
            ),
            None => counters.push(TokenCounter::for_model(
                route.provider.name(),
                &agent.backend.model,
            )),
        }
    }
    crate::routing::estimate::warm(counters).await;
    let scope_names: HashSet<String> = scopes_seen.iter().map(|s| s.to_string()).collect();
    let mut rx = handle.subscribe();
    let emitter = emitter.clone();
    let task = tokio::spawn(async move {
        // Metrics and the info-level quota log ride on this listener rather than a second
        // subscriber: measured, a second subscriber cost 46 % on the permit path, this 5 %.
        let mut metrics = crate::telemetry::QuotaMetricsBridge::new();
        loop {
            match rx.recv().await {
                Ok(event) => {
                    if ours(&event, any_requester, &agents, &scope_names) {
                        metrics.record(&event);
                        crate::telemetry::log_quota_event(&event);
                        forward(&emitter, event);
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
    Ok(Forwarder { task })
}

/// Registers `scope` with the supervisor: a shared group with its own limits, any other with
/// `model`'s.
async fn register(
    handle: &QuotaHandle,
    scope: &ScopeId,
    model: &ModelLimits,
    limits: Option<&dyn LimitsSource>,
) -> Result<(), RunError> {
    let spec = match scope.as_str().strip_prefix("shared:") {
        Some(group) => limits
            .and_then(|l| l.shared_group(group))
            .unwrap_or_default()
            .scope_spec(),
        None => model.scope_spec(),
    };
    handle
        .register_scope(scope.clone(), spec)
        .await
        .map_err(|e| RunError::Quota(e.to_string()))
}

/// The output cap of an agent's requests: its model's, lowered by its shared group's token
/// limits too (every request also reserves in the group's scope).
fn output_cap(model: &ModelLimits, provider: &str, limits: Option<&dyn LimitsSource>) -> u32 {
    let own = model.output_cap(provider);
    if model.default_max_tokens.is_some() {
        return own;
    }
    let group = model
        .shared_key
        .as_deref()
        .and_then(|g| limits.and_then(|l| l.shared_group(g)));
    match group {
        Some(mut g) => {
            g.default_max_tokens = None;
            own.min(g.output_cap(provider))
        }
        None => own,
    }
}

/// Whether `event` belongs to this run (or gateway): a request of one of `agents` (of anyone
/// with `any_requester`), or news of one of its `scopes`.
fn ours(
    event: &QuotaEvent,
    any_requester: bool,
    agents: &HashSet<String>,
    scopes: &HashSet<String>,
) -> bool {
    match event {
        QuotaEvent::Waiting { requester, .. }
        | QuotaEvent::Granted { requester, .. }
        | QuotaEvent::Denied { requester, .. } => any_requester || agents.contains(requester),
        QuotaEvent::Settled { scopes: s, .. } => s.iter().any(|x| scopes.contains(x)),
        QuotaEvent::CooldownStarted { scope, .. } | QuotaEvent::LimitLearned { scope, .. } => {
            scopes.contains(scope)
        }
    }
}

fn forward(emitter: &Emitter, event: QuotaEvent) {
    match &event {
        QuotaEvent::Waiting {
            requester,
            scope,
            limit,
            eta_ms,
            ..
        } => emitter.state(
            requester,
            AgentState::WaitingQuota {
                scope: scope.clone(),
                limit: limit.clone(),
                eta_ms: eta_ms.unwrap_or(0),
            },
        ),
        QuotaEvent::Granted {
            requester,
            waited_ms,
            ..
        } if *waited_ms > 0 => emitter.state(requester, AgentState::Thinking),
        _ => {}
    }
    emitter.emit(RunEvent::Quota { quota: event });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::num::{NonZeroU32, NonZeroU64};

    use super::*;
    use crate::quota::Limit;

    struct Grouped(ModelLimits);

    impl LimitsSource for Grouped {
        fn lookup(&self, _: &str, _: &str) -> ModelLimits {
            ModelLimits::default()
        }

        fn shared_group(&self, name: &str) -> Option<ModelLimits> {
            (name == "pool").then(|| self.0.clone())
        }
    }

    #[test]
    fn a_shared_groups_token_limit_lowers_the_output_cap() {
        let model = ModelLimits {
            limits: vec![Limit::rpm(NonZeroU64::new(10).unwrap())],
            shared_key: Some("pool".into()),
            ..ModelLimits::default()
        };
        let alone = output_cap(&model, "openai", None);
        assert_eq!(alone, model.output_cap("openai"));
        let group = Grouped(ModelLimits {
            limits: vec![Limit::tpm(NonZeroU64::new(3000).unwrap())],
            ..ModelLimits::default()
        });
        // A quarter of the group's 3,000 tokens per minute, not the built-in 4,096.
        assert_eq!(output_cap(&model, "openai", Some(&group)), 750);
        // A cap the limits file names is kept as given.
        let named = ModelLimits {
            default_max_tokens: NonZeroU32::new(2000),
            ..model
        };
        assert_eq!(output_cap(&named, "openai", Some(&group)), 2000);
    }
}
