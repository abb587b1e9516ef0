//! The outbox's side of a shared spool ([`crate::spool::shared`]): group commit of appends,
//! the progress of the entries this instance delivers (written in batches), its lease
//! (heartbeat) and taking over the entries of instances whose lease ran out.
//!
//! Ownership: an entry appended here is owned by this instance (its `owner` is this
//! process's id, a new one per start) and delivered by it; while the heartbeat renews the
//! lease no other instance touches it. When an append's outcome is unknown (an error or a
//! timeout after the statement was sent: it may have committed), its ids are *disowned*
//! on the next tick, so another instance (or this one) claims them if they exist: a
//! committed entry is never left owned by an instance that does not deliver it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::spool::record::{self, EntryRecord};
use crate::spool::shared::{
    EntryProgress, NewEntry, SharedSpool, SharedSpoolError, StoredDeadLetter, StoredEntry,
};
use crate::spool::{DeadLetter, SpoolError};

/// How a shared spool is used.
#[derive(Debug, Clone)]
pub struct SharedSpoolOptions {
    /// How long this instance's entries stay its own without a heartbeat (default 10 s):
    /// after a crash, the others deliver its entries this long after its last heartbeat.
    pub lease: Duration,
    /// Most time an append (a group commit) may take before the requests in it are
    /// answered 503 (default 5 s).
    pub append_timeout: Duration,
}

impl Default for SharedSpoolOptions {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(10),
            append_timeout: Duration::from_secs(5),
        }
    }
}

/// Appends waiting for their group (beyond it, requests are answered 503).
const QUEUE: usize = 8192;
/// Groups committed at the same time (each one transaction on a connection of its own).
const APPENDERS: usize = 4;
/// Most entries and bytes in one group.
const GROUP_ENTRIES: usize = 512;
const GROUP_BYTES: usize = 8 << 20;
/// How often progress is written.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);
/// Entries taken over per claim.
const CLAIM_BATCH: usize = 256;

struct Append {
    entry: NewEntry,
    reply: oneshot::Sender<Result<(), SharedSpoolError>>,
}

/// The progress of an entry this instance delivers.
struct Owned {
    targets: u32,
    done: u32,
    attempts: Vec<u32>,
    dirty: bool,
}

#[derive(Default)]
struct Book {
    owned: HashMap<i64, Owned>,
    /// Entries finished whose deletion is not written yet.
    finished: Vec<i64>,
    /// Entries whose append may or may not have committed.
    disowned: Vec<i64>,
}

/// One instance's use of a shared spool.
pub(crate) struct SharedStore {
    spool: Arc<dyn SharedSpool>,
    owner: Uuid,
    options: SharedSpoolOptions,
    appends: mpsc::Sender<Append>,
    book: Arc<Mutex<Book>>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("spool", &self.spool.describe())
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    match book.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// A random positive 63-bit key.
fn new_id() -> i64 {
    (fastrand::u64(..) >> 1) as i64
}

/// A request handed to the appenders: [`SharedWrite::wait`] answers once it committed.
pub(crate) struct SharedWrite {
    entry: Arc<EntryRecord>,
    answer: oneshot::Receiver<Result<(), SharedSpoolError>>,
}

impl SharedWrite {
    /// Wait until the entry is committed. Cancel-safe.
    pub(crate) async fn wait(&mut self) -> Result<Arc<EntryRecord>, SpoolError> {
        match (&mut self.answer).await {
            Ok(Ok(())) => Ok(Arc::clone(&self.entry)),
            Ok(Err(err)) => Err(SpoolError::Shared(err)),
            Err(_) => Err(SpoolError::Closed),
        }
    }
}

impl SharedStore {
    /// Announce this instance (its first heartbeat, so nothing it appends looks orphaned)
    /// and start the appenders and the progress writer.
    pub(crate) async fn start(
        spool: Arc<dyn SharedSpool>,
        options: SharedSpoolOptions,
    ) -> Result<Arc<Self>, SpoolError> {
        let owner = Uuid::now_v7();
        tokio::time::timeout(
            options.append_timeout,
            spool.heartbeat(owner, options.lease),
        )
        .await
        .map_err(|_| SharedSpoolError("no answer".to_owned()))??;
        let (appends, queue) = mpsc::channel(QUEUE);
        let queue = Arc::new(tokio::sync::Mutex::new(queue));
        let book = Arc::new(Mutex::new(Book::default()));
        for _ in 0..APPENDERS {
            tokio::spawn(append_groups(
                Arc::clone(&spool),
                owner,
                options.append_timeout,
                Arc::clone(&queue),
                Arc::clone(&book),
            ));
        }
        let store = Arc::new(Self {
            spool,
            owner,
            options,
            appends,
            book,
        });
        tokio::spawn(write_progress(Arc::downgrade(&store)));
        tracing::info!(spool = %store.spool.describe(), instance = %owner, "shared spool in use");
        Ok(store)
    }

