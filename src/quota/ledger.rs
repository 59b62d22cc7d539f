//! [`Ledger`]: every scope's state, all-or-none reservations across scopes, settlement, and the
//! application of provider signals. Pure: time comes in as arguments.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::cooldown::{WallClock, next_daily_reset};
use super::scope::ScopeState;
use super::time::{ONE_DAY, clamp_wait, instant_after};
use super::verdict::Verdict;
use super::{Limit, RateLimitSignal, ScopeId, ScopeSpec, SignalKind, TokenCount, plausible_limit};

/// How long a 429 closes a scope when the provider gave no retry delay.
pub const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// How long a daily-quota signal closes a scope without a configured daily reset or retry delay.
pub const DEFAULT_DAILY_BACKOFF: Duration = Duration::from_secs(86_400);

/// A reservation held in several scopes at once, made at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The scopes (ledger indices) it holds.
    pub scopes: Vec<usize>,
    /// When it was admitted: settlement applies at this log entry.
    pub at: Instant,
    /// The estimated tokens reserved (input estimate and output cap).
    pub est: TokenCount,
    /// Who it was reserved for (a rollback undoes their place in the stagger).
    pub requester: Arc<str>,
}

/// A candidate's verdict and the scope that decided it (`None` when it is admitted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateCheck {
    /// The combined verdict.
    pub verdict: Verdict,
    /// The ledger index of the scope that holds it back most.
    pub scope: Option<usize>,
}

/// What applying a provider signal did to a scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignalEffect {
    /// The scope admits nothing until `until`.
    Cooldown {
        /// The end of the cooldown.
        until: Instant,
        /// Its length from now.
        duration: Duration,
        /// Why.
        reason: String,
    },
    /// A lower limit was learned and is now enforced.
    Learned(Limit),
    /// The scope is closed for good.
    Closed(String),
}

/// Every scope the supervisor governs.
#[derive(Debug, Clone)]
pub struct Ledger {
    scopes: Vec<ScopeState>,
    index: HashMap<ScopeId, usize>,
    stagger: Duration,
    wall: WallClock,
}

fn rank(v: &Verdict) -> u8 {
    match v {
        Verdict::Admit => 0,
        Verdict::WaitUntil { .. } => 1,
        Verdict::WaitForEvent { .. } => 2,
        Verdict::Never { .. } => 3,
        Verdict::Closed { .. } => 4,
    }
}

impl Ledger {
    /// An empty ledger. `stagger` spaces first requests of different requesters per scope;
    /// `wall` maps instants to wall-clock time for daily resets.
    pub fn new(stagger: Duration, wall: WallClock) -> Self {
        Self {
            scopes: Vec::new(),
            index: HashMap::new(),
            stagger,
            wall,
        }
    }

    /// Registers a scope (its startup cooldown starts at `now`) or replaces its spec. An equal
    /// spec changes nothing. Returns the scope's index, stable for the ledger's life.
    pub fn register(&mut self, id: ScopeId, spec: ScopeSpec, now: Instant) -> usize {
        if let Some(&i) = self.index.get(&id) {
            if let Some(s) = self.scopes.get_mut(i) {
                if s.spec() != &spec {
                    s.replace_spec(spec, now);
                }
            }
            return i;
        }
        let i = self.scopes.len();
        self.scopes
            .push(ScopeState::new(id.clone(), spec, now, self.stagger));
        self.index.insert(id, i);
        i
    }

    /// The index of a registered scope.
    pub fn lookup(&self, id: &ScopeId) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// A scope by index.
    pub fn scope(&self, i: usize) -> Option<&ScopeState> {
        self.scopes.get(i)
    }

    /// A scope by index, mutable.
    pub fn scope_mut(&mut self, i: usize) -> Option<&mut ScopeState> {
        self.scopes.get_mut(i)
    }

    /// How many scopes are registered.
    pub fn len(&self) -> usize {
        self.scopes.len()
    }

    /// Whether no scope is registered.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The wall clock used for daily resets.
    pub fn wall_clock(&self) -> &WallClock {
        &self.wall
    }

