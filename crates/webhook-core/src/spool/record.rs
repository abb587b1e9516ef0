//! The on-disk record format of the spool.
//!
//! A segment file is a sequence of frames: `[len: u32 LE][check: u32 LE][payload]`, where
//! `check` is the CRC32 of the payload XOR a value derived from the segment's id
//! ([`segment_key`]). A frame whose length runs past the end of the file, whose length is 0
//! or whose check does not match is a torn write (the process died while writing it) or what
//! a recycled segment file held before: reading stops there. Frames are built with the CRC of
//! the payload ([`seal`], off the writer thread); the writer [`stamp`]s them with their
//! segment (one XOR per frame).
//!
//! Payloads (all integers little endian):
//! * `1` entry: seq u64, request id [16], received_at ms u64, data type u8, targets u32,
//!   done u32, attempts (count u8, then u32 each), webhook id (u8 len + bytes), headers
//!   (u16 count, then name u16 len + bytes, value u32 len + bytes), body (u32 len + bytes),
//!   then, when the request URL had one, its query string (u32 len + bytes; entries
//!   written before it was kept end after the body and read as having none).
//! * `2` done: seq u64, destination u8 (the destination confirmed, or was dead-lettered).
//! * `3` attempt: seq u64, destination u8, attempts u32 (failed attempts so far).
//! * `4` padding: zeros, skipped (fills a group up to the block size of direct writes).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use uuid::Uuid;

use crate::{DataType, Delivery};

/// Frame header: length and checksum.
pub(crate) const FRAME_HEADER: usize = 8;

const ENTRY: u8 = 1;
const DONE: u8 = 2;
const ATTEMPT: u8 = 3;
const PADDING: u8 = 4;

/// Most destinations of one webhook (a chain has at most 20).
pub(crate) const MAX_DESTINATIONS: usize = 32;

/// One spooled request and how far its delivery got.
#[derive(Debug, Clone)]
pub(crate) struct EntryRecord {
    pub(crate) seq: u64,
    /// Bit i set: destination i of the webhook is to receive this entry.
    pub(crate) targets: u32,
    /// Bit i set: destination i confirmed (or its failure was dead-lettered).
    pub(crate) done: u32,
    /// Failed attempts per destination index.
    pub(crate) attempts: Vec<u32>,
    /// The request, whole, as it was accepted.
    pub(crate) delivery: Delivery,
}

/// A decoded record.
#[derive(Debug)]
pub(crate) enum Record {
    Entry(EntryRecord),
    Done {
        seq: u64,
        destination: u8,
    },
    Attempt {
        seq: u64,
        destination: u8,
        attempts: u32,
    },
    /// Filler after a group written with direct I/O.
    Padding,
}

/// Why a frame could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the frame announces: a torn write at the tail.
    Truncated,
    /// The checksum does not match.
    Checksum,
    /// The payload is not a record we know.
    Malformed,
}

/// A buffer with room for the frame header, to write a payload after.
fn open_frame(payload_capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER + payload_capacity);
    out.resize(FRAME_HEADER, 0);
    out
}

