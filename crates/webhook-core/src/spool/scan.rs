//! Reading a segment's frames back, telling a torn tail from damage inside: a frame that
//! does not decode is followed by a search for the next one that does; if one is found, the
//! bytes between were damaged (a bad sector, a flipped bit) and every valid frame after
//! them is kept; if none is, they were the tail a crash tore (or what a recycled file held
//! before), as expected.

use super::record::{self, FRAME_HEADER, Record};

/// What reading a segment found besides its records.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ScanReport {
    /// Byte ranges `[start, end)` that did not decode but were followed by valid frames.
    pub(crate) damaged: Vec<(usize, usize)>,
    /// Where the unreadable tail starts, if the segment has one.
    pub(crate) torn_from: Option<usize>,
}

impl ScanReport {
    /// Bytes inside the damaged ranges.
    pub(crate) fn damaged_bytes(&self) -> u64 {
        self.damaged.iter().map(|(a, b)| (b - a) as u64).sum()
    }
}

/// Checksum work allowed when searching past damage, as a multiple of the segment's size
/// (plus a constant): a search through hostile bytes cannot run for long.
const SEARCH_WORK_FACTOR: usize = 4;

/// Read every frame of segment `segment` (its file's bytes), handing each record to
/// `on_record` with its offset and frame length.
pub(crate) fn scan_segment(
    bytes: &[u8],
    segment: u32,
    mut on_record: impl FnMut(Record, usize, usize),
) -> ScanReport {
    let mut report = ScanReport::default();
    let mut budget = bytes.len().saturating_mul(SEARCH_WORK_FACTOR) + (1 << 20);
    let mut offset = 0;
    while offset < bytes.len() {
        match record::decode(&bytes[offset..], segment) {
            Ok((record, used)) => {
                on_record(record, offset, used);
                offset += used;
            }
            Err(_) => match next_frame(bytes, offset + 1, segment, &mut budget) {
                Some(next) => {
                    report.damaged.push((offset, next));
                    offset = next;
                }
                None => {
                    report.torn_from = Some(offset);
                    break;
                }
            },
        }
    }
    report
}

/// The first offset at or after `from` where a whole frame of `segment` decodes. Cheap
/// tests first (a plausible length and record type), the checksum only then, within
/// `budget` bytes of checksum work.
fn next_frame(bytes: &[u8], from: usize, segment: u32, budget: &mut usize) -> Option<usize> {
    let mut at = from;
    while at + FRAME_HEADER < bytes.len() {
        let header = &bytes[at..at + FRAME_HEADER];
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let fits = len > 0 && len <= bytes.len() - at - FRAME_HEADER;
        if fits && record::is_record_type(bytes[at + FRAME_HEADER]) {
            if *budget < len {
                return None;
            }
            *budget -= len;
            if record::decode(&bytes[at..], segment).is_ok() {
                return Some(at);
            }
        }
        at += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(segment: u32, n: u64) -> (Vec<u8>, Vec<usize>) {
        let mut out = Vec::new();
        let mut starts = Vec::new();
        for seq in 0..n {
            starts.push(out.len());
            let mut frame = record::encode_done(seq, 0);
            record::stamp(&mut frame, segment);
            out.extend_from_slice(&frame);
        }
        (out, starts)
    }

    fn seqs(bytes: &[u8], segment: u32) -> (Vec<u64>, ScanReport) {
        let mut seen = Vec::new();
        let report = scan_segment(bytes, segment, |record, _, _| {
            if let Record::Done { seq, .. } = record {
                seen.push(seq);
            }
        });
        (seen, report)
    }

    #[test]
    fn valid_frames_after_damage_are_kept() {
        let (mut bytes, starts) = frames(7, 10);
        bytes[starts[1] + 10] ^= 0xff;
        let (seen, report) = seqs(&bytes, 7);
        assert_eq!(seen, vec![0, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(report.damaged, vec![(starts[1], starts[2])]);
        assert_eq!(report.torn_from, None);
    }

    #[test]
    fn a_torn_tail_is_a_tail() {
        let (mut bytes, starts) = frames(7, 5);
        bytes.truncate(starts[4] + 5);
        let (seen, report) = seqs(&bytes, 7);
        assert_eq!(seen, vec![0, 1, 2, 3]);
        assert!(report.damaged.is_empty());
        assert_eq!(report.torn_from, Some(starts[4]));
        // frames of another segment (a recycled file's earlier life) are no resync point
        let (mut bytes, starts) = frames(7, 3);
        let (stale, _) = frames(6, 5);
        bytes.extend_from_slice(&stale);
        let (seen, report) = seqs(&bytes, 7);
        assert_eq!(seen, vec![0, 1, 2]);
        assert!(report.damaged.is_empty());
        assert_eq!(report.torn_from, Some(starts[2] + (starts[1] - starts[0])));
    }
}
