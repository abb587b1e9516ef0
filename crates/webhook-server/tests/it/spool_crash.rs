//! The crash test: under concurrent load, with the destination down, the server process is
//! killed with SIGKILL, started again on the same spool, then the destination comes up.
//! Every webhook that was answered 2xx must arrive (unique request ids; duplicates are
//! allowed by at-least-once and reported; lost must be 0).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use webhook_testkit::interop::free_port;
use webhook_testkit::target::HttpTarget;

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_webhook-server");

/// Start the binary in `dir` (its spool is `dir/spool`) with `args` and wait for its
/// address.
pub(crate) fn start_server(dir: &Path, webhooks: &Path, args: &[&str]) -> (Child, SocketAddr) {
    start_server_as(Command::new(BIN), dir, webhooks, args)
}

/// [`start_server`] run by `command` (the binary itself, or a wrapper such as `prlimit`
/// followed by [`BIN`]).
pub(crate) fn start_server_as(
    mut command: Command,
    dir: &Path,
    webhooks: &Path,
    args: &[&str],
) -> (Child, SocketAddr) {
    let mut child = command
        .args(["--log-format", "json"])
        .args(args)
        .env("WEBHOOKS_CONFIG_FILE", webhooks)
        .env_remove("CONNECTIONS_CONFIG_FILE")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("RUST_LOG", "info,webhook::request=off")
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                && entry["message"] == "listening"
                && let Some(addr) = entry["address"].as_str().and_then(|a| a.parse().ok())
            {
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the server did not report its address");
    (child, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_load_loses_no_acknowledged_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let target_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(
        &webhooks,
        format!(
            r#"{{"orders": {{"module": "http_webhook", "ack": "persisted",
                 "module-config": {{"url": "http://{target_addr}/orders", "timeout": 5}},
                 "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.5}}}}}}"#
        ),
    )
    .unwrap();
    let (mut server, addr) = start_server(dir.path(), &webhooks, &[]);

    // 16 concurrent senders until the kill.
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let refused = Arc::new(Mutex::new(0usize));
    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for task in 0..16 {
        let (client, acknowledged, refused, stop) = (
            client.clone(),
            Arc::clone(&acknowledged),
            Arc::clone(&refused),
            Arc::clone(&stop),
        );
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let request = http::Request::post(format!("http://{addr}/webhook/orders"))
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(format!(
                        r#"{{"task": {task}, "n": {n}}}"#
                    ))))
                    .unwrap();
                let Ok(response) = client.request(request).await else {
                    // the server is gone: nothing was acknowledged for this one
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                };
                let status = response.status();
                let id = response
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if response.into_body().collect().await.is_err() {
                    continue;
                }
                match (status.is_success(), id) {
                    (true, Some(id)) => acknowledged.lock().unwrap().push(id),
                    _ => *refused.lock().unwrap() += 1,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().unwrap(); // SIGKILL, mid-load
    server.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let acknowledged: Vec<String> = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= 100,
        "too little load to be a test: {} acknowledged",
        acknowledged.len()
    );
    let expected: HashSet<&String> = acknowledged.iter().collect();
    assert_eq!(expected.len(), acknowledged.len(), "request ids are unique");

    // Restart on the same spool; then the destination comes up.
    let (mut server, _addr) = start_server(dir.path(), &webhooks, &[]);
    let target = HttpTarget::start_on(target_addr).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    let ids = || -> Vec<String> {
        target
            .received()
            .iter()
            .filter_map(|r| {
                r.headers
                    .get("x-webhook-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .collect()
    };
    loop {
        let received: HashSet<String> = ids().into_iter().collect();
        if expected.iter().all(|id| received.contains(*id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = ids();
    let unique: HashSet<&String> = all.iter().collect();
    let lost: Vec<&&String> = expected
        .iter()
        .filter(|id| !unique.contains(**id))
        .collect();
    let duplicates = all.len() - unique.len();
    println!(
        "crash test: acknowledged {}, refused {}, delivered {} ({} unique, {duplicates} duplicates), lost {}",
        acknowledged.len(),
        *refused.lock().unwrap(),
        all.len(),
        unique.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "{} acknowledged webhooks lost", lost.len());
    // Bodies arrive intact.
    for r in target.received() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["task"].is_u64() && body["n"].is_u64(), "{body}");
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// `webhook-server dead-letters list|replay|delete` talk to a running server's admin API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    target.respond(http::StatusCode::UNPROCESSABLE_ENTITY, &[]);
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(
        &webhooks,
        format!(
            r#"{{"cli": {{"module": "http_webhook", "module-config": {{"url": "{}"}}}}}}"#,
            target.url("/cli")
        ),
    )
    .unwrap();
    let mut server = start_server(dir.path(), &webhooks, &["--ops-token", "cli-token"]);
    let addr = server.1;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let request = http::Request::post(format!("http://{addr}/webhook/cli"))
        .body(Full::new(Bytes::from_static(br#"{"via": "cli"}"#)))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();

    let cli = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["--ops-token", "cli-token", "--admin-url"])
            .arg(format!("http://{addr}"))
            .args(["dead-letters"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // The first dead letter `list` shows, polled for up to 10 s.
    let first_listed = async || {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (ok, out) = cli(&["list"]);
            assert!(ok, "{out}");
            let list: serde_json::Value = serde_json::from_str(&out).unwrap();
            if let Some(first) = list["dead_letters"].as_array().and_then(|l| l.first()) {
                return first.clone();
            }
            assert!(Instant::now() < deadline, "no dead letter listed: {out}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let listed = first_listed().await;
    assert_eq!(listed["request_id"], id.as_str());
    assert!(
        listed["error"].as_str().unwrap().contains("422"),
        "{listed}"
    );
    assert_eq!(target.received().len(), 1, "a 422 is not retried");

    target.respond(http::StatusCode::OK, &[]);
    let (ok, out) = cli(&["replay", listed["id"].as_str().unwrap()]);
    assert!(ok, "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while target.received().len() < 2 {
        assert!(Instant::now() < deadline, "the replay was not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let replayed = &target.received()[1];
    assert_eq!(replayed.body, &br#"{"via": "cli"}"#[..]);
    assert_eq!(replayed.headers["x-webhook-request-id"], id.as_str());
    let (ok, out) = cli(&["replay", listed["id"].as_str().unwrap()]);
    assert!(!ok, "a second replay of the same id must fail: {out}");

    // `delete` drops a dead letter without delivering it.
    target.respond(http::StatusCode::UNPROCESSABLE_ENTITY, &[]);
    let request = http::Request::post(format!("http://{addr}/webhook/cli"))
        .body(Full::new(Bytes::from_static(br#"{"via": "cli", "n": 2}"#)))
        .unwrap();
    assert_eq!(
        client.request(request).await.unwrap().status(),
        http::StatusCode::OK
    );
    let second = first_listed().await["id"].as_str().unwrap().to_owned();
    let (ok, out) = cli(&["delete", &second]);
    assert!(ok, "{out}");
    assert!(out.contains("deleted"), "{out}");
    let (ok, out) = cli(&["list"]);
    assert!(ok && !out.contains(&second), "{out}");
    let (ok, out) = cli(&["delete", &second]);
    assert!(!ok, "deleting twice must fail: {out}");
    assert_eq!(
        target.received().len(),
        3,
        "a deleted dead letter is not delivered"
    );
    // a wrong token is refused
    let out = Command::new(BIN)
        .args(["--ops-token", "wrong", "--admin-url"])
        .arg(format!("http://{addr}"))
        .args(["dead-letters", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let _ = server.0.kill();
    let _ = server.0.wait();
}

/// `--spool-sync` reaches the spool: `direct` writes whole 4 KiB blocks, `fdatasync` the
/// records alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spool_sync_flag_selects_how_groups_are_written() {
    for mode in ["direct", "fdatasync"] {
        let dir = tempfile::tempdir().unwrap();
        let webhooks = dir.path().join("webhooks.json");
        std::fs::write(&webhooks, r#"{"s": {"module": "log"}}"#).unwrap();
        let (mut child, addr) = start_server(dir.path(), &webhooks, &["--spool-sync", mode]);
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = http::Request::post(format!("http://{addr}/webhook/s"))
            .body(Full::new(Bytes::from_static(br#"{"small": true}"#)))
            .unwrap();
        assert_eq!(
            client.request(request).await.unwrap().status(),
            http::StatusCode::OK
        );
        let sizes: Vec<u64> = std::fs::read_dir(dir.path().join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect();
        assert_eq!(sizes.len(), 1, "{mode}: {sizes:?}");
        let size = sizes[0];
        assert!(size > 0, "{mode}: nothing written");
        if mode == "direct" {
            assert_eq!(size % 4096, 0, "direct writes whole blocks: {size}");
        } else {
            assert!(size < 4096, "buffered writes the record alone: {size}");
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
