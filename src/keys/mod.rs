//! API keys: where a secret comes from, the secret itself (which never prints), and — as the
//! providers land — one actor per key holding its health and usage.

mod secret;

pub use secret::ApiKey;
