//! The topic and the payload of one webhook: the body as received, or the original's
//! Shelly Gen2 / Tasmota shapes.

use bytes::Bytes;
use webhook_core::{BuildError, DataType, Delivery};

use crate::config::MqttConfig;
use crate::error::MqttError;

/// How a webhook becomes a message.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// The final topic (prefix and device scheme applied).
    pub(crate) topic: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    /// The body as received.
    Raw,
    /// `{"id": <device_id>, "source": "webhook", "params": <object body or {"data": body}>}`.
    Shelly { id: String },
    /// `<object body>` or `{"data": body}`.
    Tasmota,
}

impl Shape {
    pub(crate) fn from_config(config: &MqttConfig) -> Result<Self, BuildError> {
        check_topic("topic", &config.topic)?;
        if let Some(format) = &config.format
            && !matches!(format.as_str(), "json" | "raw")
        {
            return Err(BuildError::key("format", "must be `json` or `raw`"));
        }
        if config.qos > 2 {
            return Err(BuildError::key("qos", "must be 0, 1 or 2"));
        }
        let (mut topic, kind) = if config.shelly_gen2_format {
            let id = match &config.device_id {
                None => "webhook".to_owned(),
                Some(serde_json::Value::String(id)) => id.clone(),
                Some(other) => other.to_string(),
            };
            (config.topic.clone(), Kind::Shelly { id })
        } else if config.tasmota_format {
            let device = config.device_name.as_deref().unwrap_or("webhook");
            check_device_token("device_name", device)?;
            let topic = match config.tasmota_type.as_deref().unwrap_or("cmnd") {
                "cmnd" => {
                    let command = config.command.as_deref().unwrap_or("webhook");
                    check_device_token("command", command)?;
                    format!("cmnd/{device}/{command}")
                }
                "stat" => format!("stat/{device}/status"),
                _ => format!("tele/{device}/telemetry"),
            };
            (topic, Kind::Tasmota)
        } else {
            (config.topic.clone(), Kind::Raw)
        };
        if let Some(prefix) = &config.topic_prefix {
            let prefix = prefix.trim().trim_end_matches('/');
            check_topic("topic_prefix", prefix)?;
            if prefix.starts_with('$') {
                return Err(BuildError::key("topic_prefix", "must not start with `$`"));
            }
            topic = if topic.starts_with('/') {
                format!("{prefix}{topic}")
            } else {
                format!("{prefix}/{topic}")
            };
        }
        check_topic("topic", &topic)?;
        Ok(Self { topic, kind })
    }

    /// The message payload of `delivery`.
    pub(crate) fn payload(&self, delivery: &Delivery) -> Result<Bytes, MqttError> {
        match &self.kind {
            Kind::Raw => Ok(delivery.body.clone()),
            Kind::Shelly { id } => {
                let params = params(delivery)?;
                let id =
                    serde_json::to_string(id).map_err(|e| MqttError::Payload(e.to_string()))?;
                Ok(Bytes::from(format!(
                    r#"{{"id":{id},"source":"webhook","params":{params}}}"#
                )))
            }
            Kind::Tasmota => Ok(Bytes::from(params(delivery)?)),
        }
    }
}

/// A JSON object body as it is (its bytes), anything else as `{"data": <value>}`: a JSON
/// value embedded as received, a blob as a string.
fn params(delivery: &Delivery) -> Result<String, MqttError> {
    let text = delivery.body_str().ok_or_else(|| {
        MqttError::Payload("the Shelly/Tasmota formats need a UTF-8 body".to_owned())
    })?;
    if delivery.data_type == DataType::Json {
        if text.trim_start().starts_with('{') {
            return Ok(text.to_owned());
        }
        return Ok(format!(r#"{{"data":{}}}"#, text.trim()));
    }
    let quoted = serde_json::to_string(text).map_err(|e| MqttError::Payload(e.to_string()))?;
    Ok(format!(r#"{{"data":{quoted}}}"#))
}

/// An MQTT topic one may publish on: 1 to 65,535 bytes, no wildcards (`+`, `#`), no NUL
/// or other control characters.
fn check_topic(key: &str, topic: &str) -> Result<(), BuildError> {
    if topic.is_empty() || topic.len() > 65_535 {
        return Err(BuildError::key(key, "must be 1 to 65535 bytes"));
    }
    if topic.contains(['+', '#']) {
        return Err(BuildError::key(
            key,
            format!("`{topic}` contains a wildcard (`+` or `#`); publish topics cannot"),
        ));
    }
    if topic.chars().any(char::is_control) {
        return Err(BuildError::key(key, "must not contain control characters"));
    }
    if topic.bytes().all(|b| b == b'/') {
        return Err(BuildError::key(key, "must not be only slashes"));
    }
    Ok(())
}

/// A Tasmota device name or command: one topic level.
fn check_device_token(key: &str, token: &str) -> Result<(), BuildError> {
    let ok = !token.trim().is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && !token.contains("..");
    if ok {
        Ok(())
    } else {
        Err(BuildError::key(
            key,
            format!("`{token}` must be letters, digits, `_`, `-` or `.`"),
        ))
    }
}
