//! The gateway (`massgen-rs serve`): an OpenAI-compatible server that puts any client behind
//! the quota supervisor. [`auth`]: client keys, roles and per-client quotas; [`admin`]: the
//! admin endpoints over the provider keys.

pub mod admin;
pub mod auth;
