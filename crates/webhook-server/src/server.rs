//! The HTTP front: what each route does (`routes.rs` names them), connections, graceful
//! shutdown.

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
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use webhook_core::response::{self, json, json_bytes};
use webhook_core::{Pipeline, ResponseBody};

use crate::connection::{self, ConnectionLimits, IdleTimeout, Slots};
use crate::dead_letters_api::{self, Bulk};
use crate::live::{LivePipeline, ReloadError};
use crate::routes::{AdminRoute, Route};

/// Settings of the HTTP front.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How long in-flight requests may take to finish after a shutdown signal.
    pub drain_timeout: Duration,
    /// Connection cap, idle timeout and protocol limits.
    pub limits: ConnectionLimits,
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
    /// How long a `/health` result is served before the destinations are checked again
    /// (default 5 s; one check at a time).
    pub health_cache: Duration,
    /// Serve `/openapi.json` to anyone even when an ops token is set (default false: it
    /// lists every webhook id and which ones have no authentication).
    pub public_openapi: bool,
    /// The request history behind `/admin/requests` and `/admin/summary` (`None`: off).
    pub history: Option<webhook_history::History>,
    /// The dashboard's logged-in browsers (state, not a setting: clones share it).
    pub sessions: crate::ui::Sessions,
    /// Ends the open `/admin/events` streams at shutdown (state, not a setting).
    pub closing: crate::events::Closing,
}

/// The body of every answer: a whole one, or a stream of Server-Sent Events.
pub type ServedBody = http_body_util::Either<ResponseBody, crate::events::EventStream>;

/// The token that protects `/metrics` and `/stats`, kept as a SHA-256 digest and compared
/// in constant time.
#[derive(Clone)]
pub struct OpsToken([u8; 32]);

impl OpsToken {
    /// A token; `None` when it is empty.
    pub fn new(token: &str) -> Option<Self> {
        (!token.is_empty()).then(|| Self(Sha256::digest(format!("Bearer {token}")).into()))
    }

    /// `token` is this token (compared in constant time).
    pub fn matches(&self, token: &str) -> bool {
        bool::from(
            self.0
                .ct_eq(&<[u8; 32]>::from(Sha256::digest(format!("Bearer {token}")))),
        )
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
            limits: ConnectionLimits::default(),
            metrics: true,
            ops_token: None,
            ops_allow: Vec::new(),
            openapi: None,
            public_openapi: false,
            health_cache: crate::health::HEALTH_CACHE_TTL,
            history: None,
            sessions: crate::ui::Sessions::default(),
            closing: crate::events::Closing::default(),
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
    let builder = connection::builder(&options.limits);
    let slots = Slots::new(options.limits.max_connections);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    if live.openapi().is_none() {
        live.set_openapi(options.openapi.clone());
    }
    let options = Arc::new(options);

    loop {
        // A slot first: at the cap, stop accepting (the kernel's backlog holds the rest)
        // and keep serving the connections already open.
        let slot = tokio::select! {
            slot = slots.acquire() => slot,
            () = &mut shutdown => break,
        };
        let Some(slot) = slot else { break };
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
                let (stream, activity) = IdleTimeout::new(stream, options.limits.idle_timeout);
                let live = Arc::clone(&live);
                let options = Arc::clone(&options);
                let service = service_fn(move |request| {
                    let live = Arc::clone(&live);
                    let options = Arc::clone(&options);
                    let in_flight = activity.request();
                    async move {
                        let response = route(&live, &options, request, peer).await;
                        drop(in_flight);
                        Ok::<_, Infallible>(response)
                    }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    drop(slot);
                });
            }
            () = &mut shutdown => break,
        }
    }

    drop(listener);
    options.closing.close();
    tracing::info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(options.drain_timeout) => {
            tracing::warn!(timeout = ?options.drain_timeout, "drain timeout reached, closing remaining connections");
        }
    }
    let pipeline = live.current();
    pipeline.shutdown().await;
    pipeline.leave_shared_spool().await;
    if let Some(history) = options.history.clone() {
        // what was answered is in the history file before the process ends
        let _ = tokio::task::spawn_blocking(move || history.flush(Duration::from_secs(5))).await;
    }
}

