//! Validated runtime configuration types: what the rest of the program consumes.

use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use crate::keys::ApiKey;
use crate::provider::RequestOptions;
use crate::quota::{DailyReset, Limit, ScopeKind};

pub use super::backend_kind::BackendKind;

/// A validated team.
#[derive(Debug, Clone)]
pub struct TeamConfig {
    /// The file it came from (`None` when built in code).
    pub source: Option<PathBuf>,
    /// The agents, in config order (ties in votes are broken by this order).
    pub agents: Vec<AgentConfig>,
    /// Coordination settings.
    pub orchestrator: OrchestratorConfig,
    /// Time limits.
    pub timeouts: TimeoutConfig,
    /// Display settings.
    pub ui: UiConfig,
    /// Quota settings (our addition: the top-level `rate_limit:` section).
    pub rate_limit: RateLimitSettings,
}

impl TeamConfig {
    /// A team of `agents` with every other section at its default (built in code rather than
    /// loaded from a file: `source` is `None`).
    pub fn new(agents: Vec<AgentConfig>) -> Self {
        Self {
            source: None,
            agents,
            orchestrator: OrchestratorConfig::default(),
            timeouts: TimeoutConfig::default(),
            ui: UiConfig::default(),
            rate_limit: RateLimitSettings::default(),
        }
    }
}

/// One team member.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Unique id (`agents[i].id`).
    pub id: String,
    /// The model and how to reach it.
    pub backend: BackendConfig,
    /// The agent's system message, if any.
    pub system_message: Option<String>,
    /// Quota priority: higher is served first (with aging). Default 0. Range 0..=9.
    pub priority: u8,
    /// The `agents/` profile this agent was built from, if any.
    pub profile: Option<String>,
    /// The agent's own `voting_sensitivity` (MassGen's per-agent override of the
    /// orchestrator's); `None` when not set.
    pub voting_sensitivity: Option<VotingSensitivity>,
}

impl AgentConfig {
    /// Every backend the agent's calls may go to: each model of its pool (`type: pool`), else
    /// its one backend.
    pub fn backends(&self) -> Vec<&BackendConfig> {
        match &self.backend.pool {
            Some(pool) => pool.members.iter().map(|m| &m.backend).collect(),
            None => vec![&self.backend],
        }
    }

    /// An agent `id` on the in-process simulated backend (model `sim-1`, no key, priority 0,
    /// no system message) behaving as `settings` say.
    pub fn simulated(id: impl Into<String>, settings: SimulatedSettings) -> Self {
        Self {
            id: id.into(),
            backend: BackendConfig {
                kind: BackendKind::Simulated,
                model: "sim-1".to_owned(),
                base_url: None,
                api_keys: Vec::new(),
                temperature: None,
                max_tokens: None,
                enable_rate_limit: None,
                simulated: settings,
                pool: None,
                options: RequestOptions::default(),
            },
            system_message: None,
            priority: 0,
            profile: None,
            voting_sensitivity: None,
        }
    }
}

/// An agent's backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// The backend family.
    pub kind: BackendKind,
    /// The model name.
    pub model: String,
    /// The endpoint (validated URL text); `None` means the kind's default.
    pub base_url: Option<String>,
    /// The keys to use (empty for backends that need none). Several keys are rotated.
    pub api_keys: Vec<ApiKey>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Cap on output tokens per call.
    pub max_tokens: Option<u32>,
    /// Per-agent `enable_rate_limit` (MassGen puts it on the backend); `None` when not set.
    pub enable_rate_limit: Option<bool>,
    /// Settings of the simulated backend (`type: simulated` only).
    pub simulated: SimulatedSettings,
    /// Provider options passed through to every request (`top_p`, `reasoning`, `text`, ...).
    pub options: RequestOptions,
    /// `type: pool`: the models the agent's calls choose among (`kind`, `model`, `base_url`
    /// and `api_keys` above are then those of the pool's first usable model).
    pub pool: Option<std::sync::Arc<super::pool_backend::PoolBackend>>,
}

/// How the simulated backend behaves (`backend.simulated:` in the team file).
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedSettings {
    /// Delay before each answer (`latency_ms`, default 0).
    pub latency: Duration,
    /// Seed for the deterministic text and choices (`seed`, default 0).
    pub seed: u64,
    /// How many answers the agent writes before it votes (`answer_rounds`, default 1).
    pub answer_rounds: u32,
    /// The agent id to vote for (`vote_for`); default: the agent whose answer came first.
    pub vote_for: Option<String>,
    /// Output tokens reported per call (`output_tokens`, default 120).
    pub output_tokens: u32,
    /// Injected failures (`fail:`).
    pub failure: SimFailure,
    /// Requests per minute the simulated server allows each named model (`model_rpm:
    /// {sim-small: 3}`), counted across the whole team as a provider counts an account: a
    /// call over it is refused with a 429 carrying Retry-After and the limit, as real APIs do.
    pub model_rpm: std::collections::BTreeMap<String, u32>,
}

