//! Two stores on one file, as two processes see it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;
use crate::quota::Dimension;

fn admit(scope: &str, at_ms: i64, input: u64) -> Write {
    Write::Admit {
        scope: scope.to_owned(),
        at_ms,
        input,
        output: 10,
    }
}

#[test]
fn each_process_sees_exactly_what_the_others_changed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("state.db");
    let mut a = SqliteStore::open(&path).unwrap();
    let mut b = SqliteStore::open(&path).unwrap();
    assert!(a.begin().unwrap().is_empty());
    let id = a.write(&admit("s", 1_000, 5)).unwrap().unwrap();
    a.commit(1_000).unwrap();
    // A sees nothing of its own; B sees the admission once.
    assert!(a.begin().unwrap().is_empty());
    a.commit(1_000).unwrap();
    let seen = b.begin().unwrap();
    b.commit(1_000).unwrap();
    assert_eq!(
        seen,
        vec![Change::Admission {
            id,
            scope: "s".into(),
            at_ms: 1_000,
            requests: 1,
            input: 5,
            output: 10
        }]
    );
    assert!(b.begin().unwrap().is_empty());
    b.commit(1_000).unwrap();
    // Settled, then a cooldown and a learned limit, then released.
    a.begin().unwrap();
    a.write(&Write::Tokens {
        id,
        input: 3,
        output: 2,
    })
    .unwrap();
    a.write(&Write::Cooldown {
        scope: "s".into(),
        until_ms: 9_000,
        reason: "429 rate limited".into(),
    })
    .unwrap();
    let limit = Limit::new(Dimension::Requests, 4, Duration::from_secs(10)).unwrap();
    a.write(&Write::Learned {
        scope: "s".into(),
        limit,
        at_ms: 1_000,
    })
    .unwrap();
    a.commit(1_000).unwrap();
    let seen = b.begin().unwrap();
    b.commit(1_000).unwrap();
    assert!(seen.contains(&Change::Admission {
        id,
        scope: "s".into(),
        at_ms: 1_000,
        requests: 1,
        input: 3,
        output: 2
    }));
    assert!(seen.contains(&Change::Cooldown {
        scope: "s".into(),
        until_ms: 9_000,
        reason: "429 rate limited".into()
    }));
    assert!(seen.contains(&Change::Learned {
        scope: "s".into(),
        limit
    }));
    a.begin().unwrap();
    a.write(&Write::Remove { id }).unwrap();
    a.commit(1_000).unwrap();
    assert_eq!(b.begin().unwrap(), vec![Change::Removed { id }]);
    b.commit(1_000).unwrap();
    // A third process loads the scope: the released admission is not there, the cooldown is.
    let mut c = SqliteStore::open(&path).unwrap();
    c.begin().unwrap();
    let loaded = c.load_scope("s", 0, 2_000).unwrap();
    c.commit(2_000).unwrap();
    assert!(
        !loaded
            .iter()
            .any(|ch| matches!(ch, Change::Admission { .. })),
        "{loaded:?}"
    );
    assert!(
        loaded
            .iter()
            .any(|ch| matches!(ch, Change::Cooldown { .. }))
    );
}

#[test]
fn an_aborted_transaction_leaves_nothing_and_pruning_drops_old_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let mut a = SqliteStore::open(&path).unwrap();
    let mut b = SqliteStore::open(&path).unwrap();
    a.begin().unwrap();
    a.write(&Write::Scope {
        scope: "s".into(),
        horizon_ms: 60_000,
        short_horizon_ms: 60_000,
        started_ms: 0,
        startup_until_ms: 0,
    })
    .unwrap();
    a.write(&admit("s", 1_000, 1)).unwrap();
    a.abort();
    assert!(b.begin().unwrap().is_empty());
    b.commit(0).unwrap();
    a.begin().unwrap();
    a.write(&Write::Scope {
        scope: "s".into(),
        horizon_ms: 60_000,
        short_horizon_ms: 60_000,
        started_ms: 0,
        startup_until_ms: 0,
    })
    .unwrap();
    a.write(&admit("s", 1_000, 1)).unwrap();
    a.write(&admit("s", 50_000, 1)).unwrap();
    a.commit(50_000).unwrap();
    assert_eq!(a.admission_rows().unwrap(), 2);
    // At 61 s the first left its 60 s window: pruned (the prune runs every 10 s of commits).
    a.begin().unwrap();
    a.commit(61_001).unwrap();
    assert_eq!(a.admission_rows().unwrap(), 1);
}

