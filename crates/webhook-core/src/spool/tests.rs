use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use uuid::Uuid;

use super::*;
use crate::DataType;
use record::Record;
use std::fs;
use std::time::SystemTime;
use writer::BLOCK;

fn options(dir: &Path) -> SpoolOptions {
    options_in(dir, true)
}

/// Small segments; `direct`: direct I/O, else buffered writes + fdatasync.
fn options_in(dir: &Path, direct: bool) -> SpoolOptions {
    SpoolOptions {
        dir: dir.to_path_buf(),
        max_bytes: 1 << 20,
        segment_bytes: 16 << 10,
        direct_io: direct,
        // one test webhook may fill it all (shares have a test of their own)
        webhook_share_percent: 100,
        dead_letter_max_bytes: 1 << 30,
        dead_letter_ttl: None,
    }
}

/// Open again once the previous writer thread let go of the directory.
fn reopen(options: &SpoolOptions) -> Arc<Spool> {
    for _ in 0..200 {
        match Spool::open(options.clone()) {
            Err(SpoolError::Locked(_)) => std::thread::sleep(Duration::from_millis(10)),
            other => return other.unwrap(),
        }
    }
    panic!("spool still locked")
}

/// Append `body` for `targets` with `headers`; the spool may refuse it.
async fn append(
    spool: &Spool,
    body: &str,
    targets: u32,
    headers: HeaderMap,
) -> Result<Arc<EntryRecord>, SpoolError> {
    let delivery = Delivery {
        webhook_id: Arc::from("hook"),
        request_id: Uuid::now_v7(),
        headers: Arc::new(headers),
        query: None,
        body: Bytes::copy_from_slice(body.as_bytes()),
        received_at: SystemTime::now(),
        data_type: DataType::Blob,
    };
    spool.append(delivery, targets)?.wait().await
}

/// Append `body` (also in an `x-test` header) for `targets`.
async fn put(spool: &Spool, body: &str, targets: u32) -> Arc<EntryRecord> {
    let mut headers = HeaderMap::new();
    headers.insert("x-test", body.parse().unwrap());
    append(spool, body, targets, headers).await.unwrap()
}

/// Append `body` for one destination, without headers; the spool may refuse it.
async fn try_put(spool: &Spool, body: &str) -> Result<Arc<EntryRecord>, SpoolError> {
    append(spool, body, 1, HeaderMap::new()).await
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut list: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .filter(|p| !p.ends_with(SPARE))
        .collect();
    list.sort();
    list
}

/// The segment's id and where its last valid record ends (a recycled file has stale bytes
/// after; a padding frame after a direct write is not a record).
fn valid_end(path: &Path) -> (u32, usize) {
    let name = path.file_stem().unwrap().to_str().unwrap();
    let id = u32::from_str_radix(name, 16).unwrap();
    let bytes = fs::read(path).unwrap();
    let (mut at, mut end) = (0, 0);
    while let Ok((record, used)) = record::decode(&bytes[at..], id) {
        at += used;
        if !matches!(record, Record::Padding) {
            end = at;
        }
    }
    (id, end)
}

