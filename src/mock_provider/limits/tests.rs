#![allow(clippy::unwrap_used)]
use super::*;

fn req(n: u64) -> Charge {
    Charge {
        requests: 1,
        tokens: n,
        input_tokens: n,
        output_tokens: 0,
    }
}

#[test]
fn both_yaml_shapes() {
    let project = "gemini:\n  gemini-2.5-flash: {rpm: 10, tpm: 250000, rpd: 250, concurrency: 2}\n  default: {rpm: 5}\n";
    let l = MockLimits::parse_yaml(project).unwrap();
    assert_eq!(l.for_model("gemini-2.5-flash").len(), 3);
    assert_eq!(l.for_model("other")[0].amount.get(), 5);
    let flat = "default: {requests: 120, tokens: 20000, period_secs: 10}\nclaude: {itpm: 300, otpm: 100}\n";
    let l = MockLimits::parse_yaml(flat).unwrap();
    let got = l.for_model("any");
    assert_eq!(got[0].period, Duration::from_secs(10));
    assert_eq!(got[1].dimension, MockDimension::Tokens);
    let c = l.for_model("claude");
    assert_eq!(c[0].dimension, MockDimension::InputTokens);
    assert_eq!(c[1].dimension, MockDimension::OutputTokens);
    assert!(MockLimits::parse_yaml("default: {rpm: -1}").is_err());
    assert!(MockLimits::parse_yaml("default: {rpm: 0}").is_err());
    assert!(MockLimits::parse_yaml("- 1").is_err());
    assert!(MockLimits::unlimited().for_model("x").is_empty());
}

#[test]
fn windows_lists_as_in_the_project_limits_files() {
    let text = "chatcompletion:\n  default:\n    windows: [{requests: 2, per: 5s}, {tokens: 900, per: 1500ms}]\n    scope: per_key\n";
    let l = MockLimits::parse_yaml(text).unwrap();
    let got = l.for_model("m");
    assert_eq!(got.len(), 2);
    assert_eq!(
        (got[0].dimension, got[0].amount.get(), got[0].period),
        (MockDimension::Requests, 2, Duration::from_secs(5))
    );
    assert_eq!(got[1].period, Duration::from_millis(1500));
    let flat = "default:\n  windows: [{requests: 2, per: 5s}]\n";
    assert_eq!(
        MockLimits::parse_yaml(flat).unwrap().for_model("x").len(),
        1
    );
    for bad in [
        "default: {windows: [{requests: 2}]}",
        "default: {windows: [{requests: 2, tokens: 3, per: 1s}]}",
        "default: {windows: [{requests: 2, per: soon}]}",
        "default: {windows: 3}",
    ] {
        assert!(MockLimits::parse_yaml(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_project_limits_file_shape_loads() {
    let text = "gemini:\n  gemini-2.5-pro:\n    rpm: 2\n    tpm: 120000\n    rpd: 48\n    startup_cooldown: 10s\n    scope: per_account\n    daily_reset: \"00:00 America/Los_Angeles\"\nsimulated:\n  default:\n    rpm: 120\n    concurrency: 2\n    pacing: true\n";
    let l = MockLimits::parse_yaml(text).unwrap();
    assert_eq!(l.for_model("gemini-2.5-pro").len(), 3);
    assert_eq!(l.for_model("other")[0].amount.get(), 120);
}

#[test]
fn exact_sliding_window_and_full_reset() {
    let limit = MockLimit::new(MockDimension::Requests, 2, Duration::from_secs(10)).unwrap();
    let mut w = Windows::new(&[limit]);
    let t0 = Instant::now();
    assert_eq!(w.try_admit(&req(0), t0), Verdict::Admitted(1));
    let t4 = t0 + Duration::from_secs(4);
    assert_eq!(w.try_admit(&req(0), t4), Verdict::Admitted(2));
    // Full reset: when the newest entry leaves the window.
    assert_eq!(w.states(t4)[0].reset, Duration::from_secs(10));
    match w.try_admit(&req(0), t0 + Duration::from_secs(9)) {
        Verdict::Refused { retry_after, .. } => {
            assert_eq!(retry_after, Some(Duration::from_secs(1)));
        }
        v => unreachable!("{v:?}"),
    }
    assert_eq!(
        w.try_admit(&req(0), t0 + Duration::from_secs(10)),
        Verdict::Admitted(3)
    );
    let st = w.states(t0 + Duration::from_secs(10));
    assert_eq!(st[0].remaining, 0);
    assert_eq!(st[0].reset, Duration::from_secs(10));
    let later = w.states(t0 + Duration::from_secs(30));
    assert_eq!((later[0].remaining, later[0].reset), (2, Duration::ZERO));
}

#[test]
fn tokens_all_or_nothing_never_fitting_and_settlement() {
    let r = MockLimit::new(MockDimension::Requests, 10, Duration::from_secs(10)).unwrap();
    let t = MockLimit::new(MockDimension::Tokens, 100, Duration::from_secs(10)).unwrap();
    let o = MockLimit::new(MockDimension::OutputTokens, 50, Duration::from_secs(10)).unwrap();
    let mut w = Windows::new(&[r, t, o]);
    let t0 = Instant::now();
    assert_eq!(w.try_admit(&req(80), t0), Verdict::Admitted(1));
    assert!(matches!(
        w.try_admit(&req(30), t0),
        Verdict::Refused {
            used: 80,
            requested: 30,
            ..
        }
    ));
    assert_eq!(
        w.states(t0)[0].remaining,
        9,
        "a refused request is not counted"
    );
    assert!(matches!(
        w.try_admit(&req(101), t0),
        Verdict::Refused {
            retry_after: None,
            ..
        }
    ));
    // Re-weighing frees what the charge no longer holds.
    w.settle(1, &req(10));
    assert_eq!(w.states(t0)[1].remaining, 90);
    let out = Charge {
        requests: 1,
        tokens: 40,
        input_tokens: 0,
        output_tokens: 40,
    };
    let Verdict::Admitted(ticket) = w.try_admit(&out, t0) else {
        unreachable!()
    };
    assert!(matches!(w.try_admit(&out, t0), Verdict::Refused { limit, .. } if limit == o));
    w.settle(
        ticket,
        &Charge {
            output_tokens: 5,
            tokens: 5,
            ..out
        },
    );
    assert!(matches!(w.try_admit(&out, t0), Verdict::Admitted(_)));
}
