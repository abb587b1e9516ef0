//! Spool recovery on arbitrary bytes: a segment file holding anything (torn, corrupted,
//! hostile) must open without a panic; whatever it recovers is then served normally. And
//! damage is not a torn tail: a valid frame after arbitrary garbage is always kept (read
//! as a record of its own, or inside a frame the garbage forged around it).
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_core::spool::fuzzing;
use webhook_core::{Spool, SpoolOptions};

fuzz_target!(|data: &[u8]| {
    // valid frames after garbage are kept
    let segment = 7;
    let mut bytes = fuzzing::done_frame(1, segment);
    bytes.extend_from_slice(data);
    let after = bytes.len();
    bytes.extend_from_slice(&fuzzing::done_frame(2, segment));
    let (frames, damaged, torn) = fuzzing::scan(&bytes, segment);
    assert_eq!(frames.first(), Some(&(0, after - data.len())), "the first frame is read");
    assert!(
        frames.iter().any(|&(at, len)| at <= after && after < at + len),
        "the valid frame after the garbage was lost: frames {frames:?}, damaged {damaged:?}, torn {torn:?}"
    );

    let Ok(dir) = tempfile::tempdir() else {
        return;
    };
    // Two segments: the input as the first, and its second half as a later one.
    let _ = std::fs::write(dir.path().join("0000000000000001.seg"), data);
    let _ = std::fs::write(dir.path().join("0000000000000002.seg"), &data[data.len() / 2..]);
    let options = SpoolOptions {
        dir: dir.path().to_path_buf(),
        ..SpoolOptions::default()
    };
    if let Ok(spool) = Spool::open(options) {
        let (entries, bytes) = spool.usage();
        assert!(entries == 0 || bytes > 0);
        let _ = spool.dead_letters();
    }
});
