//! The websocket destination through the real HTTP server against a Python `websockets`
//! server that records every frame; the server is killed and restarted mid-test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use webhook_testkit::TestServer;
use webhook_testkit::interop::{OwnServer, free_port, python, scripts_dir};
use webhook_testkit::recorder::registry_with_recorder;

pub(crate) struct Peer {
    pub(crate) server: OwnServer,
    out: PathBuf,
    mode: &'static str,
    _dir: tempfile::TempDir,
}

impl Peer {
    pub(crate) fn start(mode: &'static str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("frames.jsonl");
        let server = Self::spawn(free_port(), &out, mode);
        Self {
            server,
            out,
            mode,
            _dir: dir,
        }
    }

    fn spawn(port: u16, out: &Path, mode: &str) -> OwnServer {
        OwnServer::start(
            python().to_str().unwrap(),
            &[
                scripts_dir().join("ws_server.py").to_str().unwrap(),
                &port.to_string(),
                out.to_str().unwrap(),
                mode,
            ],
            port,
        )
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/events", self.server.port)
    }

    fn restart(&mut self) {
        self.server = Self::spawn(self.server.port, &self.out, self.mode);
    }

    /// Every frame received so far: the complete lines (a large frame's line may be
    /// half-written when we read).
    fn frames(&self) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Wait until at least `count` frames arrived (frames without an answer may still be
    /// on their way when the sender got its 200).
    pub(crate) async fn wait_for(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let frames = self.frames();
            if frames.len() >= count || Instant::now() > deadline {
                return frames;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub(crate) fn data(frame: &serde_json::Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(frame["data"].as_str().unwrap())
        .unwrap()
}

async fn start(webhooks: &str) -> TestServer {
    let mut registry = registry_with_recorder();
    webhook_websocket::register(&mut registry);
    TestServer::builder(webhooks)
        .registry(registry)
        .env("WS_TOKEN", "t0k3n")
        .start()
        .await
}

async fn wait_connected(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.get("/health").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn frames_arrive_once_in_order_over_one_connection() {
    let peer = Peer::start("silent");
    let server = start(&format!(
        r#"{{"j": {{"module": "websocket", "module-config": {{"url": "{}", "include_headers": true,
                "headers": {{"Authorization": "Bearer {{$WS_TOKEN}}"}}}}}},
            "r": {{"data_type": "blob", "module": "websocket", "module-config": {{"url": "{}", "format": "raw"}}}}}}"#,
        peer.url(),
        peer.url()
    ))
    .await;
    wait_connected(&server).await;

    let mut bodies = Vec::new();
    for i in 0..50 {
        let body = format!("{{\"n\": {i},\n \"text\": \"caf\u{e9}\"}}");
        let r = server
            .post("j", &[("X-GitHub-Event", "push")], body.clone())
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        bodies.push(body);
    }
    let binary: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let r = server.post("r", &[], binary.clone()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    let frames = peer.wait_for(51).await;
    assert_eq!(frames.len(), 51, "each frame exactly once");
    let json_frames: Vec<&serde_json::Value> =
        frames.iter().filter(|f| f["type"] == "text").collect();
    assert_eq!(json_frames.len(), 50);
    for (frame, body) in json_frames.iter().zip(&bodies) {
        let text = String::from_utf8(data(frame)).unwrap();
        // The body is embedded byte for byte, not re-serialised.
        assert!(
            text.starts_with(&format!("{{\"payload\":{body},\"headers\":")),
            "{text}"
        );
        let envelope: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(envelope["headers"]["x-github-event"], "push");
    }
    let connections: std::collections::BTreeSet<u64> = json_frames
        .iter()
        .map(|f| f["connection"].as_u64().unwrap())
        .collect();
    assert_eq!(connections.len(), 1, "one kept-open connection");
    let handshake = json_frames[0]["headers"].as_object().unwrap();
    assert_eq!(handshake["authorization"], "Bearer t0k3n");
    let raw = frames.iter().find(|f| f["type"] == "binary").unwrap();
    assert_eq!(data(raw), binary);
}

