//! `oauth1` (issue 24) through the real server, requests signed by oauthlib: HMAC-SHA1
//! over the base string with query and form parameters, PLAINTEXT, a nonce used twice, a
//! wrong secret and an old timestamp are refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{python, scripts_dir};

/// oauthlib's Authorization header for `POST url` with `body`.
fn sign(
    url: &str,
    body: &str,
    content_type: &str,
    secret: &str,
    method: &str,
    timestamp: Option<&str>,
) -> String {
    let mut command = Command::new(python());
    command.arg(scripts_dir().join("oauth1_sign.py")).args([
        url,
        body,
        content_type,
        "ck-123",
        secret,
        method,
    ]);
    if let Some(timestamp) = timestamp {
        command.arg(timestamp);
    }
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn oauthlib_signed_requests_pass_and_replays_do_not() {
    let server = TestServer::start(
        r#"{"oa": {"module": "log", "oauth1": {"consumer_key": "ck-123", "consumer_secret": "cs-456"}},
            "form": {"module": "log", "data_type": "blob",
                     "oauth1": {"consumer_key": "ck-123", "consumer_secret": "cs-456"}},
            "plain": {"module": "log", "oauth1": {"consumer_key": "ck-123", "consumer_secret": "cs-456",
                      "signature_method": "PLAINTEXT", "verify_nonce": false}}}"#,
    )
    .await;
    let json = "application/json";
    let body = r#"{"event": "signed"}"#;
    let url = server.url("/webhook/oa?source=test&x=a%20b");
    let header = sign(&url, body, json, "cs-456", "HMAC-SHA1", None);
    let post =
        |path: &'static str, auth: String, body: &'static str, content_type: &'static str| {
            let server = &server;
            async move {
                server
                    .request(
                        "POST",
                        path,
                        &[
                            ("Authorization", auth.as_str()),
                            ("Content-Type", content_type),
                        ],
                        body,
                    )
                    .await
                    .status
            }
        };
    assert_eq!(
        post(
            "/webhook/oa?source=test&x=a%20b",
            header.clone(),
            body,
            json
        )
        .await,
        StatusCode::OK
    );
    assert_eq!(
        post("/webhook/oa?source=test&x=a%20b", header, body, json).await,
        StatusCode::UNAUTHORIZED,
        "the same nonce again"
    );
    // the query is signed: another one fails
    let header = sign(&url, body, json, "cs-456", "HMAC-SHA1", None);
    assert_eq!(
        post("/webhook/oa?source=evil", header, body, json).await,
        StatusCode::UNAUTHORIZED
    );
    let header = sign(&url, body, json, "wrong-secret", "HMAC-SHA1", None);
    assert_eq!(
        post("/webhook/oa?source=test&x=a%20b", header, body, json).await,
        StatusCode::UNAUTHORIZED
    );
    let old = sign(&url, body, json, "cs-456", "HMAC-SHA1", Some("1000000000"));
    assert_eq!(
        post("/webhook/oa?source=test&x=a%20b", old, body, json).await,
        StatusCode::UNAUTHORIZED
    );

    // form parameters are part of the signature
    let form = "application/x-www-form-urlencoded";
    let form_url = server.url("/webhook/form");
    let header = sign(
        &form_url,
        "amount=10&currency=EUR",
        form,
        "cs-456",
        "HMAC-SHA1",
        None,
    );
    assert_eq!(
        post(
            "/webhook/form",
            header.clone(),
            "amount=10&currency=EUR",
            form
        )
        .await,
        StatusCode::OK
    );
    let header = sign(
        &form_url,
        "amount=10&currency=EUR",
        form,
        "cs-456",
        "HMAC-SHA1",
        None,
    );
    assert_eq!(
        post("/webhook/form", header, "amount=99&currency=EUR", form).await,
        StatusCode::UNAUTHORIZED,
        "a changed form body"
    );

    let plain_url = server.url("/webhook/plain");
    let header = sign(&plain_url, body, json, "cs-456", "PLAINTEXT", None);
    assert_eq!(
        post("/webhook/plain", header, body, json).await,
        StatusCode::OK
    );
    let header = sign(&plain_url, body, json, "nope", "PLAINTEXT", None);
    assert_eq!(
        post("/webhook/plain", header, body, json).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post("/webhook/oa", String::new(), body, json).await,
        StatusCode::UNAUTHORIZED,
        "no Authorization"
    );
}