/// A webhook id as the request log writes it: at most 64 bytes (an unknown id is whatever a
/// caller put in the path, up to the header limit: not worth a log line's volume).
fn id_for_log(id: &str) -> &str {
    let mut end = id.len().min(64);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

/// Route one request.
pub async fn route(
    live: &LivePipeline,
    options: &ServerOptions,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ServedBody> {
    if !connection::headers_within(request.headers(), &options.limits) {
        return whole(json(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            response::HEADERS_TOO_LARGE,
        ));
    }
    let pipeline: Arc<Pipeline> = live.current();
    let route = Route::parse(request.uri().path());
    if let Route::Webhook(id) = route {
        let id = id.to_owned();
        let handled = pipeline.handle(&id, request, peer).await;
        // Few, cheap fields: this line is written for every webhook request.
        if tracing::enabled!(target: "webhook::request", tracing::Level::INFO) {
            tracing::info!(
                target: "webhook::request",
                webhook = id_for_log(&id),
                request_id = %handled.request_id,
                status = handled.response.status().as_u16(),
                latency_us = u64::try_from(handled.latency.as_micros()).unwrap_or(u64::MAX),
                "request"
            );
        }
        return whole(handled.response);
    }
    // operators' routes: not the hot path, the path is copied so the request can move on
    let path = request.uri().path().to_owned();
    let route = Route::parse(&path);
    if matches!(route, Route::Admin(_) | Route::Ui(_)) && options.ops_token.is_none() {
        return whole(json(StatusCode::NOT_FOUND, ADMIN_NEEDS_TOKEN));
    }
    if let (Route::Ui(ui), Some(token)) = (route, &options.ops_token) {
        if let Some(denied) = peer_denied(options, peer) {
            return whole(denied);
        }
        return whole(crate::ui::answer(options, token, ui, request).await);
    }
    if route.is_ops(options)
        && let Some(denied) = ops_denied(options, request.method(), request.headers(), peer)
    {
        return whole(denied);
    }
    if matches!(route, Route::Admin(_)) && is_cross_site(request.headers()) {
        return whole(json(StatusCode::FORBIDDEN, CROSS_SITE));
    }
    if route == Route::Admin(AdminRoute::Events) {
        if request.method() != Method::GET {
            return whole(get_only());
        }
        let query = request.uri().query().unwrap_or("");
        return crate::events::answer(options.history.as_ref(), query, &options.closing);
    }
    whole(answer(live, options, pipeline, route, request, peer).await)
}

/// A whole answer as a [`ServedBody`].
fn whole(response: Response<ResponseBody>) -> Response<ServedBody> {
    response.map(http_body_util::Either::Left)
}

/// The answer of every route but `/webhook/…`, `/ui…` and `/admin/events`, once the caller
/// is let in.
async fn answer(
    live: &LivePipeline,
    options: &ServerOptions,
    pipeline: Arc<Pipeline>,
    route: Route<'_>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ResponseBody> {
    let method = request.method();
    let get = method == Method::GET;
    match route {
        Route::Metrics if get && options.metrics => metrics_text(),
        Route::Root if get => json(StatusCode::OK, response::OK),
        Route::Health if get => {
            let health = live.health().get(live, options.health_cache).await;
            let status = if health.healthy {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            // the details (ids, destination kinds, errors) only for operators
            if options.ops_token.is_some()
                && ops_denied(options, method, request.headers(), peer).is_none()
            {
                json_bytes(status, health.report.clone())
            } else if health.healthy {
                json(status, HEALTHY)
            } else {
                json(status, UNHEALTHY)
            }
        }
        Route::Stats if get => match pipeline.shared_stats().await {
            Ok(stats) => json_bytes(StatusCode::OK, Bytes::from(stats.to_string())),
            Err(err) => {
                tracing::warn!(error = %err, "/stats: the stats store cannot be read");
                json(StatusCode::SERVICE_UNAVAILABLE, STATS_UNAVAILABLE)
            }
        },
        Route::OpenApi if get && live.openapi().is_some() => json_bytes(
            StatusCode::OK,
            live.openapi().map(|d| Bytes::clone(&d)).unwrap_or_default(),
        ),
        Route::Admin(AdminRoute::Reload) if method == Method::POST => reload(live).await,
        Route::Admin(AdminRoute::DeadLetters) if get => {
            dead_letters_api::list(&pipeline, request.uri().query().unwrap_or("")).await
        }
        Route::Admin(AdminRoute::DeadLetters) if method == Method::DELETE => {
            let query = request.uri().query().unwrap_or("");
            dead_letters_api::bulk(&pipeline, query, Bulk::Delete).await
        }
        Route::Admin(AdminRoute::ReplayMatching) if method == Method::POST => {
            let query = request.uri().query().unwrap_or("");
            dead_letters_api::bulk(&pipeline, query, Bulk::Replay).await
        }
        Route::Admin(AdminRoute::Overview) if get => {
            crate::overview::answer(live, options.health_cache).await
        }
        Route::Admin(AdminRoute::History(asked)) if get => {
            let query = request.uri().query().unwrap_or("");
            crate::history_api::answer(options.history.as_ref(), asked, query).await
        }
        Route::Admin(AdminRoute::Replay(id)) if method == Method::POST => {
            dead_letters_api::one(pipeline.replay_dead_letter(id).await, "replayed")
        }
        Route::Admin(AdminRoute::Test(id)) if method == Method::POST => {
            let id = id.to_owned();
            dry_run(&pipeline, &id, request).await
        }
        Route::Admin(AdminRoute::DeadLetter(id)) if method == Method::DELETE => {
            dead_letters_api::one(pipeline.delete_dead_letter(id).await, "deleted")
        }
        Route::Root | Route::Health | Route::Stats => get_only(),
        Route::Metrics if options.metrics => get_only(),
        Route::Admin(
            AdminRoute::Reload
            | AdminRoute::Replay(_)
            | AdminRoute::Test(_)
            | AdminRoute::ReplayMatching,
        ) => only("POST"),
        Route::Admin(AdminRoute::DeadLetters) => only("GET, DELETE"),
        Route::Admin(AdminRoute::History(_) | AdminRoute::Overview | AdminRoute::Events) => {
            get_only()
        }
        Route::Admin(AdminRoute::DeadLetter(_)) => only("DELETE"),
        _ => json(StatusCode::NOT_FOUND, response::NO_ROUTE),
    }
}

const HEALTHY: &str = r#"{"status":"healthy"}"#;
const UNHEALTHY: &str = r#"{"status":"unhealthy"}"#;
const CROSS_SITE: &str = r#"{"detail":"Cross-site requests to the admin API are refused"}"#;
const ADMIN_NEEDS_TOKEN: &str = r#"{"detail":"Not Found (admin endpoints need --ops-token)"}"#;
/// A dashboard session's changing request without its CSRF token.
pub(crate) const CSRF_REFUSED: &str =
    r#"{"detail":"CSRF token missing or wrong (X-CSRF-Token): reload the dashboard"}"#;
const STATS_UNAVAILABLE: &str = r#"{"detail":"Statistics store unavailable"}"#;
const NO_FILES: &str = r#"{"detail":"this server has no config files to reload"}"#;

/// `405` with `Allow: GET`.
fn get_only() -> Response<ResponseBody> {
    only("GET")
}

/// `405` with `Allow: method`.
fn only(method: &'static str) -> Response<ResponseBody> {
    let mut response = json(StatusCode::METHOD_NOT_ALLOWED, response::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(method));
    response
}

fn json_value(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    json_bytes(status, Bytes::from(value.to_string()))
}

/// `POST /admin/reload`.
async fn reload(live: &LivePipeline) -> Response<ResponseBody> {
    match live.reload().await {
        Ok(report) => json_value(
            StatusCode::OK,
            &serde_json::json!({"message": "reloaded", "webhooks": report.webhooks}),
        ),
        Err(ReloadError::NoFiles) => json(StatusCode::CONFLICT, NO_FILES),
        Err(ReloadError::Rejected(errors)) => {
            tracing::error!(errors = ?errors, "reload refused; the old configuration keeps serving");
            json_value(
                StatusCode::UNPROCESSABLE_ENTITY,
                &serde_json::json!({"detail": "the new configuration was rejected; the old one keeps serving", "errors": errors}),
            )
        }
    }
}

/// Largest sample a test request may send.
const MAX_SAMPLE_BYTES: usize = 10 << 20;

/// `POST /admin/webhooks/{id}/test`: the sample through the webhook's filters and
/// transforms (and validators with `verify`), nothing delivered or stored.
async fn dry_run(
    pipeline: &Pipeline,
    id: &str,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    use http_body_util::BodyExt as _;
    let limited = http_body_util::Limited::new(request.into_body(), MAX_SAMPLE_BYTES);
    let bytes = match limited.collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => {
            return json_value(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"detail": "the sample could not be read (at most 10 MiB)"}),
            );
        }
    };
    let sample: webhook_core::Sample = match serde_json::from_slice(&bytes) {
        Ok(sample) => sample,
        Err(err) => {
            return json_value(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"detail": format!(
                    "the sample must be {{method, query, headers, body, verify}}: {err}"
                )}),
            );
        }
    };
    match pipeline.dry_run(id, sample).await {
        Ok(report) => json_value(StatusCode::OK, &report),
        Err(err @ webhook_core::DryRunError::UnknownWebhook(_)) => json_value(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"detail": err.to_string()}),
        ),
        Err(err) => json_value(
            StatusCode::BAD_REQUEST,
            &serde_json::json!({"detail": err.to_string()}),
        ),
    }
}