fn bodies(spool: &Spool) -> Vec<String> {
    spool
        .pending()
        .iter()
        .map(|p| String::from_utf8(p.entry.delivery.body.to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn a_torn_tail_is_skipped_and_every_complete_record_kept() {
    a_torn_tail_is_skipped_and_every_complete_record_kept_in(true).await;
}

#[tokio::test]
async fn a_torn_tail_is_skipped_and_every_complete_record_kept_buffered() {
    a_torn_tail_is_skipped_and_every_complete_record_kept_in(false).await;
}

async fn a_torn_tail_is_skipped_and_every_complete_record_kept_in(direct: bool) {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(options_in(dir.path(), direct)).unwrap();
    let mut ids = Vec::new();
    for body in ["one", "two", "three"] {
        ids.push(put(&spool, body, 1).await.delivery.request_id);
    }
    drop(spool);
    let spool = reopen(&options_in(dir.path(), direct));
    assert_eq!(bodies(&spool), ["one", "two", "three"]);
    let pending = spool.pending();
    assert_eq!(pending[1].entry.delivery.request_id, ids[1]);
    assert_eq!(
        pending[1].entry.delivery.headers.get("x-test").unwrap(),
        "two"
    );
    drop(spool);

    // The recovered entries stay where they were written (nothing is rewritten on open;
    // the second file is the fresh, empty active segment): cut the last record short, as
    // a crash in the middle of a write would.
    let files = segments(dir.path());
    assert_eq!(files.len(), 2, "{files:?}");
    let (_, end) = valid_end(&files[0]);
    let bytes = fs::read(&files[0]).unwrap();
    fs::write(&files[0], &bytes[..end - 3]).unwrap();
    let spool = reopen(&options_in(dir.path(), direct));
    assert_eq!(bodies(&spool), ["one", "two"]);
    // and it goes on working after the recovery
    put(&spool, "four", 1).await;
    drop(spool);

    // Garbage after the last record (a torn frame header) and a flipped byte in a record,
    // in the segment "four" went to (the last one with records):
    let last_written = || {
        segments(dir.path())
            .into_iter()
            .rfind(|f| valid_end(f).1 > 0)
            .unwrap()
    };
    let file = last_written();
    let (_, end) = valid_end(&file);
    let mut bytes = fs::read(&file).unwrap();
    bytes.truncate(end);
    bytes.extend_from_slice(&[0xff, 0xff, 0, 0, 1]);
    fs::write(&file, &bytes).unwrap();
    let spool = reopen(&options_in(dir.path(), direct));
    assert_eq!(bodies(&spool), ["one", "two", "four"]);
    drop(spool);
    let file = last_written();
    let (_, end) = valid_end(&file);
    let mut bytes = fs::read(&file).unwrap();
    bytes[end - 1] ^= 0x55; // inside the body of "four", the segment's last record
    fs::write(&file, &bytes).unwrap();
    let spool = reopen(&options_in(dir.path(), direct));
    assert_eq!(bodies(&spool), ["one", "two"]);
}

#[tokio::test]
async fn progress_per_destination_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(options(dir.path())).unwrap();
    let a = put(&spool, "a", 0b11).await;
    let b = put(&spool, "b", 0b11).await;
    spool.done(a.seq, 0);
    spool.attempt(a.seq, 1, 3);
    spool.done(b.seq, 0);
    spool.done(b.seq, 1);
    assert_eq!(spool.usage().0, 1);
    put(&spool, "sync", 0b1).await; // waits for the records queued before it
    drop(spool);
    let spool = reopen(&options(dir.path()));
    let pending = spool.pending();
    assert_eq!(pending.len(), 2);
    assert_eq!(pending[0].entry.delivery.request_id, a.delivery.request_id);
    assert_eq!(pending[0].done, 0b01);
    assert_eq!(pending[0].attempts, [0, 3]);
    assert_eq!(
        String::from_utf8_lossy(&pending[1].entry.delivery.body),
        "sync"
    );
}

#[tokio::test]
async fn the_directory_is_locked_while_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _spool = Spool::open(options(dir.path())).unwrap();
    assert!(matches!(
        Spool::open(options(dir.path())),
        Err(SpoolError::Locked(_))
    ));
}

#[tokio::test]
async fn full_spool_refuses_and_recovers_when_entries_finish() {
    full_spool_refuses_and_recovers_when_entries_finish_in(true).await;
}

#[tokio::test]
async fn full_spool_refuses_and_recovers_when_entries_finish_buffered() {
    full_spool_refuses_and_recovers_when_entries_finish_in(false).await;
}

async fn full_spool_refuses_and_recovers_when_entries_finish_in(direct: bool) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        dir: dir.path().to_path_buf(),
        max_bytes: 64 << 10,
        segment_bytes: 8 << 10,
        direct_io: direct,
        webhook_share_percent: 100,
        ..SpoolOptions::default()
    };
    let spool = Spool::open(opts.clone()).unwrap();
    let body = "x".repeat(1000);
    let mut taken = Vec::new();
    let full = loop {
        let mut headers = HeaderMap::new();
        headers.insert("x-n", taken.len().to_string().parse().unwrap());
        match append(&spool, &body, 1, headers).await {
            Ok(entry) => taken.push(entry),
            Err(err) => break err,
        }
        assert!(taken.len() < 1000, "never full");
    };
    assert!(matches!(full, SpoolError::Full { .. }), "{full}");
    assert!(taken.len() >= 50, "only {} taken", taken.len());
    let (_, used) = spool.usage();
    assert!(used <= opts.max_bytes);
    for entry in &taken {
        spool.done(entry.seq, 0);
    }
    // space comes back as the finished segments are deleted
    let mut again = None;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if let Ok(entry) = try_put(&spool, &body).await {
            again = Some(entry);
            break;
        }
    }
    assert!(again.is_some(), "the spool never took requests again");
    assert!(
        segments(dir.path()).len() <= 3,
        "{:?}",
        segments(dir.path())
    );
    let (entries, used) = spool.usage();
    assert_eq!(entries, 1);
    assert!(used < opts.max_bytes / 2, "{used}");
}