/// Fill in the frame header (length and checksum of what follows it).
fn seal(mut frame: Vec<u8>) -> Vec<u8> {
    let payload = &frame[FRAME_HEADER..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = crc32fast::hash(payload);
    frame[..4].copy_from_slice(&len.to_le_bytes());
    frame[4..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    frame
}

/// The framed bytes of an entry record.
pub(crate) fn encode_entry(entry: &EntryRecord) -> Vec<u8> {
    let d = &entry.delivery;
    let headers_len: usize = d
        .headers
        .iter()
        .map(|(n, v)| 6 + n.as_str().len() + v.len())
        .sum();
    let query_len = d.query.as_ref().map_or(0, |q| 4 + q.len());
    let mut p = open_frame(64 + d.webhook_id.len() + headers_len + d.body.len() + query_len);
    p.push(ENTRY);
    p.extend_from_slice(&entry.seq.to_le_bytes());
    p.extend_from_slice(d.request_id.as_bytes());
    let millis = d
        .received_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    p.extend_from_slice(&millis.to_le_bytes());
    p.push(match d.data_type {
        DataType::Json => 0,
        DataType::Blob => 1,
    });
    p.extend_from_slice(&entry.targets.to_le_bytes());
    p.extend_from_slice(&entry.done.to_le_bytes());
    let attempts = &entry.attempts[..entry.attempts.len().min(MAX_DESTINATIONS)];
    p.push(attempts.len() as u8);
    for a in attempts {
        p.extend_from_slice(&a.to_le_bytes());
    }
    let id = d.webhook_id.as_bytes();
    let id = &id[..id.len().min(255)];
    p.push(id.len() as u8);
    p.extend_from_slice(id);
    let count = u16::try_from(d.headers.len()).unwrap_or(u16::MAX);
    p.extend_from_slice(&count.to_le_bytes());
    for (name, value) in d.headers.iter().take(usize::from(count)) {
        let name = name.as_str().as_bytes();
        p.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_le_bytes());
        p.extend_from_slice(name);
        p.extend_from_slice(&u32::try_from(value.len()).unwrap_or(0).to_le_bytes());
        p.extend_from_slice(value.as_bytes());
    }
    p.extend_from_slice(&u32::try_from(d.body.len()).unwrap_or(0).to_le_bytes());
    p.extend_from_slice(&d.body);
    if let Some(query) = &d.query {
        p.extend_from_slice(&u32::try_from(query.len()).unwrap_or(0).to_le_bytes());
        p.extend_from_slice(query.as_bytes());
    }
    seal(p)
}

/// The framed bytes of a done record.
pub(crate) fn encode_done(seq: u64, destination: u8) -> Vec<u8> {
    let mut p = open_frame(10);
    p.push(DONE);
    p.extend_from_slice(&seq.to_le_bytes());
    p.push(destination);
    seal(p)
}

/// The framed bytes of an attempt record.
pub(crate) fn encode_attempt(seq: u64, destination: u8, attempts: u32) -> Vec<u8> {
    let mut p = open_frame(14);
    p.push(ATTEMPT);
    p.extend_from_slice(&seq.to_le_bytes());
    p.push(destination);
    p.extend_from_slice(&attempts.to_le_bytes());
    seal(p)
}

/// Append to `out` the padding frame, stamped with `segment`, that brings `len` bytes up
/// to a multiple of `block` (nothing when `len` already is one).
#[cfg(test)]
pub(crate) fn push_padding(out: &mut Vec<u8>, len: usize, block: usize, segment: u32) {
    if let Some((start, gap)) = padding(len, block, segment) {
        out.extend_from_slice(&start);
        out.resize(out.len() + gap - start.len(), 0);
    }
}

/// The padding frame, stamped with `segment`, that brings `len` bytes up to a multiple of
/// `block`: its first bytes (header and type) and its whole length, the rest being zeros;
/// `None` when `len` already is a multiple. Its checksum comes from a table: a padding
/// frame is the same zeros every time.
pub(crate) fn padding(
    len: usize,
    block: usize,
    segment: u32,
) -> Option<([u8; FRAME_HEADER + 1], usize)> {
    let mut gap = (block - len % block) % block;
    if gap == 0 {
        return None;
    }
    if gap <= FRAME_HEADER {
        gap += block;
    }
    let payload_len = gap - FRAME_HEADER;
    let crc = padding_crc(payload_len) ^ segment_key(segment);
    let mut start = [0u8; FRAME_HEADER + 1];
    start[..4].copy_from_slice(&u32::try_from(payload_len).unwrap_or(u32::MAX).to_le_bytes());
    start[4..8].copy_from_slice(&crc.to_le_bytes());
    start[8] = PADDING;
    Some((start, gap))
}

/// The CRC32 of a padding payload of `len` bytes (its type, then zeros).
fn padding_crc(len: usize) -> u32 {
    /// Payload lengths the table holds: every gap up to a 4 KiB block and a frame header.
    const KEPT: usize = 4096 + FRAME_HEADER;
    static TABLE: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&[PADDING]);
        let mut table = vec![0, hasher.clone().finalize()];
        for _ in 2..=KEPT {
            hasher.update(&[0]);
            table.push(hasher.clone().finalize());
        }
        table
    });
    match table.get(len) {
        Some(&crc) => crc,
        None => {
            let mut hasher = crc32fast::Hasher::new();
            hasher.update(&[PADDING]);
            hasher.update(&vec![0; len.saturating_sub(1)]);
            hasher.finalize()
        }
    }
}

/// What binds a frame to its segment: distinct for distinct ids (multiplication by an odd
/// constant is a bijection on u32), so a frame left over from a recycled file's earlier life
/// fails its check.
fn segment_key(segment: u32) -> u32 {
    segment.wrapping_add(1).wrapping_mul(0x9E37_79B1)
}

/// Bind the sealed frames in `frames` to `segment`.
pub(crate) fn stamp(frames: &mut [u8], segment: u32) {
    let key = segment_key(segment);
    let mut at = 0;
    while let Some(header) = frames.get(at..at + FRAME_HEADER) {
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        frames[at + 4..at + FRAME_HEADER].copy_from_slice(&(crc ^ key).to_le_bytes());
        at += FRAME_HEADER + len as usize;
    }
}

