//! [`KeyActor`]: the one actor of an API key. It alone changes the key's [`KeyStatus`] and
//! publishes every change through a `watch` channel, so [`super::KeyHandle`]s read the key's
//! health synchronously while every update is one message, applied in order.

use actix::{Actor, AsyncContext, Context, Handler, Message};
use tokio::sync::watch;

use super::ApiKey;
use super::health::{CircuitSettings, CircuitState, KeyStatus};
use crate::provider::{ProviderError, Usage};

/// Mailbox capacity of a key actor (every call of every agent using the key sends it one or
/// two messages).
const MAILBOX_CAPACITY: usize = 1024;

/// The actor of one key (see the module docs).
#[derive(Debug)]
pub(crate) struct KeyActor {
    key: ApiKey,
    circuit: CircuitSettings,
    status: watch::Sender<KeyStatus>,
    /// Counts circuit openings, so a rest timer of an earlier opening does nothing.
    openings: u64,
    /// The id of the trial call of a half-open circuit, while one is in flight.
    trial: Option<u64>,
    next_trial: u64,
    /// Counts admin-ordered rests, so the timer of an earlier rest (or of one an enable
    /// ended) does nothing.
    rests: u64,
}

impl KeyActor {
    /// An actor for `key` publishing to `status`.
    pub(crate) fn new(
        key: ApiKey,
        circuit: CircuitSettings,
        status: watch::Sender<KeyStatus>,
    ) -> Self {
        Self {
            key,
            circuit,
            status,
            openings: 0,
            trial: None,
            next_trial: 0,
            rests: 0,
        }
    }

    /// After the circuit opened: half-open once the rest is over (unless it closed or opened
    /// again meanwhile).
    fn rest(&mut self, ctx: &mut Context<Self>) {
        self.openings += 1;
        self.trial = None;
        let opening = self.openings;
        ctx.run_later(self.circuit.open_for, move |act, _| {
            if act.openings == opening {
                act.status.send_if_modified(|s| {
                    let open = s.circuit == CircuitState::Open;
                    if open {
                        s.circuit = CircuitState::HalfOpen;
                        s.trial_in_flight = false;
                    }
                    open
                });
            }
        });
    }

    /// Forgets a trial the status no longer shows (the circuit closed or opened again).
    fn sync_trial(&mut self) {
        if !self.status.borrow().trial_in_flight {
            self.trial = None;
        }
    }
}

impl Actor for KeyActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

/// A call with the key succeeded. Replies once the change is published.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Succeeded(pub Option<Usage>);

impl Message for Succeeded {
    type Result = ();
}

impl Handler<Succeeded> for KeyActor {
    type Result = ();

    fn handle(&mut self, msg: Succeeded, _ctx: &mut Self::Context) {
        self.status.send_modify(|s| s.succeeded(msg.0));
        self.sync_trial();
    }
}

/// A call with the key failed. Replies whether the key is retired now (by this error or an
/// earlier one), once the change is published.
#[derive(Debug, Clone)]
pub(crate) struct Failed(pub ProviderError);

impl Message for Failed {
    type Result = bool;
}

impl Handler<Failed> for KeyActor {
    type Result = bool;

    fn handle(&mut self, msg: Failed, ctx: &mut Self::Context) -> bool {
        let mut opened = false;
        let mut retired = false;
        let key = &self.key;
        let circuit = &self.circuit;
        self.status.send_modify(|s| {
            opened = s.failed(key, &msg.0, circuit);
            retired = !s.is_live();
        });
        if opened {
            tracing::warn!(
                key = %self.key,
                origin = self.key.origin(),
                rest_s = self.circuit.open_for.as_secs_f64(),
                "the key's circuit opened after repeated failures: {}",
                msg.0
            );
            self.rest(ctx);
        }
        self.sync_trial();
        retired
    }
}

/// Retires the key for good.
#[derive(Debug, Clone)]
pub(crate) struct Retire(pub String);

impl Message for Retire {
    type Result = ();
}

impl Handler<Retire> for KeyActor {
    type Result = ();

    fn handle(&mut self, msg: Retire, _ctx: &mut Self::Context) {
        self.status.send_modify(|s| s.retire(msg.0));
    }
}

/// An admin's order for the key (the gateway's admin endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminOrder {
    /// Skip the key, like a retired one, until enabled.
    Disable,
    /// Use the key again: ends a disable and a forced rest (a retired key stays retired).
    Enable,
    /// Skip the key, like a retired one, for this long; then it is used again by itself.
    Rest(std::time::Duration),
}

impl Message for AdminOrder {
    type Result = ();
}

impl Handler<AdminOrder> for KeyActor {
    type Result = ();

    fn handle(&mut self, msg: AdminOrder, ctx: &mut Self::Context) {
        match msg {
            AdminOrder::Disable => {
                self.status
                    .send_if_modified(|s| !std::mem::replace(&mut s.disabled, true));
            }
            AdminOrder::Enable => {
                self.rests += 1;
                self.status.send_if_modified(|s| {
                    let changed = s.disabled || s.cooling_until_ms.is_some();
                    s.disabled = false;
                    s.cooling_until_ms = None;
                    changed
                });
            }
            AdminOrder::Rest(d) => {
                self.rests += 1;
                let rest = self.rests;
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                let until = chrono::Utc::now().timestamp_millis().saturating_add(ms);
                self.status
                    .send_modify(|s| s.cooling_until_ms = Some(until));
                ctx.run_later(d, move |act, _| {
                    if act.rests == rest {
                        act.status
                            .send_if_modified(|s| s.cooling_until_ms.take().is_some());
                    }
                });
            }
        }
    }
}

/// Whether a call may go with the key now, for a caller that saw its circuit half-open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TrialGrant {
    /// The circuit is closed (again): no trial needed.
    Closed,
    /// This call is the trial; end it with [`EndTrial`] if it never reports an outcome.
    Trial(u64),
    /// Another call is the trial (or the circuit opened again).
    Busy,
}

/// Asks to make the trial call of a half-open circuit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BeginTrial;

impl Message for BeginTrial {
    type Result = TrialGrant;
}

impl Handler<BeginTrial> for KeyActor {
    type Result = actix::MessageResult<BeginTrial>;

    fn handle(&mut self, _msg: BeginTrial, _ctx: &mut Self::Context) -> Self::Result {
        self.sync_trial();
        let (circuit, busy) = {
            let s = self.status.borrow();
            (s.circuit, s.trial_in_flight)
        };
        actix::MessageResult(match circuit {
            CircuitState::Closed => TrialGrant::Closed,
            CircuitState::Open => TrialGrant::Busy,
            CircuitState::HalfOpen if busy => TrialGrant::Busy,
            CircuitState::HalfOpen => {
                self.next_trial += 1;
                self.trial = Some(self.next_trial);
                self.status.send_modify(|s| s.trial_in_flight = true);
                TrialGrant::Trial(self.next_trial)
            }
        })
    }
}

/// A trial call ended without an outcome (its caller left): another call may be the trial.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EndTrial(pub u64);

impl Message for EndTrial {
    type Result = ();
}

impl Handler<EndTrial> for KeyActor {
    type Result = ();

    fn handle(&mut self, msg: EndTrial, _ctx: &mut Self::Context) {
        if self.trial == Some(msg.0) {
            self.trial = None;
            self.status.send_if_modified(|s| {
                let was = s.trial_in_flight;
                s.trial_in_flight = false;
                was
            });
        }
    }
}
