//! Command-line flags (clap). Names follow MassGen's CLI where MassGen has the same flag.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::usage::report::{Format as UsageFormat, GroupBy};

const EXAMPLES: &str = "\
Examples:
  # Run a three-agent team on the built-in simulated backend (no API key needed)
  massgen-rs --config configs/simulated_team.yaml --rate-limit \"What is the capital of France?\"

  # Check a team file and show the effective limits per model, without running anything
  massgen-rs --config configs/gemini_team.yaml --validate

  # Run a Gemini team with your own limits file and Prometheus metrics on port 9464
  GEMINI_API_KEY=... massgen-rs --config configs/gemini_team.yaml --limits my_limits.yaml \\
      --metrics-addr 127.0.0.1:9464 \"Summarize the CAP theorem\"

  # Machine-readable output for scripts (MassGen's --automation lines)
  massgen-rs --config configs/simulated_team.yaml --automation \"2+2?\"

  # What the last week's provider calls used and cost, per model (the usage ledger)
  massgen-rs usage --since 7d --by model

  # An OpenAI-compatible gateway in front of the quota supervisor (docs/gateway.md)
  massgen-rs serve --config configs/gateway.yaml

  # Serve the mock provider (OpenAI, Gemini and Anthropic dialects) on loopback
  massgen-rs mock-provider --listen 127.0.0.1:8089 --latency 50

Exit codes:
  0  the team produced an answer
  1  internal error
  2  usage or configuration error
  3  no agent produced an answer (every agent failed)
  4  a quota wait passed its deadline before any answer existed
  130 interrupted (Ctrl-C)";

/// Runs a team of LLM agents the MassGen way under a quota supervisor.
#[derive(Debug, Parser)]
#[command(
    name = "massgen-rs",
    version,
    about = "Runs a team of LLM agents the MassGen way (parallel answers, refinement, votes, a \
             winner's final answer) without ever exceeding a provider's rate limits.",
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A tool that runs instead of a team.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Options of a team run.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve a mock LLM provider (OpenAI-compatible, Gemini and Anthropic dialects) that enforces
    /// exact rate limits and can inject faults — for dry runs, tests and benchmarks.
    MockProvider(MockProviderArgs),
    /// Serve an OpenAI-compatible gateway (POST /v1/chat/completions, GET /v1/models) that puts
    /// any client behind the quota supervisor: requests wait for quota up to a deadline, then
    /// get 429 with Retry-After (docs/gateway.md).
    Serve(ServeArgs),
    /// Show what earlier runs' provider calls used and cost: calls, outcomes, tokens, cost
    /// and latency per model, agent, key, day, provider or run, from the usage ledger kept
    /// with the quota state.
    #[command(after_help = USAGE_EXAMPLES)]
    Usage(UsageArgs),
}

const USAGE_EXAMPLES: &str = "\
Examples:
  massgen-rs usage                          # the last day, per model, as a table
  massgen-rs usage --since 7d --by agent
  massgen-rs usage --since 2026-01-01T00:00:00Z --by day --format csv > usage.csv
  massgen-rs usage --by run --format json --state team-quota.db

Every provider call of a run (failed, rate-limited and cancelled ones included) is recorded with
the tokens the provider reported (a cancelled call at the tokens it reserved, since the provider
may have served it) and its cost from the built-in price table (docs/prices.md);
\"?\" marks a cost that involves a model without a price. Records are kept 400 days.";

/// Flags of `massgen-rs usage`.
#[derive(Debug, Args)]
pub struct UsageArgs {
    /// How far back to look: a duration (30m, 12h, 1d, 7d, 2w) or an RFC 3339 instant
    /// (2026-01-31T00:00:00Z).
    #[arg(long, value_name = "DURATION|INSTANT", default_value = "1d")]
    pub since: String,

    /// One line per model (provider/model), agent, key (fingerprint), day (UTC), provider or
    /// run.
    #[arg(long, value_enum, default_value_t = GroupBy::Model)]
    pub by: GroupBy,

    /// `table` (aligned, with a total line), `csv` (a header line, one row per group) or
    /// `json` (an array of objects, one per group).
    #[arg(long, value_enum, default_value_t = UsageFormat::Table)]
    pub format: UsageFormat,

    /// The state file the runs used (`--state` / `rate_limit.state` of the runs); default
    /// `$XDG_STATE_HOME/massgen-rs/state.db` (else `~/.local/state/massgen-rs/state.db`).
    #[arg(long, value_name = "PATH")]
    pub state: Option<String>,

    /// The Redis database the runs shared (`--quota-store` / `rate_limit.store` of the runs);
    /// wins over `--state`.
    #[arg(long, value_name = "URL")]
    pub quota_store: Option<String>,
}

