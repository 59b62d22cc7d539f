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
