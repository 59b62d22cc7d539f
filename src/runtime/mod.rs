//! The library entry point: [`Runtime`] runs a team on a question and streams [`RunEvent`]s.
//!
//! ```no_run
//! # async fn demo(team: massgen::config::TeamConfig) -> Result<(), Box<dyn std::error::Error>> {
//! let runtime = massgen::Runtime::new(team, massgen::RuntimeOptions::default())?;
//! let mut events = runtime.subscribe();
//! tokio::spawn(async move { while let Ok(e) = events.recv().await { eprintln!("{e:?}") } });
//! let outcome = runtime.run("Why is the sky blue?").await?;
//! println!("{}", outcome.final_answer);
//! # Ok(()) }
//! ```

mod budget;
mod endpoints;
mod gateway;
mod outcome;
mod pools;
mod quota;
mod run_dir;
mod summary;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;
use tracing::Instrument;

pub use self::gateway::{RequestRoute, ServedRoutes};
pub use self::outcome::{EXIT_BUDGET, RunError, RunOutcome};
pub use self::run_dir::RunDir;
use self::summary::{conclude, failed_status, write_summary};
pub use crate::agent::events::{AgentState, RunEvent};
pub use crate::orchestrator::{AgentStats, AnswerRecord, FinalAgentState, RunStatus, VoteRecord};

use crate::agent::AgentSpec;
use crate::agent::events::{Emitter, EventLog};
use crate::config::{ModelLimits, PriceTable, TeamConfig};
use crate::keys::KeyRegistry;
use crate::orchestrator;
use crate::provider::{Provider, ProviderRef};
use crate::routing::{RetryPolicy, Route};
use crate::supervisor::{QuotaHandle, QuotaSnapshot, SupervisorSettings};
use crate::system::{ActorSystem, SystemError};
use crate::usage::{RunUsage, UsageLedger};

/// Capacity of the event broadcast: a subscriber further behind than this misses events.
const EVENT_CAPACITY: usize = 4096;

/// Where the runtime finds the limits of a `(provider, model)` (the config's limits table
/// implements it; tests use a map).
pub trait LimitsSource: Send + Sync {
    /// The limits of `model` at `provider` (a provider name as in `BackendKind::limits_provider`).
    fn lookup(&self, provider: &str, model: &str) -> ModelLimits;

    /// The limits of the shared group `name` (`shared_key` in the limits file); `None` when the
    /// group has no limits of its own.
    fn shared_group(&self, _name: &str) -> Option<ModelLimits> {
        None
    }
}

impl LimitsSource for HashMap<(String, String), ModelLimits> {
    fn lookup(&self, provider: &str, model: &str) -> ModelLimits {
        self.get(&(provider.to_owned(), model.to_owned()))
            .cloned()
            .unwrap_or_default()
    }
}

/// How a [`Runtime`] runs.
#[derive(Clone, Default)]
pub struct RuntimeOptions {
    /// Send every call through the quota supervisor.
    pub rate_limit: bool,
    /// The limits per `(provider, model)`; `None` means no limits are known (scopes unlimited).
    pub limits: Option<Arc<dyn LimitsSource>>,
    /// Where run directories go (`None`: no run directory is written; none either when the
    /// team's `ui.logging_enabled` is false).
    pub run_dir_root: Option<PathBuf>,
    /// Overrides the team's `orchestrator_timeout_seconds`.
    pub orchestrator_timeout: Option<Duration>,
    /// How failed provider calls are retried (`None`: [`RetryPolicy::default`]).
    pub retry: Option<RetryPolicy>,
    /// A quota supervisor to share (with other runtimes, or one started with
    /// `QuotaHandle::start_local` in paused-time tests). `None` with `rate_limit` on starts one
    /// on the runtime's actor system; ignored when `rate_limit` is off.
    pub quota: Option<QuotaHandle>,
    /// Where the runtime's actors live (`None`: the shared `quota` handle's system when that is
    /// the caller's arbiter, else an [`ActorSystem`] of its own, on threads it owns).
    /// Paused-time tests and actix applications pass [`ActorSystem::current`].
    pub actors: Option<ActorSystem>,
    /// The prices the usage ledger costs calls with (`None`: the built-in table, overridden by
    /// the team's `rate_limit.prices` file when it names one).
    pub prices: Option<Arc<PriceTable>>,
}

impl std::fmt::Debug for RuntimeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeOptions")
            .field("rate_limit", &self.rate_limit)
            .field("limits", &self.limits.is_some())
            .field("run_dir_root", &self.run_dir_root)
            .field("orchestrator_timeout", &self.orchestrator_timeout)
            .field("retry", &self.retry)
            .field("quota", &self.quota)
            .field("actors", &self.actors)
            .field("prices", &self.prices.is_some())
            .finish()
    }
}

