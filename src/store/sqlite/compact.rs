//! Compaction of day windows: admissions that left every window of their scope shorter than a
//! day only count in the day windows, so the store merges them into **buckets**, one row per
//! scope, process and minute, at the minute's **end**.
//!
//! Exactness: a bucket of the minute `(E - 60 s, E]` is made only once `E` is at least the
//! scope's longest window shorter than a day (with guard) in the past. From then on neither the
//! bucket (at `E`) nor any of its members (at or before `E`) counts in any of those windows: they
//! stay exact. A window of a day or more holds the bucket whenever it holds one of its members
//! (each member is at or before `E`), with the members' full sum: it never counts less than the
//! exact log, and at most one minute's admissions more (those whose instant left the window
//! while their bucket's end has not).
//!
//! Other processes learn of a bucket as a change: [`Tracker`] remembers which rows this process
//! handed to its mirror, per scope, process and minute, and when a bucket of that minute comes
//! in, it first hands out a [`Change::Removed`] for each of them.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, params};

use super::super::Change;

/// The length of a bucket, in wall-clock milliseconds.
pub(super) const BUCKET_MS: i64 = 60_000;

/// The end of the bucket holding `at_ms`: the first multiple of [`BUCKET_MS`] at or after it.
pub(super) fn bucket_end(at_ms: i64) -> i64 {
    at_ms
        .div_euclid(BUCKET_MS)
        .saturating_add(i64::from(at_ms.rem_euclid(BUCKET_MS) != 0))
        .saturating_mul(BUCKET_MS)
}

/// The rows of one scope, process and minute to merge into its bucket.
#[derive(Debug, Default)]
pub(super) struct Group {
    scope: String,
    process: i64,
    end: i64,
    requests: i64,
    input: i64,
    output: i64,
    members: Vec<i64>,
}

/// The rows to merge at `now_ms`: for every scope with a day window, the admissions (live or
/// released, buckets aside) of every whole minute that left its shorter windows.
pub(super) fn plan(conn: &Connection, now_ms: i64) -> rusqlite::Result<Vec<Group>> {
    let mut st = conn.prepare_cached(
        "SELECT scope, max(short_horizon_ms, ?1) FROM scopes
         WHERE short_horizon_ms IS NOT NULL AND horizon_ms > short_horizon_ms",
    )?;
    let scopes = st
        .query_map([BUCKET_MS], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(st);
    let mut out = Vec::new();
    for (scope, after) in scopes {
        // Whole minutes whose end left every shorter window.
        let cutoff = now_ms.saturating_sub(after).div_euclid(BUCKET_MS) * BUCKET_MS;
        let mut groups: BTreeMap<(i64, i64), Group> = BTreeMap::new();
        let mut st = conn.prepare_cached(
            "SELECT id, process, at_ms, requests, input, output, gone FROM admissions
             WHERE scope = ?1 AND at_ms <= ?2 AND bucket = 0",
        )?;
        let mut rows = st.query(params![scope, cutoff])?;
        while let Some(r) = rows.next()? {
            let (id, process, at_ms): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
            let g = groups.entry((process, bucket_end(at_ms))).or_default();
            g.members.push(id);
            if r.get::<_, i64>(6)? == 0 {
                g.requests = g.requests.saturating_add(r.get(3)?);
                g.input = g.input.saturating_add(r.get(4)?);
                g.output = g.output.saturating_add(r.get(5)?);
            }
        }
        drop(rows);
        drop(st);
        out.extend(groups.into_iter().map(|((process, end), g)| Group {
            scope: scope.clone(),
            process,
            end,
            ..g
        }));
    }
    Ok(out)
}

/// Merges `groups` into their buckets in the open write transaction, with its sequence number
/// `seq` (so other processes pull the buckets). Returns how many rows were deleted.
pub(super) fn apply(conn: &Connection, groups: Vec<Group>, seq: i64) -> rusqlite::Result<u64> {
    let mut deleted = 0u64;
    for g in groups {
        let (scope, process, end) = (&g.scope, g.process, g.end);
        {
            let existing: Option<i64> = conn
                .prepare_cached(
                    "SELECT id FROM admissions
                     WHERE scope = ?1 AND process = ?2 AND at_ms = ?3 AND bucket = 1 LIMIT 1",
                )?
                .query_map(params![scope, process, end], |r| r.get(0))?
                .next()
                .transpose()?;
            // The bucket is (re)written with this transaction's sequence number even when only
            // released rows joined it: its arrival is what removes them from other mirrors.
            match existing {
                Some(id) => conn
                    .prepare_cached(
                        "UPDATE admissions SET requests = requests + ?2, input = input + ?3,
                         output = output + ?4, seq = ?5 WHERE id = ?1",
                    )?
                    .execute(params![id, g.requests, g.input, g.output, seq])?,
                None => conn
                    .prepare_cached(
                        "INSERT INTO admissions
                         (scope, at_ms, requests, input, output, process, seq, bucket)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1)",
                    )?
                    .execute(params![
                        scope, end, g.requests, g.input, g.output, process, seq
                    ])?,
            };
            let mut del = conn.prepare_cached("DELETE FROM admissions WHERE id = ?1")?;
            for id in g.members {
                deleted += del.execute([id])? as u64;
            }
        }
    }
    Ok(deleted)
}

