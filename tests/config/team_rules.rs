//! Team files: keys and interpolation, profiles and overrides, defaults and the single-agent
//! form — through `parse_team` with an injected environment.

use std::time::Duration;

use massgen::config::{
    BackendKind, DisplayType, EnvLookup, LoadOptions, NoveltyRequirement, VotingSensitivity,
    load_team, parse_team,
};

fn opts(pairs: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        env: EnvLookup::from_pairs(pairs.iter().map(|(k, v)| (*k, *v))),
        ..LoadOptions::default()
    }
}

#[test]
fn keys_come_from_references_defaults_and_lists_and_never_print() {
    let text = "
agents:
  - id: a
    backend: {type: gemini, model: gemini-2.5-flash, api_key: '${TEAM_KEY}'}
  - id: b
    backend: {type: openai, model: gpt-4o-mini}
  - id: c
    backend:
      type: groq
      model: llama-3.1-8b-instant
      api_keys: ['$GROQ_ONE', '${GROQ_TWO}', literal-key-in-file-0000]
";
    let env = [
        ("TEAM_KEY", "team-secret-aaaa1111"),
        ("OPENAI_API_KEY", "openai-secret-bbbb2222"),
        ("GROQ_ONE", "groq-secret-cccc3333"),
        ("GROQ_TWO", "groq-secret-dddd4444"),
    ];
    let team = parse_team(text, "t.yaml", &opts(&env)).unwrap();
    let keys = |i: usize| team.agents[i].backend.api_keys.clone();
    assert_eq!(keys(0)[0].expose(), "team-secret-aaaa1111");
    assert_eq!(keys(0)[0].origin(), "env TEAM_KEY");
    assert_eq!(keys(1)[0].expose(), "openai-secret-bbbb2222");
    assert_eq!(keys(1)[0].origin(), "env OPENAI_API_KEY");
    assert_eq!(keys(2).len(), 3);
    assert_eq!(keys(2)[0].origin(), "env GROQ_ONE");
    assert_eq!(keys(2)[2].origin(), "t.yaml agents[2].backend.api_keys[2]");
    let shown = format!("{team:?}");
    for (_, secret) in env {
        assert!(!shown.contains(secret), "{secret} leaked in Debug");
    }
    assert!(!shown.contains("literal-key-in-file"));
}

#[test]
fn an_unset_reference_names_the_variable_not_a_value() {
    let text = "agent:\n  backend: {type: claude, model: m, api_key: '${MISSING_ONE}'}\n";
    let err = parse_team(text, "t.yaml", &opts(&[("OTHER", "x-secret-value-1234")])).unwrap_err();
    assert_eq!(err.path(), "agent.backend.api_key");
    assert_eq!(err.line(), Some(2));
    assert!(err.message().contains("MISSING_ONE"), "{err}");
    assert!(!err.to_string().contains("x-secret-value"), "{err}");
}

#[test]
fn missing_default_keys_can_be_allowed_for_summaries() {
    let text = "agent:\n  backend: {type: gemini, model: gemini-2.5-flash}\n";
    assert!(parse_team(text, "t.yaml", &opts(&[])).is_err());
    let lenient = LoadOptions {
        allow_missing_keys: true,
        ..opts(&[])
    };
    let team = parse_team(text, "t.yaml", &lenient).unwrap();
    assert!(team.agents[0].backend.api_keys.is_empty());
    // Unset references are left out too; a malformed one is still an error.
    let text = "agent:\n  backend: {type: gemini, model: g, api_keys: ['${NOPE}', '${SET}']}\n";
    let lenient_set = LoadOptions {
        allow_missing_keys: true,
        ..opts(&[("SET", "set-secret-00001111")])
    };
    let team = parse_team(text, "t.yaml", &lenient_set).unwrap();
    let origins: Vec<&str> = team.agents[0]
        .backend
        .api_keys
        .iter()
        .map(|k| k.origin())
        .collect();
    assert_eq!(origins, ["env SET"]);
    assert!(parse_team(text, "t.yaml", &opts(&[("SET", "set-secret-00001111")])).is_err());
    let text = "agent:\n  backend: {type: gemini, model: g, api_key: '${NOPE'}\n";
    assert!(parse_team(text, "t.yaml", &lenient).is_err());
}

