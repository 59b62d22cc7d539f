//! Spending limits: [`BudgetGuard`] holds one run's budget (`rate_limit.budget`, per run and per
//! UTC day) and is shared by every route of the run.
//!
//! Before a call asks for a quota permit, its worst case — the price of the prompt estimate
//! plus the price of the output cap it is sent with — is reserved against what is left
//! ([`BudgetGuard::admit`]): spent + reserved in flight + this call must stay within every
//! limit, checked and counted under one lock, so concurrent calls of the run never pass it
//! together. When the call ends its hold is settled to the actual cost (the price of the tokens
//! the provider reported, as the usage ledger records it); a hold dropped unsettled (the call
//! was never sent) is released.
//!
//! The day limit also counts what other runs recorded in the usage ledger since 00:00 UTC: read
//! when the guard is made and again before a reservation at most every [`DAY_REFRESH`]. Across
//! processes the day limit is therefore checked against *recorded* usage: processes running at
//! the same time may together pass it by at most the calls they have in flight. Within one run
//! it is exact.
//!
//! A call to a model with no price cannot be bounded: under a budget it is refused with a
//! message naming the model, unless `allow_unpriced: true` (then it counts as free).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::config::{BudgetSettings, Price, PriceTable};
use crate::store::UsageStore;

/// How often, at most, the day's total is read again from the usage ledger.
pub const DAY_REFRESH: Duration = Duration::from_secs(2);

/// Which limit a call would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// `per_run_usd`.
    Run,
    /// `per_day_usd`.
    Day,
}

impl BudgetScope {
    /// `run` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Run => "run",
            BudgetScope::Day => "day",
        }
    }
}

/// A call refused because it could pass a limit.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct BudgetExceeded {
    /// The limit it would pass.
    pub scope: BudgetScope,
    /// The limit, in US dollars.
    pub limit_usd: f64,
    /// Spent so far against that limit (settled calls), in US dollars.
    pub spent_usd: f64,
    /// Reserved by calls in flight.
    pub in_flight_usd: f64,
    /// What the refused call could cost at most.
    pub needed_usd: f64,
}

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "budget per {} of ${:.2} reached: ${:.2} spent",
            self.scope.as_str(),
            self.limit_usd,
            self.spent_usd
        )?;
        if self.in_flight_usd > 0.0 {
            write!(f, " (and up to ${:.2} in flight)", self.in_flight_usd)?;
        }
        write!(f, ", next call needs up to ${:.2}", self.needed_usd)
    }
}

/// Why a call was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetRefusal {
    /// It could pass a limit.
    #[error("{0}")]
    Exceeded(BudgetExceeded),
    /// Its model has no price, so no limit can bound it.
    #[error(
        "model `{model}` at `{provider}` has no price in the price table: under a budget its \
         calls are refused (price it in a prices file, `rate_limit.prices`, or set \
         `rate_limit.budget.allow_unpriced: true`)"
    )]
    Unpriced {
        /// The provider.
        provider: String,
        /// The model.
        model: String,
    },
}

/// Where the day's spending of other runs is read from.
struct DaySource {
    store: Box<dyn UsageStore>,
    run_id: String,
    /// Only records of this requester (`agent`) count: a gateway client's own budget.
    requester: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    /// Settled cost of this run's calls.
    spent: f64,
    /// Worst cases of this run's calls in flight.
    reserved: f64,
    /// Other runs' recorded cost today (UTC).
    others_today: f64,
    /// Start of the UTC day `others_today` counts from, in ms.
    day_start_ms: i64,
    refreshed: Option<Instant>,
}

/// One run's budget (see the module docs).
pub struct BudgetGuard {
    settings: BudgetSettings,
    prices: Arc<PriceTable>,
    state: Mutex<State>,
    day: Option<Mutex<DaySource>>,
    /// A budget every call under this one must also fit (a gateway client's budget lies
    /// within the gateway's own): reserved, grown and settled together with this one.
    outer: Option<Arc<BudgetGuard>>,
    tripped: tokio::sync::watch::Sender<Option<BudgetExceeded>>,
}

impl std::fmt::Debug for BudgetGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetGuard")
            .field("settings", &self.settings)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

fn utc_day_start_ms(now_ms: i64) -> i64 {
    now_ms - now_ms.rem_euclid(86_400_000)
}

