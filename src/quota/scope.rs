//! [`ScopeState`]: everything one scope knows: its limits and their logs, concurrency slots,
//! cooldowns, learned limits, pacing and the stagger of first requests.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::cooldown::Cooldown;
use super::time::instant_after;
use super::verdict::{Blocker, Verdict};
use super::window::SlidingLog;
use super::{Dimension, Limit, ScopeId, ScopeSpec, TokenCount};

mod learn;

/// One limit of a scope: the configured value, the effective one and the admitted log.
#[derive(Debug, Clone)]
pub struct LimitState {
    /// What the config said (`None` for a limit only the provider revealed).
    pub configured: Option<Limit>,
    /// What is enforced: the configured limit, or a lower learned one.
    pub effective: Limit,
    /// The admitted weights inside the window.
    pub log: SlidingLog,
}

impl LimitState {
    /// A fresh limit whose admissions count for `period + guard` (see
    /// [`ScopeSpec::window_guard`]).
    fn new(limit: Limit, guard: Duration) -> Self {
        Self {
            configured: Some(limit),
            effective: limit,
            log: SlidingLog::new(limit.period.saturating_add(guard)),
        }
    }

    /// Whether the enforced limit came from the provider rather than the config.
    pub fn learned(&self) -> bool {
        self.configured != Some(self.effective)
    }

    fn weight(&self, tokens: TokenCount) -> u64 {
        self.effective.dimension.weight(tokens)
    }

    /// The weight of `requests` requests holding `tokens` together (a store's bucket).
    fn weight_of(&self, requests: u64, tokens: TokenCount) -> u64 {
        match self.effective.dimension {
            Dimension::Requests => requests,
            d => d.weight(tokens),
        }
    }

    /// The token weight of `tokens` here (0 for request limits: a top-up adds no request).
    fn token_weight(&self, tokens: TokenCount) -> u64 {
        match self.effective.dimension {
            Dimension::Requests => 0,
            d => d.weight(tokens),
        }
    }
}

/// Usage of one limit, for snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct LimitUsage {
    /// `requests` or `tokens`.
    pub dimension: &'static str,
    /// The window length in seconds.
    pub period_secs: f64,
    /// The enforced amount.
    pub limit: u64,
    /// The configured amount (equal to `limit` unless a lower one was learned; 0 when the limit
    /// was only learned).
    pub configured_limit: u64,
    /// Whether `limit` was learned from the provider.
    pub learned: bool,
    /// The amount inside the trailing window now.
    pub used: u64,
    /// `used / limit`, clamped to 0..=1.
    pub utilization: f64,
}

/// One scope's state, for snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct ScopeSnapshot {
    /// The scope's name.
    pub scope: String,
    /// Every limit with its usage.
    pub limits: Vec<LimitUsage>,
    /// Permits in flight.
    pub in_flight: u32,
    /// The concurrency cap, if any.
    pub concurrency: Option<u32>,
    /// Requests waiting for this scope.
    pub queue_depth: usize,
    /// Milliseconds until the scope admits again, while cooling down.
    pub cooldown_remaining_ms: Option<u64>,
    /// Why it is cooling down (or closed).
    pub cooldown_reason: Option<String>,
    /// Permits granted so far.
    pub granted_total: u64,
    /// Requests refused so far (never fits, deadline, closed).
    pub denied_total: u64,
}

/// Everything the supervisor tracks for one scope. Pure: every method takes the current instant.
#[derive(Debug, Clone)]
pub struct ScopeState {
    id: ScopeId,
    spec: ScopeSpec,
    limits: Vec<LimitState>,
    in_flight: u32,
    cooldown: Option<Cooldown>,
    closed: Option<String>,
    last_request: Option<Instant>,
    /// Every requester seen, with the instant of its first grant.
    seen: HashMap<Arc<str>, Instant>,
    first_gate: Option<Instant>,
    stagger: Duration,
    /// Permits granted so far.
    pub granted_total: u64,
    /// Requests refused so far.
    pub denied_total: u64,
}

