#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::store::UsageRecord;
use crate::usage::MemoryUsage;

fn settings(run: Option<f64>, day: Option<f64>) -> BudgetSettings {
    BudgetSettings {
        per_run_usd: run,
        per_day_usd: day,
        allow_unpriced: false,
    }
}

fn guard(run: Option<f64>, day: Option<f64>) -> Arc<BudgetGuard> {
    BudgetGuard::new(
        settings(run, day),
        Arc::new(PriceTable::builtin()),
        "r1",
        None,
    )
}

#[test]
fn a_call_that_would_pass_the_run_budget_is_refused_with_the_figures() {
    let g = guard(Some(0.50), None);
    let a = g.admit(0.30).unwrap();
    a.settle(0.28);
    let b = g.admit(0.20).unwrap();
    // 0.28 spent + 0.20 in flight + 0.05 > 0.50.
    let e = g.admit(0.05).unwrap_err();
    assert_eq!(e.scope, BudgetScope::Run);
    assert!((e.spent_usd - 0.28).abs() < 1e-9, "{e:?}");
    assert!((e.in_flight_usd - 0.20).abs() < 1e-9, "{e:?}");
    assert_eq!(
        e.to_string(),
        "budget per run of $0.50 reached: $0.28 spent (and up to $0.20 in flight), next call \
         needs up to $0.05"
    );
    assert_eq!(g.exceeded(), Some(e));
    // Released unsent: its reservation is free again, nothing is spent.
    drop(b);
    assert_eq!(g.spent(), (0.28, 0.0));
    g.admit(0.22).unwrap().settle(0.0);
    assert!(g.admit(0.23).is_err());
}

#[test]
fn growing_a_hold_is_checked_like_a_new_one() {
    let g = guard(Some(1.0), None);
    let mut h = g.admit(0.5).unwrap();
    h.grow(0.9).unwrap();
    assert!((h.reserved() - 0.9).abs() < 1e-9);
    let e = h.grow(1.1).unwrap_err();
    assert!((e.needed_usd - 1.1).abs() < 1e-9, "{e:?}");
    assert!(e.in_flight_usd.abs() < 1e-9, "{e:?}");
    h.settle(0.7);
    assert!((g.spent().0 - 0.7).abs() < 1e-9);
    assert!(g.spent().1.abs() < 1e-9);
}

#[test]
fn unpriced_models_are_refused_unless_allowed() {
    let g = guard(Some(1.0), None);
    assert!(g.price("openai", "gpt-4o-mini").unwrap().is_some());
    let e = g.price("openai", "no-such-model").unwrap_err();
    assert!(e.to_string().contains("no-such-model"), "{e}");
    let mut s = settings(Some(1.0), None);
    s.allow_unpriced = true;
    let g = BudgetGuard::new(s, Arc::new(PriceTable::builtin()), "r1", None);
    assert!(g.price("openai", "no-such-model").unwrap().is_none());
}

fn record(run: &str, cost: Option<f64>, at_ms: i64) -> UsageRecord {
    UsageRecord {
        at_ms,
        run_id: run.to_owned(),
        agent: "a".to_owned(),
        provider: "openai".to_owned(),
        model: "gpt-4o-mini".to_owned(),
        key: String::new(),
        input_tokens: 1,
        output_tokens: 1,
        cost_usd: cost,
        outcome: "ok".to_owned(),
        latency_ms: 1,
    }
}

#[test]
fn the_day_budget_counts_other_runs_of_today_from_the_ledger() {
    let mut ledger = MemoryUsage::default();
    let now = chrono::Utc::now().timestamp_millis();
    let yesterday = utc_day_start_ms(now) - 1;
    ledger
        .append(&[
            record("earlier", Some(0.30), now),
            // This run's own records are counted by the guard, not read back.
            record("r1", Some(0.50), now),
            record("older", Some(9.0), yesterday),
            record("unpriced", None, now),
        ])
        .unwrap();
    let g = BudgetGuard::new(
        settings(None, Some(0.50)),
        Arc::new(PriceTable::builtin()),
        "r1",
        Some(Box::new(ledger)),
    );
    g.admit(0.20).unwrap().settle(0.10);
    let e = g.admit(0.15).unwrap_err();
    assert_eq!(e.scope, BudgetScope::Day);
    assert!((e.spent_usd - 0.40).abs() < 1e-9, "{e:?}");
    assert!(g.admit(0.10).is_ok());
}

#[test]
fn a_requester_budget_counts_only_that_requesters_records() {
    let mut ledger = MemoryUsage::default();
    let now = chrono::Utc::now().timestamp_millis();
    let mut mine = record("gateway-earlier", Some(0.30), now);
    mine.agent = "client:ci".to_owned();
    let mut theirs = record("gateway-earlier", Some(5.0), now);
    theirs.agent = "client:other".to_owned();
    let mut own_run = record("gw1", Some(9.0), now);
    own_run.agent = "client:ci".to_owned();
    ledger.append(&[mine, theirs, own_run]).unwrap();
    let g = BudgetGuard::for_requester(
        settings(None, Some(0.50)),
        Arc::new(PriceTable::builtin()),
        "gw1",
        "client:ci",
        Some(Box::new(ledger.clone())),
        None,
    );
    // 0.30 of this client from an earlier process: 0.20 is left, the other client's 5.00 and
    // this process's own records do not count.
    let e = g.admit(0.25).unwrap_err();
    assert_eq!(e.scope, BudgetScope::Day);
    assert!((e.spent_usd - 0.30).abs() < 1e-9, "{e:?}");
    g.admit(0.20).unwrap().settle(0.20);
    assert!(g.admit(0.01).is_err());
    // The same ledger read for every requester counts everything of other runs.
    let all = BudgetGuard::new(
        settings(None, Some(6.0)),
        Arc::new(PriceTable::builtin()),
        "gw1",
        Some(Box::new(ledger)),
    );
    assert!(all.admit(0.71).is_err());
}

