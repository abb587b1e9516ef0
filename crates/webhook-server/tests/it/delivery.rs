//! Requests through the real HTTP server: status codes, body limits, destinations,
//! failures, retries, chains, stats, health and graceful shutdown.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webhook_core::PipelineOptions;
use webhook_testkit::TestServer;
use webhook_testkit::recorder::Sink;

fn recorder(id: &str, sink: &str, data_type: &str) -> String {
    format!(
        r#"{{"{id}": {{"data_type": "{data_type}", "module": "test_recorder", "module-config": {{"sink": "{sink}"}}}}}}"#
    )
}

#[tokio::test]
async fn unknown_id_wrong_method_and_routes() {
    let server = TestServer::start(&recorder("known", "routes", "json")).await;
    let r = server.post("unknown", &[], "{}").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["detail"], "Webhook ID not found");
    let r = server.request("GET", "/webhook/known", &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(
        server.request("DELETE", "/stats", &[], "").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(server.get("/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(server.get("/").await.status, StatusCode::OK);
    let r = server.post("known", &[], "{}").await;
    assert!(r.header("x-request-id").is_some_and(|id| id.len() == 36));
}

#[tokio::test]
async fn json_must_parse_blob_takes_anything() {
    let server = TestServer::start(
        r#"{"j": {"module": "test_recorder", "module-config": {"sink": "json_j"}},
            "b": {"data_type": "blob", "module": "test_recorder", "module-config": {"sink": "json_b"}}}"#,
    )
    .await;
    for bad in [&b"{\"a\": 1"[..], b"", b"not json", b"{} {}", b"\xff\xfe"] {
        let r = server.post("j", &[], bad).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert_eq!(r.json()["detail"], "Malformed JSON payload");
    }
    let deep = format!("{}{}", "[".repeat(51), "]".repeat(51));
    assert_eq!(
        server.post("j", &[], deep).await.status,
        StatusCode::BAD_REQUEST
    );
    // Accepted JSON is delivered byte for byte: not re-serialised.
    let odd = " {\"b\" :2,\n  \"a\":1.50 }\t";
    assert_eq!(server.post("j", &[], odd).await.status, StatusCode::OK);
    assert_eq!(
        Sink::named("json_j").bodies(),
        vec![bytes::Bytes::from(odd)]
    );

    let binary: Vec<u8> = (0..=255u8).rev().collect();
    assert_eq!(
        server.post("b", &[], binary.clone()).await.status,
        StatusCode::OK
    );
    assert_eq!(server.post("b", &[], "").await.status, StatusCode::OK);
    assert_eq!(
        Sink::named("json_b").bodies(),
        vec![bytes::Bytes::from(binary), bytes::Bytes::new()]
    );
}

const CAP: usize = 1024;

async fn small_cap_server(sink: &str) -> TestServer {
    let options = PipelineOptions {
        max_body_bytes: CAP,
        ..webhook_testkit::delivered_options()
    };
    TestServer::builder(&recorder("small", sink, "blob"))
        .options(options)
        .start()
        .await
}

async fn read_status_line(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("no answer within 5 s: the server waited for the body")
        .unwrap();
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn body_cap_is_enforced() {
    let server = small_cap_server("cap").await;
    assert_eq!(
        server.post("small", &[], vec![b'x'; CAP]).await.status,
        StatusCode::OK
    );
    let r = server.post("small", &[], vec![b'x'; CAP + 1]).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.json()["detail"], "Payload too large");
    assert_eq!(Sink::named("cap").bodies().len(), 1);
}

#[tokio::test]
async fn announced_oversize_body_is_refused_before_it_is_sent() {
    let server = small_cap_server("cap_announced").await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Announce a gigabyte, send ten bytes, and wait: the answer must come at once.
    stream
        .write_all(b"POST /webhook/small HTTP/1.1\r\nHost: t\r\nContent-Length: 1073741824\r\n\r\n0123456789")
        .await
        .unwrap();
    assert!(
        read_status_line(&mut stream)
            .await
            .starts_with("HTTP/1.1 413")
    );
}

#[tokio::test]
async fn streamed_oversize_body_is_refused_while_streaming() {
    let server = small_cap_server("cap_streamed").await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST /webhook/small HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    // cap + 1 bytes in two chunks, and no final chunk: the body never ends.
    for chunk in [vec![b'a'; CAP / 2], vec![b'b'; CAP / 2 + 1]] {
        stream
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .unwrap();
        stream.write_all(&chunk).await.unwrap();
        stream.write_all(b"\r\n").await.unwrap();
    }
    assert!(
        read_status_line(&mut stream)
            .await
            .starts_with("HTTP/1.1 413")
    );
    assert!(Sink::named("cap_streamed").bodies().is_empty());
}

#[tokio::test]
async fn save_to_disk_writes_the_exact_bytes() {
    let data = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        data_dir: data.path().to_path_buf(),
        ..webhook_testkit::delivered_options()
    };
    let server = TestServer::builder(
        r#"{"bin": {"data_type": "blob", "module": "save_to_disk", "module-config": {"path": "incoming/bin"}},
            "js": {"module": "save_to_disk", "module-config": {"path": "incoming/js"}}}"#,
    )
    .options(options)
    .start()
    .await;
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let r = server.post("bin", &[], binary.clone()).await;
    assert_eq!(r.status, StatusCode::OK);
    let json = "{ \"z\": 1,   \"a\": [true, null] }";
    assert_eq!(server.post("js", &[], json).await.status, StatusCode::OK);

    let files = |dir: &str| {
        let mut v: Vec<_> = std::fs::read_dir(data.path().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        v.sort();
        v
    };
    let bin_files = files("incoming/bin");
    assert_eq!(bin_files.len(), 1, "{bin_files:?}");
    assert_eq!(std::fs::read(&bin_files[0]).unwrap(), binary);
    let name = bin_files[0]
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(name.starts_with("bin-") && name.ends_with(".bin"), "{name}");
    assert!(
        name.contains(r.header("x-request-id").unwrap()),
        "file name carries the request id: {name}"
    );
    let js_files = files("incoming/js");
    assert_eq!(js_files.len(), 1);
    assert_eq!(std::fs::read_to_string(&js_files[0]).unwrap(), json);
    assert!(js_files[0].extension().unwrap() == "json");
}

#[tokio::test]
async fn save_to_disk_failure_is_502_and_the_retry_succeeds() {
    let data = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        data_dir: data.path().to_path_buf(),
        ..webhook_testkit::delivered_options()
    };
    let server = TestServer::builder(r#"{"d": {"data_type": "blob", "module": "save_to_disk", "module-config": {"path": "out"}}}"#)
        .options(options)
        .start()
        .await;
    let dir = data.path().join("out");
    std::fs::remove_dir_all(&dir).unwrap();
    let r = server.post("d", &[], "payload-1").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(r.json()["retryable"], true);
    assert_eq!(
        server.get("/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // The sender retries once the directory is back: the payload is not lost.
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(
        server.post("d", &[], "payload-1").await.status,
        StatusCode::OK
    );
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), b"payload-1");
    // health results are cached for a few seconds: it turns healthy within them
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while server.get("/health").await.status != StatusCode::OK {
        assert!(std::time::Instant::now() < deadline, "still unhealthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn destination_failures_map_to_502_and_503() {
    let server = TestServer::start(
        r#"{"r": {"module": "test_recorder", "module-config": {"sink": "fail_r"}},
            "u": {"module": "test_recorder", "module-config": {"sink": "fail_u", "fail_as": "unavailable"}},
            "p": {"module": "test_recorder", "module-config": {"sink": "fail_p", "fail_as": "permanent"}}}"#,
    )
    .await;
    Sink::named("fail_r").fail_next(1);
    let r = server.post("r", &[], r#"{"n":1}"#).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["retryable"], true);
    // The sender retries: delivered exactly once.
    assert_eq!(
        server.post("r", &[], r#"{"n":1}"#).await.status,
        StatusCode::OK
    );
    assert_eq!(Sink::named("fail_r").bodies().len(), 1);

    Sink::named("fail_u").fail_next(1);
    let r = server.post("u", &[], "{}").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json()["detail"], "Destination unavailable");

    Sink::named("fail_p").fail_next(1);
    let r = server.post("p", &[], "{}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["retryable"], false);
}

#[tokio::test]
async fn retry_config_retries_inside_the_request() {
    let server = TestServer::start(
        r#"{"r": {"module": "test_recorder", "module-config": {"sink": "retry_in"},
            "retry": {"enabled": true, "max_attempts": 3, "initial_delay": 0.01, "max_delay": 0.05, "backoff_multiplier": 2}},
            "short": {"module": "test_recorder", "module-config": {"sink": "retry_short"},
            "retry": {"enabled": true, "max_attempts": "2", "initial_delay": "0.01"}},
            "perm": {"module": "test_recorder", "module-config": {"sink": "retry_perm", "fail_as": "permanent"},
            "retry": {"enabled": true, "max_attempts": 5, "initial_delay": 0.01}}}"#,
    )
    .await;
    Sink::named("retry_in").fail_next(2);
    assert_eq!(server.post("r", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(Sink::named("retry_in").attempts(), 3);
    assert_eq!(Sink::named("retry_in").bodies().len(), 1);

    Sink::named("retry_short").fail_next(2);
    assert_eq!(
        server.post("short", &[], "{}").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(Sink::named("retry_short").attempts(), 2);

    // Permanent failures are not retried.
    Sink::named("retry_perm").fail_next(1);
    assert_eq!(
        server.post("perm", &[], "{}").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(Sink::named("retry_perm").attempts(), 1);
}

#[tokio::test]
async fn chains_deliver_to_every_destination() {
    let server = TestServer::start(
        r#"{"seq": {"chain": [{"module": "test_recorder", "module-config": {"sink": "chain_a"}},
                              {"module": "test_recorder", "module-config": {"sink": "chain_b"}}],
                    "chain-config": {"execution": "sequential", "continue_on_error": false}},
            "par": {"chain": [{"module": "test_recorder", "module-config": {"sink": "chain_c"}},
                              {"module": "test_recorder", "module-config": {"sink": "chain_d"}}, "log"],
                    "chain-config": {"execution": "parallel"}}}"#,
    )
    .await;
    assert_eq!(
        server.post("seq", &[], r#"{"k":"v"}"#).await.status,
        StatusCode::OK
    );
    assert_eq!(Sink::named("chain_a").bodies().len(), 1);
    assert_eq!(Sink::named("chain_b").bodies().len(), 1);
    // First fails and continue_on_error is false: the second is not tried, answer 502.
    Sink::named("chain_a").fail_next(1);
    assert_eq!(
        server.post("seq", &[], "{}").await.status,
        StatusCode::BAD_GATEWAY
    );
    assert_eq!(Sink::named("chain_b").attempts(), 1);

    Sink::named("chain_d").fail_next(1);
    assert_eq!(
        server.post("par", &[], "{}").await.status,
        StatusCode::BAD_GATEWAY,
        "one failed destination fails the request"
    );
    assert_eq!(server.post("par", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(Sink::named("chain_c").bodies().len(), 2);
    assert_eq!(Sink::named("chain_d").bodies().len(), 1);
}

#[tokio::test]
async fn a_hung_destination_times_out() {
    let server = TestServer::start(
        r#"{"slow": {"module": "test_recorder", "module-config": {"sink": "slow", "delay_ms": 5000},
                     "chain-config": {"timeout": 0.2}}}"#,
    )
    .await;
    let started = Instant::now();
    let r = server.post("slow", &[], "{}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn stats_count_accepted_requests_per_window() {
    let server = TestServer::start(
        r#"{"a": {"module": "log", "authorization": "Bearer x"}, "b": {"module": "log"}}"#,
    )
    .await;
    // The `minute` window is the current calendar minute: all of it inside one.
    webhook_testkit::clear_of_minute_boundary(Duration::from_secs(5)).await;
    for _ in 0..3 {
        server
            .post("a", &[("Authorization", "Bearer x")], "{}")
            .await;
    }
    server.post("a", &[], "{}").await; // rejected: not counted
    server.post("b", &[], "{}").await;
    let stats = server.get("/stats").await.json();
    for key in [
        "total",
        "minute",
        "5_minutes",
        "15_minutes",
        "30_minutes",
        "hour",
        "day",
        "week",
        "month",
    ] {
        assert_eq!(stats["a"][key], 3, "{key}: {stats}");
        assert_eq!(stats["b"][key], 1, "{key}: {stats}");
    }
}

#[tokio::test]
async fn health_reports_each_destination() {
    let server = TestServer::builder(&recorder("h", "health", "json"))
        .server_options(webhook_server::server::ServerOptions {
            ops_token: webhook_server::server::OpsToken::new("health-token"),
            ..Default::default()
        })
        .start()
        .await;
    // the details are for operators; anonymous callers get the bare status
    assert_eq!(
        server.get("/health").await.json(),
        serde_json::json!({"status": "healthy"})
    );
    let r = server
        .request(
            "GET",
            "/health",
            &[("Authorization", "Bearer health-token")],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["destinations"]["h"][0]["module"], "test_recorder");
    assert_eq!(body["destinations"]["h"][0]["status"], "ok");
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let server = TestServer::start(
        r#"{"slow": {"module": "test_recorder", "module-config": {"sink": "drain", "delay_ms": 400}}}"#,
    )
    .await;
    let client = server.client();
    let in_flight = tokio::spawn(async move { client.post("slow", &[], r#"{"last":true}"#).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = server.addr;
    server.shutdown().await;
    let r = in_flight.await.unwrap();
    assert_eq!(r.status, StatusCode::OK, "the in-flight request finished");
    assert_eq!(Sink::named("drain").bodies().len(), 1);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}
