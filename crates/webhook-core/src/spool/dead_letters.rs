//! Dead letters: deliveries given up, one file each under `dead/` (a metadata frame and the
//! entry frame, written atomically and synced), until an operator replays or deletes them.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::record::{self, EntryRecord, Record};
use super::*;

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
    /// The file cannot be read back (a damaged disk): listed so it can be deleted; it
    /// cannot be replayed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub damaged: bool,
}

impl DeadLetter {
    /// The dead letter of `entry` given up for destination `destination`, now.
    pub(crate) fn of(
        entry: &EntryRecord,
        destination: u8,
        module: &str,
        attempts: u32,
        error: &str,
    ) -> Self {
        Self {
            id: format!("{}-{destination}", entry.delivery.request_id.hyphenated()),
            webhook: entry.delivery.webhook_id.to_string(),
            request_id: entry.delivery.request_id.hyphenated().to_string(),
            destination,
            module: module.to_owned(),
            attempts,
            error: error.to_owned(),
            received_at: rfc3339(entry.delivery.received_at),
            dead_at: rfc3339(SystemTime::now()),
            body_bytes: entry.delivery.body.len(),
            damaged: false,
        }
    }

    /// What is known of a dead letter whose file is damaged: its id.
    fn damaged(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            webhook: String::new(),
            request_id: String::new(),
            destination: 0,
            module: String::new(),
            attempts: 0,
            error: "the dead letter's file is damaged".to_owned(),
            received_at: String::new(),
            dead_at: String::new(),
            body_bytes: 0,
            damaged: true,
        }
    }
}

impl Spool {
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
        let letter = DeadLetter::of(entry, destination, module, attempts, error);
        let id = letter.id.clone();
        let single = letter_entry(entry, destination);
        let meta = serde_json::to_vec(&letter).map_err(io::Error::other)?;
        let mut bytes = record::encode_raw(&meta);
        bytes.extend_from_slice(&record::encode_entry(&single));
        record::stamp(&mut bytes, 0);
        let dead = self.dead_dir();
        let path = dead.join(format!("{id}.dead"));
        let max = self.options.dead_letter_max_bytes;
        let used = self.dead_bytes.load(Ordering::Acquire);
        let replacing = fs::metadata(&path).map_or(0, |m| m.len());
        if used.saturating_sub(replacing) + bytes.len() as u64 > max {
            // the entry stays pending in the spool (charged to its webhook's share)
            return Err(SpoolError::DeadLettersFull { used, max });
        }
        let tmp = dead.join(format!(".{id}.tmp"));
        let mut file = private_file()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        // A dead letter written again for the same id (a replay that failed again)
        // replaces the earlier file: count only the difference.
        let replaced = fs::metadata(&path).map_or(0, |m| m.len());
        fs::rename(&tmp, &path)?;
        sync_dir(&dead)?;
        // Dead letters have a quota of their own (checked above): they never make the
        // pending entries' quota refuse a new webhook.
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
            match read_dead_letter(&path) {
                Ok((letter, _)) => list.push(letter),
                Err(_) => {
                    let id = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    list.push(DeadLetter::damaged(id));
                }
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
    /// A damaged one is deleted too (it could never be replayed).
    pub fn delete_dead_letter(&self, id: &str) -> Result<DeadLetter, SpoolError> {
        let path = self.dead_letter_path(id)?;
        let letter = read_dead_letter(&path).map_or_else(|_| DeadLetter::damaged(id), |(l, _)| l);
        self.remove_dead_letter_file(&path)?;
        tracing::warn!(id, webhook = %letter.webhook, request_id = %letter.request_id, "dead letter deleted");
        Ok(letter)
    }
}

impl Spool {
    /// `dead_letter_ttl` of the options.
    pub(crate) fn dead_letter_ttl(&self) -> Option<std::time::Duration> {
        self.options.dead_letter_ttl
    }

    /// Delete the dead letters older than `ttl` (by their file's time); how many. Blocking.
    pub(crate) fn expire_dead_letters(&self, ttl: std::time::Duration) -> usize {
        let Ok(entries) = fs::read_dir(self.dead_dir()) else {
            return 0;
        };
        let mut expired = 0;
        for dirent in entries.flatten() {
            let path = dirent.path();
            let old = dirent
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > ttl);
            if path.extension().is_some_and(|e| e == "dead")
                && old
                && self.remove_dead_letter_file(&path).is_ok()
            {
                expired += 1;
            }
        }
        if expired > 0 {
            tracing::warn!(expired, ttl = ?ttl, "dead letters past their time to live deleted");
        }
        expired
    }
}

/// The entry a dead letter keeps: `entry` for its one destination, nothing done yet.
pub(crate) fn letter_entry(entry: &EntryRecord, destination: u8) -> EntryRecord {
    let mut single = entry.clone();
    single.targets = 1 << destination;
    single.done = 0;
    single.attempts = vec![0; usize::from(destination) + 1];
    single
}

/// Bytes the dead letters in `dead` take (what a restart finds).
pub(super) fn dead_letter_bytes(dead: &Path) -> io::Result<u64> {
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
    jiff::Timestamp::from_millisecond(millis)
        .map_or_else(|_| millis.to_string(), |t| format!("{t:.3}"))
}
