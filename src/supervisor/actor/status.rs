//! [`StoreStatus`]: what the quota store holds, answered by the supervisor from its own store
//! (it owns the connection) and kept for a second, so a scraping loop costs a message and no
//! store read per scrape.

use std::time::{Duration, Instant};

use actix::{Context, Handler, Message, MessageResult};

use super::{QuotaSupervisor, now};
use crate::store::{self, StoreError, StoreSpec, wall_ms};

/// How long an answer is reused.
pub(super) const STATUS_TTL: Duration = Duration::from_secs(1);

/// What the store holds per scope, over the windows of every registered scope's limits.
#[derive(Message)]
#[rtype(result = "Result<store::StoreStatus, StoreError>")]
pub(crate) struct StoreStatus;

/// The last answer: when, for which periods, what.
pub(crate) type StatusCache = Option<(Instant, Vec<i64>, store::StoreStatus)>;

impl Handler<StoreStatus> for QuotaSupervisor {
    type Result = MessageResult<StoreStatus>;

    fn handle(&mut self, _: StoreStatus, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.store_status(now()))
    }
}

impl QuotaSupervisor {
    /// The periods (ms) of every registered scope's limits, learned ones included.
    fn limit_periods(&self) -> Vec<i64> {
        let mut periods: Vec<i64> = (0..self.ledger.len())
            .filter_map(|i| self.ledger.scope(i))
            .flat_map(|s| s.limits().iter())
            .map(|l| i64::try_from(l.effective.period.as_millis()).unwrap_or(i64::MAX))
            .collect();
        periods.sort_unstable();
        periods.dedup();
        periods
    }

    fn store_status(&mut self, now: Instant) -> Result<store::StoreStatus, StoreError> {
        let now_ms = wall_ms(self.ledger.wall_clock(), now);
        let periods = self.limit_periods();
        let Some(p) = self.persist.as_mut() else {
            return Ok(store::StoreStatus::empty(
                StoreSpec::Memory.to_string(),
                false,
                now_ms,
            ));
        };
        if let Some((at, asked, status)) = &p.status_cache {
            if *asked == periods && now.saturating_duration_since(*at) < STATUS_TTL {
                return Ok(status.clone());
            }
        }
        let status = p.store.status(now_ms, &periods)?;
        p.status_cache = Some((now, periods, status.clone()));
        Ok(status)
    }
}
