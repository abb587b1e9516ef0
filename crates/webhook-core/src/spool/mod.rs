//! The spool: a crash-safe, append-only log of accepted requests, so a webhook answered 2xx
//! is delivered even if the process dies before its destinations confirmed.
//!
//! * Segment files `<id>.seg` hold checksummed frames ([`record`]): an entry per request,
//!   then small `done`/`attempt` records as its destinations confirm or fail.
//! * One writer thread owns the files. Requests hand it their frames and wait; it writes all
//!   frames that queued up while the previous `fdatasync` ran, syncs once and answers them
//!   all (group commit). `done`/`attempt` records are not waited for: losing one in a crash
//!   means a redelivery, never a loss.
//! * Space is reclaimed by deleting whole segments, oldest first, once none of their entries
//!   is pending. A mostly-finished oldest segment has its few pending entries copied forward
//!   (with their progress) into the active segment, so one stuck entry does not pin the disk.
//! * On open, every segment is read in place; a torn frame at a tail is detected by its
//!   length or checksum and skipped, damage inside a segment is skipped over (resynchronising
//!   on the next valid frame) and the segment kept aside; finished segments are deleted and
//!   writing goes on in a fresh segment.
//! * Entries whose delivery is given up are moved to `dead/` as dead letters (one file each,
//!   written atomically) until an operator replays or deletes them.
//!
//! Its rooms: this file is the API and the quota (append, progress, pending entries);
//! [`record`] the on-disk format; `writer.rs` the writer thread and group commit;
//! `recovery.rs` opening a spool (reading back what a crash left); `dead_letters.rs` the
//! `dead/` directory.

mod dead_letters;
pub(crate) mod record;
mod recovery;
mod scan;
pub mod shared;
mod shares;
mod writer;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::Delivery;
use record::EntryRecord;

pub use dead_letters::DeadLetter;
pub(crate) use dead_letters::letter_entry;

/// Hooks for the fuzz targets (`fuzz/`), not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use super::record;

    /// A `done` record framed and stamped for segment `segment`.
    pub fn done_frame(seq: u64, segment: u32) -> Vec<u8> {
        let mut frame = record::encode_done(seq, 0);
        record::stamp(&mut frame, segment);
        frame
    }

    /// Byte ranges `(start, length or end)`.
    pub type Ranges = Vec<(usize, usize)>;

    /// What recovery reads of segment `segment`'s bytes: `(offset, length)` of every frame
    /// it keeps, the damaged ranges it skipped, and where a torn tail starts.
    pub fn scan(bytes: &[u8], segment: u32) -> (Ranges, Ranges, Option<usize>) {
        let mut frames = Vec::new();
        let report = super::scan::scan_segment(bytes, segment, |_, at, len| frames.push((at, len)));
        (frames, report.damaged, report.torn_from)
    }
}

/// Where the spool lives and how big it may grow.
#[derive(Debug, Clone)]
pub struct SpoolOptions {
    /// The spool directory (default `spool`, relative to the working directory).
    pub dir: PathBuf,
    /// Most bytes the segment files and the dead letters may take together (default
    /// 1 GiB). Past it, requests of `persisted` webhooks are answered 503 with
    /// `Retry-After` until space frees (entries delivered, dead letters replayed or
    /// deleted).
    pub max_bytes: u64,
    /// Size at which the active segment is closed and a new one started (default 64 MiB,
    /// at most an eighth of `max_bytes`).
    pub segment_bytes: u64,
    /// Most of the quota one webhook's pending entries may take, in percent (default 50):
    /// past it that webhook's requests get 503 while the others go on.
    pub webhook_share_percent: u8,
    /// Most bytes the dead letters may take (default 256 MiB, the server's default is a
    /// quarter of `max_bytes`), apart from
    /// the quota of pending entries: dead letters never block new webhooks; past this,
    /// a delivery given up stays pending in the spool instead.
    pub dead_letter_max_bytes: u64,
    /// Delete dead letters older than this (default: keep them until replayed or deleted).
    pub dead_letter_ttl: Option<std::time::Duration>,
    /// Write each group with `O_DIRECT | O_DSYNC` (default `true`): one write per group,
    /// durable when it returns, without the page cache. Where the file system refuses
    /// direct I/O, or with `false`, groups are written buffered and `fdatasync`'d.
    pub direct_io: bool,
}

impl Default for SpoolOptions {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("spool"),
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
            webhook_share_percent: 50,
            dead_letter_max_bytes: 256 << 20,
            dead_letter_ttl: None,
            direct_io: true,
        }
    }
}

