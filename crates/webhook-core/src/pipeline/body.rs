//! Reading a request body within its limits: the size cap, a deadline that grows with the
//! bytes received (a minimum rate), and the server-wide budget of body bytes in memory.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;
use http::header::CONTENT_LENGTH;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The bytes of request bodies the server may hold at once, across every request and
/// connection (read so far, or held until the request is answered). Cheap to clone: every
/// pipeline built by one server shares one budget.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    bytes: Arc<Semaphore>,
    max: usize,
}

impl BodyBudget {
    /// A budget of `max` bytes.
    pub fn new(max: u64) -> Self {
        let max = usize::try_from(max)
            .unwrap_or(usize::MAX)
            .clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The budget's size in bytes.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes taken right now.
    pub fn in_use(&self) -> usize {
        self.max - self.bytes.available_permits()
    }

    /// Take `bytes` more into `hold`; `false` when the budget has not that much left.
    fn take(&self, hold: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> bool {
        if bytes == 0 {
            return true;
        }
        let Ok(n) = u32::try_from(bytes) else {
            return false;
        };
        match Arc::clone(&self.bytes).try_acquire_many_owned(n) {
            Ok(permit) => {
                match hold {
                    Some(held) => held.merge(permit),
                    None => *hold = Some(permit),
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// How a body must arrive.
#[derive(Debug, Clone, Copy)]
pub(super) struct BodyLimits {
    /// Most bytes.
    pub(super) max_bytes: usize,
    /// Time allowed before any byte counts (the body's first `timeout` is free).
    pub(super) timeout: Duration,
    /// Bytes per second the body must keep up after that (0: no minimum rate).
    pub(super) min_rate: u64,
}

/// Why a body was not read.
pub(super) enum BodyError {
    /// Over the size cap.
    TooLarge,
    /// Too slow or stalled: not complete by its deadline.
    TimedOut,
    /// The server holds as many body bytes as its budget allows.
    Busy,
    /// The connection failed while the body was read.
    Read(Box<dyn std::error::Error + Send + Sync>),
}

/// A body read whole, with its share of the budget (given back when dropped).
pub(super) struct ReadBody {
    pub(super) bytes: Bytes,
    pub(super) _hold: Option<OwnedSemaphorePermit>,
}

/// Read the whole body: refused at once when `Content-Length` passes the cap or the budget,
/// refused as soon as the bytes received do, and timed out when, `timeout` after the start,
/// fewer than `min_rate` bytes per second have arrived since.
pub(super) async fn read_body<B>(
    body: B,
    headers: &HeaderMap,
    limits: BodyLimits,
    budget: &BodyBudget,
) -> Result<ReadBody, BodyError>
where
    B: http_body::Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let limit = limits.max_bytes as u64;
    if declared.is_some_and(|len| len > limit) || body.size_hint().lower() > limit {
        return Err(BodyError::TooLarge);
    }
    let mut hold = None;
    let mut reserved = 0usize;
    if let Some(len) = declared {
        reserved = usize::try_from(len).map_err(|_| BodyError::TooLarge)?;
        if !budget.take(&mut hold, reserved) {
            return Err(BodyError::Busy);
        }
    }

    let start = Instant::now();
    let deadline = |received: usize| {
        let earned = match limits.min_rate {
            0 => Duration::from_secs(365 * 24 * 3600),
            rate => Duration::from_secs_f64(received as f64 / rate as f64),
        };
        start + limits.timeout + earned
    };
    let mut body = pin!(body);
    let sleep = tokio::time::sleep_until(deadline(0));
    let mut sleep = pin!(sleep);
    // The chunks as they came (memory = bytes received, never what `Content-Length`
    // promised), joined once at the end.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0usize;
    loop {
        let frame = tokio::select! {
            biased;
            frame = body.frame() => frame,
            () = &mut sleep => return Err(BodyError::TimedOut),
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|err| BodyError::Read(err.into()))?;
        let Ok(mut data) = frame.into_data() else {
            continue; // trailers
        };
        let data = data.copy_to_bytes(data.remaining());
        if data.is_empty() {
            continue;
        }
        received += data.len();
        if received > limits.max_bytes {
            return Err(BodyError::TooLarge);
        }
        if received > reserved {
            if !budget.take(&mut hold, received - reserved) {
                return Err(BodyError::Busy);
            }
            reserved = received;
        }
        chunks.push(data);
        if limits.min_rate > 0 {
            sleep.as_mut().reset(deadline(received));
        }
    }
    let bytes = match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = BytesMut::with_capacity(received);
            for chunk in &chunks {
                joined.extend_from_slice(chunk);
            }
            joined.freeze()
        }
    };
    // Keep only what is held: a Content-Length that promised more than came is given back.
    if reserved > received
        && let Some(held) = &mut hold
        && let Some(extra) = held.split(reserved - received)
    {
        drop(extra);
    }
    Ok(ReadBody { bytes, _hold: hold })
}
