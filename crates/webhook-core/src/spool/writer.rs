//! The writer thread: it owns the segment files, writes every frame queued while the
//! previous write ran as one group (one `O_DIRECT | O_DSYNC` write, or buffered +
//! `fdatasync`), answers the group's waiters, rotates segments and reclaims finished ones.

use std::fs::{self, File};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use super::record;
use super::*;

/// Alignment of direct writes: each group is padded to a multiple of it.
pub(super) const BLOCK: usize = 4096;

/// Open segment `path` (made from the `spare` file when there is one) for writing: with
/// `O_DIRECT | O_DSYNC` when `direct` and the file system takes it (each group is then one
/// write, durable when it returns, with no page-cache copy and no read-modify-write of
/// partly written pages), else buffered. The second value tells which.
pub(super) fn open_segment(
    path: &Path,
    spare: Option<&Path>,
    direct: bool,
) -> io::Result<(File, bool)> {
    if let Some(spare) = spare {
        fs::rename(spare, path)?;
    }
    let mut options = private_file();
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
pub(super) struct End {
    /// Where the next frame goes.
    pub(super) offset: u64,
    /// Direct I/O: the bytes from the last block boundary up to `offset`. The next group is
    /// written from that boundary, these bytes (unchanged) in front of its frames, so the
    /// padding after a group takes no space: the next group overwrites it.
    pub(super) partial: Vec<u8>,
}

/// The block-aligned buffer a direct write is put together in. It stays allocated and
/// initialised between groups; only what a group's padding needs is zeroed again.
#[derive(Debug, Default)]
pub(super) struct Scratch {
    bytes: Vec<u8>,
    /// Where the aligned part of `bytes` starts.
    start: usize,
    /// Every byte of `bytes` from here on is zero.
    zero_from: usize,
}

impl Scratch {
    /// Put `partial`, `frames` and the padding frame (stamped with `segment`) up to
    /// [`BLOCK`] together at an aligned address; the aligned bytes to write.
    fn group(&mut self, partial: &[u8], frames: &[u8], segment: u32) -> io::Result<&[u8]> {
        let logical = partial.len() + frames.len();
        // room for the alignment, the group and its padding (at most a block and a header)
        let needed = BLOCK + logical + BLOCK + 2 * record::FRAME_HEADER;
        if self.bytes.len() < needed {
            self.bytes = vec![0; needed.next_power_of_two()];
            self.start = self.bytes.as_ptr().align_offset(BLOCK);
            self.zero_from = 0;
            if self.start >= BLOCK {
                return Err(io::Error::other("cannot align the write buffer"));
            }
        }
        let start = self.start;
        let frames_at = start + partial.len();
        let group_end = frames_at + frames.len();
        let out_of_room = || io::Error::other("the write buffer is too small");
        self.bytes
            .get_mut(start..frames_at)
            .ok_or_else(out_of_room)?
            .copy_from_slice(partial);
        self.bytes
            .get_mut(frames_at..group_end)
            .ok_or_else(out_of_room)?
            .copy_from_slice(frames);
        let mut end = group_end;
        let mut nonzero_to = group_end;
        if let Some((head, gap)) = record::padding(logical, BLOCK, segment) {
            let head_end = group_end + head.len();
            end = group_end + gap;
            self.bytes
                .get_mut(group_end..head_end)
                .ok_or_else(out_of_room)?
                .copy_from_slice(&head);
            // zeros after the header: only where an earlier, longer group left bytes
            if self.zero_from > head_end {
                self.bytes
                    .get_mut(head_end..self.zero_from.min(end))
                    .ok_or_else(out_of_room)?
                    .fill(0);
            }
            nonzero_to = head_end;
        }
        self.zero_from = if self.zero_from > end {
            self.zero_from
        } else {
            nonzero_to
        };
        self.bytes.get(start..end).ok_or_else(out_of_room)
    }
}

/// Write sealed `frames` at `end` of segment `segment`'s `file`, stamped with the segment,
/// and move `end` past them. Direct: one aligned write of `end.partial` + frames + a padding
/// frame up to [`BLOCK`], put together in `scratch`, durable when it returns. Buffered:
/// synced when `sync`. On failure `end` stays: the next group overwrites what reached the
/// file.
pub(super) fn write_frames(
    file: &File,
    direct: bool,
    scratch: &mut Scratch,
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
    let start = end.offset - end.partial.len() as u64;
    let group = scratch.group(&end.partial, frames, segment as u32)?;
    file.write_all_at(group, start)
        .map_err(|err| match err.raw_os_error() {
            // opened with O_DIRECT, yet the file system refuses the write itself
            Some(libc::EINVAL) => io::Error::other(format!(
                "direct write refused ({err}); start the server with --spool-sync fdatasync"
            )),
            _ => err,
        })?;
    end.offset += frames.len() as u64;
    let keep = logical % BLOCK;
    let tail = group.get(logical - keep..logical).unwrap_or_default();
    end.partial.clear();
    end.partial.extend_from_slice(tail);
    Ok(())
}

/// The thread that owns the segment files.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) file: File,
    /// `file` was opened for direct I/O (see [`open_segment`]).
    pub(super) direct: bool,
    /// The aligned copy of a group for direct writes.
    pub(super) scratch: Scratch,
    /// Where the next frame goes in `file`.
    pub(super) end: End,
    /// Segments to delete, to the unlink thread.
    pub(super) janitor: mpsc::Sender<PathBuf>,
    pub(super) state: Arc<Mutex<State>>,
    pub(super) used: Arc<AtomicU64>,
    pub(super) dead_bytes: Arc<AtomicU64>,
    pub(super) segment_bytes: u64,
    pub(super) max_bytes: u64,
    /// Held until the last queued record is written: the directory stays ours till then.
    pub(super) _lock: File,
    /// The last write failed for want of space: finished segments are deleted rather than
    /// kept as the spare, and an active segment with nothing pending is closed so it can go.
    pub(super) starved: bool,
    pub(super) entries_gauge: metrics::Gauge,
    pub(super) bytes_gauge: metrics::Gauge,
}

