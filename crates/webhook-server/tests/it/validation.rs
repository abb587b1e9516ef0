//! Validators through the real HTTP server: signatures, tokens, IP allow-lists, rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use sha2::Sha256;
use webhook_core::PipelineOptions;
use webhook_testkit::TestServer;
use webhook_testkit::recorder::Sink;

// ../shared/reference/signatures.md: GitHub's published vector.
const GITHUB_SECRET: &str = "It's a Secret to Everybody";
const GITHUB_BODY: &str = "Hello, World!";
const GITHUB_SIG: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

fn github_config(sink: &str) -> String {
    format!(
        r#"{{"gh": {{"data_type": "blob", "module": "test_recorder", "module-config": {{"sink": "{sink}"}},
            "hmac": {{"secret": "{GITHUB_SECRET}", "header": "X-Hub-Signature-256", "algorithm": "sha256"}}}}}}"#
    )
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[tokio::test]
async fn github_vector_accepted_in_every_spelling() {
    let sink = Sink::named("github_vector");
    let server = TestServer::start(&github_config("github_vector")).await;
    for value in [
        format!("sha256={GITHUB_SIG}"),
        GITHUB_SIG.to_owned(),
        GITHUB_SIG.to_uppercase(),
        format!("sha256={}", GITHUB_SIG.to_uppercase()),
    ] {
        let r = server
            .post("gh", &[("X-Hub-Signature-256", &value)], GITHUB_BODY)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{value}: {}", r.text());
        assert_eq!(r.json()["message"], "200 OK");
    }
    assert_eq!(sink.bodies().len(), 4);
    assert!(sink.bodies().iter().all(|b| b == GITHUB_BODY.as_bytes()));
}

#[tokio::test]
async fn bad_signatures_are_rejected_without_revealing_the_expected_one() {
    let sink = Sink::named("github_negative");
    let server = TestServer::start(&github_config("github_negative")).await;
    let good = format!("sha256={GITHUB_SIG}");
    let flipped = "Hello, World?";
    let wrong_secret = format!(
        "sha256={}",
        sign("It's a Secret to Everybody!", GITHUB_BODY.as_bytes())
    );
    let truncated = format!("sha256={}", &GITHUB_SIG[..63]);
    let cases = vec![
        (
            "flipped body byte",
            vec![("X-Hub-Signature-256", good.as_str())],
            flipped,
        ),
        (
            "wrong secret",
            vec![("X-Hub-Signature-256", wrong_secret.as_str())],
            GITHUB_BODY,
        ),
        ("missing header", Vec::<(&str, &str)>::new(), GITHUB_BODY),
        (
            "wrong header",
            vec![("X-HMAC-Signature", good.as_str())],
            GITHUB_BODY,
        ),
        (
            "truncated",
            vec![("X-Hub-Signature-256", truncated.as_str())],
            GITHUB_BODY,
        ),
        (
            "wrong algorithm prefix",
            vec![(
                "X-Hub-Signature-256",
                "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
            )],
            GITHUB_BODY,
        ),
        ("empty", vec![("X-Hub-Signature-256", "")], GITHUB_BODY),
    ];
    for (name, headers, body) in cases {
        let r = server.post("gh", &headers, body).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(r.json()["detail"], "Unauthorized", "{name}");
        assert!(
            !r.text().contains(GITHUB_SIG) && !r.text().contains(&GITHUB_SIG[..16]),
            "{name} leaks"
        );
        for (_, value) in r.headers.iter() {
            assert!(
                !value.to_str().unwrap_or("").contains(&GITHUB_SIG[..16]),
                "{name} leaks in a header"
            );
        }
    }
    assert!(
        sink.bodies().is_empty(),
        "nothing rejected may be delivered"
    );
}

#[tokio::test]
async fn hmac_sha512_and_default_header() {
    let sink = Sink::named("hmac512");
    let server = TestServer::start(
        r#"{"h": {"module": "test_recorder", "module-config": {"sink": "hmac512"},
            "hmac": {"secret": "k", "algorithm": "sha512"}}}"#,
    )
    .await;
    let body = br#"{"a":1}"#;
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(b"k").unwrap();
    mac.update(body);
    let sig = hex::encode(mac.finalize().into_bytes());
    let r = server
        .post(
            "h",
            &[("X-HMAC-Signature", &format!("sha512={sig}"))],
            &body[..],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = server
        .post("h", &[("X-HMAC-Signature", &sign("k", body))], &body[..])
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a sha256 MAC must not pass a sha512 check"
    );
    assert_eq!(sink.bodies().len(), 1);
}