    /// How often [`SharedStore::tick`] should run.
    pub(crate) fn tick_every(&self) -> Duration {
        (self.options.lease / 4).max(Duration::from_millis(100))
    }

    /// Queue a request for the next group commit.
    pub(crate) fn append(&self, mut entry: EntryRecord) -> Result<SharedWrite, SpoolError> {
        let id = new_id();
        entry.seq = id as u64;
        let new = NewEntry {
            id,
            webhook: entry.delivery.webhook_id.to_string(),
            request_id: entry.delivery.request_id,
            received_at: entry.delivery.received_at,
            targets: entry.targets,
            bytes: record::entry_blob(&entry),
        };
        let (reply, answer) = oneshot::channel();
        self.appends
            .try_send(Append { entry: new, reply })
            .map_err(|err| match err {
                mpsc::error::TrySendError::Full(_) => SpoolError::Shared(SharedSpoolError(
                    "too many requests wait for the shared spool".to_owned(),
                )),
                mpsc::error::TrySendError::Closed(_) => SpoolError::Closed,
            })?;
        Ok(SharedWrite {
            entry: Arc::new(entry),
            answer,
        })
    }

    /// Destination `destination` of entry `seq` confirmed (or was dead-lettered).
    pub(crate) fn done(&self, seq: u64, destination: u8) {
        let mut book = lock(&self.book);
        let id = seq as i64;
        let Some(owned) = book.owned.get_mut(&id) else {
            return;
        };
        owned.done |= 1 << destination;
        owned.dirty = true;
        if owned.done & owned.targets == owned.targets {
            book.owned.remove(&id);
            book.finished.push(id);
        }
    }

    /// Destination `destination` of entry `seq` failed `attempts` times.
    pub(crate) fn attempt(&self, seq: u64, destination: u8, attempts: u32) {
        let mut book = lock(&self.book);
        let Some(owned) = book.owned.get_mut(&(seq as i64)) else {
            return;
        };
        let index = usize::from(destination);
        if owned.attempts.len() <= index {
            owned.attempts.resize(index + 1, 0);
        }
        owned.attempts[index] = attempts;
        owned.dirty = true;
    }

