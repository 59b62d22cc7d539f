//! API keys: where a secret comes from, the secret itself (which never prints), each key's
//! actor with its live health, circuit and usage ([`KeyHandle`]), the one handle per key of a
//! runtime ([`KeyRegistry`]), and the keys of one backend with their quota scopes
//! ([`KeyPool`]).

mod actor;
mod handle;
mod health;
mod pool;
mod registry;
mod secret;
#[cfg(test)]
mod tests;

pub(crate) use handle::Admission;
pub use handle::KeyHandle;
pub use health::{CircuitSettings, CircuitState, KeyHealth, KeyStatus, KeyUsage};
pub use pool::{Candidate, KeyPool};
pub use registry::KeyRegistry;
pub use secret::ApiKey;
