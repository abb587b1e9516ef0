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
//! * On open, every segment is read; a torn frame at a tail is detected by its length or
//!   checksum and skipped; the pending entries are rewritten into a fresh segment and the old
//!   segments deleted.
//! * Entries whose delivery is given up are moved to `dead/` as dead letters (one file each,
//!   written atomically) until an operator replays or deletes them.

pub(crate) mod record;

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::Delivery;
use record::{EntryRecord, Record};

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
}

/// A pending entry with its progress, as handed to the delivery workers.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub(crate) entry: Arc<EntryRecord>,
    pub(crate) done: u32,
    pub(crate) attempts: Vec<u32>,
}

/// What is known about a dead letter (listed by `GET /admin/dead-letters`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeadLetter {
    /// `<request id>-<destination index>`.
    pub id: String,
    /// The webhook id.
    pub webhook: String,
    /// The request id (`X-Request-Id`, `X-Webhook-Request-Id`).
    pub request_id: String,
    /// Index of the destination in the webhook's chain (0 without a chain).
    pub destination: u8,
    /// The destination kind, e.g. `http_webhook`.
    pub module: String,
    /// Attempts made.
    pub attempts: u32,
    /// The last error.
    pub error: String,
    /// When the request was received (RFC 3339).
    pub received_at: String,
    /// When it was given up (RFC 3339).
    pub dead_at: String,
    /// Body size in bytes.
    pub body_bytes: usize,
}

#[derive(Debug, Default)]
struct Segment {
    bytes: u64,
    live: usize,
    live_bytes: u64,
}

struct Live {
    entry: Arc<EntryRecord>,
    segment: u64,
    bytes: u64,
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

/// Open segment `path` for writing at offsets: the spare file renamed, else a new file.
/// Alignment of direct writes: each group is padded to a multiple of it.
const BLOCK: usize = 4096;

/// Open segment `path` (made from the `spare` file when there is one) for writing: with
/// `O_DIRECT | O_DSYNC` when `direct` and the file system takes it (each group is then one
/// write, durable when it returns, with no page-cache copy and no read-modify-write of
/// partly written pages), else buffered. The second value tells which.
fn open_segment(path: &Path, spare: Option<&Path>, direct: bool) -> io::Result<(File, bool)> {
    if let Some(spare) = spare {
        fs::rename(spare, path)?;
    }
    let mut options = OpenOptions::new();
    options.create(true).truncate(false).read(true).write(true);
    if direct {
        let mut unbuffered = options.clone();
        unbuffered.custom_flags(libc::O_DIRECT | libc::O_DSYNC);
        match unbuffered.open(path) {
            Ok(file) => return Ok((file, true)),
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) => tracing::info!(
                path = %path.display(),
                "spool: the file system refuses direct I/O; buffered writes + fdatasync"
            ),
            Err(err) => return Err(err),
        }
    }
    Ok((options.open(path)?, false))
}

/// The end of what was written to the active segment.
#[derive(Debug, Default)]
struct End {
    /// Where the next frame goes.
    offset: u64,
    /// Direct I/O: the bytes from the last block boundary up to `offset`. The next group is
    /// written from that boundary, these bytes (unchanged) in front of its frames, so the
    /// padding after a group takes no space: the next group overwrites it.
    partial: Vec<u8>,
}