    /// Whether a request could be reserved in every scope of `scopes` at `now`.
    pub fn check(
        &mut self,
        scopes: &[usize],
        now: Instant,
        est: impl Into<TokenCount>,
        requester: &str,
    ) -> CandidateCheck {
        let est = est.into();
        let mut verdict = Verdict::Admit;
        let mut worst: Option<(usize, Verdict)> = None;
        for &i in scopes {
            let Some(s) = self.scopes.get_mut(i) else {
                continue;
            };
            let v = s.check(now, est, requester);
            let worse = match &worst {
                None => rank(&v) > 0,
                Some((_, w)) => match (rank(&v).cmp(&rank(w)), &v, w) {
                    (std::cmp::Ordering::Greater, _, _) => true,
                    (
                        std::cmp::Ordering::Equal,
                        Verdict::WaitUntil { at: a, .. },
                        Verdict::WaitUntil { at: b, .. },
                    ) => a > b,
                    _ => false,
                },
            };
            if worse {
                worst = Some((i, v.clone()));
            }
            verdict = verdict.and(v);
        }
        CandidateCheck {
            verdict,
            scope: worst.map(|(i, _)| i),
        }
    }

    /// Reserves in every scope of `scopes` at `now` (call after [`check`](Self::check) admitted).
    /// A scope named twice is reserved once.
    pub fn reserve(
        &mut self,
        scopes: &[usize],
        now: Instant,
        est: impl Into<TokenCount>,
        requester: &Arc<str>,
    ) -> Reservation {
        let est = est.into();
        let mut held: Vec<usize> = Vec::with_capacity(scopes.len());
        for &i in scopes {
            if held.contains(&i) {
                continue;
            }
            held.push(i);
            if let Some(s) = self.scopes.get_mut(i) {
                s.reserve(now, est, requester);
            }
        }
        Reservation {
            scopes: held,
            at: now,
            est,
            requester: Arc::clone(requester),
        }
    }

    /// Settles a reservation to `actual` tokens and frees its concurrency slots.
    pub fn settle(&mut self, r: &Reservation, actual: impl Into<TokenCount>) {
        let actual = actual.into();
        for &i in &r.scopes {
            if let Some(s) = self.scopes.get_mut(i) {
                s.settle(r.at, r.est, actual);
            }
        }
    }

    /// Adds `extra` tokens to a granted reservation if they fit in every token window of every
    /// scope at `now` (all scopes or none); the reservation's estimate grows by `extra`. Returns
    /// whether it did. For a prompt that grew between the grant and the send.
    pub fn top_up(&mut self, r: &mut Reservation, extra: TokenCount, now: Instant) -> bool {
        if extra.is_zero() {
            return true;
        }
        let mut seen = Vec::with_capacity(r.scopes.len());
        for &i in &r.scopes {
            if seen.contains(&i) {
                continue;
            }
            seen.push(i);
            let fits = self
                .scopes
                .get_mut(i)
                .is_some_and(|s| s.fits_extra(now, extra));
            if !fits {
                return false;
            }
        }
        for &i in &seen {
            if let Some(s) = self.scopes.get_mut(i) {
                s.add_extra(r.at, extra);
            }
        }
        r.est = r.est + extra;
        true
    }

    /// Removes a delivered reservation from every window and frees its slots: the provider did
    /// not count the call.
    pub fn uncount(&mut self, r: &Reservation) {
        for &i in &r.scopes {
            if let Some(s) = self.scopes.get_mut(i) {
                s.uncount(r.at, r.est);
            }
        }
    }

    /// Undoes a reservation that never reached its caller: nothing stays charged, and pacing
    /// and the stagger of first requests are as if it had never been made.
    pub fn rollback(&mut self, r: &Reservation) {
        for &i in &r.scopes {
            if let Some(s) = self.scopes.get_mut(i) {
                s.rollback(r.at, r.est, &r.requester);
            }
        }
    }

