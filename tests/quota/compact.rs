//! Day-window compaction in the SQLite store: over more than a day of admissions by two
//! processes (injected time), no window ever counts less than the exact log, windows shorter
//! than a day stay exact, a third process's mirror holds exactly what the store holds, and the
//! file keeps fewer rows than admissions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::DateTime;
use massgen::quota::{
    Dimension, Ledger, Limit, Reservation, ScopeId, ScopeSpec, TokenCount, WallClock,
};
use massgen::store::{Mirror, QuotaStore, SqliteStore, Write, wall_ms};
use proptest::prelude::*;

const GUARD_MS: i64 = 250;
const DAY_MS: i64 = 86_400_000;
/// The scope's longest window shorter than a day, with guard.
const SHORT_MS: i64 = 60_000 + GUARD_MS;
/// The scope's longest window, with guard.
const HORIZON_MS: i64 = DAY_MS + GUARD_MS;

/// One admission as it really is (the reference), and as it was reserved.
#[derive(Debug, Clone)]
struct Row {
    at_ms: i64,
    process: usize,
    live: bool,
    tokens: u64,
    est: u64,
    /// Settled or released after it may have been compacted (its bucket keeps the estimate).
    late: bool,
}

/// (requests, tokens) of the exact log inside `(now - period, now]`.
fn exact(log: &[Row], now_ms: i64, period: i64) -> (u64, u64) {
    let inside = log
        .iter()
        .filter(|r| r.live && r.at_ms > now_ms - period && r.at_ms <= now_ms);
    inside.fold((0, 0), |(n, t), r| (n + 1, t + r.tokens))
}

/// The most a compacted store may count: one minute more of admissions, late changes ignored.
fn upper(log: &[Row], now_ms: i64, period: i64) -> (u64, u64) {
    let inside = log
        .iter()
        .filter(|r| (r.live || r.late) && r.at_ms > now_ms - period - 60_000);
    inside.fold((0, 0), |(n, t), r| {
        (n + 1, t + if r.late { r.est } else { r.tokens })
    })
}

struct Process {
    ledger: Ledger,
    mirror: Mirror,
    store: SqliteStore,
}

impl Process {
    fn begin(&mut self, now: Instant) {
        let changes = self.store.begin().unwrap();
        self.mirror.apply(&mut self.ledger, changes, now);
    }

    fn commit(&mut self, now: Instant) {
        let ms = wall_ms(self.ledger.wall_clock(), now);
        self.store.commit(ms).unwrap();
    }

    /// (requests, tokens) the ledger counts in its minute and day windows.
    fn used(&mut self, now: Instant) -> [u64; 4] {
        let snap = self.ledger.scope_mut(0).unwrap().snapshot(now);
        [0, 1, 2, 3].map(|k| snap.limits[k].used)
    }
}

#[derive(Debug, Clone)]
enum Later {
    Settle(u64),
    Release,
}

#[derive(Debug, Clone)]
struct Step {
    /// Milliseconds before this step (now and then a long jump, so the log spans over a day).
    gap: u64,
    who: usize,
    est: u64,
    /// What happens to an earlier admission still open, at this step.
    later: Option<(usize, Later)>,
    /// Whether the observer syncs and every check runs at this step.
    check: Option<(i64, i64)>,
}

fn step() -> impl Strategy<Value = Step> {
    let gap = prop_oneof![20 => 0u64..6_000, 1 => 600_000u64..7_200_000];
    let later = prop_oneof![
        2 => Just(None),
        2 => (any::<usize>(), 0u64..=100).prop_map(|(i, a)| Some((i, Later::Settle(a)))),
        1 => any::<usize>().prop_map(|i| Some((i, Later::Release))),
    ];
    let check = prop_oneof![
        12 => Just(None),
        1 => (1i64..=SHORT_MS, SHORT_MS + 1..=HORIZON_MS).prop_map(Some),
    ];
    (gap, 0usize..2, 1u64..=100, later, check).prop_map(|(gap, who, est, later, check)| Step {
        gap,
        who,
        est,
        later,
        check,
    })
}