/// Write sealed `frames` at `end` of segment `segment`'s `file`, stamped with the segment,
/// and move `end` past them. Direct: one aligned write of `end.partial` + frames + a padding
/// frame up to [`BLOCK`], copied into `scratch`, durable when it returns. Buffered: synced
/// when `sync`. On failure `end` stays: the next group overwrites what reached the file.
fn write_frames(
    file: &File,
    direct: bool,
    scratch: &mut Vec<u8>,
    end: &mut End,
    frames: &mut [u8],
    segment: u64,
    sync: bool,
) -> io::Result<()> {
    if frames.is_empty() {
        return Ok(());
    }
    record::stamp(frames, segment as u32);
    if !direct {
        file.write_all_at(frames, end.offset)?;
        if sync {
            file.sync_data()?;
        }
        end.offset += frames.len() as u64;
        return Ok(());
    }
    let logical = end.partial.len() + frames.len();
    let mut padding = record::padding(logical, BLOCK);
    record::stamp(&mut padding, segment as u32);
    scratch.clear();
    scratch.reserve(logical + padding.len() + BLOCK);
    let aligned = scratch.as_ptr().align_offset(BLOCK);
    if aligned >= BLOCK {
        return Err(io::Error::other("cannot align the write buffer"));
    }
    scratch.resize(aligned, 0);
    scratch.extend_from_slice(&end.partial);
    scratch.extend_from_slice(frames);
    scratch.extend_from_slice(&padding);
    let start = end.offset - end.partial.len() as u64;
    file.write_all_at(&scratch[aligned..], start)
        .map_err(|err| match err.raw_os_error() {
            // opened with O_DIRECT, yet the file system refuses the write itself
            Some(libc::EINVAL) => io::Error::other(format!(
                "direct write refused ({err}); start the server with --spool-sync fdatasync"
            )),
            _ => err,
        })?;
    end.offset += frames.len() as u64;
    let keep = logical % BLOCK;
    let group = &scratch[aligned..aligned + logical];
    end.partial.clear();
    end.partial.extend_from_slice(&group[logical - keep..]);
    Ok(())
}

