use webhook_core::ModuleError;

/// What can go wrong delivering to Redis.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisError {
    #[error("redis command failed")]
    Command(#[from] fred::error::Error),
    #[error("cannot serialize the job: {0}")]
    Pickle(#[from] serde_pickle::Error),
    #[error("the body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a blob body must be UTF-8 for the json serializer")]
    BlobNotUtf8,
    #[error("cannot compress the job data: {0}")]
    Compress(#[from] std::io::Error),
}

impl From<RedisError> for ModuleError {
    fn from(err: RedisError) -> Self {
        use fred::error::ErrorKind;
        let classified = match &err {
            RedisError::Command(e) => match e.kind() {
                ErrorKind::IO
                | ErrorKind::Timeout
                | ErrorKind::Canceled
                | ErrorKind::Backpressure => ModuleError::unavailable("redis is unreachable"),
                ErrorKind::Auth
                | ErrorKind::Config
                | ErrorKind::InvalidCommand
                | ErrorKind::InvalidArgument => ModuleError::permanent("redis refused the command"),
                _ => ModuleError::retryable("redis command failed"),
            },
            RedisError::Pickle(_) | RedisError::Json(_) | RedisError::BlobNotUtf8 => {
                ModuleError::permanent("cannot encode the payload")
            }
            RedisError::Compress(_) => ModuleError::retryable("cannot compress the job"),
        };
        classified.with_source(err)
    }
}
