//! The gateway's configuration file (`gateway.yaml`): where it listens, the models it serves
//! (each a team-file backend, so every backend type and `type: pool` work and are checked the
//! same way), the team file's `rate_limit:` section, how long requests wait for quota, and the
//! body size limit. Errors name the file, the key path (`models[2].backend.type`) and the line.
//!
//! ```yaml
//! listen: 127.0.0.1:8080        # a non-loopback address also needs `allow_remote: true`
//! max_wait: 30s                 # a request's quota wait unless it sends x-massgen-max-wait
//! max_body_bytes: 1048576       # bigger request bodies get 413
//! models:
//!   - name: sim
//!     backend: {type: simulated, model: sim-fast}
//! rate_limit: {state: none}     # exactly the team file's section
//! clients: []                   # client keys and quotas (read by the auth layer)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_yaml::Value;

use crate::config::{
    ConfigError, ConfigProblems, Diagnostics, Document, KeyPath, LoadOptions, Sections, TeamConfig,
    duration_from_value, models_team, shown,
};

/// Where the gateway listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// How long a request waits for quota unless the config or the request says otherwise.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);
/// The largest request body accepted unless the config says otherwise (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// A loaded gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The file it was read from (`None` for text).
    pub source: Option<PathBuf>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Whether a non-loopback `listen` is allowed.
    pub allow_remote: bool,
    /// How long a request waits for quota when it does not say (`x-massgen-max-wait`).
    pub max_wait: Duration,
    /// The largest request body accepted; bigger ones get 413.
    pub max_body_bytes: usize,
    /// The models as a team: one agent per model, its id the model's name, in file order.
    pub team: TeamConfig,
    /// The `clients:` section as written (`None` when absent): the auth layer reads it.
    pub clients: Option<Value>,
}

impl GatewayConfig {
    /// The names of the models served, in file order.
    pub fn model_names(&self) -> Vec<&str> {
        self.team.agents.iter().map(|a| a.id.as_str()).collect()
    }

    /// Uses `addr` instead of the file's `listen` (`--listen`), refused like a `listen:` of the
    /// file when it is not loopback and `allow_remote` is off.
    pub fn with_listen(mut self, addr: SocketAddr) -> Result<Self, String> {
        if !addr.ip().is_loopback() && !self.allow_remote {
            return Err(remote_refusal(&addr.to_string()));
        }
        self.listen = addr;
        Ok(self)
    }
}

fn remote_refusal(addr: &str) -> String {
    format!(
        "`{addr}` is not a loopback address: the gateway would accept requests from other \
         machines. Set `allow_remote: true` in the gateway file to allow that, or listen on \
         127.0.0.1"
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<String>,
    allow_remote: Option<bool>,
    max_wait: Option<Value>,
    max_body_bytes: Option<u64>,
    models: Option<Vec<Value>>,
    rate_limit: Option<Value>,
    clients: Option<Value>,
}

const TOP_KEYS: &str =
    "listen, allow_remote, max_wait, max_body_bytes, models, rate_limit, clients";

/// Reads and checks the gateway file at `path`; relative paths inside it (limits, prices,
/// pools files, the state file) are taken from its directory.
pub fn load_gateway(path: &Path, opts: &LoadOptions) -> Result<GatewayConfig, ConfigProblems> {
    let (text, name, dir) = crate::config::read_config_file(path, "gateway file")?;
    let mut config = parse_gateway_in(&text, &name, opts, Some(&dir))?;
    config.source = Some(path.to_path_buf());
    config.team.source = Some(path.to_path_buf());
    Ok(config)
}

/// Checks gateway-file text; `file_name` is used in errors.
pub fn parse_gateway(
    text: &str,
    file_name: &str,
    opts: &LoadOptions,
) -> Result<GatewayConfig, ConfigProblems> {
    parse_gateway_in(text, file_name, opts, None)
}

fn fatal(error: ConfigError) -> ConfigProblems {
    ConfigProblems {
        errors: vec![error],
        warnings: Vec::new(),
    }
}

fn parse_gateway_in(
    text: &str,
    file: &str,
    opts: &LoadOptions,
    dir: Option<&Path>,
) -> Result<GatewayConfig, ConfigProblems> {
    let doc = Document::parse(text, file).map_err(fatal)?;
    let root = KeyPath::root();
    if !matches!(doc.value, Value::Mapping(_)) {
        return Err(fatal(doc.error(
            &root,
            format!("the gateway file needs a map of sections ({TOP_KEYS}), at least `models:`"),
        )));
    }
    let mut diags = Diagnostics::new(&doc);
    let built = build(&doc, opts, dir, &mut diags);
    let problems = diags.finish(opts.strict);
    match built {
        Some(config) if problems.errors.is_empty() => Ok(config),
        _ => Err(problems),
    }
}

fn build(
    doc: &Document,
    opts: &LoadOptions,
    dir: Option<&Path>,
    diags: &mut Diagnostics<'_>,
) -> Option<GatewayConfig> {
    let root = KeyPath::root();
    let mut value = doc.value.clone();
    if let Value::Mapping(map) = &mut value {
        // Top-level `x-...` keys hold YAML anchors for reuse, as in team files.
        map.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("x-")));
    }
    let raw: RawGateway = diags.take(doc.deserialize(value, &root))?;
    let allow_remote = raw.allow_remote.unwrap_or(false);
    let listen = diags.take(listen(doc, raw.listen.as_deref(), allow_remote));
    let max_wait = match &raw.max_wait {
        None => Some(DEFAULT_MAX_WAIT),
        Some(v) => {
            diags.take(duration_from_value(v).map_err(|m| doc.error(&root.key("max_wait"), m)))
        }
    };
    let max_body_bytes = match raw.max_body_bytes {
        None => Some(DEFAULT_MAX_BODY_BYTES),
        Some(0) => {
            diags.error(doc.error(
                &root.key("max_body_bytes"),
                "0 would refuse every request; give a size in bytes (default 1048576, 1 MiB)",
            ));
            None
        }
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
    };
    if let Some(clients) = &raw.clients {
        if !matches!(clients, Value::Sequence(_) | Value::Null) {
            diags.error(doc.error(
                &root.key("clients"),
                "expected a list of clients (`- {name, key, role, quota}`)",
            ));
        }
    }
    let Some(models) = raw.models else {
        diags.error(doc.error(
            &root.key("models"),
            "missing; list the models the gateway serves, e.g. \
             `models: [{name: sim, backend: {type: simulated, model: sim-fast}}]`",
        ));
        return None;
    };
    let sections = Sections {
        rate_limit: raw.rate_limit,
        ..Sections::default()
    };
    let team = models_team(doc, "models", models, sections, opts, dir, diags)?;
    Some(GatewayConfig {
        source: None,
        listen: listen?,
        allow_remote,
        max_wait: max_wait?,
        max_body_bytes: max_body_bytes?,
        team,
        clients: raw.clients,
    })
}

