//! MassGen's own files: its 276 shipped example configs validate wherever massgen-rs runs
//! their backends (`tests/fixtures/massgen/expectations.txt` lists the others and why);
//! MassGen keys without a feature here warn once (errors with `strict`); provider options pass
//! through; every problem of a file is reported at once; long values are never echoed whole.

use std::collections::BTreeMap;
use std::path::Path;

use massgen::config::{
    BackendKind, ConfigProblems, EnvLookup, LimitsTable, LoadOptions, VotingSensitivity,
    check_team, check_team_text,
};

#[path = "../common/massgen_corpus.rs"]
mod corpus;
use corpus::{corpus_dir, yaml_files};

/// What `--validate` uses on a machine without secrets.
fn validate_opts() -> LoadOptions {
    LoadOptions {
        env: EnvLookup::from_pairs(Vec::<(String, String)>::new()),
        allow_missing_keys: true,
        ..LoadOptions::default()
    }
}

fn env(pairs: &[(&str, &str)]) -> LoadOptions {
    LoadOptions {
        env: EnvLookup::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string()))),
        ..LoadOptions::default()
    }
}

/// Why a corpus file does not validate, in the words of `expectations.txt`.
fn reason(path: &Path, problems: &ConfigProblems) -> String {
    if LimitsTable::load_file(path).is_ok() {
        return "a limits file, not a team file".to_owned();
    }
    let mut types: Vec<String> = problems
        .errors
        .iter()
        .map(|e| {
            let m = e.message();
            assert!(
                m.starts_with("backend type `") && m.contains("` is not supported"),
                "{}: not a clear unsupported-backend reason: {e}",
                path.display()
            );
            m.split('`').nth(1).unwrap_or_default().to_owned()
        })
        .collect();
    types.sort();
    types.dedup();
    format!("backend type {} is not supported", types.join(", "))
}

#[test]
fn massgens_shipped_configs_validate_where_the_backend_is_supported() {
    let dir = corpus_dir();
    let mut files = Vec::new();
    yaml_files(&dir, &mut files);
    files.sort();
    assert_eq!(files.len(), 276, "MassGen 0.1.97 ships 276 example configs");
    let mut failing: BTreeMap<String, String> = BTreeMap::new();
    let mut warned = 0;
    for file in &files {
        let rel = file.strip_prefix(&dir).unwrap().display().to_string();
        match check_team(file, &validate_opts()) {
            Ok(checked) => {
                warned += usize::from(!checked.warnings.is_empty());
                assert!(!checked.team.agents.is_empty(), "{rel}");
            }
            Err(problems) => {
                failing.insert(rel, reason(file, &problems));
            }
        }
    }
    let text = std::fs::read_to_string(dir.join("expectations.txt")).unwrap();
    let expected: BTreeMap<String, String> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (file, why) = l.split_once(" | ").unwrap();
            (file.trim().to_owned(), why.trim().to_owned())
        })
        .collect();
    let shown: Vec<String> = failing.iter().map(|(f, w)| format!("{f} | {w}")).collect();
    assert_eq!(
        failing,
        expected,
        "the files that do not validate changed; now:\n{}",
        shown.join("\n")
    );
    // Most of MassGen's files use keys whose feature massgen-rs lacks: they load, with warnings.
    assert!(warned > 150, "{warned} files loaded with warnings");
}

#[test]
fn massgen_keys_warn_once_and_strict_makes_them_errors() {
    let text = "\
agents:
  - id: a
    backend: {type: openai, model: gpt-5, cwd: ws1, mcp_servers: {}, enable_web_search: true}
  - id: b
    backend: {type: openai, model: gpt-5, cwd: ws2}
orchestrator:
  snapshot_storage: snapshots
  coordination: {use_skills: true, enable_subagents: true}
";
    let opts = env(&[("OPENAI_API_KEY", "sk-test-0123456789")]);
    let checked = check_team_text(text, "t.yaml", &opts).unwrap();
    let paths: Vec<&str> = checked.warnings.iter().map(|w| w.path()).collect();
    assert_eq!(
        paths,
        [
            "agents[0].backend.cwd",
            "agents[0].backend.mcp_servers",
            "agents[0].backend.enable_web_search",
            "orchestrator.snapshot_storage",
            "orchestrator.coordination.use_skills",
        ],
        "one warning per key, in file order"
    );
    let cwd = &checked.warnings[0];
    assert!(cwd.message().contains("no working directory"), "{cwd}");
    assert!(
        cwd.message().contains("also at agents[1].backend.cwd"),
        "{cwd}"
    );
    assert_eq!((cwd.line(), cwd.column()), (Some(3), Some(43)), "{cwd}");
    assert!(
        checked.warnings[2]
            .message()
            .contains("cannot search the web")
    );

    let strict = LoadOptions {
        strict: true,
        ..opts
    };
    let problems = check_team_text(text, "t.yaml", &strict).unwrap_err();
    assert_eq!(problems.errors.len(), 5, "{problems}");
    assert!(problems.warnings.is_empty());
    assert!(
        problems
            .errors
            .iter()
            .all(|e| e.message().ends_with("(an error under --strict)"))
    );
}

