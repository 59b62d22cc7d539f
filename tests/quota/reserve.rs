//! Reservations split into input estimate and output cap: top-ups of a grown prompt, separate
//! input and output token limits (Anthropic's ITPM / OTPM), and the never-fits refusal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;
use std::time::Duration;

use massgen::quota::{Dimension, Limit, ScopeId, ScopeSpec, TokenCount};
use massgen::supervisor::{AcquireError, AcquireRequest, QuotaHandle, SupervisorSettings};

fn nz(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

async fn start(scopes: &[(&str, Vec<Limit>)]) -> QuotaHandle {
    let q = QuotaHandle::start_local(SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    })
    .unwrap();
    for (name, limits) in scopes {
        let spec = ScopeSpec {
            limits: limits.clone(),
            ..ScopeSpec::default()
        };
        q.register_scope(ScopeId::from(*name), spec).await.unwrap();
    }
    q
}

fn req(scopes: &[&str], tokens: TokenCount, who: &str) -> AcquireRequest {
    let scopes = scopes.iter().map(|s| ScopeId::from(*s)).collect();
    AcquireRequest::new(scopes, 0, who).with_tokens(tokens)
}

async fn used(q: &QuotaHandle, scope: &str, dimension: Dimension) -> u64 {
    let snap = q.snapshot().await.unwrap();
    let s = snap.scopes.iter().find(|s| s.scope == scope).unwrap();
    s.limits
        .iter()
        .find(|l| l.dimension == dimension.as_str())
        .unwrap()
        .used
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_grown_prompt_is_topped_up_in_every_scope_when_it_fits() {
    let q = start(&[
        ("model", vec![Limit::tpm(nz(1000))]),
        ("shared:g", vec![Limit::tpm(nz(2000))]),
    ])
    .await;
    let mut p = q
        .acquire(req(&["model", "shared:g"], TokenCount::new(100, 200), "a"))
        .await
        .unwrap();
    assert!(q.top_up(&mut p, TokenCount::new(150, 200)).await);
    assert_eq!(p.tokens(), TokenCount::new(150, 200));
    assert_eq!(used(&q, "model", Dimension::Tokens).await, 350);
    assert_eq!(used(&q, "shared:g", Dimension::Tokens).await, 350);
    // A smaller need changes nothing.
    assert!(q.top_up(&mut p, TokenCount::new(10, 10)).await);
    assert_eq!(p.tokens(), TokenCount::new(150, 200));
    // The settlement starts from the grown reservation.
    p.settle_tokens(TokenCount::new(150, 50));
    assert_eq!(used(&q, "model", Dimension::Tokens).await, 200);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_top_up_that_does_not_fit_changes_nothing_anywhere() {
    let q = start(&[
        ("model", vec![Limit::tpm(nz(2000))]),
        ("shared:g", vec![Limit::tpm(nz(500))]),
    ])
    .await;
    let mut p = q
        .acquire(req(&["model", "shared:g"], TokenCount::new(100, 200), "a"))
        .await
        .unwrap();
    // 300 held; 300 more would be 600 > 500 in the shared group.
    assert!(!q.top_up(&mut p, TokenCount::new(400, 200)).await);
    assert_eq!(p.tokens(), TokenCount::new(100, 200));
    assert_eq!(used(&q, "model", Dimension::Tokens).await, 300);
    assert_eq!(used(&q, "shared:g", Dimension::Tokens).await, 300);
    // Released uncounted: nothing stays.
    p.release_uncounted();
    assert_eq!(used(&q, "model", Dimension::Tokens).await, 0);
    assert_eq!(used(&q, "shared:g", Dimension::Tokens).await, 0);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn input_and_output_token_limits_reserve_and_settle_apart() {
    let itpm = Limit::itpm(nz(1000));
    let otpm = Limit::otpm(nz(600));
    let q = start(&[("anthropic/claude", vec![Limit::rpm(nz(50)), itpm, otpm])]).await;
    let scope = "anthropic/claude";
    let p1 = q
        .acquire(req(&[scope], TokenCount::new(300, 400), "a"))
        .await
        .unwrap();
    assert_eq!(used(&q, scope, Dimension::InputTokens).await, 300);
    assert_eq!(used(&q, scope, Dimension::OutputTokens).await, 400);
    // A second cap of 400 does not fit the 600 output tokens while the first is held...
    let q2 = q.clone();
    let second = tokio::spawn(async move {
        let start = tokio::time::Instant::now();
        let p = q2
            .acquire(req(&[scope], TokenCount::new(300, 400), "b"))
            .await
            .unwrap();
        (start.elapsed(), p)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    // ... until the first settles: input stays at what arrived, output to the actual 50.
    p1.settle_tokens(TokenCount::new(300, 50));
    let (waited, p2) = second.await.unwrap();
    assert_eq!(waited, Duration::from_secs(1));
    assert_eq!(used(&q, scope, Dimension::InputTokens).await, 600);
    assert_eq!(used(&q, scope, Dimension::OutputTokens).await, 450);
    // A total-only settlement keeps the reserved input and puts the rest on output.
    p2.settle(330);
    assert_eq!(used(&q, scope, Dimension::InputTokens).await, 600);
    assert_eq!(used(&q, scope, Dimension::OutputTokens).await, 80);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_request_that_can_never_fit_says_to_lower_max_tokens() {
    let q = start(&[
        ("openai/m", vec![Limit::tpm(nz(1000))]),
        (
            "anthropic/c",
            vec![Limit::itpm(nz(5000)), Limit::otpm(nz(1000))],
        ),
    ])
    .await;
    // 300 of prompt and a 701 cap: 1001 > 1000.
    let err = q
        .acquire(req(&["openai/m"], TokenCount::new(300, 701), "a"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AcquireError::NeverFits {
                requested: 1001,
                ..
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("lower max_tokens"), "{text}");
    // 300 + 700 fits exactly.
    q.acquire(req(&["openai/m"], TokenCount::new(300, 700), "a"))
        .await
        .unwrap()
        .settle(1000);
    // The output cap alone against an output limit; the prompt is not counted there.
    let err = q
        .acquire(req(&["anthropic/c"], TokenCount::new(4000, 1001), "a"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("output cap"), "{err}");
    q.acquire(req(&["anthropic/c"], TokenCount::new(4000, 1000), "a"))
        .await
        .unwrap();
}
