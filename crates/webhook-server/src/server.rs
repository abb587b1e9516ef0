//! The HTTP front: routes, connections, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use webhook_core::{Pipeline, ResponseBody, SpoolError};

use crate::live::{LivePipeline, ReloadError};

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
    /// Most request headers accepted (default 100, like the original).
    pub max_headers: usize,
    /// How long a client may take to send its request headers (default 30 s).
    pub header_read_timeout: Duration,
    /// Serve `GET /metrics` (default true).
    pub metrics: bool,
    /// When set, `/metrics` and `/stats` require `Authorization: Bearer <token>`.
    pub ops_token: Option<OpsToken>,
    /// When not empty, `/metrics`, `/stats` and `/admin/*` answer only these networks
    /// (the socket peer's address).
    pub ops_allow: Vec<ipnet::IpNet>,
    /// The document served at `GET /openapi.json` ([`crate::openapi::document`]); `None`
    /// turns the route off.
    pub openapi: Option<Bytes>,
}

/// The token that protects `/metrics` and `/stats`, kept as a SHA-256 digest and compared
/// in constant time.
#[derive(Clone)]
pub struct OpsToken([u8; 32]);

impl OpsToken {
    /// A token; `None` when it is empty.
    pub fn new(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| Self(Sha256::digest(format!("Bearer {token}")).into()))
    }

    fn allows(&self, headers: &http::HeaderMap) -> bool {
        headers
            .get(http::header::AUTHORIZATION)
            .is_some_and(|given| {
                bool::from(
                    self.0
                        .ct_eq(&<[u8; 32]>::from(Sha256::digest(given.as_bytes()))),
                )
            })
    }
}

impl std::fmt::Debug for OpsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpsToken(***)")
    }
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
            metrics: true,
            ops_token: None,
            ops_allow: Vec::new(),
            openapi: None,
        }
    }
}