#[test]
fn unknown_keys_stay_errors_with_a_suggestion() {
    let text = "agents:\n  - id: a\n    backend: {type: gemini, model: m, temprature: 0.2}\n";
    let problems =
        check_team_text(text, "t.yaml", &env(&[("GEMINI_API_KEY", "k-0123456789")])).unwrap_err();
    assert_eq!(problems.errors.len(), 1, "{problems}");
    let e = &problems.errors[0];
    assert_eq!(e.path(), "agents[0].backend.temprature");
    assert!(e.message().contains("Did you mean `temperature`?"), "{e}");
}

#[test]
fn every_problem_of_a_file_is_reported_at_once_errors_then_warnings() {
    let text = "\
agents:
  - id: a
    backend: {type: gemini, model: m, modle: x, cwd: w}
  - id: b
    backend: {type: gemini, model: m, temperature: 7}
  - id: c
    backend: {type: claude_code, model: m}
orchestrator:
  voting_sensitivity: strikt
ui: {display_typ: simple}
";
    let opts = env(&[("GEMINI_API_KEY", "k-0123456789")]);
    let problems = check_team_text(text, "t.yaml", &opts).unwrap_err();
    let found: Vec<(&str, Option<usize>)> = problems
        .errors
        .iter()
        .map(|e| (e.path(), e.line()))
        .collect();
    assert_eq!(
        found,
        [
            ("agents[0].backend.modle", Some(3)),
            ("agents[1].backend.temperature", Some(5)),
            ("agents[2].backend.type", Some(7)),
            ("orchestrator.voting_sensitivity", Some(9)),
            ("ui.display_typ", Some(10)),
        ],
        "{problems}"
    );
    assert_eq!(problems.warnings.len(), 1, "{problems}");
    let shown = problems.render();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 6, "{shown}");
    assert!(lines[..5].iter().all(|l| l.starts_with("error: t.yaml:")));
    assert!(lines[5].starts_with("warning: t.yaml:3:"), "{shown}");
    // The library's single-error form carries them all too.
    let err = problems.into_error().unwrap();
    assert_eq!(err.all().count(), 5);
    assert_eq!(err.to_string().lines().count(), 5);
}

#[test]
fn chatcompletion_falls_back_to_openai_api_key_as_massgen_does() {
    let local = "agent:\n  backend: {type: chatcompletion, model: m, base_url: 'http://127.0.0.1:8000/v1'}\n";
    let with_key = env(&[("OPENAI_API_KEY", "sk-openai-0123456789")]);
    let team = check_team_text(local, "t.yaml", &with_key).unwrap().team;
    let keys = &team.agents[0].backend.api_keys;
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].origin(), "env OPENAI_API_KEY");
    // A local server needs no key: none set is no error.
    let team = check_team_text(local, "t.yaml", &env(&[])).unwrap().team;
    assert!(team.agents[0].backend.api_keys.is_empty());
    // A provider's host reads that provider's variable, as MassGen does, and needs it.
    let cerebras = "agent:\n  backend: {type: chatcompletion, model: m, base_url: 'https://api.cerebras.ai/v1'}\n";
    let problems = check_team_text(cerebras, "t.yaml", &with_key).unwrap_err();
    assert!(
        problems.errors[0].message().contains("CEREBRAS_API_KEY"),
        "{problems}"
    );
    let team = check_team_text(
        cerebras,
        "t.yaml",
        &env(&[("CEREBRAS_API_KEY", "csk-0123456789")]),
    )
    .unwrap()
    .team;
    assert_eq!(
        team.agents[0].backend.api_keys[0].origin(),
        "env CEREBRAS_API_KEY"
    );
}

#[test]
fn massgens_openai_compatible_types_have_their_urls_and_key_variables() {
    for (name, url, var) in [
        ("grok", "https://api.x.ai/v1", "XAI_API_KEY"),
        ("zai", "https://api.z.ai/api/paas/v4", "ZAI_API_KEY"),
        ("moonshot", "https://api.moonshot.cn/v1", "MOONSHOT_API_KEY"),
        (
            "nvidia_nim",
            "https://integrate.api.nvidia.com/v1",
            "NGC_API_KEY",
        ),
        (
            "nebius",
            "https://api.studio.nebius.ai/v1",
            "NEBIUS_API_KEY",
        ),
        (
            "qwen",
            "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
            "QWEN_API_KEY",
        ),
    ] {
        let kind = BackendKind::parse(name).unwrap();
        assert_eq!(kind.default_base_url(), Some(url), "{name}");
        assert_eq!(kind.default_key_env(), Some(var), "{name}");
        let text = format!("agent:\n  backend: {{type: {name}, model: m}}\n");
        let team = check_team_text(&text, "t.yaml", &env(&[(var, "k-0123456789")]))
            .unwrap()
            .team;
        assert_eq!(
            team.agents[0].backend.api_keys[0].origin(),
            format!("env {var}")
        );
    }
    // MassGen's fallbacks: KIMI_API_KEY for Moonshot, GOOGLE_API_KEY for Gemini.
    let text = "agent:\n  backend: {type: moonshot, model: m}\n";
    let team = check_team_text(text, "t.yaml", &env(&[("KIMI_API_KEY", "k-0123456789")]))
        .unwrap()
        .team;
    assert_eq!(
        team.agents[0].backend.api_keys[0].origin(),
        "env KIMI_API_KEY"
    );
}

