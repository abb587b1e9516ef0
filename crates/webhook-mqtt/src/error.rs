use webhook_core::ModuleError;

/// What can go wrong publishing to MQTT.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum MqttError {
    #[error("not connected to the mqtt broker: {0}")]
    Unavailable(String),
    #[error("the mqtt broker refused the connection: {0}")]
    Refused(String),
    #[error("no confirmation from the mqtt broker in time")]
    Timeout,
    #[error("{0}")]
    Payload(String),
}

impl From<MqttError> for ModuleError {
    fn from(err: MqttError) -> Self {
        let classified = match &err {
            MqttError::Unavailable(_) => ModuleError::unavailable("the mqtt broker is unavailable"),
            MqttError::Timeout => ModuleError::retryable("the mqtt broker did not confirm"),
            MqttError::Refused(why) => {
                ModuleError::permanent(format!("the mqtt broker refused the connection: {why}"))
            }
            MqttError::Payload(why) => ModuleError::permanent(why.clone()),
        };
        classified.with_source(err)
    }
}
