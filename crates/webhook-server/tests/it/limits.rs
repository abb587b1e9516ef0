//! Connections, time and memory before authentication (issue 18, points 1 and 2), through
//! the real server over raw sockets: idle connections are closed, the connection cap
//! holds, stalled and slow bodies get 408, header limits hold on HTTP/1 and HTTP/2,
//! body-free checks refuse before the body is read, and the in-flight body budget answers
//! 503 past it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webhook_core::{BodyBudget, PipelineOptions, SpoolOptions};
use webhook_server::connection::ConnectionLimits;
use webhook_server::server::{self, ServerOptions};
use webhook_testkit::recorder::Sink;
use webhook_testkit::{TestServer, delivered_options};

fn limits() -> ConnectionLimits {
    ConnectionLimits {
        idle_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }
}

async fn start_with(
    webhooks: &str,
    limits: ConnectionLimits,
    options: PipelineOptions,
) -> TestServer {
    TestServer::builder(webhooks)
        .options(options)
        .server_options(ServerOptions {
            limits,
            ..ServerOptions::default()
        })
        .start()
        .await
}

/// Read until the server closes the connection (or `within` passes); the bytes read, and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut seen = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (seen, true),
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => return (seen, false),
        }
    }
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(answer).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[tokio::test]
async fn a_connection_that_never_sends_a_byte_is_closed() {
    let server = start_with(
        r#"{"open": {"module": "log"}}"#,
        limits(),
        delivered_options(),
    )
    .await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let opened = Instant::now();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection stayed open for 5 s");
    assert!(
        opened.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
    // keep-alive after a request: closed the same way
    let mut kept = TcpStream::connect(server.addr).await.unwrap();
    kept.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (answer, closed) = read_until_closed(&mut kept, Duration::from_secs(5)).await;
    assert_eq!(status_of(&answer), Some(200));
    assert!(closed, "an idle keep-alive connection stayed open");
}

#[tokio::test]
async fn an_idle_h2_connection_is_closed_even_when_it_pings() {
    let server = start_with(
        r#"{"open": {"module": "log"}}"#,
        limits(),
        delivered_options(),
    )
    .await;
    let mut h2 = TcpStream::connect(server.addr).await.unwrap();
    // the client preface and an empty SETTINGS frame, then a PING every 300 ms
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    let mut buf = [0u8; 4096];
    while started.elapsed() < Duration::from_secs(5) {
        let ping = b"\0\0\x08\x06\0\0\0\0\0\x01\x02\x03\x04\x05\x06\x07\x08";
        if h2.write_all(ping).await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), h2.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        closed,
        "an h2 connection with no stream stayed open for 5 s"
    );
}

