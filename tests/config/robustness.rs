//! Damaged versions of every shipped file: loading never panics, and every error it reports
//! points inside the file.

use std::path::PathBuf;

use massgen::config::{
    ConfigError, EnvLookup, LimitsTable, LoadOptions, PoolTable, PriceTable, parse_team,
};

fn shipped() -> Vec<(PathBuf, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut out: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (p, text)
        })
        .collect();
    out.sort();
    out
}

fn load(name: &str, text: &str) -> Result<(), ConfigError> {
    if name.ends_with("rate_limits.yaml") {
        LimitsTable::parse(text, name).map(|_| ())
    } else if name.ends_with("prices.yaml") {
        PriceTable::parse(text, name).map(|_| ())
    } else if name.ends_with("pools.yaml") {
        PoolTable::parse(text, name).map(|_| ())
    } else if name.ends_with("gateway.yaml") {
        massgen::gateway::parse_gateway(text, name, &LoadOptions::default())
            .map(|_| ())
            .map_err(|p| {
                p.into_error()
                    .unwrap_or_else(|| ConfigError::new(name, "", None, "no error named"))
            })
    } else {
        let opts = LoadOptions {
            env: EnvLookup::from_pairs(Vec::<(String, String)>::new()),
            allow_missing_keys: true,
            ..LoadOptions::default()
        };
        parse_team(text, name, &opts).map(|_| ())
    }
}

fn check(name: &str, text: &str, what: &str) {
    let lines = text.lines().count() + 1;
    let result = std::panic::catch_unwind(|| load(name, text));
    match result {
        Err(_) => panic!("{name}: panicked after {what}"),
        Ok(Err(e)) => {
            if let Some(line) = e.line() {
                assert!(
                    line >= 1 && line <= lines,
                    "{name} ({what}): line {line} outside the file: {e}"
                );
            }
            assert!(!e.message().is_empty(), "{name} ({what})");
        }
        Ok(Ok(())) => {}
    }
}

#[test]
fn deleting_any_line_never_panics_and_errors_stay_in_the_file() {
    for (path, text) in shipped() {
        let name = path.display().to_string();
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let mut damaged = lines.clone();
            damaged.remove(i);
            check(
                &name,
                &damaged.join("\n"),
                &format!("deleting line {}", i + 1),
            );
        }
    }
}

#[test]
fn truncating_or_reindenting_never_panics() {
    for (path, text) in shipped() {
        let name = path.display().to_string();
        for cut in (0..text.len()).step_by(37) {
            if text.is_char_boundary(cut) {
                check(&name, &text[..cut], &format!("truncating at byte {cut}"));
            }
        }
        let lines: Vec<&str> = text.lines().collect();
        for i in 0..lines.len() {
            let mut damaged: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            damaged[i] = format!("  {}", damaged[i]);
            check(
                &name,
                &damaged.join("\n"),
                &format!("indenting line {}", i + 1),
            );
        }
    }
}
