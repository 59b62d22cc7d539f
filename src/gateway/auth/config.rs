//! The `clients:` section of a gateway config: raw serde types ([`RawClient`],
//! [`RawClientQuota`]) and their validation into [`super::Client`]s, with errors that name the
//! key path (`clients[1].key_sha256: not 64 hex digits`) and never echo a key.

use std::collections::HashMap;
use std::num::NonZeroU64;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::quota::ClientQuota;
use super::{Client, Role};
use crate::config::ConfigError;

/// Longest client name accepted (names appear in scope ids, metrics and logs).
pub const MAX_NAME_CHARS: usize = 64;
/// Shortest plain `key:` accepted.
pub const MIN_KEY_CHARS: usize = 8;
/// Longest key accepted, in the file and in a request.
pub const MAX_KEY_BYTES: usize = 512;

/// One entry of `clients:` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// The client's name (letters, digits, `.`, `_`, `-`): its quota scope is `client:<name>`.
    pub name: Option<String>,
    /// The key in clear (hashed at load; fine for demos).
    pub key: Option<String>,
    /// The SHA-256 of the key, 64 hex digits (`printf %s KEY | sha256sum`): keeps the secret
    /// out of the file.
    pub key_sha256: Option<String>,
    /// `admin` or `user` (the default).
    pub role: Option<String>,
    /// The client's own limits.
    pub quota: Option<RawClientQuota>,
}

/// `clients[i].quota` as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClientQuota {
    /// Requests per minute.
    pub rpm: Option<i64>,
    /// Tokens (input + output) per minute.
    pub tpm: Option<i64>,
    /// Requests per day (any 24 hours).
    pub rpd: Option<i64>,
    /// US dollars per UTC day, priced with the price table.
    pub per_day_usd: Option<f64>,
}

/// A mistake in `clients:`: the key path and what is wrong (never the value of a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ClientConfigError {
    /// E.g. `clients[1].key_sha256`.
    pub path: String,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl ClientConfigError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The same error as a [`ConfigError`] of `file` (no line known).
    pub fn in_file(&self, file: &str) -> ConfigError {
        ConfigError::new(file, self.path.clone(), None, self.message.clone())
    }
}

