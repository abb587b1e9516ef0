//! The frames between the server and a jq worker, over the worker's stdin and stdout.
//!
//! Every frame is `[len: u32 LE][payload]`. A request's payload: its id (u64), its time
//! limit in ms (u32), the output cap (u32), the program (u32 len + UTF-8), the variables
//! (u32 len + a JSON array of their values), then the body (the rest). A response's
//! payload: a tag byte — `0` output (the JSON text follows), `1` skip (no output or null),
//! `2` error (the message follows).
//!
//! The server writes a batch of requests at once; the worker answers each, in order, and
//! flushes its answers when it has no whole request left to read (one hop per batch, not
//! per request). A request that overstays its limit makes the worker print
//! [`OVERSTAYED`] and its id on stderr and die.

use std::io::{self, Read, Write};

/// Largest frame either side accepts.
pub(crate) const MAX_FRAME: usize = 256 << 20;

/// What a worker prints on stderr, followed by the request's id, before it dies because
/// that request overstayed its time limit.
pub(crate) const OVERSTAYED: &str = "overstayed:";

pub(crate) struct Request<'a> {
    pub(crate) id: u64,
    pub(crate) timeout_ms: u32,
    pub(crate) max_output: u32,
    pub(crate) program: &'a str,
    pub(crate) vars: &'a [u8],
    pub(crate) body: &'a [u8],
}

impl Request<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let len = 8 + 4 + 4 + 4 + self.program.len() + 4 + self.vars.len() + self.body.len();
        let mut out = Vec::with_capacity(4 + len);
        push_u32(&mut out, len);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.timeout_ms.to_le_bytes());
        out.extend_from_slice(&self.max_output.to_le_bytes());
        push_u32(&mut out, self.program.len());
        out.extend_from_slice(self.program.as_bytes());
        push_u32(&mut out, self.vars.len());
        out.extend_from_slice(self.vars);
        out.extend_from_slice(self.body);
        out
    }

    /// Read a request out of a frame's payload.
    pub(crate) fn decode(payload: &[u8]) -> Option<Request<'_>> {
        let (id, rest) = payload.split_first_chunk::<8>()?;
        let (timeout_ms, rest) = rest.split_first_chunk::<4>()?;
        let (max_output, rest) = rest.split_first_chunk::<4>()?;
        let (program, rest) = take_sized(rest)?;
        let (vars, body) = take_sized(rest)?;
        Some(Request {
            id: u64::from_le_bytes(*id),
            timeout_ms: u32::from_le_bytes(*timeout_ms),
            max_output: u32::from_le_bytes(*max_output),
            program: std::str::from_utf8(program).ok()?,
            vars,
            body,
        })
    }
}

/// What a worker answers.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Response {
    Output(Vec<u8>),
    Skip,
    Error(String),
}

const OUTPUT: u8 = 0;
const SKIP: u8 = 1;
const ERROR: u8 = 2;

impl Response {
    /// Append this answer's frame to `out` (the caller flushes).
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let (tag, payload): (u8, &[u8]) = match self {
            Response::Output(json) => (OUTPUT, json),
            Response::Skip => (SKIP, b""),
            Response::Error(message) => (ERROR, message.as_bytes()),
        };
        let len = u32::try_from(1 + payload.len()).unwrap_or(u32::MAX);
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&[tag])?;
        out.write_all(payload)
    }

    pub(crate) fn decode(mut payload: Vec<u8>) -> Option<Response> {
        let tag = *payload.first()?;
        payload.remove(0);
        match tag {
            OUTPUT => Some(Response::Output(payload)),
            SKIP => Some(Response::Skip),
            ERROR => Some(Response::Error(
                String::from_utf8_lossy(&payload).into_owned(),
            )),
            _ => None,
        }
    }
}

/// Whether `input` holds a whole frame already, so that reading it will not wait.
pub(crate) fn has_whole_frame<R>(input: &io::BufReader<R>) -> bool {
    let buffered = input.buffer();
    match buffered.split_first_chunk::<4>() {
        Some((len, rest)) => rest.len() >= u32::from_le_bytes(*len) as usize,
        None => false,
    }
}

/// Read one frame's payload; `Ok(None)` at a clean end of input.
pub(crate) fn read_frame(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "frame too large",
        ));
    }
    let mut payload = vec![0; len];
    input.read_exact(&mut payload)?;
    Ok(Some(payload))
}

fn push_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

fn take_sized(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = input.split_first_chunk::<4>()?;
    let len = u32::from_le_bytes(*len) as usize;
    (rest.len() >= len).then(|| rest.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let request = Request {
            id: 42,
            timeout_ms: 100,
            max_output: 7,
            program: ".a",
            vars: b"[1]",
            body: b"{\"a\":1}",
        };
        let frame = request.encode();
        let payload = read_frame(&mut &frame[..])
            .ok()
            .flatten()
            .unwrap_or_default();
        let decoded = Request::decode(&payload);
        assert!(decoded.is_some_and(|r| r.id == 42
            && r.timeout_ms == 100
            && r.program == ".a"
            && r.vars == b"[1]"
            && r.max_output == 7
            && r.body == b"{\"a\":1}"));
        assert!(Request::decode(&payload[..20]).is_none());

        for response in [
            Response::Output(b"[1]".to_vec()),
            Response::Skip,
            Response::Error("bad".to_owned()),
        ] {
            let mut out = Vec::new();
            assert!(response.write_to(&mut out).is_ok());
            let payload = read_frame(&mut &out[..]).ok().flatten().unwrap_or_default();
            assert_eq!(Response::decode(payload), Some(response));
        }
    }

    #[test]
    fn a_whole_frame_is_told_from_a_part() {
        let frame = Request {
            id: 1,
            timeout_ms: 1,
            max_output: 1,
            program: ".",
            vars: b"[]",
            body: b"{}",
        }
        .encode();
        let mut two = frame.clone();
        two.extend_from_slice(&frame[..frame.len() - 1]);
        let mut input = io::BufReader::new(&two[..]);
        assert!(io::BufRead::fill_buf(&mut input).is_ok());
        assert!(has_whole_frame(&input));
        assert!(matches!(read_frame(&mut input), Ok(Some(_))));
        assert!(!has_whole_frame(&input), "the second frame lacks a byte");
        assert!(!has_whole_frame(&io::BufReader::new(&b""[..])));
    }
}
