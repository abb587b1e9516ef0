//! The original's later options of existing keys (issue 24, point 2), through the real
//! server: checks switched off in place, case-insensitive API keys, `jwt.verify_exp`,
//! a webhook's own `trusted_proxies`, `_comment` keys, legacy keys on chain items.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use sha2::Sha256;
use webhook_core::config::{ConfigSource, Env};
use webhook_testkit::TestServer;

#[tokio::test]
async fn an_empty_or_null_authorization_means_no_check() {
    for value in [r#""""#, "null", r#""   ""#] {
        let server = TestServer::start(&format!(
            r#"{{"open": {{"module": "log", "authorization": {value}}}}}"#
        ))
        .await;
        let r = server.post("open", &[], "{}").await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "authorization {value}: {}",
            r.text()
        );
    }
    // a real value still checks
    let server =
        TestServer::start(r#"{"closed": {"module": "log", "authorization": "Bearer t"}}"#).await;
    assert_eq!(
        server.post("closed", &[], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn rate_limit_enabled_false_switches_it_off_and_zero_refuses_all() {
    let server = TestServer::start(
        r#"{"off": {"module": "log", "rate_limit": {"enabled": false, "max_requests": 1}},
            "on": {"module": "log", "rate_limit": {"enabled": true, "max_requests": 1}},
            "zero": {"module": "log", "rate_limit": {"max_requests": 0, "window_seconds": 60}}}"#,
    )
    .await;
    for _ in 0..5 {
        assert_eq!(server.post("off", &[], "{}").await.status, StatusCode::OK);
    }
    assert_eq!(server.post("on", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(
        server.post("on", &[], "{}").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let r = server.post("zero", &[], "{}").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.header("retry-after").is_some());
}

#[tokio::test]
async fn api_keys_ignore_case_unless_case_sensitive() {
    let server = TestServer::start(
        r#"{"h": {"module": "log", "header_auth": {"api_key": "KeY-Ünï-42"}},
            "hs": {"module": "log", "header_auth": {"api_key": "KeY-42", "case_sensitive": true}},
            "q": {"module": "log", "query_auth": {"api_key": "KeY-42", "case_sensitive": false}},
            "qs": {"module": "log", "query_auth": {"api_key": "KeY-42", "case_sensitive": true}}}"#,
    )
    .await;
    let header = |key: &'static str| [("X-API-Key", key)];
    assert_eq!(
        server.post("h", &header("KeY-Ünï-42"), "{}").await.status,
        StatusCode::OK
    );
    // a non-ASCII header value is sent as its UTF-8 bytes
    let request = http::Request::post(server.url("/webhook/h"))
        .header(
            "X-API-Key",
            http::HeaderValue::from_bytes("key-ünï-42".as_bytes()).unwrap(),
        )
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")))
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http();
    assert_eq!(
        client.request(request).await.unwrap().status(),
        StatusCode::OK,
        "case ignored beyond ASCII, as Python's lower() does"
    );
    assert_eq!(
        server.post("h", &header("KeY-Unï-42"), "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.post("hs", &header("KeY-42"), "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.post("hs", &header("key-42"), "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    let query = |id: &str, key: &str| format!("/webhook/{id}?api_key={key}");
    assert_eq!(
        server
            .request("POST", &query("q", "kEy-42"), &[], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server
            .request("POST", &query("q", "kEy-43"), &[], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .request("POST", &query("qs", "KeY-42"), &[], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server
            .request("POST", &query("qs", "kEy-42"), &[], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

/// An HS256 JWT of `claims` (also used by `oauth2.rs`).
pub(crate) fn hs256(secret: &str, claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

#[tokio::test]
async fn jwt_verify_exp_false_accepts_expired_and_exp_less_tokens() {
    let secret = "a-shared-secret-of-some-length";
    let server = TestServer::start(&format!(
        r#"{{"lax": {{"module": "log", "jwt": {{"secret": "{secret}", "verify_exp": false}}}},
            "strict": {{"module": "log", "jwt": {{"secret": "{secret}"}}}}}}"#
    ))
    .await;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expired = hs256(secret, &serde_json::json!({"sub": "a", "exp": now - 3600}));
    let no_exp = hs256(secret, &serde_json::json!({"sub": "a"}));
    let forged = hs256("another-secret-entirely", &serde_json::json!({"sub": "a"}));
    for (id, token, status) in [
        ("lax", &expired, StatusCode::OK),
        ("lax", &no_exp, StatusCode::OK),
        ("lax", &forged, StatusCode::UNAUTHORIZED),
        ("strict", &expired, StatusCode::UNAUTHORIZED),
        ("strict", &no_exp, StatusCode::UNAUTHORIZED),
    ] {
        let bearer = format!("Bearer {token}");
        let r = server
            .post(id, &[("Authorization", bearer.as_str())], "{}")
            .await;
        assert_eq!(r.status, status, "{id}: {}", r.text());
    }
}

#[tokio::test]
async fn a_webhooks_own_trusted_proxies_are_believed_for_it_only() {
    // the test client connects from 127.0.0.1: the proxy
    let server = TestServer::start(
        r#"{"behind": {"module": "log", "ip_whitelist": ["198.51.100.7"],
                       "trusted_proxies": ["127.0.0.1"]},
            "direct": {"module": "log", "ip_whitelist": ["198.51.100.7"]}}"#,
    )
    .await;
    let xff = [("X-Forwarded-For", "198.51.100.7")];
    assert_eq!(
        server.post("behind", &xff, "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        server
            .post("behind", &[("X-Real-IP", "198.51.100.7")], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server
            .post("behind", &[("X-Forwarded-For", "203.0.113.1")], "{}")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        server.post("direct", &xff, "{}").await.status,
        StatusCode::FORBIDDEN,
        "another webhook does not believe that proxy"
    );
    let error = TestServer::builder(
        r#"{"bad": {"module": "log", "trusted_proxies": ["10.0.0.0/8", "proxy.local"]}}"#,
    )
    .config_error()
    .await;
    assert!(error.contains("bad.trusted_proxies[1]"), "{error}");
}

#[tokio::test]
async fn comment_keys_are_ignored_in_both_files() {
    let server = TestServer::builder(
        r#"{"_comment": "webhooks for the demo",
            "noted": {"_comment": "logs everything", "module": "log",
                      "module-config": {"pretty_print": false}}}"#,
    )
    .connections(
        r#"{"_comment": "no connections needed",
            "r": {"_note": "local", "type": "redis", "host": "127.0.0.1", "port": 6379}}"#,
    )
    .start()
    .await;
    assert_eq!(server.post("noted", &[], "{}").await.status, StatusCode::OK);
    // an unknown key without `_` is still an error
    let error = TestServer::builder(r#"{"w": {"module": "log", "comment": "x"}}"#)
        .config_error()
        .await;
    assert!(error.contains("w.comment: unknown key"), "{error}");
}

#[test]
fn legacy_topic_and_queue_name_on_chain_items() {
    let parse = |webhooks: &str| {
        webhook_core::config::parse(
            &webhook_server::registry::registry(),
            &ConfigSource::new("webhooks.json", webhooks),
            Some(&ConfigSource::new(
                "connections.json",
                r#"{"mq": {"type": "rabbitmq", "host": "127.0.0.1", "port": 5672, "user": "guest", "pass": "guest"}}"#,
            )),
            &Env::empty(),
        )
    };
    parse(r#"{"c": {"chain": [{"module": "rabbitmq", "connection": "mq", "queue_name": "q"}, "log"]}}"#)
        .unwrap();
    let error = parse(r#"{"c": {"chain": ["log", {"module": "log", "topic": "t"}]}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("c.chain[1].topic: module `log` does not use `topic`"),
        "{error}"
    );
}

#[tokio::test]
async fn credential_cleanup_masks_what_it_names_and_only_where_set() {
    use webhook_testkit::recorder::{Sink, registry_with_recorder};
    let masked = Sink::named("cleanup-mask");
    let removed = Sink::named("cleanup-remove");
    let exact = Sink::named("cleanup-none");
    let server = TestServer::builder(
        r#"{"mask": {"module": "test_recorder", "module-config": {"sink": "cleanup-mask"},
                     "credential_cleanup": {"enabled": true, "mode": "MASK", "fields": ["ssn"]}},
            "remove": {"module": "test_recorder", "module-config": {"sink": "cleanup-remove"},
                       "credential_cleanup": {"mode": "remove"}},
            "off": {"module": "test_recorder", "module-config": {"sink": "cleanup-none"},
                    "credential_cleanup": {"enabled": false}}}"#,
    )
    .registry(registry_with_recorder())
    .start()
    .await;
    let body =
        r#"{"user": "ann", "password": "hunter2", "ssn": "123", "nested": {"api_key": 7}, "z": 1}"#;
    for id in ["mask", "remove", "off"] {
        let r = server
            .post(id, &[("X-Auth-Token", "t0k"), ("X-Event", "e")], body)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{id}: {}", r.text());
    }
    let got = |sink: &Sink| sink.deliveries().pop().expect("delivered");
    let m = got(&masked);
    assert_eq!(
        &m.body[..],
        br#"{"user":"ann","password":"***REDACTED***","ssn":"***REDACTED***","nested":{"api_key":"***REDACTED***"},"z":1}"#,
        "masked, keys in their order"
    );
    assert_eq!(m.headers["x-auth-token"], "***REDACTED***");
    assert_eq!(m.headers["x-event"], "e");
    let r = got(&removed);
    assert_eq!(
        &r.body[..],
        br#"{"user":"ann","ssn":"123","nested":{},"z":1}"#
    );
    assert!(!r.headers.contains_key("x-auth-token"));
    let e = got(&exact);
    assert_eq!(
        &e.body[..],
        body.as_bytes(),
        "switched off: the exact bytes"
    );
    assert_eq!(e.headers["x-auth-token"], "t0k");
    let error = TestServer::builder(
        r#"{"bad": {"module": "log", "credential_cleanup": {"mode": "hide"}}}"#,
    )
    .config_error()
    .await;
    assert!(error.contains("bad.credential_cleanup.mode"), "{error}");
}

#[test]
fn the_originals_retry_lists_hmac_case_and_chain_destination_load() {
    let parse = |webhooks: &str| {
        webhook_core::config::parse(
            &webhook_server::registry::registry(),
            &ConfigSource::new("webhooks.json", webhooks),
            None,
            &Env::empty(),
        )
    };
    parse(
        r#"{"a": {"module": "log", "hmac": {"secret": "s", "algorithm": "SHA256"},
                  "retry": {"enabled": true, "retryable_errors": ["ConnectionError"],
                            "non_retryable_errors": ["ValueError"]}}}"#,
    )
    .unwrap();
    let error = parse(r#"{"a": {"module": "log", "hmac": {"secret": "s", "algorithm": "MD5"}}}"#)
        .unwrap_err()
        .to_string();
    assert!(error.contains("a.hmac.algorithm"), "{error}");
    let error = parse(r#"{"c": {"chain": [{"module": "log", "destination": "q"}]}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("c.chain[0].destination: module `log` does not use `destination`"),
        "{error}"
    );
}
