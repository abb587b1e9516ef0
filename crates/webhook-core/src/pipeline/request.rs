//! The request path of `POST /webhook/{id}`: bounded body read, lookup, method, validators,
//! data type, then the ack mode's way of delivering, and the answer.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{ALLOW, HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use ipnet::IpNet;
use uuid::Uuid;

use super::body::{BodyError, BodyLimits, ReadBody, read_body};
use super::notes::Notes;
use super::{Pipeline, ResponseBody, Webhook, unix_secs};
use crate::attempt;
use crate::config::AckMode;
use crate::history::RequestOutcome;
use crate::response::{self, json, json_bytes, set_retry_after};
use crate::validator::{Check, DynValidator, RequestView};
use crate::{DataType, Delivery, ErrorClass, ModuleError, Rejection, RejectionKind};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// One handled webhook request: the answer and what an access log wants to know of it.
#[derive(Debug)]
pub struct Handled {
    /// The answer (with `X-Request-Id`).
    pub response: Response<ResponseBody>,
    /// The id given to this request (also in `X-Request-Id` and on every delivery).
    pub request_id: Uuid,
    /// How long the request took, from its arrival to the answer.
    pub latency: Duration,
}

impl Pipeline {
    /// Handle one request for webhook `webhook_id` (the `{id}` of `POST /webhook/{id}`).
    ///
    /// Reads the body up to the configured cap, runs the validators, checks the data type,
    /// delivers or spools as the webhook's `ack` says and answers: 200 only once the request
    /// is safe, 502/503 (with a JSON body) when it is not, so the sender retries. Never
    /// panics on input.
    pub async fn handle_webhook<B>(
        &self,
        webhook_id: &str,
        request: Request<B>,
        peer: SocketAddr,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.handle(webhook_id, request, peer).await.response
    }

