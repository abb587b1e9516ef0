//! `recaptcha` (issue 24) through the real server against a local siteverify endpoint:
//! v3 score threshold, v2, header and body tokens, the remote IP from the trusted-proxy
//! logic, and a verify endpoint that is down (refused, never let through).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::free_port;
use webhook_testkit::target::HttpTarget;

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[tokio::test]
async fn tokens_are_checked_at_the_verify_endpoint() {
    let google = HttpTarget::start().await;
    let down = format!("http://127.0.0.1:{}/siteverify", free_port());
    let verify = google.url("/siteverify");
    let server = TestServer::start(&format!(
        r#"{{"v3": {{"module": "log", "trusted_proxies": ["127.0.0.1"],
                     "recaptcha": {{"secret_key": "site-secret", "verify_url": "{verify}", "min_score": 0.7}}}},
             "v2body": {{"module": "log",
                     "recaptcha": {{"secret_key": "site-secret", "version": "v2", "token_source": "body",
                                   "token_field": "captcha", "verify_url": "{verify}"}}}},
             "down": {{"module": "log", "recaptcha": {{"secret_key": "s", "verify_url": "{down}"}}}}}}"#
    ))
    .await;
    google.respond_json(StatusCode::OK, r#"{"success": true, "score": 0.9}"#);
    let r = server
        .post(
            "v3",
            &[
                ("X-Recaptcha-Token", "tok-1"),
                ("X-Forwarded-For", "198.51.100.7"),
            ],
            "{}",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let asked = form(&google.received()[0].body);
    assert!(
        asked.contains(&("secret".into(), "site-secret".into())),
        "{asked:?}"
    );
    assert!(
        asked.contains(&("response".into(), "tok-1".into())),
        "{asked:?}"
    );
    assert!(
        asked.contains(&("remoteip".into(), "198.51.100.7".into())),
        "the client behind the trusted proxy: {asked:?}"
    );

    google.respond_json(StatusCode::OK, r#"{"success": true, "score": 0.3}"#);
    let low = server
        .post("v3", &[("X-Recaptcha-Token", "tok-2")], "{}")
        .await;
    assert_eq!(
        low.status,
        StatusCode::UNAUTHORIZED,
        "score under min_score"
    );
    google.respond_json(StatusCode::OK, r#"{"success": false}"#);
    let failed = server
        .post("v3", &[("X-Recaptcha-Token", "tok-3")], "{}")
        .await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let calls = google.received().len();
    let missing = server.post("v3", &[], "{}").await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(google.received().len(), calls, "no token, no call");

    // v2: no score; the token in a body field
    google.respond_json(StatusCode::OK, r#"{"success": true}"#);
    let r = server
        .post("v2body", &[], r#"{"captcha": "tok-4", "order": 1}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let asked = form(&google.received().last().unwrap().body);
    assert!(
        asked.contains(&("response".into(), "tok-4".into())),
        "{asked:?}"
    );
    assert!(
        asked.contains(&("remoteip".into(), "127.0.0.1".into())),
        "the peer when no proxy is trusted: {asked:?}"
    );

    let r = server
        .post("down", &[("X-Recaptcha-Token", "t")], "{}")
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "unverifiable is refused"
    );
}
