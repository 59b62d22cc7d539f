//! Limits tables: lookup order, per-entry overrides, durations and extensions.

use std::time::Duration;

use massgen::config::LimitsTable;
use massgen::quota::{Dimension, ScopeKind};

const USER: &str = "
gemini:
  gemini-2.5-flash: {rpm: 4, tpm: 50000}
  gemini-2.5: {rpm: 3}
  exp: {rpm: 1}
openai:
  gpt-4o-mini:
    windows:
      - {requests: 100, per: 10s}
      - {tokens: 20000, per: 500ms}
      - {requests: 1000, per: 1h}
      - {tokens: 5000000, per: 1d}
    concurrency: 3
    startup_cooldown: 1m
    scope: per_key
    shared_key: team-pool
    pacing: true
    daily_reset: '07:30 UTC'
shared:
  team-pool: {rpm: 50, concurrency: 4}
default: {rpm: 11}
";

fn user() -> LimitsTable {
    LimitsTable::parse(USER, "user.yaml").unwrap()
}

#[test]
fn exact_then_longest_contained_key_then_provider_default_then_global() {
    let t = LimitsTable::builtin().merged_with(&user());
    // Exact entry.
    assert_eq!(
        t.lookup("gemini", "gemini-2.5-flash").matched,
        "gemini/gemini-2.5-flash"
    );
    // Contained keys: `gemini-2.5-flash` (16 chars) beats `gemini-2.5` (10) for a flash variant,
    // even though both are contained; the built-in flash-lite entry is an exact match.
    assert_eq!(
        t.lookup("gemini", "gemini-2.5-flash-preview").matched,
        "gemini/gemini-2.5-flash"
    );
    assert_eq!(
        t.lookup("gemini", "gemini-2.5-flash-lite").matched,
        "gemini/gemini-2.5-flash-lite"
    );
    assert_eq!(
        t.lookup("gemini", "gemini-2.5-ultra").matched,
        "gemini/gemini-2.5"
    );
    assert_eq!(t.lookup("gemini", "gemini-exp-1206").matched, "gemini/exp");
    // Provider default.
    assert_eq!(
        t.lookup("gemini", "gemini-1.5-pro").matched,
        "gemini/default"
    );
    assert_eq!(
        t.lookup("anthropic", "claude-sonnet-4-20250514").matched,
        "anthropic/default"
    );
    assert_eq!(
        t.lookup("anthropic", "claude-3-5-haiku-latest").matched,
        "anthropic/claude-3-5-haiku"
    );
    // The user's global default replaced the built-in one.
    let other = t.lookup("vllm", "qwen");
    assert_eq!(other.matched, "default");
    assert_eq!(other.limits.len(), 1);
    assert_eq!(other.concurrency, None);
    // No table entry at all: unlimited.
    let none = LimitsTable::default().lookup("vllm", "qwen");
    assert_eq!(none.matched, "none");
    assert!(none.limits.is_empty());
}

#[test]
fn user_entries_replace_builtin_entries_one_by_one() {
    let builtin = LimitsTable::builtin();
    let t = builtin.merged_with(&user());
    let flash = t.lookup("gemini", "gemini-2.5-flash");
    // Replaced as a whole: the user's entry has no rpd and no cooldown.
    let amounts: Vec<u64> = flash.limits.iter().map(|l| l.amount.get()).collect();
    assert_eq!(amounts, [4, 50000]);
    assert_eq!(flash.startup_cooldown, Duration::ZERO);
    // Entries the user did not name are untouched.
    assert_eq!(
        t.lookup("gemini", "gemini-2.5-pro"),
        builtin.lookup("gemini", "gemini-2.5-pro")
    );
    assert_eq!(
        t.lookup("groq", "llama-3.3-70b-versatile"),
        builtin.lookup("groq", "llama-3.3-70b-versatile")
    );
    // And the built-in table itself is unchanged.
    assert_eq!(builtin.lookup("gemini", "gemini-2.5-flash").limits.len(), 3);
    assert!(t.entries().count() > builtin.entries().count());
}