/// `/metrics`, `/stats` and `/admin/*`: refused unless the peer is allowed and, when a
/// token is configured, the request carries it (`Authorization: Bearer`) or the cookie of
/// a dashboard session — with the session's CSRF token unless it only reads.
fn ops_denied(
    options: &ServerOptions,
    method: &Method,
    headers: &http::HeaderMap,
    peer: SocketAddr,
) -> Option<Response<ResponseBody>> {
    if let Some(denied) = peer_denied(options, peer) {
        return Some(denied);
    }
    let token = options.ops_token.as_ref()?;
    if token.allows(headers) {
        return None;
    }
    match options.sessions.csrf_of(headers) {
        Some(_) if matches!(*method, Method::GET | Method::HEAD) => None,
        Some(csrf) if crate::ui::session::csrf_matches(&csrf, headers) => None,
        Some(_) => Some(json(StatusCode::FORBIDDEN, CSRF_REFUSED)),
        None => Some(json(StatusCode::UNAUTHORIZED, response::UNAUTHORIZED)),
    }
}

/// `--ops-allow` does not list the peer's network.
fn peer_denied(options: &ServerOptions, peer: SocketAddr) -> Option<Response<ResponseBody>> {
    (!options.ops_allow.is_empty()
        && !options
            .ops_allow
            .iter()
            .any(|net| net.contains(&peer.ip().to_canonical())))
    .then(|| json(StatusCode::FORBIDDEN, response::FORBIDDEN))
}

