//! Configuration loading through the library API: every shipped file loads, every malformed
//! file in the corpus fails with the right path and line, lookups and overrides behave.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use massgen::config::{
    BackendKind, EnvLookup, LimitsTable, LoadOptions, builtin_profile_names, load_team, parse_team,
    validate_limits_against_team,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// An environment with every provider's default key variable set to a fake key.
fn fake_env() -> EnvLookup {
    let mut pairs: Vec<(String, String)> = BackendKind::ALL
        .iter()
        .filter_map(|k| k.default_key_env())
        .map(|v| (v.to_owned(), format!("fake-{v}-0123456789")))
        .collect();
    pairs.push(("MY_KEY".into(), "sk-test-abcdefghijkl9876".into()));
    EnvLookup::from_pairs(pairs)
}

fn opts() -> LoadOptions {
    LoadOptions {
        env: fake_env(),
        ..LoadOptions::default()
    }
}

fn team_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("configs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml") && !is_limits_file(p))
        .collect();
    files.sort();
    files
}

/// The built-in limits and prices, and the gateway's file: not team files.
fn is_limits_file(p: &Path) -> bool {
    p.file_name().is_some_and(|n| {
        n == "rate_limits.yaml" || n == "prices.yaml" || n == "pools.yaml" || n == "gateway.yaml"
    })
}

