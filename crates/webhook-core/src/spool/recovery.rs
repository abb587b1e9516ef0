//! Opening a spool: take the directory's lock, read every segment back (a torn frame at a
//! tail ends that segment's records), rewrite what is pending into a fresh segment, delete
//! the old ones and start the writer.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::dead_letters::dead_letter_bytes;
use super::record::{self, Record};
use super::writer::{End, Writer, open_segment, write_frames};
use super::*;

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
