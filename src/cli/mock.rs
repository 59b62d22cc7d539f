//! `massgen-rs mock-provider`: serves the mock LLM provider until Ctrl-C.

/// Like `eprintln!`, but a closed stderr (the reader went away) does not stop the server.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use super::args::MockProviderArgs;
use super::run::{EXIT_CONFIG, EXIT_INTERNAL, EXIT_OK};
use crate::mock_provider::{self, MockOptions};

/// Runs the mock provider server in the foreground and returns the exit code.
pub fn run(args: MockProviderArgs) -> u8 {
    let limits_text = match &args.limits {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                say!("error: cannot read --limits {}: {e}", path.display());
                return EXIT_CONFIG;
            }
        },
        None => None,
    };
    let mut options = match MockOptions::from_flags(
        &args.listen.to_string(),
        limits_text.as_deref(),
        Some(args.latency),
        args.faults.as_deref(),
    ) {
        Ok(o) => o,
        Err(e) => {
            say!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    options.keys_share_limits = args.keys_share_limits;
    options.groq = args.groq;
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            say!("error: cannot start the async runtime: {e}");
            return EXIT_INTERNAL;
        }
    };
    rt.block_on(async move {
        let server = match mock_provider::serve(options).await {
            Ok(s) => s,
            Err(e) => {
                say!("error: cannot listen on {}: {e}", args.listen);
                return EXIT_CONFIG;
            }
        };
        let addr = server.addr();
        say!("mock provider listening on http://{addr}");
        say!("  OpenAI-compatible: base_url http://{addr}/v1  (POST /v1/chat/completions)");
        say!("  Anthropic:         base_url http://{addr}/v1  (POST /v1/messages)");
        say!("  Gemini:            base_url http://{addr}/v1beta");
        say!("  counts:            GET http://{addr}/stats");
        say!("  admission log:     GET http://{addr}/admissions");
        match &args.limits {
            Some(file) => say!(
                "  limits:            from {} (exact, per key and model)",
                file.display()
            ),
            None => say!("  limits:            none (give --limits FILE to enforce some)"),
        }
        if let Some(spec) = &args.faults {
            say!("  faults:            {spec}");
        }
        if args.latency > 0 {
            say!("  latency:           {} ms per answer", args.latency);
        }
        say!("Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
        say!(
            "stopping; served {}",
            serde_json::to_string(&server.stats()).unwrap_or_default()
        );
        EXIT_OK
    })
}
