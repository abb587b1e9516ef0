//! Webhook-level `filter` (the JSON-match dialect): a request that does not match is
//! answered 200 `"filtered": true`, neither stored nor delivered, and counted; one that
//! matches is delivered byte for byte. Operators one by one are unit-tested in
//! `webhook_core::filter`; here they run through the real server on headers, body, query
//! and path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::recorder::Sink;

#[tokio::test]
async fn unmatched_requests_are_answered_filtered_and_neither_stored_nor_delivered() {
    let sink = Sink::named("filter_gh");
    let server = TestServer::start(
        r#"{"gh": {"ack": "persisted", "module": "test_recorder", "module-config": {"sink": "filter_gh"},
                   "filter": {"headers": {"x-github-event": {"$in": ["push", "release"]}},
                              "body": {"ref": {"$startsWith": "refs/heads/"},
                                       "$or": [{"forced": false}, {"sender": {"type": "Bot"}}],
                                       "commits": {"$exist": true}},
                              "query": {"env": {"$neq": "test"}},
                              "path": {"$endsWith": "/gh"}}}}"#,
    )
    .await;
    let push = r#"{"ref": "refs/heads/main", "forced": false, "commits": [{"id": "a"}]}"#;
    let cases: [(&str, &str, &str, bool); 6] = [
        ("push", "/webhook/gh", push, true),
        ("pull_request", "/webhook/gh", push, false),
        ("push", "/webhook/gh?env=test", push, false),
        (
            "push",
            "/webhook/gh?env=prod",
            r#"{"ref": "refs/tags/v1", "forced": false, "commits": []}"#,
            false,
        ),
        (
            "release",
            "/webhook/gh",
            r#"{"ref": "refs/heads/x", "forced": true, "sender": {"type": "Bot"}, "commits": []}"#,
            true,
        ),
        (
            "push",
            "/webhook/gh",
            r#"{"ref": "refs/heads/x", "forced": true, "commits": []}"#,
            false,
        ),
    ];
    let mut delivered = Vec::new();
    for (event, path, body, matches) in cases {
        let r = server
            .request("POST", path, &[("X-GitHub-Event", event)], body)
            .await;
        assert_eq!(
            r.status,
            StatusCode::OK,
            "{event} {path} {body}: {}",
            r.text()
        );
        if matches {
            assert_eq!(r.text(), r#"{"message":"200 OK"}"#, "{event} {path} {body}");
            delivered.push(body.as_bytes().to_vec());
        } else {
            assert_eq!(
                r.text(),
                r#"{"message":"200 OK","filtered":true}"#,
                "{event} {path} {body}"
            );
        }
    }
    // Delivered in the background (ack: persisted); give filtered ones the same time.
    for _ in 0..50 {
        if sink.bodies().len() >= delivered.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let bodies: Vec<Vec<u8>> = sink.bodies().iter().map(|b| b.to_vec()).collect();
    assert_eq!(
        bodies, delivered,
        "only the matching requests, byte for byte"
    );
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains(r#"webhook_requests_filtered_total{webhook="gh"} 4"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("filtered"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stats = server.get("/stats").await.json();
    assert_eq!(
        stats["gh"]["total"], 2,
        "filtered requests are not counted as received: {stats}"
    );
}

#[tokio::test]
async fn a_bad_filter_is_a_config_error_naming_the_webhook_and_the_place() {
    for (filter, place) in [
        (r#"{"body": {"n": {"$near": 1}}}"#, "filter.body.n.$near"),
        (
            r#"{"body": {"s": {"$regex": "(unclosed"}}}"#,
            "filter.body.s.$regex",
        ),
        (r#"[1, 2]"#, "filter"),
    ] {
        let error = TestServer::builder(&format!(
            r#"{{"hook": {{"module": "log", "filter": {filter}}}}}"#
        ))
        .config_error()
        .await;
        assert!(
            error.contains("webhooks.json") && error.contains("hook") && error.contains(place),
            "{filter}: {error}"
        );
    }
}
