#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::Ordering;

use super::*;

fn rec(i: i64) -> UsageRecord {
    UsageRecord {
        at_ms: i,
        run_id: "r".into(),
        agent: "a".into(),
        provider: "simulated".into(),
        model: "m".into(),
        key: String::new(),
        input_tokens: 1,
        output_tokens: 2,
        cost_usd: Some(0.0),
        outcome: "ok".into(),
        latency_ms: 3,
    }
}

#[tokio::test]
async fn records_are_written_in_batches_and_a_flush_waits_for_them() {
    let store = MemoryUsage::default();
    let ledger = UsageLedger::start(Box::new(store.clone()), "memory".into());
    for i in 0..600 {
        ledger.record(rec(i));
    }
    ledger.flush().await;
    let all = store.all();
    assert_eq!(all.len(), 600);
    assert!(
        all.iter().enumerate().all(|(i, r)| r.at_ms == i as i64),
        "order kept"
    );
    let appends = store.appends.load(Ordering::Relaxed);
    // At most 256 per batch, and batched (not one transaction per record).
    assert!((3..=20).contains(&appends), "{appends} appends");
    assert_eq!((ledger.written(), ledger.dropped()), (600, 0));
}

#[tokio::test]
async fn a_failing_store_keeps_records_until_it_works_and_counts_what_it_drops() {
    let store = MemoryUsage::default();
    store.fail.store(true, Ordering::Relaxed);
    let ledger = UsageLedger::start(Box::new(store.clone()), "memory".into());
    ledger.record(rec(1));
    ledger.record(rec(2));
    ledger.flush().await;
    assert!(ledger.is_failing());
    assert_eq!((ledger.written(), ledger.dropped()), (0, 0));
    store.fail.store(false, Ordering::Relaxed);
    ledger.flush().await;
    assert_eq!(store.all().len(), 2);
    assert!(!ledger.is_failing());
    // Failing again at the end: the last flush (the ledger dropped) counts what it lost.
    store.fail.store(true, Ordering::Relaxed);
    ledger.record(rec(3));
    let counters = ledger.counters();
    drop(ledger);
    assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
    assert_eq!(counters.written.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn dropping_the_last_handle_writes_everything() {
    let store = MemoryUsage::default();
    let ledger = UsageLedger::start(Box::new(store.clone()), "memory".into());
    let other = ledger.clone();
    for i in 0..10 {
        other.record(rec(i));
    }
    drop(other);
    drop(ledger);
    assert_eq!(store.all().len(), 10);
}

#[tokio::test]
async fn a_call_dropped_before_it_ended_is_recorded_as_cancelled() {
    use crate::config::PriceTable;
    use crate::keys::ApiKey;
    use crate::provider::{ChatResponse, Usage};
    let store = MemoryUsage::default();
    let ledger = UsageLedger::start(Box::new(store.clone()), "memory".into());
    let run = RunUsage::new(
        "run-7",
        Some(ledger.clone()),
        Arc::new(PriceTable::builtin()),
    );
    let tap = run.tap("agent-1");
    let key = ApiKey::new("sk-secret-value-000000abcd", "test");
    drop(tap.start("openai", "gpt-4o-2024-08-06", Some(&key)));
    let ok = Ok(ChatResponse {
        text: String::new(),
        tool_calls: Vec::new(),
        usage: Some(Usage {
            input_tokens: 1_000_000,
            output_tokens: 100_000,
            input_unreported: false,
            output_unreported: false,
        }),
        finish_reason: None,
        observed: None,
    });
    tap.start("openai", "gpt-4o", Some(&key)).finish(&ok);
    tap.start("openai", "unknown-model", None).finish(&ok);
    ledger.flush().await;
    let all = store.all();
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].outcome, "cancelled");
    assert_eq!((all[0].input_tokens, all[0].cost_usd), (0, Some(0.0)));
    assert_eq!(all[1].outcome, "ok");
    assert_eq!(
        (all[1].run_id.as_str(), all[1].agent.as_str()),
        ("run-7", "agent-1")
    );
    assert!((all[1].cost_usd.unwrap() - 3.5).abs() < 1e-9);
    assert_eq!(all[1].key, key.fingerprint());
    assert!(all[1].key.starts_with("****abcd#") && !all[1].key.contains("secret"));
    assert_eq!((all[2].cost_usd, all[2].key.as_str()), (None, ""));
    let t = run.totals();
    assert_eq!((t.calls, t.ok, t.errors, t.unpriced_calls), (3, 2, 1, 1));
    assert_eq!(t.input_tokens, 2_000_000);
}

#[tokio::test]
async fn a_cancelled_call_of_a_known_request_counts_what_it_reserved() {
    use crate::config::PriceTable;
    let store = MemoryUsage::default();
    let ledger = UsageLedger::start(Box::new(store.clone()), "memory".into());
    let run = RunUsage::new(
        "run-8",
        Some(ledger.clone()),
        Arc::new(PriceTable::builtin()),
    );
    let tap = run.tap("agent-1");
    let request = Arc::new(crate::provider::ChatRequest {
        model: "gpt-4o".into(),
        messages: vec![crate::provider::Message::user(
            "How many words does this prompt have when counted as tokens?",
        )],
        tools: Vec::new(),
        temperature: None,
        max_tokens: Some(500),
        stream: false,
        options: Default::default(),
    });
    // The provider may have received it: counted at its prompt estimate and its output cap.
    drop(tap.start_request("openai", &request, None));
    ledger.flush().await;
    let all = store.all();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].outcome, "cancelled");
    let counter = crate::routing::estimate::TokenCounter::for_model("openai", "gpt-4o");
    let reserved = crate::routing::estimate::estimate_tokens(&request, counter);
    assert!(reserved.input > 5, "{reserved:?}");
    assert_eq!(
        (all[0].input_tokens, all[0].output_tokens),
        (reserved.input, 500)
    );
    let price = PriceTable::builtin()
        .lookup("openai", "gpt-4o")
        .cloned()
        .unwrap();
    let cost = all[0].cost_usd.unwrap();
    assert!((cost - price.cost(reserved.input, 500)).abs() < 1e-12 && cost > 0.0);
    assert_eq!(run.totals().cost_usd, cost);
}

#[test]
fn outcomes_name_what_happened() {
    use crate::provider::{ChatResponse, ProviderError, ProviderErrorKind, Usage};
    let err = |kind| outcome_of(&Err(ProviderError::new(kind, "x")));
    assert_eq!(err(ProviderErrorKind::RateLimited), "rate_limited");
    assert_eq!(err(ProviderErrorKind::Cancelled), "cancelled");
    assert_eq!(err(ProviderErrorKind::Transient), "error:transient");
    assert_eq!(err(ProviderErrorKind::Auth), "error:auth");
    assert_eq!(
        err(ProviderErrorKind::RequestTooLarge),
        "error:request_too_large"
    );
    let ok = |usage| {
        outcome_of(&Ok(ChatResponse {
            text: String::new(),
            tool_calls: Vec::new(),
            usage,
            finish_reason: None,
            observed: None,
        }))
    };
    let reported = Usage {
        input_tokens: 3,
        output_tokens: 4,
        input_unreported: false,
        output_unreported: false,
    };
    assert_eq!(ok(Some(reported)), "ok");
    assert_eq!(ok(None), "ok:usage_unreported");
    let half = Usage {
        output_unreported: true,
        ..reported
    };
    assert_eq!(ok(Some(half)), "ok:usage_unreported");
}
