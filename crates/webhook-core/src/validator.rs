use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri};
use serde::de::DeserializeOwned;

use crate::{BoxFuture, BuildError, Rejection};

/// What a validator sees of a request: everything but the ability to change it.
#[derive(Debug)]
pub struct RequestView<'a> {
    /// The webhook id.
    pub webhook_id: &'a str,
    /// The request method.
    pub method: &'a Method,
    /// The request URI (path and query).
    pub uri: &'a Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The socket peer address.
    pub peer: SocketAddr,
    /// The client address: the peer, or the `X-Forwarded-For` client when the peer is a
    /// configured trusted proxy.
    pub client_ip: IpAddr,
    /// The raw body bytes, exactly as received.
    pub body: &'a Bytes,
    /// When the request was received.
    pub received_at: SystemTime,
}

/// A request a validator answers itself, without delivering it: a provider's URL
/// handshake (Slack `url_verification`, Zoom `endpoint.url_validation`) or a duplicate
/// delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The status to answer with.
    pub status: StatusCode,
    /// The JSON body to answer with.
    pub body: Bytes,
    /// A short, fixed reason for logs, e.g. `duplicate` or `url_verification`.
    pub reason: &'static str,
    /// Whether this answers a delivery seen before (counted as `duplicates` in `/stats`).
    pub duplicate: bool,
}

/// The outcome of [`Validator::check`]: decided at once, or after an async look-up.
pub enum Check<'a> {
    /// The request passes this validator.
    Pass,
    /// The request is refused.
    Reject(Rejection),
    /// The request is answered as given, and not delivered.
    Answer(Answer),
    /// The decision needs I/O (e.g. a shared store); await it. `Ok(None)` passes.
    Pending(BoxFuture<'a, Result<Option<Answer>, Rejection>>),
}

impl std::fmt::Debug for Check<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Check::Pass => f.write_str("Pass"),
            Check::Reject(r) => f.debug_tuple("Reject").field(r).finish(),
            Check::Answer(a) => f.debug_tuple("Answer").field(a).finish(),
            Check::Pending(_) => f.write_str("Pending"),
        }
    }
}

impl From<Result<(), Rejection>> for Check<'_> {
    fn from(result: Result<(), Rejection>) -> Self {
        match result {
            Ok(()) => Check::Pass,
            Err(rejection) => Check::Reject(rejection),
        }
    }
}

/// A check run on every request of a webhook before it is delivered.
///
/// A validator is configured by one key of the webhook entry ([`Validator::KEY`], e.g.
/// `"hmac"`). Validators run in the order they were registered; the first rejection wins.
/// Implementations verify over the raw body, compare secrets in constant time and never put
/// an expected value into a [`Rejection`].
pub trait Validator: Sized + Send + Sync + 'static {
    /// The webhook-entry key that configures this validator.
    const KEY: &'static str;

    /// The type of that key's value.
    type Config: DeserializeOwned;

    /// Build the validator from its config (no I/O).
    fn build(config: Self::Config) -> Result<Self, BuildError>;

    /// Whether `config` asks for a check at all (default: yes). The original's files switch
    /// some checks off in place (`"authorization": ""`, `"rate_limit": {"enabled": false}`):
    /// such a key loads and adds no validator.
    fn enabled(config: &Self::Config) -> bool {
        let _ = config;
        true
    }

    /// Check one request.
    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a>;

    /// Called after the request was delivered to every destination (e.g. to remember its
    /// delivery id for de-duplication); the default does nothing.
    fn delivered<'a>(&'a self, request: &'a RequestView<'a>) -> BoxFuture<'a, ()> {
        let _ = request;
        Box::pin(async {})
    }

    /// Whether [`Validator::delivered`] does anything (lets the pipeline skip the call).
    fn wants_delivered(&self) -> bool {
        false
    }

    /// Whether [`Validator::check`] reads the body (default `true`). The validators at the
    /// front of a webhook's list that do not (IP allow-list, credentials, JWT, a rate limit
    /// with no signature check before it) run before the body is read, so a refused
    /// client never makes the server buffer a body; their [`RequestView::body`] is empty.
    fn needs_body(&self) -> bool {
        true
    }

    /// The request headers that carry this validator's credential (a bearer token, an API
    /// key, a shared token), which would let whoever sees them call the gateway as the
    /// sender. They are taken off the request before destinations get it, unless the
    /// webhook sets `forward_credentials: true`. Signatures, which cover one body only,
    /// are not credentials.
    fn credential_headers(&self) -> Vec<http::HeaderName> {
        Vec::new()
    }
}

/// The object-safe twin of [`Validator`], implemented for every `Validator`.
pub trait DynValidator: Send + Sync + 'static {
    /// The webhook-entry key of this validator.
    fn key(&self) -> &'static str;
    /// See [`Validator::check`].
    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a>;
    /// See [`Validator::delivered`].
    fn delivered<'a>(&'a self, request: &'a RequestView<'a>) -> BoxFuture<'a, ()>;
    /// See [`Validator::wants_delivered`].
    fn wants_delivered(&self) -> bool;
    /// See [`Validator::needs_body`].
    fn needs_body(&self) -> bool;
    /// See [`Validator::credential_headers`].
    fn credential_headers(&self) -> Vec<http::HeaderName>;
}

impl<V: Validator> DynValidator for V {
    fn key(&self) -> &'static str {
        V::KEY
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        Validator::check(self, request)
    }

    fn delivered<'a>(&'a self, request: &'a RequestView<'a>) -> BoxFuture<'a, ()> {
        Validator::delivered(self, request)
    }

    fn wants_delivered(&self) -> bool {
        Validator::wants_delivered(self)
    }

    fn needs_body(&self) -> bool {
        Validator::needs_body(self)
    }

    fn credential_headers(&self) -> Vec<http::HeaderName> {
        Validator::credential_headers(self)
    }
}
