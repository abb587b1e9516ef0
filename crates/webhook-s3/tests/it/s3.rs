//! The s3 destination through the real HTTP server against s3s-fs, an S3-compatible server
//! that checks SigV4 signatures; objects read back with boto3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{OwnServer, free_port, python, scripts_dir, tool};
use webhook_testkit::recorder::registry_with_recorder;

pub(crate) const ACCESS_KEY: &str = "test";
pub(crate) const SECRET_KEY: &str = "testsecret";

/// An s3s-fs of this test's own, with `bucket` created.
pub(crate) struct Store {
    pub(crate) server: OwnServer,
    dir: tempfile::TempDir,
}

impl Store {
    pub(crate) fn start(bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(bucket)).unwrap();
        let port = free_port();
        let server = OwnServer::start(
            &tool("s3s-fs"),
            &[
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--access-key",
                ACCESS_KEY,
                "--secret-key",
                SECRET_KEY,
                dir.path().to_str().unwrap(),
            ],
            port,
        );
        Self { server, dir }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.port)
    }

    /// Every object of `bucket`, read with boto3.
    pub(crate) fn objects(&self, bucket: &str) -> Vec<serde_json::Value> {
        let output = Command::new(python())
            .arg(scripts_dir().join("s3_objects.py"))
            .args([&self.endpoint(), ACCESS_KEY, SECRET_KEY, bucket])
            .output()
            .expect("python with boto3 (bash .ci/test installs it)");
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
}

pub(crate) fn connections(endpoint: &str, secret: &str) -> String {
    format!(
        r#"{{"store": {{"type": "s3", "aws_access_key_id": "{ACCESS_KEY}", "aws_secret_access_key": "{secret}",
              "region": "us-east-1", "endpoint_url": "{endpoint}"}}}}"#
    )
}

async fn start(webhooks: &str, connections: &str) -> TestServer {
    let mut registry = registry_with_recorder();
    webhook_s3::register(&mut registry);
    TestServer::builder(webhooks)
        .connections(connections)
        .registry(registry)
        .start()
        .await
}

pub(crate) fn decode(value: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(value.as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn objects_read_back_with_boto3_are_byte_identical() {
    let store = Store::start("hooks");
    let server = start(
        r#"{"gh": {"module": "s3", "connection": "store", "module-config": {"bucket": "hooks", "prefix": "github",
                "filename_pattern": "{webhook_id}_{uuid}.json", "include_headers": true}},
            "raw": {"data_type": "blob", "module": "s3", "connection": "store", "module-config": {"bucket": "hooks",
                "prefix": "", "filename_pattern": "{timestamp}-{uuid}.bin", "content_type": "application/octet-stream"}}}"#,
        &connections(&store.endpoint(), SECRET_KEY),
    )
    .await;

    let before = jiff::Timestamp::now();
    let json_body = "{\"action\": \"opened\",\n \"text\": \"caf\u{e9} \u{1f600}\"}";
    let r = server
        .post(
            "gh",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "pull_request"),
                ("X-Hub-Signature-256", "sha256=secret-looking"),
                ("Authorization", "Bearer hidden"),
            ],
            json_body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let request_id = r.header("x-request-id").unwrap().to_owned();
    let binary: Vec<u8> = (0..=255u8).rev().cycle().take(300_000).collect();
    let r = server.post("raw", &[], binary.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let raw_id = r.header("x-request-id").unwrap().to_owned();
    let after = jiff::Timestamp::now();

    let objects = store.objects("hooks");
    assert_eq!(objects.len(), 2, "{objects:?}");
    let hour = |t: jiff::Timestamp| t.strftime("%Y/%m/%d/%H").to_string();
    let gh = objects
        .iter()
        .find(|o| o["key"].as_str().unwrap().starts_with("github/"))
        .unwrap();
    let key = gh["key"].as_str().unwrap();
    assert!(
        key == format!("github/{}/gh_{request_id}.json", hour(before))
            || key == format!("github/{}/gh_{request_id}.json", hour(after)),
        "{key}"
    );
    assert_eq!(decode(&gh["body"]), json_body.as_bytes());
    assert_eq!(gh["content_type"], "application/json");
    let meta = &gh["metadata"];
    assert_eq!(meta["x-github-event"], "pull_request");
    assert_eq!(meta["webhook-id"], "gh");
    assert_eq!(meta["webhook-request-id"], request_id.as_str());
    assert!(meta.get("x-hub-signature-256").is_none(), "{meta}");
    assert!(meta.get("authorization").is_none(), "{meta}");

    let raw = objects
        .iter()
        .find(|o| !o["key"].as_str().unwrap().starts_with("github/"))
        .unwrap();
    let key = raw["key"].as_str().unwrap();
    assert!(key.ends_with(&format!("Z-{raw_id}.bin")), "{key}");
    assert!(!key.starts_with('/'), "{key}");
    assert_eq!(decode(&raw["body"]), binary);
    assert_eq!(raw["content_type"], "application/octet-stream");
    assert!(raw["metadata"].get("x-github-event").is_none());

    // The file s3s-fs wrote is the body too: nothing was re-encoded on the way.
    let on_disk = std::fs::read(store.dir.path().join("hooks").join(key)).unwrap();
    assert_eq!(on_disk, binary);
    assert_eq!(server.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_secret_is_a_clear_permanent_failure() {
    let store = Store::start("hooks");
    let server = start(
        r#"{"s": {"module": "s3", "connection": "store", "module-config": {"bucket": "hooks"},
              "retry": {"enabled": true, "max_attempts": 3, "initial_delay": 0.01}}}"#,
        &connections(&store.endpoint(), "not-the-secret"),
    )
    .await;
    let started = std::time::Instant::now();
    let r = server.post("s", &[], "{}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["retryable"], false);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "not retried"
    );
    assert_eq!(
        server.get("/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(store.objects("hooks").is_empty());
}

#[tokio::test]
async fn a_missing_bucket_fails_the_health_check_and_a_down_store_gives_503() {
    let mut store = Store::start("hooks");
    let server = start(
        r#"{"s": {"module": "s3", "connection": "store", "module-config": {"bucket": "nope"}},
            "ok": {"module": "s3", "connection": "store", "module-config": {"bucket": "hooks"}}}"#,
        &connections(&store.endpoint(), SECRET_KEY),
    )
    .await;
    // (s3s-fs creates a missing bucket on PUT, so the health check is what notices it.)
    let health = server.get("/health").await;
    assert_eq!(
        health.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        health.text()
    );
    assert_eq!(server.post("ok", &[], "{}").await.status, StatusCode::OK);
    store.server.stop();
    let r = server.post("ok", &[], "{}").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
}

#[tokio::test]
async fn bad_configs_name_the_key() {
    for (module_config, key) in [
        (r#"{"bucket": "a/b"}"#, "bucket"),
        (r#"{"bucket": ""}"#, "bucket"),
        (r#"{"bucket": "hooks", "timeout": 0}"#, "timeout"),
        (r#"{"bucket": "hooks", "timeout": 7200}"#, "timeout"),
    ] {
        let mut registry = registry_with_recorder();
        webhook_s3::register(&mut registry);
        let err = TestServer::builder(&format!(
            r#"{{"s": {{"module": "s3", "connection": "store", "module-config": {module_config}}}}}"#
        ))
        .connections(&connections("http://127.0.0.1:1", SECRET_KEY))
        .registry(registry)
        .config_error().await;
        assert!(
            err.contains(&format!("webhooks.json: s.module-config.{key}")),
            "{module_config}: {err}"
        );
    }
}