#[tokio::test]
async fn a_stuck_entry_is_carried_forward_so_old_segments_go() {
    a_stuck_entry_is_carried_forward_so_old_segments_go_in(true).await;
}

#[tokio::test]
async fn a_stuck_entry_is_carried_forward_so_old_segments_go_buffered() {
    a_stuck_entry_is_carried_forward_so_old_segments_go_in(false).await;
}

async fn a_stuck_entry_is_carried_forward_so_old_segments_go_in(direct: bool) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        segment_bytes: 4096,
        ..options_in(dir.path(), direct)
    };
    let spool = Spool::open(opts.clone()).unwrap();
    let stuck = put(&spool, "stuck", 1).await;
    let body = "y".repeat(500);
    for _ in 0..100 {
        let e = put(&spool, &body, 1).await;
        spool.done(e.seq, 0);
    }
    put(&spool, "sync", 1).await;
    // 100 × ~550 bytes went through 4 KiB segments: only a few may remain
    let files = segments(dir.path());
    assert!(files.len() <= 3, "{} segments kept", files.len());
    drop(spool);
    let spool = reopen(&opts);
    let pending = spool.pending();
    assert_eq!(bodies(&spool), ["stuck", "sync"]);
    assert_eq!(
        pending[0].entry.delivery.request_id,
        stuck.delivery.request_id
    );
}

#[tokio::test]
async fn a_recycled_segment_never_revives_its_old_records() {
    a_recycled_segment_never_revives_its_old_records_in(true).await;
}

#[tokio::test]
async fn a_recycled_segment_never_revives_its_old_records_buffered() {
    a_recycled_segment_never_revives_its_old_records_in(false).await;
}

async fn a_recycled_segment_never_revives_its_old_records_in(direct: bool) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        segment_bytes: 4096,
        ..options_in(dir.path(), direct)
    };
    let spool = Spool::open(opts.clone()).unwrap();
    // Fill and finish several segments, so finished ones are recycled as new ones.
    let body = "r".repeat(700);
    for _ in 0..40 {
        let e = put(&spool, &body, 1).await;
        spool.done(e.seq, 0);
    }
    let last = put(&spool, "last", 1).await;
    assert!(dir.path().join(SPARE).exists() || segments(dir.path()).len() > 1);
    drop(spool);
    let spool = reopen(&opts);
    assert_eq!(
        bodies(&spool),
        ["last"],
        "only the one pending entry comes back"
    );
    assert_eq!(
        spool.pending()[0].entry.delivery.request_id,
        last.delivery.request_id
    );
}

#[tokio::test]
async fn dead_letters_are_counted_in_the_quota_across_restarts_until_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let spool = Spool::open(opts.clone()).unwrap();
    let entry = put(&spool, &"q".repeat(3000), 1).await;
    let letter = spool
        .write_dead_letter(&entry, 0, "http_webhook", 3, "HTTP 400")
        .unwrap();
    spool.done(entry.seq, 0);
    let file = dir.path().join("dead").join(format!("{}.dead", letter.id));
    let file_len = fs::metadata(&file).unwrap().len();
    assert!(file_len > 3000);
    let (_, with_letter) = spool.usage();
    assert!(with_letter >= file_len, "{with_letter} < {file_len}");
    drop(spool);

    // After a restart the pending entry is gone, the dead letter still counts.
    let spool = reopen(&opts);
    let (entries, used) = spool.usage();
    assert_eq!(entries, 0);
    assert_eq!(used, file_len, "only the dead letter takes space");

    // Written again under the same id (a replay failed again): counted once.
    let (_, again) = spool.read_dead_letter(&letter.id).unwrap();
    spool
        .write_dead_letter(&again, 0, "http_webhook", 1, "HTTP 400")
        .unwrap();
    assert_eq!(spool.usage().1, fs::metadata(&file).unwrap().len());

    // Deleted: its bytes leave the quota; a second delete is an unknown id.
    assert_eq!(spool.delete_dead_letter(&letter.id).unwrap().id, letter.id);
    assert!(!file.exists());
    assert_eq!(spool.usage().1, 0);
    assert!(matches!(
        spool.delete_dead_letter(&letter.id),
        Err(SpoolError::NoDeadLetter(_))
    ));
    assert!(matches!(
        spool.delete_dead_letter("../LOCK"),
        Err(SpoolError::NoDeadLetter(_))
    ));
}