#[test]
fn concurrent_reservations_never_pass_the_budget() {
    // Many threads reserve random amounts and settle at or under them; at no moment may
    // spent + reserved pass the limit, and the total spent never does.
    let limit = 1.0;
    let g = guard(Some(limit), None);
    let peak = Arc::new(Mutex::new(0.0_f64));
    let admitted = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (g, peak, admitted) = (g.clone(), peak.clone(), admitted.clone());
            std::thread::spawn(move || {
                let mut rng = fastrand::Rng::with_seed(t);
                for _ in 0..2_000 {
                    let want = rng.f64() * 0.01;
                    if let Ok(h) = g.admit(want) {
                        admitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let (s, r) = g.spent();
                        let mut p = peak.lock().unwrap();
                        *p = p.max(s + r);
                        drop(p);
                        if rng.bool() {
                            h.settle(want * rng.f64());
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (spent, reserved) = g.spent();
    assert!(reserved.abs() < 1e-9, "{reserved}");
    assert!(spent <= limit + 1e-9, "{spent}");
    assert!(*peak.lock().unwrap() <= limit + 1e-9);
    // The budget was actually reached (the test exercises refusals, not just admissions).
    assert!(spent > limit * 0.9, "{spent}");
    assert!(g.exceeded().is_some());
    assert!(admitted.load(std::sync::atomic::Ordering::Relaxed) > 100);
}

#[tokio::test]
async fn tripped_completes_on_the_first_refusal() {
    let g = guard(Some(0.1), None);
    let waiter = tokio::spawn({
        let g = g.clone();
        async move { g.tripped().await }
    });
    tokio::task::yield_now().await;
    assert!(g.admit(0.2).is_err());
    let e = waiter.await.unwrap();
    assert!((e.needed_usd - 0.2).abs() < 1e-9);
}

#[test]
fn a_client_budget_within_the_gateways_holds_settles_and_releases_on_both() {
    let prices = Arc::new(PriceTable::builtin());
    let gateway = BudgetGuard::new(settings(None, Some(1.00)), prices.clone(), "gw", None);
    let client = |limit: f64| {
        BudgetGuard::for_requester(
            settings(None, Some(limit)),
            prices.clone(),
            "gw",
            "client:a",
            None,
            Some(gateway.clone()),
        )
    };
    let a = client(0.50);
    let b = client(0.80);
    // A hold on a client is a hold on the gateway too.
    let held = a.admit(0.40).unwrap();
    assert_eq!(gateway.spent(), (0.0, 0.40));
    // The client's own limit refuses first...
    assert_eq!(a.admit(0.20).unwrap_err().limit_usd, 0.50);
    // ...and the gateway's limit refuses another client's call that fits its own.
    let e = b.admit(0.70).unwrap_err();
    assert_eq!(e.limit_usd, 1.00, "{e:?}");
    assert_eq!(b.spent(), (0.0, 0.0), "a refused call holds nothing");
    held.settle(0.30);
    assert_eq!(a.spent(), (0.30, 0.0));
    assert_eq!(gateway.spent(), (0.30, 0.0));
    // A hold dropped unsettled releases both; growing holds both.
    let mut h = b.admit(0.10).unwrap();
    h.grow(0.60).unwrap();
    assert_eq!(gateway.spent(), (0.30, 0.60));
    assert!(
        h.grow(0.75).is_err(),
        "0.30 + 0.75 passes the gateway's 1.00"
    );
    drop(h);
    assert_eq!(gateway.spent(), (0.30, 0.0));
    assert_eq!(b.spent(), (0.0, 0.0));
}

#[test]
fn an_unpriced_model_under_a_client_budget_is_refused_when_the_gateway_refuses_it() {
    let prices = Arc::new(PriceTable::builtin());
    let strict = BudgetGuard::new(settings(None, Some(1.0)), prices.clone(), "gw", None);
    // A client budget lets unpriced models through on its own (as the gateway builds them).
    let lenient = BudgetSettings {
        allow_unpriced: true,
        ..settings(None, Some(0.5))
    };
    let client = BudgetGuard::for_requester(
        lenient,
        prices.clone(),
        "gw",
        "client:a",
        None,
        Some(strict),
    );
    assert!(matches!(
        client.price("nowhere", "no-such-model"),
        Err(BudgetRefusal::Unpriced { .. })
    ));
    let alone = BudgetGuard::for_requester(lenient, prices, "gw", "client:a", None, None);
    assert!(matches!(alone.price("nowhere", "no-such-model"), Ok(None)));
}