#[test]
fn provider_options_are_read_and_untaken_ones_warn() {
    let text = "\
agents:
  - id: a
    voting_sensitivity: strict
    backend:
      type: openai
      model: gpt-5
      reasoning: {effort: medium, summary: auto}
      text: {verbosity: low}
      top_p: 0.9
      parallel_tool_calls: true
  - id: b
    voting_sensitivity: checklist_gated
    backend: {type: claude, model: m, betas: [computer-use-2025-01-24], text: {verbosity: high}}
";
    let opts = env(&[
        ("OPENAI_API_KEY", "k-0123456789"),
        ("ANTHROPIC_API_KEY", "k-0123456789"),
    ]);
    let checked = check_team_text(text, "t.yaml", &opts).unwrap();
    let a = &checked.team.agents[0];
    assert_eq!(a.voting_sensitivity, Some(VotingSensitivity::Strict));
    let o = &a.backend.options;
    assert_eq!(o.reasoning_effort.as_deref(), Some("medium"));
    assert_eq!(o.verbosity.as_deref(), Some("low"));
    assert_eq!(o.top_p, Some(0.9));
    assert_eq!(o.parallel_tool_calls, Some(true));
    let b = &checked.team.agents[1];
    assert_eq!(b.voting_sensitivity, None);
    assert_eq!(b.backend.options.betas, ["computer-use-2025-01-24"]);
    assert_eq!(
        b.backend.options.verbosity, None,
        "Anthropic takes no verbosity"
    );
    let warned: Vec<&str> = checked.warnings.iter().map(|w| w.path()).collect();
    assert_eq!(
        warned,
        [
            "agents[0].backend.reasoning.summary",
            "agents[1].voting_sensitivity",
            "agents[1].backend.text",
        ]
    );
    let bad = "agent:\n  backend: {type: openai, model: m, reasoning: {effort: hgih}}\n";
    let problems = check_team_text(bad, "t.yaml", &validate_opts()).unwrap_err();
    assert!(
        problems.errors[0]
            .message()
            .contains("Did you mean `high`?"),
        "{problems}"
    );
}

#[test]
fn a_5_mib_value_is_never_echoed_whole() {
    let big = "x".repeat(5 << 20);
    let cases = [
        format!("agent:\n  backend: {{type: {big}, model: m}}\n"),
        format!("agent:\n  backend: {{type: gemini, model: m, temperature: {big}}}\n"),
        format!("agent:\n  backend: {{type: gemini, model: m, base_url: {big}}}\n"),
        format!(
            "orchestrator: {{voting_sensitivity: {big}}}\nagent:\n  backend: {{type: gemini, model: m}}\n"
        ),
        format!("agent:\n  id: \"{big} y\"\n  backend: {{type: gemini, model: m}}\n"),
    ];
    for text in &cases {
        let Err(problems) = check_team_text(text, "t.yaml", &validate_opts()) else {
            panic!("loaded: {}", &text[..200]);
        };
        let shown = problems.render();
        assert_eq!(
            problems.errors.len(),
            1,
            "{}",
            &shown[..shown.len().min(600)]
        );
        assert!(
            shown.len() < 1200,
            "{} bytes: {}",
            shown.len(),
            &shown[..600]
        );
        // Cut where it is echoed, saying how long it was (5 MiB, plus quotes or a suffix).
        assert!(shown.contains("… (524288"), "{shown}");
    }
}

#[test]
fn every_bad_provider_option_of_one_backend_is_reported_at_once() {
    let text = "\
agents:
  - id: a
    backend:
      type: vllm
      model: m
      base_url: http://127.0.0.1:8000/v1
      top_p: 2
      top_k: 0
      reasoning_effort: extreme
      extra_body: {n: 4}
";
    let problems = check_team_text(text, "t.yaml", &env(&[])).unwrap_err();
    let found: Vec<&str> = problems.errors.iter().map(|e| e.path()).collect();
    assert_eq!(
        found,
        [
            "agents[0].backend.top_p",
            "agents[0].backend.top_k",
            "agents[0].backend.reasoning_effort",
            "agents[0].backend.extra_body.n",
        ],
        "{problems}"
    );
}
