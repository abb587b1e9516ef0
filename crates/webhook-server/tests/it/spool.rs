//! `ack: persisted` through the real server: answered once spooled, delivered in the
//! background with retries (backoff, Retry-After), per-destination chain tracking, dead
//! letters and their replay, and 503 when the spool is full.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_core::{PipelineOptions, SpoolOptions};
use webhook_server::server::{OpsToken, ServerOptions};
use webhook_testkit::interop::free_port;
use webhook_testkit::target::{HttpTarget, ReceivedRequest};
use webhook_testkit::{TestClient, TestResponse, TestServer};

const TOKEN: &str = "spool-test-token";

fn options(dir: &Path, max_bytes: u64) -> PipelineOptions {
    PipelineOptions {
        spool: SpoolOptions {
            dir: dir.to_path_buf(),
            max_bytes,
            segment_bytes: 64 << 20,
            ..SpoolOptions::default()
        },
        ..PipelineOptions::default()
    }
}

async fn start(webhooks: &str, dir: &Path, max_bytes: u64) -> TestServer {
    TestServer::builder(webhooks)
        .options(options(dir, max_bytes))
        .server_options(ServerOptions {
            ops_token: OpsToken::new(TOKEN),
            ..ServerOptions::default()
        })
        .start()
        .await
}

/// `method path` with the ops token.
async fn admin(client: &TestClient, method: &str, path: &str) -> TestResponse {
    let bearer = format!("Bearer {TOKEN}");
    client
        .request(method, path, &[("Authorization", bearer.as_str())], "")
        .await
}

