//! The `mqtt` destination: publishes each webhook to an MQTT broker (MQTT 3.1.1, rumqttc)
//! over one long-lived session per connections.json entry, and answers only once the broker
//! confirmed the message: PUBACK for QoS 1 (the default), PUBCOMP for QoS 2. QoS 0 cannot
//! be confirmed; it is allowed with a warning at start-up.
//!
//! The message is the body as received; the original's Shelly Gen2 and Tasmota shapes
//! (`shelly_gen2_format`, `tasmota_format`) wrap it and pick the topic as it does.
//!
//! ```json
//! {"sensors": {"module": "mqtt", "connection": "mqtt",
//!              "module-config": {"topic": "webhook/events", "qos": 1, "topic_prefix": "devices"}}}
//! ```

mod config;
mod error;
mod message;
mod module;
mod session;

pub use config::{MqttConfig, MqttConnection};
pub use module::Mqtt;

/// Add the `mqtt` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<Mqtt>();
}
