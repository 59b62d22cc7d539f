//! Provider signals: learned limits that agree with the reset the provider gives, and hostile
//! values that are clamped instead of panicking (property tests over the parsers and the
//! supervisor). Paused tokio time drives the supervisor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU64;
use std::time::Duration;

use chrono::{DateTime, Utc};
use massgen::provider::signals::{Dialect, classify_error, observe, parse_go_duration};
use massgen::quota::time::MAX_PROVIDER_WAIT;
use massgen::quota::{
    Dimension, Limit, MAX_LEARNED_AMOUNT, RateLimitSignal, Remaining, ScopeId, ScopeSpec,
    SignalKind, TokenCount,
};
use massgen::supervisor::{
    AcquireError, AcquireRequest, QuotaHandle, ScopeSnapshot, SupervisorSettings,
};
use proptest::prelude::*;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use tokio::time::Instant;

const DAY: Duration = Duration::from_secs(86_400);

pub(crate) fn nz(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).unwrap()
}

pub(crate) fn wall() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// Feeds the headers `pairs` of an answer in `dialect` to `scope`, as a call that got them would.
pub(crate) fn report(q: &QuotaHandle, scope: &str, dialect: Dialect, pairs: &[(&str, &str)]) {
    q.feedback(
        ScopeId::from(scope),
        observe(dialect, &headers(pairs), wall()).unwrap(),
    );
}

pub(crate) fn settings() -> SupervisorSettings {
    SupervisorSettings {
        stagger: Duration::ZERO,
        ..SupervisorSettings::default()
    }
}

pub(crate) async fn start(scopes: &[(&str, ScopeSpec)]) -> QuotaHandle {
    let q = QuotaHandle::start_local_with_wall_clock(settings(), wall()).unwrap();
    for (name, spec) in scopes {
        q.register_scope(ScopeId::from(*name), spec.clone())
            .await
            .unwrap();
    }
    q
}

pub(crate) fn limits(l: Vec<Limit>) -> ScopeSpec {
    ScopeSpec {
        limits: l,
        ..ScopeSpec::default()
    }
}

pub(crate) fn req(scope: &str, est: u64, who: &str) -> AcquireRequest {
    AcquireRequest::new(vec![ScopeId::from(scope)], est, who)
}

pub(crate) fn ms_since(t0: Instant) -> u128 {
    (Instant::now() - t0).as_millis()
}

/// Acquires in a task that settles at once; yields when it was granted (ms since `t0`).
pub(crate) fn spawn_timed(
    q: &QuotaHandle,
    r: AcquireRequest,
    t0: Instant,
) -> tokio::task::JoinHandle<Result<u128, AcquireError>> {
    let q = q.clone();
    tokio::spawn(async move {
        let p = q.acquire(r).await?;
        let at = ms_since(t0);
        p.settle(0);
        Ok(at)
    })
}

pub(crate) async fn scope_snapshot(q: &QuotaHandle, name: &str) -> ScopeSnapshot {
    q.snapshot()
        .await
        .unwrap()
        .scopes
        .into_iter()
        .find(|s| s.scope == name)
        .unwrap()
}

// ---------- learned limits agree with the provider ----------

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn an_exhausted_limit_learns_the_window_its_reset_shows_4_per_10_s() {
    let q = start(&[("s", ScopeSpec::default())]).await;
    let t0 = Instant::now();
    for who in ["a", "b", "c", "d"] {
        q.acquire(req("s", 10, who)).await.unwrap().settle(10);
    }
    // The fourth answer: 4 requests (per minute, OpenAI documents), none left, all back in 9.5 s.
    report(
        &q,
        "s",
        Dialect::OpenAi,
        &[
            ("x-ratelimit-limit-requests", "4"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "9.5s"),
        ],
    );
    let snap = scope_snapshot(&q, "s").await;
    assert_eq!(snap.limits.len(), 1, "{:?}", snap.limits);
    let l = &snap.limits[0];
    assert_eq!((l.dimension, l.limit, l.period_secs), ("requests", 4, 10.0));
    assert!(l.learned);
    // The provider frees all four at 9.5 s (not 60 s); the next four then fill a 10 s window.
    let tasks: Vec<_> = (0..5)
        .map(|i| spawn_timed(&q, req("s", 10, &format!("w{i}")), t0))
        .collect();
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap().unwrap());
    }
    assert_eq!(at, vec![9_500, 9_500, 9_500, 9_500, 19_500]);
}

