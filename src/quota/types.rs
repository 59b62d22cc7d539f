//! Limits, scopes and scope specifications.

use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::sync::Arc;
use std::time::Duration;

/// What a limit counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dimension {
    /// Requests: each admitted call weighs 1.
    Requests,
    /// Tokens: input + output tokens of each call (reserved from an estimate, then settled).
    Tokens,
    /// Input tokens only (Anthropic's ITPM): the prompt's estimate, counted at arrival.
    InputTokens,
    /// Output tokens only (Anthropic's OTPM): the sent output cap, settled to the actual output.
    OutputTokens,
}

impl Dimension {
    /// `requests` or `tokens`: the label used in metrics, logs and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Requests => "requests",
            Dimension::Tokens => "tokens",
            Dimension::InputTokens => "input_tokens",
            Dimension::OutputTokens => "output_tokens",
        }
    }
}

impl fmt::Display for Dimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Dimension {
    /// Whether this dimension counts tokens (of any kind).
    pub fn is_tokens(self) -> bool {
        !matches!(self, Dimension::Requests)
    }

    /// What one call of `tokens` weighs in this dimension: 1 request, or its tokens of the
    /// counted kind.
    pub fn weight(self, tokens: TokenCount) -> u64 {
        match self {
            Dimension::Requests => 1,
            Dimension::Tokens => tokens.total(),
            Dimension::InputTokens => tokens.input,
            Dimension::OutputTokens => tokens.output,
        }
    }
}

/// Tokens of one call, split the way providers with separate input and output limits count
/// them: the reservation holds the input estimate and the sent output cap; a settlement holds
/// what the provider counts in the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct TokenCount {
    /// Input (prompt) tokens.
    pub input: u64,
    /// Output tokens (the cap when reserving, the actual output when settling).
    pub output: u64,
}

impl TokenCount {
    /// `input` prompt tokens and `output` output tokens.
    pub fn new(input: u64, output: u64) -> Self {
        Self { input, output }
    }

    /// Input plus output (saturating).
    pub fn total(self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// What `self` holds beyond `other`, part by part (zero where `other` holds more).
    pub fn excess_over(self, other: TokenCount) -> TokenCount {
        TokenCount {
            input: self.input.saturating_sub(other.input),
            output: self.output.saturating_sub(other.output),
        }
    }

    /// Whether both parts are zero.
    pub fn is_zero(self) -> bool {
        self.input == 0 && self.output == 0
    }
}

impl From<u64> for TokenCount {
    /// A count known only as a total: all of it is taken as input (the total is what
    /// `tokens` limits count; split limits should be given a split count).
    fn from(total: u64) -> Self {
        Self {
            input: total,
            output: 0,
        }
    }
}

impl std::ops::Add for TokenCount {
    type Output = TokenCount;
    fn add(self, o: TokenCount) -> TokenCount {
        TokenCount {
            input: self.input.saturating_add(o.input),
            output: self.output.saturating_add(o.output),
        }
    }
}

/// Why a [`Limit`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// The amount was zero.
    #[error("a limit's amount must be at least 1")]
    ZeroAmount,
    /// The period was zero.
    #[error("a limit's period must be longer than zero")]
    ZeroPeriod,
}

/// `amount` of `dimension` in any trailing window of `period`. Cannot be zero in either part.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit {
    /// What is counted.
    pub dimension: Dimension,
    /// How much may be admitted in any trailing `period`.
    pub amount: NonZeroU64,
    /// The window length.
    pub period: Duration,
}

impl Limit {
    /// A limit of `amount` per `period`; zero amounts and zero periods are refused.
    pub fn new(dimension: Dimension, amount: u64, period: Duration) -> Result<Self, LimitError> {
        let amount = NonZeroU64::new(amount).ok_or(LimitError::ZeroAmount)?;
        if period.is_zero() {
            return Err(LimitError::ZeroPeriod);
        }
        Ok(Self {
            dimension,
            amount,
            period,
        })
    }

    /// Requests per minute.
    pub fn rpm(amount: NonZeroU64) -> Self {
        Self {
            dimension: Dimension::Requests,
            amount,
            period: Duration::from_secs(60),
        }
    }

    /// Tokens per minute.
    pub fn tpm(amount: NonZeroU64) -> Self {
        Self {
            dimension: Dimension::Tokens,
            amount,
            period: Duration::from_secs(60),
        }
    }

