//! The key actor through its handles: one state for every holder, the circuit breaker's rest
//! and trial.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use super::*;
use crate::provider::{ProviderError, ProviderErrorKind, Usage};
use crate::quota::ScopeKind;
use crate::system::ActorSystem;

fn key(name: &str) -> ApiKey {
    ApiKey::new(format!("sk-test-{name}-0123456789"), "test")
}

fn down() -> ProviderError {
    ProviderError::new(ProviderErrorKind::Transient, "503 unavailable").with_status(503)
}

#[actix_rt::test]
async fn every_pool_with_a_key_shares_its_one_state() {
    let registry = KeyRegistry::new(&ActorSystem::current().unwrap());
    // Two agents (two pools), one key configured from two places.
    let a = KeyPool::new(
        &registry,
        "openai",
        "m",
        vec![key("shared"), key("own")],
        ScopeKind::PerKey,
        None,
    );
    let same = ApiKey::new(key("shared").expose().to_owned(), "team.yaml agents[1]");
    let b = KeyPool::new(
        &registry,
        "openai",
        "m",
        vec![same],
        ScopeKind::PerKey,
        None,
    );
    assert!(std::sync::Arc::ptr_eq(&a.keys()[0], &b.keys()[0]));
    assert_eq!(registry.handles().len(), 2);
    a.keys()[0].record_success(Some(Usage::new(10, 2))).await;
    b.keys()[0].record_success(Some(Usage::new(5, 1))).await;
    let u = a.keys()[0].usage();
    assert_eq!((u.calls, u.input_tokens, u.output_tokens), (2, 15, 3));
    let refused = ProviderError::new(ProviderErrorKind::Auth, "invalid key").with_status(401);
    assert!(a.keys()[0].record_error(&refused).await);
    assert!(b.candidates().is_empty(), "retired for the other agent too");
    assert_eq!(a.candidates().len(), 1);
    // Already retired: a late 401 from another call says so too.
    assert!(b.keys()[0].record_error(&refused).await);
    let shown = format!("{:?} {:?}", registry, registry.status());
    assert!(!shown.contains("sk-test-shared"), "{shown}");
    assert!(shown.contains("retired"), "{shown}");
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn failures_in_a_row_rest_the_key_then_one_trial_call_decides() {
    let registry = KeyRegistry::with_circuit(
        &ActorSystem::current().unwrap(),
        CircuitSettings {
            failures_to_open: 2,
            open_for: Duration::from_secs(30),
        },
    );
    let pool = KeyPool::new(
        &registry,
        "openai",
        "m",
        vec![key("flaky"), key("steady")],
        ScopeKind::PerKey,
        None,
    );
    let flaky = pool.keys()[0].clone();
    assert!(!flaky.record_error(&down()).await);
    assert_eq!(flaky.circuit(), CircuitState::Closed);
    flaky.record_error(&down()).await;
    assert_eq!(flaky.circuit(), CircuitState::Open);
    assert!(flaky.is_live() && !flaky.is_available());
    // Skipped while the other key is available, in every rotation.
    for _ in 0..3 {
        let c = pool.candidates();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].key.as_ref().unwrap().key(), &key("steady"));
    }
    tokio::time::sleep(Duration::from_secs(29)).await;
    assert_eq!(flaky.circuit(), CircuitState::Open);
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(flaky.circuit(), CircuitState::HalfOpen);
    assert_eq!(pool.candidates().len(), 2, "half-open: a trial may go");
    // One trial at a time; a trial whose caller left lets another be the trial.
    let trial = flaky.admit().await;
    assert!(matches!(trial, Admission::Go(Some(_))));
    assert!(matches!(flaky.admit().await, Admission::Busy));
    assert!(!flaky.is_available());
    assert_eq!(pool.candidates().len(), 1);
    drop(trial);
    let trial = flaky.admit().await;
    assert!(matches!(trial, Admission::Go(Some(_))));
    // The trial fails: resting again for the full time.
    flaky.record_error(&down()).await;
    drop(trial);
    assert_eq!(flaky.circuit(), CircuitState::Open);
    tokio::time::sleep(Duration::from_secs(31)).await;
    tokio::task::yield_now().await;
    assert_eq!(flaky.circuit(), CircuitState::HalfOpen);
    let trial = flaky.admit().await;
    flaky.record_success(None).await;
    drop(trial);
    assert_eq!(flaky.circuit(), CircuitState::Closed);
    assert!(matches!(flaky.admit().await, Admission::Go(None)));
}

