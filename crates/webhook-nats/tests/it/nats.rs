//! `nats` against the machine's NATS server (JetStream on) through the real HTTP server,
//! read back by nats-py.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{
    OwnServer, free_port, python, require_tcp, scripts_dir, service_url, unique,
};

pub(crate) fn nats_url() -> String {
    service_url("nats", "nats://127.0.0.1:4222")
}

/// (host, port) of the test NATS server.
pub(crate) fn nats_parts() -> (String, u16) {
    let url = nats_url();
    let rest = url.trim_start_matches("nats://");
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "4222"));
    (host.to_owned(), port.parse().unwrap())
}

pub(crate) fn connections(host: &str, port: u16) -> String {
    format!(r#"{{"nats": {{"type": "nats", "host": "{host}", "port": {port}}}}}"#)
}

pub(crate) fn registry() -> webhook_core::Registry {
    let mut registry = webhook_testkit::recorder::registry_with_recorder();
    webhook_nats::register(&mut registry);
    registry
}

/// A message as nats-py read it.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) subject: String,
    pub(crate) headers: serde_json::Value,
    pub(crate) data: Vec<u8>,
}

fn parse(stdout: &[u8]) -> Vec<Message> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            Message {
                subject: v["subject"].as_str().unwrap().to_owned(),
                headers: v["headers"].clone(),
                data: BASE64.decode(v["data"].as_str().unwrap()).unwrap(),
            }
        })
        .collect()
}

