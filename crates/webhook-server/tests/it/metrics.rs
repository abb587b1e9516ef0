//! `GET /metrics` after a known sequence of requests: exact counter values, parsed with the
//! Prometheus client's own text-format parser; the ops token on `/metrics` and `/stats`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use sha2::Sha256;
use webhook_server::server::{OpsToken, ServerOptions};
use webhook_testkit::TestServer;
use webhook_testkit::interop::{python, scripts_dir};
use webhook_testkit::recorder::Sink;

struct Sample {
    name: String,
    labels: serde_json::Map<String, serde_json::Value>,
    value: f64,
}

fn parse(text: &str) -> Vec<Sample> {
    let mut child = Command::new(python())
        .arg(scripts_dir().join("prom_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python with prometheus_client (bash .ci/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "not valid Prometheus text: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Sample {
                name: v["name"].as_str().unwrap().to_owned(),
                labels: v["labels"].as_object().unwrap().clone(),
                value: v["value"].as_f64().unwrap(),
            }
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).and_then(|x| x.as_str()) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {} samples", found.len());
    found[0].value
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(b"metrics-secret").unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn counters_after_a_known_sequence() {
    let sink = Sink::named("metrics_seq");
    let server = TestServer::start(
        r#"{"mx": {"module": "test_recorder", "module-config": {"sink": "metrics_seq"},
                 "hmac": {"secret": "metrics-secret", "header": "X-Hub-Signature-256"},
                 "rate_limit": {"max_requests": 3, "window_seconds": 60}}}"#,
    )
    .await;
    let post = |body: &'static str, signature: String| {
        let server = &server;
        async move {
            server
                .post("mx", &[("X-Hub-Signature-256", signature.as_str())], body)
                .await
                .status
        }
    };
    assert_eq!(
        post(r#"{"n": 1}"#, sign(r#"{"n": 1}"#)).await,
        StatusCode::OK
    );
    assert_eq!(
        post(r#"{"n": 2}"#, sign(r#"{"n": 2}"#)).await,
        StatusCode::OK
    );
    assert_eq!(
        post(r#"{"n": 3}"#, sign("other")).await,
        StatusCode::UNAUTHORIZED
    );
    sink.fail_next(1);
    assert_eq!(
        post(r#"{"n": 4}"#, sign(r#"{"n": 4}"#)).await,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(
        post(r#"{"n": 5}"#, sign(r#"{"n": 5}"#)).await,
        StatusCode::TOO_MANY_REQUESTS
    );

    let r = server.get("/metrics").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("content-type").unwrap().starts_with("text/plain"));
    let samples = parse(&r.text());
    let w = [("webhook", "mx")];
    assert_eq!(value(&samples, "webhook_requests_received_total", &w), 5.0);
    assert_eq!(value(&samples, "webhook_requests_accepted_total", &w), 2.0);
    assert_eq!(value(&samples, "webhook_requests_failed_total", &w), 1.0);
    assert_eq!(
        value(
            &samples,
            "webhook_requests_rejected_total",
            &[("webhook", "mx"), ("reason", "signature_mismatch")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "webhook_requests_rejected_total",
            &[("webhook", "mx"), ("reason", "rate_limited")]
        ),
        1.0
    );
    let d = [("webhook", "mx"), ("destination", "test_recorder")];
    assert_eq!(
        value(&samples, "webhook_destination_delivered_total", &d),
        2.0
    );
    assert_eq!(
        value(
            &samples,
            "webhook_destination_failed_total",
            &[
                ("webhook", "mx"),
                ("destination", "test_recorder"),
                ("retryable", "true")
            ]
        ),
        1.0
    );
    assert_eq!(value(&samples, "webhook_destination_in_flight", &d), 0.0);
    assert_eq!(
        value(&samples, "webhook_request_duration_seconds_count", &w),
        5.0
    );
    assert_eq!(
        value(&samples, "webhook_delivery_duration_seconds_count", &d),
        3.0
    );
    assert_eq!(
        value(
            &samples,
            "webhook_request_duration_seconds_bucket",
            &[("webhook", "mx"), ("le", "+Inf")]
        ),
        5.0
    );
    // No request data in labels.
    assert!(samples.iter().all(|s| {
        !s.labels
            .values()
            .any(|v| v.as_str().is_some_and(|v| v.contains("n\"")))
    }));
}

#[tokio::test]
async fn the_ops_token_protects_metrics_and_stats() {
    let server = TestServer::builder(r#"{"tok": {"module": "log"}}"#)
        .server_options(ServerOptions {
            ops_token: OpsToken::new("0ps-t0ken"),
            ..ServerOptions::default()
        })
        .start()
        .await;
    for path in ["/metrics", "/stats"] {
        assert_eq!(
            server.get(path).await.status,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        let c = server.client();
        let r = c
            .request("GET", path, &[("Authorization", "Bearer wrong")], "")
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{path}");
        let r = c
            .request("GET", path, &[("Authorization", "Bearer 0ps-t0ken")], "")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
    }
    assert_eq!(
        server.get("/health").await.status,
        StatusCode::OK,
        "health stays open"
    );
    assert_eq!(server.post("tok", &[], "{}").await.status, StatusCode::OK);

    let off = TestServer::builder(r#"{"off": {"module": "log"}}"#)
        .server_options(ServerOptions {
            metrics: false,
            ..ServerOptions::default()
        })
        .start()
        .await;
    assert_eq!(off.get("/metrics").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_ops_allow_list_and_a_separate_metrics_address() {
    let denied = TestServer::builder(r#"{"al": {"module": "log"}}"#)
        .server_options(ServerOptions {
            ops_allow: vec!["10.0.0.0/8".parse().unwrap()],
            ..ServerOptions::default()
        })
        .start()
        .await;
    assert_eq!(denied.get("/metrics").await.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.get("/stats").await.status, StatusCode::FORBIDDEN);
    assert_eq!(
        denied.post("al", &[], "{}").await.status,
        StatusCode::OK,
        "webhooks are not affected"
    );
    let allowed = TestServer::builder(r#"{"al2": {"module": "log"}}"#)
        .server_options(ServerOptions {
            ops_allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            ..ServerOptions::default()
        })
        .start()
        .await;
    assert_eq!(allowed.get("/metrics").await.status, StatusCode::OK);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServerOptions {
        ops_token: OpsToken::new("m"),
        ..ServerOptions::default()
    };
    let task = tokio::spawn(webhook_server::server::serve_metrics(
        listener,
        std::sync::Arc::new(options),
    ));
    let client = webhook_testkit::TestClient::new(addr);
    assert_eq!(
        client.get("/metrics").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = client
        .request("GET", "/metrics", &[("Authorization", "Bearer m")], "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().contains("webhook_requests_received_total"),
        "{}",
        r.text()
    );
    assert_eq!(client.get("/stats").await.status, StatusCode::NOT_FOUND);
    task.abort();
}