#[test]
fn base_url_interpolates_and_local_servers_need_no_key() {
    let text = "agent:\n  id: local\n  backend: {type: vllm, model: qwen, base_url: 'http://${HOST}:8000/v1/'}\n";
    let team = parse_team(text, "t.yaml", &opts(&[("HOST", "127.0.0.1")])).unwrap();
    let b = &team.agents[0].backend;
    assert_eq!(b.base_url.as_deref(), Some("http://127.0.0.1:8000/v1"));
    assert!(b.api_keys.is_empty());
    assert_eq!(team.agents[0].id, "local");
}

#[test]
fn defaults_when_sections_are_absent() {
    let team = parse_team(
        "agent:\n  backend: {type: simulated, model: s}\n",
        "t.yaml",
        &opts(&[]),
    )
    .unwrap();
    assert_eq!(team.agents[0].id, "agent");
    assert_eq!(team.agents[0].priority, 0);
    assert_eq!(
        team.timeouts.orchestrator_timeout,
        Duration::from_secs(1800)
    );
    assert_eq!(team.timeouts.call_timeout, Duration::from_secs(300));
    assert_eq!(team.ui.display_type, DisplayType::Rich);
    assert!(team.ui.logging_enabled);
    assert_eq!(team.rate_limit.enabled, None);
    // With no acquire_timeout_seconds a call may wait as long as the run has left.
    assert_eq!(team.rate_limit.acquire_timeout, None);
    assert_eq!(
        team.orchestrator.voting_sensitivity,
        VotingSensitivity::Lenient
    );
    assert!(team.source.is_none());
    let sim = &team.agents[0].backend.simulated;
    assert_eq!((sim.answer_rounds, sim.output_tokens), (1, 120));
}

#[test]
fn every_section_maps_to_runtime_types() {
    let text = "
agents:
  - id: s
    priority: 7
    backend:
      type: simulated
      model: sim
      temperature: 0.5
      max_tokens: 300
      enable_rate_limit: false
      simulated:
        latency_ms: 250
        seed: 9
        answer_rounds: 2
        vote_for: s
        output_tokens: 64
        fail: {on_calls: [2, 5], rate: 0.25, kind: rate_limit, retry_after_ms: 1500}
orchestrator:
  voting_sensitivity: strict
  max_new_answers_per_agent: 4
  answer_novelty_requirement: balanced
  skip_final_presentation: true
  coordination: {max_orchestration_restarts: 2}
  fairness_lead_cap_answers: 2
timeout_settings:
  orchestrator_timeout_seconds: 90
  call_timeout_seconds: 45
  initial_round_timeout_seconds: 30
ui: {display_type: simple, logging_enabled: false}
enable_rate_limit: true
rate_limit: {enable_rate_limit: true, limits_file: mine.yaml, acquire_timeout_seconds: 2.5}
";
    let team = parse_team(text, "t.yaml", &opts(&[])).unwrap();
    let a = &team.agents[0];
    assert_eq!(a.priority, 7);
    assert_eq!(a.backend.kind, BackendKind::Simulated);
    assert_eq!(a.backend.temperature, Some(0.5));
    assert_eq!(a.backend.max_tokens, Some(300));
    assert_eq!(a.backend.enable_rate_limit, Some(false));
    let sim = &a.backend.simulated;
    assert_eq!(sim.latency, Duration::from_millis(250));
    assert_eq!((sim.seed, sim.answer_rounds, sim.output_tokens), (9, 2, 64));
    assert_eq!(sim.vote_for.as_deref(), Some("s"));
    assert_eq!(sim.failure.on_calls, [2, 5]);
    assert_eq!(sim.failure.kind, "rate_limit");
    assert_eq!(sim.failure.retry_after, Some(Duration::from_millis(1500)));
    assert_eq!(
        team.orchestrator.voting_sensitivity,
        VotingSensitivity::Strict
    );
    assert_eq!(team.orchestrator.max_new_answers_per_agent, Some(4));
    assert_eq!(
        team.orchestrator.answer_novelty_requirement,
        NoveltyRequirement::Balanced
    );
    assert!(team.orchestrator.skip_final_presentation);
    assert_eq!(team.timeouts.orchestrator_timeout, Duration::from_secs(90));
    assert_eq!(team.timeouts.call_timeout, Duration::from_secs(45));
    assert_eq!(team.ui.display_type, DisplayType::Simple);
    assert!(!team.ui.logging_enabled);
    assert_eq!(team.rate_limit.enabled, Some(true));
    // parse_team has no directory: the path is kept as written.
    assert_eq!(
        team.rate_limit.limits_file.as_deref(),
        Some(std::path::Path::new("mine.yaml"))
    );
    assert_eq!(
        team.rate_limit.acquire_timeout,
        Some(Duration::from_millis(2500))
    );
}

