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

fn is_limits_file(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n == "rate_limits.yaml")
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