/// Anthropic's headers after one ordinary answer to a request of 6000 input tokens and a
/// 4096 output cap, under an ITPM of 30000 and an OTPM of 8000: the combined `tokens-*` headers
/// report the most restrictive limit of the moment (the OTPM), not a limit on input plus output.
#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn anthropic_input_and_output_limits_are_learned_per_dimension_and_stay_admissible() {
    let spec = limits(vec![Limit::itpm(nz(30_000)), Limit::otpm(nz(8_000))]);
    let q = start(&[("s", spec)]).await;
    let t0 = Instant::now();
    let big = || req("s", 10_096, "a").with_tokens(TokenCount::new(6_000, 4_096));
    q.acquire(big()).await.unwrap().settle(10_096);
    let h = headers(&[
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("anthropic-ratelimit-requests-reset", "2026-06-01T12:00:02Z"),
        ("anthropic-ratelimit-input-tokens-limit", "30000"),
        ("anthropic-ratelimit-input-tokens-remaining", "24000"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2026-06-01T12:00:12Z",
        ),
        ("anthropic-ratelimit-output-tokens-limit", "8000"),
        ("anthropic-ratelimit-output-tokens-remaining", "3904"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "2026-06-01T12:00:31Z",
        ),
        ("anthropic-ratelimit-tokens-limit", "8000"),
        ("anthropic-ratelimit-tokens-remaining", "3904"),
        ("anthropic-ratelimit-tokens-reset", "2026-06-01T12:00:31Z"),
    ]);
    q.feedback(
        ScopeId::from("s"),
        observe(Dialect::Anthropic, &h, wall()).unwrap(),
    );
    let snap = scope_snapshot(&q, "s").await;
    assert!(
        snap.limits.iter().all(|l| l.dimension != "tokens"),
        "combined tokens learned as a limit on input + output: {:?}",
        snap.limits
    );
    let dims: Vec<_> = snap.limits.iter().map(|l| l.dimension).collect();
    assert!(dims.contains(&"input_tokens") && dims.contains(&"output_tokens"));
    // The same request again fits the limits: it waits for output tokens to free, never fails.
    let at = spawn_timed(&q, big(), t0).await.unwrap();
    assert!(at.is_ok(), "{at:?}");
}

/// The output tokens are used up, but the scope's own OTPM log holds all the provider counted:
/// the ledger holds the next request until they free, so neither the output headers nor the
/// combined `tokens` headers (which then say the same) close the scope until the reset.
#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn anthropic_used_up_output_the_scope_holds_is_no_cooldown_despite_combined_tokens() {
    let spec = limits(vec![Limit::itpm(nz(30_000)), Limit::otpm(nz(8_000))]);
    let q = start(&[("s", spec)]).await;
    q.acquire(req("s", 8_100, "a").with_tokens(TokenCount::new(100, 8_000)))
        .await
        .unwrap()
        .settle_tokens(TokenCount::new(100, 8_000));
    let h = headers(&[
        ("anthropic-ratelimit-input-tokens-limit", "30000"),
        ("anthropic-ratelimit-input-tokens-remaining", "29900"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2026-06-01T12:00:01Z",
        ),
        ("anthropic-ratelimit-output-tokens-limit", "8000"),
        ("anthropic-ratelimit-output-tokens-remaining", "0"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "2026-06-01T12:01:00Z",
        ),
        ("anthropic-ratelimit-tokens-limit", "8000"),
        ("anthropic-ratelimit-tokens-remaining", "0"),
        ("anthropic-ratelimit-tokens-reset", "2026-06-01T12:01:00Z"),
    ]);
    q.feedback(
        ScopeId::from("s"),
        observe(Dialect::Anthropic, &h, wall()).unwrap(),
    );
    let snap = scope_snapshot(&q, "s").await;
    assert!(snap.cooldown_remaining_ms.is_none(), "{snap:?}");
    // Alone, the combined headers still close the scope until their reset when none is left.
    report(
        &q,
        "s",
        Dialect::Anthropic,
        &[
            ("anthropic-ratelimit-tokens-limit", "8000"),
            ("anthropic-ratelimit-tokens-remaining", "0"),
            ("anthropic-ratelimit-tokens-reset", "2026-06-01T12:00:20Z"),
        ],
    );
    let snap = scope_snapshot(&q, "s").await;
    assert_eq!(snap.cooldown_remaining_ms, Some(20_000), "{snap:?}");
}