/// Serve `pipeline` on `listener` until `shutdown` resolves, then stop accepting, let
/// in-flight requests finish (up to `drain_timeout`) and shut the destinations down.
pub async fn serve(
    listener: TcpListener,
    live: Arc<LivePipeline>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_headers(options.max_headers);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    if options.metrics {
        let _ = crate::metrics::handle();
    }
    if live.openapi().is_none() {
        live.set_openapi(options.openapi.clone());
    }
    let options = Arc::new(options);

    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // e.g. out of file descriptors: back off instead of spinning
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let live = Arc::clone(&live);
                let options = Arc::clone(&options);
                let service = service_fn(move |request| {
                    let live = Arc::clone(&live);
                    let options = Arc::clone(&options);
                    async move { Ok::<_, Infallible>(route(&live, &options, request, peer).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }

    drop(listener);
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(timeout = ?options.drain_timeout, "drain timeout reached, closing remaining connections");
        }
    }
    live.current().shutdown().await;
}

/// Route one request.
pub async fn route(
    live: &LivePipeline,
    options: &ServerOptions,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let pipeline: Arc<Pipeline> = live.current();
    let path = request.uri().path();
    if let Some(id) = path.strip_prefix("/webhook/") {
        let id = id.to_owned();
        let handled = pipeline.handle(&id, request, peer).await;
        // Few, cheap fields: this line is written for every webhook request.
        if tracing::enabled!(target: "webhook::request", tracing::Level::INFO) {
            tracing::info!(
                target: "webhook::request",
                webhook = id.as_str(),
                request_id = %handled.request_id,
                status = handled.response.status().as_u16(),
                latency_us = u64::try_from(handled.latency.as_micros()).unwrap_or(u64::MAX),
                "request"
            );
        }
        let response = handled.response;
        return response;
    }
    let method = request.method();
    let admin = path.starts_with("/admin/");
    if admin && options.ops_token.is_none() {
        return json(
            StatusCode::NOT_FOUND,
            Bytes::from_static(br#"{"detail":"Not Found (admin endpoints need --ops-token)"}"#),
        );
    }
    if (admin || matches!(path, "/metrics" | "/stats"))
        && let Some(denied) = ops_denied(options, request.headers(), peer)
    {
        return denied;
    }
    match path {
        "/metrics" if method == Method::GET && options.metrics => metrics_text(),
        "/" if method == Method::GET => json(
            StatusCode::OK,
            Bytes::from_static(br#"{"message":"200 OK"}"#),
        ),
        "/health" if method == Method::GET => {
            let health = pipeline.health().await;
            let status = if health.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(status, Bytes::from(health.report.to_string()))
        }
        "/stats" if method == Method::GET => match pipeline.shared_stats().await {
            Ok(stats) => json(StatusCode::OK, Bytes::from(stats.to_string())),
            Err(err) => {
                tracing::warn!(error = %err, "/stats: the stats store cannot be read");
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Bytes::from_static(br#"{"detail":"Statistics store unavailable"}"#),
                )
            }
        },
        "/openapi.json" if method == Method::GET && live.openapi().is_some() => json(
            StatusCode::OK,
            live.openapi().map(|d| Bytes::clone(&d)).unwrap_or_default(),
        ),
        "/admin/reload" if method == Method::POST => match live.reload().await {
            Ok(report) => json(
                StatusCode::OK,
                Bytes::from(
                    serde_json::json!({"message": "reloaded", "webhooks": report.webhooks})
                        .to_string(),
                ),
            ),
            Err(ReloadError::NoFiles) => json(
                StatusCode::CONFLICT,
                Bytes::from_static(br#"{"detail":"this server has no config files to reload"}"#),
            ),
            Err(ReloadError::Rejected(errors)) => {
                tracing::error!(errors = ?errors, "reload refused; the old configuration keeps serving");
                json(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Bytes::from(
                        serde_json::json!({"detail": "the new configuration was rejected; the old one keeps serving", "errors": errors})
                            .to_string(),
                    ),
                )
            }
        },
        "/admin/dead-letters" if method == Method::GET => match pipeline.dead_letters().await {
            Ok(list) => json(
                StatusCode::OK,
                Bytes::from(serde_json::json!({ "dead_letters": list }).to_string()),
            ),
            Err(err) => json(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from(serde_json::json!({ "detail": err.to_string() }).to_string()),
            ),
        },
        _ if (method == Method::POST && path.ends_with("/replay") || method == Method::DELETE)
            && path.starts_with("/admin/dead-letters/") =>
        {
            let id = path.trim_start_matches("/admin/dead-letters/");
            let (done, message) = if method == Method::DELETE {
                (pipeline.delete_dead_letter(id).await, "deleted")
            } else {
                let id = id.trim_end_matches("/replay");
                (pipeline.replay_dead_letter(id).await, "replayed")
            };
            match done {
                Ok(letter) => json(
                    StatusCode::OK,
                    Bytes::from(
                        serde_json::json!({ "message": message, "dead_letter": letter })
                            .to_string(),
                    ),
                ),
                Err(err @ SpoolError::NoDeadLetter(_)) => json(
                    StatusCode::NOT_FOUND,
                    Bytes::from(serde_json::json!({ "detail": err.to_string() }).to_string()),
                ),
                Err(err) => {
                    let mut response = json(
                        StatusCode::SERVICE_UNAVAILABLE,
                        Bytes::from(serde_json::json!({ "detail": err.to_string() }).to_string()),
                    );
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, HeaderValue::from_static("5"));
                    response
                }
            }
        }
        "/" | "/health" | "/stats" | "/metrics" if options.metrics || path != "/metrics" => {
            let mut response = json(
                StatusCode::METHOD_NOT_ALLOWED,
                Bytes::from_static(br#"{"detail":"Method Not Allowed"}"#),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET"));
            response
        }
        _ => json(
            StatusCode::NOT_FOUND,
            Bytes::from_static(br#"{"detail":"Not Found"}"#),
        ),
    }
}

/// `/metrics`, `/stats` and `/admin/*`: refused unless the peer is allowed and the token
/// (when configured) matches.
fn ops_denied(
    options: &ServerOptions,
    headers: &http::HeaderMap,
    peer: SocketAddr,
) -> Option<Response<ResponseBody>> {
    if !options.ops_allow.is_empty()
        && !options
            .ops_allow
            .iter()
            .any(|net| net.contains(&peer.ip().to_canonical()))
    {
        return Some(json(
            StatusCode::FORBIDDEN,
            Bytes::from_static(br#"{"detail":"Forbidden"}"#),
        ));
    }
    match &options.ops_token {
        Some(token) if !token.allows(headers) => Some(json(
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(br#"{"detail":"Unauthorized"}"#),
        )),
        _ => None,
    }
}

fn metrics_text() -> Response<ResponseBody> {
    match crate::metrics::handle() {
        Some(handle) => {
            let mut response = Response::new(Full::new(Bytes::from(handle.render())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        None => json(
            StatusCode::NOT_FOUND,
            Bytes::from_static(br#"{"detail":"Not Found"}"#),
        ),
    }
}

/// Serve only `GET /metrics` on a listener of its own (`--metrics-listen`), with the same
/// token and allow-list checks, until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, options: Arc<ServerOptions>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let options = Arc::clone(&options);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let options = Arc::clone(&options);
                async move {
                    let response =
                        if request.uri().path() != "/metrics" || request.method() != Method::GET {
                            json(
                                StatusCode::NOT_FOUND,
                                Bytes::from_static(br#"{"detail":"Not Found"}"#),
                            )
                        } else if let Some(denied) = ops_denied(&options, request.headers(), peer) {
                            denied
                        } else {
                            metrics_text()
                        };
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn json(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
