//! API keys: where a secret comes from, the secret itself (which never prints), each key's live
//! health and usage ([`KeyHandle`]), and the keys of one backend with their quota scopes
//! ([`KeyPool`]).

mod health;
mod pool;
mod secret;

pub use health::{KeyHandle, KeyHealth, KeyUsage};
pub use pool::{Candidate, KeyPool};
pub use secret::ApiKey;