impl BudgetGuard {
    /// The guard of one run (`run_id`), pricing with `prices`; `day_store` is the usage ledger
    /// read for the day limit (`None`: only this run's calls count against it).
    pub fn new(
        settings: BudgetSettings,
        prices: Arc<PriceTable>,
        run_id: &str,
        day_store: Option<Box<dyn UsageStore>>,
    ) -> Arc<Self> {
        Self::build(settings, prices, run_id, None, day_store, None)
    }

    /// Like [`BudgetGuard::new`], for one requester's own budget (a gateway client): its day
    /// limit counts only the ledger records whose `agent` is `requester`. With `outer` (the
    /// gateway's own budget), every call must fit both: a hold on this guard holds the same
    /// amount on `outer`, and a model `outer` cannot price is refused when `outer` refuses
    /// unpriced models.
    pub fn for_requester(
        settings: BudgetSettings,
        prices: Arc<PriceTable>,
        run_id: &str,
        requester: &str,
        day_store: Option<Box<dyn UsageStore>>,
        outer: Option<Arc<BudgetGuard>>,
    ) -> Arc<Self> {
        Self::build(settings, prices, run_id, Some(requester), day_store, outer)
    }

    fn build(
        settings: BudgetSettings,
        prices: Arc<PriceTable>,
        run_id: &str,
        requester: Option<&str>,
        day_store: Option<Box<dyn UsageStore>>,
        outer: Option<Arc<BudgetGuard>>,
    ) -> Arc<Self> {
        let guard = Self {
            settings,
            prices,
            state: Mutex::new(State::default()),
            day: day_store
                .filter(|_| settings.per_day_usd.is_some())
                .map(|store| {
                    Mutex::new(DaySource {
                        store,
                        run_id: run_id.to_owned(),
                        requester: requester.map(str::to_owned),
                    })
                }),
            outer,
            tripped: tokio::sync::watch::channel(None).0,
        };
        {
            let mut st = guard.lock();
            guard.refresh_day(&mut st, true);
        }
        Arc::new(guard)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The limits.
    pub fn settings(&self) -> BudgetSettings {
        self.settings
    }

    /// The price of `model` at `provider` for a call under this budget: `Ok(None)` when it has
    /// none and `allow_unpriced` is set.
    pub fn price(&self, provider: &str, model: &str) -> Result<Option<Price>, BudgetRefusal> {
        match (self.prices.lookup(provider, model), &self.outer) {
            (Some(p), _) => Ok(Some(p.clone())),
            // The outer budget decides whether an unpriced model may be called at all.
            (None, Some(outer)) => outer.price(provider, model),
            (None, None) if self.settings.allow_unpriced => Ok(None),
            (None, None) => Err(BudgetRefusal::Unpriced {
                provider: provider.to_owned(),
                model: model.to_owned(),
            }),
        }
    }

    /// Reads the other runs' cost of the current UTC day from the ledger, if due.
    fn refresh_day(&self, st: &mut State, force: bool) {
        let Some(day) = &self.day else {
            return;
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let start = utc_day_start_ms(now_ms);
        let due = force
            || start != st.day_start_ms
            || st.refreshed.is_none_or(|at| at.elapsed() >= DAY_REFRESH);
        if !due {
            return;
        }
        let mut day = day.lock().unwrap_or_else(PoisonError::into_inner);
        let DaySource {
            store,
            run_id,
            requester,
        } = &mut *day;
        match store.since(start) {
            Ok(records) => {
                st.others_today = records
                    .iter()
                    .filter(|r| r.run_id != *run_id)
                    .filter(|r| requester.as_deref().is_none_or(|q| r.agent == q))
                    .filter_map(|r| r.cost_usd)
                    .sum();
                st.day_start_ms = start;
                st.refreshed = Some(Instant::now());
            }
            Err(e) => {
                // Keep the last total; try again at the next refresh.
                st.refreshed = Some(Instant::now());
                tracing::warn!("cannot read today's usage for the day budget: {e}");
            }
        }
    }

    /// Reserves `estimated_usd` (a call's worst case) if every limit still holds with it.
    /// The hold is released when dropped; settle it with [`BudgetHold::settle`].
    pub fn admit(self: &Arc<Self>, estimated_usd: f64) -> Result<BudgetHold, BudgetExceeded> {
        let needed = if estimated_usd.is_finite() {
            estimated_usd.max(0.0)
        } else {
            f64::MAX
        };
        let mut st = self.lock();
        self.refresh_day(&mut st, false);
        if let Err(e) = self.check(&st, needed) {
            drop(st);
            self.trip(e);
            return Err(e);
        }
        // Still under this guard's lock (inner before outer, always), so the two reservations
        // are made together.
        let outer = match &self.outer {
            Some(outer) => Some(Box::new(outer.admit(needed)?)),
            None => None,
        };
        st.reserved += needed;
        Ok(BudgetHold {
            guard: self.clone(),
            reserved: needed,
            done: false,
            outer,
        })
    }

    fn check(&self, st: &State, needed: f64) -> Result<(), BudgetExceeded> {
        let limits = [
            (BudgetScope::Run, self.settings.per_run_usd, st.spent),
            (
                BudgetScope::Day,
                self.settings.per_day_usd,
                st.spent + st.others_today,
            ),
        ];
        for (scope, limit, spent) in limits {
            let Some(limit) = limit else { continue };
            if spent + st.reserved + needed > limit {
                return Err(BudgetExceeded {
                    scope,
                    limit_usd: limit,
                    spent_usd: spent,
                    in_flight_usd: st.reserved,
                    needed_usd: needed,
                });
            }
        }
        Ok(())
    }

    fn trip(&self, e: BudgetExceeded) {
        self.tripped.send_if_modified(|first| {
            if first.is_none() {
                *first = Some(e);
                true
            } else {
                false
            }
        });
    }

    /// The first refusal of the run, if any.
    pub fn exceeded(&self) -> Option<BudgetExceeded> {
        *self.tripped.borrow()
    }

    /// Completes when a call is first refused for passing a limit.
    pub async fn tripped(&self) -> BudgetExceeded {
        let mut rx = self.tripped.subscribe();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                // The sender lives in `self`: never closed while borrowed.
                std::future::pending::<()>().await;
            }
        }
    }

