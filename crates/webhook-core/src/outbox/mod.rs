//! Background delivery for `ack: persisted` and `ack: accepted` webhooks: the one delivery
//! path ([`crate::attempt`]) run in a task of its own per entry, with progress recorded in
//! the spool (so a restart resumes where it stopped) and what is given up kept as a dead
//! letter. Its rooms: this file the background delivery; `store.rs` where entries are kept
//! (the local spool or a shared one); `shared.rs` this instance's use of a shared spool.

mod shared;
mod store;

pub use shared::SharedSpoolOptions;
pub(crate) use shared::SharedStore;
pub(crate) use store::Store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::Delivery;
use crate::attempt::{self, GiveUp, Job, Progress, Route, Routes};
use crate::spool::record::EntryRecord;
use crate::spool::{DeadLetter, Reservation, SpoolError};
use store::{Appending, Replayed};

/// Background delivery state shared by every pipeline built from one server's configs.
pub(crate) struct Outbox {
    store: Store,
    routes: RwLock<Arc<HashMap<Arc<str>, Arc<Route>>>>,
    resumed: AtomicBool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The current configuration's routes: a reload's new destinations are used for pending
/// entries from their next attempt on.
impl Routes for Outbox {
    fn current(&self, webhook: &str) -> Option<Arc<Route>> {
        let routes = match self.routes.read() {
            Ok(routes) => Arc::clone(&routes),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        routes.get(webhook).cloned()
    }
}

/// One entry being delivered in the background: from the spool (`spooled`) or only in
/// memory (`accepted`).
struct Background<'a> {
    outbox: &'a Outbox,
    entry: &'a EntryRecord,
    spooled: bool,
}

impl Progress for Background<'_> {
    fn delivered(&self, index: u8) {
        if self.spooled {
            self.outbox.store.done(self.entry.seq, index);
        }
    }

    fn failed(&self, index: u8, attempts: u32) {
        if self.spooled {
            self.outbox.store.attempt(self.entry.seq, index, attempts);
        }
    }

    /// Keep the entry for destination `index` as a dead letter and mark it done in the
    /// spool. If the dead letter cannot be written, the entry stays pending in the spool (it
    /// is tried again after a restart) rather than being lost.
    async fn gave_up(&self, give_up: GiveUp) {
        let GiveUp {
            index,
            module,
            attempts,
            error,
        } = give_up;
        if let Some(route) = self.outbox.current(&self.entry.delivery.webhook_id)
            && let Some(destination) = route.destinations.get(usize::from(index))
            && module != "?"
        {
            destination.metrics.dead_lettered.increment(1);
        }
        let reason = error.chain();
        // While the dead letters are full (or a shared spool does not answer) the entry
        // stays pending (charged to its webhook's share) and the write is tried again,
        // until an operator makes room.
        let mut wait = Duration::from_secs(1);
        let written = loop {
            let written = self
                .outbox
                .store
                .bury(self.entry, index, module, attempts, &reason)
                .await;
            match written {
                Err(SpoolError::DeadLettersFull { used, max }) if self.spooled => {
                    if wait == Duration::from_secs(1) {
                        tracing::error!(
                            webhook = %self.entry.delivery.webhook_id,
                            request_id = %self.entry.delivery.request_id,
                            used, max,
                            "the dead letters are full: the entry stays pending until there is room (replay or delete dead letters)"
                        );
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                Err(SpoolError::Shared(err)) if self.spooled => {
                    if wait == Duration::from_secs(1) {
                        tracing::error!(
                            webhook = %self.entry.delivery.webhook_id,
                            request_id = %self.entry.delivery.request_id,
                            error = %err,
                            "cannot write a dead letter to the shared spool: tried again"
                        );
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                }
                other => break other,
            }
        };
        let delivery = &self.entry.delivery;
        match written {
            Ok(letter) => {
                tracing::error!(
                    webhook = %letter.webhook,
                    request_id = %letter.request_id,
                    dead_letter = %letter.id,
                    attempts,
                    error = %letter.error,
                    "delivery given up: kept as a dead letter"
                );
                if self.spooled {
                    self.outbox.store.done(self.entry.seq, index);
                }
            }
            Err(err) => tracing::error!(
                webhook = %delivery.webhook_id,
                request_id = %delivery.request_id,
                error = %err,
                "cannot write a dead letter; the entry stays in the spool"
            ),
        }
    }
}

impl Outbox {
    pub(crate) fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            routes: RwLock::new(Arc::new(HashMap::new())),
            resumed: AtomicBool::new(false),
        })
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Make `routes` the destinations used from now on; the first time, resume what the
    /// spool recovered (a shared spool: start taking over the entries of stopped instances).
    pub(crate) fn install(self: &Arc<Self>, routes: HashMap<Arc<str>, Arc<Route>>) {
        match self.routes.write() {
            Ok(mut current) => *current = Arc::new(routes),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(routes),
        }
        if !self.resumed.swap(true, Ordering::AcqRel) {
            if let Some(ttl) = self.store.dead_letter_ttl() {
                let outbox = Arc::downgrade(self);
                let every = (ttl / 10).clamp(Duration::from_millis(100), Duration::from_secs(60));
                tokio::spawn(async move {
                    while let Some(outbox) = outbox.upgrade() {
                        outbox.store.expire_dead_letters(ttl).await;
                        drop(outbox);
                        tokio::time::sleep(every).await;
                    }
                });
            }
            if let Some(shared) = self.store.shared() {
                let outbox = Arc::downgrade(self);
                let every = shared.tick_every();
                tokio::spawn(async move {
                    while let Some(outbox) = outbox.upgrade() {
                        if let Some(shared) = outbox.store.shared() {
                            for (entry, pending, attempts) in shared.tick().await {
                                outbox.spawn(entry, pending, attempts, true, None);
                            }
                        }
                        drop(outbox);
                        tokio::time::sleep(every).await;
                    }
                });
            }
            let pending = self.store.pending();
            if !pending.is_empty() {
                tracing::info!(
                    entries = pending.len(),
                    "resuming delivery of spooled webhooks"
                );
            }
            for p in pending {
                let pending = p.entry.targets & !p.done;
                self.spawn(p.entry, pending, p.attempts, true, None);
            }
        }
    }

    /// The dead letters, oldest first.
    pub(crate) async fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        self.store.dead_letters().await
    }