impl Default for SimulatedSettings {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            seed: 0,
            answer_rounds: 1,
            vote_for: None,
            output_tokens: 120,
            failure: SimFailure::default(),
            model_rpm: std::collections::BTreeMap::new(),
        }
    }
}

/// Failure injection of the simulated backend.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimFailure {
    /// 1-based call numbers (per agent) that fail (`on_calls: [2, 3]`).
    pub on_calls: Vec<u32>,
    /// Every call fails (`always: true`).
    pub always: bool,
    /// Probability in 0..=1 that a call fails (`rate`), drawn from the seeded generator.
    pub rate: f64,
    /// How failing calls fail (`kind: error | rate_limit | no_tool_call`, default `error`).
    pub kind: String,
    /// For `kind: rate_limit`: the Retry-After sent with the 429 (`retry_after_ms`).
    pub retry_after: Option<Duration>,
}

/// `orchestrator.voting_sensitivity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VotingSensitivity {
    /// Vote readily.
    #[default]
    Lenient,
    /// Vote when an answer is good.
    Balanced,
    /// Vote only when an answer is complete and correct.
    Strict,
}

/// `orchestrator.answer_novelty_requirement`: how different a new answer must be from the agent's
/// earlier ones (Jaccard word overlap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoveltyRequirement {
    /// No check beyond exact duplicates.
    #[default]
    Lenient,
    /// Reject overlap above 0.7.
    Balanced,
    /// Reject overlap above 0.5.
    Strict,
}

/// The `orchestrator:` section.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OrchestratorConfig {
    /// How readily agents vote (goes into the prompt).
    pub voting_sensitivity: VotingSensitivity,
    /// Cap on new answers per agent (`None`: unlimited).
    pub max_new_answers_per_agent: Option<u32>,
    /// Novelty check for new answers.
    pub answer_novelty_requirement: NoveltyRequirement,
    /// Skip the winner's final presentation call and use its answer as is.
    pub skip_final_presentation: bool,
}

/// The `timeout_settings:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeoutConfig {
    /// Whole-run limit (`orchestrator_timeout_seconds`, default 1800).
    pub orchestrator_timeout: Duration,
    /// Longest one provider call may take from the first byte sent to the last byte of the
    /// answer or stream, connecting included (`call_timeout_seconds`, our addition, default
    /// 300): a trickling stream gives up its quota slot instead of holding it.
    pub call_timeout: Duration,
}

/// The default of [`TimeoutConfig::call_timeout`].
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            orchestrator_timeout: Duration::from_secs(1800),
            call_timeout: DEFAULT_CALL_TIMEOUT,
        }
    }
}

/// `ui.display_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayType {
    /// Live, redrawn status lines on a terminal (MassGen's `rich_terminal`/`textual_terminal`).
    #[default]
    Rich,
    /// Plain appended lines (`simple`).
    Simple,
}

/// The `ui:` section.
#[derive(Debug, Clone, PartialEq)]
pub struct UiConfig {
    /// How progress is shown.
    pub display_type: DisplayType,
    /// Whether a run directory is written.
    pub logging_enabled: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            display_type: DisplayType::Rich,
            logging_enabled: true,
        }
    }
}

/// The top-level `rate_limit:` section (our addition) merged with per-backend
/// `enable_rate_limit`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RateLimitSettings {
    /// `rate_limit.enable_rate_limit` (or the top-level `enable_rate_limit`); `None` when unset.
    pub enabled: Option<bool>,
    /// A user limits file that overrides built-in entries.
    pub limits_file: Option<PathBuf>,
    /// How long one acquire may wait before failing (`acquire_timeout_seconds`); `None` (the
    /// default) lets a call wait as long as the run has left, so a wait whose end is known and
    /// falls inside the run is never cut short.
    pub acquire_timeout: Option<Duration>,
    /// Where quota state is kept (`rate_limit.state`: a path, relative to the team file's
    /// directory, or `none` for memory only); `None` when unset (the CLI then uses the per-user
    /// state file, a library runtime keeps it in memory).
    pub state: Option<crate::store::StoreSpec>,
    /// A user prices file whose entries override the built-in price table
    /// (`rate_limit.prices`, relative to the team file's directory).
    pub prices: Option<PathBuf>,
    /// The circuit breaker of every provider endpoint (`rate_limit.circuit`: `failures` in a
    /// row open it for `open_for`); five for 30 s unless set.
    pub circuit: crate::keys::CircuitSettings,
    /// Spending limits (`rate_limit.budget`); `None` when unset.
    pub budget: Option<BudgetSettings>,
    /// A user pools file whose entries override the built-in pools (`rate_limit.pools`,
    /// relative to the team file's directory).
    pub pools: Option<PathBuf>,
}