    /// Renew the lease, hand back what may not have committed, and take over the entries
    /// of instances whose lease ran out: those to deliver now.
    pub(crate) async fn tick(&self) -> Vec<(Arc<EntryRecord>, u32, Vec<u32>)> {
        let timeout = self.options.append_timeout;
        let spool = &self.spool;
        match tokio::time::timeout(timeout, spool.heartbeat(self.owner, self.options.lease)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "shared spool: heartbeat failed");
                return Vec::new();
            }
            Err(_) => {
                tracing::warn!("shared spool: heartbeat timed out");
                return Vec::new();
            }
        }
        let disowned = std::mem::take(&mut lock(&self.book).disowned);
        if !disowned.is_empty() {
            match tokio::time::timeout(timeout, spool.disown(&disowned)).await {
                Ok(Ok(())) => {}
                _ => lock(&self.book).disowned.extend(disowned),
            }
        }
        let claimed =
            match tokio::time::timeout(timeout, spool.claim(self.owner, CLAIM_BATCH)).await {
                Ok(Ok(claimed)) => claimed,
                Ok(Err(err)) => {
                    tracing::warn!(error = %err, "shared spool: claiming orphaned entries failed");
                    return Vec::new();
                }
                Err(_) => return Vec::new(),
            };
        if !claimed.is_empty() {
            tracing::info!(
                entries = claimed.len(),
                "shared spool: taking over entries of an instance that stopped"
            );
        }
        claimed
            .into_iter()
            .filter_map(|stored| self.adopt(stored))
            .collect()
    }

    /// Make a stored entry one this instance delivers: the entry, what is left, attempts.
    fn adopt(&self, stored: StoredEntry) -> Option<(Arc<EntryRecord>, u32, Vec<u32>)> {
        let Some(mut entry) = record::entry_from_blob(&stored.bytes) else {
            tracing::error!(
                entry = stored.id,
                "shared spool: an entry cannot be decoded; it stays in the store"
            );
            return None;
        };
        {
            let book = lock(&self.book);
            if book.owned.contains_key(&stored.id) || book.finished.contains(&stored.id) {
                // ours already (claimed back after our own lease ran out while the store was
                // unreachable): its task is still delivering it, or it is delivered
                return None;
            }
        }
        entry.seq = stored.id as u64;
        entry.targets = stored.targets;
        entry.done = stored.done;
        entry.attempts.clone_from(&stored.attempts);
        lock(&self.book).owned.insert(
            stored.id,
            Owned {
                targets: stored.targets,
                done: stored.done,
                attempts: stored.attempts.clone(),
                dirty: false,
            },
        );
        Some((
            Arc::new(entry),
            stored.targets & !stored.done,
            stored.attempts,
        ))
    }

    /// Keep `entry` for destination `destination` as a dead letter in the store.
    pub(crate) async fn bury(
        &self,
        entry: &EntryRecord,
        destination: u8,
        module: &str,
        attempts: u32,
        error: &str,
    ) -> Result<DeadLetter, SpoolError> {
        let letter = DeadLetter::of(entry, destination, module, attempts, error);
        let single = crate::spool::letter_entry(entry, destination);
        let stored = StoredDeadLetter {
            letter,
            bytes: record::entry_blob(&single),
        };
        self.call(self.spool.bury(&stored)).await?;
        Ok(stored.letter)
    }

    /// Every dead letter of the cluster.
    pub(crate) async fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        self.call(self.spool.dead_letters()).await
    }

    /// Delete dead letter `id`.
    pub(crate) async fn delete_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        self.call(self.spool.delete_dead_letter(id))
            .await?
            .ok_or_else(|| SpoolError::NoDeadLetter(id.to_owned()))
    }

    /// Spool dead letter `id` again (owned here) and delete it, in one transaction: the
    /// entry to deliver.
    pub(crate) async fn unbury(
        &self,
        id: &str,
    ) -> Result<(DeadLetter, Arc<EntryRecord>), SpoolError> {
        let (letter, stored) = self
            .call(self.spool.unbury(id, self.owner, new_id()))
            .await?
            .ok_or_else(|| SpoolError::NoDeadLetter(id.to_owned()))?;
        let (entry, _, _) = self.adopt(stored).ok_or_else(|| {
            SpoolError::Shared(SharedSpoolError(format!("dead letter {id} is damaged")))
        })?;
        Ok((letter, entry))
    }

    /// Delete the dead letters older than `age`.
    pub(crate) async fn expire_dead_letters(&self, age: Duration) {
        match self.call(self.spool.expire_dead_letters(age)).await {
            Ok(0) => {}
            Ok(expired) => {
                tracing::warn!(expired, ttl = ?age, "dead letters past their time to live deleted");
            }
            Err(err) => tracing::warn!(error = %err, "shared spool: expiring dead letters failed"),
        }
    }

    /// Write the last progress and let the others take what is left at once.
    pub(crate) async fn leave(&self) {
        let _ = save_progress(&self.spool, &self.book, self.options.append_timeout).await;
        if let Err(err) = self.call(self.spool.leave(self.owner)).await {
            tracing::warn!(error = %err, "shared spool: could not hand back this instance's entries; the others take them after the lease");
        }
    }

    async fn call<T>(
        &self,
        future: impl Future<Output = Result<T, SharedSpoolError>>,
    ) -> Result<T, SpoolError> {
        match tokio::time::timeout(self.options.append_timeout, future).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(SpoolError::Shared(SharedSpoolError(
                "the shared spool did not answer in time".to_owned(),
            ))),
        }
    }
}

