//! `deploy/grafana/webhook-gateway.json` queries only metrics the server exports: every
//! `webhook_…` name in its expressions (histograms by their `_bucket` series) is in the
//! `/metrics` text of a running binary that spools, verifies, delivers and keeps history.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use sha2::Sha256;
use webhook_testkit::TestClient;
use webhook_testkit::target::HttpTarget;

use crate::spool_crash::start_server;

const TOKEN: &str = "grafana-ops-token-0123456789abcdef";

fn queried_metrics(dashboard: &serde_json::Value, out: &mut BTreeSet<String>) {
    match dashboard {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "expr" || key == "definition" {
                    let text = value.as_str().unwrap_or("");
                    let bytes = text.as_bytes();
                    let mut i = 0;
                    while let Some(at) = text[i..].find("webhook_") {
                        let start = i + at;
                        let end = start
                            + text[start..]
                                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                .unwrap_or(text.len() - start);
                        // a label (`webhook=~`) is not a metric
                        let is_label =
                            start > 0 && (bytes[start - 1] == b'{' || bytes[start - 1] == b',');
                        if !is_label && end - start > "webhook_".len() {
                            out.insert(text[start..end].to_owned());
                        }
                        i = end;
                    }
                } else {
                    queried_metrics(value, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| queried_metrics(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_queries_is_exported() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/grafana/webhook-gateway.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut queried = BTreeSet::new();
    queried_metrics(&dashboard, &mut queried);
    assert!(queried.len() >= 12, "{queried:?}");

    let target = HttpTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(
        &webhooks,
        format!(
            r#"{{"g": {{"module": "http_webhook", "ack": "persisted",
                 "module-config": {{"url": "{}", "timeout": 5}},
                 "hmac": {{"secret": "grafana-secret", "header": "X-Signature"}}}}}}"#,
            target.url("/in")
        ),
    )
    .unwrap();
    let (mut child, addr) = start_server(dir.path(), &webhooks, &["--ops-token", TOKEN]);
    let client = TestClient::new(addr);
    assert_eq!(
        client
            .post("g", &[("X-Signature", "sha256=00")], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(b"grafana-secret").unwrap();
    mac.update(b"{}");
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        client
            .post("g", &[("X-Signature", &signature)], "{}")
            .await
            .status,
        StatusCode::OK
    );
    // delivered (so the delivery histogram has a sample)
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while target.received().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let auth = format!("Bearer {TOKEN}");
    let text = client
        .request(
            "GET",
            "/metrics",
            &[("authorization", auth.as_str())],
            bytes::Bytes::new(),
        )
        .await
        .text();
    let _ = child.kill();
    let _ = child.wait();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let missing: Vec<&String> = queried
        .iter()
        .filter(|m| !exported.contains(m.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "queried by the dashboard, not exported: {missing:?}\n{text}"
    );
}