/// `rate_limit.budget`: how much a run and a UTC day may spend, in US dollars, priced with the
/// price table. A call that would pass a limit is not made; the run ends with its best answer.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BudgetSettings {
    /// `per_run_usd`: the most one run may spend.
    pub per_run_usd: Option<f64>,
    /// `per_day_usd`: the most every run together may spend in one UTC day (counted from the
    /// usage ledger kept with the quota state).
    pub per_day_usd: Option<f64>,
    /// `allow_unpriced` (default false): under a budget, a call to a model with no price is
    /// refused unless this is set; then it counts as free.
    pub allow_unpriced: bool,
}

/// The effective limits of one `(provider, model)` after lookup in the limits table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelLimits {
    /// Which table entry matched, e.g. `gemini/gemini-2.5-pro` or `gemini/default`.
    pub matched: String,
    /// Every limit (rpm, tpm, rpd, tpd and custom windows).
    pub limits: Vec<Limit>,
    /// Max in-flight calls.
    pub concurrency: Option<NonZeroU32>,
    /// Startup cooldown for this model's scope.
    pub startup_cooldown: Duration,
    /// Per key or per account.
    pub scope: ScopeKind,
    /// A shared group name: every model naming it also counts against `shared:<name>`.
    pub shared_key: Option<String>,
    /// Spread requests evenly in the window.
    pub pacing: bool,
    /// When the provider's daily quota resets.
    pub daily_reset: Option<DailyReset>,
    /// How much longer than its period an admission keeps counting (`window_guard`, default
    /// 250 ms in limits files): absorbs the spread of request delays to the provider.
    pub window_guard: Duration,
    /// The output cap (`max_tokens`) sent and reserved with a request whose agent sets none
    /// (`default_max_tokens`); `None`: the provider's built-in default, see
    /// [`ModelLimits::output_cap`].
    pub default_max_tokens: Option<NonZeroU32>,
}

/// The output cap a provider's requests get when neither the agent nor the limits entry names
/// one (before [`ModelLimits::output_cap`] fits it under small token limits): Gemini 2.5
/// models think inside their output budget, so theirs is larger.
pub fn builtin_max_tokens(limits_provider: &str) -> u32 {
    match limits_provider {
        "gemini" => 8192,
        "simulated" => 1024,
        _ => 4096,
    }
}

/// A built-in default cap never takes more than this share (1/N) of the tightest token limit,
/// so several requests fit one window even under small limits.
pub const DEFAULT_CAP_SHARE: u64 = 4;

impl ModelLimits {
    /// The output cap sent and reserved with a request of `limits_provider` (e.g. `gemini`,
    /// `anthropic`) whose agent sets no `max_tokens`: the entry's `default_max_tokens` when
    /// given, else [`builtin_max_tokens`] lowered to 1/[`DEFAULT_CAP_SHARE`] of the tightest
    /// limit that counts output tokens (`tokens` or `output_tokens` windows), at least 1.
    pub fn output_cap(&self, limits_provider: &str) -> u32 {
        if let Some(n) = self.default_max_tokens {
            return n.get();
        }
        let builtin = builtin_max_tokens(limits_provider);
        let share = self
            .limits
            .iter()
            .filter(|l| {
                matches!(
                    l.dimension,
                    crate::quota::Dimension::Tokens | crate::quota::Dimension::OutputTokens
                )
            })
            .map(|l| l.amount.get() / DEFAULT_CAP_SHARE)
            .min();
        match share {
            Some(s) => u32::try_from(s).unwrap_or(u32::MAX).clamp(1, builtin),
            None => builtin,
        }
    }

    /// The supervisor's view of these limits.
    pub fn scope_spec(&self) -> crate::quota::ScopeSpec {
        crate::quota::ScopeSpec {
            limits: self.limits.clone(),
            concurrency: self.concurrency,
            startup_cooldown: self.startup_cooldown,
            pacing: self.pacing,
            daily_reset: self.daily_reset,
            window_guard: self.window_guard,
        }
    }
}
