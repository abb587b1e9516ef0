//! Hot reload: `POST /admin/reload` and the config-file watch (a Kubernetes-style
//! ConfigMap symlink swap), against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::net::TcpListener;
use webhook_core::Pipeline;
use webhook_core::config::{ConfigSource, Env};
use webhook_server::live::{ConfigFiles, LivePipeline};
use webhook_server::server::{OpsToken, ServerOptions, serve};
use webhook_testkit::TestClient;
use webhook_testkit::recorder::{Sink, registry_with_recorder};

const TOKEN: &str = "reload-token";

struct Running {
    client: TestClient,
    live: Arc<LivePipeline>,
    _task: tokio::task::JoinHandle<()>,
}

async fn start(webhooks: &Path) -> Running {
    let registry = registry_with_recorder();
    let text = std::fs::read_to_string(webhooks).unwrap();
    let config = webhook_core::config::parse(
        &registry,
        &ConfigSource::new("webhooks.json", text),
        None,
        &Env::empty(),
    )
    .unwrap();
    let pipeline = Pipeline::build(config, webhook_testkit::delivered_options())
        .await
        .unwrap();
    let live = Arc::new(LivePipeline::from_files(
        pipeline,
        ConfigFiles {
            webhooks: webhooks.to_path_buf(),
            connections: None,
        },
        registry_with_recorder(),
        webhook_testkit::delivered_options(),
        Duration::from_secs(5),
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = ServerOptions {
        ops_token: OpsToken::new(TOKEN),
        openapi: Some(bytes::Bytes::from(
            webhook_server::openapi::document(&std::fs::read_to_string(webhooks).unwrap())
                .to_string(),
        )),
        ..ServerOptions::default()
    };
    let task = tokio::spawn(serve(
        listener,
        Arc::clone(&live),
        options,
        std::future::pending(),
    ));
    Running {
        client: TestClient::new(addr),
        live,
        _task: task,
    }
}

async fn reload(client: &TestClient) -> webhook_testkit::TestResponse {
    client
        .request(
            "POST",
            "/admin/reload",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
            "",
        )
        .await
}

#[cfg(feature = "http")]
#[tokio::test]
async fn a_valid_change_is_applied_without_dropping_in_flight_requests() {
    use webhook_testkit::target::HttpTarget;
    let target = HttpTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webhooks.json");
    let v1 = format!(
        r#"{{"slow": {{"module": "test_recorder", "module-config": {{"sink": "reload_slow", "delay_ms": 1500}}}},
            "fwd": {{"module": "http_webhook", "module-config": {{"url": "{}"}}}}}}"#,
        target.url("/kept")
    );
    std::fs::write(&file, &v1).unwrap();
    let server = start(&file).await;
    let client = server.client.clone();
    assert_eq!(
        client.post("fwd", &[], "{\"n\": 1}").await.status,
        StatusCode::OK
    );
    assert_eq!(target.connections(), 1);

    let slow = Sink::named("reload_slow");
    let in_flight = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .post("slow", &[], "{\"in\": \"flight\"}")
                .await
                .status
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;

    // v2: `slow` removed, `fwd` unchanged, `added` new.
    let v2 = format!(
        r#"{{"fwd": {{"module": "http_webhook", "module-config": {{"url": "{}"}}}},
            "added": {{"module": "log"}}}}"#,
        target.url("/kept")
    );
    std::fs::write(&file, &v2).unwrap();
    assert_eq!(
        client
            .request("POST", "/admin/reload", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "the admin endpoint needs the token"
    );
    let r = reload(&client).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["webhooks"], serde_json::json!(["added", "fwd"]));

    assert_eq!(
        in_flight.await.unwrap(),
        StatusCode::OK,
        "the in-flight request finished on v1"
    );
    assert_eq!(slow.bodies().len(), 1);
    assert_eq!(client.post("added", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(
        client.post("slow", &[], "{}").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.post("fwd", &[], "{\"n\": 2}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        target.connections(),
        1,
        "the unchanged destination kept its connection"
    );

    // Changing the destination builds it anew (a new connection pool).
    std::fs::write(&file, v2.replace("/kept", "/changed")).unwrap();
    assert_eq!(reload(&client).await.status, StatusCode::OK);
    assert_eq!(
        client.post("fwd", &[], "{\"n\": 3}").await.status,
        StatusCode::OK
    );
    assert_eq!(target.connections(), 2);
    assert_eq!(target.received().last().unwrap().path, "/changed");
    let _ = server.live;
}

#[tokio::test]
async fn an_invalid_change_is_rejected_and_the_old_config_keeps_serving() {
    let sink = Sink::named("reload_invalid");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("webhooks.json");
    std::fs::write(
        &file,
        r#"{"a": {"module": "test_recorder", "module-config": {"sink": "reload_invalid"}}}"#,
    )
    .unwrap();
    let server = start(&file).await;
    std::fs::write(
        &file,
        r#"{"a": {"module": "test_recorder", "module-config": {"sink": "reload_invalid"}},
            "b": {"module": "carrier_pigeon"},
            "c": {"module": "log", "hmac": {"secret": ""}}}"#,
    )
    .unwrap();
    let r = reload(&server.client).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text());
    let errors: Vec<String> = r.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap().to_owned())
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("b.module") && e.contains("carrier_pigeon")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("c.hmac.secret")),
        "{errors:?}"
    );
    assert_eq!(
        server.client.post("a", &[], "{}").await.status,
        StatusCode::OK
    );
    assert_eq!(
        server.client.post("b", &[], "{}").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(sink.bodies().len(), 1);

    std::fs::write(&file, "{not json").unwrap();
    assert_eq!(
        reload(&server.client).await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        server.client.post("a", &[], "{}").await.status,
        StatusCode::OK
    );
}

/// `dir/..<version>/webhooks.json`, `dir/..data -> ..<version>`,
/// `dir/webhooks.json -> ..data/webhooks.json`: how Kubernetes mounts a ConfigMap.
fn publish(dir: &Path, version: &str, webhooks: &str) -> PathBuf {
    let versioned = dir.join(format!("..{version}"));
    std::fs::create_dir(&versioned).unwrap();
    std::fs::write(versioned.join("webhooks.json"), webhooks).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(format!("..{version}"), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap(); // atomic swap
    let link = dir.join("webhooks.json");
    if !link.exists() {
        std::os::unix::fs::symlink("..data/webhooks.json", &link).unwrap();
    }
    link
}

#[tokio::test]
async fn a_configmap_symlink_swap_is_picked_up_by_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let file = publish(
        dir.path(),
        "2026_11_28_v1",
        r#"{"before": {"module": "log"}}"#,
    );
    let server = start(&file).await;
    tokio::spawn(Arc::clone(&server.live).watch(Duration::from_millis(100)));
    assert_eq!(
        server.client.post("before", &[], "{}").await.status,
        StatusCode::OK
    );

    publish(
        dir.path(),
        "2026_11_28_v2",
        r#"{"after": {"module": "log"}}"#,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.client.post("after", &[], "{}").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "the swap was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        server.client.post("before", &[], "{}").await.status,
        StatusCode::NOT_FOUND
    );
    // The OpenAPI document follows the new config too.
    let bearer = format!("Bearer {TOKEN}");
    let doc = server
        .client
        .request(
            "GET",
            "/openapi.json",
            &[("Authorization", bearer.as_str())],
            "",
        )
        .await
        .json();
    assert!(doc["paths"]["/webhook/after"].is_object(), "{doc}");
}
