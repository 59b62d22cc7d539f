//! `massgen-rs` end to end: load and validate the configuration, run the team with live
//! progress, print the answer, and map every outcome to an exit code.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use super::args::{Cli, Command, LogFormatArg, RunArgs};
use super::automation::{AutomationReport, render};
use super::interrupt::interrupted;
use super::progress::ProgressMode;
use super::report::{report_interrupted, report_success};
use super::{stored, validate};
use crate::config::{self, DisplayType, LimitsTable, LoadOptions, PriceTable, TeamConfig};
use crate::runtime::{RunError, RunStatus, Runtime, RuntimeOptions};
use crate::store::StoreSpec;
use show::{ShowOptions, show_progress, supervised_agents};

/// Exit code: the team produced an answer.
pub const EXIT_OK: u8 = 0;
/// Exit code: an internal error.
pub const EXIT_INTERNAL: u8 = 1;
/// Exit code: a usage or configuration error.
pub const EXIT_CONFIG: u8 = 2;
/// Exit code: a spending limit (`rate_limit.budget`) stopped the run, with its best answer or
/// none ([`crate::runtime::EXIT_BUDGET`]).
pub const EXIT_BUDGET: u8 = 5;
/// Exit code: interrupted by Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// Runs the command line `cli` and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let code = match cli.command {
        Some(Command::MockProvider(args)) => super::mock::run(args),
        Some(Command::Usage(args)) => super::usage::run(&args),
        Some(Command::Serve(args)) => super::serve::run(args),
        None => run_team(cli.run),
    };
    ExitCode::from(code)
}

/// Writes `text` to stdout. A closed pipe (`massgen-rs --list-backends | head -1`) is not an
/// error; any other failure (a full disk) is reported in one line and gives exit code 1.
pub(super) fn print_stdout(text: &str) -> Result<(), u8> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(EXIT_OK),
        Err(e) => {
            eprintln!("error: cannot write to standard output: {e}");
            Err(EXIT_INTERNAL)
        }
    }
}

/// A configuration that loaded and passed every check.
struct Loaded {
    team: TeamConfig,
    table: LimitsTable,
    prices: Arc<PriceTable>,
    rate_limit: bool,
    why: String,
    /// Things `--validate` reports without failing (keys not set here, limits that bind only
    /// with rate limiting on).
    warnings: Vec<String>,
}

fn load(args: &RunArgs) -> Result<Loaded, String> {
    let Some(path) = &args.config else {
        return Err(
            "no team file given: use --config FILE (try configs/simulated_team.yaml, \
                    which needs no API key), or --help for examples"
                .to_owned(),
        );
    };
    // `--validate` checks the file on a machine that may not hold the secrets: a missing key is
    // reported as a warning there, and is an error only when the team is about to run.
    let opts = LoadOptions {
        strict: args.strict,
        allow_missing_keys: args.validate,
        ..LoadOptions::default()
    };
    // One parse, whatever the outcome: the file may be large.
    let checked = match config::check_team(path, &opts) {
        Ok(checked) => checked,
        // A limits file has providers at its top level: only then is it worth reading again.
        Err(e) if unknown_top_level_key(&e) && LimitsTable::load_file(path).is_ok() => {
            return Err(format!(
                "{}\n  {} is a limits file, not a team file: pass it with --limits {1} \
                 (or rate_limit.limits_file in the team file) next to --config TEAM.yaml",
                e.render(),
                path.display()
            ));
        }
        Err(e) => return Err(e.render()),
    };
    let mut team = checked.team;
    let mut warnings: Vec<String> = checked.warnings.iter().map(|w| w.to_string()).collect();
    let table = LimitsTable::for_team(&team, args.limits.as_deref()).map_err(|e| e.to_string())?;
    let prices =
        PriceTable::with_file(team.rate_limit.prices.as_deref()).map_err(|e| e.to_string())?;
    let (rate_limit, why) = effective_rate_limit(args.rate_limit_flag(), &team);
    // Where quota state lives: `--state`, else the team file's `rate_limit.state`, else the
    // per-user state file.
    let file_store = team.rate_limit.state.take();
    team.rate_limit.state = Some(match (&args.quota_store, &args.state, file_store) {
        (Some(url), _, _) if !crate::store::is_redis_url(url) => {
            return Err(format!(
                "--quota-store `{}` is not a Redis URL (redis://host:6379/0 or rediss://...); \
                 an SQLite file goes in --state",
                crate::store::redis::url::mask(url)
            ));
        }
        (Some(url), _, file) => StoreSpec::Redis {
            url: url.trim().to_owned(),
            // The team file's choice of failing open holds for the flag's server too.
            fail_open_local: matches!(
                file,
                Some(StoreSpec::Redis {
                    fail_open_local: true,
                    ..
                })
            ),
        },
        (None, flag, file) => match (flag, file) {
            (Some(flag), _) if flag.trim().is_empty() => {
                return Err(
                    "--state is empty: name a state file, or `none` to keep quota state \
                        in memory only"
                        .to_owned(),
                );
            }
            (Some(flag), _) => StoreSpec::parse(flag),
            (None, Some(file)) => file,
            (None, None) => StoreSpec::default_for_user(),
        },
    });
    if args.rate_limit_flag().is_some() {
        // The flag, when given, wins over every per-agent setting too.
        for agent in &mut team.agents {
            agent.backend.enable_rate_limit = None;
        }
    }
    match config::validate_limits_against_team(&team, &table) {
        Ok(()) => {}
        Err(e) if rate_limit => return Err(e.to_string()),
        // With rate limiting off the limits do not apply, but a user checking the file should
        // hear that they would refuse these calls once it is on.
        Err(e) if args.validate => warnings.push(format!("{e} (applies with --rate-limit)")),
        Err(_) => {}
    }
    Ok(Loaded {
        team,
        table,
        prices: Arc::new(prices),
        rate_limit,
        why,
        warnings,
    })
}