    /// [`Pipeline::handle_webhook`], also returning the request id and the latency.
    pub async fn handle<B>(
        &self,
        webhook_id: &str,
        request: Request<B>,
        peer: SocketAddr,
    ) -> Handled
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let received_at = SystemTime::now();
        let started = Instant::now();
        let request_id = Uuid::now_v7();
        let (mut response, latency) = match self.webhooks.get(webhook_id) {
            Some(webhook) => {
                let mut notes = Notes::default();
                let response = self
                    .handle_known(webhook, request, peer, received_at, request_id, &mut notes)
                    .await;
                let latency = started.elapsed();
                webhook.metrics.duration.record(latency.as_secs_f64());
                if let Some(history) = &self.options.history {
                    let status = response.status().as_u16();
                    notes.record(
                        &**history,
                        webhook,
                        request_id,
                        received_at,
                        status,
                        latency,
                    );
                }
                (response, latency)
            }
            None => (
                json(StatusCode::NOT_FOUND, response::NOT_FOUND),
                started.elapsed(),
            ),
        };
        let mut id_text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id_text = request_id.hyphenated().encode_lower(&mut id_text);
        if let Ok(value) = HeaderValue::from_str(id_text) {
            response.headers_mut().insert(X_REQUEST_ID.clone(), value);
        }
        Handled {
            response,
            request_id,
            latency,
        }
    }

    async fn handle_known<B>(
        &self,
        webhook: &Webhook,
        request: Request<B>,
        peer: SocketAddr,
        received_at: SystemTime,
        request_id: Uuid,
        notes: &mut Notes,
    ) -> Response<ResponseBody>
    where
        B: http_body::Body,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let webhook_id = &*webhook.id;
        webhook.metrics.received.increment(1);
        notes.method = request.method().clone();
        if request.method() != Method::POST {
            webhook.metrics.rejected("method_not_allowed");
            notes.reason = Some("method_not_allowed");
            notes.headers = Some(Arc::new(request.headers().clone()));
            let mut response = json(StatusCode::METHOD_NOT_ALLOWED, response::METHOD_NOT_ALLOWED);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let (parts, body) = request.into_parts();
        let client_ip = client_ip(peer, &parts.headers, &webhook.trusted_proxies);
        notes.client_ip = Some(client_ip);
        let headers = Arc::new(parts.headers);
        notes.headers = Some(Arc::clone(&headers));

        // The checks that need no body run before a byte of it is read.
        let (head, rest) = webhook.validators.split_at(webhook.head_validators);
        if !head.is_empty() {
            let no_body = Bytes::new();
            let view = RequestView {
                webhook_id,
                method: &parts.method,
                uri: &parts.uri,
                headers: &headers,
                peer,
                client_ip,
                body: &no_body,
                received_at,
            };
            if let Some(answer) = self.validate(webhook, head, &view, request_id, notes).await {
                return answer;
            }
        }

        let limits = BodyLimits {
            max_bytes: self.options.max_body_bytes,
            timeout: self.options.body_read_timeout,
            min_rate: self.options.min_body_rate,
        };
        let body = match read_body(body, &headers, limits, &self.options.body_budget).await {
            Ok(body) => body,
            Err(BodyError::TooLarge) => {
                webhook.metrics.rejected("body_too_large");
                notes.reason = Some("body_too_large");
                tracing::info!(webhook = webhook_id, %request_id, limit = self.options.max_body_bytes, "body over the size cap");
                return json(StatusCode::PAYLOAD_TOO_LARGE, response::TOO_LARGE);
            }
            Err(BodyError::TimedOut) => {
                webhook.metrics.rejected("body_timeout");
                notes.reason = Some("body_timeout");
                tracing::info!(webhook = webhook_id, %request_id, client = %client_ip, "body not received in time");
                return json(StatusCode::REQUEST_TIMEOUT, response::BODY_TIMEOUT);
            }
            Err(BodyError::Busy) => {
                webhook.metrics.rejected("body_budget_exhausted");
                notes.reason = Some("body_budget_exhausted");
                tracing::warn!(webhook = webhook_id, %request_id, budget = self.options.body_budget.max(), "in-flight body budget exhausted: 503");
                let mut response = json(StatusCode::SERVICE_UNAVAILABLE, response::BUSY);
                set_retry_after(&mut response, Duration::from_secs(1));
                return response;
            }
            Err(BodyError::Read(err)) => {
                webhook.metrics.rejected("body_unreadable");
                notes.reason = Some("body_unreadable");
                tracing::info!(webhook = webhook_id, %request_id, error = %err, "could not read the body");
                return json(StatusCode::BAD_REQUEST, response::BAD_BODY);
            }
        };
        let ReadBody {
            bytes: body,
            _hold: _budget_hold,
        } = body;

        // The request is one value from here on: validators see it, destinations get it.
        let delivery = Delivery {
            webhook_id: Arc::clone(&webhook.id),
            request_id,
            headers,
            query: parts.uri.query().map(Arc::from),
            body,
            received_at,
            data_type: webhook.data_type,
        };
        notes.body_size = delivery.body.len();
        if webhook.history.bodies {
            notes.body = Some(delivery.body.clone());
        }
        let view = RequestView {
            webhook_id,
            method: &parts.method,
            uri: &parts.uri,
            headers: &delivery.headers,
            peer,
            client_ip,
            body: &delivery.body,
            received_at,
        };
        if let Some(answer) = self.validate(webhook, rest, &view, request_id, notes).await {
            return answer;
        }

        if webhook.data_type == DataType::Json
            && let Err(err) = crate::json::check(&delivery.body, self.options.max_json_depth)
        {
            webhook.metrics.rejected("malformed_json");
            notes.reason = Some("malformed_json");
            tracing::info!(webhook = webhook_id, %request_id, error = %err, "malformed JSON body");
            return json(StatusCode::BAD_REQUEST, response::MALFORMED_JSON);
        }

        // Filters: the webhook's, then routing (destinations whose filter does not match
        // are left out of this request's targets, in the spool too).
        let mut targets = webhook.route.all_targets();
        if webhook.filter.is_some() || webhook.route.routes_by_filter() {
            let input = filter_input(&parts.method, &parts.uri, &delivery);
            if webhook.filter.as_ref().is_some_and(|f| !f.matches(&input)) {
                notes.outcome = Some(RequestOutcome::Filtered);
                notes.reason = Some("filtered");
                return filtered(
                    webhook,
                    request_id,
                    "request does not match the webhook's filter",
                );
            }
            targets = webhook.route.targets_for(&input);
            if targets == 0 {
                notes.outcome = Some(RequestOutcome::Filtered);
                notes.reason = Some("no_route");
                return filtered(webhook, request_id, "no destination's filter matches");
            }
        }

        if let Ok(mut stats) = webhook.stats.lock() {
            stats.record(unix_secs(received_at));
        }
        if let Some(store) = &self.options.stats_store {
            store.record(webhook_id, unix_secs(received_at));
        }

        // Destinations get the request without the gateway's own inbound credentials.
        let mut delivery = without_credentials(delivery.clone(), &webhook.strip_headers);
        if let Some(cleanup) = &webhook.cleanup {
            clean(cleanup, &mut delivery);
        }
        let safe = match webhook.ack {
            AckMode::Delivered => attempt::deliver_waiting(&webhook.route, &delivery, targets)
                .await
                .map_err(|err| delivery_failed(&err)),
            AckMode::Persisted | AckMode::Accepted => {
                self.accept_in_background(webhook, delivery.clone(), targets)
                    .await
            }
        };
        if let Err(response) = safe {
            webhook.metrics.failed.increment(1);
            notes.reason = Some(if webhook.ack == AckMode::Delivered {
                "delivery_failed"
            } else {
                "spool_unavailable"
            });
            return response;
        }
        for validator in webhook.validators.iter().filter(|v| v.wants_delivered()) {
            validator.delivered(&view).await;
        }
        webhook.metrics.accepted.increment(1);
        json(StatusCode::OK, response::OK)
    }

    /// Run the webhook's validators in order: `Some` answer when one of them rejected or
    /// answered the request itself (a handshake, a duplicate).
    async fn validate(
        &self,
        webhook: &Webhook,
        validators: &[Arc<dyn DynValidator>],
        view: &RequestView<'_>,
        request_id: Uuid,
        notes: &mut Notes,
    ) -> Option<Response<ResponseBody>> {
        for validator in validators {
            let verdict = match validator.check(view) {
                Check::Pass => Ok(None),
                Check::Reject(rejection) => Err(rejection),
                Check::Answer(answer) => Ok(Some(answer)),
                Check::Pending(future) => future.await,
            };
            match verdict {
                Ok(None) => {}
                Ok(Some(answer)) => {
                    notes.reason = Some(answer.reason);
                    notes.outcome = Some(if answer.duplicate {
                        RequestOutcome::Duplicate
                    } else {
                        RequestOutcome::Answered
                    });
                    if answer.duplicate {
                        webhook.metrics.duplicate.increment(1);
                        if let Ok(mut stats) = webhook.stats.lock() {
                            stats.record_duplicate();
                        }
                    } else {
                        webhook.metrics.accepted.increment(1);
                    }
                    tracing::info!(
                        webhook = view.webhook_id,
                        %request_id,
                        validator = validator.key(),
                        reason = answer.reason,
                        "answered without delivery"
                    );
                    return Some(json_bytes(answer.status, answer.body));
                }
                Err(rejection) => {
                    webhook.metrics.rejected(rejection.reason);
                    notes.reason = Some(rejection.reason);
                    tracing::info!(
                        webhook = view.webhook_id,
                        %request_id,
                        client = %view.client_ip,
                        validator = validator.key(),
                        reason = rejection.reason,
                        "request rejected"
                    );
                    return Some(reject(&rejection));
                }
            }
        }
        None
    }

    /// `persisted`/`accepted`: hand the request to the outbox (spooled first when
    /// `persisted`); the error is the 503 to answer.
    async fn accept_in_background(
        &self,
        webhook: &Webhook,
        delivery: Delivery,
        targets: u32,
    ) -> Result<(), Response<ResponseBody>> {
        let unavailable = || {
            let mut response = json(StatusCode::SERVICE_UNAVAILABLE, response::SPOOL_FULL);
            set_retry_after(&mut response, Duration::from_secs(5));
            response
        };
        let Some(outbox) = &self.outbox else {
            return Err(unavailable());
        };
        let request_id = delivery.request_id;
        let durable = webhook.ack == AckMode::Persisted;
        outbox
            .accept(delivery, durable, targets)
            .await
            .map_err(|err| {
                tracing::warn!(webhook = %webhook.id, %request_id, error = %err, "spool cannot take the request");
                unavailable()
            })
    }
}

