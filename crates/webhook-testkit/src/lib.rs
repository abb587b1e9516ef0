//! Test helpers: start the real server on `127.0.0.1:0` and talk HTTP to it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

pub mod conformance;
pub mod interop;
pub mod proxy;
pub mod recorder;
pub mod sql;
pub mod target;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use webhook_core::config::AckMode;
use webhook_core::config::{ConfigErrors, ConfigSource, Env};
use webhook_core::{Pipeline, PipelineOptions, Registry, SpoolOptions};
use webhook_server::server::{ServerOptions, serve};

/// Pipeline options for tests of destination behaviour: webhooks without an `ack` key answer
/// only after delivery (`ack: delivered`), so a test sees each destination's outcome in the
/// response. Tests of the spool set `"ack": "persisted"` explicitly.
pub fn delivered_options() -> PipelineOptions {
    PipelineOptions {
        default_ack: AckMode::Delivered,
        ..PipelineOptions::default()
    }
}

/// Waits, when the wall clock is less than `margin` before the next full minute, until that
/// minute has begun: `/stats` counts the `minute` window per calendar minute, so a test that
/// expects its webhooks in the current minute must not straddle a minute boundary.
pub async fn clear_of_minute_boundary(margin: std::time::Duration) {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into_minute = std::time::Duration::from_millis((since_epoch.as_millis() % 60_000) as u64);
    let left = std::time::Duration::from_secs(60).saturating_sub(into_minute);
    if left < margin {
        tokio::time::sleep(left + std::time::Duration::from_millis(100)).await;
    }
}

/// How to start a [`TestServer`].
pub struct TestServerBuilder {
    webhooks: String,
    connections: Option<String>,
    env: HashMap<String, String>,
    options: PipelineOptions,
    server_options: ServerOptions,
    openapi: bool,
    registry: Option<Registry>,
}

impl TestServerBuilder {
    pub fn connections(mut self, json: &str) -> Self {
        self.connections = Some(json.to_owned());
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn options(mut self, options: PipelineOptions) -> Self {
        self.options = options;
        self
    }

    /// Settings of the HTTP front (metrics, ops token…).
    pub fn server_options(mut self, options: ServerOptions) -> Self {
        self.server_options = options;
        self
    }

    /// Do not serve `/openapi.json` (served by default, generated from the webhooks).
    pub fn without_openapi(mut self) -> Self {
        self.openapi = false;
        self
    }

    /// Use this registry instead of the server's own plus `test_recorder`.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// The config errors of a config that must not start, as text; panics (naming the
    /// webhooks config) when it starts.
    pub async fn config_error(self) -> String {
        let webhooks = self.webhooks.clone();
        match self.try_start().await {
            Ok(_) => panic!("this config was accepted: {webhooks}"),
            Err(errors) => errors.to_string(),
        }
    }

    /// Parse, build and serve; config errors are returned, not panicked on.
    pub async fn try_start(self) -> Result<TestServer, ConfigErrors> {
        let registry = self
            .registry
            .unwrap_or_else(recorder::registry_with_recorder);
        let mut server_options = self.server_options;
        if self.openapi && server_options.openapi.is_none() {
            server_options.openapi = Some(Bytes::from(
                webhook_server::openapi::document(&self.webhooks).to_string(),
            ));
        }
        let webhooks = ConfigSource::new("webhooks.json", self.webhooks);
        let connections = self
            .connections
            .map(|c| ConfigSource::new("connections.json", c));
        let config = webhook_core::config::parse(
            &registry,
            &webhooks,
            connections.as_ref(),
            &Env::from_map(self.env),
        )?;
        if server_options.metrics {
            // Handles are registered when the pipeline is built: install the recorder first.
            let _ = webhook_server::metrics::install();
        }
        let mut options = self.options;
        // Each server its own spool, removed with it (unless the test chose a directory).
        let spool_dir = (options.spool.dir == SpoolOptions::default().dir)
            .then(|| tempfile::tempdir().expect("temporary spool directory"));
        if let Some(dir) = &spool_dir {
            options.spool.dir = dir.path().to_path_buf();
        }
        let pipeline = Pipeline::build(config, options).await?;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let live = Arc::new(webhook_server::live::LivePipeline::fixed(pipeline));
        let task = tokio::spawn(serve(listener, live, server_options, async {
            let _ = stopped.await;
        }));
        Ok(TestServer {
            client: TestClient::new(addr),
            _spool_dir: spool_dir,
            stop: Some(stop),
            task: Some(task),
        })
    }

    pub async fn start(self) -> TestServer {
        match self.try_start().await {
            Ok(server) => server,
            Err(errors) => panic!("{errors}"),
        }
    }
}

/// The `webhook-server` binary of this build: `target/<profile>/webhook-server`, beside
/// the `deps/` directory the test binary runs from.
pub fn server_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    profile_dir.join("webhook-server")
}

/// The real server, serving on a loopback port for one test. Derefs to a [`TestClient`]
/// for sending requests.
pub struct TestServer {
    client: TestClient,
    _spool_dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl std::ops::Deref for TestServer {
    type Target = TestClient;

    fn deref(&self) -> &TestClient {
        &self.client
    }
}

/// An HTTP client bound to one server address.
#[derive(Clone)]
pub struct TestClient {
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// A response, fully read.
#[derive(Debug)]
pub struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl TestResponse {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

impl TestServer {
    pub fn builder(webhooks_json: &str) -> TestServerBuilder {
        TestServerBuilder {
            webhooks: webhooks_json.to_owned(),
            connections: None,
            env: HashMap::new(),
            options: delivered_options(),
            // health checked on every call, so tests see a destination's state at once (the
            // cache has tests of its own)
            server_options: ServerOptions {
                health_cache: std::time::Duration::ZERO,
                ..ServerOptions::default()
            },
            openapi: true,
            registry: None,
        }
    }

    pub async fn start(webhooks_json: &str) -> TestServer {
        Self::builder(webhooks_json).start().await
    }

    /// A client of this server that can outlive a borrow of it (e.g. across `shutdown`).
    pub fn client(&self) -> TestClient {
        self.client.clone()
    }

    /// Stop like SIGTERM does: stop accepting, drain, shut destinations down.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl TestClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Send a request and read the whole answer.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        let mut request = Request::builder().method(method).uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let response = self.client.request(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// `POST /webhook/{id}`; `None` when no answer came (connection refused or closed).
    pub async fn try_post(
        &self,
        id: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Option<TestResponse> {
        let mut request = Request::builder()
            .method("POST")
            .uri(self.url(&format!("/webhook/{id}")));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).ok()?;
        let response = self.client.request(request).await.ok()?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.ok()?.to_bytes();
        Some(TestResponse {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    /// `POST /webhook/{id}`.
    pub async fn post(
        &self,
        id: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> TestResponse {
        self.request("POST", &format!("/webhook/{id}"), headers, body)
            .await
    }

    pub async fn get(&self, path: &str) -> TestResponse {
        self.request("GET", path, &[], Bytes::new()).await
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
