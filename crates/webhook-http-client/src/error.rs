use std::time::Duration;

use http::StatusCode;
use webhook_core::ModuleError;

/// What can go wrong sending a request to an HTTP target.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// TLS could not be set up.
    #[error("{0}")]
    Tls(String),
    /// No connection to the target.
    #[error("cannot connect to the target")]
    Connect(#[source] hyper_util::client::legacy::Error),
    /// The request failed after connecting (reset, protocol error, …).
    #[error("the request to the target failed")]
    Request(#[source] hyper_util::client::legacy::Error),
    /// No complete answer within the configured timeout.
    #[error("no answer from the target within {0:?}")]
    Timeout(Duration),
    /// The target answered with a status other than 2xx.
    #[error("the target answered {status}{}", detail(.body))]
    Status {
        /// The status the target answered.
        status: StatusCode,
        /// Its `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
        /// The start of its answer, for the log.
        body: String,
    },
}

fn detail(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

impl HttpError {
    /// Whether a status is worth retrying: 408, 429 and 5xx.
    pub fn status_is_retryable(status: StatusCode) -> bool {
        status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
            || status.is_server_error()
    }
}

impl From<HttpError> for ModuleError {
    fn from(err: HttpError) -> Self {
        let classified = match &err {
            HttpError::Connect(_) => ModuleError::unavailable("the HTTP target is unreachable"),
            HttpError::Request(_) | HttpError::Timeout(_) => {
                ModuleError::retryable("the HTTP target did not answer")
            }
            HttpError::Tls(_) => ModuleError::permanent("TLS is not available"),
            HttpError::Status {
                status,
                retry_after,
                ..
            } => {
                let classified = if HttpError::status_is_retryable(*status) {
                    ModuleError::retryable("the HTTP target failed")
                } else {
                    ModuleError::permanent("the HTTP target refused the webhook")
                };
                match retry_after {
                    Some(delay) => classified.with_retry_after(*delay),
                    None => classified,
                }
            }
        };
        classified.with_source(err)
    }
}