/// Why the spool could not take or give something.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Taking the request would pass the configured size.
    #[error("the spool is full ({used} of {max} bytes used)")]
    Full {
        /// Bytes in use.
        used: u64,
        /// The configured maximum.
        max: u64,
    },
    /// Taking the request would pass its webhook's share of the spool.
    #[error("webhook {webhook} holds its whole share of the spool ({held} of {max} bytes)")]
    ShareFull {
        /// The webhook.
        webhook: String,
        /// Bytes its pending entries take.
        held: u64,
        /// Its share.
        max: u64,
    },
    /// The dead letters take all the room they may.
    #[error("the dead letters are full ({used} of {max} bytes)")]
    DeadLettersFull {
        /// Bytes they take.
        used: u64,
        /// `dead_letter_max_bytes`.
        max: u64,
    },
    /// A file operation failed (e.g. the disk is full).
    #[error("spool I/O error: {0}")]
    Io(#[from] io::Error),
    /// Another process has the spool directory open.
    #[error("the spool directory {0} is in use by another process")]
    Locked(PathBuf),
    /// The writer thread stopped.
    #[error("the spool writer stopped")]
    Closed,
    /// No dead letter has this id.
    #[error("no dead letter with id {0}")]
    NoDeadLetter(String),
    /// The shared spool (PostgreSQL) did not commit or answer.
    #[error("the shared spool: {0}")]
    Shared(#[from] shared::SharedSpoolError),
}

/// A pending entry with its progress, as handed to the delivery workers.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) entry: Arc<EntryRecord>,
    pub(crate) done: u32,
    pub(crate) attempts: Vec<u32>,
}

#[derive(Debug, Default)]
struct Segment {
    bytes: u64,
    live: usize,
    live_bytes: u64,
    /// Recovery found damage inside it: when its entries are done it is moved to
    /// `corrupt/`, never deleted or recycled.
    damaged: bool,
}

struct Live {
    entry: Arc<EntryRecord>,
    segment: u64,
    bytes: u64,
    /// What the entry is charged to its webhook's share (its size when appended).
    charged: u64,
    done: u32,
    attempts: Vec<u32>,
}

struct State {
    /// `done`/`attempt` records not written yet: they go out with the next group (or within
    /// [`IDLE_FLUSH`]), never waking the writer on their own.
    unwritten: Vec<u8>,
    active: u64,
    segments: BTreeMap<u64, Segment>,
    live: HashMap<u64, Live>,
}

enum Op {
    /// Frames to write; entries (seq) among them get the segment they land in.
    Write {
        bytes: Vec<u8>,
        entry: Option<Arc<EntryRecord>>,
        reply: Option<oneshot::Sender<io::Result<()>>>,
    },
    /// See whether old segments can go.
    Reclaim,
}

/// Quota taken by a request held in memory (see [`Spool::reserve`]), given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    used: Arc<AtomicU64>,
    shares: Arc<shares::Shares>,
    webhook: Arc<str>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        release(&self.used, self.bytes);
        self.shares.release(&self.webhook, self.bytes);
    }
}

impl Reservation {
    /// The bytes stay charged: the spool accounts for them from now on.
    fn keep(mut self) {
        self.bytes = 0;
    }
}

/// The quota of requests held only in memory where there is no local spool (`ack:
/// accepted` webhooks of a server whose spool is shared): the same limits as the spool's
/// (`max_bytes`, each webhook's share).
#[derive(Debug)]
pub(crate) struct MemoryQuota {
    used: Arc<AtomicU64>,
    shares: Arc<shares::Shares>,
    max: u64,
    share_max: u64,
}

impl MemoryQuota {
    pub(crate) fn new(options: &SpoolOptions) -> Self {
        let share_max =
            options.max_bytes / 100 * u64::from(options.webhook_share_percent.clamp(1, 100));
        Self {
            used: Arc::new(AtomicU64::new(0)),
            shares: Arc::new(shares::Shares::new(share_max)),
            max: options.max_bytes,
            share_max,
        }
    }

    /// Hold `bytes` for `webhook` until the reservation is dropped.
    pub(crate) fn reserve(
        &self,
        webhook: &Arc<str>,
        bytes: u64,
    ) -> Result<Reservation, SpoolError> {
        let before = self.used.fetch_add(bytes, Ordering::AcqRel);
        if before + bytes > self.max {
            release(&self.used, bytes);
            return Err(SpoolError::Full {
                used: before,
                max: self.max,
            });
        }
        if let Err(held) = self.shares.try_charge(webhook, bytes) {
            release(&self.used, bytes);
            return Err(SpoolError::ShareFull {
                webhook: webhook.to_string(),
                held,
                max: self.share_max,
            });
        }
        Ok(Reservation {
            used: Arc::clone(&self.used),
            shares: Arc::clone(&self.shares),
            webhook: Arc::clone(webhook),
            bytes,
        })
    }
}

