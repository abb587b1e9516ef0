use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::Full;
use webhook_core::config::timeout_seconds;
use webhook_core::{
    BuildContext, BuildError, DataType, Delivery, Module, ModuleError, NoConnection,
};

use crate::config::HttpConfig;
use webhook_http_client::{HttpClient, HttpError, parse_headers};

/// The header that carries the request id, stable across retries, so targets can
/// de-duplicate.
pub const REQUEST_ID_HEADER: &str = "x-webhook-request-id";

/// How long `health` waits for the target.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The `http_webhook` destination.
#[derive(Debug)]
pub struct HttpWebhook {
    client: HttpClient,
    url: Uri,
    /// The `Host` header of every request to an `http://` target, computed once (the client
    /// would format it per request otherwise). `https://` targets may speak HTTP/2, where
    /// the client sends `:authority` instead: left to the client.
    host: Option<HeaderValue>,
    method: http::Method,
    headers: HeaderMap,
    forward_headers: bool,
    timeout: Duration,
}

impl Module for HttpWebhook {
    const KIND: &'static str = "http_webhook";
    type Config = HttpConfig;
    type Connection = NoConnection;

    fn validate(config: &HttpConfig, _: &BuildContext) -> Result<(), BuildError> {
        check_guard(config, &target_uri(&config.url)?)?;
        configured_headers(config)?;
        timeout_seconds(config.timeout).map_err(|m| BuildError::key("timeout", m))?;
        Ok(())
    }

    async fn build(
        config: HttpConfig,
        _: Option<NoConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        let url = target_uri(&config.url)?;
        check_guard(&config, &url)?;
        let client = match config.guard() {
            // a client of its own: its resolver refuses private addresses
            Some(guard) => {
                HttpClient::guarded(guard).map_err(|e| BuildError::other(e.to_string()))?
            }
            None => HttpClient::for_pipeline(context).await?,
        };
        Ok(Self {
            client,
            host: host_header(&url)?,
            url,
            method: config.method.as_method(),
            headers: configured_headers(&config)?,
            forward_headers: config.forward_headers,
            timeout: timeout_seconds(config.timeout).map_err(|m| BuildError::key("timeout", m))?,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let mut request = Request::new(Full::new(delivery.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.url.clone();
        *request.headers_mut() = self.outgoing_headers(delivery);
        let response = self
            .client
            .send(request, self.timeout)
            .await
            .map_err(ModuleError::from)?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(webhook = %delivery.webhook_id, request_id = %delivery.request_id, %status, "forwarded");
            return Ok(());
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(parse_retry_after);
        let body = response.body();
        let shown = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Err(HttpError::Status {
            status,
            retry_after,
            body: shown,
        }
        .into())
    }

    /// A `HEAD` request to the target: any answer means it is reachable.
    async fn health(&self) -> Result<(), ModuleError> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.method_mut() = http::Method::HEAD;
        *request.uri_mut() = self.url.clone();
        self.client
            .send(request, HEALTH_TIMEOUT.min(self.timeout))
            .await
            .map(|_| ())
            .map_err(ModuleError::from)
    }
}

impl HttpWebhook {
    /// Forwarded (or just the content type), then the request id, then configured headers.
    fn outgoing_headers(&self, delivery: &Delivery) -> HeaderMap {
        let forwarded = if self.forward_headers {
            delivery.headers.len()
        } else {
            1
        };
        let mut headers = HeaderMap::with_capacity(forwarded + self.headers.len() + 2);
        if let Some(host) = &self.host {
            headers.insert(header::HOST, host.clone());
        }
        if self.forward_headers {
            let listed = connection_listed(&delivery.headers);
            for (name, value) in delivery.headers.iter() {
                let connection_specific =
                    listed.iter().any(|l| l.eq_ignore_ascii_case(name.as_str()));
                if !is_hop_by_hop(name) && !connection_specific {
                    headers.append(name.clone(), value.clone());
                }
            }
        } else {
            let content_type = delivery
                .headers
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static(match delivery.data_type {
                    DataType::Json => "application/json",
                    DataType::Blob => "application/octet-stream",
                }));
            headers.insert(header::CONTENT_TYPE, content_type);
        }
        let mut id = [0u8; 36];
        let id = delivery.request_id.as_hyphenated().encode_lower(&mut id);
        if let Ok(id) = HeaderValue::from_str(id) {
            headers.insert(HeaderName::from_static(REQUEST_ID_HEADER), id);
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        headers
    }
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1), and those the
/// client sets itself.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
            | "expect"
    )
}

/// Header names the sender listed in its `Connection` header (hop-by-hop as well).
fn connection_listed(headers: &HeaderMap) -> Vec<&str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect()
}

/// With the SSRF guard on, a literal private target is refused at once.
fn check_guard(config: &HttpConfig, url: &Uri) -> Result<(), BuildError> {
    match (config.guard(), url.host()) {
        (Some(guard), Some(host)) => guard
            .check_host(host)
            .map_err(|e| BuildError::key("url", e)),
        _ => Ok(()),
    }
}

fn target_uri(url: &str) -> Result<Uri, BuildError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| BuildError::key("url", format!("`{url}` is not a valid URL: {e}")))?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some_and(|h| !h.is_empty()) => Ok(uri),
        _ => Err(BuildError::key(
            "url",
            format!("`{url}` must be an absolute http:// or https:// URL"),
        )),
    }
}

/// For an `http://` target, `host[:port]` as the client would send it (the port only when
/// it is not 80); `None` for `https://`, whose `Host` stays the client's (HTTP/2 sends
/// `:authority` instead).
fn host_header(url: &Uri) -> Result<Option<HeaderValue>, BuildError> {
    if url.scheme_str() != Some("http") {
        return Ok(None);
    }
    let host = url.host().unwrap_or_default();
    let value = match url.port_u16() {
        Some(port) if port != 80 => HeaderValue::from_str(&format!("{host}:{port}")),
        _ => HeaderValue::from_str(host),
    };
    value.map(Some).map_err(|_| {
        BuildError::key(
            "url",
            format!("`{url}` has a host that is not valid in a Host header"),
        )
    })
}

fn configured_headers(config: &HttpConfig) -> Result<HeaderMap, BuildError> {
    parse_headers(&config.headers, is_hop_by_hop)
}

/// `Retry-After`: seconds, or an HTTP date.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7")),
            Some(Duration::from_secs(7))
        );
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let parsed = parse_retry_after(&HeaderValue::from_str(&later).unwrap()).unwrap();
        assert!(parsed > Duration::from_secs(100) && parsed <= Duration::from_secs(120));
        assert_eq!(parse_retry_after(&HeaderValue::from_static("soon")), None);
    }

    #[test]
    fn urls_must_be_absolute_http() {
        assert!(target_uri("http://127.0.0.1:8080/x").is_ok());
        assert!(target_uri("https://example.com").is_ok());
        for bad in ["/relative", "ftp://host/x", "not a url", "http://"] {
            assert_eq!(target_uri(bad).unwrap_err().key, "url", "{bad}");
        }
    }

    #[test]
    fn host_header_carries_the_port_only_when_it_is_not_the_default() {
        let host = |url: &str| host_header(&target_uri(url).unwrap()).unwrap();
        assert_eq!(host("http://127.0.0.1:8080/x").unwrap(), "127.0.0.1:8080");
        assert_eq!(host("http://example.com:80/x").unwrap(), "example.com");
        assert_eq!(host("http://[::1]:9000/").unwrap(), "[::1]:9000");
        assert_eq!(host("https://example.com:8443"), None, "left to the client");
    }
}
