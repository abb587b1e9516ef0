//! Connections and time: how many connections the server holds, how long an idle one may
//! stay, and the protocol limits of the HTTP/1 and HTTP/2 builders. Shared by the webhook
//! listener and `--metrics-listen`.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Limits every connection is served with.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections open at once (webhook port and metrics listener each); past it the
    /// server stops accepting until one closes. Default: see [`default_max_connections`].
    pub max_connections: usize,
    /// How long a connection may stay open with no request in flight: from accept to its
    /// first request (a connection that never sends a byte), and between requests
    /// (default 30 s).
    pub idle_timeout: Duration,
    /// How long a client may take to send its request headers (default 30 s).
    pub header_read_timeout: Duration,
    /// Most request headers (default 100, like the original), on every protocol.
    pub max_headers: usize,
    /// Most bytes of a request's header block (default 32 KiB), on every protocol.
    pub max_header_bytes: usize,
    /// Most concurrent HTTP/2 streams per connection (default 32).
    pub max_h2_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            idle_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(30),
            max_headers: 100,
            max_header_bytes: 32 * 1024,
            max_h2_streams: 32,
        }
    }
}

/// Descriptors kept back from connections for the spool, destinations and logs.
const RESERVED_FDS: u64 = 64;

/// Raise the soft file-descriptor limit to the hard limit and derive the default connection
/// cap from it: 80 % of the limit, less [`RESERVED_FDS`] kept for files and destinations
/// (at least 16). Returns `(limit, cap)`.
pub fn default_max_connections() -> (u64, usize) {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read or raise the file-descriptor limit; assuming 1024");
            1024
        }
    };
    let cap = (limit.saturating_mul(4) / 5)
        .saturating_sub(RESERVED_FDS)
        .max(16);
    (limit, usize::try_from(cap).unwrap_or(usize::MAX))
}

/// The HTTP/1 + HTTP/2 builder with `limits` applied.
pub fn builder(limits: &ConnectionLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        // hyper's read buffer bounds the header block (431 past it); it needs ≥ 8 KiB
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_h2_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// The connection slots of one listener.
#[derive(Debug, Clone)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    /// `max` slots.
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(
            max.clamp(1, Semaphore::MAX_PERMITS),
        )))
    }

    /// Wait for a free slot; held by the connection until it closes.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.0).acquire_owned().await.ok()
    }
}

/// The requests in flight on one connection, and since when it has had none.
#[derive(Debug)]
pub struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Nanoseconds after `opened` when the last request finished.
    idle_since: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
        })
    }

    /// A request started; it counts until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard(Arc::clone(self))
    }

    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_nanos(self.idle_since.load(Ordering::Acquire));
        Some(self.opened + since + timeout)
    }
}

/// Marks one request in flight (see [`Activity::request`]).
#[derive(Debug)]
pub struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.opened.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.0.idle_since.store(now, Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A stream whose reads fail with `TimedOut` once the connection has had no request in
/// flight for the idle timeout, whatever bytes trickle in (a connection that never sends a
/// byte, one idle between requests, an HTTP/2 connection kept open with pings).
#[derive(Debug)]
pub struct IdleTimeout<S> {
    inner: S,
    activity: Arc<Activity>,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl<S> IdleTimeout<S> {
    /// Wrap `inner`; the returned [`Activity`] is what the connection's requests mark.
    pub fn new(inner: S, timeout: Duration) -> (Self, Arc<Activity>) {
        let activity = Activity::new();
        let deadline = tokio::time::Instant::now() + timeout;
        let stream = Self {
            inner,
            activity: Arc::clone(&activity),
            timeout,
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed: None,
        };
        (stream, activity)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Poll::Ready(done) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            return Poll::Ready(done);
        }
        let Some(deadline) = this.activity.idle_deadline(this.timeout) else {
            return Poll::Pending;
        };
        if this.armed != Some(deadline) {
            this.sleep
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            this.armed = Some(deadline);
        }
        match this.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "connection idle for too long",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Whether a request's header block is within `limits` (HTTP/1 is bounded by hyper as it
/// parses; this also bounds HTTP/2, whose HPACK list size counts differently).
pub fn headers_within(headers: &http::HeaderMap, limits: &ConnectionLimits) -> bool {
    if headers.len() > limits.max_headers {
        return false;
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    bytes <= limits.max_header_bytes
}
