//! `massgen-rs serve`: the OpenAI-compatible gateway in the foreground until Ctrl-C or SIGTERM.
//! The first stderr line names the address it listens on (scripts and tests read it).

/// Like `eprintln!`, but a closed stderr (the reader went away) does not stop the server.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use super::args::ServeArgs;
use super::run::{EXIT_CONFIG, EXIT_INTERNAL, EXIT_OK};
use crate::config::LoadOptions;
use crate::gateway::{self, GatewayHooks};

/// Runs the gateway and returns the exit code.
pub fn run(args: ServeArgs) -> u8 {
    let config = match gateway::load_gateway(&args.config, &LoadOptions::default()) {
        Ok(c) => c,
        Err(problems) => {
            say!("{}", problems.render().trim_end());
            return EXIT_CONFIG;
        }
    };
    let config = match args.listen {
        Some(addr) => match config.with_listen(addr) {
            Ok(c) => c,
            Err(e) => {
                say!("error: --listen {addr}: {e}");
                return EXIT_CONFIG;
            }
        },
        None => config,
    };
    let _ = crate::telemetry::init_tracing(crate::telemetry::LogOptions {
        format: crate::telemetry::LogFormat::Pretty,
        verbosity: -1,
    });
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
        let server = match gateway::start(config, GatewayHooks::default()).await {
            Ok(s) => s,
            Err(e) => {
                say!("error: {e}");
                return EXIT_CONFIG;
            }
        };
        let addr = server.addr();
        say!("gateway listening on http://{addr}");
        say!("  OpenAI-compatible: base_url http://{addr}/v1  (POST /v1/chat/completions)");
        say!(
            "  models:            {}",
            server.state().config.model_names().join(", ")
        );
        say!("  probes:            GET http://{addr}/healthz, GET http://{addr}/readyz");
        say!("  metrics, status:   GET http://{addr}/metrics, GET http://{addr}/status");
        say!("  dashboard:         http://{addr}/  (admin actions once an admin client key is entered)");
        say!(
            "  quota wait:        up to {:.1} s per request (header x-massgen-max-wait to change)",
            server.state().config.max_wait.as_secs_f64()
        );
        say!("Ctrl-C to stop.");
        stopped().await;
        say!("stopping: finishing the requests in progress");
        match server.shutdown().await {
            Ok(()) => EXIT_OK,
            Err(e) => {
                say!("error: {e}");
                EXIT_INTERNAL
            }
        }
    })
}

/// The first Ctrl-C or SIGTERM.
async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
