//! [`KeyPool`]: the keys of one backend (provider + model) and the quota scopes each counts
//! against, so the supervisor can pick a key with capacity.
//!
//! Scope names: `<provider>/<model>` when the provider counts per account or project (Gemini:
//! every key of one project shares that one scope, so extra keys add no phantom capacity), and
//! `<provider>/<model>/key:<short id>` when it counts per key (OpenAI-compatible). A shared group
//! (`rate_limit_shared_key`) adds `shared:<name>` to every candidate.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{BackendConfig, ModelLimits};
use crate::quota::{ScopeId, ScopeKind, ScopeSpec};

use super::{ApiKey, KeyHandle, KeyRegistry};

/// One way to make a call: a key (none for keyless backends) and the scopes it reserves in.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The key, or `None` for a backend that needs none.
    pub key: Option<Arc<KeyHandle>>,
    /// Scopes to reserve in, atomically.
    pub scopes: Vec<ScopeId>,
}

/// The keys of one backend and their scopes.
#[derive(Debug)]
pub struct KeyPool {
    provider: String,
    model: String,
    scope: ScopeKind,
    shared: Option<ScopeId>,
    keys: Vec<Arc<KeyHandle>>,
    next: AtomicUsize,
}

impl KeyPool {
    /// A pool for `model` at `provider` (the limits provider name, e.g. `gemini`, `openai`),
    /// with the handles `registry` keeps for `keys`.
    pub fn new(
        registry: &KeyRegistry,
        provider: &str,
        model: &str,
        keys: Vec<ApiKey>,
        scope: ScopeKind,
        shared_group: Option<&str>,
    ) -> Self {
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            scope,
            shared: shared_group.map(|g| ScopeId::new(format!("shared:{g}"))),
            keys: keys.iter().map(|k| registry.handle(k)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The pool of a configured backend with its looked-up limits and `registry`'s handles.
    pub fn for_backend(
        backend: &BackendConfig,
        limits: &ModelLimits,
        registry: &KeyRegistry,
    ) -> Self {
        Self::new(
            registry,
            backend.kind.limits_provider(),
            &backend.model,
            backend.api_keys.clone(),
            limits.scope,
            limits.shared_key.as_deref(),
        )
    }

    /// `<provider>/<model>`.
    pub fn model_scope(&self) -> ScopeId {
        ScopeId::new(format!("{}/{}", self.provider, self.model))
    }

    /// `<provider>/<model>/key:<short id>`.
    pub fn key_scope(&self, key: &ApiKey) -> ScopeId {
        ScopeId::new(format!(
            "{}/{}/key:{}",
            self.provider,
            self.model,
            key.short_id()
        ))
    }

    /// The shared group's scope, if any.
    pub fn shared_scope(&self) -> Option<&ScopeId> {
        self.shared.as_ref()
    }

    /// Whether limits count per key.
    pub fn per_key(&self) -> bool {
        self.scope == ScopeKind::PerKey && !self.keys.is_empty()
    }

    /// Every key handle (retired ones included).
    pub fn keys(&self) -> &[Arc<KeyHandle>] {
        &self.keys
    }

    /// The scope a key's limits are counted in (the model scope when counted per account).
    pub fn limit_scope(&self, key: Option<&ApiKey>) -> ScopeId {
        match key {
            Some(k) if self.per_key() => self.key_scope(k),
            _ => self.model_scope(),
        }
    }

    /// The scopes a call with `key` reserves in.
    pub fn scopes_for(&self, key: Option<&ApiKey>) -> Vec<ScopeId> {
        let mut scopes = vec![self.limit_scope(key)];
        scopes.extend(self.shared.clone());
        scopes
    }

    /// The scopes to register with the supervisor and their specs (the model's limits per key
    /// scope, or once for the account). The shared group is registered by whoever owns its
    /// limits, not here.
    pub fn scope_specs(&self, spec: &ScopeSpec) -> Vec<(ScopeId, ScopeSpec)> {
        if self.per_key() {
            self.keys
                .iter()
                .map(|k| (self.key_scope(k.key()), spec.clone()))
                .collect()
        } else {
            vec![(self.model_scope(), spec.clone())]
        }
    }

    /// One candidate per live key (rotated on each call so usage spreads over keys), or one
    /// keyless candidate for a backend without keys. Keys whose circuit is open (or whose
    /// half-open trial is in flight) are left out while another key is available; retired,
    /// disabled and admin-rested keys always are. Empty when no key is left.
    pub fn candidates(&self) -> Vec<Candidate> {
        if self.keys.is_empty() {
            return vec![Candidate {
                key: None,
                scopes: self.scopes_for(None),
            }];
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.keys.len();
        let live = (0..n)
            .map(|i| &self.keys[(start + i) % n])
            .filter(|k| k.is_live());
        let any_available = self.keys.iter().any(|k| k.is_available());
        live.filter(|k| !any_available || k.is_available())
            .map(|k| Candidate {
                key: Some(k.clone()),
                scopes: self.scopes_for(Some(k.key())),
            })
            .collect()
    }

    /// Whether a key other than `key` is available now (live, circuit letting calls through).
    pub fn other_available(&self, key: &ApiKey) -> bool {
        self.keys
            .iter()
            .any(|k| k.key().expose() != key.expose() && k.is_available())
    }

    /// Why no key is usable: every retirement reason (or admin's disable or forced rest),
    /// joined.
    pub fn retired_reasons(&self) -> String {
        self.keys
            .iter()
            .filter_map(|k| k.status().unusable_reason())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::system::ActorSystem;

    fn keys(n: usize) -> Vec<ApiKey> {
        (0..n)
            .map(|i| ApiKey::new(format!("key-number-{i}-abcdef"), "test"))
            .collect()
    }

    fn registry() -> KeyRegistry {
        KeyRegistry::new(&ActorSystem::current().unwrap())
    }

    #[actix_rt::test]
    async fn per_account_keys_share_one_scope() {
        let pool = KeyPool::new(
            &registry(),
            "gemini",
            "gemini-2.5-flash",
            keys(3),
            ScopeKind::PerAccount,
            None,
        );
        let c = pool.candidates();
        assert_eq!(c.len(), 3);
        assert!(
            c.iter()
                .all(|c| c.scopes == vec![ScopeId::new("gemini/gemini-2.5-flash")])
        );
        assert_eq!(
            pool.scope_specs(&ScopeSpec::default()).len(),
            1,
            "no phantom capacity"
        );
    }

    #[actix_rt::test]
    async fn per_key_scopes_and_shared_group() {
        let pool = KeyPool::new(
            &registry(),
            "openai",
            "gpt-4o-mini",
            keys(2),
            ScopeKind::PerKey,
            Some("team"),
        );
        let c = pool.candidates();
        assert_eq!(c.len(), 2);
        assert_ne!(c[0].scopes[0], c[1].scopes[0]);
        assert!(
            c[0].scopes[0]
                .as_str()
                .starts_with("openai/gpt-4o-mini/key:")
        );
        assert_eq!(c[0].scopes[1], ScopeId::new("shared:team"));
        assert_eq!(pool.scope_specs(&ScopeSpec::default()).len(), 2);
        // Rotation: the next call starts from the other key.
        let again = pool.candidates();
        assert_eq!(again[0].scopes[0], c[1].scopes[0]);
    }

    #[actix_rt::test]
    async fn retired_keys_drop_out_and_keyless_backends_get_one_candidate() {
        let registry = registry();
        let pool = KeyPool::new(&registry, "openai", "m", keys(2), ScopeKind::PerKey, None);
        pool.keys()[0].retire("refused").await;
        assert_eq!(pool.candidates().len(), 1);
        pool.keys()[1].retire("refused too").await;
        assert!(pool.candidates().is_empty());
        assert_eq!(pool.retired_reasons(), "refused; refused too");
        // Another pool with the same keys (another agent, another run) sees them retired.
        let other = KeyPool::new(&registry, "openai", "m2", keys(2), ScopeKind::PerKey, None);
        assert!(other.candidates().is_empty());
        let local = KeyPool::new(&registry, "vllm", "m", vec![], ScopeKind::PerKey, None);
        let c = local.candidates();
        assert_eq!(c.len(), 1);
        assert!(c[0].key.is_none());
        assert_eq!(c[0].scopes, vec![ScopeId::new("vllm/m")]);
    }
}
