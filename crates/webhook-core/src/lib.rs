//! `webhook-core`: the heart of the webhook gateway.
//!
//! This crate knows how a webhook travels from an HTTP request to a destination, and nothing
//! about any particular destination or HTTP server:
//!
//! * [`Module`] is a destination (Kafka, RabbitMQ, a directory on disk, …). Each destination
//!   lives in its own crate and is added to a [`Registry`] by the program that embeds us.
//! * [`Validator`] checks a request before it is delivered (IP allow-list, authorization,
//!   HMAC, rate limit, …).
//! * [`transform`] languages (jq, JavaScript) reshape what one destination gets, at
//!   delivery time, from the spooled bytes.
//! * [`config`] parses the `webhooks.json` / `connections.json` pair of the original Python
//!   service, with `{$VAR}` substitution and errors that name the file, webhook id and key.
//! * [`Pipeline`] runs one request: bounded body read → lookup → validators → `data_type`
//!   check → spool it (`ack: persisted`) or deliver it while the sender waits
//!   (`delivered`) → answer. Every ack mode delivers through the same attempt loop and
//!   retry policy. It speaks plain [`http`] types, so it can be embedded in any hyper, axum
//!   or tower server.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use webhook_core::{config::{ConfigSource, Env}, Pipeline, PipelineOptions, Registry};
//!
//! let registry = Registry::new(); // add destinations and validators here
//! let webhooks = ConfigSource::new("webhooks.json", r#"{"demo": {"module": "log"}}"#);
//! let config = webhook_core::config::parse(&registry, &webhooks, None, &Env::process())?;
//! let pipeline = Pipeline::build(config, PipelineOptions::default()).await?;
//! # let _ = pipeline; Ok(()) }
//! ```

#![warn(missing_docs)] // every public item of the crate other services embed is documented

mod attempt;
pub mod cleanup;
pub mod config;
mod delivery;
mod error;
pub mod filter;
pub mod history;
mod json;
mod metrics;
mod module;
mod outbox;
mod pipeline;
mod redact;
mod registry;
pub mod response;
mod retry;
mod shared;
pub mod spool;
pub mod stats;
pub mod transform;
mod validator;

pub use delivery::{DataType, Delivery, is_sensitive_header};
pub use error::{BuildError, ErrorClass, ModuleError, Rejection, RejectionKind};
pub use module::{BuildContext, DynModule, Module, NoConnection};
pub use outbox::SharedSpoolOptions;
pub use pipeline::{
    BodyBudget, DryRunError, Handled, Health, Pipeline, PipelineOptions, ResponseBody, Sample,
};
pub use redact::url_for_logs;
pub use registry::Registry;
pub use shared::SharedClients;
pub use spool::{DeadLetter, Spool, SpoolError, SpoolOptions};

pub use validator::{Answer, Check, DynValidator, RequestView, Validator};

/// Boxed, sendable future used by the object-safe twins of [`Module`] and [`Validator`].
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
