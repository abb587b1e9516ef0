use std::sync::{Arc, OnceLock};

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Body as _;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::error::HttpError;
use crate::guard::GuardedResolver;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Most bytes of a response body that are read (the rest is dropped with the connection).
const MAX_RESPONSE_BODY: usize = 64 * 1024;

/// A pooled keep-alive HTTP/1.1 and HTTP/2 client with TLS (rustls, the system's roots).
///
/// Cloning is cheap and shares the pool. Destinations take the one of their pipeline
/// ([`HttpClient::for_pipeline`]), never one per request.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>,
}

impl HttpClient {
    /// A new client with its own connection pool.
    pub fn new() -> Result<Self, HttpError> {
        Self::build(None)
    }

    /// A client of its own whose connections refuse private addresses (see
    /// [`crate::TargetGuard`]): for a destination with `deny_private_targets`.
    pub fn guarded(guard: crate::TargetGuard) -> Result<Self, HttpError> {
        Self::build(Some(guard))
    }

    fn build(guard: Option<crate::TargetGuard>) -> Result<Self, HttpError> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver::new(guard));
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(10)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls_config()?).clone())
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Self { inner })
    }

    /// The client shared by every destination of one pipeline (one connection pool).
    pub async fn for_pipeline(
        context: &webhook_core::BuildContext,
    ) -> Result<Self, webhook_core::BuildError> {
        let client = context
            .shared
            .get_or_try_init("http", || async {
                Self::new().map_err(|e| webhook_core::BuildError::other(e.to_string()))
            })
            .await?;
        Ok(HttpClient::clone(&client))
    }

    /// Send `request` and read the response (its body up to 64 KiB), all within `timeout`.
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Response<Bytes>, HttpError> {
        let exchange = async {
            let response = self.inner.request(request).await.map_err(|err| {
                if err.is_connect() {
                    HttpError::Connect(err)
                } else {
                    HttpError::Request(err)
                }
            })?;
            let (parts, body) = response.into_parts();
            // Most targets answer without a body: nothing to read then.
            let body = if body.is_end_stream() {
                Bytes::new()
            } else {
                Limited::new(body, MAX_RESPONSE_BODY)
                    .collect()
                    .await
                    .map(|collected| collected.to_bytes())
                    .unwrap_or_default()
            };
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(timeout))?
    }
}

/// The TLS settings of every outgoing connection: rustls with the ring provider and the
/// system's root certificates, loaded once.
pub fn tls_config() -> Result<Arc<rustls::ClientConfig>, HttpError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let native = rustls_native_certs::load_native_certs();
            for err in &native.errors {
                tracing::warn!(error = %err, "cannot load a system root certificate");
            }
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                tracing::warn!("no system root certificates found: HTTPS targets will fail");
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|builder| {
                    Arc::new(builder.with_root_certificates(roots).with_no_client_auth())
                })
                .map_err(|e| format!("TLS set-up failed: {e}"))
        })
        .clone()
        .map_err(HttpError::Tls)
}