#[actix_rt::test]
async fn resting_keys_are_still_used_when_no_other_key_is_available() {
    let registry = KeyRegistry::with_circuit(
        &ActorSystem::current().unwrap(),
        CircuitSettings {
            failures_to_open: 1,
            open_for: Duration::from_secs(30),
        },
    );
    let pool = KeyPool::new(
        &registry,
        "openai",
        "m",
        vec![key("one"), key("two")],
        ScopeKind::PerKey,
        None,
    );
    for k in pool.keys() {
        k.record_error(&down()).await;
    }
    assert_eq!(pool.candidates().len(), 2);
    assert!(!pool.other_available(pool.keys()[0].key()));
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_disabled_key_is_skipped_like_a_retired_one_until_enabled() {
    let registry = KeyRegistry::new(&ActorSystem::current().unwrap());
    let pool = KeyPool::new(
        &registry,
        "openai",
        "m",
        vec![key("one"), key("two")],
        ScopeKind::PerKey,
        None,
    );
    let one = registry.by_id(&key("one").short_id());
    assert_eq!(one.len(), 1);
    one[0].disable().await;
    assert!(!one[0].is_live() && one[0].status().disabled);
    for _ in 0..3 {
        let c = pool.candidates();
        assert_eq!(c.len(), 1, "every rotation leaves the disabled key out");
        assert_eq!(c[0].key.as_ref().unwrap().key(), &key("two"));
    }
    // Time does not bring a disabled key back.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(pool.candidates().len(), 1);
    pool.keys()[1].disable().await;
    assert!(pool.candidates().is_empty());
    let why = pool.retired_reasons();
    assert!(why.contains("disabled by an admin"), "{why}");
    assert!(!why.contains("sk-test-one"), "{why}");
    one[0].enable().await;
    assert!(one[0].is_live());
    assert_eq!(pool.candidates().len(), 1);
    // Enabling does not bring a retired key back.
    let refused = ProviderError::new(ProviderErrorKind::Auth, "invalid key").with_status(401);
    one[0].record_error(&refused).await;
    one[0].enable().await;
    assert!(!one[0].is_live());
    assert!(registry.by_id("00000000").is_empty());
}

#[actix_rt::test(system = "crate::system::PausedSystem")]
async fn a_forced_rest_ends_by_itself_and_a_later_order_replaces_it() {
    let registry = KeyRegistry::new(&ActorSystem::current().unwrap());
    let pool = KeyPool::new(
        &registry,
        "openai",
        "m",
        vec![key("one"), key("two")],
        ScopeKind::PerKey,
        None,
    );
    let one = pool.keys()[0].clone();
    one.rest_for(Duration::from_secs(60)).await;
    assert!(!one.is_live());
    assert!(one.status().cooling_until_ms.is_some());
    assert_eq!(pool.candidates().len(), 1);
    let why = one.status().unusable_reason().unwrap();
    assert!(why.contains("rests for"), "{why}");
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(!one.is_live(), "still resting before its end");
    tokio::time::sleep(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert!(one.is_live(), "the rest ended by itself");
    assert_eq!(one.status().cooling_until_ms, None);
    assert_eq!(pool.candidates().len(), 2);
    // A rest of 10 s replaced by one of 100 s: the first timer does not end the second.
    one.rest_for(Duration::from_secs(10)).await;
    one.rest_for(Duration::from_secs(100)).await;
    tokio::time::sleep(Duration::from_secs(11)).await;
    tokio::task::yield_now().await;
    assert!(!one.is_live());
    // Enabling ends a rest at once, and the old timer does not matter afterwards.
    one.enable().await;
    assert!(one.is_live());
    one.disable().await;
    tokio::time::sleep(Duration::from_secs(100)).await;
    tokio::task::yield_now().await;
    assert!(
        !one.is_live(),
        "the rest's timer does not enable a disabled key"
    );
}