#[test]
fn team_fields_override_the_profile_key_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let agents = dir.path().join("agents");
    std::fs::create_dir(&agents).unwrap();
    std::fs::write(
        agents.join("mine.yaml"),
        "system_message: from profile\npriority: 4\nbackend: {type: gemini, model: gemini-2.5-pro, temperature: 0.1, max_tokens: 1000}\n",
    )
    .unwrap();
    let team_file = dir.path().join("team.yaml");
    std::fs::write(
        &team_file,
        "agents:\n  - id: x\n    profile: mine\n    backend: {model: gemini-2.5-flash}\n  - id: y\n    profile: mine\n    system_message: own\n    priority: 1\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("limits.yaml"),
        "gemini: {default: {rpm: 1}}\n",
    )
    .unwrap();
    let o = opts(&[("GEMINI_API_KEY", "g-secret-000011112222")]);
    let team = load_team(&team_file, &o).unwrap();
    let (x, y) = (&team.agents[0], &team.agents[1]);
    assert_eq!(x.backend.model, "gemini-2.5-flash");
    assert_eq!(x.backend.temperature, Some(0.1));
    assert_eq!(x.backend.max_tokens, Some(1000));
    assert_eq!(x.system_message.as_deref(), Some("from profile"));
    assert_eq!(x.priority, 4);
    assert_eq!(y.backend.model, "gemini-2.5-pro");
    assert_eq!(y.system_message.as_deref(), Some("own"));
    assert_eq!(y.priority, 1);
    // A profile of the same name beside the team file wins over the built-in one.
    std::fs::write(agents.join("critic.yaml"), "system_message: local critic\n").unwrap();
    std::fs::write(
        &team_file,
        "agent:\n  id: c\n  profile: critic\n  backend: {type: simulated, model: s}\nrate_limit: {limits_file: limits.yaml}\n",
    )
    .unwrap();
    let team = load_team(&team_file, &o).unwrap();
    assert_eq!(
        team.agents[0].system_message.as_deref(),
        Some("local critic")
    );
    // load_team resolves limits_file relative to the team file.
    assert_eq!(
        team.rate_limit.limits_file,
        Some(dir.path().join("limits.yaml"))
    );
}

#[test]
fn display_type_aliases() {
    for (name, want) in [
        ("rich_terminal", DisplayType::Rich),
        ("textual_terminal", DisplayType::Rich),
        ("simple", DisplayType::Simple),
    ] {
        let text = format!(
            "agent:\n  backend: {{type: simulated, model: s}}\nui: {{display_type: {name}}}\n"
        );
        let team = parse_team(&text, "t.yaml", &opts(&[])).unwrap();
        assert_eq!(team.ui.display_type, want);
    }
}