/// A browser's request made from another site: `Sec-Fetch-Site` says so, or `Origin` names
/// another host than `Host` (a page that got an operator's browser to call the admin API,
/// or DNS rebinding). Tools such as curl send neither.
pub(crate) fn is_cross_site(headers: &http::HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return !matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return false;
    };
    let host = headers.get(http::header::HOST).map(HeaderValue::as_bytes);
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.as_bytes());
    origin_host.is_none() || origin_host != host
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
        None => json(StatusCode::NOT_FOUND, response::NO_ROUTE),
    }
}

/// Serve only `GET /metrics` on a listener of its own (`--metrics-listen`), with the same
/// token and allow-list checks, until the task is dropped.
pub async fn serve_metrics(listener: TcpListener, options: Arc<ServerOptions>) {
    let builder = connection::builder(&options.limits);
    let slots = Slots::new(options.limits.max_connections);
    loop {
        let Some(slot) = slots.acquire().await else {
            return;
        };
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let (stream, activity) = IdleTimeout::new(stream, options.limits.idle_timeout);
        let options = Arc::clone(&options);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let options = Arc::clone(&options);
                let in_flight = activity.request();
                async move {
                    let response =
                        if !connection::headers_within(request.headers(), &options.limits) {
                            json(
                                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                                response::HEADERS_TOO_LARGE,
                            )
                        } else if request.uri().path() != "/metrics"
                            || request.method() != Method::GET
                        {
                            json(StatusCode::NOT_FOUND, response::NO_ROUTE)
                        } else if let Some(denied) =
                            ops_denied(&options, request.method(), request.headers(), peer)
                        {
                            denied
                        } else {
                            metrics_text()
                        };
                    drop(in_flight);
                    Ok::<_, Infallible>(response)
                }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
            drop(slot);
        });
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_ids_are_cut_at_64_bytes_on_a_char_boundary() {
        assert_eq!(super::id_for_log("github"), "github");
        let long = "é".repeat(100);
        let cut = super::id_for_log(&long);
        assert_eq!(cut, "é".repeat(32));
        let odd = format!("a{long}");
        assert_eq!(super::id_for_log(&odd), format!("a{}", "é".repeat(31)));
    }
}