/// A request handed to the writer: [`Write::wait`] answers once it is durable.
///
/// Dropping it before the answer does not stop the write (the frames are queued): the
/// caller that drops it must still see that the entry gets delivered, or it stays pending
/// until the next start. [`crate::outbox`] finishes dropped writes in a task of their own.
pub(crate) struct Write {
    entry: Arc<EntryRecord>,
    answer: oneshot::Receiver<io::Result<()>>,
    /// Given back if the write fails; kept (by the spool) once it succeeded.
    charge: Option<Reservation>,
}

impl Write {
    /// Wait until the entry is durable. Cancel-safe: after a cancelled call, call it again
    /// (it answers once the same write finished).
    pub(crate) async fn wait(&mut self) -> Result<Arc<EntryRecord>, SpoolError> {
        let result = (&mut self.answer)
            .await
            .map_err(|_| SpoolError::Closed)
            .and_then(|r| r.map_err(SpoolError::Io));
        match result {
            Ok(()) => {
                if let Some(charge) = self.charge.take() {
                    charge.keep();
                }
                Ok(Arc::clone(&self.entry))
            }
            Err(err) => {
                self.charge = None; // given back
                Err(err)
            }
        }
    }
}

/// The spool of one server (see the module docs). Cheap to share (`Arc<Spool>`); it lives
/// across config reloads.
pub struct Spool {
    dir: PathBuf,
    options: SpoolOptions,
    state: Arc<Mutex<State>>,
    /// Bytes of the segment files and dead letters plus those reserved by appends under
    /// way (lock-free, so a request never waits for the writer's lock).
    used: Arc<AtomicU64>,
    /// The part of `used` that dead letters take.
    dead_bytes: Arc<AtomicU64>,
    /// Each webhook's pending bytes.
    shares: Arc<shares::Shares>,
    next_seq: AtomicU64,
    writer: Mutex<mpsc::Sender<Op>>,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).finish()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    match state.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// How long `done`/`attempt` records may wait for a group to go out with.
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(50);

/// A finished segment kept to become the next one (see [`Writer::rotate`]).
const SPARE: &str = "spare.seg";

/// Where segments with damage inside are moved once nothing in them is pending.
const CORRUPT: &str = "corrupt";

/// Give back `bytes` of `used` (never below zero).
fn release(used: &AtomicU64, bytes: u64) {
    let _ = used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
        Some(u.saturating_sub(bytes))
    });
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

