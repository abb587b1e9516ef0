//! The destination conformance suite: what every destination promises, checked through the
//! real server against the destination's real service, read back with an independent
//! client. A destination crate implements [`Subject`] (how to configure it, how to read
//! back what its service holds) and calls [`check`] from its `tests/it/`.
//!
//! The promises:
//! 1. the exact body bytes arrive (or, where the service keeps JSON values rather than
//!    bytes, [`Subject::stored_form`] of them), once per webhook, and the request id
//!    (`X-Request-Id`)
//!    travels with them where the destination carries it;
//! 2. `/health` is 200 while the service is reachable;
//! 3. while the service is unreachable (a [`TcpProxy`] in front of it is cut), a delivery is
//!    a *retryable* failure (`503`, or `502` with `"retryable": true`) and `/health` says
//!    503; once it is back, the destination reconnects by itself and delivers again;
//! 4. a refusal that retrying cannot fix is a *permanent* failure (`502`,
//!    `"retryable": false`);
//! 5. shutdown flushes: every webhook answered `200` before or while the server shuts down
//!    is in the service afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_core::{PipelineOptions, Registry};

use crate::TestServer;
use crate::proxy::TcpProxy;

/// One item as the destination's service holds it, read back independently.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The payload bytes as stored (for enveloping destinations: the `payload` part).
    pub body: Vec<u8>,
    /// The request id that travelled with it, where the destination carries one.
    pub request_id: Option<String>,
}

/// A destination under the suite.
pub trait Subject: Sync {
    /// The server's registry with this destination in it.
    fn registry(&self) -> Registry;

    /// The [`TcpProxy`] in front of the destination's service, which the destination
    /// reaches it through; `None` when it has no service (a directory on disk).
    fn proxy(&self) -> Option<&TcpProxy>;

    /// The destination part of a webhooks.json entry (`"module": …, "module-config": …`,
    /// without braces), reaching the service through [`Subject::proxy`].
    fn destination(&self) -> String;

    /// connections.json for `destination`, if it needs one.
    fn connections(&self) -> Option<String> {
        None
    }

    /// The pipeline options to run with (e.g. a data directory of the test's own).
    fn options(&self) -> PipelineOptions {
        PipelineOptions::default()
    }

    /// A destination part that the service refuses for good (a queue declared with other
    /// arguments, a bucket that does not exist, …); `None` when there is no such refusal.
    fn refused(&self) -> Option<String>;

    /// How the service keeps a sent body, when it keeps the value rather than the bytes
    /// (PostgreSQL's JSONB): what [`Subject::received`] is compared with. The default is
    /// the bytes themselves.
    fn stored_form(&self, sent: &[u8]) -> Vec<u8> {
        sent.to_vec()
    }

    /// Everything the service holds for `destination` so far, waiting (a few seconds at
    /// most) until there are at least `at_least` items.
    fn received(&self, at_least: usize) -> impl Future<Output = Vec<Received>> + Send;
}

/// The bodies the suite sends: JSON with odd spacing, non-ASCII text, escapes.
const BODIES: [&str; 3] = [
    r#"{"n":1}"#,
    " {\"b\" :2,\n  \"a\":1.50 }\t",
    "{\"text\":\"caf\u{e9} \u{1F600} \\u00e9\",\"list\":[1,2,3]}",
];

