//! One pass against the server: reading the change stream, loading a scope, running the
//! commit script.

use std::path::PathBuf;
use std::sync::Arc;

use redis::Value;

use super::{FORGET_EVERY, Own, RedisStore, STREAM_KEEP_MS, bulk, num, wire};
use crate::store::{Change, StoreError, Write};

impl RedisStore {
    /// Reads the change stream from where this process stopped.
    pub(super) fn pull(&mut self) -> redis::RedisResult<Vec<Change>> {
        let mut out = Vec::new();
        self.must_pull = false;
        self.last_pull = Some(std::time::Instant::now());
        loop {
            let start = format!("({}", self.last_id);
            let stream = self.stream.clone();
            let conn = self.connect()?;
            let entries: Value = redis::cmd("XRANGE")
                .arg(&stream)
                .arg(&start)
                .arg("+")
                .arg("COUNT")
                .arg(512)
                .query(conn)?;
            let Value::Array(entries) = entries else {
                break;
            };
            let n = entries.len();
            for e in &entries {
                let Some((id, fields)) = entry(e) else {
                    continue;
                };
                let field = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v);
                let seq = field("q").and_then(|q| q.parse::<i64>().ok()).unwrap_or(0);
                if seq != self.seen_seq.saturating_add(1) {
                    self.resync = true;
                }
                self.seen_seq = seq;
                self.last_id = id;
                let mine = field("p").and_then(|p| p.parse::<i64>().ok()) == Some(self.process);
                if let (false, Some(d)) = (mine, field("d")) {
                    wire::changes(d, &self.clock, &mut out);
                }
            }
            if n < 512 {
                break;
            }
        }
        Ok(out)
    }

    pub(super) fn load(&mut self, scope: &str, since_ms: i64) -> redis::RedisResult<Vec<Change>> {
        let since = self.clock.to_server_early(since_ms);
        let (tag, stream) = (self.tag.clone(), self.stream.clone());
        let scripts = Arc::clone(&self.scripts);
        let conn = self.connect()?;
        let data: String = scripts
            .load
            .key(&stream)
            .arg(&tag)
            .arg(scope)
            .arg(since)
            .invoke(conn)?;
        wire::loaded(scope, &data, self.process, &self.clock)
            .map_err(|e| redis::RedisError::from((redis::ErrorKind::Parse, "scope state", e)))
    }

    /// Runs the commit script once: `Ok(Ok(()))` done, `Ok(Err(conflict))` refused.
    pub(super) fn run_commit(&mut self) -> redis::RedisResult<Result<(), StoreError>> {
        let data = wire::batch(
            &self.buffer,
            &self.limits,
            &self.horizons,
            &self.admit_ids,
            &self.own,
            &self.clock,
        );
        {
            let before = self.clock.floor_ms();
            let (tag, stream, me, epoch) = (
                self.tag.clone(),
                self.stream.clone(),
                self.process.to_string(),
                self.epoch.clone(),
            );
            let scripts = Arc::clone(&self.scripts);
            let conn = self.connect()?;
            let reply: Vec<Value> = scripts
                .commit
                .key(&stream)
                .arg(&tag)
                .arg(&me)
                .arg(&epoch)
                .arg(STREAM_KEEP_MS)
                .arg(&data)
                .invoke(conn)?;
            let after = self.clock.ceil_ms();
            let status = reply.first().and_then(bulk).unwrap_or_default();
            let server = reply.get(1).and_then(num).unwrap_or(0);
            self.clock.measure(before, after, server);
            self.last_server_ms = server;
            self.last_refused.clear();
            match status.as_str() {
                "ok" => {
                    self.applied(server);
                    Ok(Ok(()))
                }
                "conflict" => {
                    let mut holds = Vec::new();
                    for pair in reply.get(2..).unwrap_or(&[]).chunks(2) {
                        if let [s, at] = pair {
                            if let (Some(s), Some(at)) = (bulk(s), num(at)) {
                                holds.push((s.clone(), self.clock.to_local(at)));
                                self.last_refused.push((s, at));
                            }
                        }
                    }
                    let retry_at_ms = holds.iter().map(|h| h.1).max().unwrap_or(after);
                    self.must_pull = true;
                    Ok(Err(StoreError::Conflict { retry_at_ms, holds }))
                }
                "epoch" => {
                    // The server lost its state: write this process's admissions again, and
                    // grant nothing before the next pass has reloaded every scope.
                    tracing::warn!(store = %self.shown, "the Redis quota store lost its state: this process's admissions are written again");
                    self.restore()?;
                    self.resync = true;
                    Ok(Err(StoreError::Io {
                        path: PathBuf::from(&self.shown),
                        reason: "the server lost its state (restarted without persistence?); \
                                 this process's admissions were written again"
                            .to_owned(),
                    }))
                }
                other => Err(redis::RedisError::from((
                    redis::ErrorKind::Parse,
                    "unexpected reply from the commit script",
                    other.to_owned(),
                ))),
            }
        }
    }

    /// The pass committed at server instant `server`: its admissions are this process's own.
    pub(super) fn applied(&mut self, server: i64) {
        let mut ids = self.admit_ids.iter();
        for w in &self.buffer {
            match w {
                Write::Admit {
                    scope,
                    input,
                    output,
                    ..
                } => {
                    if let Some(&id) = ids.next() {
                        let own = Own {
                            scope: scope.clone(),
                            at: server,
                            input: *input,
                            output: *output,
                        };
                        self.own.insert(id, own);
                    }
                }
                Write::Tokens { id, input, output } => {
                    if let Some(o) = self.own.get_mut(id) {
                        o.input = *input;
                        o.output = *output;
                    }
                }
                Write::Remove { id } => {
                    self.own.remove(id);
                }
                _ => {}
            }
        }
        self.commits = self.commits.wrapping_add(1);
        if self.commits % FORGET_EVERY == 0 {
            let horizons = &self.horizons;
            self.own.retain(|_, o| {
                let h = horizons.get(&o.scope).copied().unwrap_or(i64::MAX / 4);
                o.at.saturating_add(h) > server
            });
        }
    }
}

/// `(id, seq)` of the newest entry of an `XREVRANGE .. COUNT 1` reply.
pub(super) fn stream_head(v: &Value) -> Option<(String, i64)> {
    let Value::Array(items) = v else { return None };
    let (id, fields) = entry(items.first()?)?;
    let seq = fields
        .iter()
        .find(|(f, _)| f == "q")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    Some((id, seq))
}

/// One stream entry: its id and fields.
fn entry(v: &Value) -> Option<(String, Vec<(String, String)>)> {
    let Value::Array(parts) = v else { return None };
    let id = bulk(parts.first()?)?;
    let Value::Array(kv) = parts.get(1)? else {
        return None;
    };
    let fields = kv
        .chunks(2)
        .filter_map(|p| match p {
            [k, v] => Some((bulk(k)?, bulk(v)?)),
            _ => None,
        })
        .collect();
    Some((id, fields))
}
