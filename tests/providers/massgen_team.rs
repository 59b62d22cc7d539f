//! One of MassGen's own example files, unchanged, runs a team through the mock provider: its
//! three agents (Gemini, OpenAI with reasoning and verbosity options, Claude) each reach their
//! dialect, and the MassGen-only keys it also sets only cost warnings.

use massgen::config::{BackendKind, EnvLookup, LoadOptions, check_team};
use massgen::mock_provider::MockLimits;
use massgen::{Runtime, RuntimeOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_massgen_example_team_runs_against_the_mock_provider() {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/massgen/basic/multi/gemini_gpt5nano_claude.yaml");
    let keys = ["GEMINI_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY"]
        .map(|v| (v.to_owned(), format!("test-key-{v}-0123456789")));
    let opts = LoadOptions {
        env: EnvLookup::from_pairs(keys),
        ..LoadOptions::default()
    };
    let checked = check_team(&file, &opts).unwrap();
    assert!(!checked.warnings.is_empty(), "web search, code execution");
    let mut team = checked.team;
    let server = super::mock(MockLimits::default(), "").await;
    for agent in &mut team.agents {
        agent.backend.base_url = Some(match agent.backend.kind {
            BackendKind::Gemini => server.gemini_url(),
            _ => server.v1_url(),
        });
    }
    let openai = team
        .agents
        .iter()
        .find(|a| a.backend.kind == BackendKind::OpenAi)
        .unwrap();
    assert_eq!(
        openai.backend.options.reasoning_effort.as_deref(),
        Some("medium")
    );
    let out = Runtime::new(team, RuntimeOptions::default())
        .unwrap()
        .run("What is 2+2?")
        .await
        .unwrap();
    assert!(out.winner.is_some(), "{out:?}");
    assert!(!out.final_answer.is_empty());
    let stats = server.stats();
    assert_eq!(
        stats.by_key_model.len(),
        3,
        "every agent reached its dialect: {stats:?}"
    );
}
