//! `digest_auth` (issue 24) through the real server, with independent clients: `curl
//! --digest` and Python requests' `HTTPDigestAuth` answer the server's challenge; a
//! replayed Authorization header, a wrong password and a nonce the server never issued are
//! refused with a fresh challenge.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{python, scripts_dir};
use webhook_testkit::recorder::Sink;

/// `curl --digest` (run off the runtime: the server under test shares it).
async fn curl_digest(url: &str, user: &str) -> u16 {
    let (url, user) = (url.to_owned(), user.to_owned());
    tokio::task::spawn_blocking(move || curl_digest_blocking(&url, &user))
        .await
        .unwrap()
}

fn curl_digest_blocking(url: &str, user: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--digest",
            "-u",
            user,
        ])
        .args([
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"via": "curl"}"#,
            url,
        ])
        .output()
        .expect("curl runs");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn independent_digest_clients_get_in_and_replays_do_not() {
    let sink = Sink::named("digest-auth");
    let server = TestServer::builder(
        r#"{"digest": {"module": "test_recorder", "module-config": {"sink": "digest-auth"},
            "digest_auth": {"username": "alice", "password": "wonderland", "realm": "Webhooks"}},
            "digest256": {"module": "log",
            "digest_auth": {"username": "bob", "password": "builder", "algorithm": "SHA-256"}}}"#,
    )
    .registry(webhook_testkit::recorder::registry_with_recorder())
    .start()
    .await;

    // no credentials: a challenge with a nonce of the server's
    let r = server.post("digest", &[], "{}").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header("www-authenticate").unwrap().to_owned();
    assert!(
        challenge.starts_with("Digest realm=\"Webhooks\""),
        "{challenge}"
    );
    assert!(challenge.contains("qop=\"auth\"") && challenge.contains("algorithm=MD5"));

    let url = server.url("/webhook/digest");
    assert_eq!(curl_digest(&url, "alice:wonderland").await, 200);
    assert_eq!(curl_digest(&url, "alice:wrong").await, 401);
    assert_eq!(curl_digest(&url, "mallory:wonderland").await, 401);
    assert_eq!(
        curl_digest(&server.url("/webhook/digest256"), "bob:builder").await,
        200
    );
    assert_eq!(
        sink.bodies(),
        vec![bytes::Bytes::from_static(br#"{"via": "curl"}"#)],
        "only the authenticated request was delivered"
    );

    let client_url = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python())
            .arg(scripts_dir().join("digest_client.py"))
            .args([client_url.as_str(), "alice", "wonderland"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(seen["challenged"], 401, "{seen}");
    assert_eq!(seen["first"], 200, "{seen}");
    assert_eq!(seen["sent_digest"], true, "{seen}");
    assert_eq!(
        seen["replay"], 401,
        "a replayed response is refused: {seen}"
    );
    assert!(
        seen["replay_challenge"]
            .as_str()
            .unwrap()
            .starts_with("Digest "),
        "{seen}"
    );
    assert_eq!(seen["wrong"], 401, "{seen}");

    // a made-up nonce, however well formed the rest
    let forged = r#"Digest username="alice", realm="Webhooks", nonce="00000000000000010000000000000001deadbeefdeadbeefdeadbeefdeadbeef", uri="/webhook/digest", qop=auth, nc=00000001, cnonce="abc", response="0123456789abcdef0123456789abcdef", algorithm=MD5"#;
    let r = server
        .post("digest", &[("Authorization", forged)], "{}")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").is_some());
    assert_eq!(sink.bodies().len(), 2, "curl's and requests' posts only");
}
