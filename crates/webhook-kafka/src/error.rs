use rskafka::client::error::{Error as ClientError, ProtocolError};
use webhook_core::ModuleError;

/// What can go wrong producing to Kafka.
#[derive(Debug, thiserror::Error)]
pub(crate) enum KafkaError {
    #[error("cannot connect to kafka")]
    Connect(#[source] ClientError),
    #[error("not connected to kafka (reconnecting)")]
    Reconnecting,
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    #[error("kafka request failed")]
    Client(#[source] ClientError),
    #[error("producing failed")]
    Produce(#[source] rskafka::client::producer::Error),
    #[error("no acknowledgement from kafka in time")]
    Timeout,
}

impl From<KafkaError> for ModuleError {
    fn from(err: KafkaError) -> Self {
        let classified = match &err {
            KafkaError::Connect(_) | KafkaError::Reconnecting | KafkaError::Timeout => {
                ModuleError::unavailable("kafka is unavailable")
            }
            KafkaError::UnknownTopic(_) => ModuleError::permanent("the topic does not exist"),
            KafkaError::Client(e) => classify(e),
            KafkaError::Produce(rskafka::client::producer::Error::Client(e)) => classify(e),
            KafkaError::Produce(rskafka::client::producer::Error::TooLarge) => {
                ModuleError::permanent("the record is too large for a batch")
            }
            KafkaError::Produce(_) => ModuleError::retryable("producing failed"),
        };
        classified.with_source(err)
    }
}

fn classify(err: &ClientError) -> ModuleError {
    match err {
        ClientError::Connection(_)
        | ClientError::Request(_)
        | ClientError::RetryFailed(_)
        | ClientError::Timeout => ModuleError::unavailable("kafka is unreachable"),
        ClientError::ServerError {
            protocol_error: ProtocolError::UnknownTopicOrPartition | ProtocolError::MessageTooLarge,
            ..
        } => ModuleError::permanent("kafka refused the record"),
        _ => ModuleError::retryable("kafka request failed"),
    }
}