/// Create `dir` (and its parents) readable by the server's user only (`0700`, whatever
/// the umask), and tighten it if it already existed: the spool holds every request's
/// headers and body.
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Options that create a file readable and writable by the server's user only (`0600`).
fn private_file() -> fs::OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = fs::OpenOptions::new();
    options.mode(0o600);
    options
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pending entries, and the bytes the segment files and dead letters take.
    pub fn usage(&self) -> (usize, u64) {
        let entries = lock(&self.state).live.len();
        (entries, self.used.load(Ordering::Relaxed))
    }

    /// When the oldest pending entry was received (`None` when nothing is pending). Walks
    /// every pending entry: for the admin API, not the request path.
    pub fn oldest_pending(&self) -> Option<std::time::SystemTime> {
        lock(&self.state)
            .live
            .values()
            .map(|l| l.entry.delivery.received_at)
            .min()
    }

    fn send(&self, op: Op) -> Result<(), SpoolError> {
        let sender = match self.writer.lock() {
            Ok(sender) => sender,
            Err(poisoned) => poisoned.into_inner(),
        };
        sender.send(op).map_err(|_| SpoolError::Closed)
    }

    /// Start writing a request durably; [`Write::wait`] returns after the group's
    /// `fdatasync`. `targets` has bit i set for each destination index that is to receive
    /// it. The write goes on if the returned value is dropped: see [`Write`].
    pub(crate) fn append(&self, delivery: Delivery, targets: u32) -> Result<Write, SpoolError> {
        let entry = EntryRecord {
            seq: 0,
            targets,
            done: 0,
            attempts: Vec::new(),
            delivery,
        };
        self.write_entry(entry, true)
    }

    /// Spool a dead letter's entry again for a replay (a new sequence number, nothing done
    /// yet). Not refused by the quota: the dead letter it comes from is deleted right after,
    /// so this never grows what is stored, and a spool filled with dead letters can always
    /// be emptied by replaying them.
    pub(crate) fn respool(&self, mut entry: EntryRecord) -> Result<Write, SpoolError> {
        entry.done = 0;
        entry.attempts.clear();
        self.write_entry(entry, false)
    }

    fn write_entry(&self, mut entry: EntryRecord, within_quota: bool) -> Result<Write, SpoolError> {
        entry.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let bytes = record::encode_entry(&entry);
        let len = bytes.len() as u64;
        let webhook = Arc::clone(&entry.delivery.webhook_id);
        if within_quota {
            self.take_quota(&webhook, len)?;
        } else {
            self.used.fetch_add(len, Ordering::AcqRel);
            self.shares.charge(&webhook, len);
        }
        let entry = Arc::new(entry);
        let (reply, answer) = oneshot::channel();
        let charge = Reservation {
            used: Arc::clone(&self.used),
            shares: Arc::clone(&self.shares),
            webhook,
            bytes: len,
        };
        self.send(Op::Write {
            bytes,
            entry: Some(Arc::clone(&entry)),
            reply: Some(reply),
        })?; // `charge` is given back when dropped here
        Ok(Write {
            entry,
            answer,
            charge: Some(charge),
        })
    }
    /// Count `bytes` held only in memory (an `ack: accepted` request) against the quota
    /// until the returned reservation is dropped: memory for requests not yet delivered is
    /// bounded like the spool's disk.
    pub(crate) fn reserve(
        &self,
        webhook: &Arc<str>,
        bytes: u64,
    ) -> Result<Reservation, SpoolError> {
        self.take_quota(webhook, bytes)?;
        Ok(Reservation {
            used: Arc::clone(&self.used),
            shares: Arc::clone(&self.shares),
            webhook: Arc::clone(webhook),
            bytes,
        })
    }

    /// Take `bytes` of the quota (dead letters left out) and of `webhook`'s share.
    fn take_quota(&self, webhook: &Arc<str>, bytes: u64) -> Result<(), SpoolError> {
        let max = self.options.max_bytes;
        let before = self.used.fetch_add(bytes, Ordering::AcqRel);
        let pending = before.saturating_sub(self.dead_bytes.load(Ordering::Acquire));
        if pending + bytes > max {
            release(&self.used, bytes);
            return Err(SpoolError::Full { used: pending, max });
        }
        if let Err(held) = self.shares.try_charge(webhook, bytes) {
            release(&self.used, bytes);
            return Err(SpoolError::ShareFull {
                webhook: webhook.to_string(),
                held,
                max: self.share_max(),
            });
        }
        Ok(())
    }

    fn share_max(&self) -> u64 {
        self.options.max_bytes / 100 * u64::from(self.options.webhook_share_percent.clamp(1, 100))
    }

    /// Destination `destination` of entry `seq` confirmed (or was dead-lettered).
    pub(crate) fn done(&self, seq: u64, destination: u8) {
        let mut reclaim = false;
        {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            let Some(live) = state.live.get_mut(&seq) else {
                return;
            };
            live.done |= 1 << destination;
            let complete = live.done & live.entry.targets == live.entry.targets;
            state
                .unwritten
                .extend_from_slice(&record::encode_done(seq, destination));
            if complete {
                let (segment, bytes) = (live.segment, live.bytes);
                self.shares
                    .release(&live.entry.delivery.webhook_id, live.charged);
                state.live.remove(&seq);
                if let Some(s) = state.segments.get_mut(&segment) {
                    s.live = s.live.saturating_sub(1);
                    s.live_bytes = s.live_bytes.saturating_sub(bytes);
                    reclaim = s.live == 0;
                }
            }
        }
        if reclaim {
            let _ = self.send(Op::Reclaim);
        }
    }

    /// Destination `destination` of entry `seq` has failed `attempts` times.
    pub(crate) fn attempt(&self, seq: u64, destination: u8, attempts: u32) {
        {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            let Some(live) = state.live.get_mut(&seq) else {
                return;
            };
            let index = usize::from(destination);
            if live.attempts.len() <= index {
                live.attempts.resize(index + 1, 0);
            }
            live.attempts[index] = attempts;
            state
                .unwritten
                .extend_from_slice(&record::encode_attempt(seq, destination, attempts));
        }
    }

    /// Every pending entry with its progress (what the delivery workers resume on start).
    pub(crate) fn pending(&self) -> Vec<Pending> {
        let state = lock(&self.state);
        let mut list: Vec<Pending> = state
            .live
            .values()
            .filter(|l| l.segment != 0)
            .map(|l| Pending {
                entry: Arc::clone(&l.entry),
                done: l.done,
                attempts: l.attempts.clone(),
            })
            .collect();
        list.sort_by_key(|p| p.entry.seq);
        list
    }
}

#[cfg(test)]
mod tests;