/// A row handed to this process's mirror.
#[derive(Debug, Clone, Copy)]
struct Handed {
    scope: usize,
    process: i64,
    at_ms: i64,
}

/// The rows of the scopes this process loaded that it handed to its mirror, by scope, process
/// and minute, so a bucket replacing them can be handed as their removal.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    /// Scope name → index, for the scopes this process loaded.
    names: HashMap<String, usize>,
    /// Each loaded scope's longest window (ms): rows older are forgotten.
    horizons: Vec<i64>,
    rows: HashMap<i64, Handed>,
    groups: HashMap<(usize, i64, i64), Vec<i64>>,
}

impl Tracker {
    /// From now on, rows of `scope` handed out are tracked.
    pub(super) fn track(&mut self, scope: &str) {
        if !self.names.contains_key(scope) {
            self.names.insert(scope.to_owned(), self.horizons.len());
            self.horizons.push(super::DEFAULT_HORIZON_MS);
        }
    }

    /// `scope`'s longest window, as this process described it.
    pub(super) fn horizon(&mut self, scope: &str, horizon_ms: i64) {
        if let Some(&i) = self.names.get(scope) {
            if let Some(h) = self.horizons.get_mut(i) {
                *h = horizon_ms;
            }
        }
    }

    /// An admission row handed out: pushes a removal for every row a bucket replaces (before
    /// the caller pushes the row itself).
    pub(super) fn admission(
        &mut self,
        id: i64,
        scope: &str,
        process: i64,
        at_ms: i64,
        bucket: bool,
        out: &mut Vec<Change>,
    ) {
        let Some(&i) = self.names.get(scope) else {
            return;
        };
        let key = (i, process, bucket_end(at_ms));
        if bucket {
            for old in self.groups.remove(&key).unwrap_or_default() {
                self.rows.remove(&old);
                out.push(Change::Removed { id: old });
            }
        } else if self.rows.contains_key(&id) {
            return;
        }
        self.rows.insert(
            id,
            Handed {
                scope: i,
                process,
                at_ms,
            },
        );
        self.groups.entry(key).or_default().push(id);
    }

    /// A row released: nothing replaces it any more.
    pub(super) fn removed(&mut self, id: i64) {
        if let Some(h) = self.rows.remove(&id) {
            let key = (h.scope, h.process, bucket_end(h.at_ms));
            if let Some(ids) = self.groups.get_mut(&key) {
                ids.retain(|&x| x != id);
                if ids.is_empty() {
                    self.groups.remove(&key);
                }
            }
        }
    }

    /// Forgets rows older than their scope's longest window at `now_ms` (the mirror forgets
    /// them too, and the store prunes them).
    pub(super) fn forget(&mut self, now_ms: i64) {
        let horizons = &self.horizons;
        let old = |h: &Handed| {
            let horizon = horizons.get(h.scope).copied().unwrap_or(i64::MAX);
            h.at_ms < now_ms.saturating_sub(horizon)
        };
        self.rows.retain(|_, h| !old(h));
        let rows = &self.rows;
        self.groups.retain(|_, ids| {
            ids.retain(|id| rows.contains_key(id));
            !ids.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_ends_round_up_to_whole_minutes() {
        assert_eq!(bucket_end(0), 0);
        assert_eq!(bucket_end(1), 60_000);
        assert_eq!(bucket_end(60_000), 60_000);
        assert_eq!(bucket_end(60_001), 120_000);
        assert_eq!(bucket_end(-1), 0);
        assert_eq!(bucket_end(-60_001), -60_000);
    }
}
