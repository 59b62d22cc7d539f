//! [`RedisUsage`]: the usage ledger in the same Redis database as the quota state: one sorted
//! set, `{prefix}:usage`, scored by each record's `at_ms`, members `<writer>:<n>|<record as
//! JSON>` (the writer's tag keeps identical records of different calls apart). Records older
//! than [`KEEP_MS`] are pruned by the appends.

use std::path::PathBuf;
use std::time::Duration;

use super::url;
use crate::store::StoreError;
use crate::store::usage::{UsageRecord, UsageStore};

/// How long usage records are kept: a little over a year.
pub const KEEP_MS: i64 = 400 * 86_400_000;

/// The usage ledger in Redis.
pub struct RedisUsage {
    shown: String,
    client: redis::Client,
    conn: Option<redis::Connection>,
    key: String,
    writer: String,
    counter: u64,
}

impl std::fmt::Debug for RedisUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisUsage")
            .field("url", &self.shown)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl RedisUsage {
    /// Connects to the Redis at `url` (the quota store's URL).
    pub fn open(url: &str) -> Result<RedisUsage, StoreError> {
        let shown = url::mask(url);
        let (client_url, prefix) = url::split_prefix(url);
        let fail = |reason: String| StoreError::Open {
            path: PathBuf::from(&shown),
            reason,
        };
        let client = redis::Client::open(client_url.as_str())
            .map_err(|e| fail(format!("not a Redis URL: {e}")))?;
        let mut usage = RedisUsage {
            shown: shown.clone(),
            client,
            conn: None,
            key: format!("{{{prefix}}}:usage"),
            writer: format!("{:08x}", fastrand::u32(..)),
            counter: 0,
        };
        usage
            .connect()
            .map_err(|e| fail(format!("Redis unreachable: {e}")))?;
        Ok(usage)
    }

    fn connect(&mut self) -> redis::RedisResult<&mut redis::Connection> {
        if self.conn.is_none() {
            let c = self
                .client
                .get_connection_with_timeout(Duration::from_secs(2))?;
            c.set_read_timeout(Some(Duration::from_secs(10)))?;
            c.set_write_timeout(Some(Duration::from_secs(10)))?;
            self.conn = Some(c);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| redis::RedisError::from((redis::ErrorKind::Io, "no connection")))
    }

    fn failed(&mut self, e: &redis::RedisError) -> StoreError {
        self.conn = None;
        StoreError::Io {
            path: PathBuf::from(&self.shown),
            reason: format!("Redis unreachable or failing: {e}"),
        }
    }
}

impl UsageStore for RedisUsage {
    fn append(&mut self, records: &[UsageRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut newest = i64::MIN;
        for r in records {
            self.counter += 1;
            let json = serde_json::to_string(r).map_err(|e| StoreError::Io {
                path: PathBuf::from(&self.shown),
                reason: format!("cannot encode a usage record: {e}"),
            })?;
            let member = format!("{}:{:012}|{json}", self.writer, self.counter);
            pipe.zadd(&self.key, member, r.at_ms).ignore();
            newest = newest.max(r.at_ms);
        }
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(&self.key)
            .arg("-inf")
            .arg(format!("({}", newest.saturating_sub(KEEP_MS)))
            .ignore();
        let key_done: redis::RedisResult<()> = match self.connect() {
            Ok(conn) => pipe.query(conn),
            Err(e) => Err(e),
        };
        key_done.map_err(|e| self.failed(&e))
    }

    fn since(&mut self, since_ms: i64) -> Result<Vec<UsageRecord>, StoreError> {
        let key = self.key.clone();
        let members: redis::RedisResult<Vec<String>> = match self.connect() {
            Ok(conn) => redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(since_ms)
                .arg("+inf")
                .query(conn),
            Err(e) => Err(e),
        };
        let members = members.map_err(|e| self.failed(&e))?;
        Ok(members
            .iter()
            .filter_map(|m| m.split_once('|'))
            .filter_map(|(_, json)| serde_json::from_str(json).ok())
            .collect())
    }
}
