//! tracing setup: human or JSON logs on stderr, filtered by verbosity or `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use super::TelemetryError;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Readable lines for people (`--log-format pretty`, the default).
    #[default]
    Pretty,
    /// One JSON object per line with the span context, for machines (`--log-format json`).
    Json,
}

impl LogFormat {
    /// Parses `pretty` or `json` (as given to `--log-format`).
    pub fn parse(s: &str) -> Option<LogFormat> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pretty" | "text" | "human" => Some(LogFormat::Pretty),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Logging options from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogOptions {
    /// Line format.
    pub format: LogFormat,
    /// `-q` counts negative, `-v` positive: -2 errors only, -1 warnings, 0 info from massgen
    /// (warnings from libraries), 1 debug, 2 or more trace.
    pub verbosity: i8,
}

/// The environment variable whose directives, when set and not empty, replace the verbosity.
pub const LOG_ENV: &str = "RUST_LOG";

/// The filter directives a verbosity stands for.
pub fn verbosity_directives(verbosity: i8) -> &'static str {
    match verbosity {
        i8::MIN..=-2 => "error",
        -1 => "warn",
        0 => "warn,massgen=info",
        1 => "info,massgen=debug",
        _ => "debug,massgen=trace",
    }
}

/// The filter in force: `env` (the value of `RUST_LOG`) when it is set and not empty, else the
/// verbosity's directives. An invalid `RUST_LOG` is an error rather than silently ignored.
pub fn build_filter(verbosity: i8, env: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    let directives = match env.map(str::trim) {
        Some(env) if !env.is_empty() => env,
        _ => verbosity_directives(verbosity),
    };
    EnvFilter::builder()
        .parse(directives)
        .map_err(|e| TelemetryError::LogFilter {
            filter: directives.to_owned(),
            message: e.to_string(),
        })
}

/// A subscriber writing to `writer` in `format`, filtered by `filter`, with terminal colours when
/// `ansi` (pretty format only). [`init_tracing`] uses it with stderr; tests and embedding apps can
/// pass any writer and install it where they like (`tracing::subscriber::with_default`).
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi && format == LogFormat::Pretty)
        .with_target(true);
    match format {
        LogFormat::Pretty => Box::new(builder.compact().finish()),
        LogFormat::Json => Box::new(
            builder
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .flatten_event(true)
                .finish(),
        ),
    }
}

/// Installs the process-wide tracing subscriber: `opts.format` lines on stderr, filtered by
/// `RUST_LOG` when set, else by `opts.verbosity`; colours only when stderr is a terminal. Fails
/// if a subscriber is already installed.
pub fn init_tracing(opts: LogOptions) -> Result<(), TelemetryError> {
    let env = std::env::var(LOG_ENV).ok();
    let filter = build_filter(opts.verbosity, env.as_deref())?;
    let ansi = std::io::stderr().is_terminal();
    let sub = subscriber(opts.format, filter, std::io::stderr, ansi);
    tracing::subscriber::set_global_default(sub)
        .map_err(|_| TelemetryError::SubscriberAlreadyInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_verbosity_and_bad_env_is_an_error() {
        assert!(build_filter(0, None).is_ok());
        let f = build_filter(-2, Some("massgen::supervisor=trace"));
        assert_eq!(
            f.map(|f| f.to_string()).ok().as_deref(),
            Some("massgen::supervisor=trace")
        );
        let f = build_filter(1, Some("  "));
        assert_eq!(
            f.map(|f| f.to_string()).ok().as_deref(),
            Some("massgen=debug,info")
        );
        assert!(matches!(
            build_filter(0, Some("massgen=loud")),
            Err(TelemetryError::LogFilter { .. })
        ));
    }

    #[test]
    fn verbosity_saturates_at_both_ends() {
        assert_eq!(verbosity_directives(-100), "error");
        assert_eq!(verbosity_directives(100), "debug,massgen=trace");
        assert_eq!(LogFormat::parse("JSON"), Some(LogFormat::Json));
        assert_eq!(LogFormat::parse("yaml"), None);
    }
}
