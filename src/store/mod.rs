//! Quota state that outlives a process: the [`QuotaStore`] interface behind the quota
//! supervisor, with an in-memory backend (nothing kept: each process on its own, `--state none`)
//! and an embedded SQLite backend (the default for the CLI: one file per user, shared by every
//! process of that user on the machine).
//!
//! The supervisor keeps deciding with its pure [`Ledger`](crate::quota::Ledger); the store is
//! its only way to persistence. Each scheduling pass that may grant runs inside one store
//! transaction: [`begin`](QuotaStore::begin) takes the write lock and returns what other
//! processes changed since this one last looked ([`Change`]s, merged into the ledger by a
//! [`Mirror`]), the ledger decides, the grants are [`write`](QuotaStore::write)n, and only after
//! [`commit`](QuotaStore::commit) are the permits delivered. Settlements, releases, cooldowns
//! and learned limits are written through in the same way, batched. See `docs/store.md`.

mod mirror;
mod path;
pub mod redis;
mod sqlite;
mod status;
mod usage;

use std::fmt;
use std::path::PathBuf;

use crate::quota::{Dimension, Limit};

pub use mirror::{Mirror, instant_of_ms, wall_ms};
pub use path::default_state_path;
pub use redis::RedisStore;
pub use sqlite::SqliteStore;
pub use status::{CooldownStored, LearnedStored, ScopeStored, StoreStatus, WindowUse, rfc3339};
pub use usage::{DEFAULT_KEEP_MS, SqliteUsageStore, UsageRecord, UsageStore};

/// Where quota state lives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum StoreSpec {
    /// In this process's memory only: forgotten when it exits (`--state none`).
    #[default]
    Memory,
    /// An SQLite file shared by every process that names it.
    Sqlite(PathBuf),
    /// A Redis database shared by every process (on any machine) that names it.
    Redis {
        /// `redis://[:password@]host[:port][/db][?prefix=name]` (or `rediss://`).
        url: String,
        /// When the server cannot be reached, enforce limits per process (with a loud
        /// warning) instead of granting nothing.
        fail_open_local: bool,
    },
}

impl StoreSpec {
    /// `none` (any case) is the in-memory store; a `redis://` or `rediss://` URL a Redis
    /// database; anything else is the path of an SQLite file.
    pub fn parse(text: &str) -> StoreSpec {
        let t = text.trim();
        if t.eq_ignore_ascii_case("none") {
            StoreSpec::Memory
        } else if is_redis_url(t) {
            StoreSpec::Redis {
                url: t.to_owned(),
                fail_open_local: false,
            }
        } else {
            StoreSpec::Sqlite(PathBuf::from(text))
        }
    }

    /// The default: the SQLite file at the per-user state path ([`default_state_path`]), or
    /// the in-memory store when no home directory is known.
    pub fn default_for_user() -> StoreSpec {
        default_state_path().map_or(StoreSpec::Memory, StoreSpec::Sqlite)
    }

    /// Opens the store (creating the SQLite file and its directory when missing).
    pub fn open(&self) -> Result<Box<dyn QuotaStore>, StoreError> {
        match self {
            StoreSpec::Memory => Ok(Box::new(MemoryStore)),
            StoreSpec::Sqlite(path) => Ok(Box::new(SqliteStore::open(path)?)),
            StoreSpec::Redis {
                url,
                fail_open_local,
            } => Ok(Box::new(RedisStore::open(url, *fail_open_local)?)),
        }
    }

