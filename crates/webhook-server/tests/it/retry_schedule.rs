//! One retry policy for every ack mode: `delivered` (the sender waits) and `persisted`
//! (the outbox retries in the background) driven through the same failing destination see
//! the same attempt count, the same backoff bounds and the same `Retry-After` floor.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::recorder::Sink;

/// Two webhooks with the same destination settings and `retry`, one per ack mode.
fn config(name: &str, extra: &str, retry: &str) -> String {
    let webhook = |ack: &str| {
        format!(
            r#""{ack}": {{"ack": "{ack}", "module": "test_recorder",
                "module-config": {{"sink": "{name}_{ack}"{extra}}}, "retry": {retry}}}"#
        )
    };
    format!("{{{}, {}}}", webhook("delivered"), webhook("persisted"))
}

/// Post to both webhooks; the delivered one's answer is returned.
async fn post_both(server: &TestServer) -> StatusCode {
    let persisted = server.post("persisted", &[], "{}").await;
    assert_eq!(persisted.status, StatusCode::OK, "spooled at once");
    server.post("delivered", &[], "{}").await.status
}

/// Wait until `sink` has seen `attempts` attempts (background retries take their time).
async fn wait_attempts(sink: &Sink, attempts: u32, within: Duration) {
    let deadline = Instant::now() + within;
    while sink.attempts() < attempts && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn gaps(sink: &Sink) -> Vec<Duration> {
    sink.attempt_times()
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect()
}

#[tokio::test]
async fn both_modes_retry_on_the_same_schedule() {
    let retry = r#"{"enabled": true, "max_attempts": 4, "initial_delay": 0.1, "max_delay": 0.3, "backoff_multiplier": 2}"#;
    let server = TestServer::start(&config("schedule", "", retry)).await;
    let (d, p) = (
        Sink::named("schedule_delivered"),
        Sink::named("schedule_persisted"),
    );
    d.fail_next(3);
    p.fail_next(3);
    assert_eq!(
        post_both(&server).await,
        StatusCode::OK,
        "4th attempt delivers"
    );
    wait_attempts(&p, 4, Duration::from_secs(5)).await;
    for sink in [&d, &p] {
        assert_eq!(sink.attempts(), 4);
        assert_eq!(sink.bodies().len(), 1);
        // backoff caps 0.1, 0.2, 0.3 (max_delay) s; equal jitter waits at least half of each
        let gaps = gaps(sink);
        for (gap, cap) in gaps.iter().zip([0.1, 0.2, 0.3]) {
            let cap = Duration::from_secs_f64(cap);
            assert!(
                *gap >= cap / 2 && *gap <= cap + Duration::from_millis(150),
                "gaps {gaps:?}"
            );
        }
    }
}

#[tokio::test]
async fn both_modes_stop_after_max_attempts() {
    let retry = r#"{"enabled": true, "max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.02}"#;
    let server = TestServer::start(&config("exhaust", "", retry)).await;
    let (d, p) = (
        Sink::named("exhaust_delivered"),
        Sink::named("exhaust_persisted"),
    );
    d.fail_next(100);
    p.fail_next(100);
    assert_eq!(post_both(&server).await, StatusCode::BAD_GATEWAY);
    wait_attempts(&p, 3, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((d.attempts(), p.attempts()), (3, 3));
}

#[tokio::test]
async fn retry_enabled_false_means_one_attempt_in_every_mode() {
    let retry = r#"{"enabled": false, "max_attempts": 5, "initial_delay": 0.01}"#;
    let server = TestServer::start(&config("off", "", retry)).await;
    let (d, p) = (Sink::named("off_delivered"), Sink::named("off_persisted"));
    d.fail_next(100);
    p.fail_next(100);
    assert_eq!(post_both(&server).await, StatusCode::BAD_GATEWAY);
    wait_attempts(&p, 1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((d.attempts(), p.attempts()), (1, 1));
}

#[tokio::test]
async fn retry_after_is_a_floor_in_both_modes() {
    // The backoff alone would wait 10-20 ms; the destination asks for 300 ms.
    let retry = r#"{"enabled": true, "max_attempts": 2, "initial_delay": 0.02}"#;
    let server = TestServer::start(&config("floor", r#", "retry_after_ms": 300"#, retry)).await;
    let (d, p) = (
        Sink::named("floor_delivered"),
        Sink::named("floor_persisted"),
    );
    d.fail_next(1);
    p.fail_next(1);
    assert_eq!(post_both(&server).await, StatusCode::OK);
    wait_attempts(&p, 2, Duration::from_secs(5)).await;
    for sink in [&d, &p] {
        let gaps = gaps(sink);
        assert_eq!(gaps.len(), 1);
        assert!(
            gaps[0] >= Duration::from_millis(300) && gaps[0] < Duration::from_millis(600),
            "{gaps:?}"
        );
    }
}

#[tokio::test]
async fn delivered_stops_retrying_at_the_chain_timeout() {
    // Four attempts would take ≥ 0.6 s of backoff; the sender waits 0.3 s at most.
    let server = TestServer::start(
        r#"{"d": {"ack": "delivered", "module": "test_recorder", "module-config": {"sink": "deadline_d"},
                  "retry": {"enabled": true, "max_attempts": 4, "initial_delay": 0.2, "backoff_multiplier": 1},
                  "chain-config": {"timeout": 0.3}}}"#,
    )
    .await;
    let sink = Sink::named("deadline_d");
    sink.fail_next(100);
    let started = Instant::now();
    let status = server.post("d", &[], "{}").await.status;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(sink.attempts() < 4, "{}", sink.attempts());
}