#[test]
fn extensions_windows_scope_shared_pacing_reset() {
    let t = user();
    let m = t.lookup("openai", "gpt-4o-mini");
    let names: Vec<String> = m.limits.iter().map(|l| l.short_name()).collect();
    assert_eq!(
        names,
        ["requests/10s", "tokens/500ms", "requests/1h", "tpd"]
    );
    assert_eq!(m.limits[1].dimension, Dimension::Tokens);
    assert_eq!(m.limits[1].period, Duration::from_millis(500));
    assert_eq!(m.concurrency.map(|c| c.get()), Some(3));
    assert_eq!(m.startup_cooldown, Duration::from_secs(60));
    assert_eq!(m.scope, ScopeKind::PerKey);
    assert_eq!(m.shared_key.as_deref(), Some("team-pool"));
    assert!(m.pacing);
    let reset = m.daily_reset.unwrap();
    assert_eq!((reset.hour, reset.minute), (7, 30));
    assert_eq!(reset.tz, chrono_tz::Tz::UTC);
    let spec = m.scope_spec();
    assert_eq!(spec.limits, m.limits);
    let pool = t.shared_group("team-pool").unwrap();
    assert_eq!(pool.matched, "shared:team-pool");
    assert_eq!(pool.concurrency.map(|c| c.get()), Some(4));
    assert!(t.shared_group("nope").is_none());
    assert_eq!(t.shared_groups().collect::<Vec<_>>(), ["team-pool"]);
}

#[test]
fn builtin_gemini_is_per_account_and_resets_at_pacific_midnight() {
    let t = LimitsTable::builtin();
    for model in ["gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash"] {
        let m = t.lookup("gemini", model);
        assert_eq!(m.scope, ScopeKind::PerAccount, "{model}");
        let r = m.daily_reset.unwrap();
        assert_eq!(
            (r.hour, r.minute, r.tz),
            (0, 0, chrono_tz::Tz::America__Los_Angeles)
        );
    }
    // MassGen's cooldowns: flash 3 s, pro 10 s, any other Gemini 5 s.
    assert_eq!(
        t.lookup("gemini", "gemini-2.0-flash").matched,
        "gemini/default"
    );
    assert_eq!(
        t.lookup("gemini", "gemini-2.0-flash")
            .startup_cooldown
            .as_secs(),
        5
    );
    // The simulated entry does something visible but quick.
    let sim = t.lookup("simulated", "sim-fast");
    assert!(sim.pacing && sim.concurrency.is_some() && !sim.limits.is_empty());
    assert!(sim.startup_cooldown <= Duration::from_secs(2));
}

#[test]
fn every_builtin_entry_has_a_source_comment() {
    // Each provider entry in the built-in file is preceded by a comment naming where its
    // figures come from (a page or "Ours") and when.
    let text = LimitsTable::builtin_text();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let is_entry =
            line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
        if !is_entry {
            continue;
        }
        let mut j = i;
        let mut comment = String::new();
        while j > 0 && lines[j - 1].trim_start().starts_with('#') {
            j -= 1;
            comment.insert_str(0, lines[j]);
        }
        let dated = comment.contains("20") || comment.contains("Ours");
        assert!(
            dated && !comment.is_empty(),
            "entry on line {} has no source comment",
            i + 1
        );
    }
}

#[test]
fn for_team_layers_builtin_then_team_file_then_extra() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("team_limits.yaml"),
        "simulated: {default: {rpm: 5}}\ngroq: {default: {rpm: 7}}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("cli_limits.yaml"),
        "simulated: {default: {rpm: 3}}\n",
    )
    .unwrap();
    let team_file = dir.path().join("team.yaml");
    std::fs::write(
        &team_file,
        "agent:\n  backend: {type: simulated, model: s}\nrate_limit: {limits_file: team_limits.yaml}\n",
    )
    .unwrap();
    let opts = massgen::config::LoadOptions {
        env: massgen::config::EnvLookup::from_pairs(Vec::<(String, String)>::new()),
        ..Default::default()
    };
    let team = massgen::config::load_team(&team_file, &opts).unwrap();
    let rpm = |t: &LimitsTable, p: &str| t.lookup(p, "m").limits[0].amount.get();
    let t = LimitsTable::for_team(&team, None).unwrap();
    assert_eq!((rpm(&t, "simulated"), rpm(&t, "groq")), (5, 7));
    let t = LimitsTable::for_team(&team, Some(&dir.path().join("cli_limits.yaml"))).unwrap();
    assert_eq!((rpm(&t, "simulated"), rpm(&t, "groq")), (3, 7));
    assert_eq!(
        t.lookup("gemini", "gemini-2.5-pro").limits[0].amount.get(),
        2
    );
    let err = LimitsTable::for_team(&team, Some(&dir.path().join("missing.yaml"))).unwrap_err();
    assert!(err.message().contains("cannot read"), "{err}");
}