    /// Drop dead letter `id` for good.
    pub(crate) async fn delete_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        self.store.delete_dead_letter(id).await
    }

    /// Shutting down: a shared spool's entries not finished are handed to the others.
    pub(crate) async fn leave(&self) {
        if let Some(shared) = self.store.shared() {
            shared.leave().await;
        }
    }

    /// Take a request: write it to the spool first when `durable`, then deliver it in the
    /// background to the `targets` (bit i: destination i of its route).
    pub(crate) async fn accept(
        self: &Arc<Self>,
        delivery: Delivery,
        durable: bool,
        targets: u32,
    ) -> Result<(), SpoolError> {
        let (entry, hold) = if durable {
            let mut write = Unanswered {
                outbox: Arc::clone(self),
                targets,
                write: Some(self.store.append(delivery, targets)?),
            };
            (write.wait().await?, None)
        } else {
            let hold = self
                .store
                .reserve(&delivery.webhook_id, delivery.held_bytes())?;
            let entry = EntryRecord {
                seq: 0,
                targets,
                done: 0,
                attempts: Vec::new(),
                delivery,
            };
            (Arc::new(entry), Some(hold))
        };
        self.spawn(entry, targets, Vec::new(), durable, hold);
        Ok(())
    }

    /// Re-drive dead letter `id`: spool it again for its one destination and deliver it.
    /// Runs to the end in a task of its own, even if the caller goes away.
    pub(crate) async fn replay(self: &Arc<Self>, id: &str) -> Result<DeadLetter, SpoolError> {
        let outbox = Arc::clone(self);
        let id = id.to_owned();
        tokio::spawn(async move { outbox.replay_to_the_end(id).await })
            .await
            .map_err(|_| SpoolError::Closed)?
    }

    async fn replay_to_the_end(self: &Arc<Self>, id: String) -> Result<DeadLetter, SpoolError> {
        let Replayed {
            letter,
            entry,
            removed,
        } = self.store.replay(&id).await?;
        tracing::info!(id, webhook = %entry.delivery.webhook_id, "dead letter replayed");
        let targets = entry.targets;
        // spooled again: delivered even if the dead letter could not be removed
        self.spawn(entry, targets, Vec::new(), true, None);
        removed?;
        Ok(letter)
    }

    /// Deliver `entry` to the destinations in `pending` in a task of its own (`hold`: the
    /// quota an in-memory entry takes, given back when the task ends).
    fn spawn(
        self: &Arc<Self>,
        entry: Arc<EntryRecord>,
        pending: u32,
        attempts: Vec<u32>,
        spooled: bool,
        hold: Option<Reservation>,
    ) {
        let outbox = Arc::clone(self);
        tokio::spawn(async move {
            let job = Job {
                delivery: &entry.delivery,
                pending,
                attempts: &attempts,
                deadline: None,
            };
            let progress = Background {
                outbox: &outbox,
                entry: &entry,
                spooled,
            };
            attempt::run_chain(&*outbox, &job, &progress).await;
            drop(hold);
        });
    }
}

/// A spool write whose caller may go away (a client that hangs up while its request is made
/// durable drops the request's future): if dropped before the write answered, a task waits
/// for it and delivers the entry, so nothing written stays undelivered until the next start.
struct Unanswered {
    outbox: Arc<Outbox>,
    targets: u32,
    write: Option<Appending>,
}

impl Unanswered {
    async fn wait(&mut self) -> Result<Arc<EntryRecord>, SpoolError> {
        let Some(write) = self.write.as_mut() else {
            return Err(SpoolError::Closed);
        };
        let result = write.wait().await;
        self.write = None;
        result
    }
}

impl Drop for Unanswered {
    fn drop(&mut self) {
        let Some(mut write) = self.write.take() else {
            return;
        };
        let outbox = Arc::clone(&self.outbox);
        let targets = self.targets;
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Ok(entry) = write.wait().await {
                    outbox.spawn(entry, targets, Vec::new(), true, None);
                }
            });
        }
    }
}
