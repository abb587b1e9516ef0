//! The `s3` destination: one object per webhook, the body byte for byte, in any
//! S3-compatible store (AWS S3, MinIO, Ceph, s3s…), under
//! `prefix/YYYY/MM/DD/HH/<filename>` (UTC, time of receipt).
//!
//! Requests are signed with AWS Signature V4 by `rusty-s3` and sent over the pipeline's
//! pooled HTTP client ([`webhook_http_client::HttpClient`]). A refused request (wrong secret,
//! missing bucket) is a permanent failure naming S3's error code; 5xx, `SlowDown` and
//! network errors are retryable.
//!
//! ```json
//! {"archive": {"module": "s3", "connection": "store", "module-config": {
//!     "bucket": "webhooks", "prefix": "github", "filename_pattern": "{webhook_id}_{uuid}.json",
//!     "include_headers": true}}}
//! ```

mod config;
mod error;
mod key;
mod module;

pub use config::{S3Config, S3Connection};
pub use module::S3;

/// Add the `s3` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<S3>();
}
