//! The usage ledger's records and where they are kept: [`UsageRecord`] (one provider call),
//! the [`UsageStore`] interface, and [`SqliteUsageStore`], a `usage` table in the quota state
//! file (its own connection: WAL, `synchronous=NORMAL`, the same busy timeout).
//!
//! Records are kept [`DEFAULT_KEEP_MS`] (400 days) and pruned at most once a minute by whichever
//! process appends. Writing them without slowing a call is the job of
//! [`UsageLedger`](crate::usage::UsageLedger).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use super::StoreError;
use super::sqlite::BUSY_TIMEOUT;

/// How long usage records are kept by default: 400 days (a year and a bit, so a year's bills
/// can be compared month by month).
pub const DEFAULT_KEEP_MS: i64 = 400 * 86_400_000;

/// How often (wall-clock milliseconds) an append also prunes records past their keep.
const PRUNE_EVERY_MS: i64 = 60_000;

/// One provider call, as the usage ledger keeps it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UsageRecord {
    /// Wall-clock ms since the epoch, when the call ended.
    pub at_ms: i64,
    /// The run that made the call.
    pub run_id: String,
    /// The agent that made the call.
    pub agent: String,
    /// The provider, e.g. "openai", "gemini", "claude", "simulated".
    pub provider: String,
    /// The model asked for.
    pub model: String,
    /// Key fingerprint (never the key), "" when none.
    pub key: String,
    /// Input tokens the provider reported (0 when it reported none: see `outcome`).
    pub input_tokens: u64,
    /// Output tokens the provider reported (0 when it reported none: see `outcome`).
    pub output_tokens: u64,
    /// From the price table; `None` when the model is unknown.
    pub cost_usd: Option<f64>,
    /// "ok", "ok:usage_unreported", "rate_limited", "error:<kind>", "cancelled".
    pub outcome: String,
    /// How long the call took.
    pub latency_ms: u64,
}

/// Where usage records are kept (the same place as the quota state).
pub trait UsageStore: Send {
    /// Appends records (one transaction / round trip for the batch).
    fn append(&mut self, records: &[UsageRecord]) -> Result<(), StoreError>;
    /// Every record with `at_ms >= since_ms`, oldest first.
    fn since(&mut self, since_ms: i64) -> Result<Vec<UsageRecord>, StoreError>;
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    run_id TEXT NOT NULL,
    agent TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    key TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd REAL,
    outcome TEXT NOT NULL,
    latency_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_by_time ON usage (at_ms);
";

/// The usage ledger in an SQLite file (the quota state file).
pub struct SqliteUsageStore {
    conn: Connection,
    path: PathBuf,
    keep_ms: i64,
    last_prune_ms: i64,
}

impl std::fmt::Debug for SqliteUsageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteUsageStore")
            .field("path", &self.path)
            .field("keep_ms", &self.keep_ms)
            .finish_non_exhaustive()
    }
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl SqliteUsageStore {
    /// Opens (or creates) the ledger in the file at `path`, creating its directory when
    /// missing; records are kept [`DEFAULT_KEEP_MS`].
    pub fn open(path: &Path) -> Result<SqliteUsageStore, StoreError> {
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
        conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;"))
            .map_err(|e| fail(e.to_string()))?;
        Ok(SqliteUsageStore {
            conn,
            path: path.to_path_buf(),
            keep_ms: DEFAULT_KEEP_MS,
            last_prune_ms: 0,
        })
    }

    /// Keeps records `keep_ms` instead of [`DEFAULT_KEEP_MS`].
    pub fn with_keep_ms(mut self, keep_ms: i64) -> Self {
        self.keep_ms = keep_ms.max(0);
        self
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

    fn append_tx(&mut self, records: &[UsageRecord], now_ms: i64) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO usage (at_ms, run_id, agent, provider, model, key, input_tokens,
                 output_tokens, cost_usd, outcome, latency_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for r in records {
                st.execute(params![
                    r.at_ms,
                    r.run_id,
                    r.agent,
                    r.provider,
                    r.model,
                    r.key,
                    to_i64(r.input_tokens),
                    to_i64(r.output_tokens),
                    r.cost_usd.filter(|c| c.is_finite()),
                    r.outcome,
                    to_i64(r.latency_ms),
                ])?;
            }
        }
        if now_ms.saturating_sub(self.last_prune_ms) >= PRUNE_EVERY_MS {
            tx.execute(
                "DELETE FROM usage WHERE at_ms < ?1",
                params![now_ms.saturating_sub(self.keep_ms)],
            )?;
        }
        tx.commit()
    }
}