fn tool(args: &[&str]) -> std::process::Output {
    let out = Command::new(python())
        .arg(scripts_dir().join("nats_tool.py"))
        .args(args)
        .output()
        .expect("python with nats-py (bash .ci/test installs it)");
    assert!(
        out.status.success() || args[0] == "read",
        "nats_tool.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// (Re)create a file-backed stream `name` capturing `subjects`.
pub(crate) fn create_stream(url: &str, name: &str, subjects: &[&str]) {
    let mut args = vec!["stream", url, name];
    args.extend_from_slice(subjects);
    tool(&args);
}

/// Every message of stream `name`, waiting up to `seconds` until it holds `at_least`.
pub(crate) fn read_stream(url: &str, name: &str, at_least: usize, seconds: u64) -> Vec<Message> {
    parse(
        &tool(&[
            "read",
            url,
            name,
            &at_least.to_string(),
            &seconds.to_string(),
        ])
        .stdout,
    )
}

async fn start(webhooks: &str) -> TestServer {
    let (host, port) = nats_parts();
    require_tcp("nats", &host, port);
    TestServer::builder(webhooks)
        .connections(&connections(&host, port))
        .registry(registry())
        .options(webhook_testkit::delivered_options())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn jetstream_stores_the_exact_bytes_with_the_request_id_and_headers() {
    let name = unique("GH");
    let subject = name.to_lowercase();
    create_stream(&nats_url(), &name, &[&format!("{subject}.>")]);
    let server = start(&format!(
        r#"{{"gh": {{"module": "nats", "connection": "nats",
                    "module-config": {{"subject": "{subject}", "subject_header": "X-GitHub-Event", "jetstream": true}}}},
             "bin": {{"data_type": "blob", "module": "nats", "connection": "nats",
                    "module-config": {{"subject": "{subject}.binary"}}}}}}"#
    ))
    .await;
    let json_body = " {\"ref\" :\"refs/heads/main\",\n \"n\": 1.50, \"emoji\": \"\u{1F600}\"}";
    let binary: Vec<u8> = (0..=255u8).collect();
    let mut ids = Vec::new();
    for (hook, event, body) in [
        ("gh", "push", json_body.as_bytes().to_vec()),
        ("gh", "pull_request", br#"{"action":"opened"}"#.to_vec()),
        ("bin", "ignored", binary.clone()),
    ] {
        let r = server
            .post(
                hook,
                &[("X-GitHub-Event", event), ("X-Custom", "kept")],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let messages = tokio::task::spawn_blocking(move || read_stream(&nats_url(), &name, 3, 10))
        .await
        .unwrap();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[0].subject, format!("{subject}.push"));
    assert_eq!(messages[1].subject, format!("{subject}.pull_request"));
    assert_eq!(messages[2].subject, format!("{subject}.binary"));
    assert_eq!(messages[0].data, json_body.as_bytes());
    assert_eq!(messages[2].data, binary);
    for (message, id) in messages.iter().zip(&ids) {
        assert_eq!(message.headers["Nats-Msg-Id"], id.as_str());
        assert_eq!(message.headers["X-Request-Id"], id.as_str());
        assert_eq!(message.headers["x-custom"], "kept");
    }
}

/// Two destinations of one webhook publishing the same request to one stream: the second
/// copy carries the same `Nats-Msg-Id` and JetStream drops it — what happens to a
/// redelivery after a crash.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_request_is_stored_once() {
    let name = unique("DEDUP");
    let subject = name.to_lowercase();
    create_stream(&nats_url(), &name, &[&subject]);
    let server = start(&format!(
        r#"{{"twice": {{"chain": [
               {{"module": "nats", "connection": "nats", "module-config": {{"subject": "{subject}"}}}},
               {{"module": "nats", "connection": "nats", "module-config": {{"subject": "{subject}"}}}}]}}}}"#
    ))
    .await;
    for i in 0..5 {
        let r = server.post("twice", &[], format!(r#"{{"i":{i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let messages = tokio::task::spawn_blocking(move || read_stream(&nats_url(), &name, 10, 2))
        .await
        .unwrap();
    let bodies: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8(m.data.clone()).unwrap())
        .collect();
    assert_eq!(
        bodies,
        (0..5)
            .map(|i| format!(r#"{{"i":{i}}}"#))
            .collect::<Vec<_>>()
    );
}

/// Without a stream for the subject (and no `jetstream` key), it publishes on core NATS:
/// a live subscriber gets the bytes. With `jetstream: true` and no stream, the delivery is
/// refused for good.
#[tokio::test(flavor = "multi_thread")]
async fn core_nats_without_a_stream_and_a_clear_refusal_when_jetstream_is_required() {
    let subject = unique("core").replace('-', "_");
    let mut sub = Command::new(python())
        .arg(scripts_dir().join("nats_tool.py"))
        .args(["sub", &nats_url(), &subject, "2", "20"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = sub.stdout.take().unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(&mut stdout, &mut ready).unwrap();
    assert_eq!(&ready, b"READY\n");
    let server = start(&format!(
        r#"{{"auto": {{"data_type": "blob", "module": "nats", "connection": "nats", "module-config": {{"subject": "{subject}"}}}},
             "core": {{"module": "nats", "connection": "nats", "module-config": {{"subject": "{subject}", "jetstream": false}}}},
             "js": {{"module": "nats", "connection": "nats", "module-config": {{"subject": "{subject}.nostream", "jetstream": true}}}}}}"#
    ))
    .await;
    let r = server
        .post("auto", &[], b"\x00\x01 raw bytes \xff".to_vec())
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = server.post("core", &[], r#"{"core":true}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = server.post("js", &[], r#"{"js":true}"#).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["retryable"], false, "{}", r.text());
    let out = tokio::task::spawn_blocking(move || {
        let mut rest = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut rest).unwrap();
        sub.wait().unwrap();
        rest
    })
    .await
    .unwrap();
    let messages = parse(&out);
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert_eq!(messages[0].data, b"\x00\x01 raw bytes \xff");
    assert_eq!(messages[1].data, br#"{"core":true}"#);
    assert!(messages[0].headers.get("Nats-Msg-Id").is_none());
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let (host, port) = nats_parts();
    for (module_config, expected) in [
        (
            r#"{"subject": "a.*"}"#,
            "subject: module `nats`: `a.*` is not a valid subject",
        ),
        (r#"{"subject": "a..b"}"#, "is not a valid subject"),
        (r#"{"subject": "has space"}"#, "is not a valid subject"),
        (
            r#"{"subject": "ok", "subject_header": "bad header"}"#,
            "`bad header` is not a header name",
        ),
        (
            r#"{"subject": "ok", "stream": "S"}"#,
            "unknown field `stream`",
        ),
    ] {
        let error = TestServer::builder(&format!(
            r#"{{"x": {{"module": "nats", "connection": "nats", "module-config": {module_config}}}}}"#
        ))
        .connections(&connections(&host, port))
        .registry(registry())
        .config_error()
        .await;
        assert!(error.contains(expected), "{module_config}: {error}");
    }
}

/// `ack: persisted` with the server's own nats-server (JetStream on a file store) killed
/// mid-load and started again: every webhook answered 200 is in the stream afterwards.
#[tokio::test(flavor = "multi_thread")]
async fn a_nats_restart_loses_nothing_that_was_answered_200() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let (port_text, dir_text) = (port.to_string(), dir.path().to_string_lossy().into_owned());
    let args = ["-a", "127.0.0.1", "-p", &port_text, "-js", "-sd", &dir_text];
    let mut nats = OwnServer::start("nats-server", &args, port);
    let url = format!("nats://127.0.0.1:{port}");
    create_stream(&url, "RESTART", &["restart"]);
    let server = TestServer::builder(
        r#"{"r": {"ack": "persisted", "module": "nats", "connection": "nats",
                 "module-config": {"subject": "restart", "jetstream": true},
                 "retry": {"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.3}}}"#,
    )
    .connections(&connections("127.0.0.1", port))
    .registry(registry())
    .start()
    .await;
    let mut answered = Vec::new();
    for i in 0..30 {
        if i == 10 {
            nats.stop();
        }
        if i == 20 {
            nats = OwnServer::start("nats-server", &args, port);
        }
        let r = server.post("r", &[], format!(r#"{{"i":{i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        answered.push(r.header("x-request-id").unwrap().to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let stored = loop {
        let url = url.clone();
        let messages = tokio::task::spawn_blocking(move || read_stream(&url, "RESTART", 30, 2))
            .await
            .unwrap();
        let ids: BTreeSet<String> = messages
            .iter()
            .map(|m| m.headers["Nats-Msg-Id"].as_str().unwrap().to_owned())
            .collect();
        if answered.iter().all(|id| ids.contains(id)) || Instant::now() > deadline {
            break (ids, messages.len());
        }
    };
    let lost: Vec<_> = answered
        .iter()
        .filter(|id| !stored.0.contains(*id))
        .collect();
    assert!(lost.is_empty(), "answered 200 but not stored: {lost:?}");
    // JetStream's duplicate window keeps redeliveries out: one message per request.
    assert_eq!(stored.1, answered.len());
    drop(nats);
}
