//! `redis_stream` against a real Redis through the real server, read back with redis-py's
//! `XREAD` (an independent client).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::interop::{OwnServer, free_port, python, require_tcp, scripts_dir, unique};
use webhook_testkit::proxy::TcpProxy;

use super::redis::{connections, redis_parts, redis_url, registry};

/// One stream entry as redis-py read it.
#[derive(Debug)]
struct Entry {
    fields: BTreeMap<String, Vec<u8>>,
}

impl Entry {
    fn text(&self, field: &str) -> String {
        String::from_utf8(self.fields[field].clone()).unwrap()
    }
}

/// Every entry of `stream` on `url`, waiting up to `seconds` for at least `at_least`.
fn xread(url: &str, stream: &str, at_least: usize, seconds: u64) -> Vec<Entry> {
    let out = Command::new(python())
        .arg(scripts_dir().join("redis_xread.py"))
        .args([url, stream, &at_least.to_string(), &seconds.to_string()])
        .output()
        .expect("python with redis-py (bash .ci/test installs it)");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let fields = entry["fields"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), BASE64.decode(v.as_str().unwrap()).unwrap()))
                .collect();
            Entry { fields }
        })
        .collect()
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

async fn start(webhooks: &str) -> TestServer {
    let (host, port, db) = redis_parts();
    require_tcp("redis", &host, port);
    TestServer::builder(webhooks)
        .connections(&connections(&host, port, db))
        .registry(registry())
        .options(webhook_testkit::delivered_options())
        .start()
        .await
}

#[tokio::test]
async fn entries_carry_the_exact_bytes_the_request_id_and_chosen_headers() {
    let stream = unique("stream");
    let server = start(&format!(
        r#"{{"j": {{"module": "redis_stream", "connection": "redis",
                   "module-config": {{"stream": "{stream}", "headers": ["X-GitHub-Event", "content-type"]}}}},
             "b": {{"data_type": "blob", "module": "redis_stream", "connection": "redis",
                   "module-config": {{"stream": "{stream}"}}}}}}"#
    ))
    .await;
    let json_body = " { \"action\" : \"opened\",\n \"n\": 1.50, \"emoji\": \"\u{1F600}\" }";
    let binary_body: Vec<u8> = (0..=255u8).collect();
    let mut ids = Vec::new();
    for (id, body) in [
        ("j", json_body.as_bytes().to_vec()),
        ("b", binary_body.clone()),
    ] {
        let r = server
            .post(
                id,
                &[
                    ("X-GitHub-Event", "push"),
                    ("Content-Type", "application/json"),
                    ("X-Other", "not copied"),
                ],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let entries = xread(&redis_url(), &stream, 2, 10);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0].fields["body"], json_body.as_bytes());
    assert_eq!(entries[1].fields["body"], binary_body);
    assert_eq!(entries[0].text("request_id"), ids[0]);
    assert_eq!(entries[1].text("request_id"), ids[1]);
    assert_eq!(entries[0].text("webhook_id"), "j");
    assert_eq!(entries[0].text("header:x-github-event"), "push");
    assert_eq!(entries[0].text("header:content-type"), "application/json");
    assert!(!entries[0].fields.contains_key("header:x-other"));
    assert!(!entries[1].fields.keys().any(|k| k.starts_with("header:")));
    let received: u128 = entries[0].text("received_at").parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    assert!(now - received < 60_000, "received_at {received}, now {now}");
}