    /// Applies a provider signal to scope `i` at `now`. Every duration in it is clamped (see
    /// [`time`](super::time)): a scope told to wait longer than a week reopens after a week,
    /// one told a per-day quota is used up reopens at the next daily reset at the latest.
    pub fn apply_signal(
        &mut self,
        i: usize,
        signal: &RateLimitSignal,
        now: Instant,
    ) -> Vec<SignalEffect> {
        let wall = self.wall;
        let Some(s) = self.scopes.get_mut(i) else {
            return Vec::new();
        };
        let mut effects = Vec::new();
        let mut from_reports = Vec::new();
        for r in &signal.remaining {
            let Some(base) = r.learned_limit() else {
                continue;
            };
            from_reports.push(base);
            let limit = s.widen_by_history(base, r, now);
            if s.learn_reported(limit, now) {
                effects.push(SignalEffect::Learned(limit));
            }
            if let Some(amount) = r.limit {
                let used = amount.saturating_sub(r.remaining);
                match r.reset_after {
                    Some(reset) => s.seed_reported(&limit, used, clamp_wait(reset), now),
                    // Used up, and no word on when it frees: what the provider counted may all
                    // have arrived just now, so it is booked to free a whole period from now.
                    None if r.remaining == 0 => {
                        s.seed_reported(&limit, used, clamp_wait(limit.period), now);
                    }
                    None => {}
                }
            }
        }
        for limit in &signal.learned_limits {
            if from_reports.contains(limit) {
                continue;
            }
            if !plausible_limit(limit) {
                tracing::warn!(scope = %s.id(), %limit, "implausible learned limit ignored");
                continue;
            }
            if s.learn(*limit, now) {
                effects.push(SignalEffect::Learned(*limit));
            }
        }
        let mut cool = |s: &mut ScopeState, d: Duration, reason: String| {
            let until = instant_after(now, d);
            s.cool_down(until, reason.clone());
            effects.push(SignalEffect::Cooldown {
                until,
                duration: d,
                reason,
            });
        };
        match &signal.kind {
            SignalKind::RateLimited => {
                let d = signal.retry_after.unwrap_or(DEFAULT_RETRY_AFTER);
                cool(s, clamp_wait(d), "429 rate limited".to_owned());
            }
            SignalKind::DailyQuotaExhausted => {
                let until = match s.spec().daily_reset {
                    Some(reset) => wall.instant_at(now, next_daily_reset(wall.wall(now), &reset)),
                    None => {
                        let d = signal.retry_after.unwrap_or(DEFAULT_DAILY_BACKOFF);
                        instant_after(now, d.min(DEFAULT_DAILY_BACKOFF))
                    }
                };
                let d = until.saturating_duration_since(now);
                cool(s, d, "daily quota exhausted".to_owned());
            }
            SignalKind::Overloaded => {
                if let Some(d) = signal.retry_after {
                    cool(s, clamp_wait(d), "provider overloaded".to_owned());
                }
            }
            SignalKind::SpendCapReached => {
                let reason = match &signal.message {
                    Some(m) => format!("spend cap reached: {m}"),
                    None => "spend cap reached".to_owned(),
                };
                s.close(reason.clone());
                effects.push(SignalEffect::Closed(reason));
            }
            SignalKind::RequestTooLarge { .. } => {}
            SignalKind::Observed => {
                for r in &signal.remaining {
                    // The scope's own log already holds what the provider counted and is full:
                    // the ledger holds the next request until the oldest of those frees (no
                    // later than the provider frees one), while the reset is when the newest
                    // frees. A cooldown until then would only idle the scope.
                    let counted = r.limit.map(|l| l.saturating_sub(r.remaining));
                    if counted.is_some_and(|used| s.holds_all_of(r.dimension, used, now)) {
                        continue;
                    }
                    if r.remaining == 0 {
                        let d = match r.reset_after {
                            Some(d) if d.is_zero() => continue,
                            Some(d) => match r.period {
                                Some(p) if p >= ONE_DAY => d.min(ONE_DAY),
                                _ => clamp_wait(d),
                            },
                            // Used up with no reset and nothing booked above (no limit given,
                            // or one a configured limit already implies): wait the default.
                            None => DEFAULT_RETRY_AFTER,
                        };
                        cool(s, d, format!("provider reports no {} left", r.dimension));
                    }
                }
            }
        }
        effects
    }
}