/// Give back `bytes` of `used` (never below zero).
fn release(used: &AtomicU64, bytes: u64) {
    let _ = used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
        Some(u.saturating_sub(bytes))
    });
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:016x}.seg"))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    /// Open (or create) the spool in `options.dir`: take its lock, recover every complete
    /// record (skipping torn ones), rewrite what is pending into a fresh segment and start
    /// the writer. Blocking: call it before serving or from `spawn_blocking`.
    pub fn open(options: SpoolOptions) -> Result<Arc<Self>, SpoolError> {
        let mut options = options;
        options.segment_bytes = options.segment_bytes.min(options.max_bytes / 8).max(4096);
        let dir = options.dir.clone();
        fs::create_dir_all(dir.join("dead"))?;
        let lock_file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        if lock_file.try_lock().is_err() {
            return Err(SpoolError::Locked(dir));
        }

        let mut ids: Vec<u64> = fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                u64::from_str_radix(name.strip_suffix(".seg")?, 16).ok()
            })
            .collect();
        ids.sort_unstable();
        let mut recovered: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut max_seq = 0;
        for &id in &ids {
            let path = segment_path(&dir, id);
            let bytes = fs::read(&path)?;
            let mut offset = 0;
            while offset < bytes.len() {
                match record::decode(&bytes[offset..], id as u32) {
                    Ok((record, used)) => {
                        offset += used;
                        apply(&mut recovered, &mut max_seq, record);
                    }
                    Err(err) => {
                        tracing::warn!(
                            segment = %path.display(),
                            offset,
                            skipped_bytes = bytes.len() - offset,
                            problem = ?err,
                            "spool: incomplete or damaged record skipped (torn write)"
                        );
                        break;
                    }
                }
            }
        }
        recovered.retain(|_, p| p.done & p.entry.targets != p.entry.targets);

        // Rewrite what is pending into a fresh segment, then drop the old ones.
        let active = ids.last().map_or(1, |last| last + 1);
        let path = segment_path(&dir, active);
        let spare = dir.join(SPARE);
        let (file, direct) = open_segment(
            &path,
            spare.exists().then_some(spare.as_path()),
            options.direct_io,
        )?;
        let mut state = State {
            unwritten: Vec::new(),
            active,
            segments: BTreeMap::new(),
            live: HashMap::with_capacity(recovered.len()),
        };
        let mut segment = Segment::default();
        let mut buffer = Vec::new();
        for (seq, pending) in recovered {
            let mut entry = (*pending.entry).clone();
            entry.done = pending.done;
            entry.attempts.clone_from(&pending.attempts);
            let bytes = record::encode_entry(&entry);
            let len = bytes.len() as u64;
            buffer.extend_from_slice(&bytes);
            segment.live += 1;
            segment.live_bytes += len;
            segment.bytes += len;
            state.live.insert(
                seq,
                Live {
                    entry: pending.entry,
                    segment: active,
                    bytes: len,
                    done: pending.done,
                    attempts: pending.attempts,
                },
            );
        }
        let mut scratch = Vec::new();
        let mut end = End::default();
        write_frames(
            &file,
            direct,
            &mut scratch,
            &mut end,
            &mut buffer,
            active,
            true,
        )?;
        file.sync_all()?;
        sync_dir(&dir)?;
        for (i, &id) in ids.iter().enumerate() {
            if i == 0 {
                // the oldest becomes the spare file the next segment is made from
                fs::rename(segment_path(&dir, id), dir.join(SPARE))?;
            } else {
                fs::remove_file(segment_path(&dir, id))?;
            }
        }
        sync_dir(&dir)?;
        let dead_bytes = Arc::new(AtomicU64::new(dead_letter_bytes(&dir.join("dead"))?));
        let used = Arc::new(AtomicU64::new(
            segment.bytes + dead_bytes.load(Ordering::Relaxed),
        ));
        state.segments.insert(active, segment);
        if !state.live.is_empty() {
            tracing::info!(
                pending = state.live.len(),
                bytes = used.load(Ordering::Relaxed),
                "spool: recovered pending webhooks"
            );
        }

        let state = Arc::new(Mutex::new(state));
        let (sender, receiver) = mpsc::channel();
        let (janitor, doomed) = mpsc::channel::<PathBuf>();
        std::thread::Builder::new()
            .name("webhook-spool-unlink".into())
            .spawn(move || {
                // Deleting a large file can take a while on some file systems: never on the
                // writer's path.
                while let Ok(path) = doomed.recv() {
                    if let Err(err) = fs::remove_file(&path) {
                        tracing::warn!(path = %path.display(), error = %err, "spool: cannot delete a segment");
                    }
                }
            })?;
        let writer = Writer {
            dir: dir.clone(),
            end,
            file,
            direct,
            scratch,
            janitor,
            state: Arc::clone(&state),
            used: Arc::clone(&used),
            dead_bytes: Arc::clone(&dead_bytes),
            segment_bytes: options.segment_bytes,
            max_bytes: options.max_bytes,
            _lock: lock_file,
            entries_gauge: metrics::gauge!("webhook_spool_entries"),
            bytes_gauge: metrics::gauge!("webhook_spool_bytes"),
        };
        std::thread::Builder::new()
            .name("webhook-spool".into())
            .spawn(move || writer.run(&receiver))?;
        Ok(Arc::new(Self {
            dir,
            options,
            state,
            used,
            dead_bytes,
            next_seq: AtomicU64::new(max_seq + 1),
            writer: Mutex::new(sender),
        }))
    }

    /// The spool directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Pending entries, and the bytes the segment files and dead letters take.
    pub fn usage(&self) -> (usize, u64) {
        let entries = lock(&self.state).live.len();
        (entries, self.used.load(Ordering::Relaxed))
    }

    fn send(&self, op: Op) -> Result<(), SpoolError> {
        let sender = match self.writer.lock() {
            Ok(sender) => sender,
            Err(poisoned) => poisoned.into_inner(),
        };
        sender.send(op).map_err(|_| SpoolError::Closed)
    }

    /// Write a request durably (returns after the group's `fdatasync`). `targets` has bit i
    /// set for each destination index that is to receive it.
    pub(crate) async fn append(
        &self,
        delivery: Delivery,
        targets: u32,
    ) -> Result<Arc<EntryRecord>, SpoolError> {
        let entry = EntryRecord {
            seq: 0,
            targets,
            done: 0,
            attempts: Vec::new(),
            delivery,
        };
        self.write_entry(entry, true).await
    }

    /// Spool a dead letter's entry again for a replay (a new sequence number, nothing done
    /// yet). Not refused by the quota: the dead letter it comes from is deleted right after,
    /// so this never grows what is stored, and a spool filled with dead letters can always
    /// be emptied by replaying them.
    pub(crate) async fn respool(
        &self,
        mut entry: EntryRecord,
    ) -> Result<Arc<EntryRecord>, SpoolError> {
        entry.done = 0;
        entry.attempts.clear();
        self.write_entry(entry, false).await
    }

    async fn write_entry(
        &self,
        mut entry: EntryRecord,
        within_quota: bool,
    ) -> Result<Arc<EntryRecord>, SpoolError> {
        entry.seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let bytes = record::encode_entry(&entry);
        let len = bytes.len() as u64;
        let max = self.options.max_bytes;
        let before = self.used.fetch_add(len, Ordering::AcqRel);
        if within_quota && before + len > max {
            release(&self.used, len);
            return Err(SpoolError::Full { used: before, max });
        }
        let entry = Arc::new(entry);
        let (reply, answer) = oneshot::channel();
        let sent = self.send(Op::Write {
            bytes,
            entry: Some(Arc::clone(&entry)),
            reply: Some(reply),
        });
        let result = match sent {
            Ok(()) => answer
                .await
                .map_err(|_| SpoolError::Closed)
                .and_then(|r| r.map_err(SpoolError::Io)),
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            release(&self.used, len);
            return Err(err);
        }
        Ok(entry)
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

    fn dead_dir(&self) -> PathBuf {
        self.dir.join("dead")
    }

    /// Keep `entry` for destination `destination` as a dead letter (written atomically and
    /// synced). Blocking.
    pub(crate) fn write_dead_letter(
        &self,
        entry: &EntryRecord,
        destination: u8,
        module: &str,
        attempts: u32,
        error: &str,
    ) -> Result<DeadLetter, SpoolError> {
        let id = format!("{}-{destination}", entry.delivery.request_id.hyphenated());
        let letter = DeadLetter {
            id: id.clone(),
            webhook: entry.delivery.webhook_id.to_string(),
            request_id: entry.delivery.request_id.hyphenated().to_string(),
            destination,
            module: module.to_owned(),
            attempts,
            error: error.to_owned(),
            received_at: rfc3339(entry.delivery.received_at),
            dead_at: rfc3339(SystemTime::now()),
            body_bytes: entry.delivery.body.len(),
        };
        let mut single = entry.clone();
        single.targets = 1 << destination;
        single.done = 0;
        single.attempts = vec![0; usize::from(destination) + 1];
        let meta = serde_json::to_vec(&letter).map_err(io::Error::other)?;
        let mut bytes = record::encode_raw(&meta);
        bytes.extend_from_slice(&record::encode_entry(&single));
        record::stamp(&mut bytes, 0);
        let dead = self.dead_dir();
        let tmp = dead.join(format!(".{id}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        let path = dead.join(format!("{id}.dead"));
        // A dead letter written again for the same id (a replay that failed again)
        // replaces the earlier file: count only the difference.
        let replaced = fs::metadata(&path).map_or(0, |m| m.len());
        fs::rename(&tmp, &path)?;
        sync_dir(&dead)?;
        // Counted even past the quota: the entry it comes from frees its own space in the
        // segments, and a dead letter is never dropped for want of room.
        let len = bytes.len() as u64;
        self.used.fetch_add(len, Ordering::AcqRel);
        self.dead_bytes.fetch_add(len, Ordering::AcqRel);
        release(&self.used, replaced);
        release(&self.dead_bytes, replaced);
        self.report_bytes();
        Ok(letter)
    }

    /// The dead letters, oldest first. Blocking.
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, SpoolError> {
        let mut list = Vec::new();
        for dirent in fs::read_dir(self.dead_dir())? {
            let path = dirent?.path();
            if path.extension().is_none_or(|e| e != "dead") {
                continue;
            }
            if let Ok((letter, _)) = read_dead_letter(&path) {
                list.push(letter);
            }
        }
        list.sort_by(|a, b| (&a.dead_at, &a.id).cmp(&(&b.dead_at, &b.id)));
        Ok(list)
    }

    /// Read dead letter `id` for a replay. Blocking.
    pub(crate) fn read_dead_letter(
        &self,
        id: &str,
    ) -> Result<(DeadLetter, EntryRecord), SpoolError> {
        read_dead_letter(&self.dead_letter_path(id)?)
    }

    /// The file of dead letter `id`; `NoDeadLetter` when there is none (or the id is not
    /// one we make, so no path outside the directory can be named).
    fn dead_letter_path(&self, id: &str) -> Result<PathBuf, SpoolError> {
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(SpoolError::NoDeadLetter(id.to_owned()));
        }
        let path = self.dead_dir().join(format!("{id}.dead"));
        if !path.exists() {
            return Err(SpoolError::NoDeadLetter(id.to_owned()));
        }
        Ok(path)
    }

    /// Delete dead letter `id` (after it was re-spooled, or for good): its bytes leave the
    /// quota. Blocking.
    pub(crate) fn remove_dead_letter(&self, id: &str) -> Result<(), SpoolError> {
        self.remove_dead_letter_file(&self.dead_letter_path(id)?)
    }

    fn remove_dead_letter_file(&self, path: &Path) -> Result<(), SpoolError> {
        let len = fs::metadata(path)?.len();
        fs::remove_file(path)?;
        release(&self.used, len);
        release(&self.dead_bytes, len);
        self.report_bytes();
        Ok(())
    }

    /// `webhook_spool_bytes` now (the writer sets it after each group).
    fn report_bytes(&self) {
        metrics::gauge!("webhook_spool_bytes").set(self.used.load(Ordering::Relaxed) as f64);
    }

    /// Drop dead letter `id` without delivering it; returns what it was. Blocking.
    pub fn delete_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        let path = self.dead_letter_path(id)?;
        let (letter, _) = read_dead_letter(&path)?;
        self.remove_dead_letter_file(&path)?;
        tracing::warn!(id, webhook = %letter.webhook, request_id = %letter.request_id, "dead letter deleted");
        Ok(letter)
    }
}