fn listen(
    doc: &Document,
    text: Option<&str>,
    allow_remote: bool,
) -> Result<SocketAddr, ConfigError> {
    let at = KeyPath::root().key("listen");
    let text = text.unwrap_or(DEFAULT_LISTEN);
    let addr: SocketAddr = text.trim().parse().map_err(|_| {
        doc.error(
            &at,
            format!(
                "`{}` is not an address: write IP:PORT, e.g. {DEFAULT_LISTEN} (port 0 picks a free one)",
                shown(text)
            ),
        )
    })?;
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(doc.error(&at, remote_refusal(text)));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;

    fn parse(text: &str) -> Result<GatewayConfig, ConfigProblems> {
        parse_gateway(text, "gateway.yaml", &LoadOptions::default())
    }

    #[test]
    fn the_shipped_example_loads_with_a_pool_model() {
        let text = include_str!("../../configs/gateway.yaml");
        let config = parse(text).unwrap_or_else(|p| panic!("{}", p.render()));
        assert!(config.listen.ip().is_loopback());
        assert_eq!(config.max_wait, DEFAULT_MAX_WAIT);
        let names = config.model_names();
        assert!(names.contains(&"sim"), "{names:?}");
        assert!(
            config.team.agents.iter().any(|a| a.backend.pool.is_some()),
            "{names:?}"
        );
        assert!(config.clients.is_some());
    }

    #[test]
    fn a_bad_backend_type_names_the_model_key_path_and_line() {
        let text = "models:\n  - name: a\n    backend: {type: simulated, model: m}\n  - name: b\n    backend:\n      type: simulatd\n      model: m\n";
        let err = parse(text).unwrap_err().into_error().unwrap();
        assert_eq!(err.file(), "gateway.yaml");
        assert_eq!(err.path(), "models[1].backend.type");
        assert_eq!(err.line(), Some(6));
        assert!(err.message().contains("simulated"), "{}", err.message());
    }

    #[test]
    fn remote_addresses_need_allow_remote() {
        let text =
            "listen: 0.0.0.0:8080\nmodels: [{name: a, backend: {type: simulated, model: m}}]\n";
        let err = parse(text).unwrap_err().into_error().unwrap();
        assert_eq!(err.path(), "listen");
        assert!(err.message().contains("allow_remote"), "{}", err.message());
        let ok = parse(&format!("allow_remote: true\n{text}")).unwrap();
        assert!(!ok.listen.ip().is_loopback());
        let local = parse("models: [{name: a, backend: {type: simulated, model: m}}]\n").unwrap();
        let refused = local.with_listen("10.0.0.1:80".parse().unwrap());
        assert!(refused.unwrap_err().contains("allow_remote"));
    }

    #[test]
    fn duplicate_and_missing_names_and_unknown_keys_are_errors() {
        let dup = "models:\n  - {name: a, backend: {type: simulated, model: m}}\n  - {name: a, backend: {type: simulated, model: m}}\n";
        let err = parse(dup).unwrap_err().into_error().unwrap();
        assert_eq!(err.path(), "models[1].name");
        let missing = "models:\n  - {backend: {type: simulated, model: m}}\n";
        let err = parse(missing).unwrap_err().into_error().unwrap();
        assert_eq!(err.path(), "models[0].name");
        let unknown =
            "listn: 127.0.0.1:1\nmodels: [{name: a, backend: {type: simulated, model: m}}]\n";
        let err = parse(unknown).unwrap_err().into_error().unwrap();
        assert!(err.message().contains("listen"), "{}", err.message());
        let wait = "max_wait: soon\nmodels: [{name: a, backend: {type: simulated, model: m}}]\n";
        let err = parse(wait).unwrap_err().into_error().unwrap();
        assert_eq!(err.path(), "max_wait");
    }
}