/// Why a [`Runtime`] could not be built or changed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The team has no agents.
    #[error("the team has no agents")]
    EmptyTeam,
    /// Two agents share an id.
    #[error("two agents share the id `{0}`")]
    DuplicateAgent(String),
    /// [`Runtime::with_provider`] named an agent the team does not have.
    #[error("no agent `{0}` in the team")]
    UnknownAgent(String),
    /// The actor system could not start.
    #[error(transparent)]
    System(#[from] SystemError),
    /// The quota supervisor could not start (its state store cannot be opened).
    #[error(transparent)]
    Quota(#[from] crate::supervisor::SupervisorError),
    /// The team's prices file (`rate_limit.prices`) cannot be read or is invalid.
    #[error(transparent)]
    Prices(#[from] crate::config::ConfigError),
}

/// A team ready to run questions. Runs may follow one another; events of every run go to every
/// subscriber.
#[derive(Debug)]
pub struct Runtime {
    team: TeamConfig,
    options: RuntimeOptions,
    /// The provider actor serving each agent (shared by agents on one HTTP endpoint).
    providers: HashMap<String, ProviderRef>,
    /// For each agent on `type: pool`: the actor serving each model of its pool.
    pool_members: HashMap<String, Vec<Option<ProviderRef>>>,
    /// One actor per distinct API key, shared by every agent and run.
    keys: KeyRegistry,
    events: broadcast::Sender<RunEvent>,
    quota: Option<QuotaHandle>,
    system: ActorSystem,
    /// Where every provider call is recorded (`None`: the quota state is kept in memory, and
    /// so is no usage).
    usage: Option<UsageLedger>,
    prices: Arc<PriceTable>,
}

impl Runtime {
    /// Builds a runtime for `team`. Agents on backends with an adapter in this build get their
    /// provider now; others need [`Runtime::with_provider`] before [`Runtime::run`].
    ///
    /// The runtime's actors are started here, once, and serve every run: one provider actor per
    /// distinct HTTP endpoint (backend kind and base URL) or simulated agent, and one actor per
    /// distinct API key (see [`Runtime::provider_health`] and [`Runtime::key_status`]).
    pub fn new(team: TeamConfig, options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        if team.agents.is_empty() {
            return Err(RuntimeError::EmptyTeam);
        }
        let ids: Vec<String> = team.agents.iter().map(|a| a.id.clone()).collect();
        let mut seen = std::collections::HashSet::new();
        if let Some(dup) = ids.iter().find(|id| !seen.insert(id.as_str())) {
            return Err(RuntimeError::DuplicateAgent(dup.clone()));
        }
        let prices = match &options.prices {
            Some(p) => p.clone(),
            None => Arc::new(PriceTable::with_file(team.rate_limit.prices.as_deref())?),
        };
        let usage = open_usage(&team);
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        // A runtime given a supervisor on the caller's arbiter (a paused-time test's) lives
        // there too; one on threads of their own keeps them to itself.
        let shared = options.quota.as_ref().filter(|_| options.rate_limit);
        let system = match (&options.actors, shared) {
            (Some(system), _) => system.clone(),
            (None, Some(q)) if !q.system().is_owned() => q.system().clone(),
            (None, _) => ActorSystem::start()?,
        };
        let started = crate::provider::actor::endpoints::start_for_team(
            &system,
            &team.agents,
            team.rate_limit.circuit,
        );
        let (providers, pool_members) = (started.by_agent, started.pool_members);
        let keys = endpoints::key_registry(&system, &team);
        let quota = match (shared, options.rate_limit) {
            (Some(q), _) => Some(q.clone()),
            (None, true) => Some(QuotaHandle::start_in(
                &system,
                SupervisorSettings {
                    default_deadline: team
                        .rate_limit
                        .acquire_timeout
                        .unwrap_or(team.timeouts.orchestrator_timeout),
                    store: team.rate_limit.state.clone().unwrap_or_default(),
                    ..SupervisorSettings::default()
                },
            )?),
            (None, false) => None,
        };
        Ok(Runtime {
            team,
            options,
            providers,
            pool_members,
            keys,
            events,
            quota,
            system,
            usage,
            prices,
        })
    }

    /// The usage ledger every provider call of this runtime is recorded in (`None` when the
    /// quota state is kept in memory: then no usage is kept either).
    pub fn usage_ledger(&self) -> Option<&UsageLedger> {
        self.usage.as_ref()
    }

    /// The prices calls are costed with (the built-in table, or the team's prices file).
    pub fn prices(&self) -> &Arc<PriceTable> {
        &self.prices
    }

    /// Uses `provider` for `agent_id` instead of the one its backend would get: a provider actor
    /// of its own is started for it on the runtime's actor system.
    pub fn with_provider(
        mut self,
        agent_id: &str,
        provider: Arc<dyn Provider>,
    ) -> Result<Self, RuntimeError> {
        let Some(index) = self.team.agents.iter().position(|a| a.id == agent_id) else {
            return Err(RuntimeError::UnknownAgent(agent_id.to_owned()));
        };
        // It serves this agent only: on the agent's own thread.
        let actor = ProviderRef::start_on(
            &self.system.worker_at(index),
            provider,
            None,
            crate::provider::actor::DEFAULT_MAX_IN_FLIGHT,
            crate::provider::actor::CircuitSettings::default(),
        );
        self.providers.insert(agent_id.to_owned(), actor);
        Ok(self)
    }

    /// The team.
    pub fn team(&self) -> &TeamConfig {
        &self.team
    }

    /// Every quota scope's limits, usage, queue and cooldown (`None` when rate limiting is off
    /// or the supervisor stopped).
    pub async fn quota_status(&self) -> Option<QuotaSnapshot> {
        self.quota.as_ref()?.snapshot().await.ok()
    }

    /// The quota supervisor this runtime sends calls through (`None` when rate limiting is off):
    /// for metrics bridges and for sharing one supervisor with another runtime.
    pub fn quota_handle(&self) -> Option<&QuotaHandle> {
        self.quota.as_ref()
    }

    /// Where this runtime's actors live.
    pub fn actor_system(&self) -> &ActorSystem {
        &self.system
    }

    /// A stream of every run's events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<RunEvent> {
        self.events.subscribe()
    }

    /// Runs the team on `question` until a winner presents the final answer.
    pub async fn run(&self, question: &str) -> Result<RunOutcome, RunError> {
        self.run_until(question, std::future::pending()).await
    }

    /// Runs the team on `question` like [`Runtime::run`], but ends early when `stop` completes
    /// (Ctrl-C, SIGTERM, a shutdown of the embedding app): the calls in flight are cancelled,
    /// the winner is picked from the votes and answers that exist, and `status.json`, the
    /// final event and `final_answer.md` are written as for any other end. The outcome's
    /// status is then [`RunStatus::Interrupted`], or the error [`RunError::Interrupted`] when
    /// no answer existed yet.
    pub async fn run_until(
        &self,
        question: &str,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RunOutcome, RunError> {
        let run_id = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ").to_string();
        let span = crate::telemetry::spans::run(&run_id, self.team.agents.len());
        let result = self
            .run_inner(&run_id, question, stop)
            .instrument(span.clone())
            .await;
        match &result {
            Ok(outcome) => {
                span.record("status", outcome.status.as_str());
                if let Some(winner) = &outcome.winner {
                    span.record("winner", winner.as_str());
                }
            }
            Err(_) => {
                span.record("status", "failed");
            }
        }
        result
    }

    async fn run_inner(
        &self,
        run_id: &str,
        question: &str,
        stop: impl std::future::Future<Output = ()> + Send,
    ) -> Result<RunOutcome, RunError> {
        let started = Instant::now();
        let timeout = self
            .options
            .orchestrator_timeout
            .unwrap_or(self.team.timeouts.orchestrator_timeout);
        // Calls wait for quota at most until the run ends (sooner with acquire_timeout_seconds).
        let run_deadline = started.checked_add(timeout);
        let usage = RunUsage::new(run_id, self.usage.clone(), self.prices.clone());
        let mut routes = self.routes(&usage)?;
        let budget = budget::guard(&self.team, &self.prices, run_id);
        for route in &mut routes {
            route.budget = budget.clone();
        }
        let run_dir = self.open_run_dir()?;
        let log = run_dir.clone().map(|d| d as Arc<dyn EventLog>);
        let emitter = Emitter::new(self.events.clone(), log);
        self.attach_pools(&mut routes, &emitter);
        let dir_path = run_dir.as_ref().map(|d| d.path().to_path_buf());
        emitter.emit(RunEvent::RunStarted {
            question: question.to_owned(),
            agents: self.team.agents.iter().map(|a| a.id.clone()).collect(),
            rate_limit: self.options.rate_limit,
            run_dir: dir_path.clone(),
        });
        let forwarder = match &self.quota {
            Some(handle) => Some(
                quota::attach(
                    handle,
                    &self.team,
                    self.options.limits.as_deref(),
                    &mut routes,
                    run_deadline,
                    &emitter,
                    false,
                )
                .await?,
            ),
            None => None,
        };
        let question: Arc<str> = Arc::from(question);
        let specs = self
            .team
            .agents
            .iter()
            .zip(routes)
            .map(|(config, route)| AgentSpec {
                config: config.clone(),
                route,
                orchestrator: self.team.orchestrator.clone(),
                question: question.clone(),
            })
            .collect();
        let c = orchestrator::coordinate(
            &self.system,
            specs,
            &self.team.orchestrator,
            timeout,
            emitter.clone(),
            budget::stop_or_trip(stop, budget.clone()),
        )
        .await;
        if let Some(f) = forwarder {
            f.stop().await;
        }
        let duration = started.elapsed();
        // Every call of the run is in the ledger before the run reports its end.
        if let Some(ledger) = usage.ledger() {
            ledger.flush().await;
        }
        let mut result = conclude(c, duration, dir_path.clone());
        if let Some(exceeded) = budget.as_ref().and_then(|g| g.exceeded()) {
            result.0 = budget::report(result.0, exceeded, &emitter);
        }
        if let Some(dir) = &run_dir {
            let quota = self.quota_status().await;
            let usage = usage.summary();
            write_summary(
                dir,
                &question,
                &result,
                duration,
                quota.as_ref(),
                Some(&usage),
            )?;
        }
        let (status, winner) = match &result.0 {
            Ok(o) => (o.status.as_str().to_owned(), o.winner.clone()),
            Err(e) => (failed_status(e).to_owned(), None),
        };
        emitter.emit(RunEvent::RunFinished {
            status,
            winner,
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        });
        if let Some(dir) = &run_dir {
            dir.flush().map_err(|e| RunError::RunDir(e.to_string()))?;
        }
        result.0.map(|mut outcome| {
            outcome.answer_file = run_dir.as_ref().map(|d| d.path().join("final_answer.md"));
            outcome
        })
    }

    fn routes(&self, usage: &Arc<RunUsage>) -> Result<Vec<Route>, RunError> {
        let mut retry = self.options.retry.clone().unwrap_or_default();
        retry.call_timeout = self.team.timeouts.call_timeout;
        self.team
            .agents
            .iter()
            .map(|agent| {
                let provider = self.providers.get(&agent.id).cloned().ok_or_else(|| {
                    RunError::MissingProvider {
                        agent: agent.id.clone(),
                        backend: agent.backend.kind.as_str().to_owned(),
                    }
                })?;
                Ok(Route {
                    provider,
                    key: agent.backend.api_keys.first().cloned(),
                    retry: retry.clone(),
                    requester: Arc::from(agent.id.as_str()),
                    quota: None,
                    pool: self.key_pool(agent),
                    models: None,
                    usage: Some(usage.tap(&agent.id)),
                    budget: None,
                })
            })
            .collect()
    }

    /// The key pool of an HTTP backend (the runtime's shared key handles, per-key or
    /// per-account scopes); `None` for the simulated backend.
    fn key_pool(&self, agent: &crate::config::AgentConfig) -> Option<Arc<crate::keys::KeyPool>> {
        if agent.backend.kind == crate::config::BackendKind::Simulated {
            return None;
        }
        let limits = self
            .options
            .limits
            .as_ref()
            .map(|l| l.lookup(agent.backend.kind.limits_provider(), &agent.backend.model))
            .unwrap_or_default();
        Some(Arc::new(crate::keys::KeyPool::for_backend(
            &agent.backend,
            &limits,
            &self.keys,
        )))
    }

    fn open_run_dir(&self) -> Result<Option<Arc<RunDir>>, RunError> {
        match &self.options.run_dir_root {
            Some(root) if self.team.ui.logging_enabled => RunDir::create(root)
                .map(|d| Some(Arc::new(d)))
                .map_err(|e| RunError::RunDir(format!("{}: {e}", root.display()))),
            _ => Ok(None),
        }
    }
}

/// The usage ledger kept with the team's quota state (`rate_limit.state`); a store that cannot
/// be opened leaves usage unrecorded with a warning (the run itself does not need it).
fn open_usage(team: &TeamConfig) -> Option<UsageLedger> {
    let spec = team.rate_limit.state.as_ref()?;
    match UsageLedger::open(spec) {
        Ok(ledger) => ledger,
        Err(e) => {
            tracing::warn!("usage will not be recorded: {e}");
            None
        }
    }
}

impl LimitsSource for crate::config::LimitsTable {
    fn lookup(&self, provider: &str, model: &str) -> ModelLimits {
        crate::config::LimitsTable::lookup(self, provider, model)
    }

    fn shared_group(&self, name: &str) -> Option<ModelLimits> {
        crate::config::LimitsTable::shared_group(self, name)
    }
}

#[cfg(test)]
mod tests;
