//! [`SqliteStore`]: quota state in an SQLite file (WAL, `synchronous=NORMAL`, busy timeout),
//! shared by every process of the machine that opens it.
//!
//! Every row carries the change sequence number of the transaction that last wrote it (one
//! counter in `meta`, bumped once per writing transaction) and the id of the process that
//! wrote it, so [`begin`](QuotaStore::begin) returns exactly what other processes changed since
//! this one last looked. A released admission stays as a tombstone (`gone = 1`) until it is
//! pruned, so the release reaches every process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Change, QuotaStore, StoreError, StoreStatus, Write};
use crate::quota::{Dimension, Limit};

mod compact;
mod schema;
mod status;

use compact::Tracker;

/// How long a transaction waits for another process's write lock before it fails.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How often (wall-clock milliseconds) a commit also prunes state no window needs any more.
const PRUNE_EVERY_MS: i64 = 10_000;

/// Learned limits older than this are forgotten (a provider may raise a limit).
const LEARNED_KEEP_MS: i64 = 7 * 86_400_000;

/// Admissions of a scope no process has described are kept this long at most.
const DEFAULT_HORIZON_MS: i64 = 8 * 86_400_000;

/// Quota state in one SQLite file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// This process's id in the rows it writes.
    process: i64,
    /// The change sequence number up to which this process has seen everything.
    seen: i64,
    /// The sequence number of the open transaction's writes, once it wrote.
    tx_seq: Option<i64>,
    in_tx: bool,
    last_prune_ms: i64,
    /// `PRAGMA data_version` when last polled: it changes when another connection commits.
    data_version: Option<i64>,
    /// The rows handed to this process's mirror, so buckets can replace them there.
    tracker: Tracker,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("process", &self.process)
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