fn check_all(
    procs: &mut [Process],
    log: &[Row],
    now: Instant,
    t0: Instant,
    (short, long): (i64, i64),
) -> Result<(), TestCaseError> {
    let wall = *procs[0].ledger.wall_clock();
    let now_ms = wall_ms(&wall, now);
    let status = procs[2]
        .store
        .status(now_ms, &[short, long, SHORT_MS, HORIZON_MS])
        .unwrap();
    let stored = |period: i64| {
        status
            .scope("s")
            .and_then(|s| s.window(period))
            .map_or((0, 0), |w| (w.requests, w.input_tokens + w.output_tokens))
    };
    let at = now - t0;
    // Shorter windows: exact. Day windows: never less, at most a minute more.
    prop_assert_eq!(
        stored(short),
        exact(log, now_ms, short),
        "{:?}: {} ms",
        at,
        short
    );
    prop_assert_eq!(stored(SHORT_MS), exact(log, now_ms, SHORT_MS));
    for period in [long, HORIZON_MS] {
        let (got, lo, hi) = (
            stored(period),
            exact(log, now_ms, period),
            upper(log, now_ms, period),
        );
        prop_assert!(
            got.0 >= lo.0 && got.1 >= lo.1,
            "{:?}: {:?} < {:?} in {} ms",
            at,
            got,
            lo,
            period
        );
        prop_assert!(
            got.0 <= hi.0 && got.1 <= hi.1,
            "{:?}: {:?} > {:?} in {} ms",
            at,
            got,
            hi,
            period
        );
    }
    // The observer's mirror holds exactly what the store holds; every ledger counts its minute
    // windows exactly and its day windows never less.
    let (day_n, day_t) = stored(HORIZON_MS);
    let observer = procs[2].used(now);
    prop_assert_eq!(
        observer,
        [stored(SHORT_MS).0, stored(SHORT_MS).1, day_n, day_t]
    );
    for p in procs.iter_mut() {
        let used = p.used(now);
        let minute = exact(log, now_ms, SHORT_MS);
        prop_assert_eq!([used[0], used[1]], [minute.0, minute.1], "{:?}", at);
        let (lo, hi) = (
            exact(log, now_ms, HORIZON_MS),
            upper(log, now_ms, HORIZON_MS),
        );
        prop_assert!(used[2] >= lo.0 && used[3] >= lo.1 && used[2] <= hi.0 && used[3] <= hi.1);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    #[test]
    fn compaction_never_counts_less_than_the_exact_log(
        steps in proptest::collection::vec(step(), 600..900),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let t0 = Instant::now();
        let wall = WallClock { origin: t0, origin_wall: DateTime::from_timestamp(1_770_000_000, 0).unwrap() };
        let spec = ScopeSpec {
            limits: vec![
                Limit::new(Dimension::Requests, 1_000_000, Duration::from_secs(60)).unwrap(),
                Limit::new(Dimension::Tokens, 1_000_000_000, Duration::from_secs(60)).unwrap(),
                Limit::new(Dimension::Requests, 1_000_000, Duration::from_secs(86_400)).unwrap(),
                Limit::new(Dimension::Tokens, 1_000_000_000, Duration::from_secs(86_400)).unwrap(),
            ],
            window_guard: Duration::from_millis(GUARD_MS as u64),
            ..ScopeSpec::default()
        };
        let mut procs: Vec<Process> = (0..3)
            .map(|_| {
                let mut ledger = Ledger::new(Duration::ZERO, wall);
                ledger.register(ScopeId::new("s"), spec.clone(), t0);
                let s = ledger.scope(0).unwrap();
                assert_eq!(s.horizon().as_millis() as i64, HORIZON_MS);
                assert_eq!(s.short_horizon().as_millis() as i64, SHORT_MS);
                let mut p = Process { ledger, mirror: Mirror::new(), store: SqliteStore::open(&path).unwrap() };
                p.begin(t0);
                let loaded = p.store.load_scope("s", 0, 0).unwrap();
                p.mirror.apply(&mut p.ledger, loaded, t0);
                p.store.write(&Write::Scope {
                    scope: "s".into(),
                    horizon_ms: HORIZON_MS,
                    short_horizon_ms: SHORT_MS,
                    started_ms: wall_ms(&wall, t0),
                    startup_until_ms: 0,
                }).unwrap();
                p.commit(t0);
                p
            })
            .collect();
        let who: Arc<str> = Arc::from("agent");
        let mut now = t0;
        let mut log: Vec<Row> = Vec::new();
        // (index in `log`, reservation, store row)
        let mut open: Vec<(usize, Reservation, i64)> = Vec::new();
        for s in steps {
            now += Duration::from_millis(s.gap);
            let now_ms = wall_ms(&wall, now);
            let p = &mut procs[s.who];
            p.begin(now);
            let r = p.ledger.reserve(&[0], now, TokenCount::new(s.est, 0), &who);
            let id = p.store.write(&Write::Admit { scope: "s".into(), at_ms: now_ms, input: s.est, output: 0 }).unwrap().unwrap();
            p.commit(now);
            open.push((log.len(), r, id));
            log.push(Row { at_ms: now_ms, process: s.who, live: true, tokens: s.est, est: s.est, late: false });
            if let Some((which, how)) = s.later {
                let (idx, r, id) = open.swap_remove(which % open.len());
                let row = &mut log[idx];
                let p = &mut procs[row.process];
                row.late = now_ms - row.at_ms >= 60_000;
                p.begin(now);
                match how {
                    Later::Settle(a) => {
                        let a = a.min(row.est);
                        p.ledger.settle(&r, TokenCount::new(a, 0));
                        p.store.write(&Write::Tokens { id, input: a, output: 0 }).unwrap();
                        row.tokens = a;
                    }
                    Later::Release => {
                        p.ledger.uncount(&r);
                        p.store.write(&Write::Remove { id }).unwrap();
                        row.live = false;
                    }
                }
                p.commit(now);
            }
            if let Some(periods) = s.check {
                for p in procs.iter_mut() {
                    p.begin(now);
                    p.commit(now);
                }
                check_all(&mut procs, &log, now, t0, periods)?;
            }
        }
        // Ten seconds later every process prunes and compacts once more.
        now += Duration::from_secs(10);
        for p in procs.iter_mut() {
            p.begin(now);
            p.commit(now);
        }
        check_all(&mut procs, &log, now, t0, (SHORT_MS, HORIZON_MS))?;
        // The file keeps one row per process and minute for what only the day counts.
        let now_ms = wall_ms(&wall, now);
        let kept: Vec<&Row> = log.iter().filter(|r| r.at_ms >= now_ms - HORIZON_MS).collect();
        let old = kept.iter().filter(|r| r.at_ms + SHORT_MS + 60_000 <= now_ms);
        let minutes: HashSet<(usize, i64)> = old.map(|r| (r.process, (r.at_ms + 59_999).div_euclid(60_000))).collect();
        let recent = kept.iter().filter(|r| r.at_ms + SHORT_MS + 60_000 > now_ms).count();
        let rows = procs[0].store.admission_rows().unwrap() as usize;
        prop_assert!(rows <= minutes.len() + recent + 2, "{} rows for {} minutes and {} recent", rows, minutes.len(), recent);
        prop_assert!(rows < kept.len(), "{} rows for {} admissions", rows, kept.len());
    }
}