/// Whether one of `problems` is an unknown key at the top level of the file.
fn unknown_top_level_key(problems: &config::ConfigProblems) -> bool {
    problems
        .errors
        .iter()
        .any(|e| e.message().starts_with("unknown key") && !e.path().contains(['.', '[']))
}

/// Whether rate limiting is on, and why: the CLI flag when given, else the team file's
/// `rate_limit.enable_rate_limit`, else on when any agent's backend asks for it.
fn effective_rate_limit(flag: Option<bool>, team: &TeamConfig) -> (bool, String) {
    if let Some(on) = flag {
        let name = if on {
            "--rate-limit"
        } else {
            "--no-rate-limit"
        };
        return (on, format!("{name} given"));
    }
    if let Some(on) = team.rate_limit.enabled {
        return (on, format!("enable_rate_limit: {on} in the team file"));
    }
    let asking: Vec<&str> = team
        .agents
        .iter()
        .filter(|a| a.backend.enable_rate_limit == Some(true))
        .map(|a| a.id.as_str())
        .collect();
    if asking.is_empty() {
        (
            false,
            "default; turn on with --rate-limit or enable_rate_limit: true".to_owned(),
        )
    } else {
        (
            true,
            format!("enable_rate_limit: true on {}", asking.join(", ")),
        )
    }
}

fn run_team(args: RunArgs) -> u8 {
    if args.list_backends {
        return print_stdout(&validate::list_backends()).map_or_else(|code| code, |()| EXIT_OK);
    }
    let loaded = match load(&args) {
        Ok(l) => l,
        Err(message) if message.starts_with("error: ") => {
            // Every problem of the file, one per line, already labelled.
            eprintln!("{message}");
            return EXIT_CONFIG;
        }
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_CONFIG;
        }
    };
    if !args.validate && args.verbosity() > -2 {
        // What the team will lack, said once before it runs.
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
    }
    if args.validate {
        let mut summary =
            validate::summary(&loaded.team, &loaded.table, loaded.rate_limit, &loaded.why);
        // What the store holds now for the team's scopes (read only: no file is created).
        summary.push_str(&stored::describe(
            &loaded.team.rate_limit.state.clone().unwrap_or_default(),
            &stored::team_scopes(&loaded.team, &loaded.table),
            chrono::Utc::now().timestamp_millis(),
        ));
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
        return print_stdout(&summary).map_or_else(|code| code, |()| EXIT_OK);
    }
    let Some(question) = args.question.clone().filter(|q| !q.trim().is_empty()) else {
        eprintln!(
            "error: no question given: put it after the flags, e.g. \
             massgen-rs --config {} \"What is the capital of France?\"",
            args.config
                .as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_default()
        );
        return EXIT_CONFIG;
    };
    if let Some(file) = &args.output_file {
        // Find out now, not after a long run, that the answer could not be saved.
        if let Err(e) = std::fs::write(file, "") {
            eprintln!("error: cannot write --output-file {}: {e}", file.display());
            return EXIT_CONFIG;
        }
    }
    let mode = progress_mode(&args, &loaded.team);
    if let Err(message) = init_logging(&args, mode) {
        eprintln!("error: {message}");
        return EXIT_CONFIG;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return EXIT_INTERNAL;
        }
    };
    rt.block_on(run_question(args, loaded, question, mode))
}

