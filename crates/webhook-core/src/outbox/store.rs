//! Where the outbox keeps what it delivers: the local spool (the default) or a spool shared
//! by several instances ([`super::shared`]). One enum, so the local path stays a direct
//! call (no boxed future per request).

use std::sync::Arc;
use std::time::Duration;

use super::shared::{SharedStore, SharedWrite};
use crate::Delivery;
use crate::spool::record::EntryRecord;
use crate::spool::{DeadLetter, MemoryQuota, Pending, Reservation, Spool, SpoolError, Write};

/// The store of one server's outbox.
#[derive(Debug)]
pub(crate) enum Store {
    /// The local spool directory.
    Local(Arc<Spool>),
    /// A shared spool; `accepted` requests are held against `memory`.
    Shared {
        store: Arc<SharedStore>,
        memory: MemoryQuota,
        dead_letter_ttl: Option<Duration>,
    },
}

/// An append under way.
pub(crate) enum Appending {
    Local(Write),
    Shared(SharedWrite),
}

impl Appending {
    /// Wait until the entry is durable. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> Result<Arc<EntryRecord>, SpoolError> {
        match self {
            Self::Local(write) => write.wait().await,
            Self::Shared(write) => write.wait().await,
        }
    }
}

/// A dead letter taken out to be delivered again: what it was, its entry spooled anew
/// (all its targets pending), and whether the letter could be removed (local spool: the
/// entry is delivered either way).
pub(crate) struct Replayed {
    pub(crate) letter: DeadLetter,
    pub(crate) entry: Arc<EntryRecord>,
    pub(crate) removed: Result<(), SpoolError>,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| SpoolError::Closed)?
}

impl Store {
    /// The local spool, if that is the store.
    pub(crate) fn local(&self) -> Option<&Arc<Spool>> {
        match self {
            Self::Local(spool) => Some(spool),
            Self::Shared { .. } => None,
        }
    }

    /// The shared store, if that is the store.
    pub(crate) fn shared(&self) -> Option<&Arc<SharedStore>> {
        match self {
            Self::Local(_) => None,
            Self::Shared { store, .. } => Some(store),
        }
    }

    /// Start writing a request durably (see [`Spool::append`]).
    pub(crate) fn append(&self, delivery: Delivery, targets: u32) -> Result<Appending, SpoolError> {
        match self {
            Self::Local(spool) => spool.append(delivery, targets).map(Appending::Local),
            Self::Shared { store, .. } => store
                .append(EntryRecord {
                    seq: 0,
                    targets,
                    done: 0,
                    attempts: Vec::new(),
                    delivery,
                })
                .map(Appending::Shared),
        }
    }

    /// Hold `bytes` of a request kept only in memory against the quota.
    pub(crate) fn reserve(
        &self,
        webhook: &Arc<str>,
        bytes: u64,
    ) -> Result<Reservation, SpoolError> {
        match self {
            Self::Local(spool) => spool.reserve(webhook, bytes),
            Self::Shared { memory, .. } => memory.reserve(webhook, bytes),
        }
    }

    pub(crate) fn done(&self, seq: u64, index: u8) {
        match self {
            Self::Local(spool) => spool.done(seq, index),
            Self::Shared { store, .. } => store.done(seq, index),
        }
    }

    pub(crate) fn attempt(&self, seq: u64, index: u8, attempts: u32) {
        match self {
            Self::Local(spool) => spool.attempt(seq, index, attempts),
            Self::Shared { store, .. } => store.attempt(seq, index, attempts),
        }
    }

    /// Keep `entry` for destination `index` as a dead letter.
    pub(crate) async fn bury(
        &self,
        entry: &EntryRecord,
        index: u8,
        module: &'static str,
        attempts: u32,
        reason: &str,
    ) -> Result<DeadLetter, SpoolError> {
        match self {
            Self::Local(spool) => {
                let spool = Arc::clone(spool);
                let entry = entry.clone();
                let reason = reason.to_owned();
                blocking(move || spool.write_dead_letter(&entry, index, module, attempts, &reason))
                    .await
            }
            Self::Shared { store, .. } => store.bury(entry, index, module, attempts, reason).await,
        }
    }

    pub(crate) fn dead_letter_ttl(&self) -> Option<Duration> {
        match self {
            Self::Local(spool) => spool.dead_letter_ttl(),
            Self::Shared {
                dead_letter_ttl, ..
            } => *dead_letter_ttl,
        }
    }

    pub(crate) async fn expire_dead_letters(&self, ttl: Duration) {
        match self {
            Self::Local(spool) => {
                let spool = Arc::clone(spool);
                let _ = blocking(move || Ok(spool.expire_dead_letters(ttl))).await;
            }
            Self::Shared { store, .. } => store.expire_dead_letters(ttl).await,
        }
    }

    /// What the local spool recovered (a shared spool's are claimed by the ticks).
    pub(crate) fn pending(&self) -> Vec<Pending> {
        match self {
            Self::Local(spool) => spool.pending(),
            Self::Shared { .. } => Vec::new(),
        }
    }

    pub(crate) async fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        match self {
            Self::Local(spool) => {
                let spool = Arc::clone(spool);
                blocking(move || spool.dead_letters()).await
            }
            Self::Shared { store, .. } => store.dead_letters().await,
        }
    }

    pub(crate) async fn delete_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        match self {
            Self::Local(spool) => {
                let spool = Arc::clone(spool);
                let id = id.to_owned();
                blocking(move || spool.delete_dead_letter(&id)).await
            }
            Self::Shared { store, .. } => store.delete_dead_letter(id).await,
        }
    }

    /// Spool dead letter `id` again for its one destination and take it out of the dead
    /// letters.
    pub(crate) async fn replay(&self, id: &str) -> Result<Replayed, SpoolError> {
        match self {
            Self::Local(spool) => {
                let reading = Arc::clone(spool);
                let owned = id.to_owned();
                let (letter, entry) = blocking(move || reading.read_dead_letter(&owned)).await?;
                let entry = spool.respool(entry)?.wait().await?;
                let removing = Arc::clone(spool);
                let owned = id.to_owned();
                let removed = blocking(move || removing.remove_dead_letter(&owned)).await;
                Ok(Replayed {
                    letter,
                    entry,
                    removed,
                })
            }
            Self::Shared { store, .. } => {
                let (letter, entry) = store.unbury(id).await?;
                Ok(Replayed {
                    letter,
                    entry,
                    removed: Ok(()),
                })
            }
        }
    }
}