#[tokio::test]
async fn a_restarted_peer_gets_everything_answered_200() {
    for mode in ["reply", "silent"] {
        let mut peer = Peer::start(mode);
        let wait = mode == "reply";
        let server = start(&format!(
            r#"{{"w": {{"module": "websocket", "module-config": {{"url": "{}", "wait_for_response": {wait}, "timeout": 2}}}}}}"#,
            peer.url()
        ))
        .await;
        wait_connected(&server).await;
        let mut accepted = Vec::new();
        for i in 0..10 {
            let body = format!("{{\"before\": {i}}}");
            assert_eq!(
                server.post("w", &[], body.clone()).await.status,
                StatusCode::OK
            );
            accepted.push(body);
        }
        if !wait {
            // Without answers a frame counts once written; let the peer read them first.
            peer.wait_for(10).await;
        }
        peer.server.stop();
        let mut refused = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while refused < 3 {
            assert!(
                Instant::now() < deadline,
                "{mode}: the outage was not noticed"
            );
            let body = format!("{{\"during\": {refused}}}");
            let r = server.post("w", &[], body.clone()).await;
            if r.status == StatusCode::OK {
                accepted.push(body);
            } else {
                assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
                refused += 1;
            }
        }
        // (health results are cached for 5 s)
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.get("/health").await.status != StatusCode::SERVICE_UNAVAILABLE {
            assert!(
                Instant::now() < deadline,
                "{mode}: /health never said unhealthy"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        peer.restart();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut after = 0;
        while after < 10 {
            assert!(
                Instant::now() < deadline,
                "{mode}: no reconnect within 15 s"
            );
            let body = format!("{{\"after\": {after}}}");
            let r = server.post("w", &[], body.clone()).await;
            if r.status == StatusCode::OK {
                accepted.push(body);
                after += 1;
            } else {
                assert!(
                    r.status == StatusCode::SERVICE_UNAVAILABLE
                        || r.status == StatusCode::BAD_GATEWAY,
                    "{}",
                    r.status
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let frames = peer.wait_for(accepted.len()).await;
        let received: Vec<String> = frames
            .iter()
            .map(|f| {
                let envelope: serde_json::Value = serde_json::from_slice(&data(f)).unwrap();
                envelope["payload"].to_string()
            })
            .collect();
        for body in &accepted {
            let compact = serde_json::from_str::<serde_json::Value>(body)
                .unwrap()
                .to_string();
            assert!(
                received.contains(&compact),
                "{mode}: {body} was answered 200 but never arrived: {received:?}"
            );
        }
        let last_connection = frames.last().unwrap()["connection"].as_u64().unwrap();
        let first_after_restart = frames
            .iter()
            .position(|f| String::from_utf8(data(f)).unwrap().contains("after"))
            .unwrap();
        assert!(
            frames[first_after_restart..]
                .iter()
                .all(|f| f["connection"].as_u64() == Some(last_connection)),
            "{mode}: delivery resumed over one new connection"
        );
        assert_eq!(received.len(), accepted.len(), "{mode}: no duplicates");
    }
}

#[tokio::test]
async fn a_peer_that_never_answers_fails_at_the_timeout() {
    let peer = Peer::start("silent");
    let server = start(&format!(
        r#"{{"w": {{"module": "websocket", "module-config": {{"url": "{}", "wait_for_response": true, "timeout": 0.3}}}}}}"#,
        peer.url()
    ))
    .await;
    wait_connected(&server).await;
    let started = Instant::now();
    let r = server.post("w", &[], "{}").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_peer_that_is_down_gives_503() {
    let port = free_port();
    let server = start(&format!(
        r#"{{"w": {{"module": "websocket", "module-config": {{"url": "ws://127.0.0.1:{port}/x"}}}}}}"#
    ))
    .await;
    let r = server.post("w", &[], "{}").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
}

#[tokio::test]
async fn bad_configs_name_the_key() {
    for (config, key) in [
        (r#""url": "http://x/y""#, "url"),
        (r#""url": "ws://""#, "url"),
        (r#""url": "ws://x", "timeout": -1"#, "timeout"),
        (r#""url": "ws://x", "headers": {"a b": "c"}"#, "headers.a b"),
    ] {
        let mut registry = registry_with_recorder();
        webhook_websocket::register(&mut registry);
        let err = TestServer::builder(&format!(
            r#"{{"w": {{"module": "websocket", "module-config": {{{config}}}}}}}"#
        ))
        .registry(registry)
        .config_error()
        .await;
        assert!(
            err.contains(&format!("w.module-config.{key}")),
            "{config}: {err}"
        );
    }
}

/// The SSRF guard (issue 18): with `deny_private_targets` a literal private URL is a
/// config error and a host name resolving to loopback is refused when connecting (503,
/// no frame sent); `allowed_hosts` lets that name through.
#[tokio::test]
async fn deny_private_targets_refuses_private_peers_unless_allowed() {
    let peer = Peer::start("silent");
    let name = webhook_testkit::interop::loopback_host_name();
    let by_name = format!("ws://{name}:{}/events", peer.server.port);
    let hook = |url: &str, guard: &str| {
        format!(
            r#"{{"w": {{"module": "websocket", "module-config": {{"url": "{url}", "timeout": 2{guard}}}}}}}"#
        )
    };
    let deny = r#", "deny_private_targets": true"#;
    let mut registry = registry_with_recorder();
    webhook_websocket::register(&mut registry);
    let err = TestServer::builder(&hook(&peer.url(), deny))
        .registry(registry)
        .config_error()
        .await;
    assert!(err.contains("deny_private_targets"), "{err}");

    let server = start(&hook(&by_name, deny)).await;
    let r = server.post("w", &[], r#"{"n": 1}"#).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(peer.frames().is_empty(), "a frame reached the private peer");

    let allowed = format!(r#", "allowed_hosts": ["{name}"]"#);
    let server = start(&hook(&by_name, &allowed)).await;
    wait_connected(&server).await;
    let r = server.post("w", &[], r#"{"n": 2}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(peer.wait_for(1).await.len(), 1);
}