/// Bytes the dead letters in `dead` take (what a restart finds).
fn dead_letter_bytes(dead: &Path) -> io::Result<u64> {
    let mut total = 0;
    for dirent in fs::read_dir(dead)? {
        let dirent = dirent?;
        if dirent.path().extension().is_some_and(|e| e == "dead") {
            total += dirent.metadata()?.len();
        }
    }
    Ok(total)
}

fn read_dead_letter(path: &Path) -> Result<(DeadLetter, EntryRecord), SpoolError> {
    let bytes = fs::read(path)?;
    let broken = || SpoolError::Io(io::Error::other(format!("{} is damaged", path.display())));
    let (meta, used) = record::decode_frame(&bytes, 0).map_err(|_| broken())?;
    let letter: DeadLetter = serde_json::from_slice(meta).map_err(|_| broken())?;
    let rest = bytes.get(used..).ok_or_else(broken)?;
    match record::decode(rest, 0) {
        Ok((Record::Entry(entry), _)) => Ok((letter, entry)),
        _ => Err(broken()),
    }
}

fn rfc3339(time: SystemTime) -> String {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    jiff::Timestamp::from_millisecond(millis).map_or_else(|_| millis.to_string(), |t| t.to_string())
}

fn apply(recovered: &mut BTreeMap<u64, Pending>, max_seq: &mut u64, record: Record) {
    match record {
        Record::Entry(entry) => {
            *max_seq = (*max_seq).max(entry.seq);
            let seq = entry.seq;
            let (done, attempts) = (entry.done, entry.attempts.clone());
            match recovered.get_mut(&seq) {
                // A copy carried forward: keep the progress of both.
                Some(known) => {
                    known.done |= done;
                    if known.attempts.len() < attempts.len() {
                        known.attempts.resize(attempts.len(), 0);
                    }
                    for (k, a) in known.attempts.iter_mut().zip(attempts) {
                        *k = (*k).max(a);
                    }
                }
                None => {
                    recovered.insert(
                        seq,
                        Pending {
                            entry: Arc::new(entry),
                            done,
                            attempts,
                        },
                    );
                }
            }
        }
        Record::Done { seq, destination } => {
            if let Some(p) = recovered.get_mut(&seq) {
                p.done |= 1u32.checked_shl(u32::from(destination)).unwrap_or(0);
            }
        }
        Record::Attempt {
            seq,
            destination,
            attempts,
        } => {
            if let Some(p) = recovered.get_mut(&seq) {
                let index = usize::from(destination);
                if p.attempts.len() <= index {
                    p.attempts.resize(index + 1, 0);
                }
                p.attempts[index] = p.attempts[index].max(attempts);
            }
        }
        Record::Padding => {}
    }
}

