//! `mqtt` against real Mosquitto brokers (the machine's, and brokers of the tests' own for
//! credentials and restarts) through the real HTTP server, read back by paho-mqtt.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{free_port, python, require_tcp, scripts_dir, service_url, unique};

/// (host, port) of the machine's broker (`WEBHOOK_TEST_MQTT_URL`).
pub(crate) fn mqtt_parts() -> (String, u16) {
    let url = service_url("mqtt", "mqtt://127.0.0.1:1883");
    let rest = url.trim_start_matches("mqtt://");
    let (host, port) = rest.rsplit_once(':').unwrap_or((rest, "1883"));
    (host.to_owned(), port.parse().unwrap())
}

pub(crate) fn registry() -> webhook_core::Registry {
    let mut registry = webhook_testkit::recorder::registry_with_recorder();
    webhook_mqtt::register(&mut registry);
    registry
}

pub(crate) fn connection(name: &str, port: u16, credentials: Option<(&str, &str)>) -> String {
    let auth = credentials.map_or(String::new(), |(user, pass)| {
        format!(r#", "username": "{user}", "password": "{pass}""#)
    });
    format!(
        r#""{name}": {{"type": "mqtt", "host": "127.0.0.1", "port": {port}, "keepalive": 10{auth}}}"#
    )
}

/// A message as paho-mqtt received it.
#[derive(Debug, Clone)]
pub(crate) struct Message {
    pub(crate) topic: String,
    pub(crate) qos: u64,
    pub(crate) retain: bool,
    pub(crate) data: Vec<u8>,
}

/// A paho-mqtt subscriber collecting messages in the background.
pub(crate) struct Subscriber {
    child: Child,
    pub(crate) got: Arc<Mutex<Vec<Message>>>,
}

impl Subscriber {
    /// Subscribe to `topic` on `port` (persistent session when `client_id` is given) and
    /// wait until the broker confirmed the subscription.
    pub(crate) fn start(port: u16, topic: &str, client_id: Option<&str>) -> Self {
        Self::spawn(port, topic, client_id, None)
    }

    /// [`Subscriber::start`] logged in as `user`.
    pub(crate) fn start_with_user(port: u16, topic: &str, user: (&str, &str)) -> Self {
        Self::spawn(port, topic, None, Some(user))
    }

    fn spawn(port: u16, topic: &str, client_id: Option<&str>, user: Option<(&str, &str)>) -> Self {
        let mut command = Command::new(python());
        if let Some((name, password)) = user {
            command
                .env("MQTT_USER", name)
                .env("MQTT_PASSWORD", password);
        }
        command.arg(scripts_dir().join("mqtt_sub.py")).args([
            "127.0.0.1",
            &port.to_string(),
            topic,
            "100000",
            "120",
        ]);
        if let Some(id) = client_id {
            command.arg(id);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .spawn()
            .expect("python with paho-mqtt (bash .ci/test installs it)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "READY");
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&got);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line).unwrap();
                sink.lock().unwrap().push(Message {
                    topic: v["topic"].as_str().unwrap().to_owned(),
                    qos: v["qos"].as_u64().unwrap(),
                    retain: v["retain"].as_bool().unwrap(),
                    data: BASE64.decode(v["data"].as_str().unwrap()).unwrap(),
                });
            }
        });
        Self { child, got }
    }

    /// The messages so far, waiting up to `seconds` for at least `at_least`.
    pub(crate) async fn wait_for(&self, at_least: usize, seconds: u64) -> Vec<Message> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        while self.got.lock().unwrap().len() < at_least && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Mosquitto of a test's own: persistent, optionally with one user.
pub(crate) struct OwnBroker {
    pub(crate) port: u16,
    config: std::path::PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl OwnBroker {
    pub(crate) fn start(user: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "listener {port} 127.0.0.1\npersistence true\npersistence_location {}/\n",
            dir.path().display()
        );
        if is_root() {
            config.push_str("user root\n");
        }
        match user {
            Some((name, pass)) => {
                let file = dir.path().join("passwords");
                let status = Command::new("mosquitto_passwd")
                    .args(["-b", "-c", &file.to_string_lossy(), name, pass])
                    .status()
                    .expect("mosquitto_passwd (Debian's mosquitto package)");
                assert!(status.success());
                config.push_str(&format!(
                    "allow_anonymous false\npassword_file {}\n",
                    file.display()
                ));
            }
            None => config.push_str("allow_anonymous true\n"),
        }
        let path = dir.path().join("mosquitto.conf");
        std::fs::write(&path, config).unwrap();
        let mut broker = Self {
            port,
            config: path,
            child: None,
            _dir: dir,
        };
        broker.run();
        broker
    }

