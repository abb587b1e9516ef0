//! Writing your own destination and running a request through the pipeline, no network.
//!
//! `cargo run -p webhook-examples --example custom_destination`

#![allow(clippy::print_stdout)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde::Deserialize;
use webhook_core::config::{self, ConfigSource, Env};
use webhook_core::{
    BuildContext, BuildError, Delivery, Module, ModuleError, NoConnection, Pipeline,
    PipelineOptions, Registry,
};

/// A destination that counts bytes and refuses bodies over a configured size.
struct ByteCounter {
    max_bytes: usize,
    total: AtomicU64,
}

/// Its `module-config`: strict, so a typo is a config error naming the key.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByteCounterConfig {
    max_bytes: usize,
}

impl Module for ByteCounter {
    const KIND: &'static str = "byte_counter";
    type Config = ByteCounterConfig;
    type Connection = NoConnection;

    async fn build(
        config: ByteCounterConfig,
        _: Option<NoConnection>,
        _: &BuildContext,
    ) -> Result<Self, BuildError> {
        if config.max_bytes == 0 {
            return Err(BuildError::key("max_bytes", "must be at least 1"));
        }
        Ok(Self {
            max_bytes: config.max_bytes,
            total: AtomicU64::new(0),
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        if delivery.body.len() > self.max_bytes {
            // Classify; never retry or sleep here: the pipeline does that.
            return Err(ModuleError::permanent("body larger than max_bytes"));
        }
        let total = self
            .total
            .fetch_add(delivery.body.len() as u64, Ordering::Relaxed);
        println!(
            "{}: {} bytes (total {})",
            delivery.webhook_id,
            delivery.body.len(),
            total + delivery.body.len() as u64
        );
        Ok(())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::new();
    webhook_validators::register(&mut registry);
    registry.register_module::<ByteCounter>();

    let webhooks = ConfigSource::new(
        "inline webhooks.json",
        // `ack: delivered`: answer after the destination confirmed, so its refusal shows in
        // the response (the default, `persisted`, answers once the request is spooled).
        r#"{"count": {"module": "byte_counter", "module-config": {"max_bytes": 16}, "ack": "delivered",
                       "authorization": "Bearer {$EXAMPLE_TOKEN:let-me-in}"}}"#,
    );
    let config = config::parse(&registry, &webhooks, None, &Env::process())?;
    let pipeline = Pipeline::build(config, PipelineOptions::default()).await?;

    let peer: SocketAddr = "127.0.0.1:50000".parse()?;
    for (token, body) in [
        ("let-me-in", "{\"a\": 1}"),
        ("wrong", "{}"),
        ("let-me-in", "{\"much\": \"too long\"}"),
    ] {
        let request = Request::post("/webhook/count")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::from(body)))?;
        let response = pipeline.handle_webhook("count", request, peer).await;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        println!("{status} {}", String::from_utf8_lossy(&answer));
    }
    Ok(())
}
