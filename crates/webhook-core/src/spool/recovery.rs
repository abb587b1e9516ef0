//! Opening a spool: take the directory's lock, read every segment back in place (a torn
//! frame at a tail ends that segment's records; damage inside is skipped past, see
//! `scan.rs`), start a fresh segment after them and the writer, which then reclaims the old
//! segments whose entries are all done. Nothing is rewritten, so a spool on a full disk
//! opens.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::dead_letters::dead_letter_bytes;
use super::record::Record;
use super::scan;
use super::writer::{End, Scratch, Writer, open_segment};
use super::*;

impl Spool {
    /// Open (or create) the spool in `options.dir`: take its lock, recover every complete
    /// record (skipping torn ones), rewrite what is pending into a fresh segment and start
    /// the writer. Blocking: call it before serving or from `spawn_blocking`.
    pub fn open(options: SpoolOptions) -> Result<Arc<Self>, SpoolError> {
        let mut options = options;
        options.segment_bytes = options.segment_bytes.min(options.max_bytes / 8).max(4096);
        let dir = options.dir.clone();
        private_dir(&dir)?;
        private_dir(&dir.join("dead"))?;
        let lock_file = private_file()
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
        // Read every segment back, in place: nothing is rewritten, so opening needs no free
        // space; what is done is reclaimed by the writer right after (oldest first).
        let mut recovered: BTreeMap<u64, Pending> = BTreeMap::new();
        let mut located: HashMap<u64, (u64, u64)> = HashMap::new();
        let mut segments: BTreeMap<u64, Segment> = BTreeMap::new();
        let mut max_seq = 0;
        let mut corrupt_bytes = 0;
        for &id in &ids {
            let path = segment_path(&dir, id);
            let bytes = fs::read(&path)?;
            // written by an older version with the umask's mode: tighten
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
            let report = scan::scan_segment(&bytes, id as u32, |record, _, len| {
                if let Record::Entry(entry) = &record {
                    // the latest copy of an entry is where it lives
                    located.insert(entry.seq, (id, len as u64));
                }
                apply(&mut recovered, &mut max_seq, record);
            });
            if !report.damaged.is_empty() {
                corrupt_bytes += report.damaged_bytes();
                tracing::error!(
                    segment = %path.display(),
                    damaged = ?report.damaged,
                    damaged_bytes = report.damaged_bytes(),
                    "spool: damaged records inside a segment (not a torn write): every valid record after them is kept; the segment goes to corrupt/ once nothing in it is pending"
                );
            }
            if let Some(offset) = report.torn_from {
                tracing::warn!(
                    segment = %path.display(),
                    offset,
                    skipped_bytes = bytes.len() - offset,
                    "spool: incomplete record at the tail skipped (torn write)"
                );
            }
            segments.insert(
                id,
                Segment {
                    bytes: bytes.len() as u64,
                    damaged: !report.damaged.is_empty(),
                    ..Segment::default()
                },
            );
        }
        recovered.retain(|_, p| p.done & p.entry.targets != p.entry.targets);

        let mut live = HashMap::with_capacity(recovered.len());
        let shares = Arc::new(shares::Shares::new(
            options.max_bytes / 100 * u64::from(options.webhook_share_percent.clamp(1, 100)),
        ));
        for (seq, pending) in recovered {
            let Some(&(segment, bytes)) = located.get(&seq) else {
                continue;
            };
            if let Some(s) = segments.get_mut(&segment) {
                s.live += 1;
                s.live_bytes += bytes;
            }
            shares.charge(&pending.entry.delivery.webhook_id, bytes);
            live.insert(
                seq,
                Live {
                    entry: pending.entry,
                    segment,
                    bytes,
                    charged: bytes,
                    done: pending.done,
                    attempts: pending.attempts,
                },
            );
        }

        // Free what is done first, oldest first (a later segment may hold the `done`
        // records of an older one's entries): no free space is needed to open.
        let spare = dir.join(SPARE);
        while let Some((&oldest, segment)) = segments.iter().next() {
            if segment.live > 0 {
                break;
            }
            let path = segment_path(&dir, oldest);
            if segment.damaged {
                let corrupt = dir.join(CORRUPT);
                private_dir(&corrupt)?;
                fs::rename(&path, corrupt.join(format!("{oldest:016x}.seg")))?;
            } else if spare.exists() {
                fs::remove_file(&path)?;
            } else {
                fs::rename(&path, &spare)?;
            }
            segments.remove(&oldest);
        }

        // New records go to a fresh segment after the old ones (made from the spare file
        // when there is one: no new space needed).
        let active = ids.last().map_or(1, |last| last + 1);
        let path = segment_path(&dir, active);
        let (file, direct) = open_segment(
            &path,
            spare.exists().then_some(spare.as_path()),
            options.direct_io,
        )?;
        sync_dir(&dir)?;
        segments.insert(active, Segment::default());
        let segment_bytes: u64 = segments.values().map(|s| s.bytes).sum();
        let state = State {
            unwritten: Vec::new(),
            active,
            segments,
            live,
        };
        let scratch = Scratch::default();
        let end = End::default();
        let dead_bytes = Arc::new(AtomicU64::new(dead_letter_bytes(&dir.join("dead"))?));
        let used = Arc::new(AtomicU64::new(
            segment_bytes + dead_bytes.load(Ordering::Relaxed),
        ));
        let corrupt_counter = metrics::counter!("webhook_spool_corrupt_bytes");
        corrupt_counter.increment(corrupt_bytes);
        metrics::gauge!("webhook_spool_entries").set(state.live.len() as f64);
        metrics::gauge!("webhook_spool_bytes").set(used.load(Ordering::Relaxed) as f64);
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
            starved: false,
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
            shares,
            next_seq: AtomicU64::new(max_seq + 1),
            writer: Mutex::new(sender),
        }))
    }
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
