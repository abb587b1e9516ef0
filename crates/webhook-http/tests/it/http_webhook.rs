//! The http_webhook destination through the real HTTP server, against a real HTTP target
//! on loopback that records what it received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use http::{Method, StatusCode};
use webhook_testkit::TestServer;
use webhook_testkit::interop::free_port;
use webhook_testkit::recorder::registry_with_recorder;
use webhook_testkit::target::HttpTarget;

async fn start(webhooks: &str) -> TestServer {
    let mut registry = registry_with_recorder();
    webhook_http::register(&mut registry);
    TestServer::builder(webhooks)
        .registry(registry)
        .env("TARGET_TOKEN", "s3cr3t")
        .start()
        .await
}

fn webhook(url: &str, extra: &str) -> String {
    format!(r#"{{"h": {{"module": "http_webhook", "module-config": {{"url": "{url}"{extra}}}}}}}"#)
}

#[tokio::test]
async fn exact_bytes_method_and_headers_over_one_kept_alive_connection() {
    let target = HttpTarget::start().await;
    let server = start(&format!(
        r#"{{"j": {{"module": "http_webhook", "module-config": {{"url": "{}", "method": "put", "forward_headers": true,
                "headers": {{"Authorization": "Bearer {{$TARGET_TOKEN}}", "X-Source": "gateway"}}}}}},
            "b": {{"data_type": "blob", "module": "http_webhook", "module-config": {{"url": "{}"}}}}}}"#,
        target.url("/hooks/in?tenant=7"),
        target.url("/raw"),
    ))
    .await;

    let body = "{\"id\": 1,\n  \"text\": \"caf\u{e9}\"}";
    let r = server
        .post(
            "j",
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("X-GitHub-Event", "push"),
                ("X-Source", "sender"),
                ("Connection", "keep-alive, X-Drop-Me"),
                ("X-Drop-Me", "1"),
                ("TE", "trailers"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let request_id = r.header("x-request-id").unwrap().to_owned();

    let got = target.received();
    assert_eq!(got.len(), 1);
    let first = &got[0];
    assert_eq!(first.method, Method::PUT);
    assert_eq!(first.path, "/hooks/in?tenant=7");
    assert_eq!(first.body, body.as_bytes());
    let header = |name: &str| first.headers.get(name).map(|v| v.to_str().unwrap());
    assert_eq!(
        header("content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(header("x-github-event"), Some("push"));
    assert_eq!(header("authorization"), Some("Bearer s3cr3t"));
    assert_eq!(
        header("x-source"),
        Some("gateway"),
        "configured headers win"
    );
    assert_eq!(header("x-webhook-request-id"), Some(request_id.as_str()));
    assert_eq!(
        header("x-drop-me"),
        None,
        "listed in Connection: hop-by-hop"
    );
    assert_eq!(header("te"), None);
    assert_eq!(
        header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(
        header("host"),
        Some(target.addr.to_string().as_str()),
        "Host names the target, not the gateway"
    );

    // A binary body without forwarded headers: exact bytes, only the content type passed on.
    let binary: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    for _ in 0..20 {
        let r = server
            .post(
                "b",
                &[("Content-Type", "application/x-thing"), ("X-Secret", "no")],
                binary.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let got = target.received();
    assert_eq!(got.len(), 21);
    for request in &got[1..] {
        assert_eq!(request.method, Method::POST);
        assert_eq!(request.path, "/raw");
        assert_eq!(request.body, binary);
        assert_eq!(request.headers["content-type"], "application/x-thing");
        assert!(request.headers.get("x-secret").is_none());
    }
    assert_eq!(
        target.connections(),
        1,
        "21 sequential webhooks share one pooled keep-alive connection"
    );
}

#[tokio::test]
async fn target_errors_are_classified() {
    let target = HttpTarget::start().await;
    let server = start(&webhook(&target.url("/x"), "")).await;

    target.respond(StatusCode::INTERNAL_SERVER_ERROR, &[]);
    let r = server.post("h", &[], "{}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(r.header("retry-after").is_none());

    target.respond(StatusCode::TOO_MANY_REQUESTS, &[("Retry-After", "7")]);
    let r = server.post("h", &[], "{}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert_eq!(
        r.header("retry-after"),
        Some("7"),
        "the target's Retry-After is passed on"
    );
    let retryable = r.text();

    target.respond(StatusCode::UNPROCESSABLE_ENTITY, &[]);
    let r = server.post("h", &[], "{}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_ne!(
        r.text(),
        retryable,
        "a refused webhook is reported differently"
    );

    target.respond(StatusCode::MOVED_PERMANENTLY, &[("Location", "/elsewhere")]);
    let r = server.post("h", &[], "{}").await;
    assert_eq!(
        r.status,
        StatusCode::BAD_GATEWAY,
        "redirects are not followed"
    );
    assert_eq!(
        target.received().len(),
        4,
        "no retries without a retry config"
    );

    target.respond(StatusCode::ACCEPTED, &[]);
    assert_eq!(server.post("h", &[], "{}").await.status, StatusCode::OK);
    assert_eq!(server.get("/health").await.status, StatusCode::OK);
}

#[tokio::test]
async fn retryable_failures_are_retried_with_the_pipeline_retry() {
    let target = HttpTarget::start().await;
    let server = start(&format!(
        r#"{{"h": {{"module": "http_webhook", "module-config": {{"url": "{}"}},
              "retry": {{"enabled": true, "max_attempts": 3, "initial_delay": 0.05}}}}}}"#,
        target.url("/x")
    ))
    .await;
    target.respond(StatusCode::SERVICE_UNAVAILABLE, &[]);
    let r = server.post("h", &[], "{\"n\": 1}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(target.received().len(), 3, "three attempts");

    target.respond(StatusCode::BAD_REQUEST, &[]);
    let r = server.post("h", &[], "{\"n\": 2}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(target.received().len(), 4, "a 400 is not retried");
}

#[tokio::test]
async fn a_target_that_is_down_gives_503_and_recovers() {
    let port = free_port();
    let server = start(&webhook(&format!("http://127.0.0.1:{port}/x"), "")).await;
    let r = server.post("h", &[], "{\"down\": true}").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(
        server.get("/health").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let target = HttpTarget::start_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let r = server.post("h", &[], "{\"up\": true}").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(target.received().len(), 1);
    assert_eq!(target.received()[0].body, "{\"up\": true}".as_bytes());
}

#[tokio::test]
async fn a_slow_target_fails_at_the_timeout_instead_of_hanging() {
    let target = HttpTarget::start().await;
    target.delay(Duration::from_secs(5));
    let server = start(&webhook(&target.url("/slow"), r#", "timeout": 0.3"#)).await;
    let started = Instant::now();
    let r = server.post("h", &[], "{}").await;
    let took = started.elapsed();
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[tokio::test]
async fn bad_configs_name_the_key() {
    for (extra, key) in [
        (r#""url": "ftp://x/y""#, "url"),
        (r#""url": "http://x/y", "method": "GET""#, "method"),
        (r#""url": "http://x/y", "timeout": 0"#, "timeout"),
        (
            r#""url": "http://x/y", "headers": {"Host": "a"}"#,
            "headers.Host",
        ),
        (
            r#""url": "http://x/y", "headers": {"bad name": "a"}"#,
            "headers.bad name",
        ),
        (r#""method": "POST""#, "url"),
    ] {
        let mut registry = registry_with_recorder();
        webhook_http::register(&mut registry);
        let err = TestServer::builder(&format!(
            r#"{{"h": {{"module": "http_webhook", "module-config": {{{extra}}}}}}}"#
        ))
        .registry(registry)
        .config_error()
        .await;
        assert!(err.contains("webhooks.json: h.module-config"), "{err}");
        assert!(err.contains(key), "{extra}: {err}");
    }
}

/// How a [`scripted_target`] answers.
#[derive(Clone, Copy)]
struct Script {
    /// Close a connection that has been idle this long without a word, as servers do when
    /// their idle timeout expires.
    idle_close: Option<Duration>,
    /// The whole answer to every request.
    answer: &'static [u8],
    /// Close the connection after each answer.
    close_after_answer: bool,
}

/// What a [`scripted_target`] saw: the head of every request it answered, and how many
/// connections it accepted.
#[derive(Clone, Default)]
struct Seen {
    heads: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    connections: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Seen {
    fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A raw HTTP/1.1 target on loopback that reads whole requests and answers as `script` says.
async fn scripted_target(script: Script) -> (std::net::SocketAddr, Seen) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let recorder = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            recorder
                .connections
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let recorder = recorder.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let read = match script.idle_close {
                        Some(idle) if request.is_empty() => {
                            match tokio::time::timeout(idle, socket.read(&mut buf)).await {
                                Ok(read) => read,
                                Err(_) => return, // idle: close
                            }
                        }
                        _ => socket.read(&mut buf).await,
                    };
                    let n = read.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request).into_owned();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if request.len() < end + 4 + length {
                        continue;
                    }
                    recorder.heads.lock().unwrap().push(text[..end].to_owned());
                    request.clear();
                    if socket.write_all(script.answer).await.is_err() || script.close_after_answer {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

const OK_ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// Post `count` small webhooks to `h` one after the other; each must be answered 200.
async fn post_in_turn(server: &TestServer, count: usize) {
    for i in 0..count {
        let r = server.post("h", &[], format!(r#"{{"n": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "webhook {i}: {}", r.text());
    }
}

#[tokio::test]
async fn a_kept_alive_connection_the_target_closed_is_replaced_without_an_error() {
    let (addr, seen) = scripted_target(Script {
        idle_close: Some(Duration::from_millis(20)),
        answer: OK_ANSWER,
        close_after_answer: false,
    })
    .await;
    let server = start(&webhook(&format!("http://{addr}/in"), "")).await;
    for i in 0..6 {
        let r = server.post("h", &[], format!(r#"{{"n": {i}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK, "webhook {i}: {}", r.text());
        // sometimes the close has arrived before the next webhook, sometimes not yet
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
    }
    let heads = seen.heads();
    assert_eq!(heads.len(), 6, "each webhook reached the target once");
    for head in &heads {
        assert!(head.starts_with("POST /in HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("\r\nhost: {addr}")),
            "{head}"
        );
    }
}

#[tokio::test]
async fn a_target_that_closes_after_each_answer_gets_a_new_connection_each_time() {
    let (addr, seen) = scripted_target(Script {
        idle_close: None,
        answer: b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok",
        close_after_answer: true,
    })
    .await;
    let server = start(&webhook(&format!("http://{addr}/in"), "")).await;
    post_in_turn(&server, 5).await;
    assert_eq!(seen.heads().len(), 5);
    assert_eq!(seen.connections(), 5, "a closed connection is never reused");
}

#[tokio::test]
async fn an_answer_longer_than_what_is_read_is_a_delivery_and_leaves_no_stale_bytes() {
    // 100 KiB of body: more than the 64 KiB read, so the rest stays unread on the connection
    let mut answer = b"HTTP/1.1 200 OK\r\ncontent-length: 102400\r\n\r\n".to_vec();
    answer.resize(answer.len() + 102_400, b'x');
    let answer = answer.leak();
    let (addr, seen) = scripted_target(Script {
        idle_close: None,
        answer,
        close_after_answer: false,
    })
    .await;
    let server = start(&webhook(&format!("http://{addr}/in"), "")).await;
    post_in_turn(&server, 3).await;
    // the client may drain the rest and reuse the connection, or close it: either way
    // each answer is read from its own start (no 200 above came from stale bytes)
    assert_eq!(seen.heads().len(), 3);
    assert!((1..=3).contains(&seen.connections()));
}

#[tokio::test]
async fn concurrent_webhooks_reuse_pooled_connections() {
    let (addr, seen) = scripted_target(Script {
        idle_close: None,
        answer: OK_ANSWER,
        close_after_answer: false,
    })
    .await;
    let server = start(&webhook(&format!("http://{addr}/in"), "")).await;
    for round in 0..4 {
        let mut posts = tokio::task::JoinSet::new();
        for i in 0..8 {
            let client = server.client();
            posts.spawn(async move {
                client
                    .post("h", &[], format!(r#"{{"round": {round}, "n": {i}}}"#))
                    .await
            });
        }
        while let Some(r) = posts.join_next().await {
            let r = r.unwrap();
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        }
    }
    assert_eq!(seen.heads().len(), 32);
    // 8 connections suffice; one the pool has not taken back yet when the next round
    // starts may make the client open another, but most webhooks travel on reused ones
    assert!(
        (1..=16).contains(&seen.connections()),
        "32 webhooks, 8 at a time, over {} connections",
        seen.connections()
    );
}
