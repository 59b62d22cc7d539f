//! One LLM call from an agent's point of view: choose a key with capacity, acquire a permit
//! from the quota supervisor, call the provider, settle the permit with reported usage, feed
//! rate-limit signals back, and retry or fail over within bounds.