#[test]
fn every_backend_type_is_accepted() {
    for kind in BackendKind::ALL {
        let url = if kind.default_base_url().is_none() && kind != BackendKind::Simulated {
            ", base_url: 'http://127.0.0.1:9/v1'"
        } else {
            ""
        };
        let text = format!(
            "agent:\n  backend: {{type: {}, model: m{url}}}\n",
            kind.as_str()
        );
        let lenient = LoadOptions {
            allow_missing_keys: true,
            ..opts(&[])
        };
        let team = parse_team(&text, "t.yaml", &lenient).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(team.agents[0].backend.kind, kind);
    }
}

#[test]
fn empty_input_and_io_errors_do_not_panic() {
    let err = parse_team("", "t.yaml", &opts(&[])).unwrap_err();
    assert!(err.message().contains("empty"), "{err}");
    let err = load_team(std::path::Path::new("no/such/team.yaml"), &opts(&[])).unwrap_err();
    assert!(err.message().contains("cannot read"), "{err}");
    assert!(massgen::config::LimitsTable::parse("", "l.yaml").is_err());
    assert!(massgen::config::LimitsTable::load_file(std::path::Path::new("no/such.yaml")).is_err());
}

#[test]
fn the_examples_in_the_configuration_doc_are_valid() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let blocks: Vec<&str> = doc
        .split("```yaml\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 3, "{}", blocks.len());
    let env = opts(&[
        ("GEMINI_API_KEY", "g-0000111122223333"),
        ("OPENAI_API_KEY", "o-0000111122223333"),
    ]);
    for block in blocks {
        if block.contains("agents:") {
            parse_team(block, "doc.yaml", &env).unwrap_or_else(|e| panic!("{e}\n{block}"));
        } else {
            massgen::config::LimitsTable::parse(block, "doc.yaml")
                .unwrap_or_else(|e| panic!("{e}\n{block}"));
        }
    }
}