    /// This run's settled cost and the cost reserved by its calls in flight.
    pub fn spent(&self) -> (f64, f64) {
        let st = self.lock();
        (st.spent, st.reserved)
    }

    fn finish(&self, reserved: f64, actual: f64) {
        let mut st = self.lock();
        st.reserved = (st.reserved - reserved).max(0.0);
        st.spent += actual.max(0.0);
    }
}

/// A call's reservation (see [`BudgetGuard::admit`]).
#[derive(Debug)]
pub struct BudgetHold {
    guard: Arc<BudgetGuard>,
    reserved: f64,
    done: bool,
    /// The same reservation on the outer budget, if the guard has one.
    outer: Option<Box<BudgetHold>>,
}

impl BudgetHold {
    /// What is reserved.
    pub fn reserved(&self) -> f64 {
        self.reserved
    }

    /// Raises the reservation to `estimated_usd` (the request grew while it waited) if every
    /// limit still holds; a lower estimate keeps the reservation.
    pub fn grow(&mut self, estimated_usd: f64) -> Result<(), BudgetExceeded> {
        let extra = estimated_usd - self.reserved;
        if extra.is_nan() || extra <= 0.0 {
            return Ok(());
        }
        let extra = if extra.is_finite() { extra } else { f64::MAX };
        let mut st = self.guard.lock();
        self.guard.refresh_day(&mut st, false);
        if let Err(mut e) = self.guard.check(&st, extra) {
            drop(st);
            e.needed_usd = self.reserved + extra;
            e.in_flight_usd = (e.in_flight_usd - self.reserved).max(0.0);
            self.guard.trip(e);
            return Err(e);
        }
        if let Some(outer) = &mut self.outer {
            outer.grow(estimated_usd)?;
        }
        st.reserved += extra;
        self.reserved += extra;
        Ok(())
    }

    /// The call ended having cost `actual_usd`.
    pub fn settle(mut self, actual_usd: f64) {
        self.done = true;
        self.guard.finish(self.reserved, actual_usd);
        if let Some(outer) = self.outer.take() {
            outer.settle(actual_usd);
        }
    }
}

impl Drop for BudgetHold {
    fn drop(&mut self) {
        if !self.done {
            self.guard.finish(self.reserved, 0.0);
        }
    }
}

#[cfg(test)]
#[path = "budget_tests.rs"]
mod tests;