impl UsageStore for SqliteUsageStore {
    fn append(&mut self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        match self.append_tx(records, now_ms) {
            Ok(()) => {
                if now_ms.saturating_sub(self.last_prune_ms) >= PRUNE_EVERY_MS {
                    self.last_prune_ms = now_ms;
                }
                Ok(())
            }
            Err(e) => Err(self.io(e)),
        }
    }

    fn since(&mut self, since_ms: i64) -> Result<Vec<UsageRecord>, StoreError> {
        let read = || -> rusqlite::Result<Vec<UsageRecord>> {
            let mut st = self.conn.prepare_cached(
                "SELECT at_ms, run_id, agent, provider, model, key, input_tokens, output_tokens,
                 cost_usd, outcome, latency_ms FROM usage WHERE at_ms >= ?1 ORDER BY at_ms, id",
            )?;
            let rows = st.query_map(params![since_ms], |r| {
                Ok(UsageRecord {
                    at_ms: r.get(0)?,
                    run_id: r.get(1)?,
                    agent: r.get(2)?,
                    provider: r.get(3)?,
                    model: r.get(4)?,
                    key: r.get(5)?,
                    input_tokens: to_u64(r.get(6)?),
                    output_tokens: to_u64(r.get(7)?),
                    cost_usd: r.get(8)?,
                    outcome: r.get(9)?,
                    latency_ms: to_u64(r.get(10)?),
                })
            })?;
            rows.collect()
        };
        read().map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    pub(crate) fn record(at_ms: i64, agent: &str) -> UsageRecord {
        UsageRecord {
            at_ms,
            run_id: "r1".into(),
            agent: agent.into(),
            provider: "openai".into(),
            model: "gpt-4o-mini".into(),
            key: "****abcd#12345678".into(),
            input_tokens: 100,
            output_tokens: 20,
            cost_usd: Some(0.000_027),
            outcome: "ok".into(),
            latency_ms: 340,
        }
    }

    #[test]
    fn appends_and_reads_back_in_time_order_from_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("state.db");
        let mut a = SqliteUsageStore::open(&path).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        let mut unknown = record(now - 10, "b");
        unknown.cost_usd = None;
        a.append(&[record(now - 5, "a"), unknown.clone()]).unwrap();
        let mut b = SqliteUsageStore::open(&path).unwrap();
        let all = b.since(0).unwrap();
        assert_eq!(all, vec![unknown, record(now - 5, "a")]);
        assert_eq!(b.since(now - 5).unwrap().len(), 1);
        assert!(b.since(now + 1).unwrap().is_empty());
    }

    #[test]
    fn records_past_their_keep_are_pruned_on_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let now = chrono::Utc::now().timestamp_millis();
        let mut s = SqliteUsageStore::open(&path).unwrap().with_keep_ms(60_000);
        // Older than the keep: gone with this very append (the first append prunes).
        s.append(&[record(now - 120_000, "old"), record(now, "new")])
            .unwrap();
        let left: Vec<String> = s.since(0).unwrap().into_iter().map(|r| r.agent).collect();
        assert_eq!(left, vec!["new".to_owned()]);
    }

    #[test]
    fn shares_the_file_with_the_quota_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let _quota = crate::store::SqliteStore::open(&path).unwrap();
        let mut usage = SqliteUsageStore::open(&path).unwrap();
        usage
            .append(&[record(chrono::Utc::now().timestamp_millis(), "a")])
            .unwrap();
        let _again = crate::store::SqliteStore::open(&path).unwrap();
        assert_eq!(usage.since(0).unwrap().len(), 1);
    }
}