/// Read the frame at the start of `bytes` (stamped with `segment`): the record and the
/// frame's length.
pub(crate) fn decode(bytes: &[u8], segment: u32) -> Result<(Record, usize), FrameError> {
    let (payload, used) = decode_frame(bytes, segment)?;
    let record = decode_payload(payload).ok_or(FrameError::Malformed)?;
    Ok((record, used))
}

/// Whether `byte` is the type of a record we write (a cheap test before a checksum).
pub(crate) fn is_record_type(byte: u8) -> bool {
    matches!(byte, ENTRY | DONE | ATTEMPT | PADDING)
}

/// An entry as one self-contained frame (what a shared spool stores, opaque to it).
pub(crate) fn entry_blob(entry: &EntryRecord) -> Vec<u8> {
    let mut bytes = encode_entry(entry);
    stamp(&mut bytes, 0);
    bytes
}

/// The entry of [`entry_blob`]'s bytes; `None` when they are not one.
pub(crate) fn entry_from_blob(bytes: &[u8]) -> Option<EntryRecord> {
    match decode(bytes, 0) {
        Ok((Record::Entry(entry), _)) => Some(entry),
        _ => None,
    }
}

/// Frame arbitrary bytes (used for dead-letter metadata).
pub(crate) fn encode_raw(payload: &[u8]) -> Vec<u8> {
    let mut p = open_frame(payload.len());
    p.extend_from_slice(payload);
    seal(p)
}

/// Check the frame at the start of `bytes` (stamped with `segment`): its payload and the
/// frame's length.
pub(crate) fn decode_frame(bytes: &[u8], segment: u32) -> Result<(&[u8], usize), FrameError> {
    let header = bytes.get(..FRAME_HEADER).ok_or(FrameError::Truncated)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload = bytes
        .get(FRAME_HEADER..FRAME_HEADER + len)
        .ok_or(FrameError::Truncated)?;
    if len == 0 {
        // never written (zeros of a new or recycled file)
        return Err(FrameError::Malformed);
    }
    if crc32fast::hash(payload) ^ segment_key(segment) != crc {
        return Err(FrameError::Checksum);
    }
    Ok((payload, FRAME_HEADER + len))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes([
            b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
        ]))
    }
}

