//! The tables of the SQLite store, and the upgrade of a file an earlier version created.

use rusqlite::Connection;

/// The schema version this code writes.
const VERSION: i64 = 2;

/// Every table (created when missing).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (k, v) VALUES ('seq', 0), ('schema', 2);
CREATE TABLE IF NOT EXISTS admissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    scope TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    requests INTEGER NOT NULL DEFAULT 1,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    gone INTEGER NOT NULL DEFAULT 0,
    process INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    bucket INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS admissions_by_seq ON admissions (seq);
CREATE INDEX IF NOT EXISTS admissions_by_scope ON admissions (scope, at_ms);
CREATE TABLE IF NOT EXISTS cooldowns (
    scope TEXT NOT NULL,
    reason TEXT NOT NULL,
    until_ms INTEGER NOT NULL,
    process INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (scope, reason)
);
CREATE TABLE IF NOT EXISTS learned (
    scope TEXT NOT NULL,
    dimension TEXT NOT NULL,
    period_ms INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    process INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (scope, dimension, period_ms)
);
CREATE TABLE IF NOT EXISTS scopes (
    scope TEXT PRIMARY KEY,
    horizon_ms INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,
    startup_until_ms INTEGER NOT NULL,
    process INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    short_horizon_ms INTEGER
);
";

fn has_column(conn: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    let mut st = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let names = st.query_map([], |r| r.get::<_, String>(1))?;
    for name in names {
        if name? == column {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Creates the tables, and adds what version 2 added to a version-1 file (bucket rows of
/// compacted day windows; each scope's shorter windows). In a transaction holding the write
/// lock.
pub(super) fn create(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    if !has_column(conn, "admissions", "bucket")? {
        conn.execute_batch("ALTER TABLE admissions ADD COLUMN bucket INTEGER NOT NULL DEFAULT 0")?;
    }
    if !has_column(conn, "scopes", "short_horizon_ms")? {
        // Unknown for scopes an earlier version described: their admissions are not compacted.
        conn.execute_batch("ALTER TABLE scopes ADD COLUMN short_horizon_ms INTEGER")?;
    }
    conn.execute(
        "UPDATE meta SET v = ?1 WHERE k = 'schema' AND v < ?1",
        [VERSION],
    )?;
    Ok(())
}
