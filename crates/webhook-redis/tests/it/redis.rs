//! redis_publish and redis_rq against a real Redis, through the real HTTP server, read back
//! by independent Python clients (redis-py, a real `rq worker`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{
    OwnServer, free_port, python, require_tcp, scripts_dir, service_url, unique, venv_program,
};
use webhook_testkit::recorder::registry_with_recorder;

pub(crate) fn redis_url() -> String {
    service_url("redis", "redis://127.0.0.1:6379/0")
}

/// (host, port, db) of the test Redis.
pub(crate) fn redis_parts() -> (String, u16, u8) {
    let url = redis_url();
    let rest = url.trim_start_matches("redis://");
    let (hostport, db) = rest.split_once('/').unwrap_or((rest, "0"));
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    (
        host.to_owned(),
        port.parse().unwrap(),
        db.parse().unwrap_or(0),
    )
}

pub(crate) fn connections(host: &str, port: u16, db: u8) -> String {
    format!(
        r#"{{"redis": {{"type": "redis-rq", "host": "{host}", "port": "{port}", "db": {db}}}}}"#
    )
}

pub(crate) fn registry() -> webhook_core::Registry {
    let mut registry = registry_with_recorder();
    webhook_redis::register(&mut registry);
    registry
}

async fn start(webhooks: &str) -> TestServer {
    let (host, port, db) = redis_parts();
    require_tcp("redis", &host, port);
    TestServer::builder(webhooks)
        .connections(&connections(&host, port, db))
        .registry(registry())
        .start()
        .await
}

