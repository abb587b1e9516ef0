//! Verification edges (issue 18, point 8) through the real server: a PEM key with an HS*
//! algorithm is a config error, JWT `nbf` is checked, an unparsable `X-Forwarded-For`
//! hop fails closed, a Twilio request whose body no signature covers is refused, a custom
//! scheme must cover the body unless it says it does not, and the JSON check refuses what
//! destinations cannot carry.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use http::StatusCode;
use webhook_core::PipelineOptions;
use webhook_testkit::{TestServer, delivered_options};

const PEM: &str =
    "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----";

fn hs256(secret: &str, claims: &serde_json::Value) -> String {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{head}.{body}").as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{head}.{body}.{sig}")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_public_key_is_no_hs256_secret() {
    let webhooks =
        serde_json::json!({"jwt": {"module": "log", "jwt": {"secret": PEM}}}).to_string();
    let errors = TestServer::builder(&webhooks).config_error().await;
    assert!(errors.contains("jwt.secret"), "{errors}");
    assert!(errors.contains("PEM or JWK"), "{errors}");
}

#[tokio::test]
async fn jwt_not_before_is_checked() {
    let server = TestServer::start(
        r#"{"jwt": {"module": "log", "jwt": {"secret": "a-long-enough-jwt-secret-for-hs256"}}}"#,
    )
    .await;
    let secret = "a-long-enough-jwt-secret-for-hs256";
    let early = hs256(
        secret,
        &serde_json::json!({"exp": now() + 3600, "nbf": now() + 86_400}),
    );
    let bearer = format!("Bearer {early}");
    let refused = server
        .post("jwt", &[("Authorization", bearer.as_str())], "{}")
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let valid = hs256(
        secret,
        &serde_json::json!({"exp": now() + 3600, "nbf": now() - 10}),
    );
    let bearer = format!("Bearer {valid}");
    let accepted = server
        .post("jwt", &[("Authorization", bearer.as_str())], "{}")
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
}

#[tokio::test]
async fn an_unparsable_forwarded_for_fails_closed() {
    let server =
        TestServer::builder(r#"{"local": {"module": "log", "ip_whitelist": ["127.0.0.1"]}}"#)
            .options(PipelineOptions {
                trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
                ..delivered_options()
            })
            .start()
            .await;
    // garbage: the client is unknown, not the proxy
    let garbage = server
        .post("local", &[("X-Forwarded-For", "not-an-address")], "{}")
        .await;
    assert_eq!(garbage.status, StatusCode::FORBIDDEN);
    // ip:port is understood: this client is not on the list
    let with_port = server
        .post("local", &[("X-Forwarded-For", "10.1.1.1:1234")], "{}")
        .await;
    assert_eq!(with_port.status, StatusCode::FORBIDDEN);
    let listed = server
        .post("local", &[("X-Forwarded-For", "127.0.0.1:999")], "{}")
        .await;
    assert_eq!(listed.status, StatusCode::OK);
}

#[tokio::test]
async fn a_twilio_body_no_signature_covers_is_refused() {
    let url = "https://example.com/webhook/twilio";
    let server = TestServer::start(&format!(
        r#"{{"twilio": {{"module": "log", "data_type": "blob",
             "verify": {{"provider": "twilio", "secret": "twsecret", "public_url": "{url}"}}}}}}"#
    ))
    .await;
    // a signature over the bare URL, then any text/plain body
    let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(b"twsecret").unwrap();
    mac.update(url.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    let answer = server
        .post(
            "twilio",
            &[
                ("X-Twilio-Signature", signature.as_str()),
                ("Content-Type", "text/plain"),
            ],
            "transfer everything",
        )
        .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    // the same signature with an empty form body signs exactly what was sent
    let answer = server
        .post(
            "twilio",
            &[
                ("X-Twilio-Signature", signature.as_str()),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn a_custom_scheme_must_cover_the_body() {
    let scheme = |extra: &str| {
        format!(
            r#"{{"c": {{"module": "log", "verify": {{"secret": "s3cret", "scheme": {{
                 "signature_header": "x-sig", "timestamp_header": "x-ts", "signed": "{{t}}"{extra}}}}}}}}}"#
        )
    };
    let errors = TestServer::builder(&scheme("")).config_error().await;
    assert!(errors.contains("does not cover the body"), "{errors}");
    TestServer::start(&scheme(r#", "unsigned_body": true"#)).await;
}

#[tokio::test]
async fn the_json_check_refuses_what_destinations_cannot_carry() {
    let server = TestServer::start(r#"{"open": {"module": "log"}}"#).await;
    for body in [
        r#"{"a":"\ud800"}"#,
        "[1e999999]",
        &format!("[{}]", "9".repeat(1000)),
    ] {
        let answer = server.post("open", &[], body.to_owned()).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:.40}");
    }
    let fine = server
        .post("open", &[], r#"{"emoji":"\ud83d\ude00","n":1.5e10}"#)
        .await;
    assert_eq!(fine.status, StatusCode::OK);
}