#[tokio::test]
async fn bearer_token_right_wrong_missing() {
    let server = TestServer::builder(
        r#"{"b": {"module": "test_recorder", "module-config": {"sink": "bearer"}, "authorization": "Bearer {$TOKEN}"}}"#,
    )
    .env("TOKEN", "t0k3n")
    .start()
    .await;
    let ok = server
        .post("b", &[("Authorization", "Bearer t0k3n")], "{}")
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    for headers in [
        vec![("Authorization", "Bearer t0k3")],
        vec![("Authorization", "Bearer t0k3nn")],
        vec![],
    ] {
        let r = server.post("b", &headers, "{}").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(!r.text().contains("t0k3n"));
    }
    assert_eq!(Sink::named("bearer").bodies().len(), 1);
}

#[tokio::test]
async fn ip_allow_list_with_cidrs() {
    let server = TestServer::start(
        r#"{"allow": {"module": "log", "ip_whitelist": ["192.0.2.1", "127.0.0.0/8"]},
            "deny": {"module": "log", "ip_whitelist": ["10.0.0.0/8", "2001:db8::/32"]}}"#,
    )
    .await;
    assert_eq!(server.post("allow", &[], "{}").await.status, StatusCode::OK);
    let r = server.post("deny", &[], "{}").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["detail"], "Forbidden");
}

#[tokio::test]
async fn forwarded_for_only_from_trusted_proxies() {
    let config = r#"{"w": {"module": "log", "ip_whitelist": ["10.0.0.0/8"]}}"#;
    // Peer 127.0.0.1 is not a trusted proxy: X-Forwarded-For is ignored.
    let untrusted = TestServer::start(config).await;
    let r = untrusted
        .post("w", &[("X-Forwarded-For", "10.1.2.3")], "{}")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Peer 127.0.0.1 is a trusted proxy: the forwarded client counts.
    let options = PipelineOptions {
        trusted_proxies: vec!["127.0.0.1/32".parse().unwrap()],
        ..webhook_testkit::delivered_options()
    };
    let trusted = TestServer::builder(config).options(options).start().await;
    assert_eq!(
        trusted
            .post("w", &[("X-Forwarded-For", "10.1.2.3")], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        trusted
            .post("w", &[("X-Forwarded-For", "192.0.2.50")], "{}")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A spoofed left-most entry does not help: the right-most untrusted hop counts.
    assert_eq!(
        trusted
            .post("w", &[("X-Forwarded-For", "10.9.9.9, 192.0.2.50")], "{}")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // No header: the peer itself (not in the list).
    assert_eq!(
        trusted.post("w", &[], "{}").await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn rate_limit_counts_only_authenticated_requests() {
    let server = TestServer::start(
        r#"{"r": {"module": "log", "authorization": "Bearer x",
            "rate_limit": {"max_requests": 3, "window_seconds": 60}}}"#,
    )
    .await;
    // Unauthenticated requests do not spend the quota.
    for _ in 0..5 {
        assert_eq!(
            server.post("r", &[], "{}").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    for i in 0..3 {
        let r = server
            .post("r", &[("Authorization", "Bearer x")], "{}")
            .await;
        assert_eq!(r.status, StatusCode::OK, "request {i}");
    }
    let r = server
        .post("r", &[("Authorization", "Bearer x")], "{}")
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.json()["detail"], "Too many requests");
    let retry_after: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Still authenticated first: a bad token is 401, not 429.
    assert_eq!(
        server
            .post("r", &[("Authorization", "Bearer y")], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn validators_run_in_order_ip_then_auth() {
    // A forbidden client gets 403 even with a bad token: the IP check comes first.
    let server = TestServer::start(
        r#"{"o": {"module": "log", "ip_whitelist": ["10.0.0.0/8"], "authorization": "Bearer x"}}"#,
    )
    .await;
    assert_eq!(
        server
            .post("o", &[("Authorization", "Bearer nope")], "{}")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}