struct Subscriber {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

fn subscribe(channel: &str, count: usize) -> Subscriber {
    let mut child = Command::new(python())
        .arg(scripts_dir().join("redis_subscribe.py"))
        .args([redis_url(), channel.to_owned(), count.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python with redis-py (bash .ci/test installs it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    Subscriber { child, lines }
}

#[tokio::test]
async fn publish_reaches_a_subscriber_byte_for_byte() {
    let channel = unique("events");
    let server = start(&format!(
        r#"{{"j": {{"module": "redis_publish", "connection": "redis", "module-config": {{"channel": "{channel}"}}}},
             "b": {{"data_type": "blob", "module": "redis_publish", "connection": "redis", "module-config": {{"channel": "{channel}"}}}}}}"#
    ))
    .await;
    let mut subscriber = subscribe(&channel, 3);
    let json_body = "{ \"action\" : \"opened\",\n \"number\": 1.50, \"emoji\": \"\u{1F600}\" }";
    let text_body = "plain text, not JSON";
    let binary_body: Vec<u8> = (0..=255u8).collect();
    for (id, body) in [
        ("j", json_body.as_bytes().to_vec()),
        ("b", text_body.as_bytes().to_vec()),
        ("b", binary_body.clone()),
    ] {
        let r = server
            .post(
                id,
                &[("X-Test", "yes"), ("Content-Type", "application/json")],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let messages: Vec<Vec<u8>> = (0..3)
        .map(|_| {
            BASE64
                .decode(subscriber.lines.next().unwrap().unwrap())
                .unwrap()
        })
        .collect();
    assert!(subscriber.child.wait().unwrap().success());

    // The JSON body is embedded byte for byte.
    let first = String::from_utf8(messages[0].clone()).unwrap();
    assert!(
        first.starts_with(&format!("{{\"payload\":{json_body},\"headers\":")),
        "{first}"
    );
    let envelope: serde_json::Value = serde_json::from_slice(&messages[0]).unwrap();
    assert_eq!(envelope["headers"]["x-test"], "yes");
    assert_eq!(envelope["payload"]["emoji"], "\u{1F600}");

    let second: serde_json::Value = serde_json::from_slice(&messages[1]).unwrap();
    assert_eq!(second["payload"], text_body);
    let third: serde_json::Value = serde_json::from_slice(&messages[2]).unwrap();
    assert_eq!(third["encoding"], "base64");
    assert_eq!(
        BASE64.decode(third["payload"].as_str().unwrap()).unwrap(),
        binary_body
    );
}

/// Run a real `rq worker --burst` on `queue` and return what `rq_jobs.record` received.
fn run_worker(queue: &str, serializer: Option<&str>) -> Vec<serde_json::Value> {
    let record = tempfile_path(queue);
    let mut command = Command::new(venv_program("rq"));
    command
        .args(["worker", "--burst", "--url", &redis_url()])
        .current_dir(scripts_dir())
        .env("RECORD_FILE", &record)
        .env("PYTHONPATH", scripts_dir());
    if let Some(serializer) = serializer {
        command.args(["--serializer", serializer]);
    }
    let output = command
        .arg(queue)
        .output()
        .expect("rq (bash .ci/test installs it)");
    assert!(
        output.status.success(),
        "rq worker failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = std::fs::read_to_string(&record).unwrap_or_default();
    let _ = std::fs::remove_file(&record);
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{name}.jsonl"))
}

async fn rq_round_trip(serializer: &str, worker_serializer: Option<&str>) {
    let queue = unique("webhooks");
    let server = start(&format!(
        r#"{{"j": {{"module": "redis_rq", "connection": "redis", "queue_name": "{queue}",
                    "module-config": {{"function": "rq_jobs.record", "serializer": "{serializer}"}}}},
             "b": {{"data_type": "blob", "module": "redis_rq", "connection": "redis",
                    "module-config": {{"function": "rq_jobs.record", "queue_name": "{queue}", "serializer": "{serializer}"}}}}}}"#
    ))
    .await;
    let json_body =
        r#"{"ref": "refs/heads/main", "commits": [{"id": 1, "ok": true, "x": null}], "n": 2.5}"#;
    let r = server
        .post("j", &[("X-GitHub-Event", "push")], json_body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let blob: Vec<u8> = if serializer == "pickle" {
        vec![0, 159, 146, 150, 255]
    } else {
        b"caf\xc3\xa9 text".to_vec()
    };
    let r = server.post("b", &[("X-Kind", "blob")], blob.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let records = run_worker(&queue, worker_serializer);
    assert_eq!(records.len(), 2, "{records:?}");
    let json_record = records
        .iter()
        .find(|r| r["headers"].get("x-github-event").is_some())
        .unwrap();
    assert_eq!(json_record["type"], "dict");
    assert_eq!(json_record["headers_type"], "dict");
    assert_eq!(
        json_record["payload"],
        serde_json::from_str::<serde_json::Value>(json_body).unwrap()
    );
    assert_eq!(json_record["headers"]["x-github-event"], "push");
    let blob_record = records
        .iter()
        .find(|r| r["headers"].get("x-kind").is_some())
        .unwrap();
    if serializer == "pickle" {
        assert_eq!(blob_record["type"], "bytes");
        assert_eq!(
            BASE64
                .decode(blob_record["payload"].as_str().unwrap())
                .unwrap(),
            blob
        );
    } else {
        assert_eq!(blob_record["type"], "str");
        assert_eq!(blob_record["payload"], "café text");
    }
}

#[tokio::test]
async fn rq_pickle_jobs_run_in_a_real_worker() {
    rq_round_trip("pickle", None).await;
}

#[tokio::test]
async fn rq_json_jobs_run_in_a_json_worker() {
    rq_round_trip("json", Some("rq.serializers.JSONSerializer")).await;
}

#[tokio::test]
async fn rq_json_serializer_refuses_binary_blobs() {
    let queue = unique("webhooks");
    let server = start(&format!(
        r#"{{"b": {{"data_type": "blob", "module": "redis_rq", "connection": "redis",
                    "module-config": {{"function": "rq_jobs.record", "queue_name": "{queue}", "serializer": "json"}}}}}}"#
    ))
    .await;
    let r = server.post("b", &[], vec![0xff, 0xfe]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["retryable"], false);
}

