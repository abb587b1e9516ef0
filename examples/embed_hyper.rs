//! Embedding the webhook pipeline in your own hyper server, under your own routes.
//!
//! `cargo run -p webhook-examples --example embed_hyper`, then
//! `curl -X POST localhost:3000/hooks/orders -d '{"id": 1}'`

#![allow(clippy::print_stdout)]

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use webhook_core::config::{self, ConfigSource, Env};
use webhook_core::{Pipeline, PipelineOptions, Registry};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();

    // Pick the validators and destinations your program offers.
    let mut registry = Registry::new();
    webhook_validators::register(&mut registry);
    webhook_log::register(&mut registry);

    let webhooks = ConfigSource::new(
        "inline webhooks.json",
        r#"{"orders": {"module": "log", "module-config": {"include_body": true},
                        "rate_limit": {"max_requests": 50, "window_seconds": 1}}}"#,
    );
    let config = config::parse(&registry, &webhooks, None, &Env::process())?;
    let pipeline = Arc::new(Pipeline::build(config, PipelineOptions::default()).await?);

    let listener = TcpListener::bind("127.0.0.1:3000").await?;
    println!("POST http://127.0.0.1:3000/hooks/orders");
    loop {
        let (stream, peer) = listener.accept().await?;
        let pipeline = Arc::clone(&pipeline);
        tokio::spawn(async move {
            let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
                let pipeline = Arc::clone(&pipeline);
                async move {
                    // Your routes; the pipeline answers webhook requests completely.
                    let response = match request.uri().path().strip_prefix("/hooks/") {
                        Some(id) => {
                            let id = id.to_owned();
                            pipeline.handle_webhook(&id, request, peer).await
                        }
                        None => {
                            let mut not_found =
                                Response::new(Full::new(Bytes::from_static(b"not here")));
                            *not_found.status_mut() = StatusCode::NOT_FOUND;
                            not_found
                        }
                    };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
