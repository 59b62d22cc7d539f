//! Start-up time of `massgen-rs --validate`: load a team file, the built-in and user limits,
//! validate everything and print the summary. Interleaved rounds against two baselines measured
//! in the same run (`/bin/true`, and `massgen-rs --version`, which starts the binary and parses
//! flags only). Run with `cargo bench --bench startup`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Instant;

const ROUNDS: usize = 60;

fn main() {
    let bin = env!("CARGO_BIN_EXE_massgen-rs");
    let root = env!("CARGO_MANIFEST_DIR");
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("baseline: /bin/true", vec![], "/bin/true"),
        ("baseline: massgen-rs --version", vec!["--version"], bin),
        (
            "--validate configs/simulated_team.yaml",
            vec!["--config", "configs/simulated_team.yaml", "--validate"],
            bin,
        ),
        (
            "--validate configs/gemini_six_agents.yaml",
            vec!["--config", "configs/gemini_six_agents.yaml", "--validate"],
            bin,
        ),
        (
            "--validate configs/mixed_team.yaml",
            vec!["--config", "configs/mixed_team.yaml", "--validate"],
            bin,
        ),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); cases.len()];
    for _ in 0..ROUNDS {
        for (i, (_, args, program)) in cases.iter().enumerate() {
            let started = Instant::now();
            let status = Command::new(program)
                .args(args)
                .current_dir(root)
                .env("GEMINI_API_KEY", "bench-key-000000000000")
                .env("OPENAI_API_KEY", "bench-key-000000000000")
                .env("ANTHROPIC_API_KEY", "bench-key-000000000000")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("the program starts");
            samples[i].push(started.elapsed().as_secs_f64() * 1000.0);
            assert!(status.success(), "{program} {args:?} failed");
        }
    }
    println!("| case | median | p90 |");
    println!("|---|---|---|");
    for ((name, _, _), s) in cases.iter().zip(&mut samples) {
        s.sort_by(f64::total_cmp);
        let median = s[s.len() / 2];
        let p90 = s[s.len() * 9 / 10];
        println!("| {name} | {median:.2} ms | {p90:.2} ms |");
    }
}
