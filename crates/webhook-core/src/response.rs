//! The fixed answers of the pipeline (and of a server in front of it): each body is a
//! constant, so no answer echoes anything of the request.

use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::ResponseBody;

/// The success answer of every accepted request (and of `GET /`).
pub const OK: &str = r#"{"message":"200 OK"}"#;
/// 200 for a request the webhook's `filter` does not match: not stored, not delivered.
pub const FILTERED: &str = r#"{"message":"200 OK","filtered":true}"#;
/// `404` for an unknown webhook id.
pub const NOT_FOUND: &str = r#"{"detail":"Webhook ID not found"}"#;
/// `405` for a method a route does not take.
pub const METHOD_NOT_ALLOWED: &str = r#"{"detail":"Method Not Allowed"}"#;
/// `400`: a `data_type: json` body that is not JSON (or too deep).
pub const MALFORMED_JSON: &str = r#"{"detail":"Malformed JSON payload"}"#;
/// `413`: a body over the cap.
pub const TOO_LARGE: &str = r#"{"detail":"Payload too large"}"#;
/// `400`: the body could not be read.
pub const BAD_BODY: &str = r#"{"detail":"Could not read request body"}"#;
/// `400` from a validator.
pub const BAD_REQUEST: &str = r#"{"detail":"Bad request"}"#;
/// `401`: authentication or signature failed (also ops routes without the token).
pub const UNAUTHORIZED: &str = r#"{"detail":"Unauthorized"}"#;
/// `403`: the client's address is not allowed.
pub const FORBIDDEN: &str = r#"{"detail":"Forbidden"}"#;
/// `422`: the body does not match the webhook's JSON schema.
pub const UNPROCESSABLE: &str = r#"{"detail":"Payload does not match the schema"}"#;
/// `429`: rate limited.
pub const TOO_MANY: &str = r#"{"detail":"Too many requests"}"#;
/// `502`: a delivery failed and may succeed when retried.
pub const DELIVERY_FAILED: &str = r#"{"detail":"Delivery failed","retryable":true}"#;
/// `502`: a destination refused the webhook for good.
pub const DELIVERY_REJECTED: &str = r#"{"detail":"Delivery failed","retryable":false}"#;
/// `503`: the spool cannot take the request now.
pub const SPOOL_FULL: &str =
    r#"{"detail":"Cannot store the webhook durably right now","retryable":true}"#;
/// `503`: a destination is unreachable.
pub const UNAVAILABLE: &str = r#"{"detail":"Destination unavailable","retryable":true}"#;
/// 431: too many request headers, or a header block over the size cap.
pub const HEADERS_TOO_LARGE: &str = r#"{"detail":"Request header fields too large"}"#;
/// 408: the body did not arrive in time (too slow, or stalled).
pub const BODY_TIMEOUT: &str = r#"{"detail":"Request body not received in time"}"#;
/// 503: the server holds as many request bodies as its memory budget allows.
pub const BUSY: &str = r#"{"detail":"Server busy, retry later","retryable":true}"#;
/// `404` for a path that is no route.
pub const NO_ROUTE: &str = r#"{"detail":"Not Found"}"#;

/// A JSON response with a static body.
pub fn json(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    json_bytes(status, Bytes::from_static(body.as_bytes()))
}

/// A JSON response with an owned body.
pub fn json_bytes(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Set `Retry-After` in whole seconds, rounded up, at least 1.
pub fn set_retry_after(response: &mut Response<ResponseBody>, delay: Duration) {
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
}
