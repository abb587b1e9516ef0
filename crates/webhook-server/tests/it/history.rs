//! The request history (issue 21) through the real binary: every request to a known
//! webhook is listed with its reason (bad signature, malformed JSON, filtered), filters
//! work, headers are masked (no secret or signature value in any answer), bodies are kept
//! only where the webhook opts in, attempts and dead letters show per destination, the
//! admin API refuses a wrong token and cross-site calls and is 404 without `--ops-token`,
//! retention by count and age, and the history survives a restart while a SIGKILL loses
//! no acknowledged webhook. The file is read back through the API and, for the masking,
//! with Python's sqlite3 module (an independent client).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use sha2::Sha256;
use webhook_testkit::TestClient;
use webhook_testkit::interop::free_port;
use webhook_testkit::target::HttpTarget;

use crate::spool_crash::start_server;

const TOKEN: &str = "history-ops-token-0123456789abcdef";
const SECRET: &str = "history-hmac-s3cret-value";

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

async fn admin(client: &TestClient, path: &str) -> (StatusCode, serde_json::Value) {
    let auth = bearer();
    let r = client
        .request(
            "GET",
            path,
            &[("authorization", auth.as_str())],
            Bytes::new(),
        )
        .await;
    let text = r.text();
    assert!(!text.contains(SECRET), "{path} answered the secret: {text}");
    (
        r.status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// `/admin/requests?{query}` until it lists `count` requests (the writer flushes every
/// 100 ms).
async fn list_until(client: &TestClient, query: &str, count: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = admin(client, &format!("/admin/requests?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let rows = body["requests"].as_array().cloned().unwrap_or_default();
        if rows.len() == count || Instant::now() > deadline {
            assert_eq!(rows.len(), count, "{query}: {body}");
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn write_webhooks(dir: &Path, target: &str, dead: SocketAddr) -> PathBuf {
    let path = dir.join("webhooks.json");
    std::fs::write(
        &path,
        format!(
            r#"{{
  "signed": {{"module": "http_webhook", "ack": "persisted",
              "module-config": {{"url": "{target}", "timeout": 5}},
              "hmac": {{"secret": "{SECRET}", "header": "X-Hub-Signature-256"}}}},
  "kept": {{"module": "http_webhook", "ack": "persisted",
            "module-config": {{"url": "{target}", "timeout": 5}},
            "history": {{"bodies": true, "max_body_bytes": 16}},
            "credential_cleanup": {{"enabled": true}},
            "filter": {{"body": {{"action": {{"$neq": "ignored"}}}}}}}},
  "dead": {{"module": "http_webhook", "ack": "persisted",
            "module-config": {{"url": "http://{dead}/gone", "timeout": 1}},
            "retry": {{"max_attempts": 2, "initial_delay": 0.05, "max_delay": 0.05}}}}
}}"#
        ),
    )
    .unwrap();
    path
}

/// A server process, killed when the test ends however it ends (a failed assertion must
/// not leave it running).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, webhooks: &Path, args: &[&str]) -> (Running, SocketAddr) {
    let (child, addr) = start_server(dir, webhooks, args);
    (Running(child), addr)
}

/// SIGTERM and wait: a clean stop (the history is flushed).
fn stop(server: &mut Running) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let _ = server.0.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_listed_with_its_reason_masked_and_with_its_attempts() {
    let target = HttpTarget::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let webhooks = write_webhooks(dir.path(), &target.url("/in"), dead);
    let (mut child, addr) = start(dir.path(), &webhooks, &["--ops-token", TOKEN]);
    let client = TestClient::new(addr);

    let good = r#"{"action":"opened","n":1}"#;
    let signature = sign(good);
    let r = client
        .post(
            "signed",
            &[
                ("X-Hub-Signature-256", &signature),
                ("X-GitHub-Delivery", "gh-delivery-1"),
                ("content-type", "application/json"),
            ],
            good,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let good_id = r.header("x-request-id").unwrap().to_owned();
    let wrong = sign("something else");
    let r = client
        .post("signed", &[("X-Hub-Signature-256", &wrong)], good)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = client.post("kept", &[], "{not json").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let long = r#"{"action":"opened","padding":"0123456789"}"#;
    let r = client.post("kept", &[], long).await;
    assert_eq!(r.status, StatusCode::OK);
    let kept_id = r.header("x-request-id").unwrap().to_owned();
    let r = client.post("kept", &[], r#"{"action":"ignored"}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = client.post("dead", &[], r#"{"n":2}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    let dead_id = r.header("x-request-id").unwrap().to_owned();
    client.post("no-such-webhook", &[], "{}").await;

    // all six, newest first; the unknown webhook id is not history
    let all = list_until(&client, "", 6).await;
    assert_eq!(all[0]["request_id"], dead_id);
    let reasons: Vec<&str> = all
        .iter()
        .map(|r| r["reason"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        reasons,
        [
            "",
            "filtered",
            "",
            "malformed_json",
            "signature_mismatch",
            ""
        ]
    );
    let outcomes: Vec<&str> = all.iter().map(|r| r["outcome"].as_str().unwrap()).collect();
    assert_eq!(
        outcomes,
        [
            "accepted", "filtered", "accepted", "rejected", "rejected", "accepted"
        ]
    );
    assert_eq!(all[4]["status"], 401);
    assert_eq!(all[4]["client_ip"], "127.0.0.1");

    // filters
    assert_eq!(list_until(&client, "webhook=signed", 2).await.len(), 2);
    let rejected = list_until(&client, "status=4xx", 2).await;
    assert!(
        rejected
            .iter()
            .all(|r| r["status"].as_u64().unwrap() / 100 == 4)
    );
    let by_reason = list_until(&client, "reason=signature_mismatch", 1).await;
    assert_eq!(by_reason[0]["webhook"], "signed");
    assert_eq!(
        list_until(&client, "outcome=filtered", 1).await[0]["webhook"],
        "kept"
    );
    assert_eq!(
        list_until(&client, &format!("request_id={good_id}"), 1).await[0]["delivery_id"],
        "gh-delivery-1"
    );
    assert_eq!(
        list_until(&client, "delivery_id=gh-delivery-1", 1).await[0]["request_id"],
        good_id
    );
    assert_eq!(
        list_until(&client, "q=gh-delivery", 1).await[0]["request_id"],
        good_id
    );
    let future = "since=2999-01-01T00:00:00Z";
    assert_eq!(list_until(&client, future, 0).await.len(), 0);
    assert_eq!(
        list_until(&client, "until=2999-01-01T00:00:00Z&limit=2", 2)
            .await
            .len(),
        2
    );
    let page = list_until(&client, "limit=4", 4).await;
    let before = page[3]["seq"].as_i64().unwrap();
    assert_eq!(
        list_until(&client, &format!("before={before}"), 2)
            .await
            .len(),
        2
    );
    // the signature is masked: neither listed nor findable
    assert_eq!(
        list_until(&client, &format!("q={}", &signature[7..20]), 0)
            .await
            .len(),
        0
    );
    let (status, body) = admin(&client, "/admin/requests?status=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["detail"].as_str().unwrap().contains("status"),
        "{body}"
    );

    // one request: masked headers, no body unless the webhook opts in, attempts
    let (status, one) = admin(&client, &format!("/admin/requests/{good_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["headers"]["x-hub-signature-256"], "***");
    assert_eq!(one["headers"]["x-github-delivery"], "gh-delivery-1");
    assert!(!one.to_string().contains(&signature[7..]), "{one}");
    assert_eq!(one["body_kept"], false);
    assert!(one.get("body").is_none());
    let deadline = Instant::now() + Duration::from_secs(10);
    let one = loop {
        let (_, one) = admin(&client, &format!("/admin/requests/{good_id}")).await;
        if one["destinations"][0]["state"] == "delivered" || Instant::now() > deadline {
            break one;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(one["destinations"][0]["state"], "delivered", "{one}");
    assert_eq!(one["attempts"][0]["module"], "http_webhook");
    assert!(target.received().iter().any(|r| r.body == good.as_bytes()));

    // credential_cleanup masks the kept body too
    let r = client.post("kept", &[], r#"{"password":"hunter2"}"#).await;
    let masked_id = r.header("x-request-id").unwrap().to_owned();
    list_until(&client, "webhook=kept", 4).await;
    let (_, masked) = admin(&client, &format!("/admin/requests/{masked_id}")).await;
    assert_eq!(masked["body"], r#"{"password":"***"#, "{masked}");

    let (_, kept) = admin(&client, &format!("/admin/requests/{kept_id}")).await;
    assert_eq!(kept["body_kept"], true);
    assert_eq!(kept["body"], &long[..16]);
    assert_eq!(kept["body_truncated"], true);
    assert_eq!(kept["body_size"], long.len());

    // the dead destination: two failed attempts, then a dead letter
    let deadline = Instant::now() + Duration::from_secs(15);
    let dead = loop {
        let (_, dead) = admin(&client, &format!("/admin/requests/{dead_id}")).await;
        if dead["destinations"][0]["state"] == "dead_letter" || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead["destinations"][0]["state"], "dead_letter", "{dead}");
    let attempts = dead["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{dead}");
    assert_eq!(attempts[0]["state"], "retrying");
    assert!(attempts[0]["next_retry"].is_string());
    assert_eq!(attempts[1]["state"], "given_up");
    assert_eq!(
        attempts[1]["error_class"], "unavailable",
        "connection refused"
    );
    assert!(attempts[1]["error"].as_str().unwrap().len() > 5);

    // counts
    let (status, summary) = admin(&client, "/admin/summary").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(summary["webhooks"]["signed"]["received"], 2);
    assert_eq!(
        summary["webhooks"]["signed"]["reasons"]["signature_mismatch"],
        1
    );
    assert_eq!(summary["webhooks"]["kept"]["outcomes"]["filtered"], 1);

    // refused: no token, a wrong one, a cross-site call
    let r = client.get("/admin/requests").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = client
        .request(
            "GET",
            "/admin/requests",
            &[("authorization", "Bearer wrong-token")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let auth = bearer();
    let r = client
        .request(
            "GET",
            "/admin/requests",
            &[
                ("authorization", auth.as_str()),
                ("sec-fetch-site", "cross-site"),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // the file itself, read with Python's sqlite3: no secret, no signature value anywhere
    stop(&mut child);
    let file = dir.path().join("history.sqlite");
    let dump = std::process::Command::new(webhook_testkit::interop::python())
        // request ids are kept as their 16 bytes: shown as UUIDs
        .args(["-c", "import sqlite3,sys,uuid; db=sqlite3.connect(sys.argv[1]); show=lambda v: str(uuid.UUID(bytes=v)) if isinstance(v, bytes) and len(v) == 16 else v; print('\\n'.join(str(tuple(map(show, r))) for t in ('requests','attempts') for r in db.execute('select * from '+t)))"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains(&good_id), "{dump}");
    assert!(
        !dump.contains(SECRET) && !dump.contains(&signature[7..]),
        "{dump}"
    );
}

#[tokio::test]
async fn the_history_api_is_404_without_an_ops_token() {
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(&webhooks, r#"{"w": {"module": "log", "ack": "delivered"}}"#).unwrap();
    let (mut child, addr) = start(dir.path(), &webhooks, &["--history", "on"]);
    let client = TestClient::new(addr);
    assert_eq!(client.post("w", &[], "{}").await.status, StatusCode::OK);
    for path in ["/admin/requests", "/admin/summary", "/admin/requests/x"] {
        assert_eq!(
            client.get(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    stop(&mut child);
    // on, so recorded (for a token set later), but never served without one
    assert!(dir.path().join("history.sqlite").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_count_and_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(&webhooks, r#"{"w": {"module": "log", "ack": "delivered"}}"#).unwrap();
    let (mut child, addr) = start(
        dir.path(),
        &webhooks,
        &["--ops-token", TOKEN, "--history-max-entries", "5"],
    );
    let client = TestClient::new(addr);
    let mut ids = Vec::new();
    for n in 0..8 {
        let r = client.post("w", &[], format!(r#"{{"n":{n}}}"#)).await;
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    // retention runs every 5 s
    let rows = list_until(&client, "", 5).await;
    let listed: Vec<&str> = rows
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    let newest: Vec<&str> = ids.iter().rev().take(5).map(String::as_str).collect();
    assert_eq!(listed, newest);
    stop(&mut child);

    let (mut child, addr) = start(
        dir.path(),
        &webhooks,
        &["--ops-token", TOKEN, "--history-max-age", "2"],
    );
    let client = TestClient::new(addr);
    // the five kept from before age out (older than 2 s); the new one stays
    tokio::time::sleep(Duration::from_secs(3)).await;
    client.post("w", &[], "{}").await;
    let rows = list_until(&client, "", 1).await;
    assert_ne!(rows[0]["request_id"], ids[7]);
    stop(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_restart_and_a_sigkill_loses_no_webhook() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let target_addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(
        &webhooks,
        format!(
            r#"{{"orders": {{"module": "http_webhook", "ack": "persisted",
                 "module-config": {{"url": "http://{target_addr}/orders", "timeout": 5}},
                 "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.2}}}}}}"#
        ),
    )
    .unwrap();
    let (mut child, addr) = start(dir.path(), &webhooks, &["--ops-token", TOKEN]);
    let client = TestClient::new(addr);
    let mut acknowledged = Vec::new();
    for n in 0..40 {
        let r = client.post("orders", &[], format!(r#"{{"n":{n}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK);
        acknowledged.push(r.header("x-request-id").unwrap().to_owned());
    }
    // the first 40 are written (listed); the last ten may be lost from the history with
    // the kill, never from the spool
    list_until(&client, "limit=1000", 40).await;
    for n in 40..50 {
        let r = client.post("orders", &[], format!(r#"{{"n":{n}}}"#)).await;
        acknowledged.push(r.header("x-request-id").unwrap().to_owned());
    }
    child.0.kill().unwrap(); // SIGKILL
    let _ = child.0.wait();

    let target = HttpTarget::start_on(target_addr).await;
    let (mut child, addr) = start(dir.path(), &webhooks, &["--ops-token", TOKEN]);
    let client = TestClient::new(addr);
    let deadline = Instant::now() + Duration::from_secs(30);
    let arrived = loop {
        let arrived: std::collections::HashSet<String> = target
            .received()
            .iter()
            .filter_map(|r| {
                r.headers
                    .get("x-webhook-request-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .collect();
        if acknowledged.iter().all(|id| arrived.contains(id)) || Instant::now() > deadline {
            break arrived;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !arrived.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "lost {} of {}: {lost:?}",
        lost.len(),
        acknowledged.len()
    );
    // the history from before the kill is still there
    let (_, body) = admin(&client, "/admin/requests?limit=1000").await;
    let kept: Vec<&str> = body["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    for id in &acknowledged[..40] {
        assert!(kept.contains(&id.as_str()), "{id} is gone from the history");
    }
    stop(&mut child);
}
