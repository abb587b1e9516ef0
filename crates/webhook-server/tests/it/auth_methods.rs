//! The original's other authentication methods and `json_schema`, through the real server:
//! `basic_auth`, `header_auth`, `query_auth`, `jwt` (tokens made by PyJWT), `json_schema`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{python, scripts_dir};
use webhook_testkit::recorder::Sink;

fn webhook(sink: &str, auth: &str) -> String {
    format!(
        r#"{{"w": {{"module": "test_recorder", "module-config": {{"sink": "{sink}"}}, {auth}}}}}"#
    )
}

#[tokio::test]
async fn basic_auth() {
    let sink = Sink::named("basic");
    let s = TestServer::start(&webhook(
        "basic",
        r#""basic_auth": {"username": "hooks", "password": "p@ss:word"}"#,
    ))
    .await;
    let basic = |creds: &str| format!("Basic {}", BASE64.encode(creds));
    let ok = s
        .post("w", &[("Authorization", &basic("hooks:p@ss:word"))], "{}")
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    for (case, value) in [
        ("wrong password", basic("hooks:p@ss:wore")),
        ("wrong user", basic("hook:p@ss:word")),
        ("not base64", "Basic ***".to_owned()),
        ("bearer", "Bearer aG9va3M6cEBzczp3b3Jk".to_owned()),
    ] {
        let r = s.post("w", &[("Authorization", &value)], "{}").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{case}");
    }
    assert_eq!(
        s.post("w", &[], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(sink.bodies().len(), 1);
}

#[tokio::test]
async fn header_and_query_api_keys() {
    let s = TestServer::start(&webhook("hdr", r#""header_auth": {"api_key": "k-123"}"#)).await;
    assert_eq!(
        s.post("w", &[("X-API-Key", "k-123")], "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.post("w", &[("X-API-Key", "k-12")], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.post("w", &[], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );
    let s = TestServer::start(&webhook(
        "hdr2",
        r#""header_auth": {"header_name": "X-Hook-Key", "api_key": "k-123"}"#,
    ))
    .await;
    assert_eq!(
        s.post("w", &[("X-Hook-Key", "k-123")], "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        s.post("w", &[("X-API-Key", "k-123")], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );

    let s = TestServer::start(&webhook("qry", r#""query_auth": {"api_key": "a b&c"}"#)).await;
    let c = s.client();
    let ok = c
        .request("POST", "/webhook/w?x=1&api_key=a%20b%26c", &[], "{}")
        .await;
    assert_eq!(ok.status, StatusCode::OK, "percent-decoded");
    let r = c.request("POST", "/webhook/w?api_key=a+b", &[], "{}").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = c.request("POST", "/webhook/w", &[], "{}").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let s = TestServer::start(&webhook(
        "qry2",
        r#""query_auth": {"parameter_name": "token", "api_key": "t"}"#,
    ))
    .await;
    let r = s
        .client()
        .request("POST", "/webhook/w?token=t", &[], "{}")
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

struct Tokens {
    rs_public: String,
    es_public: String,
    tokens: serde_json::Value,
}

fn pyjwt_tokens(secret: &str) -> Tokens {
    let output = std::process::Command::new(python())
        .arg(scripts_dir().join("jwt_tokens.py"))
        .args([secret, "https://issuer.example", "webhook-gateway"])
        .output()
        .expect("python with PyJWT (bash .ci/test installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    Tokens {
        rs_public: v["rs_public"].as_str().unwrap().to_owned(),
        es_public: v["es_public"].as_str().unwrap().to_owned(),
        tokens: v["tokens"].clone(),
    }
}

#[tokio::test]
async fn jwt_tokens_signed_by_pyjwt() {
    let secret = "a-long-enough-shared-secret-for-hs256-tokens!";
    let t = pyjwt_tokens(secret);
    let token = |name: &str| format!("Bearer {}", t.tokens[name].as_str().unwrap());
    let s = TestServer::start(&webhook(
        "jwt_hs",
        &format!(r#""jwt": {{"secret": "{secret}", "issuer": "https://issuer.example", "audience": "webhook-gateway"}}"#),
    ))
    .await;
    let ok = s
        .post("w", &[("Authorization", &token("hs_ok"))], "{}")
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    for name in [
        "hs_expired",
        "hs_no_exp",
        "hs_wrong_iss",
        "hs_wrong_aud",
        "hs_wrong_key",
        "hs512",
        "none",
        "rs_ok",
    ] {
        let r = s.post("w", &[("Authorization", &token(name))], "{}").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name} was accepted");
    }
    assert_eq!(
        s.post("w", &[], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );

    // Public-key algorithms; an HS256 token keyed with the public key is refused.
    for (algorithm, public, good) in [
        ("RS256", &t.rs_public, "rs_ok"),
        ("ES256", &t.es_public, "es_ok"),
    ] {
        let config = serde_json::json!({"w": {"module": "test_recorder", "module-config": {"sink": "jwt_pk"},
            "jwt": {"secret": public, "algorithm": algorithm}}});
        let s = TestServer::start(&config.to_string()).await;
        let ok = s.post("w", &[("Authorization", &token(good))], "{}").await;
        assert_eq!(ok.status, StatusCode::OK, "{algorithm}: {}", ok.text());
        for bad in ["confusion", "hs_ok", "none"] {
            let r = s.post("w", &[("Authorization", &token(bad))], "{}").await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{algorithm}: {bad} was accepted"
            );
        }
    }
}

#[tokio::test]
async fn jwt_config_errors() {
    for (jwt, key) in [
        (r#"{"secret": "s", "algorithm": "none"}"#, "w.jwt.algorithm"),
        (
            r#"{"secret": "s", "algorithm": "HS999"}"#,
            "w.jwt.algorithm",
        ),
        (
            r#"{"secret": "not a pem", "algorithm": "RS256"}"#,
            "w.jwt.secret",
        ),
        (r#"{"secret": ""}"#, "w.jwt.secret"),
    ] {
        let err = TestServer::builder(&webhook("cfg", &format!(r#""jwt": {jwt}"#)))
            .config_error()
            .await;
        assert!(err.contains(key), "{jwt}: {err}");
    }
}

#[tokio::test]
async fn json_schema_answers_422_on_mismatch() {
    let sink = Sink::named("schema");
    let s = TestServer::start(&webhook(
        "schema",
        r#""json_schema": {"type": "object", "required": ["action"],
                           "properties": {"action": {"enum": ["opened", "closed"]}, "number": {"type": "integer"}}}"#,
    ))
    .await;
    let ok = s
        .post("w", &[], r#"{"action": "opened", "number": 7}"#)
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    for body in [
        r#"{"number": 7}"#,
        r#"{"action": "merged"}"#,
        r#"{"action": "opened", "number": "7"}"#,
        "[]",
    ] {
        let r = s.post("w", &[], body).await;
        assert_eq!(
            r.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {}",
            r.text()
        );
    }
    assert_eq!(
        s.post("w", &[], "{not json").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(sink.bodies().len(), 1);

    let err = TestServer::builder(&webhook(
        "cfg",
        r#""json_schema": {"type": "no-such-type"}"#,
    ))
    .config_error()
    .await;
    assert!(
        err.contains("w.json_schema") && err.contains("not a valid JSON Schema"),
        "{err}"
    );
}