fn dimension_of(s: &str) -> Option<Dimension> {
    Some(match s {
        "requests" => Dimension::Requests,
        "tokens" => Dimension::Tokens,
        "input_tokens" => Dimension::InputTokens,
        "output_tokens" => Dimension::OutputTokens,
        _ => return None,
    })
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, creating its directory when missing.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let fail = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = Connection::open(path).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail(e.to_string()))?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| fail(e.to_string()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(fail(format!("the file cannot use WAL mode (got {mode})")));
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| fail(e.to_string()))?;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| fail(e.to_string()))?;
        if let Err(e) = schema::create(&conn).and_then(|()| conn.execute_batch("COMMIT")) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(fail(e.to_string()));
        }
        let process =
            (i64::from(std::process::id()) << 24) ^ i64::from(fastrand::u32(..) & 0x00ff_ffff);
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            process,
            seen: 0,
            tx_seq: None,
            in_tx: false,
            last_prune_ms: 0,
            data_version: None,
            tracker: Tracker::default(),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, e: rusqlite::Error) -> StoreError {
        StoreError::Io {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }

    fn meta_seq(&self) -> rusqlite::Result<i64> {
        self.conn
            .prepare_cached("SELECT v FROM meta WHERE k = 'seq'")?
            .query_row([], |r| r.get(0))
    }

    /// The sequence number this transaction's writes carry (bumped at its first write).
    fn seq(&mut self) -> rusqlite::Result<i64> {
        if let Some(s) = self.tx_seq {
            return Ok(s);
        }
        let s: i64 = self
            .conn
            .prepare_cached("UPDATE meta SET v = v + 1 WHERE k = 'seq' RETURNING v")?
            .query_row([], |r| r.get(0))?;
        self.tx_seq = Some(s);
        Ok(s)
    }

    fn pull(&mut self) -> rusqlite::Result<Vec<Change>> {
        let current = self.meta_seq()?;
        let mut out = Vec::new();
        if current == self.seen {
            return Ok(out);
        }
        let (seen, me) = (self.seen, self.process);
        let mut st = self.conn.prepare_cached(
            "SELECT id, scope, at_ms, input, output, gone, process, requests, bucket
             FROM admissions WHERE seq > ?1 AND process != ?2 ORDER BY seq, id",
        )?;
        let mut rows = st.query(params![seen, me])?;
        while let Some(r) = rows.next()? {
            let id: i64 = r.get(0)?;
            if r.get::<_, i64>(5)? != 0 {
                self.tracker.removed(id);
                out.push(Change::Removed { id });
            } else {
                let (scope, at_ms): (String, i64) = (r.get(1)?, r.get(2)?);
                let bucket = r.get::<_, i64>(8)? != 0;
                self.tracker
                    .admission(id, &scope, r.get(6)?, at_ms, bucket, &mut out);
                out.push(Change::Admission {
                    id,
                    scope,
                    at_ms,
                    requests: to_u64(r.get(7)?),
                    input: to_u64(r.get(3)?),
                    output: to_u64(r.get(4)?),
                });
            }
        }
        drop(rows);
        drop(st);
        self.others(&mut out, "seq > ?1 AND process != ?2", params![seen, me])?;
        self.seen = current;
        Ok(out)
    }

    /// Cooldowns, startup cooldowns and learned limits matching `filter`.
    fn others(
        &self,
        out: &mut Vec<Change>,
        filter: &str,
        args: impl rusqlite::Params + Copy,
    ) -> rusqlite::Result<()> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT scope, until_ms, reason FROM cooldowns WHERE {filter}"
        ))?;
        for row in st.query_map(args, |r| {
            Ok(Change::Cooldown {
                scope: r.get(0)?,
                until_ms: r.get(1)?,
                reason: r.get(2)?,
            })
        })? {
            out.push(row?);
        }
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT scope, startup_until_ms FROM scopes WHERE {filter}"
        ))?;
        for row in st.query_map(args, |r| {
            Ok(Change::Cooldown {
                scope: r.get(0)?,
                until_ms: r.get(1)?,
                reason: "startup (another process)".to_owned(),
            })
        })? {
            out.push(row?);
        }
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT scope, dimension, amount, period_ms FROM learned WHERE {filter}"
        ))?;
        let rows = st.query_map(args, |r| {
            let dim: String = r.get(1)?;
            let amount: i64 = r.get(2)?;
            let period: i64 = r.get(3)?;
            Ok((r.get::<_, String>(0)?, dim, amount, period))
        })?;
        for row in rows {
            let (scope, dim, amount, period) = row?;
            let limit = dimension_of(&dim).and_then(|d| {
                Limit::new(d, to_u64(amount), Duration::from_millis(to_u64(period))).ok()
            });
            if let Some(limit) = limit {
                out.push(Change::Learned { scope, limit });
            }
        }
        Ok(())
    }

    fn load(&mut self, scope: &str, since_ms: i64, now_ms: i64) -> rusqlite::Result<Vec<Change>> {
        let mut out = Vec::new();
        self.tracker.track(scope);
        let mut st = self.conn.prepare_cached(
            "SELECT id, at_ms, input, output, process, requests, bucket FROM admissions
             WHERE scope = ?1 AND at_ms >= ?2 AND gone = 0 AND process != ?3 ORDER BY bucket DESC, at_ms, id",
        )?;
        let mut rows = st.query(params![scope, since_ms, self.process])?;
        while let Some(r) = rows.next()? {
            let (id, at_ms): (i64, i64) = (r.get(0)?, r.get(1)?);
            let bucket = r.get::<_, i64>(6)? != 0;
            self.tracker
                .admission(id, scope, r.get(4)?, at_ms, bucket, &mut out);
            out.push(Change::Admission {
                id,
                scope: scope.to_owned(),
                at_ms,
                requests: to_u64(r.get(5)?),
                input: to_u64(r.get(2)?),
                output: to_u64(r.get(3)?),
            });
        }
        drop(rows);
        drop(st);
        // The filter's `?2` is unused for learned limits and the startup clock: `?2 = ?2`.
        let mut more = Vec::new();
        self.others(
            &mut more,
            "scope = ?1 AND process != ?3 AND (?2 = ?2)",
            params![scope, now_ms, self.process],
        )?;
        out.extend(more.into_iter().filter(|c| match c {
            Change::Cooldown { until_ms, .. } => *until_ms > now_ms,
            _ => true,
        }));
        Ok(out)
    }

    fn apply(&mut self, w: &Write) -> rusqlite::Result<Option<i64>> {
        if matches!(w, Write::Limits { .. }) {
            // Every process checks its own grants under the file's lock: nothing to keep.
            return Ok(None);
        }
        let seq = self.seq()?;
        let me = self.process;
        match w {
            Write::Admit {
                scope,
                at_ms,
                input,
                output,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO admissions (scope, at_ms, input, output, process, seq)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    )?
                    .execute(params![
                        scope,
                        at_ms,
                        to_i64(*input),
                        to_i64(*output),
                        me,
                        seq
                    ])?;
                return Ok(Some(self.conn.last_insert_rowid()));
            }
            Write::Tokens { id, input, output } => {
                self.conn
                    .prepare_cached(
                        "UPDATE admissions SET input = ?2, output = ?3, seq = ?4 WHERE id = ?1",
                    )?
                    .execute(params![id, to_i64(*input), to_i64(*output), seq])?;
            }
            Write::Remove { id } => {
                self.conn
                    .prepare_cached("UPDATE admissions SET gone = 1, seq = ?2 WHERE id = ?1")?
                    .execute(params![id, seq])?;
            }
            Write::Cooldown {
                scope,
                until_ms,
                reason,
            } => {
                self.conn
                    .prepare_cached(
                        "INSERT INTO cooldowns (scope, reason, until_ms, process, seq)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT (scope, reason) DO UPDATE SET
                           process = CASE WHEN excluded.until_ms >= until_ms
                                     THEN excluded.process ELSE process END,
                           until_ms = max(until_ms, excluded.until_ms),
                           seq = excluded.seq",
                    )?
                    .execute(params![scope, reason, until_ms, me, seq])?;
            }
            Write::Learned {
                scope,
                limit,
                at_ms,
            } => {
                let period = i64::try_from(limit.period.as_millis()).unwrap_or(i64::MAX);
                self.conn
                    .prepare_cached(
                        "INSERT INTO learned (scope, dimension, period_ms, amount, at_ms, process, seq)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (scope, dimension, period_ms) DO UPDATE SET
                           amount = excluded.amount, at_ms = excluded.at_ms,
                           process = excluded.process, seq = excluded.seq",
                    )?
                    .execute(params![
                        scope,
                        limit.dimension.as_str(),
                        period,
                        to_i64(limit.amount.get()),
                        at_ms,
                        me,
                        seq
                    ])?;
            }
            Write::Scope {
                scope,
                horizon_ms,
                short_horizon_ms,
                started_ms,
                startup_until_ms,
            } => {
                self.tracker.horizon(scope, *horizon_ms);
                self.conn
                    .prepare_cached(
                        "INSERT INTO scopes (scope, horizon_ms, started_ms, startup_until_ms, process, seq,
                           short_horizon_ms)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                         ON CONFLICT (scope) DO UPDATE SET
                           horizon_ms = max(horizon_ms, excluded.horizon_ms),
                           short_horizon_ms = max(coalesce(short_horizon_ms, 0),
                                                  excluded.short_horizon_ms),
                           started_ms = max(started_ms, excluded.started_ms),
                           process = CASE WHEN excluded.startup_until_ms >= startup_until_ms
                                     THEN excluded.process ELSE process END,
                           startup_until_ms = max(startup_until_ms, excluded.startup_until_ms),
                           seq = excluded.seq",
                    )?
                    .execute(params![
                        scope,
                        horizon_ms,
                        started_ms,
                        startup_until_ms,
                        me,
                        seq,
                        short_horizon_ms
                    ])?;
            }
            Write::Limits { .. } => {}
        }
        Ok(None)
    }

    /// Deletes what no window needs at `now_ms`: admissions (and tombstones) older than their
    /// scope's longest window, cooldowns that ended, learned limits older than a week; and
    /// merges what only day windows still count into buckets.
    fn prune(&mut self, now_ms: i64) -> rusqlite::Result<()> {
        self.tracker.forget(now_ms);
        let groups = compact::plan(&self.conn, now_ms)?;
        if !groups.is_empty() {
            let seq = self.seq()?;
            compact::apply(&self.conn, groups, seq)?;
        }
        self.conn
            .prepare_cached(
                "DELETE FROM admissions WHERE at_ms < ?1 - coalesce(
                   (SELECT horizon_ms FROM scopes s WHERE s.scope = admissions.scope), ?2)",
            )?
            .execute(params![now_ms, DEFAULT_HORIZON_MS])?;
        self.conn
            .prepare_cached("DELETE FROM cooldowns WHERE until_ms < ?1")?
            .execute(params![now_ms])?;
        self.conn
            .prepare_cached("DELETE FROM learned WHERE at_ms < ?1")?
            .execute(params![now_ms.saturating_sub(LEARNED_KEEP_MS)])?;
        Ok(())
    }

    /// How many admission rows (live and released) the file holds: for tests and status.
    pub fn admission_rows(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM admissions", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|n| to_u64(n.unwrap_or(0)))
            .map_err(|e| self.io(e))
    }
}