/// Anthropic's input- and output-token headers teach limits of their own dimension.
#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn anthropic_input_and_output_headers_teach_their_own_dimensions() {
    let q = start(&[("s", ScopeSpec::default())]).await;
    report(
        &q,
        "s",
        Dialect::Anthropic,
        &[
            ("anthropic-ratelimit-input-tokens-limit", "30000"),
            ("anthropic-ratelimit-input-tokens-remaining", "30000"),
            ("anthropic-ratelimit-output-tokens-limit", "8000"),
            ("anthropic-ratelimit-output-tokens-remaining", "8000"),
            ("anthropic-ratelimit-tokens-limit", "8000"),
            ("anthropic-ratelimit-tokens-remaining", "8000"),
        ],
    );
    let snap = scope_snapshot(&q, "s").await;
    let mut got: Vec<_> = snap
        .limits
        .iter()
        .map(|l| (l.dimension, l.limit, l.period_secs))
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        got,
        vec![
            ("input_tokens", 30_000, 60.0),
            ("output_tokens", 8_000, 60.0)
        ]
    );
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn none_left_without_a_reset_is_booked_for_a_whole_period_not_admitted_at_once() {
    let q = start(&[("s", ScopeSpec::default())]).await;
    let t0 = Instant::now();
    q.acquire(req("s", 10, "a")).await.unwrap().settle(10);
    // 4 requests (per minute, OpenAI documents), none left, and no word on when they free.
    report(
        &q,
        "s",
        Dialect::OpenAi,
        &[
            ("x-ratelimit-limit-requests", "4"),
            ("x-ratelimit-remaining-requests", "0"),
        ],
    );
    let tasks: Vec<_> = (0..5)
        .map(|i| spawn_timed(&q, req("s", 10, &format!("w{i}")), t0))
        .collect();
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap().unwrap());
    }
    assert_eq!(at, vec![60_000, 60_000, 60_000, 60_000, 120_000]);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn none_left_without_a_limit_or_a_reset_cools_down_for_the_default_wait() {
    let q = start(&[("s", ScopeSpec::default())]).await;
    let t0 = Instant::now();
    let h = headers(&[("x-ratelimit-remaining-requests", "0")]);
    q.feedback(
        ScopeId::from("s"),
        observe(Dialect::OpenAi, &h, wall()).unwrap(),
    );
    let snap = scope_snapshot(&q, "s").await;
    assert_eq!(snap.cooldown_remaining_ms, Some(60_000), "{snap:?}");
    let at = spawn_timed(&q, req("s", 10, "next"), t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at, 60_000);
}