/// `delivery` without the headers in `strip` (copied only when one of them is present).
/// The answer to a filtered request, counted (metric, `/stats`) and logged.
fn filtered(webhook: &Webhook, request_id: Uuid, why: &'static str) -> Response<ResponseBody> {
    webhook.metrics.filtered.increment(1);
    if let Ok(mut stats) = webhook.stats.lock() {
        stats.record_filtered();
    }
    tracing::info!(webhook = %webhook.id, %request_id, "{why}: not stored, not delivered");
    json(StatusCode::OK, response::FILTERED)
}

/// What a filter sees: `{"method", "path", "query": {name: value}, "headers": {name:
/// value}, "body"}` (the body parsed for JSON webhooks, a string for UTF-8 blobs, else null;
/// header names lower case, repeated headers joined with `", "`).
pub(crate) fn filter_input(
    method: &Method,
    uri: &http::Uri,
    delivery: &Delivery,
) -> serde_json::Value {
    let body = match delivery.data_type {
        DataType::Json => serde_json::from_slice(&delivery.body).unwrap_or(serde_json::Value::Null),
        DataType::Blob => delivery.body_str().map_or(serde_json::Value::Null, |s| {
            serde_json::Value::String(s.to_owned())
        }),
    };
    let query = delivery.query_map();
    let headers: serde_json::Map<String, serde_json::Value> = delivery
        .header_map()
        .into_iter()
        .map(|(k, v)| (k, serde_json::Value::String(v)))
        .collect();
    serde_json::json!({
        "method": method.as_str(),
        "path": uri.path(),
        "query": query,
        "headers": headers,
        "body": body,
    })
}