#[tokio::test]
async fn the_connection_cap_holds_and_frees() {
    let limits = ConnectionLimits {
        max_connections: 2,
        idle_timeout: Duration::from_secs(30),
        ..ConnectionLimits::default()
    };
    let server = start_with(
        r#"{"open": {"module": "log"}}"#,
        limits,
        delivered_options(),
    )
    .await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let client = server.client();
    let waiting = tokio::spawn(async move { client.post("open", &[], "{}").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !waiting.is_finished(),
        "a third connection was served past a cap of 2"
    );
    drop(first);
    let answer = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("served once a slot freed")
        .unwrap();
    assert_eq!(answer.status, StatusCode::OK);
}

fn slow_body_options() -> PipelineOptions {
    PipelineOptions {
        body_read_timeout: Duration::from_secs(1),
        min_body_rate: 1000,
        ..delivered_options()
    }
}

#[tokio::test]
async fn a_stalled_body_gets_408() {
    let server = start_with(
        r#"{"open": {"module": "log", "data_type": "blob"}}"#,
        limits(),
        slow_body_options(),
    )
    .await;
    let mut stalled = TcpStream::connect(server.addr).await.unwrap();
    stalled
        .write_all(
            b"POST /webhook/open HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stalled, Duration::from_secs(6)).await;
    assert_eq!(
        status_of(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert!(closed, "the connection of a timed-out body stayed open");
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn a_body_below_the_minimum_rate_gets_408() {
    let server = start_with(
        r#"{"open": {"module": "log", "data_type": "blob"}}"#,
        limits(),
        slow_body_options(),
    )
    .await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"POST /webhook/open HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    // 100 bytes every 200 ms = 500 B/s, half the minimum rate: it never catches up
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while started.elapsed() < Duration::from_secs(8) {
        if slow.write_all(&[b'a'; 100]).await.is_err() {
            break;
        }
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(200), slow.read(&mut buf)).await
        {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            break;
        }
    }
    assert_eq!(
        status_of(&answer),
        Some(408),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    // a body at twice the minimum rate is accepted
    let mut steady = TcpStream::connect(server.addr).await.unwrap();
    steady
        .write_all(b"POST /webhook/open HTTP/1.1\r\nHost: x\r\nContent-Length: 3000\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..15 {
        steady.write_all(&[b'b'; 200]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (answer, _) = read_until_closed(&mut steady, Duration::from_millis(1500)).await;
    assert_eq!(
        status_of(&answer),
        Some(200),
        "{}",
        String::from_utf8_lossy(&answer)
    );
}

#[tokio::test]
async fn header_limits_hold_on_http1_and_h2() {
    let server = start_with(
        r#"{"open": {"module": "log"}}"#,
        limits(),
        delivered_options(),
    )
    .await;
    // HTTP/1: one 40 KB header
    let big = "a".repeat(40 * 1024);
    let answer = server
        .request("POST", "/webhook/open", &[("X-Big", big.as_str())], "{}")
        .await;
    assert_eq!(answer.status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // HTTP/2 (h2c, prior knowledge): 150 small headers
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let mut request = http::Request::post(server.url("/webhook/open"));
    for i in 0..150 {
        request = request.header(format!("x-h{i}"), "v");
    }
    let answer = h2
        .request(request.body(Full::new(Bytes::from_static(b"{}"))).unwrap())
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    let fine = h2
        .request(
            http::Request::post(server.url("/webhook/open"))
                .body(Full::new(Bytes::from_static(b"{}")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(fine.status(), StatusCode::OK);
    let _ = fine.into_body().collect().await;
}

#[tokio::test]
async fn checks_that_need_no_body_refuse_before_reading_it() {
    let server = start_with(
        r#"{"ipwl": {"module": "log", "ip_whitelist": ["10.0.0.0/8"]},
            "bearer": {"module": "log", "authorization": "Bearer right"}}"#,
        limits(),
        slow_body_options(),
    )
    .await;
    for (path, extra, status) in [
        ("/webhook/ipwl", "", 403),
        ("/webhook/bearer", "Authorization: Bearer wrong\r\n", 401),
    ] {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let head =
            format!("POST {path} HTTP/1.1\r\nHost: x\r\n{extra}Content-Length: 5000000\r\n\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        // not one byte of the body is sent: the answer comes anyway, at once
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf))
            .await
            .expect("answered before the body was sent")
            .unwrap();
        assert_eq!(status_of(&buf[..n]), Some(status), "{path}");
    }
}

#[tokio::test]
async fn past_the_body_budget_new_bodies_get_503() {
    let options = PipelineOptions {
        max_body_bytes: 600_000,
        body_budget: BodyBudget::new(1_000_000),
        ..slow_body_options()
    };
    let server = start_with(
        r#"{"open": {"module": "log", "data_type": "blob"}}"#,
        limits(),
        options,
    )
    .await;
    // one body under way holds 600 kB of the 1 MB budget
    let mut holding = TcpStream::connect(server.addr).await.unwrap();
    holding
        .write_all(b"POST /webhook/open HTTP/1.1\r\nHost: x\r\nContent-Length: 600000\r\n\r\n")
        .await
        .unwrap();
    holding.write_all(&vec![b'a'; 300_000]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let body = "b".repeat(500_000);
    let refused = server.post("open", &[], body.clone()).await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        refused.text()
    );
    assert!(refused.header("retry-after").is_some());
    // the first completes, gives its share back, and the next body fits
    holding.write_all(&vec![b'a'; 300_000]).await.unwrap();
    let (answer, _) = read_until_closed(&mut holding, Duration::from_millis(1500)).await;
    assert_eq!(status_of(&answer), Some(200));
    let accepted = server.post("open", &[], body.clone()).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.text());
}

#[tokio::test]
async fn accepted_requests_are_counted_in_the_spool_quota() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::named("limits_accepted_quota");
    sink.fail_next(u32::MAX);
    let options = PipelineOptions {
        spool: SpoolOptions {
            dir: dir.path().to_path_buf(),
            max_bytes: 200_000,
            webhook_share_percent: 100,
            ..SpoolOptions::default()
        },
        ..PipelineOptions::default()
    };
    let server = start_with(
        r#"{"acc": {"ack": "accepted", "module": "test_recorder", "module-config": {"sink": "limits_accepted_quota"},
                    "data_type": "blob", "retry": {"max_attempts": 100, "initial_delay": 3600}}}"#,
        limits(),
        options,
    )
    .await;
    let body = "c".repeat(30_000);
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(server.post("acc", &[], body.clone()).await.status.as_u16());
    }
    assert!(statuses[..5].iter().all(|s| *s == 200), "{statuses:?}");
    assert!(statuses[7..].iter().all(|s| *s == 503), "{statuses:?}");
}

#[tokio::test]
async fn json_schema_refuses_bodies_past_its_cap() {
    let server = start_with(
        r#"{"schema": {"module": "log", "json_schema": {"type": "array"}}}"#,
        limits(),
        delivered_options(),
    )
    .await;
    let mut big = String::from("[");
    big.push_str(&"0,".repeat(webhook_validators::MAX_SCHEMA_BODY_BYTES / 2 + 10));
    big.push('0');
    big.push(']');
    let answer = server.post("schema", &[], big).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text()
    );
    assert_eq!(
        server.post("schema", &[], "[1,2]").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_metrics_listener_has_the_same_limits() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let options = Arc::new(ServerOptions {
        limits: limits(),
        ..ServerOptions::default()
    });
    let task = tokio::spawn(server::serve_metrics(listener, options));
    // a request line and then one byte every 300 ms: closed by the idle timeout
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\n").await.unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(5) {
        if slow.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(300), slow.read(&mut buf)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling metrics connection stayed open for 5 s");
    task.abort();
}

/// One `POST /webhook/{id}` on an open HTTP/1.1 connection (kept alive); its status.
async fn post_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    id: &str,
) -> StatusCode {
    let request = http::Request::post(format!("/webhook/{id}"))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(5), sender.send_request(request))
        .await
        .expect("answered within 5 s")
        .unwrap();
    answer.status()
}

async fn open_http1(addr: SocketAddr) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(connection);
    sender
}

/// Out of file descriptors (`EMFILE`) the server keeps serving the connections it has,
/// and takes new ones again once descriptors are free; it never exits or spins.
#[tokio::test]
async fn out_of_file_descriptors_the_open_connections_are_still_served() {
    use super::spool_crash::{BIN, start_server_as};

    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(
        &webhooks,
        r#"{"fd": {"module": "log", "ack": "delivered"}}"#,
    )
    .unwrap();
    // a hard limit of 64 descriptors, and a connection cap far above it
    let mut command = std::process::Command::new("prlimit");
    command.args(["--nofile=64:64", "--", BIN]);
    let (child, addr) = start_server_as(
        command,
        dir.path(),
        &webhooks,
        &["--max-connections", "5000", "--spool-dir", "spool"],
    );
    let mut server = super::spool_disk_full::Running(child);

    let mut first = open_http1(addr).await;
    assert_eq!(post_on(&mut first, "fd").await, StatusCode::OK);
    // more connections than descriptors: the kernel queues them, accept fails with EMFILE
    let mut flood = Vec::new();
    for _ in 0..120 {
        flood.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        assert_eq!(
            post_on(&mut first, "fd").await,
            StatusCode::OK,
            "an open connection is served out of descriptors"
        );
    }
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
    drop(flood);
    // descriptors come back: new connections are served again
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = tokio::time::timeout(Duration::from_secs(2), async {
            let mut fresh = open_http1(addr).await;
            post_on(&mut fresh, "fd").await
        })
        .await;
        if attempt.is_ok_and(|status| status == StatusCode::OK) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new connections never served again"
        );
    }
    assert!(server.0.try_wait().unwrap().is_none(), "the server exited");
}