    /// Opens the usage ledger kept with the quota state (`None` for the in-memory store,
    /// which keeps no usage).
    pub fn open_usage(&self) -> Result<Option<Box<dyn UsageStore>>, StoreError> {
        match self {
            StoreSpec::Memory => Ok(None),
            StoreSpec::Sqlite(path) => Ok(Some(Box::new(SqliteUsageStore::open(path)?))),
            StoreSpec::Redis { url, .. } => {
                Ok(Some(Box::new(redis::usage::RedisUsage::open(url)?)))
            }
        }
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("in memory (nothing kept across processes)"),
            StoreSpec::Sqlite(p) => write!(f, "SQLite file {}", p.display()),
            StoreSpec::Redis {
                url,
                fail_open_local,
            } => {
                write!(f, "Redis {}", redis::url::mask(url))?;
                if *fail_open_local {
                    f.write_str(" (fail_open_local: per-process limits while it is unreachable)")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether `text` is a Redis URL (`redis://` or `rediss://`, any case).
pub fn is_redis_url(text: &str) -> bool {
    let t = text.trim_start().to_ascii_lowercase();
    t.starts_with("redis://") || t.starts_with("rediss://")
}

/// A store that could not be opened, read or written.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store at `path` could not be opened (or its schema created).
    #[error("cannot open the quota state store {path}: {reason}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A read or write failed (busy past the timeout, disk full, file removed...).
    #[error("the quota state store {path} failed: {reason}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A shared store refused the pass's grants: another process admitted first (or the
    /// server's clock runs a little ahead of this process's view). Nothing was written.
    #[error(
        "the quota state store refused a grant: the limit is reached there until {retry_at_ms} ms"
    )]
    Conflict {
        /// When the blocking request fits on the store, wall-clock ms of this process (the
        /// latest of `holds`).
        retry_at_ms: i64,
        /// Each blocking scope and when the request fits there (wall-clock ms, local clock).
        holds: Vec<(String, i64)>,
    },
}

/// A limit as a shared store checks it: the effective amount of `dimension` in any trailing
/// window of `window_ms` (the limit's period plus its window guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowLimit {
    /// What is counted.
    pub dimension: Dimension,
    /// How much.
    pub amount: u64,
    /// The window with its guard, ms.
    pub window_ms: i64,
}

/// Something another process (or an earlier run) changed in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An admission, new or with changed tokens (settled or topped up), or a bucket: the
    /// admissions of one process and minute that left every window shorter than a day, merged
    /// at the minute's end (the store first sends a `Removed` for each row it replaced).
    Admission {
        /// The row's id, unique in the store.
        id: i64,
        /// The scope's name.
        scope: String,
        /// When it was admitted, wall-clock milliseconds since the Unix epoch.
        at_ms: i64,
        /// How many requests it holds (1 for an admission; a bucket's count).
        requests: u64,
        /// Input tokens it holds (estimate, then settled).
        input: u64,
        /// Output tokens it holds.
        output: u64,
    },
    /// An admission released (not counted by the provider, or never sent).
    Removed {
        /// The row's id.
        id: i64,
    },
    /// A scope cools down until `until_ms` (a 429, a daily quota, another process's startup).
    Cooldown {
        /// The scope's name.
        scope: String,
        /// Wall-clock milliseconds.
        until_ms: i64,
        /// Why.
        reason: String,
    },
    /// A limit learned from a provider.
    Learned {
        /// The scope's name.
        scope: String,
        /// The limit.
        limit: Limit,
    },
}

/// What the supervisor writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A new admission (one row per scope of a reservation); its row id is returned.
    Admit {
        /// The scope's name.
        scope: String,
        /// Wall-clock milliseconds, rounded up.
        at_ms: i64,
        /// Input tokens reserved.
        input: u64,
        /// Output tokens reserved.
        output: u64,
    },
    /// An admission's tokens changed (settled, topped up).
    Tokens {
        /// The row.
        id: i64,
        /// Input tokens now.
        input: u64,
        /// Output tokens now.
        output: u64,
    },
    /// An admission released: out of every window.
    Remove {
        /// The row.
        id: i64,
    },
    /// A cooldown (the latest end per scope and reason is kept).
    Cooldown {
        /// The scope's name.
        scope: String,
        /// Wall-clock milliseconds.
        until_ms: i64,
        /// Why.
        reason: String,
    },
    /// A learned limit.
    Learned {
        /// The scope's name.
        scope: String,
        /// The limit.
        limit: Limit,
        /// When it was learned, wall-clock milliseconds.
        at_ms: i64,
    },
    /// A scope started in this process: its longest window (for pruning), its longest window
    /// shorter than a day (for compaction) and its startup cooldown's end (the
    /// startup-cooldown clock other processes respect).
    Scope {
        /// The scope's name.
        scope: String,
        /// Its longest window with guard, in milliseconds.
        horizon_ms: i64,
        /// Its longest window shorter than a day, with guard, in milliseconds (0 when it has
        /// none). Only windows of a day or more count older admissions: the store merges them
        /// into buckets when the scope has such a window (`horizon_ms` is longer).
        short_horizon_ms: i64,
        /// Wall-clock milliseconds.
        started_ms: i64,
        /// Wall-clock milliseconds.
        startup_until_ms: i64,
    },
    /// The limits a scope enforces now (at registration and whenever one changes): a store
    /// that checks admissions itself (Redis) needs them; others ignore it. Not a change of
    /// state: it may be written outside a transaction.
    Limits {
        /// The scope's name.
        scope: String,
        /// Every effective limit with its window.
        limits: Vec<WindowLimit>,
    },
}