#[test]
fn every_shipped_team_file_loads_and_fits_the_builtin_limits() {
    let files = team_files();
    assert!(files.len() >= 4, "{files:?}");
    let table = LimitsTable::builtin();
    for f in files {
        let team = load_team(&f, &opts()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!team.agents.is_empty(), "{}", f.display());
        assert_eq!(team.source.as_deref(), Some(f.as_path()));
        validate_limits_against_team(&team, &table).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn every_shipped_team_file_loads_without_secrets_when_keys_may_be_missing() {
    // What `--validate` on a new user's machine sees: no keys in the environment.
    let opts = LoadOptions {
        env: EnvLookup::from_pairs(Vec::<(String, String)>::new()),
        allow_missing_keys: true,
        ..LoadOptions::default()
    };
    for f in team_files() {
        let team = load_team(&f, &opts).unwrap_or_else(|e| panic!("{e}"));
        let needs_keys = team
            .agents
            .iter()
            .any(|a| a.backend.kind.default_key_env().is_some());
        if needs_keys {
            // Without the relaxation the same file is refused, naming a variable.
            let strict = LoadOptions {
                allow_missing_keys: false,
                ..opts.clone()
            };
            let err = load_team(&f, &strict).unwrap_err();
            assert!(err.message().contains("_API_KEY"), "{err}");
        }
    }
}

#[test]
fn the_simulated_team_needs_no_key() {
    let opts = LoadOptions {
        env: EnvLookup::from_pairs(Vec::<(String, String)>::new()),
        ..LoadOptions::default()
    };
    let team = load_team(&root().join("configs/simulated_team.yaml"), &opts).unwrap();
    assert_eq!(team.agents.len(), 3);
    assert!(
        team.agents
            .iter()
            .all(|a| a.backend.kind == BackendKind::Simulated)
    );
    assert!(team.agents.iter().all(|a| a.backend.api_keys.is_empty()));
    // The profile supplied the system message; the team file's backend overrode the profile's.
    assert_eq!(team.agents[0].profile.as_deref(), Some("researcher"));
    assert!(team.agents[0].system_message.is_some());
    assert_eq!(team.rate_limit.enabled, Some(true));
}

#[test]
fn the_builtin_limits_parse_and_carry_massgen_figures() {
    let t = LimitsTable::parse(LimitsTable::builtin_text(), "rate_limits.yaml").unwrap();
    let builtin = LimitsTable::builtin();
    assert!(builtin.entries().count() >= 10);
    assert!(t.entries().eq(builtin.entries()));
    let flash = t.lookup("gemini", "gemini-2.5-flash");
    let names: Vec<String> = flash
        .limits
        .iter()
        .map(|l| format!("{}={}", l.short_name(), l.amount))
        .collect();
    assert_eq!(names, ["rpm=9", "tpm=240000", "rpd=245"]);
    assert_eq!(flash.startup_cooldown.as_secs(), 3);
    let pro = t.lookup("gemini", "gemini-2.5-pro");
    let names: Vec<String> = pro
        .limits
        .iter()
        .map(|l| format!("{}={}", l.short_name(), l.amount))
        .collect();
    assert_eq!(names, ["rpm=2", "tpm=120000", "rpd=48"]);
    assert_eq!(pro.startup_cooldown.as_secs(), 10);
    let other = t.lookup("gemini", "gemini-1.5-flash-8b");
    assert_eq!(other.matched, "gemini/default");
    assert_eq!(other.startup_cooldown.as_secs(), 5);
    assert!(other.daily_reset.is_some());
}

#[test]
fn every_profile_loads_in_a_team() {
    let mut names: Vec<String> = builtin_profile_names().map(str::to_owned).collect();
    for e in std::fs::read_dir(root().join("agents")).unwrap() {
        let p = e.unwrap().path();
        names.push(p.file_stem().unwrap().to_str().unwrap().to_owned());
    }
    names.sort();
    names.dedup();
    assert!(names.len() >= 3);
    for name in names {
        let text = format!("agents:\n  - id: a\n    profile: {name}\n");
        let o = LoadOptions {
            profiles_dir: Some(root().join("agents")),
            ..opts()
        };
        let team = parse_team(&text, "t.yaml", &o).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(team.agents[0].profile.as_deref(), Some(name.as_str()));
        // And the same profile compiled in (no directory given).
        parse_team(&text, "t.yaml", &opts()).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// One malformed file of the corpus and what its first line expects.
struct Case {
    file: PathBuf,
    path: String,
    line: Option<usize>,
    in_file: Option<String>,
    fragment: String,
}

fn corpus_dir() -> PathBuf {
    root().join("tests/fixtures/config/bad")
}

/// Reads `# expect: PATH @ LINE [in FILE] | FRAGMENT` from the first line.
fn read_case(file: PathBuf) -> Case {
    let text = std::fs::read_to_string(&file).unwrap();
    let first = text.lines().next().unwrap_or_default();
    let spec = first
        .strip_prefix("# expect: ")
        .or_else(|| first.strip_prefix("# expect (strict): "))
        .unwrap_or_else(|| panic!("{}: first line must be `# expect: ...`", file.display()));
    let (place, fragment) = spec.split_once(" | ").unwrap();
    let (path, rest) = place.split_once(" @ ").unwrap();
    let (line, in_file) = match rest.split_once(" in ") {
        Some((l, f)) => (l, Some(f.to_owned())),
        None => (rest, None),
    };
    Case {
        path: if path == "(root)" {
            String::new()
        } else {
            path.to_owned()
        },
        line: if line == "-" {
            None
        } else {
            Some(line.parse().unwrap())
        },
        in_file,
        fragment: fragment.to_owned(),
        file,
    }
}

/// The corpus environment: every default key variable except CEREBRAS_API_KEY.
fn corpus_opts() -> LoadOptions {
    let mut pairs: Vec<(String, String)> = BackendKind::ALL
        .iter()
        .filter_map(|k| k.default_key_env())
        .filter(|v| *v != "CEREBRAS_API_KEY")
        .map(|v| (v.to_owned(), format!("secret-{v}-0123456789")))
        .collect();
    pairs.push(("MY_KEY".into(), "secret-MY_KEY-0123456789".into()));
    LoadOptions {
        env: EnvLookup::from_pairs(pairs),
        profiles_dir: Some(corpus_dir().join("agents")),
        ..LoadOptions::default()
    }
}

/// Runs one case; `Ok(error)` when it failed as a config error, `Err` when it loaded.
fn run_case(file: &Path) -> Result<String, massgen::config::ConfigError> {
    let name = file.file_name().unwrap().to_str().unwrap();
    let err = if name.starts_with("limits_") {
        LimitsTable::load_file(file).err()
    } else if name.starts_with("cross_") {
        let team = load_team(file, &corpus_opts())?;
        let table = LimitsTable::for_team(&team, None)?;
        validate_limits_against_team(&team, &table).err()
    } else {
        // `# expect (strict): ...` cases are MassGen keys: refused only under `--strict`.
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let strict = text.starts_with("# expect (strict): ");
        if strict {
            assert!(
                load_team(file, &corpus_opts()).is_ok(),
                "{name}: loads without --strict"
            );
        }
        let opts = LoadOptions {
            strict,
            ..corpus_opts()
        };
        load_team(file, &opts).err()
    };
    match err {
        Some(e) => Err(e),
        None => Ok(format!("{name}: loaded without error")),
    }
}

#[test]
fn every_malformed_config_fails_with_the_right_path_and_line() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 40, "only {} malformed configs", files.len());
    let mut problems = Vec::new();
    for file in files {
        let case = read_case(file);
        let name = case
            .file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let err = match std::panic::catch_unwind(|| run_case(&case.file)) {
            Err(_) => {
                problems.push(format!("{name}: PANICKED"));
                continue;
            }
            Ok(Ok(msg)) => {
                problems.push(msg);
                continue;
            }
            Ok(Err(e)) => e,
        };
        let shown = err.to_string();
        // Shown with `--nocapture`: the corpus doubles as a gallery of error messages.
        println!("{shown}");
        let expected_file = match &case.in_file {
            Some(f) => err.file().ends_with(f.as_str()),
            None => err.file() == case.file.display().to_string(),
        };
        // Every problem of the file is reported: the expected one is among them.
        let found = err.all().any(|e| {
            e.path() == case.path && e.line() == case.line && e.message().contains(&case.fragment)
        });
        let ok = found && expected_file && !shown.contains("secret-");
        if !ok {
            problems.push(format!(
                "{name}: expected `{}` @ {:?} ~ `{}`\n    got {shown}",
                case.path, case.line, case.fragment
            ));
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[path = "config/lookup.rs"]
mod lookup;
#[path = "config/massgen_files.rs"]
mod massgen_files;
#[path = "config/robustness.rs"]
mod robustness;
#[path = "config/team_rules.rs"]
mod team_rules;
