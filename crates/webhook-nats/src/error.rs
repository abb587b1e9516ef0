use async_nats::jetstream::context::PublishErrorKind;
use webhook_core::ModuleError;

/// What can go wrong publishing to NATS.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NatsError {
    #[error("not connected to nats (reconnecting)")]
    Disconnected,
    #[error("nats publish failed")]
    Publish(#[source] async_nats::PublishError),
    #[error("nats flush failed")]
    Flush(#[source] async_nats::client::FlushError),
    #[error("no confirmation from nats in time")]
    Timeout,
    #[error("jetstream publish failed: {0}")]
    JetStream(#[source] async_nats::jetstream::context::PublishError),
    #[error("cannot look up the jetstream stream of subject {subject:?}")]
    Lookup {
        subject: String,
        #[source]
        source: async_nats::jetstream::context::GetStreamByNameError,
    },
}

impl From<NatsError> for ModuleError {
    fn from(err: NatsError) -> Self {
        let classified = match &err {
            NatsError::Disconnected | NatsError::Flush(_) | NatsError::Publish(_) => {
                ModuleError::unavailable("nats is unavailable")
            }
            NatsError::Timeout | NatsError::Lookup { .. } => {
                ModuleError::retryable("nats did not confirm the message")
            }
            NatsError::JetStream(e) => match e.kind() {
                PublishErrorKind::StreamNotFound => {
                    return ModuleError::permanent(
                        "no jetstream stream captures this subject (create one, or set \
                         `jetstream: false` for core nats)",
                    )
                    .with_source(err);
                }
                PublishErrorKind::MaxPayloadExceeded => {
                    return ModuleError::permanent(
                        "the message exceeds the nats server's max_payload",
                    )
                    .with_source(err);
                }
                PublishErrorKind::BrokenPipe => ModuleError::unavailable("nats is unavailable"),
                _ => ModuleError::retryable("jetstream did not take the message"),
            },
        };
        classified.with_source(err)
    }
}
