//! Spool recovery on arbitrary bytes: a segment file holding anything (torn, corrupted,
//! hostile) must open without a panic; whatever it recovers is then served normally.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_core::{Spool, SpoolOptions};

fuzz_target!(|data: &[u8]| {
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