fn decode_payload(payload: &[u8]) -> Option<Record> {
    let mut r = Reader(payload);
    match r.u8()? {
        ENTRY => {
            let seq = r.u64()?;
            let request_id = Uuid::from_slice(r.take(16)?).ok()?;
            let received_at = UNIX_EPOCH + Duration::from_millis(r.u64()?);
            let data_type = match r.u8()? {
                0 => DataType::Json,
                1 => DataType::Blob,
                _ => return None,
            };
            let targets = r.u32()?;
            let done = r.u32()?;
            let count = usize::from(r.u8()?);
            let mut attempts = Vec::with_capacity(count);
            for _ in 0..count {
                attempts.push(r.u32()?);
            }
            let id_len = usize::from(r.u8()?);
            let webhook_id: Arc<str> = Arc::from(std::str::from_utf8(r.take(id_len)?).ok()?);
            let header_count = usize::from(r.u16()?);
            // a damaged count must not panic (a HeaderMap holds at most 32,768 entries)
            let mut headers = HeaderMap::try_with_capacity(header_count).ok()?;
            for _ in 0..header_count {
                let name_len = usize::from(r.u16()?);
                let name = HeaderName::from_bytes(r.take(name_len)?).ok()?;
                let value_len = r.u32()? as usize;
                let value = HeaderValue::from_bytes(r.take(value_len)?).ok()?;
                headers.try_append(name, value).ok()?;
            }
            let body_len = r.u32()? as usize;
            let body = Bytes::copy_from_slice(r.take(body_len)?);
            let query = if r.0.is_empty() {
                None
            } else {
                let query_len = r.u32()? as usize;
                Some(Arc::from(std::str::from_utf8(r.take(query_len)?).ok()?))
            };
            Some(Record::Entry(EntryRecord {
                seq,
                targets,
                done,
                attempts,
                delivery: Delivery {
                    webhook_id,
                    request_id,
                    headers: Arc::new(headers),
                    query,
                    body,
                    received_at,
                    data_type,
                },
            }))
        }
        DONE => Some(Record::Done {
            seq: r.u64()?,
            destination: r.u8()?,
        }),
        PADDING => Some(Record::Padding),
        ATTEMPT => Some(Record::Attempt {
            seq: r.u64()?,
            destination: r.u8()?,
            attempts: r.u32()?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> EntryRecord {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        EntryRecord {
            seq: 42,
            targets: 0b111,
            done: 0b010,
            attempts: vec![2, 0, 5],
            delivery: Delivery {
                webhook_id: Arc::from("github"),
                request_id: Uuid::now_v7(),
                headers: Arc::new(headers),
                query: Some(Arc::from("a=1&b=x%20y")),
                body: Bytes::from_static(b"\x00\xffbody bytes"),
                received_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
                data_type: DataType::Blob,
            },
        }
    }

    #[test]
    fn padding_fills_up_to_the_block_and_reads_as_padding() {
        for block in [4096, 8192] {
            for len in [0, 1, 100, 4087, 4088, 4089, 4095, 4096, 4097, 8190, 10_000] {
                let mut pad = b"earlier bytes".to_vec();
                push_padding(&mut pad, len, block, 3);
                let pad = &pad[13..];
                assert_eq!((len + pad.len()) % block, 0, "{len}");
                if len % block == 0 {
                    assert!(pad.is_empty());
                    continue;
                }
                assert!(pad.len() > FRAME_HEADER, "{len}: a frame has a payload");
                let (record, used) = decode(pad, 3).unwrap();
                assert!(matches!(record, Record::Padding));
                assert_eq!(used, pad.len());
                assert_eq!(
                    decode(pad, 4).unwrap_err(),
                    FrameError::Checksum,
                    "bound to its segment"
                );
            }
        }
    }

    #[test]
    fn entry_round_trips() {
        let e = entry();
        let mut bytes = encode_entry(&e);
        stamp(&mut bytes, 7);
        assert_eq!(
            decode(&bytes, 8).unwrap_err(),
            FrameError::Checksum,
            "other segment"
        );
        let (Record::Entry(d), used) = decode(&bytes, 7).unwrap() else {
            panic!("not an entry")
        };
        assert_eq!(used, bytes.len());
        assert_eq!(d.seq, e.seq);
        assert_eq!((d.targets, d.done), (e.targets, e.done));
        assert_eq!(d.attempts, e.attempts);
        let (d, e) = (d.delivery, e.delivery);
        assert_eq!(d.request_id, e.request_id);
        assert_eq!(d.received_at, e.received_at);
        assert_eq!(d.data_type, e.data_type);
        assert_eq!(d.webhook_id, e.webhook_id);
        assert_eq!(d.headers, e.headers);
        assert_eq!(d.body, e.body);
        assert_eq!(d.query, e.query);
    }

    #[test]
    fn torn_and_corrupt_frames_are_detected() {
        let mut bytes = encode_entry(&entry());
        bytes.extend_from_slice(&encode_done(7, 3));
        bytes.extend_from_slice(&encode_attempt(7, 3, 9));
        stamp(&mut bytes, 1);
        let (_, first) = decode(&bytes, 1).unwrap();
        for cut in [0, 3, FRAME_HEADER, first - 1] {
            assert_eq!(decode(&bytes[..cut], 1).unwrap_err(), FrameError::Truncated);
        }
        let (Record::Done { seq, destination }, second) = decode(&bytes[first..], 1).unwrap()
        else {
            panic!()
        };
        assert_eq!((seq, destination), (7, 3));
        let (Record::Attempt { attempts, .. }, _) = decode(&bytes[first + second..], 1).unwrap()
        else {
            panic!()
        };
        assert_eq!(attempts, 9);
        let mut flipped = bytes;
        flipped[first - 1] ^= 1;
        assert_eq!(decode(&flipped, 1).unwrap_err(), FrameError::Checksum);
        // zeros (a preallocated, never written region) are not a frame
        assert!(decode(&[0u8; 64], 1).is_err());
    }

    /// Found by the `spool` fuzz target: a checksummed entry whose header count exceeds
    /// what a `HeaderMap` holds made recovery panic instead of skipping the record.
    #[test]
    fn a_huge_header_count_is_malformed_not_a_panic() {
        let mut payload = vec![ENTRY];
        payload.extend_from_slice(&7u64.to_le_bytes());
        payload.extend_from_slice(Uuid::now_v7().as_bytes());
        payload.extend_from_slice(&0u64.to_le_bytes());
        payload.push(0); // json
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&0u32.to_le_bytes());
        payload.push(0); // no attempts
        payload.push(1);
        payload.push(b'w');
        payload.extend_from_slice(&u16::MAX.to_le_bytes());
        payload.extend_from_slice(&[0u8; 64]);
        let mut frame = encode_raw(&payload);
        stamp(&mut frame, 2);
        assert_eq!(decode(&frame, 2).unwrap_err(), FrameError::Malformed);
    }
}
