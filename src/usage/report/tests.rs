#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

fn rec(
    agent: &str,
    model: &str,
    outcome: &str,
    tokens: (u64, u64),
    cost: Option<f64>,
    ms: u64,
) -> UsageRecord {
    UsageRecord {
        at_ms: 1_767_225_600_000, // 2026-01-01T00:00:00Z
        run_id: "run-1".into(),
        agent: agent.into(),
        provider: "openai".into(),
        model: model.into(),
        key: String::new(),
        input_tokens: tokens.0,
        output_tokens: tokens.1,
        cost_usd: cost,
        outcome: outcome.into(),
        latency_ms: ms,
    }
}

fn sample() -> Vec<UsageRecord> {
    let mut v: Vec<UsageRecord> = (1..=20)
        .map(|i| rec("a", "gpt-4o", "ok", (100, 10), Some(0.001), i * 10))
        .collect();
    v.push(rec("b", "gpt-4o", "rate_limited", (0, 0), Some(0.0), 5));
    v.push(rec("b", "gpt-4o", "error:transient", (0, 0), Some(0.0), 7));
    v.push(rec("b", "mystery", "ok:usage_unreported", (0, 0), None, 9));
    v.push(rec("b", "gpt-4o", "cancelled", (0, 0), Some(0.0), 11));
    v
}

#[test]
fn groups_count_outcomes_tokens_cost_and_latency_percentiles() {
    let (groups, total) = aggregate(&sample(), GroupBy::Agent);
    assert_eq!(groups.len(), 2);
    let a = &groups[0];
    assert_eq!(
        (a.group.as_str(), a.calls, a.ok, a.rate_limited, a.errors),
        ("a", 20, 20, 0, 0)
    );
    assert_eq!((a.input_tokens, a.output_tokens), (2000, 200));
    assert!((a.cost_usd.unwrap() - 0.02).abs() < 1e-12);
    assert_eq!(a.unpriced_calls, 0);
    // Latencies 10, 20, ... 200 ms: the 10th and the 19th of 20.
    assert_eq!((a.p50_latency_ms, a.p95_latency_ms), (100, 190));
    let b = &groups[1];
    assert_eq!((b.calls, b.ok, b.rate_limited, b.errors), (4, 1, 1, 2));
    assert_eq!(b.unpriced_calls, 1);
    assert_eq!(b.cost_usd, Some(0.0));
    assert_eq!((total.calls, total.ok, total.unpriced_calls), (24, 21, 1));
    assert_eq!(total.input_tokens, 2000);
}

#[test]
fn a_group_of_only_unpriced_calls_has_no_cost() {
    let (groups, _) = aggregate(&sample(), GroupBy::Model);
    let names: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(names, ["openai/gpt-4o", "openai/mystery"]);
    assert_eq!(groups[1].cost_usd, None);
    let (days, _) = aggregate(&sample(), GroupBy::Day);
    assert_eq!(days[0].group, "2026-01-01");
    let (keys, _) = aggregate(&sample(), GroupBy::Key);
    assert_eq!(keys[0].group, "(none)");
}

#[test]
fn the_table_is_aligned_has_a_total_and_a_footnote_for_unknown_prices() {
    let text = render(&sample(), GroupBy::Agent, Format::Table);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("agent") && lines[0].contains("cost_usd"),
        "{text}"
    );
    // Every row of the table ends in the same column.
    let widths: Vec<usize> = lines[..5].iter().map(|l| l.chars().count()).collect();
    assert!(widths.iter().all(|w| *w == widths[0]), "{text}");
    assert!(lines[3].starts_with("---"), "{text}");
    assert!(
        lines[4].starts_with("total") && lines[4].contains("0.020000+?"),
        "{text}"
    );
    assert!(lines[2].contains("0.000000+?"), "{text}");
    assert!(
        text.contains("? 1 call(s) used models without a price in the table (openai/mystery)"),
        "{text}"
    );
    let priced: Vec<UsageRecord> = sample()
        .into_iter()
        .filter(|r| r.cost_usd.is_some())
        .collect();
    assert!(!render(&priced, GroupBy::Agent, Format::Table).contains('?'));
}

#[test]
fn csv_has_a_header_and_one_row_per_group() {
    let mut records = sample();
    records.push(rec("x,\"y\"", "gpt-4o", "ok", (1, 1), None, 1));
    let text = render(&records, GroupBy::Agent, Format::Csv);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "agent,calls,ok,rate_limited,errors,input_tokens,output_tokens,cost_usd,unpriced_calls,p50_latency_ms,p95_latency_ms"
    );
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[1], "a,20,20,0,0,2000,200,0.020000,0,100,190");
    assert_eq!(lines[3], "\"x,\"\"y\"\"\",1,1,0,0,1,1,,1,1,1");
}

#[test]
fn json_is_an_array_of_objects_with_stable_names() {
    let text = render(&sample(), GroupBy::Model, Format::Json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let mut keys: Vec<&str> = rows[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "by",
            "calls",
            "cost_usd",
            "errors",
            "group",
            "input_tokens",
            "ok",
            "output_tokens",
            "p50_latency_ms",
            "p95_latency_ms",
            "rate_limited",
            "unpriced_calls"
        ]
    );
    assert_eq!(rows[1]["cost_usd"], serde_json::Value::Null);
    assert_eq!(rows[0]["by"], "model");
    assert_eq!(render(&[], GroupBy::Model, Format::Json).trim(), "[]");
}

#[test]
fn since_takes_durations_and_instants() {
    let now = 1_767_225_600_000;
    assert_eq!(parse_since("30m", now), Ok(now - 1_800_000));
    assert_eq!(parse_since("12h", now), Ok(now - 43_200_000));
    assert_eq!(parse_since("1d", now), Ok(now - 86_400_000));
    assert_eq!(parse_since("7d", now), Ok(now - 7 * 86_400_000));
    assert_eq!(parse_since("2026-01-01T00:00:00Z", 0), Ok(now));
    assert_eq!(parse_since("2026-01-01T01:00:00+01:00", 0), Ok(now));
    for bad in ["", "d", "1y", "-1d", "yesterday", "2026-01-01"] {
        assert!(parse_since(bad, now).is_err(), "{bad}");
    }
    assert_eq!(instant_text(now), "2026-01-01 00:00:00 UTC");
}