pub(crate) fn without_credentials(mut delivery: Delivery, strip: &[HeaderName]) -> Delivery {
    if strip.iter().any(|name| delivery.headers.contains_key(name)) {
        let headers = Arc::make_mut(&mut delivery.headers);
        for name in strip {
            headers.remove(name);
        }
    }
    delivery
}

/// `credential_cleanup` on the headers and, for JSON webhooks, the body.
pub(crate) fn clean(cleanup: &crate::cleanup::CredentialCleanup, delivery: &mut Delivery) {
    if let Some(headers) = cleanup.headers(&delivery.headers) {
        delivery.headers = Arc::new(headers);
    }
    if delivery.data_type == DataType::Json
        && let Some(body) = cleanup.body(&delivery.body)
    {
        delivery.body = body;
    }
}

/// The answer to a delivery that did not succeed while the sender waited.
fn delivery_failed(err: &ModuleError) -> Response<ResponseBody> {
    match err.class() {
        ErrorClass::Unavailable => {
            let mut response = json(StatusCode::SERVICE_UNAVAILABLE, response::UNAVAILABLE);
            set_retry_after(
                &mut response,
                err.retry_after().unwrap_or(Duration::from_secs(5)),
            );
            response
        }
        ErrorClass::Retryable => {
            let mut response = json(StatusCode::BAD_GATEWAY, response::DELIVERY_FAILED);
            if let Some(delay) = err.retry_after() {
                set_retry_after(&mut response, delay);
            }
            response
        }
        ErrorClass::Permanent => json(StatusCode::BAD_GATEWAY, response::DELIVERY_REJECTED),
    }
}

