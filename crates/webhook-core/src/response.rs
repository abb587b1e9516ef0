//! The fixed answers of the pipeline.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::ResponseBody;

pub(crate) const OK: &str = r#"{"message":"200 OK"}"#;
pub(crate) const NOT_FOUND: &str = r#"{"detail":"Webhook ID not found"}"#;
pub(crate) const METHOD_NOT_ALLOWED: &str = r#"{"detail":"Method Not Allowed"}"#;
pub(crate) const MALFORMED_JSON: &str = r#"{"detail":"Malformed JSON payload"}"#;
pub(crate) const TOO_LARGE: &str = r#"{"detail":"Payload too large"}"#;
pub(crate) const BAD_BODY: &str = r#"{"detail":"Could not read request body"}"#;
pub(crate) const BAD_REQUEST: &str = r#"{"detail":"Bad request"}"#;
pub(crate) const UNAUTHORIZED: &str = r#"{"detail":"Unauthorized"}"#;
pub(crate) const FORBIDDEN: &str = r#"{"detail":"Forbidden"}"#;
pub(crate) const UNPROCESSABLE: &str = r#"{"detail":"Payload does not match the schema"}"#;
pub(crate) const TOO_MANY: &str = r#"{"detail":"Too many requests"}"#;
pub(crate) const DELIVERY_FAILED: &str = r#"{"detail":"Delivery failed","retryable":true}"#;
pub(crate) const DELIVERY_REJECTED: &str = r#"{"detail":"Delivery failed","retryable":false}"#;
pub(crate) const SPOOL_FULL: &str =
    r#"{"detail":"Cannot store the webhook durably right now","retryable":true}"#;
pub(crate) const UNAVAILABLE: &str = r#"{"detail":"Destination unavailable","retryable":true}"#;

/// A JSON response with a static body.
pub(crate) fn json(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    json_bytes(status, Bytes::from_static(body.as_bytes()))
}

/// A JSON response with an owned body.
pub(crate) fn json_bytes(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Set `Retry-After` in whole seconds, rounded up, at least 1.
pub(crate) fn set_retry_after(response: &mut Response<ResponseBody>, delay: Duration) {
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
}
