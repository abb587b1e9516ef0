use webhook_core::ModuleError;

/// What can go wrong publishing to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RabbitError {
    #[error("cannot connect to rabbitmq")]
    Connect(#[source] lapin::Error),
    #[error("not connected to rabbitmq (reconnecting)")]
    Reconnecting,
    #[error("rabbitmq operation failed")]
    Channel(#[source] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no confirmation from the broker in time")]
    Timeout,
    #[error(
        "queue {queue:?} exists with other arguments; set module-config queue_arguments to match them ({broker})"
    )]
    QueueMismatch { queue: String, broker: String },
}

impl From<RabbitError> for ModuleError {
    fn from(err: RabbitError) -> Self {
        let classified = match &err {
            RabbitError::Connect(_) | RabbitError::Reconnecting | RabbitError::Channel(_) => {
                ModuleError::unavailable("rabbitmq is unavailable")
            }
            RabbitError::Nacked | RabbitError::Timeout => {
                ModuleError::retryable("rabbitmq did not take the message")
            }
            RabbitError::QueueMismatch { .. } => {
                return ModuleError::permanent(err.to_string());
            }
        };
        classified.with_source(err)
    }
}