/// One appender: take every request queued (up to a group's size), commit them in one
/// call, answer them all.
async fn append_groups(
    spool: Arc<dyn SharedSpool>,
    owner: Uuid,
    timeout: Duration,
    queue: Arc<tokio::sync::Mutex<mpsc::Receiver<Append>>>,
    book: Arc<Mutex<Book>>,
) {
    let mut entries = Vec::new();
    let mut replies = Vec::new();
    loop {
        {
            let mut queue = queue.lock().await;
            let Some(first) = queue.recv().await else {
                return;
            };
            let mut bytes = first.entry.bytes.len();
            entries.push(first.entry);
            replies.push(first.reply);
            while entries.len() < GROUP_ENTRIES && bytes < GROUP_BYTES {
                match queue.try_recv() {
                    Ok(next) => {
                        bytes += next.entry.bytes.len();
                        entries.push(next.entry);
                        replies.push(next.reply);
                    }
                    Err(_) => break,
                }
            }
        }
        let result = match tokio::time::timeout(timeout, spool.append(owner, &entries)).await {
            Ok(result) => result,
            Err(_) => Err(SharedSpoolError(
                "the shared spool did not commit in time".to_owned(),
            )),
        };
        {
            let mut book = lock(&book);
            match &result {
                Ok(()) => {
                    for entry in &entries {
                        book.owned.insert(
                            entry.id,
                            Owned {
                                targets: entry.targets,
                                done: 0,
                                attempts: Vec::new(),
                                dirty: false,
                            },
                        );
                    }
                }
                Err(err) => {
                    tracing::warn!(entries = entries.len(), error = %err, "shared spool: a group was not committed");
                    book.disowned.extend(entries.iter().map(|e| e.id));
                }
            }
        }
        for reply in replies.drain(..) {
            let _ = reply.send(
                result
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| SharedSpoolError(e.0.clone())),
            );
        }
        entries.clear();
    }
}

/// Write the progress of owned entries every [`PROGRESS_EVERY`] while the store lives.
async fn write_progress(store: Weak<SharedStore>) {
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let Some(store) = store.upgrade() else {
            return;
        };
        let _ = save_progress(&store.spool, &store.book, store.options.append_timeout).await;
    }
}

async fn save_progress(
    spool: &Arc<dyn SharedSpool>,
    book: &Mutex<Book>,
    timeout: Duration,
) -> Result<(), SharedSpoolError> {
    let (progress, finished) = {
        let mut book = lock(book);
        let progress: Vec<EntryProgress> = book
            .owned
            .iter_mut()
            .filter(|(_, o)| o.dirty)
            .map(|(id, o)| {
                o.dirty = false;
                EntryProgress {
                    id: *id,
                    done: o.done,
                    attempts: o.attempts.clone(),
                }
            })
            .collect();
        (progress, std::mem::take(&mut book.finished))
    };
    if progress.is_empty() && finished.is_empty() {
        return Ok(());
    }
    let result =
        match tokio::time::timeout(timeout, spool.save_progress(&progress, &finished)).await {
            Ok(result) => result,
            Err(_) => Err(SharedSpoolError("no answer".to_owned())),
        };
    if let Err(err) = &result {
        tracing::warn!(error = %err, "shared spool: progress not written; tried again");
        let mut book = lock(book);
        book.finished.extend(finished);
        for p in progress {
            if let Some(owned) = book.owned.get_mut(&p.id) {
                owned.dirty = true;
            }
        }
    }
    result
}
