//! What an anonymous caller learns and can make the server do (issue 18, point 7):
//! `/openapi.json` behind the ops token, `/health` bare without it and never an amplifier,
//! cross-site admin requests refused, and an empty ops token refused at start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use http::StatusCode;
use webhook_server::server::{OpsToken, ServerOptions};
use webhook_testkit::TestServer;
use webhook_testkit::target::HttpTarget;

const TOKEN: &str = "anon-test-token";
const BEARER: &str = "Bearer anon-test-token";

fn with_token(public_openapi: bool) -> ServerOptions {
    ServerOptions {
        ops_token: OpsToken::new(TOKEN),
        public_openapi,
        ..ServerOptions::default()
    }
}

#[tokio::test]
async fn the_openapi_document_needs_the_token_unless_published() {
    let webhooks = r#"{"secret-hook-id-8f3a9c": {"module": "log"}}"#;
    let server = TestServer::builder(webhooks)
        .server_options(with_token(false))
        .start()
        .await;
    let anonymous = server.get("/openapi.json").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert!(!anonymous.text().contains("secret-hook-id"));
    let operator = server
        .request("GET", "/openapi.json", &[("Authorization", BEARER)], "")
        .await;
    assert_eq!(operator.status, StatusCode::OK);
    assert!(operator.text().contains("secret-hook-id-8f3a9c"));

    let published = TestServer::builder(webhooks)
        .server_options(with_token(true))
        .start()
        .await;
    assert_eq!(published.get("/openapi.json").await.status, StatusCode::OK);
}

#[tokio::test]
async fn health_is_bare_for_anonymous_callers_and_cached() {
    let target = HttpTarget::start().await;
    let mut webhooks = serde_json::Map::new();
    for i in 0..5 {
        webhooks.insert(
            format!("hook{i}"),
            serde_json::json!({"module": "http_webhook", "module-config": {"url": target.url("/h")}}),
        );
    }
    let server = TestServer::builder(&serde_json::Value::Object(webhooks).to_string())
        .server_options(with_token(false))
        .start()
        .await;
    let anonymous = server.get("/health").await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_eq!(anonymous.json(), serde_json::json!({"status": "healthy"}));
    let operator = server
        .request("GET", "/health", &[("Authorization", BEARER)], "")
        .await;
    assert!(operator.text().contains("hook3"), "{}", operator.text());

    // 50 concurrent calls: the destinations are checked once, not 50 times
    let before = target.received().len();
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let client = server.client();
            tokio::spawn(async move { client.get("/health").await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), StatusCode::OK);
    }
    let checks = target.received().len() - before;
    assert!(
        checks <= 5,
        "{checks} health requests reached the destinations"
    );
}

#[tokio::test]
async fn cross_site_admin_requests_are_refused() {
    let server = TestServer::builder(r#"{"a": {"module": "log"}}"#)
        .server_options(with_token(false))
        .start()
        .await;
    let host = format!("{}", server.addr);
    for headers in [
        vec![("Origin", "http://evil.example")],
        vec![("Sec-Fetch-Site", "cross-site")],
    ] {
        let mut headers = headers;
        headers.push(("Authorization", BEARER));
        let answer = server.request("POST", "/admin/reload", &headers, "").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{headers:?}");
    }
    // the same origin, or a tool that sends no Origin: not refused as cross-site
    let origin = format!("http://{host}");
    let same = server
        .request(
            "POST",
            "/admin/reload",
            &[("Authorization", BEARER), ("Origin", origin.as_str())],
            "",
        )
        .await;
    assert_eq!(same.status, StatusCode::CONFLICT, "{}", same.text());
    let tool = server
        .request("POST", "/admin/reload", &[("Authorization", BEARER)], "")
        .await;
    assert_eq!(tool.status, StatusCode::CONFLICT);
}

#[test]
fn an_empty_ops_token_is_refused_and_a_token_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(&webhooks, r#"{"a": {"module": "log"}}"#).unwrap();
    let bin = env!("CARGO_BIN_EXE_webhook-server");
    let out = Command::new(bin)
        .arg("--webhooks-config")
        .arg(&webhooks)
        .args(["--host", "127.0.0.1", "--port", "0", "--ops-token", ""])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ops token"), "{stderr}");

    let empty = dir.path().join("empty-token");
    std::fs::write(&empty, "\n").unwrap();
    let out = Command::new(bin)
        .arg("--webhooks-config")
        .arg(&webhooks)
        .args(["--host", "127.0.0.1", "--port", "0", "--ops-token-file"])
        .arg(&empty)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "an empty token file was accepted");
}
