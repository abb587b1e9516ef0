//! `oauth2` (issue 24) through the real server: RFC 7662 introspection against a local
//! endpoint (active, inactive, scopes, the gateway's client credentials, the cache, an
//! endpoint that is down) and local JWTs with scopes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::free_port;
use webhook_testkit::target::HttpTarget;

use super::original_options::hs256;

#[tokio::test]
async fn introspection_decides_and_positive_answers_are_cached() {
    let idp = HttpTarget::start().await;
    let down = format!("http://127.0.0.1:{}/introspect", free_port());
    let server = TestServer::start(&format!(
        r#"{{"in": {{"module": "log", "oauth2": {{"introspection_endpoint": "{}",
                     "client_id": "gateway", "client_secret": "gw-secret", "required_scope": "webhooks:write"}}}},
             "down": {{"module": "log", "oauth2": {{"introspection_endpoint": "{down}"}}}}}}"#,
        idp.url("/introspect")
    ))
    .await;
    let bearer = |t: &str| format!("Bearer {t}");
    idp.respond_json(
        StatusCode::OK,
        r#"{"active": true, "scope": "read webhooks:write", "client_id": "sender"}"#,
    );
    let auth = bearer("tok-good");
    assert_eq!(
        server
            .post("in", &[("Authorization", auth.as_str())], "{}")
            .await
            .status,
        StatusCode::OK
    );
    let asked = &idp.received()[0];
    let form: Vec<(String, String)> = form_urlencoded::parse(&asked.body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert!(
        form.contains(&("token".into(), "tok-good".into())),
        "{form:?}"
    );
    assert_eq!(
        asked.headers["authorization"],
        format!("Basic {}", STANDARD.encode("gateway:gw-secret"))
    );
    // cached: the endpoint is not asked again for the same token
    assert_eq!(
        server
            .post("in", &[("Authorization", auth.as_str())], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(idp.received().len(), 1, "a positive answer is cached");

    idp.respond_json(StatusCode::OK, r#"{"active": false}"#);
    let auth = bearer("tok-revoked");
    assert_eq!(
        server
            .post("in", &[("Authorization", auth.as_str())], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    idp.respond_json(StatusCode::OK, r#"{"active": true, "scope": "read"}"#);
    let auth = bearer("tok-narrow");
    assert_eq!(
        server
            .post("in", &[("Authorization", auth.as_str())], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "missing the required scope"
    );
    assert_eq!(
        server.post("in", &[], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    let auth = bearer("t");
    assert_eq!(
        server
            .post("down", &[("Authorization", auth.as_str())], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "an endpoint that does not answer lets nothing through"
    );
}

#[tokio::test]
async fn local_jwts_with_scopes() {
    let secret = "a-long-enough-shared-secret";
    let server = TestServer::start(&format!(
        r#"{{"jwt": {{"module": "log", "oauth2": {{"jwt_secret": "{secret}", "issuer": "idp",
                      "required_scope": ["webhooks:write"]}}}},
             "any": {{"module": "log", "oauth2": {{"validate_token": false}}}}}}"#
    ))
    .await;
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let good = hs256(
        secret,
        &serde_json::json!({"iss": "idp", "exp": exp, "scope": "read webhooks:write"}),
    );
    let scp = hs256(
        secret,
        &serde_json::json!({"iss": "idp", "exp": exp, "scp": ["webhooks:write"]}),
    );
    let narrow = hs256(
        secret,
        &serde_json::json!({"iss": "idp", "exp": exp, "scope": "read"}),
    );
    let other_issuer = hs256(
        secret,
        &serde_json::json!({"iss": "evil", "exp": exp, "scope": "webhooks:write"}),
    );
    let forged = hs256(
        "another-secret-entirely!",
        &serde_json::json!({"iss": "idp", "exp": exp, "scope": "webhooks:write"}),
    );
    for (token, status) in [
        (&good, StatusCode::OK),
        (&scp, StatusCode::OK),
        (&narrow, StatusCode::UNAUTHORIZED),
        (&other_issuer, StatusCode::UNAUTHORIZED),
        (&forged, StatusCode::UNAUTHORIZED),
    ] {
        let auth = format!("Bearer {token}");
        assert_eq!(
            server
                .post("jwt", &[("Authorization", auth.as_str())], "{}")
                .await
                .status,
            status
        );
    }
    assert_eq!(
        server
            .post("any", &[("Authorization", "Bearer whatever")], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server.post("any", &[], "{}").await.status,
        StatusCode::UNAUTHORIZED,
        "a token is still required"
    );
    let error = TestServer::builder(r#"{"x": {"module": "log", "oauth2": {}}}"#)
        .config_error()
        .await;
    assert!(error.contains("introspection_endpoint"), "{error}");
}
