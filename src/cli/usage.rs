//! `massgen-rs usage`: what earlier runs' provider calls used and cost, from the usage ledger
//! kept with the quota state.

use super::args::UsageArgs;
use super::run::{EXIT_CONFIG, EXIT_INTERNAL, EXIT_OK, print_stdout};
use crate::store::StoreSpec;
use crate::usage::report::{Format, instant_text, parse_since, render};

/// Runs `massgen-rs usage` and returns the exit code.
pub(super) fn run(args: &UsageArgs) -> u8 {
    let now_ms = chrono::Utc::now().timestamp_millis();
    let since_ms = match parse_since(&args.since, now_ms) {
        Ok(ms) => ms,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_CONFIG;
        }
    };
    let spec = match args.quota_store.as_deref().or(args.state.as_deref()) {
        Some(s) if args.quota_store.is_some() && !crate::store::is_redis_url(s.trim()) => {
            eprintln!("error: --quota-store takes a Redis URL (redis://host:6379/0)");
            return EXIT_CONFIG;
        }
        Some(s) if s.trim().is_empty() => {
            eprintln!("error: --state is empty: name the state file the runs used");
            return EXIT_CONFIG;
        }
        Some(s) => StoreSpec::parse(s),
        None => StoreSpec::default_for_user(),
    };
    let since = format!("{} ({})", instant_text(since_ms), args.since.trim());
    if let StoreSpec::Sqlite(path) = &spec {
        if !path.exists() {
            // Reading must not create a state file where no run ever wrote one.
            return empty(
                args,
                &format!("{since}: there is no state file {}", path.display()),
            );
        }
    }
    let records = match spec.open_usage() {
        Ok(Some(mut store)) => store.since(since_ms),
        Ok(None) => {
            eprintln!(
                "error: quota state {spec} keeps no usage: name the state file the runs used, \
                 or leave --state out for the default one"
            );
            return EXIT_CONFIG;
        }
        Err(e) => Err(e),
    };
    let records = match records {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_INTERNAL;
        }
    };
    if records.is_empty() {
        return empty(args, &format!("{since} in {spec}"));
    }
    let mut text = String::new();
    if args.format == Format::Table {
        text.push_str(&format!(
            "Usage since {since}, by {}, from {spec}\n\n",
            args.by.as_str()
        ));
    }
    text.push_str(&render(&records, args.by, args.format));
    print_stdout(&text).map_or_else(|code| code, |()| EXIT_OK)
}

/// Nothing recorded: a clear line (on stderr for CSV and JSON, whose stdout stays parseable:
/// a header alone, an empty array).
fn empty(args: &UsageArgs, since: &str) -> u8 {
    let line = format!("no usage recorded since {since}\n");
    let out = match args.format {
        Format::Table => line,
        Format::Csv | Format::Json => {
            eprint!("{line}");
            render(&[], args.by, args.format)
        }
    };
    print_stdout(&out).map_or_else(|code| code, |()| EXIT_OK)
}