/// Four grants at 0, 250, 500 and 500 ms under a configured 4 per 10 s, then the fourth
/// answer's headers at 550 ms: `used`, the requests the provider counted beyond the scope's own.
async fn full_window_then_report(used_elsewhere: u64) -> (QuotaHandle, Instant) {
    let spec = limits(vec![
        Limit::new(Dimension::Requests, 4, Duration::from_secs(10)).unwrap(),
    ]);
    let q = start(&[("s", spec)]).await;
    let t0 = Instant::now();
    let ours = 4 - used_elsewhere;
    for (i, at_ms) in [0u64, 250, 500, 500]
        .into_iter()
        .take(ours as usize)
        .enumerate()
    {
        tokio::time::sleep_until(t0 + Duration::from_millis(at_ms)).await;
        q.acquire(req("s", 1, &format!("a{i}")))
            .await
            .unwrap()
            .settle(1);
    }
    tokio::time::sleep_until(t0 + Duration::from_millis(550)).await;
    report(
        &q,
        "s",
        Dialect::OpenAi,
        &[
            ("x-ratelimit-limit-requests", "4"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "10s"),
        ],
    );
    (q, t0)
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_full_window_the_scope_already_holds_waits_for_its_oldest_not_the_full_reset() {
    // The provider frees one slot when the oldest of its four leaves (10 s), all four when the
    // newest leaves (the reset): waiting for the reset would idle the scope half a second.
    let (q, t0) = full_window_then_report(0).await;
    let snap = scope_snapshot(&q, "s").await;
    assert!(snap.cooldown_remaining_ms.is_none(), "{snap:?}");
    let at = spawn_timed(&q, req("s", 1, "next"), t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(at, 10_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn usage_the_scope_did_not_see_is_booked_to_free_at_the_reset() {
    // Two of the provider's four came from elsewhere: they are booked to free at the reset
    // (10.55 s); the scope's own two free at 10 s and 10.25 s, so the next request waits for
    // the first of the four to leave, never earlier than the provider frees a slot.
    let (q, t0) = full_window_then_report(2).await;
    let snap = scope_snapshot(&q, "s").await;
    assert_eq!(snap.limits[0].used, 4, "{snap:?}");
    let first = spawn_timed(&q, req("s", 1, "x"), t0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, 10_000);
    let tasks: Vec<_> = (0..2)
        .map(|i| spawn_timed(&q, req("s", 1, &format!("y{i}")), t0))
        .collect();
    let mut at = Vec::new();
    for t in tasks {
        at.push(t.await.unwrap().unwrap());
    }
    assert_eq!(at, vec![10_250, 10_550]);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn the_scopes_own_history_widens_a_reset_counted_from_the_oldest_request() {
    // A provider whose reset counts from the oldest request in its window: requests at 0 and
    // 30 s, "none left, back in 29.5 s" at 30.5 s. The window is no longer than 29.5 s plus the
    // age of the older of the two admissions: 60 s, not 30 s.
    let q = start(&[(
        "s",
        limits(vec![Limit::new(Dimension::Requests, 100, DAY).unwrap()]),
    )])
    .await;
    q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    report(
        &q,
        "s",
        Dialect::OpenAi,
        &[
            ("x-ratelimit-limit-requests", "2"),
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-reset-requests", "29.5s"),
        ],
    );
    let snap = scope_snapshot(&q, "s").await;
    let learned: Vec<_> = snap.limits.iter().filter(|l| l.learned).collect();
    assert_eq!(learned.len(), 1, "{:?}", snap.limits);
    assert_eq!((learned[0].limit, learned[0].period_secs), (2, 60.0));
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_configured_limit_is_not_replaced_by_a_contradicted_documented_one() {
    let q = start(&[(
        "s",
        limits(vec![
            Limit::new(Dimension::Requests, 4, Duration::from_secs(10)).unwrap(),
        ]),
    )])
    .await;
    let t0 = Instant::now();
    for _ in 0..4 {
        q.acquire(req("s", 1, "a")).await.unwrap().settle(1);
    }
    // One request used and back in 9.9 s: a per-minute limit of 4 would take 15 s, so the
    // minute is contradicted and nothing is learned; the exhausted report agrees with 4 per 10 s.
    for (remaining, reset) in [("3", "9.9s"), ("0", "9.5s")] {
        let h = headers(&[
            ("x-ratelimit-limit-requests", "4"),
            ("x-ratelimit-remaining-requests", remaining),
            ("x-ratelimit-reset-requests", reset),
        ]);
        q.feedback(
            ScopeId::from("s"),
            observe(Dialect::OpenAi, &h, wall()).unwrap(),
        );
    }
    let snap = scope_snapshot(&q, "s").await;
    assert_eq!(snap.limits.len(), 1, "{:?}", snap.limits);
    assert!(!snap.limits[0].learned);
    let next = spawn_timed(&q, req("s", 1, "a"), t0);
    assert_eq!(next.await.unwrap().unwrap(), 10_000);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn a_learned_limit_stricter_in_effect_is_added_to_a_configured_one() {
    let q = start(&[(
        "s",
        limits(vec![
            Limit::new(Dimension::Requests, 4, Duration::from_secs(10)).unwrap(),
        ]),
    )])
    .await;
    // Two used and back in 30 s: what a limit of 4 per minute refilling as it goes reports.
    report(
        &q,
        "s",
        Dialect::OpenAi,
        &[
            ("x-ratelimit-limit-requests", "4"),
            ("x-ratelimit-remaining-requests", "2"),
            ("x-ratelimit-reset-requests", "30s"),
        ],
    );
    let snap = scope_snapshot(&q, "s").await;
    let periods: Vec<_> = snap
        .limits
        .iter()
        .map(|l| (l.limit, l.period_secs, l.learned))
        .collect();
    assert_eq!(periods, vec![(4, 10.0, false), (4, 60.0, true)]);
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn groq_requests_are_learned_per_day_and_tokens_per_minute() {
    let q = start(&[("groq", ScopeSpec::default())]).await;
    report(
        &q,
        "groq",
        Dialect::Groq,
        &[
            ("x-ratelimit-limit-requests", "14400"),
            ("x-ratelimit-remaining-requests", "14370"),
            ("x-ratelimit-reset-requests", "2m59.56s"),
            ("x-ratelimit-limit-tokens", "6000"),
            ("x-ratelimit-remaining-tokens", "5997"),
            ("x-ratelimit-reset-tokens", "7.66s"),
        ],
    );
    let snap = scope_snapshot(&q, "groq").await;
    let got: Vec<_> = snap
        .limits
        .iter()
        .map(|l| (l.dimension, l.limit, l.period_secs))
        .collect();
    assert_eq!(
        got,
        vec![("requests", 14_400, 86_400.0), ("tokens", 6000, 60.0)]
    );
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn an_exhausted_per_day_quota_with_an_absurd_reset_reopens_within_a_day() {
    let q = start(&[("groq", ScopeSpec::default())]).await;
    let t0 = Instant::now();
    let h = headers(&[
        ("x-ratelimit-limit-requests", "1000"),
        ("x-ratelimit-remaining-requests", "0"),
        ("x-ratelimit-reset-requests", "99999999999999999999h"),
    ]);
    let signal = observe(Dialect::Groq, &h, wall()).unwrap();
    assert_eq!(signal.remaining[0].reset_after, Some(DAY));
    q.feedback(ScopeId::from("groq"), signal);
    let mut r = req("groq", 1, "a");
    r.deadline = Some(DAY * 2);
    assert_eq!(spawn_timed(&q, r, t0).await.unwrap().unwrap(), 86_400_000);
    let snap = scope_snapshot(&q, "groq").await;
    assert_eq!(
        (snap.limits[0].limit, snap.limits[0].period_secs),
        (1000, 86_400.0)
    );
}

// ---------- hostile replies ----------

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn an_absurd_retry_after_is_clamped_and_the_scope_reopens_at_the_clamp() {
    let q = start(&[("s", ScopeSpec::default()), ("other", ScopeSpec::default())]).await;
    let t0 = Instant::now();
    let body = r#"{"error":{"message":"Rate limit reached. Please try again in 99999999999999999999h.","type":"requests","code":"rate_limit_exceeded"}}"#;
    for retry in ["99999999999999999999", "1e400", "-5", "NaN", ""] {
        let h = headers(&[("retry-after", retry)]);
        let e = classify_error(Dialect::OpenAi, 429, &h, body, wall());
        let s = e.signal.unwrap();
        assert_eq!(
            s.retry_after,
            Some(MAX_PROVIDER_WAIT),
            "retry-after {retry:?}"
        );
        q.feedback(ScopeId::from("s"), s);
    }
    // Other scopes keep being served at once.
    q.acquire(req("other", 1, "a")).await.unwrap().settle(1);
    assert_eq!(ms_since(t0), 0);
    let mut r = req("s", 1, "a");
    r.deadline = Some(MAX_PROVIDER_WAIT * 2);
    let at = spawn_timed(&q, r, t0).await.unwrap().unwrap();
    assert_eq!(at, MAX_PROVIDER_WAIT.as_millis());
}

#[actix_rt::test(system = "crate::actors::PausedSystem")]
async fn signals_from_library_callers_with_huge_durations_do_not_stop_the_supervisor() {
    let q = start(&[("s", ScopeSpec::default()), ("other", ScopeSpec::default())]).await;
    let mut daily = RateLimitSignal::new(SignalKind::DailyQuotaExhausted);
    daily.retry_after = Some(Duration::MAX);
    let mut observed = RateLimitSignal::new(SignalKind::Observed);
    observed.remaining = vec![Remaining {
        dimension: Dimension::Tokens,
        limit: Some(u64::MAX),
        remaining: 0,
        reset_after: Some(Duration::MAX),
        period: Some(Duration::MAX),
    }];
    observed.learned_limits =
        vec![Limit::new(Dimension::Requests, u64::MAX, Duration::MAX).unwrap()];
    for s in [
        RateLimitSignal::new(SignalKind::RateLimited).with_retry_after(Duration::MAX),
        RateLimitSignal::new(SignalKind::Overloaded).with_retry_after(Duration::MAX),
        daily,
        observed,
    ] {
        q.feedback(ScopeId::from("s"), s);
    }
    let t0 = Instant::now();
    q.acquire(req("other", 1, "a")).await.unwrap().settle(1);
    assert_eq!(ms_since(t0), 0);
    let snap = scope_snapshot(&q, "s").await;
    assert!(
        snap.limits.is_empty(),
        "absurd limits learned: {:?}",
        snap.limits
    );
    let left = snap.cooldown_remaining_ms.unwrap();
    assert!(left <= MAX_PROVIDER_WAIT.as_millis() as u64, "{left}");
}

// ---------- property tests ----------

/// Header values a hostile or broken server might send.
fn hostile_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{0,30}",
        "-?[0-9]{1,25}(\\.[0-9]{0,10})?",
        "([0-9]{1,22}(\\.[0-9]{0,6})?(h|m|s|ms|us|µs|ns)){1,4}",
        Just("NaN".to_owned()),
        Just("inf".to_owned()),
        Just("1e400".to_owned()),
        Just(String::new()),
        "[ -~]{0,40}",
        "(19|20|99)[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z",
        "(Sun|Mon), [0-3][0-9] (Jan|Dec) [0-9]{4} [0-2][0-9]:[0-5][0-9]:[0-5][0-9] GMT",
    ]
}

const HEADER_NAMES: &[&str] = &[
    "retry-after",
    "retry-after-ms",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-limit",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-tokens-limit",
    "anthropic-ratelimit-tokens-remaining",
    "anthropic-ratelimit-tokens-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
];

/// Error bodies: the real shapes with hostile numbers, and plain garbage.
fn hostile_body() -> impl Strategy<Value = String> {
    prop_oneof![
        hostile_value().prop_map(|n| format!(
            r#"{{"error":{{"message":"Rate limit reached for m on tokens per min (TPM): Limit {n}, Used 1, Requested 2. Please try again in {n}. Visit","type":"tokens","code":"rate_limit_exceeded"}}}}"#
        )),
        hostile_value().prop_map(|n| format!(
            r#"{{"error":{{"code":429,"message":"x","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaValue":"{n}"}}]}},{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"{n}"}}]}}}}"#
        )),
        hostile_value().prop_map(|n| format!("Please try again in {n}h. on requests per {n}: Limit {n}")),
        "[ -~]{0,200}",
        Just(String::new()),
    ]
}

fn check_clamped(s: &RateLimitSignal) -> Result<(), TestCaseError> {
    if let Some(d) = s.retry_after {
        prop_assert!(d <= MAX_PROVIDER_WAIT, "retry_after {d:?}");
    }
    for r in &s.remaining {
        if let Some(d) = r.reset_after {
            prop_assert!(d <= MAX_PROVIDER_WAIT, "reset_after {d:?}");
        }
    }
    for l in &s.learned_limits {
        prop_assert!(l.amount.get() <= MAX_LEARNED_AMOUNT, "{l}");
        prop_assert!(!l.period.is_zero() && l.period <= MAX_PROVIDER_WAIT, "{l}");
    }
    Ok(())
}

fn arb_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::MAX),
        Just(Duration::ZERO),
        (0u64..=u64::MAX, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
        (0u64..200_000).prop_map(Duration::from_millis),
    ]
}

fn arb_signal() -> impl Strategy<Value = RateLimitSignal> {
    let kind = prop_oneof![
        Just(SignalKind::RateLimited),
        Just(SignalKind::DailyQuotaExhausted),
        Just(SignalKind::Overloaded),
        Just(SignalKind::Observed),
        Just(SignalKind::RequestTooLarge {
            limit: Some(1),
            requested: None
        }),
    ];
    let remaining = (
        any::<bool>(),
        proptest::option::of(any::<u64>()),
        any::<u64>(),
        proptest::option::of(arb_duration()),
        proptest::option::of(arb_duration()),
    )
        .prop_map(
            |(tokens, limit, remaining, reset_after, period)| Remaining {
                dimension: if tokens {
                    Dimension::Tokens
                } else {
                    Dimension::Requests
                },
                limit,
                remaining,
                reset_after,
                period,
            },
        );
    let limit = (1u64..=u64::MAX, arb_duration()).prop_filter_map("zero period", |(a, p)| {
        Limit::new(Dimension::Requests, a, p).ok()
    });
    (
        kind,
        proptest::option::of(arb_duration()),
        proptest::collection::vec(remaining, 0..3),
        proptest::collection::vec(limit, 0..3),
    )
        .prop_map(|(kind, retry_after, remaining, learned_limits)| {
            let mut s = RateLimitSignal::new(kind);
            s.retry_after = retry_after;
            s.remaining = remaining;
            s.learned_limits = learned_limits;
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any header values and any body: the parsers never panic and every duration and limit
    /// they produce is clamped.
    #[test]
    fn parsers_never_panic_and_clamp(
        values in proptest::collection::vec((0..HEADER_NAMES.len(), hostile_value()), 0..8),
        body in hostile_body(),
        status in prop_oneof![Just(429u16), Just(413), Just(529), Just(500), Just(200), 100u16..600],
    ) {
        let mut h = HeaderMap::new();
        for (i, v) in &values {
            if let Ok(value) = HeaderValue::from_str(v) {
                h.insert(HeaderName::from_static(HEADER_NAMES[*i]), value);
            }
        }
        for dialect in [Dialect::OpenAi, Dialect::Groq, Dialect::Gemini, Dialect::Anthropic] {
            if let Some(s) = classify_error(dialect, status, &h, &body, wall()).signal {
                check_clamped(&s)?;
            }
            if let Some(s) = observe(dialect, &h, wall()) {
                check_clamped(&s)?;
            }
        }
    }

    #[test]
    fn go_durations_are_clamped(s in hostile_value()) {
        if let Some(d) = parse_go_duration(&s) {
            prop_assert!(d <= MAX_PROVIDER_WAIT);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any signals at all, sent to one scope: the supervisor never panics, keeps answering, and
    /// a request on another scope is still granted at once.
    #[test]
    fn the_supervisor_survives_any_signal_and_keeps_serving_other_scopes(
        signals in proptest::collection::vec(arb_signal(), 1..6),
    ) {
        let rt = crate::paused_system();
        rt.block_on(async move {
            let q = start(&[
                ("hit", limits(vec![Limit::rpm(nz(5))])),
                ("other", limits(vec![Limit::rpm(nz(5))])),
            ])
            .await;
            for s in signals {
                q.feedback(ScopeId::from("hit"), s);
            }
            let t0 = Instant::now();
            let p = q.acquire(req("other", 1, "a")).await;
            prop_assert!(p.is_ok(), "{p:?}");
            prop_assert_eq!(ms_since(t0), 0);
            let snap = scope_snapshot(&q, "hit").await;
            if let Some(ms) = snap.cooldown_remaining_ms {
                prop_assert!(ms <= MAX_PROVIDER_WAIT.as_millis() as u64, "{ms}");
            }
            Ok(())
        })?;
    }
}