fn progress_mode(args: &RunArgs, team: &TeamConfig) -> ProgressMode {
    if args.automation || args.verbosity() < 0 || args.log_format == LogFormatArg::Json {
        // JSON logs are for machines: no human progress lines in between.
        ProgressMode::Off
    } else if std::io::stderr().is_terminal()
        && team.ui.display_type == DisplayType::Rich
        && args.verbosity() == 0
    {
        // Logs asked for with -v would write over the terminal display: they get plain lines.
        ProgressMode::Live
    } else {
        ProgressMode::Plain
    }
}

fn init_logging(args: &RunArgs, mode: ProgressMode) -> Result<(), String> {
    use crate::telemetry::{LogFormat, LogOptions, init_tracing};
    // The progress display already shows every wait and state once; logs stay at warnings
    // unless asked for with -v (JSON logs, which replace the display, keep info).
    let base = if mode == ProgressMode::Off && !args.automation {
        0
    } else {
        -1
    };
    let verbosity = if args.verbosity() == 0 {
        base
    } else {
        args.verbosity()
    };
    let format = match args.log_format {
        LogFormatArg::Pretty => LogFormat::Pretty,
        LogFormatArg::Json => LogFormat::Json,
    };
    match init_tracing(LogOptions { format, verbosity }) {
        Ok(()) => Ok(()),
        Err(e @ crate::telemetry::TelemetryError::LogFilter { .. }) => Err(e.to_string()),
        Err(e) => {
            // Another subscriber is installed (an embedding app): keep going with it.
            eprintln!("warning: logging not set up: {e}");
            Ok(())
        }
    }
}

async fn run_question(args: RunArgs, loaded: Loaded, question: String, mode: ProgressMode) -> u8 {
    let Loaded {
        team,
        table,
        prices,
        rate_limit,
        ..
    } = loaded;
    // Listen for Ctrl-C and SIGTERM before anything else starts, so even an early one ends the
    // run the orderly way rather than killing it before its status is written.
    let stop = interrupted();
    let agent_ids: Vec<String> = team.agents.iter().map(|a| a.id.clone()).collect();
    let supervised = supervised_agents(&team, rate_limit);
    let options = RuntimeOptions {
        rate_limit,
        limits: Some(Arc::new(table)),
        run_dir_root: (!args.no_run_dir).then(|| args.runs_dir.clone()),
        orchestrator_timeout: args.orchestrator_timeout.map(Duration::from_secs),
        prices: Some(prices),
        ..RuntimeOptions::default()
    };
    let runtime = match Runtime::new(team, options) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    let metrics = match super::metrics::start(args.metrics_addr, &runtime).await {
        Ok(m) => m,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_CONFIG;
        }
    };
    let display = tokio::spawn(show_progress(
        runtime.subscribe(),
        Arc::clone(&runtime),
        ShowOptions {
            mode,
            question: question.clone(),
            agents: agent_ids,
            supervised,
            automation: args.automation,
        },
    ));
    // Ctrl-C or SIGTERM ends the run the orderly way: calls in flight are cancelled and the
    // run directory gets its status.json and final event like any other end.
    let outcome = runtime.run_until(&question, stop).await;
    // The run's last event ends the display task; give it a moment to draw the final state.
    let _ = tokio::time::timeout(Duration::from_secs(2), display).await;
    // Whatever became of the display task, the terminal is given back before anything is
    // printed on it.
    crate::views::display::restore();
    let code = match outcome {
        Ok(outcome) if outcome.status == RunStatus::Interrupted => {
            report_interrupted(&args, &question, &outcome)
        }
        Ok(outcome) if outcome.status == RunStatus::BudgetExceeded => {
            match report_success(&args, &question, &outcome) {
                EXIT_OK => EXIT_BUDGET,
                code => code,
            }
        }
        Ok(outcome) => report_success(&args, &question, &outcome),
        Err(err) => {
            let interrupted = matches!(err, RunError::Interrupted { .. });
            if args.automation {
                let _ = print_stdout(&render(&AutomationReport {
                    status: if interrupted { "interrupted" } else { "failed" },
                    question: &question,
                    ..AutomationReport::default()
                }));
            }
            if interrupted {
                eprintln!("{err}");
            } else {
                eprintln!("error: {err}");
            }
            u8::try_from(err.exit_code()).unwrap_or(EXIT_INTERNAL)
        }
    };
    super::metrics::finish(metrics, args.linger.map(Duration::from_secs)).await;
    code
}

mod show;

#[cfg(test)]
mod tests;