/// The SHA-256 digest of a client key, as kept in memory and compared.
pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The digest of a key as `key_sha256:` takes it (64 lowercase hex digits).
pub fn hash_key_hex(key: &str) -> String {
    hash_key(key).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `key` could be sent as a bearer token: visible ASCII, no spaces.
pub(super) fn sendable(key: &str) -> bool {
    key.bytes().all(|b| b.is_ascii_graphic())
}

/// A value from the file as a message may echo it: at most 40 characters.
fn echo(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

fn parse_hex(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn positive(
    path: &str,
    key: &str,
    n: Option<i64>,
) -> Result<Option<NonZeroU64>, ClientConfigError> {
    match n {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .ok()
            .and_then(NonZeroU64::new)
            .map(Some)
            .ok_or_else(|| {
                ClientConfigError::new(
                    format!("{path}.{key}"),
                    format!("{n} is not a valid {key}: limits must be at least 1 (remove the key for no limit)"),
                )
            }),
    }
}

fn quota(path: &str, raw: &RawClientQuota) -> Result<ClientQuota, ClientConfigError> {
    let per_day_usd = match raw.per_day_usd {
        None => None,
        Some(v) if v.is_finite() && v > 0.0 => Some(v),
        Some(v) => {
            return Err(ClientConfigError::new(
                format!("{path}.per_day_usd"),
                format!(
                    "{v} is not a valid budget: give a positive number of US dollars, e.g. 5.0"
                ),
            ));
        }
    };
    let q = ClientQuota {
        rpm: positive(path, "rpm", raw.rpm)?,
        tpm: positive(path, "tpm", raw.tpm)?,
        rpd: positive(path, "rpd", raw.rpd)?,
        per_day_usd,
    };
    if q.is_empty() {
        return Err(ClientConfigError::new(
            path,
            "empty quota: give at least one of rpm, tpm, rpd, per_day_usd (or remove `quota`)",
        ));
    }
    Ok(q)
}

fn name(path: &str, raw: Option<&str>) -> Result<String, ClientConfigError> {
    let at = format!("{path}.name");
    let Some(name) = raw else {
        return Err(ClientConfigError::new(
            at,
            "missing; every client needs a name (e.g. `name: ci-bot`)",
        ));
    };
    if name.is_empty() {
        return Err(ClientConfigError::new(
            at,
            "empty; every client needs a name",
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ClientConfigError::new(
            at,
            format!("longer than {MAX_NAME_CHARS} characters"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ClientConfigError::new(
            at,
            "may hold only letters, digits, `.`, `_` and `-` (it names the client's quota scope `client:<name>`)",
        ));
    }
    Ok(name.to_owned())
}

fn digest(path: &str, raw: &RawClient) -> Result<[u8; 32], ClientConfigError> {
    match (&raw.key, &raw.key_sha256) {
        (Some(_), Some(_)) => Err(ClientConfigError::new(
            path,
            "give either `key` or `key_sha256`, not both",
        )),
        (None, None) => Err(ClientConfigError::new(
            path,
            "missing key: give `key_sha256` (the SHA-256 of the key, 64 hex digits: `printf %s KEY | sha256sum`) or `key`",
        )),
        (Some(key), None) => {
            let at = format!("{path}.key");
            if key.chars().count() < MIN_KEY_CHARS {
                Err(ClientConfigError::new(
                    at,
                    format!("too short: a client key needs at least {MIN_KEY_CHARS} characters"),
                ))
            } else if key.len() > MAX_KEY_BYTES {
                Err(ClientConfigError::new(
                    at,
                    format!("too long: a client key has at most {MAX_KEY_BYTES} bytes"),
                ))
            } else if !sendable(key) {
                Err(ClientConfigError::new(
                    at,
                    "may hold only visible ASCII characters (no spaces): it is sent as `Authorization: Bearer <key>`",
                ))
            } else {
                Ok(hash_key(key))
            }
        }
        (None, Some(hex)) => parse_hex(hex).ok_or_else(|| {
            ClientConfigError::new(
                format!("{path}.key_sha256"),
                "not 64 hex digits (the SHA-256 of the key: `printf %s KEY | sha256sum`)",
            )
        }),
    }
}

fn role(path: &str, raw: Option<&str>) -> Result<Role, ClientConfigError> {
    match raw {
        None | Some("user") => Ok(Role::User),
        Some("admin") => Ok(Role::Admin),
        Some(other) => Err(ClientConfigError::new(
            format!("{path}.role"),
            format!("unknown role `{}`; valid roles: admin, user", echo(other)),
        )),
    }
}

/// Validates every entry of `clients:`; the first mistake is returned. Two clients with the
/// same name or the same key are refused.
pub(super) fn clients(raw: &[RawClient]) -> Result<Vec<Client>, ClientConfigError> {
    let mut out: Vec<Client> = Vec::with_capacity(raw.len());
    let mut names: HashMap<String, usize> = HashMap::new();
    let mut digests: HashMap<[u8; 32], usize> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        let path = format!("clients[{i}]");
        let name = name(&path, r.name.as_deref())?;
        let digest = digest(&path, r)?;
        let role = role(&path, r.role.as_deref())?;
        let quota = match &r.quota {
            Some(q) => quota(&format!("{path}.quota"), q)?,
            None => ClientQuota::default(),
        };
        if let Some(first) = names.insert(name.clone(), i) {
            return Err(ClientConfigError::new(
                format!("{path}.name"),
                format!("the name `{name}` is already used by clients[{first}]; names must differ"),
            ));
        }
        if let Some(first) = digests.insert(digest, i) {
            return Err(ClientConfigError::new(
                path,
                format!("the same key as clients[{first}]; every client needs its own key"),
            ));
        }
        out.push(Client::new(name, role, digest, quota));
    }
    Ok(out)
}
