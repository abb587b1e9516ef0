//! Webhook-level `filter` (the JSON-match dialect): a request that does not match is
//! answered 200 `"filtered": true`, neither stored nor delivered, and counted; one that
//! matches is delivered byte for byte. Operators one by one are unit-tested in
//! `webhook_core::filter`; here they run through the real server on headers, body, query
//! and path.
//! (Metrics are process-wide: each test has webhook ids of its own.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::recorder::Sink;

#[tokio::test]
async fn unmatched_requests_are_answered_filtered_and_neither_stored_nor_delivered() {
    let sink = Sink::named("filter_gh");
    let server = TestServer::start(
        r#"{"filtered": {"ack": "persisted", "module": "test_recorder", "module-config": {"sink": "filter_gh"},
                   "filter": {"headers": {"x-github-event": {"$in": ["push", "release"]}},
                              "body": {"ref": {"$startsWith": "refs/heads/"},
                                       "$or": [{"forced": false}, {"sender": {"type": "Bot"}}],
                                       "commits": {"$exist": true}},
                              "query": {"env": {"$neq": "test"}},
                              "path": {"$endsWith": "/filtered"}}}}"#,
    )
    .await;
    let push = r#"{"ref": "refs/heads/main", "forced": false, "commits": [{"id": "a"}]}"#;
    let cases: [(&str, &str, &str, bool); 6] = [
        ("push", "/webhook/filtered", push, true),
        ("pull_request", "/webhook/filtered", push, false),
        ("push", "/webhook/filtered?env=test", push, false),
        (
            "push",
            "/webhook/filtered?env=prod",
            r#"{"ref": "refs/tags/v1", "forced": false, "commits": []}"#,
            false,
        ),
        (
            "release",
            "/webhook/filtered",
            r#"{"ref": "refs/heads/x", "forced": true, "sender": {"type": "Bot"}, "commits": []}"#,
            true,
        ),
        (
            "push",
            "/webhook/filtered",
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
        metrics.contains(r#"webhook_requests_filtered_total{webhook="filtered"} 4"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("filtered"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let stats = server.get("/stats").await.json();
    assert_eq!(
        stats["filtered"]["total"], 2,
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

/// Routing: a chain item's `filter` sends a request only to the destinations it matches;
/// the others are skipped (and counted), in the spool too, so a restart or retry does not
/// deliver them; when none matches the answer is `filtered`.
#[tokio::test]
async fn chain_items_route_by_their_filters() {
    let pushes = Sink::named("route_push");
    let pulls = Sink::named("route_pull");
    let all = Sink::named("route_all");
    let server = TestServer::start(
        r#"{"routed": {"ack": "persisted", "chain": [
               {"module": "test_recorder", "module-config": {"sink": "route_push"},
                "filter": {"headers": {"x-github-event": "push"}}},
               {"module": "test_recorder", "module-config": {"sink": "route_pull"},
                "filter": {"headers": {"x-github-event": "pull_request"}, "body": {"action": {"$in": ["opened", "reopened"]}}}},
               {"module": "test_recorder", "module-config": {"sink": "route_all"},
                "filter": {"$not": {"headers": {"x-github-event": "ping"}}}}],
             "chain-config": {"execution": "parallel"}}}"#,
    )
    .await;
    let cases = [
        ("push", r#"{"ref": "refs/heads/main"}"#),
        ("pull_request", r#"{"action": "opened"}"#),
        ("pull_request", r#"{"action": "closed"}"#),
        ("ping", r#"{"zen": "hi"}"#),
    ];
    for (event, body) in cases {
        let r = server
            .post("routed", &[("X-GitHub-Event", event)], body)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{event}: {}", r.text());
        let filtered = r.text().contains(r#""filtered":true"#);
        assert_eq!(filtered, event == "ping", "{event}: {}", r.text());
    }
    for _ in 0..50 {
        if all.bodies().len() >= 3 && !pushes.bodies().is_empty() && !pulls.bodies().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let texts = |sink: &Sink| {
        sink.bodies()
            .iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&pushes), [cases[0].1]);
    assert_eq!(texts(&pulls), [cases[1].1]);
    let mut everything = texts(&all);
    everything.sort();
    let mut expected = vec![cases[0].1, cases[1].1, cases[2].1];
    expected.sort_unstable();
    assert_eq!(everything, expected);
    let metrics = server.get("/metrics").await.text();
    // skips: push 1, opened 1, closed 2, ping all 3 (and is then answered filtered)
    assert!(
        metrics.contains(
            r#"webhook_destination_skipped_total{webhook="routed",destination="test_recorder"} 7"#
        ),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("skipped") || l.contains("filtered"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(metrics.contains(r#"webhook_requests_filtered_total{webhook="routed"} 1"#));
}

#[tokio::test]
async fn a_bad_chain_filter_names_the_chain_item() {
    let error = TestServer::builder(
        r#"{"hook": {"chain": [{"module": "log"}, {"module": "log", "filter": {"body": {"$exist": 1}}}]}}"#,
    )
    .config_error()
    .await;
    assert!(
        error.contains("hook") && error.contains("chain[1].filter.body.$exist"),
        "{error}"
    );
}

/// Routing survives a crash: with both destinations down, requests routed to one or the
/// other are answered 200, the server is SIGKILLed and started again on its spool, the
/// destinations come up, and each receives exactly the requests its filter matched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_holds_across_a_sigkill_and_restart() {
    use std::net::SocketAddr;

    use webhook_testkit::interop::free_port;
    use webhook_testkit::target::HttpTarget;

    use crate::spool_crash::start_server;

    let dir = tempfile::tempdir().unwrap();
    let pushes: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let reviews: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    let retry = r#""retry": {"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.3}"#;
    std::fs::write(
        &webhooks,
        format!(
            r#"{{"gh": {{"ack": "persisted", "chain": [
                 {{"module": "http_webhook", "module-config": {{"url": "http://{pushes}/p"}}, {retry},
                  "filter": {{"headers": {{"x-github-event": "push"}}}}}},
                 {{"module": "http_webhook", "module-config": {{"url": "http://{reviews}/r"}}, {retry},
                  "filter": {{"headers": {{"x-github-event": "pull_request"}}}}}}],
               "chain-config": {{"execution": "parallel"}}}}}}"#
        ),
    )
    .unwrap();
    let (mut server, addr) = start_server(dir.path(), &webhooks, &[]);
    let client = webhook_testkit::TestClient::new(addr);
    let mut sent = (Vec::new(), Vec::new());
    for i in 0..20 {
        let event = if i % 3 == 0 { "pull_request" } else { "push" };
        let body = format!(r#"{{"i": {i}}}"#);
        let r = client
            .post("gh", &[("X-GitHub-Event", event)], body.clone())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        if event == "push" {
            sent.0.push(body);
        } else {
            sent.1.push(body);
        }
    }
    server.kill().unwrap(); // SIGKILL with everything pending
    server.wait().unwrap();
    let (mut server, _) = start_server(dir.path(), &webhooks, &[]);
    let push_target = HttpTarget::start_on(pushes).await;
    let review_target = HttpTarget::start_on(reviews).await;
    let bodies = |target: &HttpTarget| {
        let mut bodies: Vec<String> = target
            .received()
            .iter()
            .map(|r| String::from_utf8(r.body.to_vec()).unwrap())
            .collect();
        bodies.sort();
        bodies.dedup(); // at-least-once: a delivery cut by the kill may come twice
        bodies
    };
    sent.0.sort();
    sent.1.sort();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while (bodies(&push_target) != sent.0 || bodies(&review_target) != sent.1)
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(bodies(&push_target), sent.0, "pushes only, all of them");
    assert_eq!(
        bodies(&review_target),
        sent.1,
        "pull requests only, all of them"
    );
    let _ = server.kill();
    let _ = server.wait();
}