impl ScopeState {
    /// A fresh scope registered at `now`; its startup cooldown starts now. `stagger` spaces the
    /// first requests of different requesters.
    pub fn new(id: ScopeId, spec: ScopeSpec, now: Instant, stagger: Duration) -> Self {
        let cooldown = (!spec.startup_cooldown.is_zero()).then(|| Cooldown {
            until: instant_after(now, spec.startup_cooldown),
            reason: "startup".to_owned(),
        });
        Self {
            id,
            limits: spec
                .limits
                .iter()
                .map(|l| LimitState::new(*l, spec.window_guard))
                .collect(),
            spec,
            in_flight: 0,
            cooldown,
            closed: None,
            last_request: None,
            seen: HashMap::new(),
            first_gate: None,
            stagger,
            granted_total: 0,
            denied_total: 0,
        }
    }

    /// The scope's name.
    pub fn id(&self) -> &ScopeId {
        &self.id
    }

    /// The spec it was registered with.
    pub fn spec(&self) -> &ScopeSpec {
        &self.spec
    }

    /// Its limits.
    pub fn limits(&self) -> &[LimitState] {
        &self.limits
    }

    /// Permits in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// The active cooldown, if any (it may already have passed).
    pub fn cooldown(&self) -> Option<&Cooldown> {
        self.cooldown.as_ref()
    }

    /// Why the scope is closed for good, if it is.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Replaces the spec, keeping the history of limits with the same dimension and period and
    /// any learned limit that is still lower than the new configured one.
    pub fn replace_spec(&mut self, spec: ScopeSpec, now: Instant) {
        let mut old = std::mem::take(&mut self.limits);
        for limit in &spec.limits {
            let mut state = LimitState::new(*limit, spec.window_guard);
            if let Some(pos) = old.iter().position(|s| {
                s.effective.dimension == limit.dimension && s.effective.period == limit.period
            }) {
                let prev = old.swap_remove(pos);
                state.log = if prev.log.period() == state.log.period() {
                    prev.log
                } else {
                    prev.log.narrowed(state.log.period(), now)
                };
                if prev.effective.amount < limit.amount {
                    state.effective = prev.effective;
                }
            }
            self.limits.push(state);
        }
        self.spec = spec;
    }

    /// Whether `requester` still has its first request to make here.
    fn is_new_requester(&self, requester: &str) -> bool {
        !self.seen.contains_key(requester)
    }

    fn pacing_interval(&self) -> Option<Duration> {
        if !self.spec.pacing {
            return None;
        }
        self.limits
            .iter()
            .filter(|l| l.effective.dimension == Dimension::Requests)
            .map(|l| {
                let n = u32::try_from(l.effective.amount.get()).unwrap_or(u32::MAX);
                l.effective.period / n
            })
            .max()
    }

    /// May a request of `est_tokens` from `requester` go at `now`? Expires old log entries.
    pub fn check(
        &mut self,
        now: Instant,
        est_tokens: impl Into<TokenCount>,
        requester: &str,
    ) -> Verdict {
        let est_tokens = est_tokens.into();
        if let Some(reason) = &self.closed {
            return Verdict::Closed {
                reason: reason.clone(),
            };
        }
        let mut verdict = Verdict::Admit;
        for l in &mut self.limits {
            l.log.expire(now);
            let amount = l.effective.amount.get();
            let weight = l.weight(est_tokens);
            match l.log.earliest_fit(now, weight, amount) {
                None => {
                    return Verdict::Never {
                        limit: l.effective,
                        requested: weight,
                    };
                }
                Some(at) if at > now => {
                    let blocker = Blocker::Limit {
                        limit: l.effective,
                        used: l.log.used(),
                    };
                    verdict = verdict.and(Verdict::WaitUntil { at, blocker });
                }
                Some(_) => {}
            }
        }
        if let Some(c) = &self.cooldown {
            if c.until > now {
                let blocker = Blocker::Cooldown {
                    reason: c.reason.clone(),
                };
                verdict = verdict.and(Verdict::WaitUntil {
                    at: c.until,
                    blocker,
                });
            }
        }
        if let (Some(interval), Some(last)) = (self.pacing_interval(), self.last_request) {
            let at = instant_after(last, interval);
            if at > now {
                let blocker = Blocker::Pacing;
                verdict = verdict.and(Verdict::WaitUntil { at, blocker });
            }
        }
        if let Some(gate) = self.first_gate {
            if gate > now && self.is_new_requester(requester) {
                let blocker = Blocker::Stagger;
                verdict = verdict.and(Verdict::WaitUntil { at: gate, blocker });
            }
        }
        if let Some(cap) = self.spec.concurrency {
            if self.in_flight >= cap.get() {
                let blocker = Blocker::Concurrency { cap: cap.get() };
                verdict = verdict.and(Verdict::WaitForEvent {
                    blocker,
                    not_before: None,
                });
            }
        }
        verdict
    }