async fn dead_letters(client: &TestClient) -> Vec<serde_json::Value> {
    let r = admin(client, "GET", "/admin/dead-letters").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["dead_letters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The dead letters once there are `count` of them (polling up to 2 s; then as they are).
async fn dead_letters_when(client: &TestClient, count: usize) -> Vec<serde_json::Value> {
    let mut letters = Vec::new();
    for _ in 0..100 {
        letters = dead_letters(client).await;
        if letters.len() == count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    letters
}

/// Wait until `check` holds (up to `limit`), polling.
async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Post `body` to `hook` until it is answered 200 (up to 5 s): space came back.
async fn taken_again(server: &TestServer, body: &str) -> bool {
    for _ in 0..100 {
        if server.post("hook", &[], body.to_owned()).await.status == StatusCode::OK {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Post `body` to `hook` until the spool refuses one, running `after_each` after every
/// accepted request; the refusal must be 503 with `Retry-After`. Returns how many were
/// accepted and the refusal.
async fn fill_spool(
    server: &TestServer,
    body: &str,
    mut after_each: impl AsyncFnMut(usize),
) -> (usize, TestResponse) {
    let mut accepted = 0;
    loop {
        let r = server.post("hook", &[], body.to_owned()).await;
        if r.status != StatusCode::OK {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
            assert!(r.header("retry-after").is_some(), "no Retry-After");
            return (accepted, r);
        }
        accepted += 1;
        assert!(accepted < 1000, "the spool never filled");
        after_each(accepted).await;
    }
}

fn request_id(r: &ReceivedRequest) -> String {
    r.headers
        .get("x-webhook-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn persisted_answers_before_delivery_and_delivers_once_the_target_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let target_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let webhooks = format!(
        r#"{{"hook": {{"module": "http_webhook", "ack": "persisted",
             "module-config": {{"url": "http://{target_addr}/in", "timeout": 2, "forward_headers": true}},
             "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.3}}}}}}"#
    );
    let server = start(&webhooks, dir.path(), 1 << 30).await;
    // The target is down: persisted webhooks are still answered 200, each with its id.
    let mut sent = HashMap::new();
    for n in 0..20 {
        let body = format!(r#"{{"n": {n}, "pad": "{}"}}"#, "é".repeat(n));
        let r = server
            .post("hook", &[("X-Event", "push")], body.clone())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        sent.insert(r.header("x-request-id").unwrap().to_owned(), body);
    }
    let target = HttpTarget::start_on(target_addr).await;
    eventually(Duration::from_secs(20), "all 20 delivered", || {
        target.received().len() >= 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = target.received();
    assert_eq!(received.len(), 20, "each delivered exactly once");
    for r in &received {
        let id = request_id(r);
        let body = sent.get(&id).unwrap_or_else(|| panic!("unknown id {id}"));
        assert_eq!(r.body, body.as_bytes(), "exact bytes");
        assert_eq!(r.headers["x-event"], "push");
    }
    assert!(dead_letters(&server).await.is_empty());
}

#[tokio::test]
async fn retries_follow_the_backoff_and_end_in_dead_letters_that_replay() {
    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    target.respond(StatusCode::INTERNAL_SERVER_ERROR, &[]);
    let webhooks = format!(
        r#"{{"hook": {{"module": "http_webhook",
             "module-config": {{"url": "{}", "timeout": 2}},
             "retry": {{"max_attempts": 4, "initial_delay": 0.2, "max_delay": 0.5,
                        "backoff_multiplier": 2.0}}}}}}"#,
        target.url("/r")
    );
    // No `ack` key: persisted is the default.
    let server = start(&webhooks, dir.path(), 1 << 30).await;
    let r = server.post("hook", &[], r#"{"attempt": "me"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_owned();
    eventually(Duration::from_secs(10), "a dead letter", || {
        target.received().len() >= 4
    })
    .await;
    let letters = dead_letters_when(&server, 1).await;
    let received = target.received();
    assert_eq!(received.len(), 4, "max_attempts = 4");
    // Full jitter: each wait is at most initial · 2^(n-1), capped at max_delay (+ slack).
    for (n, pair) in received.windows(2).enumerate() {
        let gap = pair[1].at - pair[0].at;
        let cap = Duration::from_secs_f64((0.2 * 2f64.powi(n as i32)).min(0.5));
        assert!(
            gap <= cap + Duration::from_millis(250),
            "gap {n}: {gap:?} > {cap:?}"
        );
    }
    assert!(received.iter().all(|r| request_id(r) == id), "stable id");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["request_id"], id.as_str());
    assert_eq!(letter["webhook"], "hook");
    assert_eq!(letter["module"], "http_webhook");
    assert_eq!(letter["attempts"], 4);
    assert!(
        letter["error"].as_str().unwrap().contains("500"),
        "{letter}"
    );

    // A permanent failure (400) is not retried: straight to the dead letters.
    target.respond(StatusCode::BAD_REQUEST, &[]);
    let r = server.post("hook", &[], r#"{"bad": true}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    let bad_id = r.header("x-request-id").unwrap().to_owned();
    eventually(Duration::from_secs(5), "the 400 attempt", || {
        target.received().len() >= 5
    })
    .await;
    let letters = dead_letters_when(&server, 2).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
    let bad = letters
        .iter()
        .find(|l| l["request_id"] == bad_id.as_str())
        .unwrap();
    assert_eq!(bad["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(target.received().len(), 5, "a 400 is not retried");

    // Replay: the target works again; both letters are delivered with their ids.
    target.respond(StatusCode::OK, &[]);
    for letter in &letters {
        let path = format!(
            "/admin/dead-letters/{}/replay",
            letter["id"].as_str().unwrap()
        );
        let r = admin(&server, "POST", &path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        // replaying it twice: it is gone
        let again = admin(&server, "POST", &path).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
    }
    eventually(Duration::from_secs(5), "replayed deliveries", || {
        target.received().len() >= 7
    })
    .await;
    let received = target.received();
    assert_eq!(request_id(&received[5]).len(), 36);
    let mut replayed: Vec<String> = received[5..].iter().map(request_id).collect();
    replayed.sort();
    let mut expected = vec![id.clone(), bad_id.clone()];
    expected.sort();
    assert_eq!(replayed, expected);
    assert_eq!(
        received[5..]
            .iter()
            .filter(|r| r.body.as_ref() == br#"{"attempt": "me"}"#)
            .count(),
        1
    );
    assert!(dead_letters(&server).await.is_empty());

    // Without the token the admin API refuses.
    let r = server.request("GET", "/admin/dead-letters", &[], "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn retry_after_of_the_destination_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    target.respond(StatusCode::SERVICE_UNAVAILABLE, &[("Retry-After", "1")]);
    let webhooks = format!(
        r#"{{"hook": {{"module": "http_webhook", "ack": "persisted",
             "module-config": {{"url": "{}"}},
             "retry": {{"max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.02}}}}}}"#,
        target.url("/ra")
    );
    let server = start(&webhooks, dir.path(), 1 << 30).await;
    assert_eq!(server.post("hook", &[], "{}").await.status, StatusCode::OK);
    eventually(Duration::from_secs(6), "two attempts", || {
        target.received().len() >= 2
    })
    .await;
    target.respond(StatusCode::OK, &[]);
    eventually(Duration::from_secs(6), "the third attempt", || {
        target.received().len() >= 3
    })
    .await;
    let received = target.received();
    for pair in received.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 not honoured: {gap:?}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(target.received().len(), 3);
    assert!(dead_letters(&server).await.is_empty());
}

async fn chain_case(execution: &str) {
    let dir = tempfile::tempdir().unwrap();
    let good = HttpTarget::start().await;
    let flaky = HttpTarget::start().await;
    flaky.respond(StatusCode::BAD_GATEWAY, &[]);
    let webhooks = format!(
        r#"{{"hook": {{"ack": "persisted",
             "chain": [
               {{"module": "http_webhook", "module-config": {{"url": "{}"}}}},
               {{"module": "http_webhook", "module-config": {{"url": "{}"}},
                 "retry": {{"max_attempts": 50, "initial_delay": 0.05, "max_delay": 0.1}}}}
             ],
             "chain-config": {{"execution": "{execution}", "continue_on_error": true}}}}}}"#,
        good.url("/good"),
        flaky.url("/flaky")
    );
    let server = start(&webhooks, dir.path(), 1 << 30).await;
    let r = server.post("hook", &[], r#"{"chain": 1}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    eventually(Duration::from_secs(5), "retries of the failing one", || {
        flaky.received().len() >= 4
    })
    .await;
    assert_eq!(
        good.received().len(),
        1,
        "{execution}: the good one delivered once"
    );
    flaky.respond(StatusCode::OK, &[]);
    let attempts = flaky.received().len();
    eventually(Duration::from_secs(5), "the failing one recovers", || {
        flaky.received().len() > attempts
    })
    .await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let settled = flaky.received().len();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        flaky.received().len(),
        settled,
        "no retries after it confirmed"
    );
    assert_eq!(good.received().len(), 1, "{execution}: never sent again");
    assert_eq!(good.received()[0].body, &br#"{"chain": 1}"#[..]);
    assert_eq!(
        flaky.received().last().unwrap().body,
        &br#"{"chain": 1}"#[..]
    );
    assert!(dead_letters(&server).await.is_empty());
}

#[tokio::test]
async fn parallel_chain_retries_only_the_failing_destination() {
    chain_case("parallel").await;
}

#[tokio::test]
async fn sequential_chain_retries_only_the_failing_destination() {
    chain_case("sequential").await;
}

#[tokio::test]
async fn a_full_spool_answers_503_with_retry_after_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let target_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let webhooks = format!(
        r#"{{"hook": {{"module": "http_webhook", "data_type": "blob",
             "module-config": {{"url": "http://{target_addr}/q", "timeout": 2}},
             "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.2}}}}}}"#
    );
    let server = start(&webhooks, dir.path(), 128 << 10).await;
    let body = "z".repeat(4000);
    let (accepted, full) = fill_spool(&server, &body, async |_| {}).await;
    assert_eq!(full.json()["retryable"], true);
    assert!(accepted >= 10, "only {accepted} accepted before full");
    // Still full while the destination is down: never a 2xx that is not stored.
    assert_eq!(
        server.post("hook", &[], body.clone()).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let target = HttpTarget::start_on(target_addr).await;
    eventually(Duration::from_secs(20), "the backlog delivered", || {
        target.received().len() >= accepted
    })
    .await;
    assert!(
        taken_again(&server, &body).await,
        "the spool did not take requests again after space freed"
    );
    eventually(Duration::from_secs(5), "the new one delivered", || {
        target.received().len() > accepted
    })
    .await;
}

#[tokio::test]
async fn accepted_mode_answers_at_once_and_delivered_mode_waits() {
    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    target.respond(StatusCode::INTERNAL_SERVER_ERROR, &[]);
    let webhooks = format!(
        r#"{{"fast": {{"module": "http_webhook", "ack": "accepted",
              "module-config": {{"url": "{0}"}},
              "retry": {{"max_attempts": 30, "initial_delay": 0.02, "max_delay": 0.05}}}},
             "sync": {{"module": "http_webhook", "ack": "delivered",
              "module-config": {{"url": "{0}"}}}}}}"#,
        target.url("/m")
    );
    let server = start(&webhooks, dir.path(), 1 << 30).await;
    assert_eq!(server.post("fast", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(
        server.post("sync", &[], "{}").await.status,
        StatusCode::BAD_GATEWAY
    );
    target.respond(StatusCode::OK, &[]);
    eventually(Duration::from_secs(5), "the accepted one delivered", || {
        target.received().iter().skip(2).any(|r| r.path == "/m")
    })
    .await;
}

#[tokio::test]
async fn pending_entries_follow_a_reload_to_the_new_destination() {
    use bytes::Bytes;
    use http_body_util::Full;
    use webhook_core::Pipeline;
    use webhook_core::config::{ConfigSource, Env};

    let dir = tempfile::tempdir().unwrap();
    let registry = webhook_server::registry::registry();
    let config = |url: &str| {
        let text = format!(
            r#"{{"moving": {{"module": "http_webhook", "module-config": {{"url": "{url}"}},
                 "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.1}}}}}}"#
        );
        webhook_core::config::parse(
            &registry,
            &ConfigSource::new("webhooks.json", text),
            None,
            &Env::empty(),
        )
        .unwrap()
    };
    let down = format!("http://127.0.0.1:{}/old", free_port());
    let pipeline = Pipeline::build(config(&down), options(dir.path(), 1 << 30))
        .await
        .unwrap();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let request = http::Request::post("/webhook/moving")
        .body(Full::new(Bytes::from_static(b"{\"pending\": true}")))
        .unwrap();
    let response = pipeline.handle_webhook("moving", request, peer).await;
    assert_eq!(response.status(), StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(200)).await; // a few failed attempts

    // The config now points at a live target: the pending entry goes there.
    let target = HttpTarget::start().await;
    let newer = pipeline
        .rebuild(config(&target.url("/new")), options(dir.path(), 1 << 30))
        .await
        .unwrap();
    pipeline.shutdown_replaced(&newer).await;
    eventually(
        Duration::from_secs(5),
        "the pending entry at the new target",
        || !target.received().is_empty(),
    )
    .await;
    let received = target.received();
    assert_eq!(received[0].path, "/new");
    assert_eq!(received[0].body, &b"{\"pending\": true}"[..]);
    assert_eq!(
        received[0].headers["x-webhook-request-id"],
        response.headers()["x-request-id"]
    );
    assert!(
        newer.spool().is_some_and(|s| s.usage().0 == 0) || {
            tokio::time::sleep(Duration::from_millis(300)).await;
            newer.spool().is_some_and(|s| s.usage().0 == 0)
        }
    );
}

#[tokio::test]
async fn spool_and_dead_letter_metrics_are_exported() {
    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    target.respond(StatusCode::BAD_REQUEST, &[]);
    let webhooks = format!(
        r#"{{"metered": {{"module": "http_webhook", "module-config": {{"url": "{}"}}}}}}"#,
        target.url("/metered")
    );
    let server = start(&webhooks, dir.path(), 1 << 30).await;
    assert_eq!(
        server.post("metered", &[], "{}").await.status,
        StatusCode::OK
    );
    let letters = dead_letters_when(&server, 1).await;
    assert_eq!(letters.len(), 1);
    let text = admin(&server, "GET", "/metrics").await.text();
    let dead = text
        .lines()
        .find(|l| {
            l.starts_with("webhook_destination_dead_lettered_total")
                && l.contains(r#"webhook="metered""#)
        })
        .unwrap_or_else(|| panic!("no dead-letter counter in:\n{text}"));
    assert!(dead.ends_with(" 1"), "{dead}");
    for gauge in ["webhook_spool_entries", "webhook_spool_bytes"] {
        assert!(
            text.lines().any(|l| l.starts_with(gauge)),
            "no {gauge} in:\n{text}"
        );
    }
}

#[tokio::test]
async fn dead_letters_are_kept_and_can_be_replayed_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    // Every delivery is refused for good: each webhook becomes a dead letter.
    target.respond(StatusCode::BAD_REQUEST, &[]);
    let webhooks = format!(
        r#"{{"hook": {{"module": "http_webhook", "data_type": "blob",
             "module-config": {{"url": "{}", "timeout": 2}}}}}}"#,
        target.url("/d")
    );
    let server = start(&webhooks, dir.path(), 96 << 10).await;
    let body = "d".repeat(4000);
    // More than the pending quota holds: dead letters have a quota of their own, so they
    // never block new webhooks (the fairness tests cover the limits).
    let sent = 30;
    for n in 1..=sent {
        let r = server.post("hook", &[], body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        eventually(Duration::from_secs(5), "the dead letter", || {
            target.received().len() >= n
        })
        .await;
    }
    eventually(Duration::from_secs(5), "every dead letter written", || {
        std::fs::read_dir(dir.path().join("dead")).unwrap().count() >= sent
    })
    .await;
    let letters = dead_letters(&server).await;
    assert_eq!(letters.len(), sent);

    // A replay is taken even now (it moves a dead letter back into the spool).
    target.respond(StatusCode::OK, &[]);
    let before = target.received().len();
    let first = letters[0]["id"].as_str().unwrap().to_owned();
    let r = admin(
        &server,
        "POST",
        &format!("/admin/dead-letters/{first}/replay"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    eventually(Duration::from_secs(5), "the replayed delivery", || {
        target.received().len() > before
    })
    .await;
    assert_eq!(
        request_id(&target.received()[before]),
        letters[0]["request_id"].as_str().unwrap()
    );

    // DELETE drops the others; unknown (or already deleted) ids are 404.
    for letter in &letters[1..] {
        let path = format!("/admin/dead-letters/{}", letter["id"].as_str().unwrap());
        let r = admin(&server, "DELETE", &path).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        assert_eq!(r.json()["message"], "deleted");
        assert_eq!(r.json()["dead_letter"]["id"], letter["id"]);
        let again = admin(&server, "DELETE", &path).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
    }
    let r = admin(&server, "DELETE", "/admin/dead-letters/..%2Fspool").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(dead_letters(&server).await.is_empty());
    let r = server
        .request("DELETE", "/admin/dead-letters/x", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the token is needed");

    // The space is back: new webhooks are taken and delivered.
    assert!(
        taken_again(&server, &body).await,
        "the spool did not take requests after the dead letters went"
    );
    let deleted_ids: Vec<&str> = letters[1..]
        .iter()
        .map(|l| l["request_id"].as_str().unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        target.received()[before..]
            .iter()
            .all(|r| !deleted_ids.contains(&request_id(r).as_str())),
        "a deleted dead letter was delivered"
    );
}

/// A client that hangs up while its request is being made durable drops the request's
/// future in the middle of the spool write: the entry is written all the same, so it must
/// be delivered now, not left pending (and counted in `webhook_spool_entries`) until the
/// next start.
#[tokio::test]
async fn a_request_dropped_while_its_write_is_under_way_is_still_delivered() {
    use std::future::Future;
    use std::task::Poll;

    use bytes::Bytes;
    use http_body_util::Full;
    use webhook_core::Pipeline;
    use webhook_core::config::{ConfigSource, Env};

    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    let text = format!(
        r#"{{"hung-up": {{"module": "http_webhook", "module-config": {{"url": "{}"}}}}}}"#,
        target.url("/in")
    );
    let registry = webhook_server::registry::registry();
    let config = webhook_core::config::parse(
        &registry,
        &ConfigSource::new("webhooks.json", text),
        None,
        &Env::empty(),
    )
    .unwrap();
    let pipeline = Pipeline::build(config, options(dir.path(), 1 << 30))
        .await
        .unwrap();
    let spool = pipeline.spool().unwrap();
    let peer: SocketAddr = "127.0.0.1:9".parse().unwrap();
    for n in 0..20 {
        let body = format!(r#"{{"n": {n}}}"#);
        let request = http::Request::post("/webhook/hung-up")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let mut answer = Box::pin(pipeline.handle_webhook("hung-up", request, peer));
        let (_, before) = spool.usage();
        // poll until the write is handed to the spool, then hang up
        let mut handed = false;
        for _ in 0..1000 {
            let polled = std::future::poll_fn(|cx| Poll::Ready(answer.as_mut().poll(cx))).await;
            assert!(polled.is_pending(), "answered before the write was seen");
            if spool.usage().1 > before {
                handed = true;
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(handed, "the request never reached the spool");
        drop(answer);
    }
    eventually(Duration::from_secs(10), "all 20 delivered", || {
        target.received().len() >= 20
    })
    .await;
    eventually(Duration::from_secs(5), "nothing left pending", || {
        spool.usage().0 == 0
    })
    .await;
    let mut seen: Vec<String> = target
        .received()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 20, "each body delivered: {seen:?}");
}

/// An admin path asked with the wrong method says which one it takes (405 + `Allow`),
/// rather than "not found".
#[tokio::test]
async fn admin_paths_answer_405_with_allow_for_other_methods() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(r#"{"hook": {"module": "log"}}"#, dir.path(), 1 << 30).await;
    for (method, path, allow) in [
        ("GET", "/admin/reload", "POST"),
        ("GET", "/admin/dead-letters/abc/replay", "POST"),
        ("POST", "/admin/dead-letters", "GET, DELETE"),
        ("GET", "/admin/dead-letters/replay", "POST"),
        ("GET", "/admin/dead-letters/abc", "DELETE"),
    ] {
        let r = admin(&server, method, path).await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    assert_eq!(
        admin(&server, "GET", "/admin/nothing").await.status,
        StatusCode::NOT_FOUND
    );
}