#[test]
fn a_store_that_cannot_be_opened_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let path = dir.path().join("state.db");
    std::fs::create_dir(&path).unwrap();
    let err = StoreSpec::Sqlite(path.clone()).open().err().unwrap();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(StoreSpec::parse("NONE") == StoreSpec::Memory);
}

#[test]
fn a_file_of_the_first_schema_is_upgraded_and_its_scopes_are_not_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL);
             INSERT INTO meta (k, v) VALUES ('seq', 1), ('schema', 1);
             CREATE TABLE admissions (id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL,
               at_ms INTEGER NOT NULL, requests INTEGER NOT NULL DEFAULT 1, input INTEGER NOT NULL,
               output INTEGER NOT NULL, gone INTEGER NOT NULL DEFAULT 0,
               process INTEGER NOT NULL, seq INTEGER NOT NULL);
             CREATE TABLE scopes (scope TEXT PRIMARY KEY, horizon_ms INTEGER NOT NULL,
               started_ms INTEGER NOT NULL, startup_until_ms INTEGER NOT NULL,
               process INTEGER NOT NULL, seq INTEGER NOT NULL);
             INSERT INTO scopes VALUES ('s', 86400250, 0, 0, 7, 1);
             INSERT INTO admissions (scope, at_ms, input, output, process, seq)
               VALUES ('s', 1000, 1, 1, 7, 1), ('s', 2000, 1, 1, 7, 1);",
        )
        .unwrap();
    }
    let mut a = SqliteStore::open(&path).unwrap();
    // Both rows come through; a day later nothing merged them (the scope's shorter windows
    // are unknown until a process describes it again).
    a.begin().unwrap();
    let loaded = a.load_scope("s", 0, 3_000).unwrap();
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    a.commit(600_000).unwrap();
    assert_eq!(a.admission_rows().unwrap(), 2);
    let status = a.status(600_000, &[86_400_000]).unwrap();
    assert_eq!(
        status
            .scope("s")
            .unwrap()
            .window(86_400_000)
            .unwrap()
            .requests,
        2
    );
    // Described with a minute window beside the day: merged into one bucket.
    a.begin().unwrap();
    a.write(&Write::Scope {
        scope: "s".into(),
        horizon_ms: 86_400_250,
        short_horizon_ms: 60_250,
        started_ms: 600_000,
        startup_until_ms: 0,
    })
    .unwrap();
    a.commit(620_000).unwrap();
    assert_eq!(a.admission_rows().unwrap(), 1);
    let status = a.status(620_000, &[60_000, 86_400_000]).unwrap();
    let s = status.scope("s").unwrap();
    assert_eq!((s.admissions, s.rows), (2, 1));
    assert_eq!(s.window(60_000).unwrap().requests, 0);
    assert_eq!(s.window(86_400_000).unwrap().input_tokens, 2);
}

/// The requests `changes` leave in a mirror that starts empty.
fn mirrored(changes: &[Change]) -> u64 {
    let mut held = std::collections::HashMap::new();
    for c in changes {
        match c {
            Change::Admission { id, requests, .. } => {
                held.insert(*id, *requests);
            }
            Change::Removed { id } => {
                held.remove(id);
            }
            _ => {}
        }
    }
    held.values().sum()
}

