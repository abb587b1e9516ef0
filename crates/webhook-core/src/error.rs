use std::borrow::Cow;
use std::time::Duration;

use http::StatusCode;

/// How a failed delivery should be treated by the sender and by retry logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The destination could not be reached (connection refused, broker down, …). Worth
    /// retrying; the sender is answered 503.
    Unavailable,
    /// A transient failure (timeout, server error, …). Worth retrying; answered 502.
    Retryable,
    /// Retrying the same payload will fail again (rejected by the destination, bad
    /// credentials, …). Answered 502.
    Permanent,
}

impl ErrorClass {
    /// Whether retrying the same delivery may succeed.
    pub fn is_retryable(self) -> bool {
        !matches!(self, ErrorClass::Permanent)
    }

    /// A short label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Retryable => "retryable",
            ErrorClass::Permanent => "permanent",
        }
    }
}

/// A failed delivery, as reported by a destination.
///
/// Destinations classify their errors ([`ErrorClass`]) and never sleep or retry themselves:
/// retries, backoff and timeouts wrap destinations in the pipeline.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ModuleError {
    class: ErrorClass,
    message: Cow<'static, str>,
    retry_after: Option<Duration>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ModuleError {
    /// A failure of the given class with a message for the log (never sent to the sender).
    pub fn new(class: ErrorClass, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            class,
            message: message.into(),
            retry_after: None,
            source: None,
        }
    }

    /// The destination is unreachable (answered 503, retryable).
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::Unavailable, message)
    }

    /// A transient failure (answered 502, retryable).
    pub fn retryable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::Retryable, message)
    }

    /// A failure that retrying will not fix (answered 502).
    pub fn permanent(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorClass::Permanent, message)
    }

    /// Attach the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Attach a delay the destination asked for (e.g. an HTTP `Retry-After`).
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The class of this failure.
    pub fn class(&self) -> ErrorClass {
        self.class
    }

    /// Whether retrying may succeed.
    pub fn is_retryable(&self) -> bool {
        self.class.is_retryable()
    }

    /// The delay the destination asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The message followed by its chain of sources, for logs.
    pub fn chain(&self) -> String {
        let mut text = self.message.to_string();
        let mut next = std::error::Error::source(self);
        while let Some(err) = next {
            text.push_str(": ");
            text.push_str(&err.to_string());
            next = err.source();
        }
        text
    }
}

/// A destination or validator could not be built from its configuration.
///
/// `key` is the path of the offending key inside the module's own config (for example
/// `path` or `retry.max_attempts`); the config loader prefixes the file and webhook id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BuildError {
    /// Path of the key inside the module/validator config, empty when it concerns the whole.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl BuildError {
    /// An error about one key of the config.
    pub fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }

    /// An error about the config as a whole (or about connecting at start-up).
    pub fn other(message: impl Into<String>) -> Self {
        Self {
            key: String::new(),
            message: message.into(),
        }
    }
}

/// The family of a validator's rejection, which decides the HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// 400: the request is malformed.
    BadRequest,
    /// 401: authentication failed (missing or wrong credential or signature).
    Unauthorized,
    /// 403: the client is not allowed (IP allow-list).
    Forbidden,
    /// 422: the body does not match the webhook's schema.
    UnprocessableEntity,
    /// 429: too many requests; `Retry-After` is sent.
    TooManyRequests,
    /// 413: the body is larger than this check accepts.
    PayloadTooLarge,
}

impl RejectionKind {
    /// The HTTP status for this kind.
    pub fn status(self) -> StatusCode {
        match self {
            RejectionKind::BadRequest => StatusCode::BAD_REQUEST,
            RejectionKind::Unauthorized => StatusCode::UNAUTHORIZED,
            RejectionKind::Forbidden => StatusCode::FORBIDDEN,
            RejectionKind::UnprocessableEntity => StatusCode::UNPROCESSABLE_ENTITY,
            RejectionKind::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            RejectionKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }
}

/// A request refused by a validator.
///
/// The sender only ever sees a short fixed text for the [`RejectionKind`]; `reason` goes to
/// the log and must not contain secrets or expected signatures either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Which status to answer.
    pub kind: RejectionKind,
    /// A short, fixed, low-cardinality reason for logs and metrics, e.g. `hmac_mismatch`.
    pub reason: &'static str,
    /// For 429: when the sender may try again.
    pub retry_after: Option<Duration>,
    /// For 401: a `WWW-Authenticate` challenge to send (HTTP Digest's nonce).
    pub challenge: Option<http::HeaderValue>,
}

impl Rejection {
    /// 401 with a log reason.
    pub fn unauthorized(reason: &'static str) -> Self {
        Self {
            kind: RejectionKind::Unauthorized,
            reason,
            retry_after: None,
            challenge: None,
        }
    }

    /// 403 with a log reason.
    pub fn forbidden(reason: &'static str) -> Self {
        Self {
            kind: RejectionKind::Forbidden,
            reason,
            retry_after: None,
            challenge: None,
        }
    }

    /// 400 with a log reason.
    pub fn bad_request(reason: &'static str) -> Self {
        Self {
            kind: RejectionKind::BadRequest,
            reason,
            retry_after: None,
            challenge: None,
        }
    }

    /// 422 with a log reason.
    pub fn unprocessable(reason: &'static str) -> Self {
        Self {
            kind: RejectionKind::UnprocessableEntity,
            reason,
            retry_after: None,
            challenge: None,
        }
    }

    /// 413 with a log reason.
    pub fn too_large(reason: &'static str) -> Self {
        Self {
            kind: RejectionKind::PayloadTooLarge,
            reason,
            retry_after: None,
            challenge: None,
        }
    }

    /// 429; `retry_after` is sent as the `Retry-After` header (whole seconds, rounded up).
    pub fn too_many_requests(reason: &'static str, retry_after: Duration) -> Self {
        Self {
            kind: RejectionKind::TooManyRequests,
            reason,
            retry_after: Some(retry_after),
            challenge: None,
        }
    }

    /// 401 with a `WWW-Authenticate` challenge the client answers on its next try.
    pub fn challenge(reason: &'static str, challenge: http::HeaderValue) -> Self {
        Self {
            kind: RejectionKind::Unauthorized,
            reason,
            retry_after: None,
            challenge: Some(challenge),
        }
    }
}
