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
use tokio::net::TcpListener;
use webhook_core::{Pipeline, ResponseBody};

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
    /// Most request headers accepted (default 100, like the original).
    pub max_headers: usize,
    /// How long a client may take to send its request headers (default 30 s).
    pub header_read_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            drain_timeout: Duration::from_secs(30),
            max_headers: 100,
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// Serve `pipeline` on `listener` until `shutdown` resolves, then stop accepting, let
/// in-flight requests finish (up to `drain_timeout`) and shut the destinations down.
pub async fn serve(
    listener: TcpListener,
    pipeline: Arc<Pipeline>,
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
                let pipeline = Arc::clone(&pipeline);
                let service = service_fn(move |request| {
                    let pipeline = Arc::clone(&pipeline);
                    async move { Ok::<_, Infallible>(route(&pipeline, request, peer).await) }
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
    pipeline.shutdown().await;
}

/// Route one request.
pub async fn route(
    pipeline: &Pipeline,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let path = request.uri().path();
    if let Some(id) = path.strip_prefix("/webhook/") {
        let id = id.to_owned();
        return pipeline.handle_webhook(&id, request, peer).await;
    }
    let method = request.method();
    match path {
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
        "/stats" if method == Method::GET => {
            json(StatusCode::OK, Bytes::from(pipeline.stats().to_string()))
        }
        "/" | "/health" | "/stats" => {
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

fn json(status: StatusCode, body: Bytes) -> Response<ResponseBody> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
