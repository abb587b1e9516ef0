//! The HTTP client that the destinations speaking HTTP share (`http_webhook`, `s3`, and
//! the TLS settings of `websocket`): hyper-util's pooled client, HTTP/1.1 + HTTP/2, rustls
//! with the ring provider and the system roots. One [`HttpClient`] per pipeline lives in
//! `SharedClients` (key `http`), so those destinations share one keep-alive pool.
//!
//! It is not a destination: no destination crate depends on another one.

mod client;
mod error;
mod guard;
mod headers;

pub use client::{HttpClient, tls_config};
pub use error::HttpError;
pub use guard::{GuardConfig, TargetGuard, is_public};
pub use headers::parse_headers;