#[test]
fn rate_limit_circuit_sets_every_endpoints_breaker_and_bad_values_name_key_and_line() {
    let agents = "agents:\n  - id: a\n    backend: {type: simulated, model: sim-fast}\n";
    let team = parse_team(agents, "t.yaml", &opts(&[])).unwrap();
    assert_eq!(team.rate_limit.circuit.failures_to_open, 5);
    assert_eq!(team.rate_limit.circuit.open_for, Duration::from_secs(30));
    let text = format!("{agents}rate_limit:\n  circuit: {{failures: 3, open_for: 45s}}\n");
    let team = parse_team(&text, "t.yaml", &opts(&[])).unwrap();
    assert_eq!(team.rate_limit.circuit.failures_to_open, 3);
    assert_eq!(team.rate_limit.circuit.open_for, Duration::from_secs(45));
    for (bad, key, says) in [
        ("{failures: 0}", "rate_limit.circuit.failures", "at least 1"),
        (
            "{open_for: 0s}",
            "rate_limit.circuit.open_for",
            "0 is not valid",
        ),
        (
            "{open_for: soon}",
            "rate_limit.circuit.open_for",
            "not a duration",
        ),
        ("{failure: 3}", "failure", "failures"),
    ] {
        let text = format!("{agents}rate_limit:\n  circuit: {bad}\n");
        let e = parse_team(&text, "t.yaml", &opts(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.yaml") && e.contains(":5"), "{bad}: {e}");
        assert!(e.contains(key) && e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn a_pool_backend_resolves_its_models_and_leaves_out_those_without_a_key() {
    // Only Gemini's key is set: the built-in `fast` pool keeps its Gemini models, in order.
    let text =
        "agents:\n- id: a\n  backend: {type: pool, pool: fast, temperature: 0.2, max_models: 2}\n";
    let team = parse_team(
        text,
        "t.yaml",
        &opts(&[("GEMINI_API_KEY", "g-secret-000111")]),
    )
    .unwrap();
    let backend = &team.agents[0].backend;
    let pool = backend.pool.as_ref().unwrap();
    assert_eq!(pool.name, "fast");
    assert_eq!(pool.max_models, 2);
    let models: Vec<&str> = pool
        .members
        .iter()
        .map(|m| m.entry.model.as_str())
        .collect();
    assert_eq!(models, ["gemini-2.5-flash-lite", "gemini-2.5-flash"]);
    assert!(
        pool.members
            .iter()
            .all(|m| m.backend.kind == BackendKind::Gemini
                && m.backend.temperature == Some(0.2)
                && m.backend.api_keys.len() == 1)
    );
    // The agent's own backend is the pool's first model.
    assert_eq!(backend.model, "gemini-2.5-flash-lite");
    let left: Vec<&str> = pool.left_out.iter().map(|l| l.label.as_str()).collect();
    assert_eq!(left, ["openai/gpt-4.1-nano", "openai/gpt-4o-mini"]);
    assert!(
        pool.left_out[0].reason.contains("OPENAI_API_KEY"),
        "{:?}",
        pool.left_out
    );
    // `any` is every entry of every pool once.
    let any = "agents:\n- id: a\n  backend: {type: pool, pool: any}\n";
    let team = parse_team(
        any,
        "t.yaml",
        &opts(&[("GEMINI_API_KEY", "g-secret-000111")]),
    )
    .unwrap();
    let pool = team.agents[0].backend.pool.as_ref().unwrap();
    let total = pool.members.len() + pool.left_out.len();
    let mut labels: Vec<String> = pool
        .members
        .iter()
        .map(|m| format!("{}/{}", m.entry.provider, m.entry.model))
        .chain(pool.left_out.iter().map(|l| l.label.clone()))
        .collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), total, "each model once");
}

#[test]
fn pool_backend_mistakes_name_the_key_and_line() {
    let env = [("GEMINI_API_KEY", "g-secret-000111")];
    let cases = [
        (
            "agents:\n- id: a\n  backend: {type: pool, pool: fsat}\n",
            "agents[0].backend.pool",
            "Did you mean `fast`",
        ),
        (
            "agents:\n- id: a\n  backend: {type: pool}\n",
            "agents[0].backend.pool",
            "missing",
        ),
        (
            "agents:\n- id: a\n  backend: {type: pool, pool: fast, model: x}\n",
            "agents[0].backend.model",
            "takes its models",
        ),
        (
            "agents:\n- id: a\n  backend: {type: pool, pool: fast, top_p: 0.5}\n",
            "agents[0].backend.top_p",
            "no provider options",
        ),
        (
            "agents:\n- id: a\n  backend: {type: gemini, model: m, pool: fast}\n",
            "agents[0].backend.pool",
            "only a `type: pool`",
        ),
        (
            "agents:\n- id: a\n  backend: {type: pool, pool: fast, max_models: 99}\n",
            "agents[0].backend.max_models",
            "out of range",
        ),
    ];
    for (text, path, words) in cases {
        let err = parse_team(text, "t.yaml", &opts(&env))
            .unwrap_err()
            .to_string();
        assert!(err.contains("t.yaml:3:"), "{err}");
        assert!(err.contains(path), "{path}: {err}");
        assert!(err.contains(words), "{words}: {err}");
    }
    // No key for any model of the pool: an error naming the variables, unless keys may be
    // missing (summaries), where it is a warning.
    let text = "agents:\n- id: a\n  backend: {type: pool, pool: smart}\n";
    let err = parse_team(text, "t.yaml", &opts(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no model of pool `smart` can be used here"),
        "{err}"
    );
    assert!(
        err.contains("OPENAI_API_KEY") && err.contains("ANTHROPIC_API_KEY"),
        "{err}"
    );
}