#[tokio::test]
async fn a_replay_is_spooled_even_when_the_quota_is_used_up() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        max_bytes: 16 << 10,
        segment_bytes: 4 << 10,
        ..options(dir.path())
    };
    let spool = Spool::open(opts).unwrap();
    let entry = put(&spool, &"r".repeat(2000), 1).await;
    let letter = spool
        .write_dead_letter(&entry, 0, "log", 1, "gave up")
        .unwrap();
    spool.done(entry.seq, 0);
    // fill what is left
    let mut n = 0;
    while try_put(&spool, &"f".repeat(2000)).await.is_ok() {
        n += 1;
        assert!(n < 100, "never full");
    }
    let (_, dead) = spool.read_dead_letter(&letter.id).unwrap();
    let respooled = spool.respool(dead).unwrap().wait().await.unwrap();
    assert_eq!(respooled.delivery.request_id, entry.delivery.request_id);
    assert_eq!(respooled.delivery.body, entry.delivery.body);
    assert!(respooled.seq > entry.seq);
    assert_eq!((respooled.done, respooled.targets), (0, 1));
}

#[tokio::test]
async fn direct_writes_are_block_padded_but_only_records_count() {
    for direct in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(options_in(dir.path(), direct)).unwrap();
        let mut logical = 0;
        for body in ["small", "a bit longer body", &"x".repeat(5000)] {
            put(&spool, body, 1).await;
            let file = &segments(dir.path())[0];
            let size = fs::metadata(file).unwrap().len();
            let (_, end) = valid_end(file);
            assert!(end > logical, "each group lands after the last");
            logical = end;
            // the padding after a group is overwritten by the next: records stay contiguous
            assert_eq!(spool.usage().1, logical as u64, "direct: {direct}");
            if direct {
                assert_eq!(size % BLOCK as u64, 0, "direct writes are whole blocks");
                assert!(size >= logical as u64 && size < (logical + 2 * BLOCK + 16) as u64);
            } else {
                assert_eq!(
                    size, logical as u64,
                    "buffered writes are the records alone"
                );
            }
        }
        drop(spool);
        let spool = reopen(&options_in(dir.path(), direct));
        assert_eq!(bodies(&spool).len(), 3, "direct: {direct}");
    }
}

#[tokio::test]
async fn damage_inside_a_segment_keeps_every_valid_record_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SpoolOptions {
        segment_bytes: 1 << 20,
        ..options_in(dir.path(), false)
    };
    let spool = Spool::open(opts.clone()).unwrap();
    let mut seqs = Vec::new();
    for i in 0..10 {
        seqs.push(
            put(&spool, &format!("body-{i}-{}", "x".repeat(100)), 1)
                .await
                .seq,
        );
    }
    drop(spool);
    // flip one byte inside the second entry's payload
    let file = &segments(dir.path())[0];
    let mut bytes = fs::read(file).unwrap();
    let (_, first_len) = record::decode(&bytes, 1).unwrap();
    bytes[first_len + 40] ^= 0x01;
    fs::write(file, &bytes).unwrap();

    let spool = reopen(&opts);
    let kept = bodies(&spool);
    assert_eq!(kept.len(), 9, "{kept:?}");
    assert!(kept[0].starts_with("body-0-"));
    assert!(kept[1].starts_with("body-2-"), "{kept:?}");
    assert!(kept[8].starts_with("body-9-"));
    // once they are all done the damaged segment is moved aside, not recycled
    for p in spool.pending() {
        spool.done(p.entry.seq, 0);
    }
    let corrupt = dir.path().join("corrupt").join("0000000000000001.seg");
    for _ in 0..200 {
        if corrupt.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        corrupt.exists(),
        "the damaged segment was not kept in corrupt/"
    );
    assert!(
        !dir.path().join("spare.seg").exists()
            || fs::read(dir.path().join("spare.seg")).unwrap() != bytes
    );
    assert_eq!(spool.usage().0, 0);
}
