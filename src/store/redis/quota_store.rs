//! The [`QuotaStore`] interface of [`RedisStore`].

use std::sync::atomic::Ordering;

use super::RedisStore;
use crate::store::{Change, QuotaStore, StoreError, StoreStatus, Write};

impl QuotaStore for RedisStore {
    fn describe(&self) -> String {
        format!("Redis {}", self.shown)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn status(&mut self, now_ms: i64, periods_ms: &[i64]) -> Result<StoreStatus, StoreError> {
        self.read_status(now_ms, periods_ms)
    }

    fn begin(&mut self) -> Result<Vec<Change>, StoreError> {
        self.buffer.clear();
        self.admit_ids.clear();
        if !self.ensure()? {
            return Ok(Vec::new());
        }
        // The server checks every admission itself: reading the stream only keeps this
        // process's view fresh, so it is skipped while nobody else committed.
        let stale = self.must_pull
            || self.resync
            || !self.flags.subscribed.load(Ordering::Acquire)
            || self.flags.dirty.swap(false, Ordering::AcqRel)
            || self
                .last_pull
                .is_none_or(|t| t.elapsed() >= super::PULL_AT_LEAST_EVERY);
        if !stale {
            return Ok(Vec::new());
        }
        let mut changes = match self.pull() {
            Ok(c) => c,
            Err(e) => return self.outage(&e).map(|()| Vec::new()),
        };
        if self.resync {
            self.resync = false;
            let now = self.clock.floor_ms();
            let scopes: Vec<(String, i64)> =
                self.horizons.iter().map(|(s, h)| (s.clone(), *h)).collect();
            for (scope, h) in scopes {
                match self.load(&scope, now.saturating_sub(h)) {
                    Ok(c) => changes.extend(c),
                    Err(e) => {
                        self.resync = true;
                        return self.outage(&e).map(|()| Vec::new());
                    }
                }
            }
        }
        Ok(changes)
    }

    fn changed_elsewhere(&mut self) -> bool {
        self.flags.wake.swap(false, Ordering::AcqRel)
            || self.conn.is_none()
            || !self.flags.subscribed.load(Ordering::Acquire)
    }

    fn load_scope(
        &mut self,
        scope: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Change>, StoreError> {
        let h = now_ms.saturating_sub(since_ms).max(0);
        let e = self.horizons.entry(scope.to_owned()).or_insert(h);
        *e = (*e).max(h);
        if self.degraded.is_some() {
            return Ok(Vec::new());
        }
        match self.load(scope, since_ms) {
            Ok(c) => Ok(c),
            Err(e) => self.outage(&e).map(|()| Vec::new()),
        }
    }

    fn write(&mut self, write: &Write) -> Result<Option<i64>, StoreError> {
        match write {
            Write::Limits { scope, limits } => {
                self.limits.insert(scope.clone(), limits.clone());
                Ok(None)
            }
            Write::Admit { .. } => {
                self.counter = self.counter.wrapping_add(1);
                let id = (self.process << 32) | i64::from(self.counter);
                self.admit_ids.push(id);
                self.buffer.push(write.clone());
                Ok(Some(id))
            }
            Write::Scope {
                scope, horizon_ms, ..
            } => {
                let e = self.horizons.entry(scope.clone()).or_insert(*horizon_ms);
                *e = (*e).max(*horizon_ms);
                self.buffer.push(write.clone());
                Ok(None)
            }
            other => {
                self.buffer.push(other.clone());
                Ok(None)
            }
        }
    }

    fn commit(&mut self, _now_ms: i64) -> Result<(), StoreError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let result = if self.degraded.is_some() {
            // Per-process limits: this process's admissions are kept to be written when the
            // server answers again.
            let at = self.clock.to_server_late(self.clock.ceil_ms());
            self.applied(at);
            Ok(())
        } else {
            match self.run_commit() {
                Ok(r) => r,
                Err(e) => {
                    let r = self.outage(&e);
                    if r.is_ok() {
                        let at = self.clock.to_server_late(self.clock.ceil_ms());
                        self.applied(at);
                    }
                    r
                }
            }
        };
        self.buffer.clear();
        self.admit_ids.clear();
        result
    }

    fn abort(&mut self) {
        self.buffer.clear();
        self.admit_ids.clear();
    }
}

impl RedisStore {
    /// A failure mid-run: an error (fail closed), or per-process limits (`fail_open_local`).
    fn outage(&mut self, e: &redis::RedisError) -> Result<(), StoreError> {
        let err = self.failed(e);
        if self.fail_open_local {
            self.degrade(&err);
            Ok(())
        } else {
            Err(err)
        }
    }
}
