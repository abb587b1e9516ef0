use http::StatusCode;
use webhook_core::ModuleError;
use webhook_http_client::HttpError;

/// What can go wrong storing an object.
#[derive(Debug, thiserror::Error)]
pub(crate) enum S3Error {
    #[error("S3 request failed")]
    Http(#[source] HttpError),
    #[error("the signed URL is not a valid URI")]
    Url(#[source] http::uri::InvalidUri),
    #[error("S3 answered {status} {code}: {message}")]
    Refused {
        status: StatusCode,
        code: String,
        message: String,
    },
}

impl S3Error {
    /// An error answer of S3: its status, and `<Code>`/`<Message>` from the XML body.
    pub(crate) fn refused(status: StatusCode, body: &[u8]) -> Self {
        let text = String::from_utf8_lossy(body);
        let element = |name: &str| {
            let open = format!("<{name}>");
            let close = format!("</{name}>");
            text.find(&open)
                .and_then(|start| {
                    let from = start + open.len();
                    text[from..]
                        .find(&close)
                        .map(|end| text[from..from + end].to_owned())
                })
                .unwrap_or_default()
        };
        Self::Refused {
            status,
            code: element("Code"),
            message: element("Message"),
        }
    }
}

impl From<S3Error> for ModuleError {
    fn from(err: S3Error) -> Self {
        match err {
            S3Error::Http(http) => ModuleError::from(http),
            S3Error::Url(_) => {
                ModuleError::permanent("cannot build the S3 request").with_source(err)
            }
            S3Error::Refused { status, .. } => {
                if HttpError::status_is_retryable(status) {
                    ModuleError::retryable("S3 failed").with_source(err)
                } else {
                    ModuleError::permanent("S3 refused the object").with_source(err)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_code_is_read_from_the_body() {
        let err = S3Error::refused(
            StatusCode::FORBIDDEN,
            b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>nope</Message></Error>",
        );
        assert_eq!(
            err.to_string(),
            "S3 answered 403 Forbidden SignatureDoesNotMatch: nope"
        );
        assert!(!ModuleError::from(err).is_retryable());
        let slow = S3Error::refused(StatusCode::SERVICE_UNAVAILABLE, b"<Code>SlowDown</Code>");
        assert!(ModuleError::from(slow).is_retryable());
    }
}
