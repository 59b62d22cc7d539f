//! [`ActorSystem`]: where the actix actors of a runtime live.
//!
//! actix actors run on *arbiters*: single-threaded tokio runtimes, each on a thread of its own.
//! A library must not assume its caller runs actix, so by default the system is **owned**: a
//! thread of its own runs the actix `System` and its main arbiter, on which only the quota
//! supervisor lives (one hop per permit request, no contention with CPU work), and one worker
//! arbiter per core serves agents, providers, API keys and orchestrators (token counting and
//! JSON work run in parallel). Everything handed out (`Addr`s, handles, the futures of their
//! requests) is `Send + Sync`, so a plain `#[tokio::main]` application, multi-thread or
//! current-thread, uses it like any other library. The threads stop when the last clone of the
//! system is dropped.
//!
//! The **current** system places every actor on the caller's own arbiter instead: for code that
//! already runs inside an actix `System` (`#[actix_rt::test]`, an actix-web app) and for tests
//! on paused tokio time, where one thread and one clock must drive everything.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use actix_rt::{Arbiter, ArbiterHandle, System};

/// Why an actor system could not start.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SystemError {
    /// A thread could not be spawned (the OS refused).
    #[error("could not start the actor system's threads: {0}")]
    Spawn(String),
    /// [`ActorSystem::current`] was called outside an actix arbiter.
    #[error(
        "no actix arbiter on this thread: run inside an actix System (`#[actix_rt::test]`, \
         `actix_rt::System::new().block_on(..)`) or use an owned system"
    )]
    NoArbiter,
}

/// Where a runtime's actors live: threads of its own, or the caller's actix arbiter.
/// Cheap to clone; the owned threads stop when the last clone is dropped.
#[derive(Clone)]
pub struct ActorSystem {
    inner: Arc<Inner>,
}

struct Inner {
    /// The quota supervisor's arbiter.
    quota: ArbiterHandle,
    /// Arbiters for every other actor, used in turn.
    workers: Vec<ArbiterHandle>,
    next: AtomicUsize,
    owned: Option<Owned>,
}

/// The actix System this process-side handle started and the thread that runs it.
struct Owned {
    system: System,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl fmt::Debug for ActorSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActorSystem")
            .field("owned", &self.is_owned())
            .field("workers", &self.inner.workers.len())
            .finish()
    }
}

impl ActorSystem {
    /// Starts an owned system: the supervisor's thread plus one worker arbiter per core.
    pub fn start() -> Result<Self, SystemError> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Self::start_with_workers(cores)
    }

    /// Starts an owned system with `workers` worker arbiters; with none, every actor shares the
    /// supervisor's thread (a supervisor alone needs no more).
    pub fn start_with_workers(workers: usize) -> Result<Self, SystemError> {
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("massgen-quota".to_owned())
            .spawn(move || {
                let runner = actix_rt::System::new();
                let system = System::current();
                let arbiters: Vec<Arbiter> = (0..workers).map(|_| Arbiter::new()).collect();
                let mut handles = arbiters.iter().map(Arbiter::handle).collect::<Vec<_>>();
                if handles.is_empty() {
                    handles.push(Arbiter::current());
                }
                if tx.send((system, Arbiter::current(), handles)).is_err() {
                    return;
                }
                // Serves until the last `ActorSystem` clone stops the System.
                let _ = runner.run();
                for a in arbiters {
                    a.stop();
                    let _ = a.join();
                }
            })
            .map_err(|e| SystemError::Spawn(e.to_string()))?;
        let (system, quota, workers) = rx
            .recv()
            .map_err(|_| SystemError::Spawn("the actor system thread ended at start".into()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                quota,
                workers,
                next: AtomicUsize::new(0),
                owned: Some(Owned {
                    system,
                    thread: Mutex::new(Some(thread)),
                }),
            }),
        })
    }

    /// Every actor on the calling thread's actix arbiter (paused-time tests, actix apps).
    pub fn current() -> Result<Self, SystemError> {
        let here = Arbiter::try_current().ok_or(SystemError::NoArbiter)?;
        Ok(Self {
            inner: Arc::new(Inner {
                quota: here.clone(),
                workers: vec![here],
                next: AtomicUsize::new(0),
                owned: None,
            }),
        })
    }

    /// Whether the system runs on threads of its own (and so owns its clock: real time).
    pub fn is_owned(&self) -> bool {
        self.inner.owned.is_some()
    }

    /// How many worker arbiters serve agents, providers, keys and orchestrators.
    pub fn workers(&self) -> usize {
        self.inner.workers.len()
    }

    /// The arbiter of the quota supervisor.
    pub(crate) fn quota_arbiter(&self) -> &ArbiterHandle {
        &self.inner.quota
    }

    /// The next worker arbiter, in turn (agents spread over every core).
    pub(crate) fn worker(&self) -> ArbiterHandle {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let n = self.inner.workers.len().max(1);
        // `workers` is never empty (both constructors put one in).
        self.inner.workers[i % n].clone()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let Some(owned) = &self.owned else {
            return;
        };
        owned.system.stop();
        let on_own_thread = System::try_current().is_some_and(|s| s.id() == owned.system.id());
        // Joining from one of the system's own threads would wait for itself: the thread then
        // finishes on its own once the System has stopped.
        if !on_own_thread {
            let thread = owned
                .thread
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(t) = thread {
                let _ = t.join();
            }
        }
    }
}

/// An actix System on a tokio runtime whose clock starts paused, for paused-time tests:
/// `#[actix_rt::test(system = "crate::system::PausedSystem")]`. Pausing later with
/// `tokio::time::pause()` leaves the clock off tokio's millisecond timer grid (it ran since the
/// runtime started), so every sleep would end up to a millisecond late; starting paused keeps
/// durations exact.
#[cfg(test)]
pub(crate) struct PausedSystem;

#[cfg(test)]
impl PausedSystem {
    /// The System's runner (what `#[actix_rt::test]` blocks on).
    #[allow(clippy::expect_used)]
    #[allow(clippy::new_ret_no_self)]
    pub(crate) fn new() -> actix_rt::SystemRunner {
        System::with_tokio_rt(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .expect("a current-thread tokio runtime")
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_owned_system_starts_and_stops_with_its_last_clone() {
        let system = ActorSystem::start_with_workers(2).unwrap();
        assert!(system.is_owned());
        assert_eq!(system.workers(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        let again = system.clone();
        let a = system.worker();
        let b = system.worker();
        let kept = a.clone();
        for arbiter in [a, b, system.quota_arbiter().clone()] {
            let tx = tx.clone();
            assert!(arbiter.spawn_fn(move || {
                let _ = tx.send(std::thread::current().id());
            }));
        }
        let mut ids: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
        ids.sort_by_key(|id| format!("{id:?}"));
        ids.dedup();
        assert_eq!(ids.len(), 3, "two workers and the supervisor's thread");
        drop(system);
        drop(again);
        // Stopped and joined: the arbiters accept nothing more.
        assert!(!kept.spawn_fn(|| {}));
    }

    #[test]
    fn current_needs_an_arbiter() {
        assert!(matches!(
            ActorSystem::current(),
            Err(SystemError::NoArbiter)
        ));
        actix_rt::System::new().block_on(async {
            let here = ActorSystem::current().unwrap();
            assert!(!here.is_owned());
            assert_eq!(here.workers(), 1);
        });
    }
}
