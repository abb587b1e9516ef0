//! A spool kept outside the process and shared by several instances (`--spool
//! postgres://…`; the PostgreSQL one is `webhook-spool-postgres`).
//!
//! The store only keeps rows; what they mean is decided here in `webhook-core` (the
//! outbox's `shared` room): requests that arrive together are committed in one call of
//! [`SharedSpool::append`] (group commit), each entry is *owned* by the instance that
//! delivers it, an instance proves it is alive with [`SharedSpool::heartbeat`], and the
//! entries of an instance whose lease ran out are taken over with [`SharedSpool::claim`].
//! Dead letters live in the store too, so any instance lists, replays and deletes them.
//!
//! Every method is one round trip (or one transaction) to the store; none is called on the
//! request path except `append`.

use std::time::{Duration, SystemTime};

use uuid::Uuid;

use super::DeadLetter;
use crate::BoxFuture;

/// A store call failed (the store is down, refused the statement, timed out…). Shown in
/// logs and in the 503 of a `persisted` request it could not commit; never holds a
/// password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SharedSpoolError(pub String);

/// A request to commit: [`SharedSpool::append`] stores it owned by the appending instance.
#[derive(Debug, Clone)]
pub struct NewEntry {
    /// Its key, chosen by the caller (random, 63 bits).
    pub id: i64,
    /// The webhook id.
    pub webhook: String,
    /// The request id.
    pub request_id: Uuid,
    /// When the request was received.
    pub received_at: SystemTime,
    /// Bit i set: destination i of the webhook is to receive it.
    pub targets: u32,
    /// The request, encoded by `webhook-core` (opaque to the store).
    pub bytes: Vec<u8>,
}

/// An entry read back from the store (claimed, or spooled again from a dead letter).
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// Its key.
    pub id: i64,
    /// Bit i set: destination i is to receive it.
    pub targets: u32,
    /// Bit i set: destination i confirmed (or was dead-lettered).
    pub done: u32,
    /// Failed attempts per destination index.
    pub attempts: Vec<u32>,
    /// The bytes given to [`NewEntry::bytes`].
    pub bytes: Vec<u8>,
}

/// How far the delivery of one entry got (see [`SharedSpool::save_progress`]).
#[derive(Debug, Clone)]
pub struct EntryProgress {
    /// The entry.
    pub id: i64,
    /// Bit i set: destination i confirmed (or was dead-lettered).
    pub done: u32,
    /// Failed attempts per destination index.
    pub attempts: Vec<u32>,
}

/// A dead letter with the entry it keeps (for one destination), as stored.
#[derive(Debug, Clone)]
pub struct StoredDeadLetter {
    /// What is listed.
    pub letter: DeadLetter,
    /// The entry, encoded (targets: the one destination).
    pub bytes: Vec<u8>,
}

/// A store that several gateway instances share (see the module docs).
///
/// Implementations must make [`SharedSpool::append`] durable before it returns `Ok` (a
/// committed transaction): the sender is answered 2xx right after.
pub trait SharedSpool: Send + Sync + std::fmt::Debug + 'static {
    /// Where it is, for logs (no password).
    fn describe(&self) -> String;

    /// Commit `entries` in one transaction, owned by `owner`.
    fn append<'a>(
        &'a self,
        owner: Uuid,
        entries: &'a [NewEntry],
    ) -> BoxFuture<'a, Result<(), SharedSpoolError>>;

    /// Record progress of entries and delete the `finished` ones (every target done).
    /// Losing an update only means a redelivery.
    fn save_progress<'a>(
        &'a self,
        progress: &'a [EntryProgress],
        finished: &'a [i64],
    ) -> BoxFuture<'a, Result<(), SharedSpoolError>>;

    /// `owner` is alive for `lease` from now (its entries are not claimed by others).
    fn heartbeat(
        &self,
        owner: Uuid,
        lease: Duration,
    ) -> BoxFuture<'_, Result<(), SharedSpoolError>>;

    /// Clear the owner of these entries (if they exist), so the next `claim` takes them.
    fn disown<'a>(&'a self, ids: &'a [i64]) -> BoxFuture<'a, Result<(), SharedSpoolError>>;

    /// `owner` stops: its entries may be claimed at once.
    fn leave(&self, owner: Uuid) -> BoxFuture<'_, Result<(), SharedSpoolError>>;

    /// Take at most `max` entries whose owner's lease ran out (or who left) for `owner`,
    /// oldest first, skipping rows another instance is claiming at the same moment.
    fn claim(
        &self,
        owner: Uuid,
        max: usize,
    ) -> BoxFuture<'_, Result<Vec<StoredEntry>, SharedSpoolError>>;

    /// Keep a dead letter (replacing one with the same id).
    fn bury<'a>(
        &'a self,
        letter: &'a StoredDeadLetter,
    ) -> BoxFuture<'a, Result<(), SharedSpoolError>>;

    /// Every dead letter, oldest first.
    fn dead_letters(&self) -> BoxFuture<'_, Result<Vec<DeadLetter>, SharedSpoolError>>;

    /// In one transaction: delete dead letter `id` and spool its entry again as entry
    /// `entry_id` owned by `owner` (nothing done yet). `None` when there is no such letter.
    fn unbury<'a>(
        &'a self,
        id: &'a str,
        owner: Uuid,
        entry_id: i64,
    ) -> BoxFuture<'a, Result<Option<(DeadLetter, StoredEntry)>, SharedSpoolError>>;

    /// Delete dead letter `id`; what it was, `None` when there is none.
    fn delete_dead_letter<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<Option<DeadLetter>, SharedSpoolError>>;

    /// Delete the dead letters given up more than `age` ago; how many.
    fn expire_dead_letters(&self, age: Duration) -> BoxFuture<'_, Result<u64, SharedSpoolError>>;
}
