//! The dashboard (issue 21) through the real binary: a login with the ops token gives an
//! `HttpOnly; SameSite=Strict` session, every page has a strict Content-Security-Policy,
//! changing requests need the session's CSRF token, a wrong token and a cross-site login
//! are refused, `/ui` is 404 without `--ops-token`; `/admin/events` streams requests as
//! they are written; dead letters are replayed and deleted in bulk by filter. And the whole
//! dashboard in a real browser (tests/browser/dashboard.cjs: chromium + playwright-core).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::StatusCode;
use sha2::Sha256;
use webhook_testkit::TestClient;
use webhook_testkit::interop::free_port;

use crate::spool_crash::start_server;

const TOKEN: &str = "dashboard-ops-token-0123456789abcdef";
const SECRET: &str = "dashboard-hmac-s3cret-value";

fn write_webhooks(dir: &Path, dead: SocketAddr) -> PathBuf {
    let path = dir.join("webhooks.json");
    std::fs::write(
        &path,
        format!(
            r#"{{
  "signed": {{"module": "log", "ack": "persisted",
              "hmac": {{"secret": "{SECRET}", "header": "X-Hub-Signature-256"}},
              "history": {{"bodies": true}}}},
  "dead": {{"module": "http_webhook", "ack": "persisted",
            "module-config": {{"url": "http://{dead}/hook", "timeout": 1}},
            "retry": {{"max_attempts": 2, "initial_delay": 0.05, "max_delay": 0.05}},
            "history": {{"bodies": true}}}}
}}"#
        ),
    )
    .unwrap();
    path
}

/// A server process, killed when the test ends however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &Path, args: &[&str]) -> (Running, SocketAddr, SocketAddr) {
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let webhooks = write_webhooks(dir, dead);
    let (child, addr) = start_server(dir, &webhooks, args);
    (Running(child), addr, dead)
}