/// The thread that owns the segment files.
struct Writer {
    dir: PathBuf,
    file: File,
    /// `file` was opened for direct I/O (see [`open_segment`]).
    direct: bool,
    /// The aligned copy of a group for direct writes.
    scratch: Vec<u8>,
    /// Where the next frame goes in `file`.
    end: End,
    /// Segments to delete, to the unlink thread.
    janitor: mpsc::Sender<PathBuf>,
    state: Arc<Mutex<State>>,
    used: Arc<AtomicU64>,
    dead_bytes: Arc<AtomicU64>,
    segment_bytes: u64,
    max_bytes: u64,
    /// Held until the last queued record is written: the directory stays ours till then.
    _lock: File,
    entries_gauge: metrics::Gauge,
    bytes_gauge: metrics::Gauge,
}

impl Writer {
    fn run(mut self, receiver: &mpsc::Receiver<Op>) {
        let mut batch = Vec::new();
        loop {
            match receiver.recv_timeout(IDLE_FLUSH) {
                Ok(first) => batch.push(first),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // written out before the directory is let go
                    self.write_group(&mut batch);
                    return;
                }
            }
            // Everything that queued up while the last sync ran goes into this group.
            while let Ok(op) = receiver.try_recv() {
                batch.push(op);
                if batch.len() >= 4096 {
                    break;
                }
            }
            self.write_group(&mut batch);
            batch.clear();
        }
    }

    fn write_group(&mut self, batch: &mut [Op]) {
        let mut reclaim = false;
        let mut rotate = false;
        let mut buffer = Vec::new();
        let mut sync = false;
        {
            let mut state = lock(&self.state);
            let active = state.active;
            if state
                .segments
                .get(&active)
                .is_some_and(|s| s.bytes >= self.segment_bytes)
            {
                rotate = true;
            }
            buffer.append(&mut state.unwritten);
        }
        for op in batch.iter() {
            match op {
                Op::Write { bytes, reply, .. } => {
                    buffer.extend_from_slice(bytes);
                    sync |= reply.is_some();
                }
                Op::Reclaim => reclaim = true,
            }
        }
        let written = self.append(&mut buffer, sync);
        if written.is_ok() {
            let mut guard = lock(&self.state);
            let state = &mut *guard;
            let active = state.active;
            let (mut added, mut added_bytes) = (0, 0);
            for op in batch.iter() {
                if let Op::Write {
                    bytes,
                    entry: Some(entry),
                    ..
                } = op
                {
                    let len = bytes.len() as u64;
                    added += 1;
                    added_bytes += len;
                    state.live.insert(
                        entry.seq,
                        Live {
                            entry: Arc::clone(entry),
                            segment: active,
                            bytes: len,
                            done: 0,
                            attempts: Vec::new(),
                        },
                    );
                }
            }
            if let Some(s) = state.segments.get_mut(&active) {
                s.bytes += buffer.len() as u64;
                s.live += added;
                s.live_bytes += added_bytes;
            }
            // entries were counted in `used` when reserved; the rest is counted now
            let used = self
                .used
                .fetch_add(buffer.len() as u64 - added_bytes, Ordering::AcqRel);
            self.entries_gauge.set(state.live.len() as f64);
            self.bytes_gauge.set(used as f64);
        }
        for op in batch.iter_mut() {
            if let Op::Write { reply, .. } = op
                && let Some(reply) = reply.take()
            {
                let _ = reply.send(match &written {
                    Ok(()) => Ok(()),
                    Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
                });
            }
        }
        if rotate || self.under_pressure() {
            if let Err(err) = self.rotate() {
                tracing::error!(error = %err, "spool: cannot start a new segment");
            }
            reclaim = true;
        }
        if reclaim && let Err(err) = self.reclaim() {
            tracing::error!(error = %err, "spool: cannot reclaim old segments");
        }
    }

    /// Over half the quota used by segments and the active segment holds nothing pending: start a new
    /// one so the old can be deleted.
    fn under_pressure(&self) -> bool {
        let state = lock(&self.state);
        let segments = self
            .used
            .load(Ordering::Relaxed)
            .saturating_sub(self.dead_bytes.load(Ordering::Relaxed));
        segments > self.max_bytes / 2
            && state
                .segments
                .get(&state.active)
                .is_some_and(|s| s.live == 0 && s.bytes > 0)
    }

    /// Write `buffer` (sealed frames) at the end of the active segment, stamped with its
    /// id (see [`write_frames`]). On failure the end stays, so the next group overwrites
    /// whatever part of this one reached the file: no partial frame stays in front of later
    /// ones.
    fn append(&mut self, buffer: &mut [u8], sync: bool) -> io::Result<()> {
        if buffer.is_empty() {
            return Ok(());
        }
        let active = lock(&self.state).active;
        write_frames(
            &self.file,
            self.direct,
            &mut self.scratch,
            &mut self.end,
            buffer,
            active,
            sync,
        )
    }

    fn rotate(&mut self) -> io::Result<()> {
        let next = lock(&self.state).active + 1;
        self.file.sync_data()?;
        let spare = self.dir.join(SPARE);
        let (file, direct) = open_segment(
            &segment_path(&self.dir, next),
            spare.exists().then_some(spare.as_path()),
            self.direct,
        )?;
        sync_dir(&self.dir)?;
        self.file = file;
        self.direct = direct;
        self.end = End::default();
        let mut state = lock(&self.state);
        state.active = next;
        state.segments.insert(next, Segment::default());
        Ok(())
    }

    /// Delete old segments with nothing pending, oldest first (a later segment may hold the
    /// `done` records of an older one's entries, so order matters); carry the few pending
    /// entries of a mostly-finished oldest segment forward first.
    fn reclaim(&mut self) -> io::Result<()> {
        loop {
            let mut state = lock(&self.state);
            let active = state.active;
            let Some((&oldest, segment)) = state.segments.iter().next() else {
                return Ok(());
            };
            if oldest == active {
                return Ok(());
            }
            if segment.live > 0 {
                if segment.live_bytes.saturating_mul(4) > self.segment_bytes {
                    return Ok(());
                }
                // carry forward
                let mut buffer = Vec::new();
                let mut moved = Vec::new();
                for (seq, live) in state.live.iter().filter(|(_, l)| l.segment == oldest) {
                    let mut entry = (*live.entry).clone();
                    entry.done = live.done;
                    entry.attempts.clone_from(&live.attempts);
                    let bytes = record::encode_entry(&entry);
                    moved.push((*seq, bytes.len() as u64));
                    buffer.extend_from_slice(&bytes);
                }
                drop(state);
                self.append(&mut buffer, true)?;
                state = lock(&self.state);
                let added: u64 = moved.iter().map(|(_, len)| len).sum();
                self.used.fetch_add(added, Ordering::AcqRel);
                let (mut still_live, mut live_bytes) = (0, 0);
                for (seq, len) in &moved {
                    // it may have finished while the copy was written
                    if let Some(live) = state.live.get_mut(seq) {
                        live.segment = active;
                        live.bytes = *len;
                        still_live += 1;
                        live_bytes += len;
                    }
                }
                if let Some(s) = state.segments.get_mut(&active) {
                    s.bytes += added;
                    s.live += still_live;
                    s.live_bytes += live_bytes;
                }
            }
            let freed = state.segments.remove(&oldest).map_or(0, |s| s.bytes);
            release(&self.used, freed);
            drop(state);
            let path = segment_path(&self.dir, oldest);
            let spare = self.dir.join(SPARE);
            if spare.exists() {
                let _ = self.janitor.send(path);
            } else {
                // Keep it to be overwritten as a later segment: its blocks are allocated, so
                // syncs into it do not journal new extents. Stale frames in it fail their
                // checksum (bound to the old segment id).
                fs::rename(path, spare)?;
            }
        }
    }
}

#[cfg(test)]
mod tests;