#[test]
fn a_late_admission_beside_its_minutes_bucket_is_loaded_and_merged_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let (mut a, mut b) = (
        SqliteStore::open(&path).unwrap(),
        SqliteStore::open(&path).unwrap(),
    );
    let scope = Write::Scope {
        scope: "s".into(),
        horizon_ms: 86_400_250,
        short_horizon_ms: 60_250,
        started_ms: 0,
        startup_until_ms: 0,
    };
    let mut c = SqliteStore::open(&path).unwrap();
    c.begin().unwrap();
    let mut seen = c.load_scope("s", 0, 0).unwrap();
    c.commit(0).unwrap();
    b.begin().unwrap();
    b.write(&admit("s", 1_000, 1)).unwrap();
    b.write(&admit("s", 2_000, 1)).unwrap();
    // (B prunes here, so not again before 205 s.)
    b.commit(195_000).unwrap();
    seen.extend(c.begin().unwrap());
    c.commit(195_000).unwrap();
    assert_eq!(mirrored(&seen), 2);
    // A describes the scope and, at 200 s, merges B's first minute into one bucket.
    a.begin().unwrap();
    a.write(&scope).unwrap();
    a.commit(200_000).unwrap();
    assert_eq!(a.admission_rows().unwrap(), 1);
    // C, which held both rows, now holds the bucket instead.
    seen.extend(c.begin().unwrap());
    c.commit(200_000).unwrap();
    assert_eq!(mirrored(&seen), 2, "{seen:?}");
    // B, its clock behind, adds one more to that minute: beside the bucket until merged.
    b.begin().unwrap();
    b.write(&admit("s", 30_000, 1)).unwrap();
    b.commit(200_001).unwrap();
    seen.extend(c.begin().unwrap());
    c.commit(200_001).unwrap();
    assert_eq!(mirrored(&seen), 3, "{seen:?}");
    let mut d = SqliteStore::open(&path).unwrap();
    d.begin().unwrap();
    let loaded = d.load_scope("s", 0, 200_001).unwrap();
    d.commit(200_001).unwrap();
    assert_eq!(mirrored(&loaded), 3, "{loaded:?}");
    // Merged into the same bucket ten seconds later: both still hold 3.
    a.begin().unwrap();
    a.commit(210_000).unwrap();
    assert_eq!(a.admission_rows().unwrap(), 1);
    for (store, held) in [(&mut c, &mut seen), (&mut d, &mut loaded.clone())] {
        held.extend(store.begin().unwrap());
        store.commit(210_000).unwrap();
        assert_eq!(mirrored(held), 3, "{held:?}");
    }
}

#[test]
fn redis_urls_parse_to_the_redis_store_and_never_show_the_password() {
    let spec = StoreSpec::parse(" redis://:pw@h:6379/1 ");
    assert_eq!(
        spec,
        StoreSpec::Redis {
            url: "redis://:pw@h:6379/1".into(),
            fail_open_local: false
        }
    );
    assert_eq!(spec.to_string(), "Redis redis://:***@h:6379/1");
    assert!(matches!(
        StoreSpec::parse("REDISS://h"),
        StoreSpec::Redis { .. }
    ));
    assert!(matches!(StoreSpec::parse("redis.db"), StoreSpec::Sqlite(_)));
    let open = StoreSpec::Redis {
        url: "redis://h".into(),
        fail_open_local: true,
    };
    assert!(open.to_string().contains("fail_open_local"), "{open}");
}

#[test]
fn the_sqlite_store_ignores_limits() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = SqliteStore::open(&dir.path().join("s.db")).unwrap();
    a.begin().unwrap();
    let w = Write::Limits {
        scope: "s".into(),
        limits: vec![WindowLimit {
            dimension: Dimension::Requests,
            amount: 1,
            window_ms: 1_000,
        }],
    };
    assert_eq!(a.write(&w).unwrap(), None);
    a.commit(0).unwrap();
}
