//! The webhook gateway server: hyper + tokio around [`webhook_core::Pipeline`].
//!
//! The binary (`main.rs`) parses the command line and config files; this library part holds
//! the HTTP front ([`server`]) and the registry of this build ([`registry`]), so tests and
//! other programs can start the same server.

pub mod admin_client;
pub mod connection;
pub mod dead_letters_api;
pub mod events;
pub mod health;
pub mod history_api;
pub mod live;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod overview;
pub mod registry;
mod routes;
pub mod server;
pub mod ui;
