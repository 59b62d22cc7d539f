use std::collections::HashSet;

use super::show::{apply, describe_state};
use super::*;
use crate::cli::progress::Progress;
use crate::config::parse_team;
use crate::runtime::{AgentState, RunEvent};

fn team(yaml: &str) -> TeamConfig {
    let parsed = parse_team(yaml, "team.yaml", &LoadOptions::default());
    assert!(parsed.is_ok(), "{parsed:?}");
    parsed.unwrap_or_else(|_| unreachable!())
}

const TWO: &str = "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\n  - id: b\n    backend: {type: simulated, model: sim}\n";

#[test]
fn flag_wins_over_yaml_and_yaml_true_stands_without_flag() {
    let off_by_default = team(TWO);
    assert!(!effective_rate_limit(None, &off_by_default).0);
    let yaml_on = team(&format!("rate_limit:\n  enable_rate_limit: true\n{TWO}"));
    // MassGen overwrote YAML `true` when the flag was absent; here it stands.
    assert!(effective_rate_limit(None, &yaml_on).0);
    assert!(!effective_rate_limit(Some(false), &yaml_on).0);
    assert!(effective_rate_limit(Some(true), &off_by_default).0);
}

#[test]
fn per_agent_enable_rate_limit_turns_it_on() {
    let t = team(
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim, enable_rate_limit: true}\n",
    );
    let (on, why) = effective_rate_limit(None, &t);
    assert!(on);
    assert!(why.contains('a'), "{why}");
}

#[test]
fn waiting_state_shows_scope_limit_and_eta() {
    let (label, detail, eta) = describe_state(&AgentState::WaitingQuota {
        scope: "gemini/gemini-2.5-pro".into(),
        limit: Some("rpm".into()),
        eta_ms: 26_000,
    });
    assert_eq!(label, "waiting for quota");
    assert_eq!(detail, "gemini/gemini-2.5-pro rpm, ETA 26s");
    assert_eq!(eta, Some(Duration::from_secs(26)));
}

/// One pooled wait under the supervisor arrives as two events (the supervisor's `waiting`,
/// forwarded as the agent's state, and the pool's `no_model_available` sent in answer to it);
/// plain progress prints it once. A pool without a supervisor announces its own waits.
#[test]
fn a_pooled_quota_wait_is_printed_once() {
    let wait = RunEvent::AgentState {
        agent: "a".into(),
        state: AgentState::WaitingQuota {
            scope: "simulated/sim-small".into(),
            limit: Some("cooldown: startup".into()),
            eta_ms: 741,
        },
    };
    let pool_wait = RunEvent::NoModelAvailable {
        agent: "a".into(),
        pool: "simulated".into(),
        eta_ms: Some(741),
    };
    let lines = |events: &[&RunEvent], supervised: &[&str]| {
        let supervised: HashSet<String> = supervised.iter().map(|s| (*s).to_owned()).collect();
        let mut out = Vec::new();
        {
            let mut p = Progress::new(&mut out, ProgressMode::Plain, &["a".into()]);
            for e in events {
                apply(&mut p, e, &supervised);
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    for order in [[&wait, &pool_wait], [&pool_wait, &wait]] {
        let text = lines(&order, &["a"]);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("a: waiting for quota — simulated/sim-small"),
            "{text}"
        );
    }
    let text = lines(&[&pool_wait], &[]);
    assert!(
        text.contains("a: no model of pool simulated available; waiting 741ms"),
        "{text}"
    );
}

#[test]
fn supervised_agents_are_those_under_rate_limiting() {
    let t = team(
        "agents:\n  - id: a\n    backend: {type: simulated, model: sim}\n  - id: b\n    backend: {type: simulated, model: sim, enable_rate_limit: false}\n",
    );
    let on = supervised_agents(&t, true);
    assert!(on.contains("a") && !on.contains("b"), "{on:?}");
    assert!(supervised_agents(&t, false).is_empty());
}