fn sign(body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn login(
    client: &TestClient,
    token: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, Option<String>, String) {
    let form = format!("token={token}");
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    headers.extend_from_slice(extra);
    let r = client
        .request("POST", "/ui/login", &headers, Bytes::from(form))
        .await;
    let cookie = r.header("set-cookie").map(str::to_owned);
    (r.status, cookie, r.text())
}

fn session_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_needs_the_token_a_session_and_its_csrf_token() {
    let dir = tempfile::tempdir().unwrap();

    // without --ops-token: no dashboard, no admin API
    let (server, addr, _) = start(dir.path(), &["--history", "on"]);
    let client = TestClient::new(addr);
    for path in ["/ui", "/ui/app.js", "/admin/events", "/admin/overview"] {
        let r = client.get(path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text());
    }
    let (status, cookie, _) = login(&client, TOKEN, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(cookie.is_none());
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, _) = start(dir.path(), &["--ops-token", TOKEN]);
    let client = TestClient::new(addr);

    // the login form, under a strict policy
    let r = client.get("/ui").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text().contains("name=\"token\""), "{}", r.text());
    let csp = r.header("content-security-policy").unwrap();
    assert!(
        csp.starts_with("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        client.get("/ui/app.js").await.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );

    // a wrong token, and a login posted from another site, are refused
    let (status, cookie, page) = login(&client, "wrong", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(cookie.is_none() && page.contains("Wrong token"), "{page}");
    let (status, cookie, _) = login(&client, TOKEN, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(cookie.is_none());

    // the token: a session cookie, HttpOnly and SameSite=Strict
    let (status, cookie, _) = login(&client, TOKEN, &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN));
    let session = session_of(&cookie);

    // the page carries the CSRF token, never the ops token
    let r = client
        .request("GET", "/ui", &[("cookie", &session)], Bytes::new())
        .await;
    let page = r.text();
    assert!(!page.contains(TOKEN));
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64);

    // reads with the cookie; changes need the CSRF token too
    let r = client
        .request(
            "GET",
            "/admin/overview",
            &[("cookie", &session)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // the dead destination is down (nothing listens there): the overview says which
    assert_eq!(r.json()["health"]["status"], "unhealthy");
    assert_eq!(
        r.json()["health"]["destinations"]["dead"][0]["status"],
        "error"
    );
    let bulk = "/admin/dead-letters/replay?all=true";
    let r = client
        .request("POST", bulk, &[("cookie", &session)], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text());
    assert!(r.text().contains("CSRF"));
    let r = client
        .request(
            "POST",
            bulk,
            &[
                ("cookie", &session),
                ("x-csrf-token", "0".repeat(64).as_str()),
            ],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = client
        .request(
            "POST",
            bulk,
            &[("cookie", &session), ("x-csrf-token", &csrf)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["count"], 0);
    // a made-up session is nobody
    let r = client
        .request(
            "GET",
            "/admin/overview",
            &[("cookie", "webhook_session=00ff")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    // signing out ends the session (with its CSRF token)
    let r = client
        .request("POST", "/ui/logout", &[("cookie", &session)], Bytes::new())
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = client
        .request(
            "POST",
            "/ui/logout",
            &[("cookie", &session), ("x-csrf-token", &csrf)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let r = client
        .request(
            "GET",
            "/admin/overview",
            &[("cookie", &session)],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

/// Read the SSE stream on `stream` until a `request` event whose data contains `needle`.
fn read_event_with(stream: std::net::TcpStream, needle: &str) -> Vec<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut lines = Vec::new();
    for line in BufReader::new(stream).lines() {
        let line = line.expect("the event stream ended before the event");
        let found = line.starts_with("data: ") && line.contains(needle);
        lines.push(line);
        if found {
            return lines;
        }
    }
    panic!("no event with {needle}: {lines:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_each_request_and_attempt_as_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, _) = start(dir.path(), &["--ops-token", TOKEN]);
    let client = TestClient::new(addr);

    // a wrong token gets no stream
    let r = client
        .request(
            "GET",
            "/admin/events",
            &[("authorization", "Bearer nope")],
            Bytes::new(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /admin/events?webhook=signed HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\n\r\n"
    )
    .unwrap();
    let reader = stream.try_clone().unwrap();
    let head = {
        let mut reader = BufReader::new(reader.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        head
    };
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");

    // another webhook's request is filtered out; this one's comes with its reason
    client.post("dead", &[], "{}").await;
    let body = r#"{"n":1}"#;
    let r = client
        .post("signed", &[("X-Hub-Signature-256", &sign("other"))], body)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let id = r.header("x-request-id").unwrap().to_owned();
    let lines = tokio::task::spawn_blocking(move || read_event_with(reader, &id))
        .await
        .unwrap();
    let data = lines.last().unwrap().strip_prefix("data: ").unwrap();
    let event: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(event["reason"], "signature_mismatch");
    assert_eq!(event["status"], 401);
    assert!(lines.iter().any(|l| l == "event: request"), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("\"webhook\":\"dead\"")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains(SECRET)));
}

async fn admin(client: &TestClient, method: &str, path: &str) -> (StatusCode, serde_json::Value) {
    let auth = format!("Bearer {TOKEN}");
    let r = client
        .request(
            method,
            path,
            &[("authorization", auth.as_str())],
            Bytes::new(),
        )
        .await;
    (r.status, r.json())
}

async fn dead_letters_until(
    client: &TestClient,
    query: &str,
    count: usize,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = admin(client, "GET", &format!("/admin/dead-letters?{query}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let list = body["dead_letters"].as_array().cloned().unwrap_or_default();
        if list.len() == count || Instant::now() > deadline {
            assert_eq!(list.len(), count, "{query}: {body}");
            return list;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_filtered_replayed_and_deleted_in_bulk() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, dead) = start(dir.path(), &["--ops-token", TOKEN]);
    let client = TestClient::new(addr);
    let mut ids = Vec::new();
    for n in 0..3 {
        let r = client.post("dead", &[], format!(r#"{{"n":{n}}}"#)).await;
        assert_eq!(r.status, StatusCode::OK);
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    dead_letters_until(&client, "", 3).await;
    let first = ids[0].clone();
    assert_eq!(
        dead_letters_until(&client, &format!("request_id={first}"), 1)
            .await
            .len(),
        1
    );
    assert_eq!(
        dead_letters_until(&client, "webhook=signed", 0).await.len(),
        0
    );
    assert_eq!(
        dead_letters_until(&client, "module=http_webhook", 3)
            .await
            .len(),
        3
    );
    let (status, body) = admin(&client, "GET", "/admin/dead-letters?colour=red").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // a bulk action needs a filter or all=true
    let (status, body) = admin(&client, "DELETE", "/admin/dead-letters").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(dead_letters_until(&client, "", 3).await.len(), 3);

    // the destination comes back: replay the first one only, it is delivered
    let target = webhook_testkit::target::HttpTarget::start_on(dead).await;
    let (status, body) = admin(
        &client,
        "POST",
        &format!("/admin/dead-letters/replay?request_id={first}"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 1);
    let deadline = Instant::now() + Duration::from_secs(20);
    while target.received().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(target.received().len(), 1);
    assert_eq!(&target.received()[0].body[..], br#"{"n":0}"#);
    assert_eq!(dead_letters_until(&client, "", 2).await.len(), 2);

    // delete the rest by filter
    let (status, body) = admin(&client, "DELETE", "/admin/dead-letters?webhook=dead").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["count"], 2);
    dead_letters_until(&client, "", 0).await;
    assert_eq!(target.received().len(), 1);
}

/// Where the browser test's screenshots go (kept: the issue's note links them).
fn screenshots() -> PathBuf {
    std::env::var_os("WEBHOOK_TEST_SCREENSHOTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/screenshots/dashboard"),
        PathBuf::from,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    let modules = std::env::var("WEBHOOK_TEST_NODE_MODULES")
        .unwrap_or_else(|_| "/opt/webhook-ci/node/node_modules".to_owned());
    assert!(
        Path::new(&modules).join("playwright-core").exists(),
        "playwright-core is not installed in {modules}: run `bash .ci/test` once (it installs \
         chromium and playwright-core), or set WEBHOOK_TEST_NODE_MODULES"
    );
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr, dead) = start(dir.path(), &["--ops-token", TOKEN]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/dashboard.cjs");
    let output = tokio::process::Command::new("node")
        .arg(&script)
        .env("BASE_URL", format!("http://{addr}"))
        .env("OPS_TOKEN", TOKEN)
        .env("SECRET", SECRET)
        .env("DEST_PORT", dead.port().to_string())
        .env("SCREENSHOTS", screenshots())
        .env("NODE_MODULES", &modules)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(180), output)
        .await
        .expect("the browser test took over 3 minutes")
        .expect("node could not be started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "browser test failed:\n{stdout}\n{stderr}"
    );
}
