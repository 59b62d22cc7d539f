//! [`RedisStore`]: quota state in Redis, shared by processes on any number of machines.
//!
//! Every pass's writes go to the server in one Lua script (`commit.lua`) that checks every
//! admission against every window of its scope on the server's own clock and applies all of
//! the pass or nothing: the server is the authority, so no lock is held between a process's
//! read and its write. A pass that lost a race is refused with the earliest server instant at
//! which its blocking request fits ([`StoreError::Conflict`]); the supervisor holds the scope
//! until then and passes again with what the other processes admitted.
//!
//! The reservation path uses one synchronous connection (the supervisor calls the store from
//! its own thread, as it does SQLite); the wake-up listener runs on a small tokio runtime of
//! its own. See `docs/store.md`.

mod clock;
mod listener;
mod pass;
mod quota_store;
mod status;
pub mod url;
pub mod usage;
mod wire;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Commands, Value};

use super::{StoreError, WindowLimit, Write};
use clock::Clock;

/// How long opening a connection may take (the supervisor's thread waits meanwhile).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// While the server is unreachable, how often a pass tries to connect again (the passes in
/// between fail at once instead of waiting for a connection timeout each).
const RECONNECT_EVERY: Duration = Duration::from_secs(1);
/// How long one command may take before the connection is dropped (and the pass fails).
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the change stream keeps entries: a process that read nothing for longer reloads
/// the state of its scopes instead (nothing is missed either way).
const STREAM_KEEP_MS: i64 = 10 * 60_000;
/// Loud warnings while running on per-process limits (`fail_open_local`) repeat this often.
const WARN_EVERY: Duration = Duration::from_secs(30);
/// How long `begin` may go without reading the change stream while the listener heard nothing
/// (a safety net: a lost wake-up costs at most this much staleness, never exactness).
const PULL_AT_LEAST_EVERY: Duration = Duration::from_millis(500);
/// Every how many commits this process's own admissions that left every window are forgotten.
const FORGET_EVERY: u32 = 512;

const COMMIT: &str = include_str!("commit.lua");
const LOAD: &str = include_str!("load.lua");
const RESTORE: &str = include_str!("restore.lua");

/// One of this process's own live admissions (re-written if the server lost its state).
#[derive(Debug, Clone)]
pub(super) struct Own {
    pub(super) scope: String,
    /// Server ms.
    pub(super) at: i64,
    pub(super) input: u64,
    pub(super) output: u64,
}

struct Scripts {
    commit: redis::Script,
    load: redis::Script,
    restore: redis::Script,
}

/// Quota state in a Redis database.
pub struct RedisStore {
    /// The URL with its password masked.
    shown: String,
    client: redis::Client,
    conn: Option<redis::Connection>,
    /// `{prefix}`: every key starts with it (one hash tag: one slot on a cluster).
    tag: String,
    stream: String,
    process: i64,
    counter: u32,
    epoch: String,
    /// The stream id and sequence number up to which this process has read.
    last_id: String,
    seen_seq: i64,
    /// Writes of the open pass, and the ids of its admissions.
    buffer: Vec<Write>,
    admit_ids: Vec<i64>,
    limits: HashMap<String, Vec<WindowLimit>>,
    /// Every scope this process loaded, with its horizon (ms).
    horizons: HashMap<String, i64>,
    own: HashMap<i64, Own>,
    clock: Clock,
    flags: listener::Flags,
    /// Read the change stream at the next `begin` even if the listener heard nothing (a
    /// refused commit: the others' admissions are needed now), and when it was last read.
    must_pull: bool,
    last_pull: Option<Instant>,
    _listener: Option<listener::Listener>,
    fail_open_local: bool,
    /// Running on per-process limits since this instant (`fail_open_local` only).
    degraded: Option<Instant>,
    last_warn: Option<Instant>,
    /// The last failed attempt to connect, and why it failed.
    last_attempt: Option<(Instant, String)>,
    /// Reload every scope's state at the next `begin` (a gap in the stream, an outage).
    resync: bool,
    commits: u32,
    scripts: Arc<Scripts>,
    /// The server instant of the last commit script (ms), and what it refused, if it did
    /// (scope and server instant at which the request fits there).
    last_server_ms: i64,
    last_refused: Vec<(String, i64)>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .field("process", &self.process)
            .field("seen_seq", &self.seen_seq)
            .finish_non_exhaustive()
    }
}