    /// Records an admission at `now` (call only after [`check`](Self::check) said `Admit`).
    pub fn reserve(&mut self, now: Instant, est_tokens: TokenCount, requester: &Arc<str>) {
        for l in &mut self.limits {
            let w = l.weight(est_tokens);
            l.log.record(now, w);
        }
        self.in_flight = self.in_flight.saturating_add(1);
        self.last_request = Some(now);
        if self.is_new_requester(requester) {
            self.seen.insert(Arc::clone(requester), now);
            self.first_gate = Some(instant_after(now, self.stagger));
        }
        self.granted_total += 1;
    }

    /// Settles a reservation made at `at`: token limits get the refund or extra charge at that
    /// entry, and the concurrency slot frees.
    pub fn settle(&mut self, at: Instant, est_tokens: TokenCount, actual_tokens: TokenCount) {
        for l in &mut self.limits {
            if l.effective.dimension.is_tokens() {
                let (est, actual) = (l.weight(est_tokens), l.weight(actual_tokens));
                l.log
                    .adjust(at, actual.saturating_sub(est), est.saturating_sub(actual));
            }
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Whether `extra` more tokens fit in every token window at `now`, on top of what is
    /// already held (a top-up of a granted reservation: no request, no slot, no pacing).
    pub fn fits_extra(&mut self, now: Instant, extra: TokenCount) -> bool {
        if self.closed.is_some() {
            return false;
        }
        self.limits.iter_mut().all(|l| {
            l.log.expire(now);
            let w = l.token_weight(extra);
            w == 0 || l.log.earliest_fit(now, w, l.effective.amount.get()) == Some(now)
        })
    }

    /// Adds `extra` tokens to the reservation made at `at` in every token window (after
    /// [`fits_extra`](Self::fits_extra) said yes).
    pub fn add_extra(&mut self, at: Instant, extra: TokenCount) {
        for l in &mut self.limits {
            let w = l.token_weight(extra);
            if w > 0 {
                l.log.adjust(at, w, 0);
            }
        }
    }

    /// Removes a reservation made at `at` from every window and frees its slot: the provider
    /// did not count the call (an overload, a connection that never reached it).
    pub fn uncount(&mut self, at: Instant, est_tokens: TokenCount) {
        for l in &mut self.limits {
            let w = l.weight(est_tokens);
            l.log.adjust(at, 0, w);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Undoes a reservation made at `at` for `requester` that was never delivered: nothing
    /// stays charged, it does not count as granted, pacing counts from the grant before it, and
    /// a requester whose first grant it was is new again (its stagger slot is given back).
    pub fn rollback(&mut self, at: Instant, est_tokens: TokenCount, requester: &str) {
        self.uncount(at, est_tokens);
        self.granted_total = self.granted_total.saturating_sub(1);
        if self.last_request == Some(at) {
            self.last_request = self
                .limits
                .iter()
                .filter(|l| l.effective.dimension == Dimension::Requests)
                .filter_map(|l| l.log.latest())
                .max();
        }
        if self.seen.get(requester) == Some(&at) {
            self.seen.remove(requester);
            self.first_gate = self
                .seen
                .values()
                .max()
                .map(|&t| instant_after(t, self.stagger));
        }
    }

    /// Records an admission made elsewhere (another process sharing the quota store, or an
    /// earlier run) at `at`, possibly in the past: it counts in every window exactly like one of
    /// this scope's own, but holds no concurrency slot, is not counted as granted here and
    /// takes no requester's place in the stagger. Pacing counts from it when it is the latest.
    /// `requests` is 1 for one admission, or how many a store's bucket merged.
    pub fn record_foreign(&mut self, at: Instant, requests: u64, tokens: TokenCount) {
        for l in &mut self.limits {
            let w = l.weight_of(requests, tokens);
            l.log.record(at, w);
        }
        if self.last_request.is_none_or(|t| t < at) {
            self.last_request = Some(at);
        }
    }

    /// Changes the tokens of an admission made elsewhere at `at` from `from` to `to` (it was
    /// settled or topped up there). Request limits are unchanged.
    pub fn resettle_foreign(&mut self, at: Instant, from: TokenCount, to: TokenCount) {
        for l in &mut self.limits {
            if l.effective.dimension.is_tokens() {
                let (a, b) = (l.weight(from), l.weight(to));
                l.log.adjust(at, b.saturating_sub(a), a.saturating_sub(b));
            }
        }
    }

    /// Removes an admission made elsewhere at `at` of `requests` holding `tokens` from every
    /// window (the provider did not count it, it was never sent, or a bucket replaces it).
    pub fn remove_foreign(&mut self, at: Instant, requests: u64, tokens: TokenCount) {
        for l in &mut self.limits {
            let w = l.weight_of(requests, tokens);
            l.log.adjust(at, 0, w);
        }
    }

    /// How long an admission can count here at most: the longest window with its guard.
    pub fn horizon(&self) -> Duration {
        self.limits
            .iter()
            .map(|l| l.log.period())
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// The longest window shorter than a day, with its guard (zero when there is none): older
    /// admissions count only in windows of a day or more.
    pub fn short_horizon(&self) -> Duration {
        self.limits
            .iter()
            .filter(|l| l.effective.period < Duration::from_secs(86_400))
            .map(|l| l.log.period())
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Closes the scope until `until` (a later cooldown wins over an earlier one).
    pub fn cool_down(&mut self, until: Instant, reason: String) {
        match &self.cooldown {
            Some(c) if c.until >= until => {}
            _ => self.cooldown = Some(Cooldown { until, reason }),
        }
    }

    /// Closes the scope for good.
    pub fn close(&mut self, reason: String) {
        self.closed = Some(reason);
    }

    /// Usage figures at `now` (`queue_depth` is filled in by the caller).
    pub fn snapshot(&mut self, now: Instant) -> ScopeSnapshot {
        let limits = self
            .limits
            .iter_mut()
            .map(|l| {
                l.log.expire(now);
                let limit = l.effective.amount.get();
                let used = l.log.used();
                LimitUsage {
                    dimension: l.effective.dimension.as_str(),
                    period_secs: l.effective.period.as_secs_f64(),
                    limit,
                    configured_limit: l.configured.map_or(0, |c| c.amount.get()),
                    learned: l.learned(),
                    used,
                    utilization: (used as f64 / limit as f64).clamp(0.0, 1.0),
                }
            })
            .collect();
        let active = self.cooldown.as_ref().filter(|c| c.until > now);
        ScopeSnapshot {
            scope: self.id.to_string(),
            limits,
            in_flight: self.in_flight,
            concurrency: self.spec.concurrency.map(|c| c.get()),
            queue_depth: 0,
            cooldown_remaining_ms: active
                .map(|c| u64::try_from((c.until - now).as_millis()).unwrap_or(u64::MAX)),
            cooldown_reason: self
                .closed
                .clone()
                .or_else(|| active.map(|c| c.reason.clone())),
            granted_total: self.granted_total,
            denied_total: self.denied_total,
        }
    }

    /// The memory the logs hold, in entries (for benches and tests).
    pub fn log_entries(&self) -> usize {
        self.limits.iter().map(|l| l.log.len()).sum()
    }
}