#[test]
fn summaries_read_like_the_file() {
    let t = LimitsTable::builtin();
    assert_eq!(
        t.lookup("gemini", "gemini-2.5-flash").summary(),
        "gemini/gemini-2.5-flash: 9 rpm, 240000 tpm, 245 rpd; startup cooldown 3s; per account; daily reset 00:00 America/Los_Angeles"
    );
    assert_eq!(t.lookup("vllm", "qwen").summary(), "default: 8 in flight");
    assert_eq!(
        LimitsTable::default().lookup("x", "y").summary(),
        "none: no limits"
    );
    let u = user();
    assert_eq!(
        u.lookup("openai", "gpt-4o-mini").summary(),
        "openai/gpt-4o-mini: 100 requests/10s, 20000 tokens/500ms, 1000 requests/1h, 5000000 tpd, 3 in flight; startup cooldown 1m; per key; shared group team-pool; paced; daily reset 07:30 UTC"
    );
}

#[test]
fn input_and_output_token_limits_and_the_default_output_cap() {
    let t = LimitsTable::parse(
        "
anthropic:
  claude-x:
    rpm: 50
    itpm: 30000
    otpm: 8000
    windows:
      - {input_tokens: 1000, per: 10s}
      - {output_tokens: 400, per: 10s}
  claude-y: {itpm: 30000, otpm: 8000, default_max_tokens: 1500}
openai:
  tiny: {tpm: 1000}
  set: {tpm: 1000, default_max_tokens: 600}
  untokened: {rpm: 3}
",
        "user.yaml",
    )
    .unwrap();
    let x = t.lookup("anthropic", "claude-x");
    let dims: Vec<(Dimension, u64, u64)> = x
        .limits
        .iter()
        .map(|l| (l.dimension, l.amount.get(), l.period.as_secs()))
        .collect();
    assert_eq!(
        dims,
        vec![
            (Dimension::Requests, 50, 60),
            (Dimension::InputTokens, 30000, 60),
            (Dimension::OutputTokens, 8000, 60),
            (Dimension::InputTokens, 1000, 10),
            (Dimension::OutputTokens, 400, 10),
        ]
    );
    assert_eq!(x.limits[1].short_name(), "itpm");
    assert_eq!(x.limits[2].short_name(), "otpm");
    // The built-in cap, lowered to 1/4 of the tightest limit that counts output (400 / 4);
    // input-only limits do not lower it.
    assert_eq!(x.output_cap("anthropic"), 100);
    assert_eq!(
        t.lookup("anthropic", "claude-y").output_cap("anthropic"),
        1500
    );
    assert!(
        t.lookup("anthropic", "claude-y")
            .summary()
            .contains("default max_tokens 1500")
    );
    assert_eq!(t.lookup("openai", "tiny").output_cap("openai"), 250);
    assert_eq!(t.lookup("openai", "set").output_cap("openai"), 600);
    assert_eq!(t.lookup("openai", "untokened").output_cap("openai"), 4096);
    assert_eq!(t.lookup("openai", "untokened").output_cap("gemini"), 8192);
    // The built-in table: Anthropic's limits are input and output apart.
    let b = LimitsTable::builtin().lookup("anthropic", "claude-sonnet-4");
    assert!(
        b.limits
            .iter()
            .any(|l| l.dimension == Dimension::InputTokens)
    );
    assert_eq!(b.output_cap("anthropic"), 2000);
}

#[test]
fn a_default_output_cap_that_leaves_no_room_is_refused() {
    for (text, needle) in [
        (
            "openai: {m: {tpm: 1000, default_max_tokens: 1000}}",
            "leaves no room",
        ),
        (
            "anthropic: {m: {otpm: 500, default_max_tokens: 800}}",
            "otpm limit of 500",
        ),
        ("openai: {m: {default_max_tokens: 0}}", "at least 1"),
        (
            "openai: {m: {windows: [{tokens: 5, input_tokens: 5, per: 1s}]}}",
            "exactly one of",
        ),
    ] {
        let err = LimitsTable::parse(text, "user.yaml")
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
}
