//! [`KeyRegistry`]: one [`KeyHandle`] (and one key actor) per distinct key of a runtime.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use super::actor::KeyActor;
use super::health::{CircuitSettings, KeyStatus};
use super::{ApiKey, KeyHandle};
use crate::system::ActorSystem;

/// The keys of one runtime: every agent and every run that uses a key gets the same handle, so
/// a key retired after a 401 is retired for all and its usage is counted once. Cheap to clone.
#[derive(Clone)]
pub struct KeyRegistry {
    inner: Arc<Inner>,
}

struct Inner {
    system: ActorSystem,
    circuit: CircuitSettings,
    keys: Mutex<Keys>,
}

/// The handles in the order keys were first seen, and their index by secret (compared
/// exactly, never shown).
#[derive(Default)]
struct Keys {
    index: HashMap<Arc<str>, usize>,
    handles: Vec<Arc<KeyHandle>>,
}

impl fmt::Debug for KeyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRegistry")
            .field("keys", &self.handles())
            .field("circuit", &self.inner.circuit)
            .finish()
    }
}

impl KeyRegistry {
    /// A registry whose key actors live on `system`'s worker arbiters, with the default
    /// circuit breaker.
    pub fn new(system: &ActorSystem) -> Self {
        Self::with_circuit(system, CircuitSettings::default())
    }

    /// Like [`KeyRegistry::new`] with its own circuit breaker settings.
    pub fn with_circuit(system: &ActorSystem, circuit: CircuitSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                system: system.clone(),
                circuit,
                keys: Mutex::new(Keys::default()),
            }),
        }
    }

    /// The one handle of `key`, starting its actor the first time the key is seen. Keys are
    /// the same when their secrets are (wherever they were configured).
    pub fn handle(&self, key: &ApiKey) -> Arc<KeyHandle> {
        let mut keys = self
            .inner
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Keys { index, handles } = &mut *keys;
        if let Some(&i) = index.get(key.expose()) {
            if let Some(h) = handles.get(i) {
                return h.clone();
            }
        }
        let (tx, rx) = watch::channel(KeyStatus::new(key));
        let circuit = self.inner.circuit;
        let owned = key.clone();
        let addr = actix::Actor::start_in_arbiter(&self.inner.system.worker(), move |_| {
            KeyActor::new(owned, circuit, tx)
        });
        let handle = Arc::new(KeyHandle::new(key.clone(), addr, rx));
        index.insert(Arc::from(key.expose()), handles.len());
        handles.push(handle.clone());
        handle
    }

    /// Every key seen so far, in the order first seen.
    pub fn handles(&self) -> Vec<Arc<KeyHandle>> {
        self.inner
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .handles
            .clone()
    }

    /// The keys whose short id ([`ApiKey::short_id`]) is `id` (one, unless two secrets share
    /// an id).
    pub fn by_id(&self, id: &str) -> Vec<Arc<KeyHandle>> {
        self.handles()
            .into_iter()
            .filter(|h| h.key().short_id() == id)
            .collect()
    }

    /// Every key's status now (masked, never the secret), in the order first seen.
    pub fn status(&self) -> Vec<KeyStatus> {
        self.handles().iter().map(|h| h.status()).collect()
    }
}