    fn run(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto (bash .ci/test checks it is installed)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop the broker as a service manager restarting it would (SIGTERM: it saves its
    /// persistent sessions and queued messages).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    pub(crate) fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn is_root() -> bool {
    Path::new("/proc/self/status").exists()
        && std::fs::read_to_string("/proc/self/status")
            .unwrap_or_default()
            .lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
}

async fn start_on(port: u16, webhooks: &str) -> TestServer {
    TestServer::builder(webhooks)
        .connections(&format!("{{{}}}", connection("mqtt", port, None)))
        .registry(registry())
        .options(webhook_testkit::delivered_options())
        .start()
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_the_exact_bytes_with_qos_1_and_2_and_a_retained_message() {
    let (host, port) = mqtt_parts();
    require_tcp("mosquitto", &host, port);
    let base = unique("hooks");
    let subscriber = Subscriber::start(port, &format!("{base}/#"), None);
    let server = start_on(
        port,
        &format!(
            r#"{{"q1": {{"module": "mqtt", "connection": "mqtt", "module-config": {{"topic": "{base}/q1"}}}},
                 "q2": {{"data_type": "blob", "module": "mqtt", "connection": "mqtt", "module-config": {{"topic": "{base}/q2", "qos": "2", "format": "raw"}}}},
                 "kept": {{"module": "mqtt", "connection": "mqtt", "module-config": {{"topic": "{base}/kept", "retained": true}}}},
                 "legacy": {{"module": "mqtt", "connection": "mqtt", "topic": "{base}/legacy"}}}}"#
        ),
    )
    .await;
    let json_body = " {\"temp\" : 21.50,\n \"unit\": \"\u{b0}C\"}";
    let binary: Vec<u8> = (0..=255u8).collect();
    for (hook, body) in [
        ("q1", json_body.as_bytes().to_vec()),
        ("q2", binary.clone()),
        ("kept", br#"{"state":"on"}"#.to_vec()),
        ("legacy", br#"{"old":"style"}"#.to_vec()),
    ] {
        let r = server.post(hook, &[], body).await;
        assert_eq!(r.status, StatusCode::OK, "{hook}: {}", r.text());
    }
    let got = subscriber.wait_for(4, 10).await;
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[0].topic, format!("{base}/q1"));
    assert_eq!(got[0].data, json_body.as_bytes());
    assert_eq!(got[1].topic, format!("{base}/q2"));
    assert_eq!(got[1].data, binary);
    assert_eq!(got[3].topic, format!("{base}/legacy"));
    // A subscriber that comes later gets the retained message, flagged as retained.
    let late = Subscriber::start(port, &format!("{base}/kept"), None);
    let kept = late.wait_for(1, 5).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].retain);
    assert_eq!(kept[0].data, br#"{"state":"on"}"#);
    assert_eq!(kept[0].qos, 1);
}

/// The original's topic_prefix, Tasmota and Shelly Gen2 shapes (its docs' examples).
#[tokio::test(flavor = "multi_thread")]
async fn topic_prefix_tasmota_and_shelly_shapes() {
    let (host, port) = mqtt_parts();
    require_tcp("mosquitto", &host, port);
    let prefix = unique("devices");
    let device = unique("switch1");
    let subscriber = Subscriber::start(port, "#", None);
    let server = start_on(
        port,
        &format!(
            r#"{{"events": {{"module": "mqtt", "connection": "mqtt",
                     "module-config": {{"topic": "webhook/events", "qos": 1, "retained": false, "format": "json", "topic_prefix": "{prefix}/"}}}},
                 "tasmota": {{"module": "mqtt", "connection": "mqtt",
                     "module-config": {{"topic": "tasmota/device", "tasmota_format": true, "tasmota_type": "cmnd", "device_name": "{device}", "command": "POWER", "qos": 1}}}},
                 "tele": {{"module": "mqtt", "connection": "mqtt",
                     "module-config": {{"topic": "t", "tasmota_format": true, "tasmota_type": "sensor", "device_name": "{device}"}}}},
                 "shelly": {{"module": "mqtt", "connection": "mqtt",
                     "module-config": {{"topic": "{prefix}/shelly/rpc", "shelly_gen2_format": true, "device_id": 7}}}}}}"#
        ),
    )
    .await;
    for (hook, body) in [
        ("events", r#"{"e":1}"#),
        ("tasmota", r#"{"POWER":"ON"}"#),
        ("tele", "[1, 2]"),
        ("shelly", r#"{"on": true}"#),
    ] {
        let r = server.post(hook, &[], body).await;
        assert_eq!(r.status, StatusCode::OK, "{hook}: {}", r.text());
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mine = loop {
        let mine: Vec<Message> = subscriber
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|m| m.topic.contains(&prefix) || m.topic.contains(&device))
            .cloned()
            .collect();
        if mine.len() >= 4 || Instant::now() > deadline {
            break mine;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let by_topic = |topic: String| {
        mine.iter()
            .find(|m| m.topic == topic)
            .map(|m| String::from_utf8(m.data.clone()).unwrap())
            .unwrap_or_else(|| panic!("nothing on {topic}: {mine:?}"))
    };
    assert_eq!(by_topic(format!("{prefix}/webhook/events")), r#"{"e":1}"#);
    assert_eq!(
        by_topic(format!("cmnd/{device}/POWER")),
        r#"{"POWER":"ON"}"#
    );
    assert_eq!(
        by_topic(format!("tele/{device}/telemetry")),
        r#"{"data":[1, 2]}"#
    );
    assert_eq!(
        by_topic(format!("{prefix}/shelly/rpc")),
        r#"{"id":"7","source":"webhook","params":{"on": true}}"#
    );
}

#[tokio::test]
async fn bad_settings_are_config_errors() {
    for (module_config, connection_extra, expected) in [
        (
            r#"{"topic": "a/+/b"}"#,
            "",
            "topic: module `mqtt`: `a/+/b` contains a wildcard",
        ),
        (r#"{"topic": "a/#"}"#, "", "contains a wildcard"),
        (
            r#"{"topic": "ok", "qos": 3}"#,
            "",
            "qos: module `mqtt`: must be 0, 1 or 2",
        ),
        (
            r#"{"topic": "ok", "format": "xml"}"#,
            "",
            "format: module `mqtt`: must be `json` or `raw`",
        ),
        (
            r#"{"topic": "ok", "topic_prefix": "$SYS"}"#,
            "",
            "must not start with `$`",
        ),
        (
            r#"{"topic": "ok", "tasmota_format": true, "device_name": "a b"}"#,
            "",
            "`a b` must be letters",
        ),
        (
            r#"{"topic": "ok", "qos_level": 1}"#,
            "",
            "unknown field `qos_level`",
        ),
        (
            r#"{"topic": "ok"}"#,
            r#", "tls": true, "tls_insecure": true"#,
            "tls_insecure (no certificate check) is not supported",
        ),
        (
            r#"{"topic": "ok"}"#,
            r#", "mqtt_version": "6""#,
            "mqtt_version `6` is not one of",
        ),
        (
            r#"{"topic": "ok"}"#,
            r#", "user": "old-key""#,
            "unknown field `user`",
        ),
    ] {
        let error = TestServer::builder(&format!(
            r#"{{"x": {{"module": "mqtt", "connection": "m", "module-config": {module_config}}}}}"#
        ))
        .connections(&format!(
            r#"{{"m": {{"type": "mqtt", "host": "127.0.0.1", "port": 1{connection_extra}}}}}"#
        ))
        .registry(registry())
        .config_error()
        .await;
        assert!(
            error.contains(expected),
            "{module_config} {connection_extra}: {error}"
        );
    }
}

/// Wrong credentials: the broker refuses the connection, a permanent failure (502,
/// not retryable) that names the cause; the right ones deliver.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_are_a_permanent_failure() {
    let broker = OwnBroker::start(Some(("gateway", "s3cret")));
    let server = TestServer::builder(
        r#"{"good": {"module": "mqtt", "connection": "good", "module-config": {"topic": "auth/good"}},
            "bad": {"module": "mqtt", "connection": "bad", "module-config": {"topic": "auth/bad"}}}"#,
    )
    .connections(&format!(
        "{{{}, {}}}",
        connection("good", broker.port, Some(("gateway", "s3cret"))),
        connection("bad", broker.port, Some(("gateway", "wrong")))
    ))
    .registry(registry())
    .options(webhook_testkit::delivered_options())
    .start()
    .await;
    let r = server.post("bad", &[], r#"{"x":1}"#).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["retryable"], false, "{}", r.text());
    assert!(
        !r.text().contains("wrong"),
        "the password leaked: {}",
        r.text()
    );
    let r = server.post("good", &[], r#"{"x":1}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

/// `ack: persisted`: the broker restarted mid-load (SIGTERM and start, as a service manager
/// does); a subscriber with a persistent session gets every webhook answered 200.
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_restart_loses_nothing_that_was_answered_200() {
    let mut broker = OwnBroker::start(None);
    let client_id = unique("persistent-sub");
    let subscriber = Subscriber::start(broker.port, "restart/#", Some(&client_id));
    let server = TestServer::builder(
        r#"{"r": {"ack": "persisted", "module": "mqtt", "connection": "mqtt",
                 "module-config": {"topic": "restart/events", "qos": 1},
                 "retry": {"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.3}}}"#,
    )
    .connections(&format!("{{{}}}", connection("mqtt", broker.port, None)))
    .registry(registry())
    .start()
    .await;
    let mut answered = BTreeSet::new();
    for i in 0..30 {
        if i == 10 {
            // Let the first ten reach the subscriber, then stop the broker.
            subscriber.wait_for(10, 10).await;
            broker.stop();
        }
        if i == 20 {
            broker.restart();
        }
        let body = format!(r#"{{"i":{i}}}"#);
        let r = server.post("r", &[], body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        answered.insert(body);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let got: BTreeSet<String> = subscriber
            .got
            .lock()
            .unwrap()
            .iter()
            .map(|m| String::from_utf8(m.data.clone()).unwrap())
            .collect();
        if answered.is_subset(&got) || Instant::now() > deadline {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lost: Vec<_> = answered.difference(&got).collect();
    assert!(lost.is_empty(), "answered 200, never arrived: {lost:?}");
}