fn reject(rejection: &Rejection) -> Response<ResponseBody> {
    let body = match rejection.kind {
        RejectionKind::BadRequest => response::BAD_REQUEST,
        RejectionKind::Unauthorized => response::UNAUTHORIZED,
        RejectionKind::Forbidden => response::FORBIDDEN,
        RejectionKind::UnprocessableEntity => response::UNPROCESSABLE,
        RejectionKind::TooManyRequests => response::TOO_MANY,
        RejectionKind::PayloadTooLarge => response::TOO_LARGE,
    };
    let mut response = json(rejection.kind.status(), body);
    if let Some(delay) = rejection.retry_after {
        set_retry_after(&mut response, delay);
    }
    if let Some(challenge) = &rejection.challenge {
        response
            .headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, challenge.clone());
    }
    response
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries may carry
/// a port (`1.2.3.4:5678`, `[2001:db8::1]:443`); an entry that does not parse makes the
/// client unknown (the unspecified address `::`), so an IP allow-list refuses it rather
/// than taking the proxy for the client.
fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let unknown = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
    let mut client = peer.ip().to_canonical();
    if !is_trusted(&client) {
        return client;
    }
    if !headers.contains_key(&X_FORWARDED_FOR)
        && let Some(real) = headers.get(&X_REAL_IP)
    {
        // a trusted proxy that names the client in `X-Real-IP` only (nginx's usual header)
        return real
            .to_str()
            .ok()
            .and_then(|text| forwarded_ip(text.trim()))
            .map_or(unknown, |ip| ip.to_canonical());
    }
    for value in headers.get_all(&X_FORWARDED_FOR).iter().rev() {
        let Ok(text) = value.to_str() else {
            return unknown;
        };
        for part in text.rsplit(',') {
            let Some(ip) = forwarded_ip(part.trim()) else {
                return unknown;
            };
            client = ip.to_canonical();
            if !is_trusted(&client) {
                return client;
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an IP, `ip:port` or `[v6]:port`.
fn forwarded_ip(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    entry.parse::<SocketAddr>().ok().map(|addr| addr.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(&X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_only_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let proxy: SocketAddr = "10.1.1.1:4000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let h = headers(&["198.51.100.7, 10.2.2.2"]);
        assert_eq!(client_ip(stranger, &h, &trusted), stranger.ip());
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // spoofed left-most entries are ignored: the right-most untrusted one counts
        let h = headers(&["1.1.1.1", "198.51.100.7"]);
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // garbage makes the client unknown (never the proxy itself)
        let h = headers(&["nonsense"]);
        assert!(client_ip(proxy, &h, &trusted).is_unspecified());
        // ports, as some proxies append them
        let h = headers(&["198.51.100.7:1234"]);
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let h = headers(&["[2001:db8::9]:443"]);
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "2001:db8::9".parse::<IpAddr>().unwrap()
        );
        // no trusted proxies: the header means nothing
        assert_eq!(client_ip(proxy, &headers(&["1.2.3.4"]), &[]), proxy.ip());
        // v4-mapped v6 peers are seen as v4
        let mapped: SocketAddr = "[::ffff:10.1.1.1]:80".parse().unwrap();
        assert_eq!(
            client_ip(mapped, &headers(&["1.2.3.4"]), &trusted),
            "1.2.3.4".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn real_ip_from_trusted_peers_without_forwarded_for() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let proxy: SocketAddr = "10.1.1.1:4000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:4000".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert(&X_REAL_IP, HeaderValue::from_static("198.51.100.7"));
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(stranger, &h, &trusted), stranger.ip());
        h.insert(&X_REAL_IP, HeaderValue::from_static("garbage"));
        assert!(client_ip(proxy, &h, &trusted).is_unspecified());
        // X-Forwarded-For, when present, wins
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("192.0.2.1"));
        assert_eq!(
            client_ip(proxy, &h, &trusted),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }
}
