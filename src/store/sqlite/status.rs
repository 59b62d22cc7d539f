//! What the SQLite file holds, read in one deferred (read-only) transaction: consistent sums,
//! and no write lock, so other processes' scheduling passes go on meanwhile.

use std::collections::BTreeMap;
use std::path::Path;

use rusqlite::{Connection, OpenFlags, params};

use super::super::{
    CooldownStored, LearnedStored, ScopeStored, StoreError, StoreStatus, WindowUse,
};
use super::{BUSY_TIMEOUT, SqliteStore, Tracker, to_u64};

impl SqliteStore {
    /// Opens the store at `path` for reading only, to report what it holds (`--validate`):
    /// `None` when no file is there (nothing is created), and never takes the write lock.
    pub fn open_existing(path: &Path) -> Result<Option<SqliteStore>, StoreError> {
        if !path.exists() {
            return Ok(None);
        }
        let fail = |reason: String| StoreError::Open {
            path: path.to_path_buf(),
            reason,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| fail(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| fail(e.to_string()))?;
        Ok(Some(SqliteStore {
            conn,
            path: path.to_path_buf(),
            process: 0,
            seen: 0,
            tx_seq: None,
            in_tx: false,
            last_prune_ms: 0,
            data_version: None,
            tracker: Tracker::default(),
        }))
    }
}

fn entry(map: &mut BTreeMap<String, ScopeStored>, scope: String) -> &mut ScopeStored {
    map.entry(scope.clone()).or_insert_with(|| ScopeStored {
        scope,
        ..ScopeStored::default()
    })
}

/// Every scope's stored state at `now_ms`, with admissions summed over each of `periods_ms`
/// (the window `(now - period, now]`). Call inside a read transaction.
pub(super) fn read(
    conn: &Connection,
    now_ms: i64,
    periods_ms: &[i64],
) -> rusqlite::Result<Vec<ScopeStored>> {
    let mut map: BTreeMap<String, ScopeStored> = BTreeMap::new();
    let mut st =
        conn.prepare_cached("SELECT scope, startup_until_ms FROM scopes ORDER BY scope")?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let until: i64 = r.get(1)?;
        entry(&mut map, r.get(0)?).startup_until_ms = (until > now_ms).then_some(until);
    }
    drop(rows);
    let mut st = conn.prepare_cached(
        "SELECT scope, sum(CASE WHEN gone = 0 THEN requests ELSE 0 END), count(*)
         FROM admissions GROUP BY scope",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let s = entry(&mut map, r.get(0)?);
        s.admissions = to_u64(r.get(1)?);
        s.rows = to_u64(r.get(2)?);
    }
    drop(rows);
    let mut periods = periods_ms.to_vec();
    periods.sort_unstable();
    periods.dedup();
    let mut st = conn.prepare_cached(
        "SELECT scope, sum(requests), sum(input), sum(output) FROM admissions
         WHERE gone = 0 AND at_ms > ?1 GROUP BY scope",
    )?;
    let mut windows: Vec<(i64, BTreeMap<String, WindowUse>)> = Vec::new();
    for &period in &periods {
        let mut found = BTreeMap::new();
        let mut rows = st.query([now_ms.saturating_sub(period)])?;
        while let Some(r) = rows.next()? {
            let w = WindowUse {
                period_ms: period,
                requests: to_u64(r.get(1)?),
                input_tokens: to_u64(r.get(2)?),
                output_tokens: to_u64(r.get(3)?),
            };
            found.insert(r.get::<_, String>(0)?, w);
        }
        windows.push((period, found));
    }
    let mut st = conn.prepare_cached(
        "SELECT scope, reason, until_ms FROM cooldowns WHERE until_ms > ?1
         ORDER BY scope, until_ms",
    )?;
    let mut rows = st.query(params![now_ms])?;
    while let Some(r) = rows.next()? {
        let c = CooldownStored::new(r.get(1)?, r.get(2)?);
        entry(&mut map, r.get(0)?).cooldowns.push(c);
    }
    drop(rows);
    let mut st = conn.prepare_cached(
        "SELECT scope, dimension, amount, period_ms FROM learned ORDER BY scope, period_ms",
    )?;
    let mut rows = st.query([])?;
    while let Some(r) = rows.next()? {
        let l = LearnedStored {
            dimension: r.get(1)?,
            amount: to_u64(r.get(2)?),
            period_ms: r.get(3)?,
        };
        entry(&mut map, r.get(0)?).learned.push(l);
    }
    drop(rows);
    // Every scope gets every period, zero when nothing is inside it.
    for (name, s) in &mut map {
        for (period, found) in &mut windows {
            s.windows.push(found.remove(name).unwrap_or(WindowUse {
                period_ms: *period,
                ..WindowUse::default()
            }));
        }
    }
    Ok(map.into_values().collect())
}

/// [`read`] in a deferred transaction of its own (unless one is open): every sum is taken from
/// one snapshot of the file.
pub(super) fn read_consistent(
    conn: &Connection,
    in_tx: bool,
    now_ms: i64,
    periods_ms: &[i64],
) -> rusqlite::Result<Vec<ScopeStored>> {
    if in_tx {
        return read(conn, now_ms, periods_ms);
    }
    conn.execute_batch("BEGIN DEFERRED")?;
    let out = read(conn, now_ms, periods_ms);
    // A read transaction: ending it keeps nothing either way.
    let end = conn.execute_batch(if out.is_ok() { "COMMIT" } else { "ROLLBACK" });
    let out = out?;
    end?;
    Ok(out)
}

/// The status document of `scopes`.
pub(super) fn status(store: String, now_ms: i64, scopes: Vec<ScopeStored>) -> StoreStatus {
    StoreStatus {
        store,
        shared: true,
        at_ms: now_ms,
        scopes,
    }
}
