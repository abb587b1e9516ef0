//! `/stats` in Redis: two server instances share the totals; with Redis stopped `/stats`
//! answers 503 and webhooks keep being accepted; the counts made meanwhile arrive later.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_core::PipelineOptions;
use webhook_redis::stats::RedisStats;
use webhook_testkit::interop::{OwnServer, free_port, unique};
use webhook_testkit::{TestServer, clear_of_minute_boundary};

const WEBHOOKS: &str = r#"{"s": {"module": "log"}, "t": {"module": "log"}}"#;

async fn instance(url: &str, prefix: &str) -> TestServer {
    let store = RedisStats::connect(url, prefix).await.unwrap();
    TestServer::builder(WEBHOOKS)
        .options(PipelineOptions {
            stats_store: Some(store),
            ..webhook_testkit::delivered_options()
        })
        .start()
        .await
}

async fn wait_for_total(server: &TestServer, id: &str, total: u64) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = server.get("/stats").await;
        if r.status == StatusCode::OK && r.json()[id]["total"] == total {
            return r.json();
        }
        assert!(
            Instant::now() < deadline,
            "{id} never reached {total}: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn two_instances_share_totals_and_survive_a_redis_outage() {
    let port = free_port();
    let port_text = port.to_string();
    let args = [
        "--port",
        port_text.as_str(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    let mut redis = OwnServer::start("redis-server", &args, port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let prefix = unique("stats-test");
    let a = instance(&url, &prefix).await;
    let b = instance(&url, &prefix).await;

    // The `minute` window is the current calendar minute: all of it inside one.
    clear_of_minute_boundary(Duration::from_secs(20)).await;
    for _ in 0..2 {
        assert_eq!(a.post("s", &[], "{}").await.status, StatusCode::OK);
    }
    assert_eq!(b.post("s", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(b.post("t", &[], "{}").await.status, StatusCode::OK);

    let from_a = wait_for_total(&a, "s", 3).await;
    let from_b = wait_for_total(&b, "s", 3).await;
    for stats in [&from_a, &from_b] {
        for key in [
            "total",
            "minute",
            "5_minutes",
            "hour",
            "day",
            "week",
            "month",
        ] {
            assert_eq!(stats["s"][key], 3, "{key}: {stats}");
            assert_eq!(stats["t"][key], 1, "{key}: {stats}");
        }
    }

    // Redis stopped: /stats 503 with a JSON error, webhooks still accepted.
    redis.stop();
    let r = a.get("/stats").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert_eq!(r.json()["detail"], "Statistics store unavailable");
    assert_eq!(a.post("s", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(b.post("s", &[], "{}").await.status, StatusCode::OK);

    // Back (empty: it kept nothing on disk): the counts made during the outage arrive.
    let _redis = OwnServer::start("redis-server", &args, port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = a.get("/stats").await;
        if r.status == StatusCode::OK && r.json()["s"]["total"] == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "outage counts not written: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
