//! `GET /openapi.json` and `webhook-server openapi`: an OpenAPI 3.1 document of the live
//! config, validated with openapi-spec-validator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{python, scripts_dir};

const WEBHOOKS: &str = r#"{
  "github": {"module": "log", "verify": {"provider": "github", "secret": "gh-s3cret"}},
  "orders": {"module": "log", "hmac": {"secret": "hm-s3cret", "header": "X-Signature"},
             "json_schema": {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}}},
  "files": {"data_type": "blob", "module": "log", "basic_auth": {"username": "u", "password": "ba-s3cret"}},
  "tokens": {"module": "log", "jwt": {"secret": "jwt-s3cret"}, "query_auth": {"api_key": "qa-s3cret"},
             "ip_whitelist": ["10.0.0.0/8"]},
  "open": {"chain": ["log", "log"]}
}"#;

fn validate(document: &str) {
    let mut child = Command::new(python())
        .arg(scripts_dir().join("openapi_validate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python with openapi-spec-validator (bash .ci/test installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(document.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn the_document_validates_and_lists_every_webhook() {
    let server = TestServer::start(WEBHOOKS).await;
    let r = server.get("/openapi.json").await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.text();
    validate(&text);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<&str> = paths.keys().map(String::as_str).collect();
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            "/webhook/files",
            "/webhook/github",
            "/webhook/open",
            "/webhook/orders",
            "/webhook/tokens"
        ]
    );
    let orders = &doc["paths"]["/webhook/orders"]["post"];
    assert_eq!(
        orders["requestBody"]["content"]["application/json"]["schema"]["required"][0],
        "order_id"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["github.verify"]["name"], "x-hub-signature-256");
    assert_eq!(schemes["orders.hmac"]["name"], "X-Signature");
    assert_eq!(schemes["files.basic_auth"]["scheme"], "basic");
    assert_eq!(schemes["tokens.jwt"]["bearerFormat"], "JWT");
    assert_eq!(schemes["tokens.query_auth"]["in"], "query");
    assert!(
        doc["paths"]["/webhook/files"]["post"]["requestBody"]["content"]["*/*"].is_object(),
        "blob bodies are any bytes"
    );
    assert!(
        doc["paths"]["/webhook/open"]["post"]
            .get("security")
            .is_none()
    );
    assert!(!text.contains("s3cret"), "no secret in the document");
}

#[tokio::test]
async fn the_document_can_be_switched_off() {
    let server = TestServer::builder(WEBHOOKS)
        .without_openapi()
        .start()
        .await;
    assert_eq!(
        server.get("/openapi.json").await.status,
        StatusCode::NOT_FOUND
    );
}

#[test]
fn the_cli_prints_the_same_document() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webhooks.json");
    std::fs::write(&file, WEBHOOKS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_webhook-server"))
        .arg("openapi")
        .arg("--webhooks-config")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    validate(&text);
    let printed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(printed, webhook_server::openapi::document(WEBHOOKS));
}
