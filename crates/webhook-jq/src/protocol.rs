//! The frames between the server and a jq worker, over the worker's stdin and stdout.
//!
//! Every frame is `[len: u32 LE][payload]`. A request's payload: program (u32 len +
//! UTF-8), variables (u32 len + a JSON array of their values), the output cap (u32), then
//! the body (the rest). A response's payload: a tag byte — `0` output (the JSON text
//! follows), `1` skip (no output or null), `2` error (the message follows).

use std::io::{self, Read, Write};

/// Largest frame either side accepts.
pub(crate) const MAX_FRAME: usize = 256 << 20;

pub(crate) struct Request<'a> {
    pub(crate) program: &'a str,
    pub(crate) vars: &'a [u8],
    pub(crate) max_output: u32,
    pub(crate) body: &'a [u8],
}

impl Request<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let len = 4 + self.program.len() + 4 + self.vars.len() + 4 + self.body.len();
        let mut out = Vec::with_capacity(4 + len);
        push_u32(&mut out, len);
        push_u32(&mut out, self.program.len());
        out.extend_from_slice(self.program.as_bytes());
        push_u32(&mut out, self.vars.len());
        out.extend_from_slice(self.vars);
        out.extend_from_slice(&self.max_output.to_le_bytes());
        out.extend_from_slice(self.body);
        out
    }

    /// Read a request out of a frame's payload.
    pub(crate) fn decode(payload: &[u8]) -> Option<Request<'_>> {
        let (program, rest) = take_sized(payload)?;
        let (vars, rest) = take_sized(rest)?;
        let (max_output, body) = rest.split_first_chunk::<4>()?;
        Some(Request {
            program: std::str::from_utf8(program).ok()?,
            vars,
            max_output: u32::from_le_bytes(*max_output),
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
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let (tag, payload): (u8, &[u8]) = match self {
            Response::Output(json) => (OUTPUT, json),
            Response::Skip => (SKIP, b""),
            Response::Error(message) => (ERROR, message.as_bytes()),
        };
        let mut frame = Vec::with_capacity(5 + payload.len());
        push_u32(&mut frame, 1 + payload.len());
        frame.push(tag);
        frame.extend_from_slice(payload);
        out.write_all(&frame)?;
        out.flush()
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
            program: ".a",
            vars: b"[1]",
            max_output: 7,
            body: b"{\"a\":1}",
        };
        let frame = request.encode();
        let payload = read_frame(&mut &frame[..])
            .ok()
            .flatten()
            .unwrap_or_default();
        let decoded = Request::decode(&payload);
        assert!(decoded.is_some_and(|r| r.program == ".a"
            && r.vars == b"[1]"
            && r.max_output == 7
            && r.body == b"{\"a\":1}"));
        assert!(Request::decode(&payload[..6]).is_none());

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
}