fn bulk(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn num(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => bulk(other).and_then(|s| s.parse().ok()),
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db][?prefix=name]`).
    /// With `fail_open_local`, an unreachable server is not an error: the store starts on
    /// per-process limits and joins the server when it answers.
    pub fn open(url: &str, fail_open_local: bool) -> Result<RedisStore, StoreError> {
        let shown = url::mask(url);
        let fail = |reason: String| StoreError::Open {
            path: PathBuf::from(&shown),
            reason,
        };
        let (client_url, prefix) = url::split_prefix(url);
        let client = redis::Client::open(client_url.as_str())
            .map_err(|e| fail(format!("not a Redis URL: {e}")))?;
        let tag = format!("{{{prefix}}}");
        let stream = format!("{tag}:changes");
        let mut store = RedisStore {
            shown: shown.clone(),
            client,
            conn: None,
            stream,
            process: 0,
            counter: 0,
            epoch: String::new(),
            last_id: "0-0".to_owned(),
            seen_seq: 0,
            buffer: Vec::new(),
            admit_ids: Vec::new(),
            limits: HashMap::new(),
            horizons: HashMap::new(),
            own: HashMap::new(),
            clock: Clock::new(),
            flags: listener::Flags::default(),
            must_pull: true,
            last_pull: None,
            _listener: None,
            fail_open_local,
            degraded: None,
            last_warn: None,
            last_attempt: None,
            resync: false,
            commits: 0,
            last_server_ms: 0,
            last_refused: Vec::new(),
            scripts: Arc::new(Scripts {
                commit: redis::Script::new(COMMIT),
                load: redis::Script::new(LOAD),
                restore: redis::Script::new(RESTORE),
            }),
            tag,
        };
        match store.join() {
            Ok(()) => {}
            Err(e) if fail_open_local => {
                // Far above the ids the server hands out, so they never collide.
                store.process = i64::from(fastrand::u32(1 << 30..1 << 31));
                store.degrade(&e);
            }
            Err(e) => return Err(fail(format!("Redis unreachable: {e}"))),
        }
        store._listener = listener::spawn(
            store.client.clone(),
            format!("{}:wake", store.tag),
            store.process.to_string(),
            store.flags.clone(),
        );
        Ok(store)
    }

    /// The URL with its password masked.
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// This process's id among the store's writers.
    pub fn process(&self) -> i64 {
        self.process
    }

    /// The server's clock (ms) when the last commit script ran: what it checked against.
    pub fn last_server_ms(&self) -> i64 {
        self.last_server_ms
    }

    /// What the last commit refused: each blocking scope and the server instant (ms) at which
    /// its request fits there. Empty when it applied.
    pub fn last_refused(&self) -> &[(String, i64)] {
        &self.last_refused
    }

    /// Whether the store runs on per-process limits now (`fail_open_local` during an outage).
    pub fn degraded(&self) -> bool {
        self.degraded.is_some()
    }

    fn key(&self, name: &str) -> String {
        format!("{}:{name}", self.tag)
    }

    fn connect(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.conn.is_none() {
            let c = self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
            c.set_read_timeout(Some(IO_TIMEOUT))?;
            c.set_write_timeout(Some(IO_TIMEOUT))?;
            self.conn = Some(c);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "no connection",
            ))),
        }
    }

    /// Connects and takes this process's place: a process id (first time), the epoch, where
    /// the change stream stands, the clock offset; after an outage also re-writes this
    /// process's live admissions and reloads every scope.
    fn join(&mut self) -> redis::RedisResult<()> {
        let first = self.epoch.is_empty();
        let (process_key, epoch_key, stream) =
            (self.key("process"), self.key("epoch"), self.stream.clone());
        let fresh_epoch = format!("{:016x}", fastrand::u64(..));
        let clock = self.clock;
        let need_process = self.process == 0;
        let conn = self.connect()?;
        let before = clock.floor_ms();
        let time: (i64, i64) = redis::cmd("TIME").query(conn)?;
        let after = clock.ceil_ms();
        let process: i64 = if need_process {
            conn.incr(&process_key, 1)?
        } else {
            0
        };
        let _: Value = redis::cmd("SET")
            .arg(&epoch_key)
            .arg(&fresh_epoch)
            .arg("NX")
            .query(conn)?;
        let epoch: Option<String> = conn.get(&epoch_key)?;
        let last: Value = redis::cmd("XREVRANGE")
            .arg(&stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query(conn)?;
        let server_ms = time.0 * 1000 + (time.1 + 999) / 1000;
        self.clock.measure(before, after, server_ms);
        if need_process {
            self.process = process;
        }
        let epoch = epoch.unwrap_or_default();
        if first {
            if let Some((id, seq)) = pass::stream_head(&last) {
                self.last_id = id;
                self.seen_seq = seq;
            }
        } else if epoch != self.epoch {
            tracing::warn!(store = %self.shown, "the Redis quota store lost its state: this process's admissions are written again");
        }
        self.epoch = epoch;
        if !self.own.is_empty() {
            self.restore()?;
        }
        // Whatever happened while this process could not read (a restart, an outage) is
        // reloaded scope by scope.
        self.resync = !self.horizons.is_empty();
        self.must_pull = true;
        Ok(())
    }

    /// Re-writes this process's live admissions (idempotent by id) and adopts the epoch.
    fn restore(&mut self) -> redis::RedisResult<()> {
        let rows: Vec<serde_json::Value> = self
            .own
            .iter()
            .map(|(id, o)| serde_json::json!([id.to_string(), o.scope, o.at, o.input, o.output]))
            .collect();
        let fresh = format!("{:016x}", fastrand::u64(..));
        let (tag, stream) = (self.tag.clone(), self.stream.clone());
        let data = serde_json::Value::Array(rows).to_string();
        let me = self.process;
        let scripts = Arc::clone(&self.scripts);
        let conn = self.connect()?;
        let epoch: String = scripts
            .restore
            .key(&stream)
            .arg(&tag)
            .arg(&fresh)
            .arg(&data)
            .arg(me)
            .invoke(conn)?;
        self.epoch = epoch;
        Ok(())
    }

    /// A failure of the server: the connection is dropped (the next call reconnects).
    fn failed(&mut self, e: &redis::RedisError) -> StoreError {
        self.conn = None;
        StoreError::Io {
            path: PathBuf::from(&self.shown),
            reason: format!("Redis unreachable or failing: {e}"),
        }
    }

    /// Switches to per-process limits (`fail_open_local`), warning loudly at most every 30 s.
    fn degrade(&mut self, e: &dyn std::fmt::Display) {
        self.conn = None;
        let now = Instant::now();
        if self.degraded.is_none() {
            self.degraded = Some(now);
        }
        if self
            .last_warn
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            self.last_warn = Some(now);
            tracing::warn!(store = %self.shown, error = %e, "the Redis quota store is unreachable: limits are enforced per process (fail_open_local) until it answers; other processes' use is not counted");
        }
    }

    /// Reconnects after a failure. `Ok(false)`: still unreachable but running on local limits.
    fn ensure(&mut self) -> Result<bool, StoreError> {
        if self.conn.is_some() {
            return Ok(true);
        }
        if let Some((at, why)) = &self.last_attempt {
            if at.elapsed() < RECONNECT_EVERY {
                if self.fail_open_local {
                    return Ok(false);
                }
                return Err(StoreError::Io {
                    path: PathBuf::from(&self.shown),
                    reason: format!("Redis unreachable or failing: {why}"),
                });
            }
        }
        match self.join() {
            Ok(()) => {
                self.last_attempt = None;
                if self.degraded.take().is_some() {
                    self.last_warn = None;
                    tracing::warn!(store = %self.shown, "the Redis quota store answers again: limits are shared again");
                }
                Ok(true)
            }
            Err(e) => {
                self.last_attempt = Some((Instant::now(), e.to_string()));
                if self.fail_open_local {
                    self.degrade(&e);
                    Ok(false)
                } else {
                    Err(self.failed(&e))
                }
            }
        }
    }
}