/// Run the whole suite against `subject`.
pub async fn check(subject: &impl Subject) {
    let proxy = subject.proxy();
    let mut webhooks = format!(
        r#"{{"conformance": {{"ack": "delivered", {}}}"#,
        subject.destination()
    );
    if let Some(refused) = subject.refused() {
        webhooks.push_str(&format!(
            r#", "refused": {{"ack": "delivered", {refused}}}"#
        ));
    }
    webhooks.push('}');
    let mut builder = TestServer::builder(&webhooks)
        .registry(subject.registry())
        .options(subject.options())
        .server_options(webhook_server::server::ServerOptions {
            ops_token: webhook_server::server::OpsToken::new(OPS_TOKEN),
            ..Default::default()
        });
    if let Some(connections) = subject.connections() {
        builder = builder.connections(&connections);
    }
    let server = builder.start().await;

    // (a destination that connects at start-up may still be connecting)
    wait_for("healthy after start-up", || healthy(&server)).await;

    // 1. exact bytes, once each, with the request id
    let mut sent = Vec::new();
    for body in BODIES {
        let r = post(&server, body).await;
        assert_eq!(r.0, StatusCode::OK, "{body:?}: {}", r.1);
        sent.push((subject.stored_form(body.as_bytes()), r.2));
    }
    let received = subject.received(sent.len()).await;
    assert_same(&received, &sent, "exact bytes");

    // 2. health while up
    assert!(healthy(&server).await, "healthy while the service is up");

    // 3. unreachable → retryable and unhealthy; back → reconnects
    if let Some(proxy) = proxy {
        proxy.cut();
        let (status, body, _) = post(&server, r#"{"while":"down"}"#).await;
        let retryable = status == StatusCode::SERVICE_UNAVAILABLE
            || (status == StatusCode::BAD_GATEWAY && body.contains(r#""retryable":true"#));
        assert!(retryable, "down: {status} {body}");
        wait_for("unhealthy while down", || async { !healthy(&server).await }).await;
        proxy.restore();
        let back = r#"{"after":"restore"}"#;
        let deadline = Instant::now() + Duration::from_secs(20);
        let id = loop {
            let (status, body, request_id) = post(&server, back).await;
            if status == StatusCode::OK {
                break request_id;
            }
            assert!(
                Instant::now() < deadline,
                "conformance: no delivery within 20 s after the service is back: {status} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        sent.push((subject.stored_form(back.as_bytes()), id));
        wait_for("healthy again", || healthy(&server)).await;
    }
    // What a failed attempt left behind (a message that reached the service although the
    // sender was told to retry) is allowed by at-least-once; the suite does not count it.

    // 4. a refusal is permanent
    if subject.refused().is_some() {
        let r = server.post("refused", &[], r#"{"refused":true}"#).await;
        assert_eq!(r.status, StatusCode::BAD_GATEWAY, "refused: {}", r.text());
        assert_eq!(r.json()["retryable"], false, "refused: {}", r.text());
    }

    // 5. shutdown flushes what was answered 200
    let client = server.client();
    let posts: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let body = format!(r#"{{"flush":{i}}}"#);
                let answer = client
                    .try_post(
                        "conformance",
                        &[("content-type", "application/json")],
                        body.clone(),
                    )
                    .await;
                match answer {
                    Some(r) => (r.status, body, r.header("x-request-id").map(str::to_owned)),
                    None => (StatusCode::SERVICE_UNAVAILABLE, body, None),
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.shutdown().await;
    for answer in posts {
        let (status, body, id) = answer.await.unwrap();
        if status == StatusCode::OK {
            sent.push((subject.stored_form(body.as_bytes()), id));
        }
    }
    let received = subject.received(sent.len()).await;
    for (body, _) in &sent {
        assert!(
            received.iter().any(|r| &r.body == body),
            "answered 200 but not in the service after shutdown: {}",
            String::from_utf8_lossy(body)
        );
    }
}

/// The ops token of the server under test (`/health`'s details need it).
const OPS_TOKEN: &str = "conformance-ops-token";

/// What `/health` says of the destination under test (other webhooks, such as the refused
/// one, may be unhealthy on purpose).
async fn healthy(server: &TestServer) -> bool {
    let bearer = format!("Bearer {OPS_TOKEN}");
    let report = server
        .request("GET", "/health", &[("Authorization", bearer.as_str())], "")
        .await
        .json();
    report["destinations"]["conformance"][0]["status"] == "ok"
}

async fn post(server: &TestServer, body: &str) -> (StatusCode, String, Option<String>) {
    let r = server
        .post(
            "conformance",
            &[("content-type", "application/json")],
            body.to_owned(),
        )
        .await;
    let id = r.header("x-request-id").map(str::to_owned);
    (r.status, r.text(), id)
}

/// Every sent body arrived exactly once, with its request id where one is carried.
fn assert_same(received: &[Received], sent: &[(Vec<u8>, Option<String>)], what: &str) {
    for (body, id) in sent {
        let matching: Vec<&Received> = received.iter().filter(|r| &r.body == body).collect();
        assert_eq!(
            matching.len(),
            1,
            "{what}: {:?} arrived {} times; received {received:?}",
            String::from_utf8_lossy(body),
            matching.len()
        );
        if let Some(carried) = &matching[0].request_id {
            assert_eq!(Some(carried), id.as_ref(), "{what}: request id");
        }
    }
}

/// Poll `condition` every 100 ms for up to 20 s.
async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("conformance: not within 20 s: {what}");
}