impl Writer {
    pub(super) fn run(mut self, receiver: &mpsc::Receiver<Op>) {
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
            // Let the request handlers that woke this thread run on first: on a single
            // core the writer would otherwise preempt them after every entry and write
            // groups of one (BENCHMARKS.md, issue 19). Elsewhere this returns at once.
            std::thread::yield_now();
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
                            charged: len,
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
            self.used
                .fetch_add(buffer.len() as u64 - added_bytes, Ordering::AcqRel);
        }
        self.starved = match &written {
            Ok(()) => false,
            Err(err) => {
                matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) || self.starved
            }
        };
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
        if rotate || self.under_pressure() || (self.starved && self.active_idle()) {
            if let Err(err) = self.rotate() {
                tracing::error!(error = %err, "spool: cannot start a new segment");
            }
            reclaim = true;
        }
        if reclaim && let Err(err) = self.reclaim() {
            tracing::error!(error = %err, "spool: cannot reclaim old segments");
        }
        let state = lock(&self.state);
        self.entries_gauge.set(state.live.len() as f64);
        self.bytes_gauge
            .set(self.used.load(Ordering::Relaxed) as f64);
    }

    /// The active segment has bytes but nothing pending.
    fn active_idle(&self) -> bool {
        let state = lock(&self.state);
        state
            .segments
            .get(&state.active)
            .is_some_and(|s| s.live == 0 && s.bytes > 0)
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
            let (freed, damaged) = state
                .segments
                .remove(&oldest)
                .map_or((0, false), |s| (s.bytes, s.damaged));
            release(&self.used, freed);
            drop(state);
            let path = segment_path(&self.dir, oldest);
            let spare = self.dir.join(SPARE);
            if damaged {
                // evidence for the operator: never overwritten
                let corrupt = self.dir.join(CORRUPT);
                private_dir(&corrupt)?;
                let kept = corrupt.join(format!("{oldest:016x}.seg"));
                fs::rename(&path, &kept)?;
                tracing::error!(path = %kept.display(), "spool: damaged segment moved aside");
            } else if self.starved {
                // space first: nothing kept for later
                fs::remove_file(&path)?;
                if spare.exists() {
                    fs::remove_file(&spare)?;
                }
            } else if spare.exists() {
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
mod tests {
    use super::*;

    /// Groups of changing sizes in one buffer: each comes out aligned, block-sized, with
    /// its bytes in front and a padding frame that reads back (its checksum covers the
    /// zeros, so a byte left over from a longer earlier group fails it).
    #[test]
    fn each_group_is_its_bytes_then_a_valid_padding_frame() {
        let mut scratch = Scratch::default();
        for (round, len) in [3000, 100, 5000, 50, 4087, 4088, 9000, 1, 4096, 200]
            .into_iter()
            .enumerate()
        {
            let partial = vec![0xAB; round * 37 % 300];
            let frames = vec![0xCD; len];
            let group = scratch
                .group(&partial, &frames, 7)
                .unwrap_or_default()
                .to_vec();
            let logical = partial.len() + frames.len();
            assert_eq!(group.len() % BLOCK, 0, "{len}");
            assert_eq!(&group[..partial.len()], &partial[..]);
            assert_eq!(&group[partial.len()..logical], &frames[..]);
            if group.len() > logical {
                let (record, used) = record::decode(&group[logical..], 7).unwrap_or_else(|err| {
                    panic!("round {round} ({len} bytes): padding does not read back: {err:?}")
                });
                assert!(matches!(record, record::Record::Padding));
                assert_eq!(logical + used, group.len());
            }
        }
    }
}
