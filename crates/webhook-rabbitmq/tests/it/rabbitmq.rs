//! The rabbitmq destination against a real RabbitMQ, through the real HTTP server, read
//! back with pika; a TCP proxy in between cuts the connection mid-test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{python, require_tcp, scripts_dir, service_url, unique};
use webhook_testkit::proxy::TcpProxy;
use webhook_testkit::recorder::registry_with_recorder;

fn amqp_url() -> String {
    service_url("rabbitmq", "amqp://guest:guest@127.0.0.1:5672/%2f")
}

/// (user, pass, host, port) of the test broker.
pub(crate) fn amqp_parts() -> (String, String, String, u16) {
    let url = amqp_url();
    let rest = url.trim_start_matches("amqp://");
    let (userinfo, hostpart) = rest.split_once('@').unwrap_or(("guest:guest", rest));
    let (user, pass) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let hostport = hostpart.split('/').next().unwrap_or(hostpart);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5672"));
    (
        user.to_owned(),
        pass.to_owned(),
        host.to_owned(),
        port.parse().unwrap(),
    )
}

pub(crate) fn connections(host: &str, port: u16) -> String {
    let (user, pass, _, _) = amqp_parts();
    format!(r#"{{"rabbit": {{"type": "rabbitmq", "host": "{host}", "port": {port}, "user": "{user}", "pass": "{{$RABBIT_PASS}}"}}}}"#)
        .replace("{$RABBIT_PASS}", &pass)
}

pub(crate) fn registry() -> webhook_core::Registry {
    let mut registry = registry_with_recorder();
    webhook_rabbitmq::register(&mut registry);
    registry
}

async fn start(webhooks: &str, host: &str, port: u16) -> TestServer {
    TestServer::builder(webhooks)
        .connections(&connections(host, port))
        .registry(registry())
        .start()
        .await
}

/// Run a pika script of the testkit with the broker URL and `args`; its standard output.
pub(crate) fn run_pika(script: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(scripts_dir().join(script))
        .arg(amqp_url())
        .args(args)
        .output()
        .expect("python with pika (bash .ci/test installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Messages read from `queue` with pika, and how many were left behind.
fn consume(queue: &str, count: usize, seconds: u32) -> (Vec<serde_json::Value>, u64) {
    let output = run_pika(
        "rabbit_consume.py",
        &[queue, &count.to_string(), &seconds.to_string()],
    );
    let mut messages: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let left = messages.pop().and_then(|m| m["left"].as_u64()).unwrap();
    (messages, left)
}

pub(crate) fn body_of(message: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(message["body"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn messages_arrive_intact_with_headers_and_confirms() {
    let (_, _, host, port) = amqp_parts();
    require_tcp("rabbitmq", &host, port);
    let queue = unique("webhooks");
    let server = start(
        &format!(
            r#"{{"j": {{"module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{queue}"}}}},
                 "b": {{"data_type": "blob", "module": "rabbitmq", "connection": "rabbit", "queue_name": "{queue}"}}}}"#
        ),
        &host,
        port,
    )
    .await;
    let json_body = "{\"id\": 7,\n \"text\": \"caf\u{e9}\"}";
    let r = server
        .post(
            "j",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "push"),
            ],
            json_body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let request_id = r.header("x-request-id").unwrap().to_owned();
    let binary: Vec<u8> = (0..=255u8).rev().collect();
    let r = server
        .post(
            "b",
            &[("Content-Type", "application/octet-stream")],
            binary.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let (messages, left) = consume(&queue, 2, 20);
    assert_eq!((messages.len(), left), (2, 0));
    assert_eq!(body_of(&messages[0]), json_body.as_bytes());
    assert_eq!(messages[0]["headers"]["x-github-event"], "push");
    assert_eq!(messages[0]["content_type"], "application/json");
    assert_eq!(messages[0]["delivery_mode"], 2);
    assert_eq!(messages[0]["message_id"], request_id.as_str());
    assert_eq!(body_of(&messages[1]), binary);
    assert_eq!(messages[1]["content_type"], "application/octet-stream");
    assert_eq!(server.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_dropped_connection_gives_503_then_recovers_without_loss() {
    let (_, _, host, port) = amqp_parts();
    require_tcp("rabbitmq", &host, port);
    let target: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let proxy = TcpProxy::start(target).await;
    let queue = unique("reconnect");
    let server = start(
        &format!(r#"{{"q": {{"module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{queue}"}}}}}}"#),
        "127.0.0.1",
        proxy.addr.port(),
    )
    .await;

    let mut delivered: Vec<String> = Vec::new();
    for i in 0..5 {
        let body = format!(r#"{{"before": {i}}}"#);
        assert_eq!(
            server.post("q", &[], body.clone()).await.status,
            StatusCode::OK
        );
        delivered.push(body);
    }
    proxy.cut();
    let mut refused = 0;
    for i in 0..5 {
        let r = server.post("q", &[], format!(r#"{{"during": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
        refused += 1;
    }
    assert_eq!(
        server.get("/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    proxy.restore();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut after = 0;
    while after < 5 {
        assert!(Instant::now() < deadline, "no reconnect within 15 s");
        let body = format!(r#"{{"after": {after}}}"#);
        let r = server.post("q", &[], body.clone()).await;
        if r.status == StatusCode::OK {
            delivered.push(body);
            after += 1;
        } else {
            assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Up to `refused` extra messages may exist; do not wait long for them.
    let (messages, left) = consume(&queue, delivered.len() + refused, 3);
    assert_eq!(left, 0);
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8(body_of(m)).unwrap())
        .collect();
    for body in &delivered {
        assert!(
            bodies.contains(body),
            "{body} was answered 200 but is missing from {bodies:?}"
        );
    }
    // At-least-once: a message caught in flight by the cut may also be there.
    assert!(bodies.len() <= delivered.len() + refused);
}

/// Declare `queue` with pika and `arguments` (JSON): "ok" or "refused CODE".
pub(crate) fn declare_with_pika(queue: &str, arguments: &str) -> String {
    run_pika("rabbit_declare.py", &[queue, arguments])
        .trim()
        .to_owned()
}

#[tokio::test]
async fn queue_arguments_declare_the_queue_as_configured() {
    let (_, _, host, port) = amqp_parts();
    require_tcp("rabbitmq", &host, port);
    let classic = unique("cqv2");
    let quorum = unique("quorum");
    let classic_args =
        r#"{"x-queue-version": 2, "x-max-length": 100000, "x-queue-mode": "default"}"#;
    let quorum_args = r#"{"x-queue-type": "quorum"}"#;
    let server = start(
        &format!(
            r#"{{"c": {{"module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{classic}", "queue_arguments": {classic_args}}}}},
                 "q": {{"module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{quorum}", "queue_arguments": {quorum_args}}}}}}}"#
        ),
        &host,
        port,
    )
    .await;
    for (id, queue, arguments) in [("c", &classic, classic_args), ("q", &quorum, quorum_args)] {
        let body = format!(r#"{{"argued": "{id}"}}"#);
        let r = server
            .post(id, &[("X-GitHub-Event", "push")], body.clone())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        // The broker holds the queue with exactly those arguments: pika's declaration with
        // the same ones is accepted, one without them is refused as inequivalent.
        assert_eq!(declare_with_pika(queue, arguments), "ok");
        assert_eq!(declare_with_pika(queue, "{}"), "refused 406");
        let (messages, left) = consume(queue, 1, 20);
        assert_eq!((messages.len(), left), (1, 0), "{id}");
        assert_eq!(body_of(&messages[0]), body.as_bytes());
        assert_eq!(messages[0]["headers"]["x-github-event"], "push");
        assert_eq!(messages[0]["delivery_mode"], 2);
    }
}

#[tokio::test]
async fn a_queue_with_other_arguments_is_a_clear_permanent_error() {
    let (_, _, host, port) = amqp_parts();
    require_tcp("rabbitmq", &host, port);
    let queue = unique("mismatch");
    let good = unique("good");
    assert_eq!(declare_with_pika(&queue, r#"{"x-queue-version": 2}"#), "ok");
    let server = start(
        &format!(
            r#"{{"q": {{"module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{queue}"}}}},
                 "g": {{"module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{good}"}}}}}}"#
        ),
        &host,
        port,
    )
    .await;
    let r = server.post("q", &[], r#"{"n": 1}"#).await;
    // Not retryable: the sender would get the same answer until the config changes.
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(r.text().contains(r#""retryable":false"#), "{}", r.text());
    // The refused declaration closed a channel; the shared connection still works.
    for i in 0..8 {
        let r = server.post("g", &[], format!(r#"{{"g": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let (messages, left) = consume(&good, 8, 20);
    assert_eq!((messages.len(), left), (8, 0));
    // nothing was published to the queue whose declaration was refused
    let (messages, left) = consume(&queue, 0, 1);
    assert_eq!((messages.len(), left), (0, 0));
}

#[test]
fn config_errors_are_named() {
    let registry = registry();
    let parse = |webhooks: &str, connections: &str| {
        webhook_core::config::parse(
            &registry,
            &webhook_core::config::ConfigSource::new("webhooks.json", webhooks),
            Some(&webhook_core::config::ConfigSource::new(
                "connections.json",
                connections,
            )),
            &webhook_core::config::Env::empty(),
        )
    };
    let ok_conn = r#"{"rabbit": {"type": "rabbitmq", "host": "h", "user": "u", "pass": "p"}}"#;
    let err = parse(
        r#"{"q": {"module": "rabbitmq", "connection": "rabbit"}}"#,
        ok_conn,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("webhooks.json: q.module-config: missing field `queue_name`"),
        "{err}"
    );
    let err = parse(
        r#"{"q": {"module": "rabbitmq", "connection": "rabbit", "queue_name": "x"}}"#,
        r#"{"rabbit": {"type": "rabbitmq", "host": "h", "user": "u"}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("connections.json: rabbit: missing field `pass`"),
        "{err}"
    );
    let err = parse(
        r#"{"q": {"module": "rabbitmq", "connection": "rabbit", "module-config": {"queue_name": "x", "queue_arguments": {"x-dead-letter": {"a": 1}}}}}"#,
        ok_conn,
    )
    .unwrap()
    .validate(&webhook_core::PipelineOptions::default())
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("q.module-config.queue_arguments.x-dead-letter: module `rabbitmq`: must be a string, a number or a boolean"),
        "{err}"
    );
    // The password never shows in Debug output.
    let config = parse(
        r#"{"q": {"module": "rabbitmq", "connection": "rabbit", "queue_name": "x"}}"#,
        ok_conn,
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("\"p\""));
}
