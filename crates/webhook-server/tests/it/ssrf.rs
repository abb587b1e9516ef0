//! The optional SSRF guard (issue 18, point 9) through the real server: with
//! `deny_private_targets` a literal private target is a config error, a hostname that
//! resolves to a private address is refused when connecting (a retryable failure, nothing
//! sent), and `allowed_hosts` (the original's key) lets a listed host through. Off by
//! default.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::loopback_host_name as loopback_name;
use webhook_testkit::target::HttpTarget;

fn hook(url: &str, guard: &str) -> String {
    format!(
        r#"{{"h": {{"ack": "delivered", "module": "http_webhook", "module-config": {{"url": "{url}", "timeout": 2{guard}}}}}}}"#
    )
}

#[tokio::test]
async fn private_targets_are_refused_only_when_asked() {
    let target = HttpTarget::start().await;
    let port = target
        .url("")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let deny = r#", "deny_private_targets": true"#;

    // a literal private address, or metadata: refused at start-up
    for url in [
        target.url("/x"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
    ] {
        let errors = TestServer::builder(&hook(&url, deny)).config_error().await;
        assert!(errors.contains("deny_private_targets"), "{errors}");
    }

    // a name resolving to loopback: refused when connecting, nothing reaches the target
    let by_name = format!("http://{}:{port}/x", loopback_name());
    let server = TestServer::start(&hook(&by_name, deny)).await;
    let answer = server.post("h", &[], "{}").await;
    assert!(
        matches!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::BAD_GATEWAY
        ),
        "{} {}",
        answer.status,
        answer.text()
    );
    assert!(
        target.received().is_empty(),
        "the private target was called"
    );

    // allowed_hosts lets it through; no guard (the default) too
    let allowed = format!(r#", "allowed_hosts": ["{}"]"#, loopback_name());
    let server = TestServer::start(&hook(&by_name, &allowed)).await;
    assert_eq!(server.post("h", &[], "{}").await.status, StatusCode::OK);
    let server = TestServer::start(&hook(&target.url("/x"), "")).await;
    assert_eq!(server.post("h", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(target.received().len(), 2);
}
