//! `massgen-rs mock-provider`: serves the mock LLM provider until Ctrl-C.

use super::args::MockProviderArgs;
use super::run::{EXIT_CONFIG, EXIT_INTERNAL, EXIT_OK};
use crate::mock_provider::{self, MockOptions};

/// Runs the mock provider server in the foreground and returns the exit code.
pub fn run(args: MockProviderArgs) -> u8 {
    let limits_text = match &args.limits {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                eprintln!("error: cannot read --limits {}: {e}", path.display());
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
            eprintln!("error: {e}");
            return EXIT_CONFIG;
        }
    };
    options.keys_share_limits = args.keys_share_limits;
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
    rt.block_on(async move {
        let server = match mock_provider::serve(options).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen on {}: {e}", args.listen);
                return EXIT_CONFIG;
            }
        };
        let addr = server.addr();
        eprintln!("mock provider listening on http://{addr}");
        eprintln!("  OpenAI-compatible: base_url http://{addr}/v1  (POST /v1/chat/completions)");
        eprintln!("  Anthropic:         base_url http://{addr}/v1  (POST /v1/messages)");
        eprintln!("  Gemini:            base_url http://{addr}/v1beta");
        eprintln!("  counts:            GET http://{addr}/stats");
        match &args.limits {
            Some(file) => eprintln!(
                "  limits:            from {} (exact, per key and model)",
                file.display()
            ),
            None => eprintln!("  limits:            none (give --limits FILE to enforce some)"),
        }
        if let Some(spec) = &args.faults {
            eprintln!("  faults:            {spec}");
        }
        if args.latency > 0 {
            eprintln!("  latency:           {} ms per answer", args.latency);
        }
        eprintln!("Ctrl-C to stop.");
        let _ = tokio::signal::ctrl_c().await;
        eprintln!(
            "stopping; served {}",
            serde_json::to_string(&server.stats()).unwrap_or_default()
        );
        EXIT_OK
    })
}