#[test]
fn config_errors_are_named() {
    let registry = registry();
    let parse = |webhooks: &str| {
        webhook_core::config::parse(
            &registry,
            &webhook_core::config::ConfigSource::new("webhooks.json", webhooks),
            Some(&webhook_core::config::ConfigSource::new(
                "connections.json",
                connections("127.0.0.1", 6379, 0),
            )),
            &webhook_core::config::Env::empty(),
        )
    };
    let err = parse(r#"{"q": {"module": "redis_rq", "connection": "redis"}}"#)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("webhooks.json: q.module-config: missing field `function`"),
        "{err}"
    );
    let config = parse(r#"{"q": {"module": "redis_rq", "connection": "redis", "module-config": {"function": "not a path"}}}"#).unwrap();
    let err = config
        .validate(&webhook_core::PipelineOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("q.module-config.function"), "{err}");
    // neither a connection nor the original's `redis` block: refused when checked
    let err = parse(r#"{"p": {"module": "redis_publish"}}"#)
        .unwrap()
        .validate(&webhook_core::PipelineOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("p.module-config: module `redis_publish`: give a `connection`"),
        "{err}"
    );
}

/// A Redis server of our own, so stopping it does not disturb other tests.
fn own_redis(port: u16) -> OwnServer {
    let port_text = port.to_string();
    let args = [
        "--port",
        &port_text,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    OwnServer::start("redis-server", &args, port)
}

fn llen(port: u16, key: &str) -> usize {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "LLEN", key])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[tokio::test]
async fn reconnects_after_a_redis_restart_and_loses_nothing() {
    let port = free_port();
    let mut redis = own_redis(port);
    let server = TestServer::builder(
        r#"{"q": {"module": "redis_rq", "connection": "redis", "module-config": {"function": "rq_jobs.record", "queue_name": "restart"}}}"#,
    )
    .connections(&connections("127.0.0.1", port, 0))
    .registry(registry())
    .start()
    .await;

    let mut accepted = 0;
    for i in 0..5 {
        let r = server.post("q", &[], format!(r#"{{"before": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        accepted += 1;
    }
    redis.stop();
    let mut refused = 0;
    for i in 0..5 {
        let r = server.post("q", &[], format!(r#"{{"during": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        assert!(r.header("retry-after").is_some());
        refused += 1;
    }
    assert_eq!(
        server.get("/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let _redis = own_redis(port); // a new, empty server on the same port
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = 0;
    while after < 5 {
        assert!(Instant::now() < deadline, "no reconnect within 15 s");
        let r = server
            .post("q", &[], format!(r#"{{"after": {after}}}"#))
            .await;
        if r.status == StatusCode::OK {
            after += 1;
        } else {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Every webhook answered 200 after the restart is in the new server's queue. A command
    // caught in flight by the crash may also arrive after the reconnect although its sender
    // was told 503 (at-least-once: a duplicate once the sender retries, never a loss).
    let queued = llen(port, "rq:queue:restart");
    assert!(
        queued >= after && queued <= after + refused,
        "queued {queued}, answered 200 {after}, 503 {refused}"
    );
    if queued > after {
        eprintln!(
            "{} webhook(s) answered 503 were delivered after the reconnect (duplicates once retried)",
            queued - after
        );
    }
    assert_eq!((accepted, refused), (5, 5));
    assert_eq!(server.get("/health").await.status, StatusCode::OK);
}

/// The original's later format: `redis_publish` with its own `redis` block beside
/// `module`, no connections.json entry.
#[tokio::test]
async fn publish_with_the_originals_redis_block() {
    let (host, port, db) = redis_parts();
    require_tcp("redis", &host, port);
    let channel = unique("block");
    let server = TestServer::builder(&format!(
        r#"{{"blk": {{"module": "redis_publish",
              "redis": {{"host": "{host}", "port": {port}, "db": {db}, "channel": "{channel}",
                         "allowed_hosts": ["{host}"]}}}}}}"#
    ))
    .registry(registry())
    .start()
    .await;
    let mut subscriber = subscribe(&channel, 1);
    let r = server.post("blk", &[], r#"{"from": "block"}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let message = BASE64
        .decode(subscriber.lines.next().unwrap().unwrap())
        .unwrap();
    assert!(subscriber.child.wait().unwrap().success());
    let envelope: serde_json::Value = serde_json::from_slice(&message).unwrap();
    assert_eq!(envelope["payload"]["from"], "block");

    // a host outside `allowed_hosts`, both a block and a connection, neither
    for (webhooks, expected) in [
        (
            r#"{"x": {"module": "redis_publish", "redis": {"host": "10.9.9.9", "allowed_hosts": ["redis"]}}}"#,
            "redis.host: module `redis_publish`: `10.9.9.9` is not in `allowed_hosts`",
        ),
        (
            r#"{"x": {"module": "redis_publish", "connection": "redis", "redis": {"host": "127.0.0.1"}}}"#,
            "redis: module `redis_publish`: give either a `connection` or a `redis` block",
        ),
        (
            r#"{"x": {"module": "redis_publish"}}"#,
            "give a `connection` (a connections.json entry of type redis) or a `redis` block",
        ),
        (
            r#"{"x": {"module": "log", "redis": {"host": "127.0.0.1"}}}"#,
            "x.redis: module `log` does not use `redis`",
        ),
    ] {
        let error = TestServer::builder(webhooks)
            .connections(&connections(&host, port, db))
            .registry(registry())
            .config_error()
            .await;
        assert!(error.contains(expected), "{error}");
    }
}