/// Flags of a team run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The question to put to the team.
    #[arg(value_name = "QUESTION")]
    pub question: Option<String>,

    /// Team file (MassGen's YAML format).
    #[arg(short = 'c', long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Enforce provider rate limits (overrides the team file's `enable_rate_limit`).
    #[arg(long, overrides_with = "no_rate_limit")]
    pub rate_limit: bool,

    /// Do not enforce rate limits (overrides the team file's `enable_rate_limit`).
    #[arg(long, overrides_with = "rate_limit")]
    pub no_rate_limit: bool,

    /// Limits file whose entries override the built-in ones (MassGen's rate_limits.yaml format).
    #[arg(long, value_name = "FILE")]
    pub limits: Option<PathBuf>,

    /// Where quota state is kept so limits hold across runs and processes: an SQLite file
    /// shared by every run that names it, or `none` (memory only). Overrides the team file's
    /// `rate_limit.state`; default `$XDG_STATE_HOME/massgen-rs/state.db` (else
    /// `~/.local/state/massgen-rs/state.db`).
    #[arg(long, value_name = "PATH|none")]
    pub state: Option<String>,

    /// A Redis database to share quota state with processes on other machines
    /// (`redis://[:password@]host:6379/0`). Wins over `--state` and the team file's
    /// `rate_limit.store` / `rate_limit.state`.
    #[arg(long, value_name = "URL")]
    pub quota_store: Option<String>,

    /// Check the configuration, print the agents and the effective limits per model, and exit
    /// (0 when valid, 2 otherwise).
    #[arg(long)]
    pub validate: bool,

    /// Refuse MassGen keys whose feature massgen-rs does not have (and options a backend does
    /// not take) instead of running without them with a warning.
    #[arg(long)]
    pub strict: bool,

    /// List the supported backend types and exit.
    #[arg(long)]
    pub list_backends: bool,

    /// Print MassGen's machine-readable lines (LOG_DIR:, STATUS:, QUESTION:, WINNER:,
    /// ANSWER_FILE:, DURATION:, ANSWER:) instead of the live display.
    #[arg(long)]
    pub automation: bool,

    /// Also write the final answer to this file.
    #[arg(long, value_name = "FILE")]
    pub output_file: Option<PathBuf>,

    /// Whole-run time limit in seconds (overrides `timeout_settings.orchestrator_timeout_seconds`).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub orchestrator_timeout: Option<u64>,

    /// Serve Prometheus `/metrics` and a JSON `/status` at this address while the run lasts
    /// (e.g. `127.0.0.1:9464` or `localhost:9464`; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub metrics_addr: Option<SocketAddr>,

    /// Keep serving `/metrics` this many seconds after the run ends (for a final scrape).
    #[arg(long, value_name = "SECONDS", requires = "metrics_addr")]
    pub linger: Option<u64>,

    /// Where run directories go (status.json, events.jsonl, every answer).
    #[arg(long, value_name = "DIR", default_value = ".massgen-rs/runs")]
    pub runs_dir: PathBuf,

    /// Do not write a run directory.
    #[arg(long)]
    pub no_run_dir: bool,

    /// Log format on stderr (`json`: one JSON object per line and no progress lines).
    #[arg(long, value_enum, default_value_t = LogFormatArg::Pretty)]
    pub log_format: LogFormatArg,

    /// More log output (-v info, -vv debug, -vvv trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Less output: `-q` hides the live progress and shows warnings and errors only, `-qq`
    /// errors only.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub quiet: u8,
}

impl RunArgs {
    /// The rate-limit flag if one was given: `Some(true)` for `--rate-limit`, `Some(false)` for
    /// `--no-rate-limit`, `None` when neither (the team file then decides).
    pub fn rate_limit_flag(&self) -> Option<bool> {
        match (self.rate_limit, self.no_rate_limit) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        }
    }

    /// `-v` minus `-q`.
    pub fn verbosity(&self) -> i8 {
        i8::try_from(self.verbose).unwrap_or(i8::MAX) - i8::try_from(self.quiet).unwrap_or(i8::MAX)
    }
}

