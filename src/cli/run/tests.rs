use super::*;
use crate::config::parse_team;

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