#[tokio::test]
async fn maxlen_trims_the_stream_and_all_headers_can_be_copied() {
    let stream = unique("capped");
    let server = start(&format!(
        r#"{{"c": {{"module": "redis_stream", "connection": "redis",
                   "module-config": {{"stream": "{stream}", "maxlen": "10", "headers": ["*"]}}}}}}"#
    ))
    .await;
    for i in 0..300 {
        let r = server
            .post("c", &[("X-Any", "copied")], format!(r#"{{"i":{i}}}"#))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let (_, port, _) = redis_parts();
    let len: usize = redis_cli(port, &["XLEN", &stream]).parse().unwrap();
    // `MAXLEN ~` trims whole stream nodes (100 entries each by default): about 10, never 300.
    assert!((10..=200).contains(&len), "XLEN {len}");
    let entries = xread(&redis_url(), &stream, 1, 5);
    assert_eq!(entries.last().unwrap().text("header:x-any"), "copied");
    assert_eq!(entries.last().unwrap().fields["body"], br#"{"i":299}"#);
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    let (host, port, db) = redis_parts();
    for (module_config, expected) in [
        (
            r#"{"stream": ""}"#,
            "stream: module `redis_stream`: must be 1 to 512 bytes",
        ),
        (
            r#"{"stream": "s", "maxlen": 0}"#,
            "maxlen: module `redis_stream`: must be a positive number",
        ),
        (
            r#"{"stream": "s", "headers": ["bad header"]}"#,
            "`bad header` is not a valid header name",
        ),
        (r#"{"stream": "s", "trim": 5}"#, "unknown field `trim`"),
        (r#"{}"#, "missing field `stream`"),
    ] {
        let error = TestServer::builder(&format!(
            r#"{{"x": {{"module": "redis_stream", "connection": "redis", "module-config": {module_config}}}}}"#
        ))
        .connections(&connections(&host, port, db))
        .registry(registry())
        .config_error()
        .await;
        assert!(error.contains(expected), "{module_config}: {error}");
    }
}

/// `ack: persisted`: webhooks answered 200 while Redis is down wait in the spool and are
/// all in the stream once it is back (Redis with `appendfsync always`, so its own restart
/// keeps what it confirmed).
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_restart_loses_nothing_that_was_answered_200() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let port_text = port.to_string();
    let dir_text = dir.path().to_string_lossy().into_owned();
    let args = [
        "--port",
        &port_text,
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--dir",
        &dir_text,
    ];
    let mut redis = OwnServer::start("redis-server", &args, port);
    let stream = unique("restart");
    let server = TestServer::builder(&format!(
        r#"{{"r": {{"ack": "persisted", "module": "redis_stream", "connection": "redis",
                   "module-config": {{"stream": "{stream}"}},
                   "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.3}}}}}}"#
    ))
    .connections(&connections("127.0.0.1", port, 0))
    .registry(registry())
    .start()
    .await;
    let mut answered = Vec::new();
    for i in 0..30 {
        if i == 10 {
            redis.stop();
        }
        if i == 20 {
            redis = OwnServer::start("redis-server", &args, port);
        }
        let r = server.post("r", &[], format!(r#"{{"i":{i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        answered.push(r.header("x-request-id").unwrap().to_owned());
    }
    let url = format!("redis://127.0.0.1:{port}/0");
    let deadline = Instant::now() + Duration::from_secs(30);
    let ids = loop {
        let (url, stream, count) = (url.clone(), stream.clone(), answered.len());
        let entries = tokio::task::spawn_blocking(move || xread(&url, &stream, count, 2))
            .await
            .unwrap();
        let ids: std::collections::BTreeSet<String> =
            entries.iter().map(|e| e.text("request_id")).collect();
        if answered.iter().all(|id| ids.contains(id)) || Instant::now() > deadline {
            break ids;
        }
    };
    let lost: Vec<_> = answered.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        lost.is_empty(),
        "answered 200 but not in the stream: {lost:?}"
    );
    drop(redis);
}

struct StreamSubject {
    proxy: TcpProxy,
    stream: String,
}

impl Subject for StreamSubject {
    fn registry(&self) -> webhook_core::Registry {
        registry()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "redis_stream", "connection": "redis", "module-config": {{"stream": "{}"}}"#,
            self.stream
        )
    }

    fn connections(&self) -> Option<String> {
        let (_, _, db) = redis_parts();
        Some(connections("127.0.0.1", self.proxy.addr.port(), db))
    }

    /// A key that holds a string, not a stream: Redis answers WRONGTYPE.
    fn refused(&self) -> Option<String> {
        let (_, port, _) = redis_parts();
        let key = format!("{}-string", self.stream);
        redis_cli(port, &["SET", &key, "not a stream"]);
        Some(format!(
            r#""module": "redis_stream", "connection": "redis", "module-config": {{"stream": "{key}"}}"#
        ))
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let stream = self.stream.clone();
        tokio::task::spawn_blocking(move || xread(&redis_url(), &stream, at_least, 10))
            .await
            .unwrap()
            .into_iter()
            .map(|entry| Received {
                body: entry.fields["body"].clone(),
                request_id: Some(entry.text("request_id")),
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_stream_conforms() {
    let (host, port, _) = redis_parts();
    require_tcp("redis", &host, port);
    let redis: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let subject = StreamSubject {
        proxy: TcpProxy::start(redis).await,
        stream: unique("conformance-stream"),
    };
    conformance::check(&subject).await;
}
