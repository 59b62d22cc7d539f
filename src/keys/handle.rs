//! [`KeyHandle`]: how calls reach one key's actor. Reads (`is_live`, `health`, `usage`, ...) are
//! synchronous looks at the state the actor last published; changes are messages to the actor.

use std::fmt;

use actix::Addr;
use tokio::sync::watch;

use super::ApiKey;
use super::actor::{
    AdminOrder, BeginTrial, EndTrial, Failed, KeyActor, Retire, Succeeded, TrialGrant,
};
use super::health::{CircuitState, KeyHealth, KeyStatus, KeyUsage};
use crate::provider::{ProviderError, Usage};

/// One API key and its live state, shared (through a [`super::KeyRegistry`]) by every agent and
/// run of a runtime that uses the key.
pub struct KeyHandle {
    key: ApiKey,
    actor: Addr<KeyActor>,
    status: watch::Receiver<KeyStatus>,
}

impl fmt::Debug for KeyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyHandle")
            .field("key", &self.key)
            .field("status", &*self.status.borrow())
            .finish()
    }
}

impl KeyHandle {
    pub(super) fn new(
        key: ApiKey,
        actor: Addr<KeyActor>,
        status: watch::Receiver<KeyStatus>,
    ) -> Self {
        Self { key, actor, status }
    }

    /// The key (its secret is only reachable through [`ApiKey::expose`]).
    pub fn key(&self) -> &ApiKey {
        &self.key
    }

    /// Whether the key may be used now (not retired, disabled or resting by an admin's order).
    pub fn is_live(&self) -> bool {
        self.status.borrow().is_live()
    }

    /// Whether the key is live and its circuit lets a call through now.
    pub fn is_available(&self) -> bool {
        self.status.borrow().is_available()
    }

    /// The key's health.
    pub fn health(&self) -> KeyHealth {
        self.status.borrow().health.clone()
    }

    /// The key's circuit breaker.
    pub fn circuit(&self) -> CircuitState {
        self.status.borrow().circuit
    }

    /// Usage so far, over every agent and run that used the key.
    pub fn usage(&self) -> KeyUsage {
        self.status.borrow().usage
    }

    /// The last error seen with this key (never contains the secret).
    pub fn last_error(&self) -> Option<String> {
        self.status.borrow().last_error.clone()
    }

    /// Everything known of the key now.
    pub fn status(&self) -> KeyStatus {
        self.status.borrow().clone()
    }

    /// Retires the key for good with `reason` (returns once every handle sees it).
    pub async fn retire(&self, reason: impl Into<String>) {
        let _ = self.actor.send(Retire(reason.into())).await;
    }

    /// Disables the key: every pool skips it like a retired key until [`KeyHandle::enable`]
    /// (returns once every handle sees it).
    pub async fn disable(&self) {
        let _ = self.actor.send(AdminOrder::Disable).await;
    }

    /// Ends a disable or a forced rest (a retired key stays retired). Returns once every
    /// handle sees it.
    pub async fn enable(&self) {
        let _ = self.actor.send(AdminOrder::Enable).await;
    }

    /// Makes the key rest for `duration`: skipped like a retired key until then, used again by
    /// itself afterwards; a later rest replaces an earlier one. Returns once every handle sees
    /// it.
    pub async fn rest_for(&self, duration: std::time::Duration) {
        let _ = self.actor.send(AdminOrder::Rest(duration)).await;
    }

    /// Records a call that succeeded with `usage` (returns once every handle sees it).
    pub async fn record_success(&self, usage: Option<Usage>) {
        let _ = self.actor.send(Succeeded(usage)).await;
    }

    /// Records a failed call. An auth error (401/403) retires the key with a message that names
    /// it by origin and masked form; transport, 5xx and timeout failures in a row open its
    /// circuit. Returns whether the key is retired now, by this error or an earlier one (a
    /// caller moves on to another key either way), once every handle sees the change.
    pub async fn record_error(&self, error: &ProviderError) -> bool {
        match self.actor.send(Failed(error.clone())).await {
            Ok(retired) => retired,
            // The actor is gone with its runtime: what it last published is all there is.
            Err(_) => !self.is_live(),
        }
    }

    /// For a caller about to use the key: whether it may go now. Only a half-open circuit asks
    /// the actor (one trial call at a time); the returned guard ends an unreported trial when
    /// dropped.
    pub(crate) async fn admit(&self) -> Admission<'_> {
        if self.status.borrow().circuit != CircuitState::HalfOpen {
            return Admission::Go(None);
        }
        match self.actor.send(BeginTrial).await {
            Ok(TrialGrant::Trial(id)) => Admission::Go(Some(TrialGuard {
                actor: &self.actor,
                id,
            })),
            Ok(TrialGrant::Closed) => Admission::Go(None),
            Ok(TrialGrant::Busy) => Admission::Busy,
            Err(_) => Admission::Go(None),
        }
    }
}

/// Whether a call may use a key now ([`KeyHandle::admit`]).
#[derive(Debug)]
pub(crate) enum Admission<'a> {
    /// Go; with a guard when this call is a half-open circuit's trial.
    Go(Option<TrialGuard<'a>>),
    /// Another call is the trial: use another key if one is usable.
    Busy,
}

/// The trial call of a half-open circuit: if dropped before its outcome was recorded (the
/// caller left), the key's actor lets another call be the trial.
#[derive(Debug)]
pub(crate) struct TrialGuard<'a> {
    actor: &'a Addr<KeyActor>,
    id: u64,
}

impl Drop for TrialGuard<'_> {
    fn drop(&mut self) {
        // After a recorded outcome the actor has already closed or reopened the circuit and
        // ignores this.
        self.actor.do_send(EndTrial(self.id));
    }
}