impl QuotaStore for SqliteStore {
    fn describe(&self) -> String {
        format!("SQLite file {}", self.path.display())
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn begin(&mut self) -> Result<Vec<Change>, StoreError> {
        if self.in_tx {
            self.abort();
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.io(e))?;
        self.in_tx = true;
        self.tx_seq = None;
        match self.pull() {
            Ok(changes) => Ok(changes),
            Err(e) => {
                self.abort();
                Err(self.io(e))
            }
        }
    }

    fn changed_elsewhere(&mut self) -> bool {
        let version = self
            .conn
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut st| st.query_row([], |r| r.get::<_, i64>(0)));
        match version {
            Ok(v) if Some(v) == self.data_version => false,
            Ok(v) => {
                self.data_version = Some(v);
                true
            }
            Err(_) => true,
        }
    }

    fn load_scope(
        &mut self,
        scope: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Change>, StoreError> {
        self.load(scope, since_ms, now_ms).map_err(|e| self.io(e))
    }

    fn status(&mut self, now_ms: i64, periods_ms: &[i64]) -> Result<StoreStatus, StoreError> {
        let scopes = status::read_consistent(&self.conn, self.in_tx, now_ms, periods_ms)
            .map_err(|e| self.io(e))?;
        Ok(status::status(self.describe(), now_ms, scopes))
    }

    fn write(&mut self, write: &Write) -> Result<Option<i64>, StoreError> {
        self.apply(write).map_err(|e| self.io(e))
    }

    fn commit(&mut self, now_ms: i64) -> Result<(), StoreError> {
        if !self.in_tx {
            return Ok(());
        }
        if now_ms.saturating_sub(self.last_prune_ms) >= PRUNE_EVERY_MS {
            if let Err(e) = self.prune(now_ms) {
                tracing::warn!(path = %self.path.display(), error = %e, "pruning the quota store failed");
            }
            self.last_prune_ms = now_ms;
        }
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                self.in_tx = false;
                if let Some(s) = self.tx_seq.take() {
                    self.seen = s;
                }
                Ok(())
            }
            Err(e) => {
                let err = self.io(e);
                self.abort();
                Err(err)
            }
        }
    }

    fn abort(&mut self) {
        if self.in_tx {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.in_tx = false;
        self.tx_seq = None;
    }
}
