//! `rate_limit` shared through Redis (issue 23): three gateway processes together allow
//! the configured total (one through its webhook's `redis_url`, two through the
//! server-wide `--shared-redis-url`), read back with redis-cli; with Redis stopped an
//! instance falls back to its own count, says so in its metrics, and goes back to the
//! shared count when Redis returns.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use webhook_testkit::TestClient;
use webhook_testkit::interop::{OwnServer, free_port, host_port, require_tcp, service_url, unique};

use crate::spool_crash::start_server;

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// Post `n` webhooks to `id`, spread round robin over `addrs`, all at once: the statuses
/// in order, with the `Retry-After` of each 429.
async fn spread(addrs: &[SocketAddr], id: &str, n: usize) -> Vec<(StatusCode, Option<u64>)> {
    let mut sends = Vec::new();
    for i in 0..n {
        let client = TestClient::new(addrs[i % addrs.len()]);
        let id = id.to_owned();
        sends.push(tokio::spawn(async move {
            let r = client.post(&id, &[], format!(r#"{{"n": {i}}}"#)).await;
            let retry_after = r.header("retry-after").and_then(|v| v.parse().ok());
            (r.status, retry_after)
        }));
    }
    let mut answers = Vec::new();
    for send in sends {
        answers.push(send.await.unwrap());
    }
    answers
}

#[tokio::test]
async fn three_instances_allow_the_configured_total_together() {
    let url = service_url("redis", "redis://127.0.0.1:6379/0");
    let (host, port) = host_port(&url);
    require_tcp("redis", &host, port);
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("rate-test");
    let limit = |redis_url: &str| {
        format!(
            r#"{{"shared-rl": {{"module": "log", "rate_limit": {{"max_requests": 25, "window_seconds": 60, "key_prefix": "{prefix}"{redis_url}}}}}}}"#
        )
    };
    let own = write(
        dir.path(),
        "own.json",
        &limit(&format!(r#", "redis_url": "{url}""#)),
    );
    let server_wide = write(dir.path(), "wide.json", &limit(""));
    // each in a directory (a spool) of its own
    let homes = [(); 3].map(|()| tempfile::tempdir().unwrap());
    let (mut a, a_addr) = start_server(homes[0].path(), &own, &[]);
    let shared = ["--shared-redis-url", url.as_str()];
    let (mut b, b_addr) = start_server(homes[1].path(), &server_wide, &shared);
    let (mut c, c_addr) = start_server(homes[2].path(), &server_wide, &shared);
    let addrs = [a_addr, b_addr, c_addr];
    let clients = addrs.map(TestClient::new);

    // 75 at once, 25 to each: alone, each instance would take all of its 25
    let answers = spread(&addrs, "shared-rl", 75).await;
    let accepted = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let limited: Vec<_> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::TOO_MANY_REQUESTS)
        .collect();
    assert_eq!(accepted, 25, "the three together: {answers:?}");
    assert_eq!(limited.len(), 50, "{answers:?}");
    assert!(
        limited
            .iter()
            .all(|(_, after)| after.is_some_and(|s| (1..=60).contains(&s))),
        "every 429 says when to come back: {limited:?}"
    );
    // the instances' own counts add up to the 25, none of them decided alone
    let mut by_instance = Vec::new();
    for client in &clients {
        let metrics = client.get("/metrics").await.text();
        assert!(
            !metrics.contains("webhook_rate_limit_fallback_total"),
            "{metrics}"
        );
        let accepted: f64 = metrics
            .lines()
            .find(|l| l.starts_with(r#"webhook_requests_accepted_total{webhook="shared-rl"}"#))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        by_instance.push(accepted);
    }
    assert_eq!(by_instance.iter().sum::<f64>(), 25.0, "{by_instance:?}");

    // Redis holds the window: one member per accepted request, expiring with the window
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-u", &url])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let key = format!("{prefix}:shared-rl");
    assert_eq!(cli(&["zcard", &key]), "25");
    let ttl: i64 = cli(&["pttl", &key]).parse().unwrap();
    assert!((1..=60_000).contains(&ttl), "pttl {ttl}");
    for server in [&mut a, &mut b, &mut c] {
        let _ = server.kill();
        let _ = server.wait();
    }
}

#[tokio::test]
async fn with_redis_down_an_instance_counts_alone_and_says_so() {
    let port = free_port();
    let port_text = port.to_string();
    let args = [
        "--port",
        port_text.as_str(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ];
    let mut redis = OwnServer::start("redis-server", &args, port);
    let url = format!("redis://127.0.0.1:{port}/0");
    let dir = tempfile::tempdir().unwrap();
    let prefix = unique("rate-fallback");
    let webhooks = write(
        dir.path(),
        "webhooks.json",
        &format!(
            r#"{{"fallback-rl": {{"module": "log", "rate_limit": {{"max_requests": 3, "window_seconds": 60, "key_prefix": "{prefix}"}}}}}}"#
        ),
    );
    let (mut server, addr) = start_server(dir.path(), &webhooks, &["--shared-redis-url", &url]);
    let client = TestClient::new(addr);
    let post = || async {
        tokio::time::timeout(
            Duration::from_secs(10),
            client.post("fallback-rl", &[], "{}"),
        )
        .await
        .expect("an answer within 10 s")
        .status
    };

    // shared: two of the three taken in Redis
    assert_eq!(post().await, StatusCode::OK);
    assert_eq!(post().await, StatusCode::OK);
    redis.stop();
    // Redis gone: this instance's own count (empty so far) allows three, then 429
    let alone = [post().await, post().await, post().await, post().await];
    assert_eq!(
        alone,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let metrics = client.get("/metrics").await.text();
    let fallbacks: f64 = metrics
        .lines()
        .find(|l| l.starts_with(r#"webhook_rate_limit_fallback_total{webhook="fallback-rl"}"#))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no fallback counted: {metrics}"));
    assert_eq!(fallbacks, 4.0, "{metrics}");

    // Redis back (empty: it kept nothing): this instance's own count is full, so the
    // first 200 is Redis deciding again
    let mut redis = OwnServer::start("redis-server", &args, port);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut statuses = Vec::new();
    while statuses.last() != Some(&StatusCode::OK) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        statuses.push(post().await);
    }
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::OK),
        "Redis counts again: {statuses:?}"
    );
    // (`--shared-redis-url` keeps `/stats` there too: the window is one key among others)
    let out = Command::new("redis-cli")
        .args(["-u", &url, "zcard", &format!("{prefix}:fallback-rl")])
        .output()
        .unwrap();
    let members: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert!(members >= 1, "the window is in Redis again: {members}");
    let _ = server.kill();
    let _ = server.wait();
    redis.stop();
}