/// An `IP:PORT` or `HOST:PORT` address; a host name resolves to its first address.
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    text.to_socket_addrs()
        .map_err(|e| format!("`{text}` is not an address like 127.0.0.1:9464 ({e})"))?
        .next()
        .ok_or_else(|| format!("`{text}` resolves to no address; try 127.0.0.1:9464"))
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormatArg {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Flags of `massgen-rs serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The gateway file: where to listen, the models served, rate limits (e.g.
    /// configs/gateway.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// Address to listen on instead of the file's `listen` (a non-loopback address needs
    /// `allow_remote: true` in the file; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", value_parser = parse_addr)]
    pub listen: Option<SocketAddr>,
}

/// Flags of `massgen-rs mock-provider`.
#[derive(Debug, Args)]
pub struct MockProviderArgs {
    /// Address to listen on (loopback unless you name another; port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8089", value_parser = parse_addr)]
    pub listen: SocketAddr,

    /// Limits to enforce, in the rate_limits.yaml format (default: no limits).
    #[arg(long, value_name = "FILE")]
    pub limits: Option<PathBuf>,

    /// Delay before every answer, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,

    /// Faults to inject: comma-separated KIND:TRIGGER rules, e.g.
    /// `500:0.1,reset:0.05,slow:0.1,truncate:0.05,malformed:0.05,hostile:every=5`.
    /// KIND: an HTTP status, reset, slow, truncate, malformed, or a hostile reply with absurd
    /// rate-limit values: `hostile` (a different kind each time) or `hostile-huge`
    /// (Retry-After 99999999999999999999, "try again in 99999999999999999999h"),
    /// `hostile-nan`, `hostile-negative`, `hostile-empty`, `hostile-garbage`,
    /// `hostile-exponent` (1e30, retryDelay "1e30s"), `hostile-far-future` (year 9999 resets),
    /// `hostile-past` (1970 resets), `hostile-limits` (a 200 with limit 0, remaining -3).
    /// TRIGGER: a probability, key=K, first=N or every=N; `slow_ms:N` sets the slow delay
    /// (grammar in docs/providers.md).
    #[arg(long, value_name = "SPEC", verbatim_doc_comment)]
    pub faults: Option<String>,

    /// Count all keys of a model in one window, as Gemini counts per project (default: each
    /// key has its own windows, as OpenAI-compatible providers count).
    #[arg(long)]
    pub keys_share_limits: bool,

    /// Answer the OpenAI-compatible route as Groq does: `x-ratelimit-*-requests` describe the
    /// per-day request limit, `-tokens` the per-minute one (also on for any model whose name
    /// contains `groq`).
    #[arg(long)]
    pub groq: bool,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn rate_limit_flag_precedence() {
        let parse = |args: &[&str]| Cli::try_parse_from(args).map(|c| c.run.rate_limit_flag());
        assert_eq!(parse(&["massgen-rs", "-c", "t.yaml", "q"]).ok(), Some(None));
        assert_eq!(
            parse(&["massgen-rs", "--rate-limit", "q"]).ok(),
            Some(Some(true))
        );
        assert_eq!(
            parse(&["massgen-rs", "--no-rate-limit", "q"]).ok(),
            Some(Some(false))
        );
        // The last one given wins, as with most CLIs.
        assert_eq!(
            parse(&["massgen-rs", "--rate-limit", "--no-rate-limit", "q"]).ok(),
            Some(Some(false))
        );
    }

    #[test]
    fn mock_provider_subcommand_parses() {
        let cli = Cli::try_parse_from(["massgen-rs", "mock-provider", "--listen", "127.0.0.1:0"]);
        assert!(matches!(
            cli.map(|c| c.command),
            Ok(Some(Command::MockProvider(_)))
        ));
    }

    #[test]
    fn usage_subcommand_parses_and_a_question_named_otherwise_still_runs() {
        let cli = Cli::try_parse_from([
            "massgen-rs",
            "usage",
            "--since",
            "7d",
            "--by",
            "agent",
            "--format",
            "json",
        ])
        .unwrap();
        let Some(Command::Usage(u)) = cli.command else {
            panic!("not the usage command");
        };
        assert_eq!(
            (u.since.as_str(), u.by, u.format),
            ("7d", GroupBy::Agent, UsageFormat::Json)
        );
        let cli = Cli::try_parse_from(["massgen-rs", "usage"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Usage(UsageArgs {
                by: GroupBy::Model,
                format: UsageFormat::Table,
                ..
            }))
        ));
        let cli =
            Cli::try_parse_from(["massgen-rs", "--config", "t.yaml", "How much usage?"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.question.as_deref(), Some("How much usage?"));
        assert!(Cli::try_parse_from(["massgen-rs", "usage", "--by", "colour"]).is_err());
    }

    #[test]
    fn addresses_accept_host_names_and_refuse_nonsense() {
        assert_eq!(parse_addr("127.0.0.1:9464").map(|a| a.port()), Ok(9464));
        assert!(parse_addr("localhost:9464").is_ok_and(|a| a.ip().is_loopback()));
        assert!(parse_addr("not an address").is_err());
        let zero = Cli::try_parse_from(["massgen-rs", "--orchestrator-timeout", "0", "q"]);
        assert!(zero.is_err(), "a zero timeout is refused");
    }

    #[test]
    fn verbosity_counts() {
        let cli = Cli::try_parse_from(["massgen-rs", "-vv", "q"]);
        assert_eq!(cli.map(|c| c.run.verbosity()).ok(), Some(2));
        let cli = Cli::try_parse_from(["massgen-rs", "-q", "q"]);
        assert_eq!(cli.map(|c| c.run.verbosity()).ok(), Some(-1));
    }
}
