//! The kafka destination against a real Kafka-protocol broker (tansu), through the real
//! HTTP server, read back with kafka-python.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use rskafka::client::ClientBuilder;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{
    OwnServer, free_port, python, require_tcp, scripts_dir, service_url, unique,
};
use webhook_testkit::recorder::registry_with_recorder;

fn bootstrap() -> String {
    service_url("kafka", "127.0.0.1:9092")
}

pub(crate) fn registry() -> webhook_core::Registry {
    let mut registry = registry_with_recorder();
    webhook_kafka::register(&mut registry);
    registry
}

pub(crate) fn connections(bootstrap: &str) -> String {
    format!(r#"{{"kafka": {{"type": "kafka", "bootstrap_servers": "{bootstrap}"}}}}"#)
}

pub(crate) async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) {
    let client = ClientBuilder::new(vec![bootstrap.to_owned()])
        .build()
        .await
        .unwrap();
    let created = client
        .controller_client()
        .unwrap()
        .create_topic(topic, partitions, 1, 5_000)
        .await;
    match created {
        Ok(()) => {}
        // A reconnecting client's metadata request may have had the broker create it first.
        Err(rskafka::client::error::Error::ServerError {
            protocol_error: rskafka::client::error::ProtocolError::TopicAlreadyExists,
            ..
        }) => {}
        Err(err) => panic!("cannot create topic {topic}: {err}"),
    }
}

fn require_kafka() {
    let bootstrap = bootstrap();
    let (host, port) = bootstrap.rsplit_once(':').unwrap();
    require_tcp("kafka", host, port.parse().unwrap());
}

pub(crate) fn consume(
    bootstrap: &str,
    topic: &str,
    count: usize,
    seconds: u32,
) -> Vec<serde_json::Value> {
    let output = Command::new(python())
        .arg(scripts_dir().join("kafka_consume.py"))
        .args([bootstrap, topic, &count.to_string(), &seconds.to_string()])
        .output()
        .expect("python with kafka-python (bash .ci/test installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

pub(crate) fn decode(value: &serde_json::Value) -> Vec<u8> {
    BASE64.decode(value.as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn records_arrive_with_key_partition_and_headers() {
    require_kafka();
    let bootstrap = bootstrap();
    let topic = unique("github");
    create_topic(&bootstrap, &topic, 3).await;
    let server = TestServer::builder(&format!(
        r#"{{"gh": {{"module": "kafka", "connection": "kafka",
                     "module-config": {{"topic": "{topic}", "key_from_header": "X-GitHub-Delivery", "forward_headers": true}}}},
             "fixed": {{"data_type": "blob", "module": "kafka", "connection": "kafka", "topic": "{topic}",
                     "module-config": {{"key": "fixed-key", "partition": 2}}}}}}"#
    ))
    .connections(&connections(&bootstrap))
    .registry(registry())
    .start()
    .await;

    let mut sent = Vec::new();
    for i in 0..6 {
        let delivery = format!("delivery-{i}-{topic}");
        let body = format!("{{\"action\": \"push\", \"n\": {i}}}");
        let r = server
            .post(
                "gh",
                &[("X-GitHub-Delivery", &delivery), ("X-GitHub-Event", "push")],
                body.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        sent.push((delivery, body, r.header("x-request-id").unwrap().to_owned()));
    }
    let binary: Vec<u8> = (0..=255u8).collect();
    assert_eq!(
        server.post("fixed", &[], binary.clone()).await.status,
        StatusCode::OK
    );

    let records = consume(&bootstrap, &topic, 7, 30);
    assert_eq!(records.len(), 7, "{records:?}");
    for (delivery, body, request_id) in &sent {
        let record = records
            .iter()
            .find(|r| r["key"].is_string() && decode(&r["key"]) == delivery.as_bytes())
            .unwrap_or_else(|| panic!("no record keyed {delivery}"));
        assert_eq!(decode(&record["value"]), body.as_bytes());
        assert_eq!(
            record["partition"], record["expected_partition"],
            "same partition as kafka-python's partitioner"
        );
        assert_eq!(decode(&record["headers"]["x-github-event"]), b"push");
        assert_eq!(
            decode(&record["headers"]["x-request-id"]),
            request_id.as_bytes()
        );
    }
    let fixed = records
        .iter()
        .find(|r| r["key"].is_string() && decode(&r["key"]) == b"fixed-key")
        .unwrap();
    assert_eq!(fixed["partition"], 2);
    assert_eq!(decode(&fixed["value"]), binary);
    assert!(
        fixed["headers"].get("x-github-event").is_none(),
        "headers are forwarded only when asked"
    );
}

#[tokio::test]
async fn a_missing_topic_is_a_clear_start_up_error() {
    require_kafka();
    let topic = unique("missing");
    let errors = TestServer::builder(&format!(
        r#"{{"k": {{"module": "kafka", "connection": "kafka", "module-config": {{"topic": "{topic}"}}}}}}"#
    ))
    .connections(&connections(&bootstrap()))
    .registry(registry())
    .config_error().await;
    assert!(
        errors.contains(&format!(
            "webhooks.json: k.module-config.topic: module `kafka`: topic `{topic}` does not exist"
        )),
        "{errors}"
    );
}

pub(crate) fn tansu() -> String {
    std::env::var("WEBHOOK_TEST_TANSU").unwrap_or_else(|_| "tansu".to_owned())
}

/// A broker of our own (in-memory), so stopping it does not disturb other tests.
fn own_broker(port: u16) -> OwnServer {
    let url = format!("tcp://127.0.0.1:{port}");
    let args = [
        "broker",
        "--listener-url",
        &url,
        "--advertised-listener-url",
        &url,
        "--storage-engine",
        "memory://tansu/",
    ];
    OwnServer::start(&tansu(), &args, port)
}

fn bootstrap_of(broker: &OwnServer) -> String {
    format!("127.0.0.1:{}", broker.port)
}

#[tokio::test]
async fn a_broker_restart_gives_503_then_recovers() {
    let port = free_port();
    let mut broker = own_broker(port);
    let topic = unique("restart");
    create_topic(&bootstrap_of(&broker), &topic, 1).await;
    let server = TestServer::builder(&format!(
        r#"{{"k": {{"module": "kafka", "connection": "kafka", "module-config": {{"topic": "{topic}"}}}}}}"#
    ))
    .connections(&connections(&bootstrap_of(&broker)))
    .registry(registry())
    .start()
    .await;
    for i in 0..3 {
        assert_eq!(
            server
                .post("k", &[], format!(r#"{{"before": {i}}}"#))
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(consume(&bootstrap_of(&broker), &topic, 3, 20).len(), 3);

    broker.stop();
    for i in 0..3 {
        let r = server.post("k", &[], format!(r#"{{"during": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    }
    // The in-memory broker comes back empty: recreate the topic, as an operator would.
    let broker = own_broker(port);
    create_topic(&bootstrap_of(&broker), &topic, 1).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut after = Vec::new();
    while after.len() < 3 {
        assert!(Instant::now() < deadline, "no recovery within 20 s");
        let body = format!(r#"{{"after": {}}}"#, after.len());
        let r = server.post("k", &[], body.clone()).await;
        if r.status == StatusCode::OK {
            after.push(body);
        } else {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let records = consume(&bootstrap_of(&broker), &topic, after.len(), 20);
    let values: Vec<Vec<u8>> = records.iter().map(|r| decode(&r["value"])).collect();
    for body in &after {
        assert!(
            values.contains(&body.as_bytes().to_vec()),
            "{body} answered 200 but missing"
        );
    }
}