    /// Requests per day (86 400 s trailing).
    pub fn rpd(amount: NonZeroU64) -> Self {
        Self {
            dimension: Dimension::Requests,
            amount,
            period: Duration::from_secs(86_400),
        }
    }

    /// Input tokens per minute (Anthropic's ITPM).
    pub fn itpm(amount: NonZeroU64) -> Self {
        Self {
            dimension: Dimension::InputTokens,
            amount,
            period: Duration::from_secs(60),
        }
    }

    /// Output tokens per minute (Anthropic's OTPM).
    pub fn otpm(amount: NonZeroU64) -> Self {
        Self {
            dimension: Dimension::OutputTokens,
            amount,
            period: Duration::from_secs(60),
        }
    }

    /// Tokens per day (86 400 s trailing).
    pub fn tpd(amount: NonZeroU64) -> Self {
        Self {
            dimension: Dimension::Tokens,
            amount,
            period: Duration::from_secs(86_400),
        }
    }

    /// A short human name: `rpm`, `tpd`, or `requests/10s` for other periods.
    pub fn short_name(&self) -> String {
        let unit = match self.period.as_secs() {
            60 if self.period.subsec_nanos() == 0 => Some("m"),
            86_400 if self.period.subsec_nanos() == 0 => Some("d"),
            _ => None,
        };
        match (self.dimension, unit) {
            (Dimension::Requests, Some(u)) => format!("rp{u}"),
            (Dimension::Tokens, Some(u)) => format!("tp{u}"),
            (Dimension::InputTokens, Some(u)) => format!("itp{u}"),
            (Dimension::OutputTokens, Some(u)) => format!("otp{u}"),
            (d, None) => format!("{d}/{}", humanize_period(self.period)),
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} per {}",
            self.amount,
            self.dimension,
            humanize_period(self.period)
        )
    }
}

/// `60s` -> `1m`, `86400s` -> `1d`, `1.5s` -> `1500ms`.
pub(crate) fn humanize_period(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 86_400_000 == 0 {
        format!("{}d", ms / 86_400_000)
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The name of something a provider counts against, e.g. `gemini/gemini-2.5-pro` (per project),
/// `openai/gpt-4o-mini/key:1a2b3c4d` (per key) or `shared:team-pool` (a user-named group).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ScopeId(Arc<str>);

impl ScopeId {
    /// A scope named `name`.
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        Self(name.into())
    }

    /// The scope's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ScopeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ScopeId {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

/// Whether a provider counts a model's limits per API key or per account/project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeKind {
    /// Every key has its own limits (OpenAI-compatible per-key tiers).
    PerKey,
    /// All keys of one account/project share the limits (Gemini counts per project).
    #[default]
    PerAccount,
}

/// The daily reset of a provider's per-day quota: a wall-clock time in a time zone
/// (Gemini: midnight America/Los_Angeles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyReset {
    /// Hour of the reset, 0..=23, in `tz`.
    pub hour: u8,
    /// Minute of the reset, 0..=59, in `tz`.
    pub minute: u8,
    /// The time zone the provider resets in.
    pub tz: chrono_tz::Tz,
}

/// Everything the supervisor needs to govern one scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScopeSpec {
    /// Every limit of the scope (requests and tokens, any periods). Empty means unlimited.
    pub limits: Vec<Limit>,
    /// At most this many permits in flight at once.
    pub concurrency: Option<NonZeroU32>,
    /// After the supervisor starts (or the scope is registered) nothing is admitted for this long.
    pub startup_cooldown: Duration,
    /// Spread admissions evenly: at most one request per `period / amount` of the tightest
    /// request limit, instead of bursting the whole window at once.
    pub pacing: bool,
    /// When the provider's per-day quota resets (for "daily quota exhausted" signals).
    pub daily_reset: Option<DailyReset>,
    /// How much longer than its period an admission keeps counting. The windows are exact on
    /// the supervisor's clock, but a request reaches the provider a little after its grant, and
    /// not always equally late: two requests granted exactly one period apart can arrive less
    /// than a period apart and draw a 429. A guard a little above the spread of those delays
    /// closes that gap at a small cost in throughput (250 ms on a minute window: 0.4 %).
    pub window_guard: Duration,
}