/// The supervisor's only way to persistence. Every method is called from the supervisor's own
/// thread; `begin` .. `commit` (or `abort`) bracket one transaction holding the store's write
/// lock, so what a process decides between them is decided on data no other process can change
/// meanwhile.
pub trait QuotaStore: Send {
    /// Which store this is, for `--validate` and logs.
    fn describe(&self) -> String;

    /// Whether other processes may share this store (the supervisor then makes every grant
    /// durable before delivering it). `false` for the in-memory store: the supervisor behaves
    /// exactly as it did without a store.
    fn is_shared(&self) -> bool;

    /// Starts a transaction holding the write lock, and returns what other processes changed
    /// since the last `begin` of this store.
    fn begin(&mut self) -> Result<Vec<Change>, StoreError>;

    /// Whether another process may have written since this store last looked (cheap, no
    /// lock; `true` when unsure).
    fn changed_elsewhere(&mut self) -> bool {
        true
    }

    /// Inside a transaction: everything other processes hold for `scope` (admissions since
    /// `since_ms`, cooldowns not over at `now_ms`, learned limits, a startup cooldown).
    fn load_scope(
        &mut self,
        scope: &str,
        since_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<Change>, StoreError>;

    /// Inside a transaction: one write; an [`Write::Admit`] returns the new row's id.
    fn write(&mut self, write: &Write) -> Result<Option<i64>, StoreError>;

    /// Commits the transaction (and now and then prunes state older than every window at
    /// `now_ms`). Once it returned `Ok`, what was written is durable.
    fn commit(&mut self, now_ms: i64) -> Result<(), StoreError>;

    /// Abandons the transaction: nothing written in it is kept.
    fn abort(&mut self);

    /// What the store holds now (`now_ms`, wall clock), per scope: admissions summed over each
    /// of `periods_ms` ending now, cooldowns not over, learned limits, startup cooldown. Reads
    /// only: takes no write lock, so other processes' passes go on meanwhile.
    fn status(&mut self, now_ms: i64, periods_ms: &[i64]) -> Result<StoreStatus, StoreError>;
}

/// Today's behaviour: nothing kept, nothing shared.
#[derive(Debug, Default)]
pub struct MemoryStore;

impl QuotaStore for MemoryStore {
    fn describe(&self) -> String {
        StoreSpec::Memory.to_string()
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn begin(&mut self) -> Result<Vec<Change>, StoreError> {
        Ok(Vec::new())
    }

    fn load_scope(&mut self, _: &str, _: i64, _: i64) -> Result<Vec<Change>, StoreError> {
        Ok(Vec::new())
    }

    fn write(&mut self, _: &Write) -> Result<Option<i64>, StoreError> {
        Ok(None)
    }

    fn commit(&mut self, _: i64) -> Result<(), StoreError> {
        Ok(())
    }

    fn abort(&mut self) {}

    fn status(&mut self, now_ms: i64, _: &[i64]) -> Result<StoreStatus, StoreError> {
        Ok(StoreStatus::empty(self.describe(), false, now_ms))
    }
}

#[cfg(test)]
mod tests;
