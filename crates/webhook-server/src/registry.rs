//! The one list of what this build offers: every destination and validator, one line each.
//!
//! Adding a destination = a new crate + a feature line in Cargo.toml + one line here.

use webhook_core::Registry;

/// The registry of this build: validators in the order they run, then destinations.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    webhook_validators::register(&mut registry);

    webhook_log::register(&mut registry);
    #[cfg(feature = "save_to_disk")]
    webhook_disk::register(&mut registry);
    #[cfg(not(feature = "save_to_disk"))]
    registry.not_in_build("save_to_disk", "save_to_disk");
    #[cfg(feature = "redis")]
    webhook_redis::register(&mut registry);
    #[cfg(not(feature = "redis"))]
    registry
        .not_in_build("redis_rq", "redis")
        .not_in_build("redis_publish", "redis");
    #[cfg(feature = "rabbitmq")]
    webhook_rabbitmq::register(&mut registry);
    #[cfg(not(feature = "rabbitmq"))]
    registry.not_in_build("rabbitmq", "rabbitmq");
    #[cfg(feature = "kafka")]
    webhook_kafka::register(&mut registry);
    #[cfg(not(feature = "kafka"))]
    registry.not_in_build("kafka", "kafka");

    #[cfg(feature = "http")]
    webhook_http::register(&mut registry);
    #[cfg(not(feature = "http"))]
    registry.not_in_build("http_webhook", "http");
    #[cfg(feature = "s3")]
    webhook_s3::register(&mut registry);
    #[cfg(not(feature = "s3"))]
    registry.not_in_build("s3", "s3");
    #[cfg(feature = "websocket")]
    webhook_websocket::register(&mut registry);
    #[cfg(not(feature = "websocket"))]
    registry.not_in_build("websocket", "websocket");

    registry
}

/// One line per destination and validator, for `--version`.
pub fn describe(registry: &Registry) -> String {
    format!(
        "{}\ndestinations: {}\nvalidators: {}",
        env!("CARGO_PKG_VERSION"),
        registry.module_kinds().join(", "),
        registry.validator_keys().join(", ")
    )
}
