//! Several gateway processes on one spool in PostgreSQL (`--spool postgres://…`, issue 23):
//! one SIGKILLed under load while the destination is down loses nothing (the others deliver
//! its entries after its lease, without it being restarted); PostgreSQL restarted under load
//! gives 503s and loses nothing; a dead letter made on one instance is listed, replayed and
//! deleted from another. What arrives is read by an HTTP receiver of the test's own; the
//! tables are read with psycopg (an independent client).
#![cfg(feature = "spool-postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use webhook_testkit::TestClient;
use webhook_testkit::interop::{free_port, unique};
use webhook_testkit::sql::{Database, Engine, OwnDatabase};
use webhook_testkit::target::HttpTarget;

use crate::spool_crash::start_server;

const TOKEN: &str = "shared-spool-ops-token-0123456789";

/// A database of the test's own on the machine's PostgreSQL: its URL.
fn fresh_database() -> Database {
    let mut db = Database::postgres();
    db.require();
    let name = unique("wg_spool").replace('-', "_");
    db.query(&format!("CREATE DATABASE {name}"), &[]);
    db.database = name;
    db
}

fn write_webhooks(dir: &Path, target: SocketAddr, retry: &str) -> PathBuf {
    let path = dir.join("webhooks.json");
    std::fs::write(
        &path,
        format!(
            r#"{{"orders": {{"module": "http_webhook", "ack": "persisted",
                 "module-config": {{"url": "http://{target}/orders", "timeout": 5}},
                 "retry": {retry}}}}}"#
        ),
    )
    .unwrap();
    path
}

/// One gateway process on the shared spool, in a directory of its own.
struct Instance {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Instance {
    fn start(url: &str, target: SocketAddr, retry: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let webhooks = write_webhooks(dir.path(), target, retry);
        let (child, addr) = start_server(
            dir.path(),
            &webhooks,
            &["--spool", url, "--spool-lease", "2", "--ops-token", TOKEN],
        );
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the senders saw.
#[derive(Default)]
struct Seen {
    /// (instance index, request id) of every 2xx.
    acknowledged: Vec<(usize, String)>,
    /// Statuses other than 2xx, counted.
    refused: std::collections::BTreeMap<u16, usize>,
}

/// `senders` tasks posting to `addrs` (task i to instance i % n) until `stop`.
fn load(
    addrs: &[SocketAddr],
    senders: usize,
    seen: &Arc<Mutex<Seen>>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    (0..senders)
        .map(|task| {
            let (client, seen, stop) = (client.clone(), Arc::clone(seen), Arc::clone(stop));
            let instance = task % addrs.len();
            let addr = addrs[instance];
            tokio::spawn(async move {
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
                        // the instance is gone: nothing was acknowledged for this one
                        tokio::time::sleep(Duration::from_millis(20)).await;
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
                    {
                        let mut seen = seen.lock().unwrap();
                        match (status.is_success(), id) {
                            (true, Some(id)) => seen.acknowledged.push((instance, id)),
                            _ => *seen.refused.entry(status.as_u16()).or_insert(0) += 1,
                        }
                    }
                    if !status.is_success() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect()
}

/// The request ids `target` received (with repeats).
fn received_ids(target: &HttpTarget) -> Vec<String> {
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
}

/// Wait until `target` has every id of `expected` (at most `seconds`); the ids lost and
/// the number of duplicates.
async fn wait_for_all(
    target: &HttpTarget,
    expected: &HashSet<String>,
    seconds: u64,
) -> (Vec<String>, usize) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let received: HashSet<String> = received_ids(target).into_iter().collect();
        if expected.iter().all(|id| received.contains(id)) || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = received_ids(target);
    let unique: HashSet<&String> = all.iter().collect();
    let lost = expected
        .iter()
        .filter(|id| !unique.contains(id))
        .cloned()
        .collect();
    (lost, all.len() - unique.len())
}

/// Rows left in the entries table once everything is delivered (read with psycopg).
fn entries_left(db: &Database, at_most_seconds: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(at_most_seconds);
    loop {
        let rows = db.query("SELECT count(*) AS n FROM webhook_gateway_entries", &[]);
        let n = rows[0]["n"].as_u64().unwrap() as usize;
        if n == 0 || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const PATIENT: &str = r#"{"max_attempts": 100, "initial_delay": 0.1, "max_delay": 1}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_sigkilled_with_the_destination_down_lose_nothing() {
    let db = fresh_database();
    let url = db.url();
    let target_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut instances: Vec<Instance> = (0..3)
        .map(|_| Instance::start(&url, target_addr, PATIENT))
        .collect();
    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders = load(&addrs, 12, &seen, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    instances[0].kill(); // SIGKILL mid-load; it is not restarted
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let (acknowledged, refused) = {
        let seen = seen.lock().unwrap();
        (seen.acknowledged.clone(), seen.refused.clone())
    };
    let by_killed: HashSet<String> = acknowledged
        .iter()
        .filter(|(i, _)| *i == 0)
        .map(|(_, id)| id.clone())
        .collect();
    assert!(
        by_killed.len() >= 20 && acknowledged.len() >= 100,
        "too little load to be a test: {} acknowledged, {} by the killed instance",
        acknowledged.len(),
        by_killed.len()
    );
    let expected: HashSet<String> = acknowledged.iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(expected.len(), acknowledged.len(), "request ids are unique");
    let pending = db.query("SELECT count(*) AS n FROM webhook_gateway_entries", &[]);
    assert!(
        pending[0]["n"].as_u64().unwrap() as usize >= expected.len(),
        "with the destination down every acknowledged webhook is a row: {pending:?}"
    );

    // The destination comes up: the two left deliver everything, the killed one's too.
    let target = HttpTarget::start_on(target_addr).await;
    let (lost, duplicates) = wait_for_all(&target, &expected, 120).await;
    println!(
        "shared spool, 3 instances, one SIGKILLed: acknowledged {} ({} by the killed one), refused {refused:?}, duplicates {duplicates}, lost {}",
        expected.len(),
        by_killed.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged webhooks lost ({} of them acknowledged by the killed instance)",
        lost.len(),
        lost.iter().filter(|id| by_killed.contains(*id)).count()
    );
    for r in target.received() {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert!(body["task"].is_u64() && body["n"].is_u64(), "{body}");
    }
    assert_eq!(entries_left(&db, 10), 0, "delivered rows are deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_answers_503_and_loses_nothing() {
    let mut own = OwnDatabase::start(Engine::Postgres);
    let url = own.db.url();
    let target_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let target = HttpTarget::start_on(target_addr).await;
    let instances: Vec<Instance> = (0..2)
        .map(|_| Instance::start(&url, target_addr, PATIENT))
        .collect();
    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.addr).collect();

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let senders = load(&addrs, 8, &seen, &stop);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    own.stop();
    let before = seen.lock().unwrap().acknowledged.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let during = seen.lock().unwrap().acknowledged.len() - before;
    let refused_while_down: usize = seen.lock().unwrap().refused.values().sum();
    own.start_again();
    // load goes on until PostgreSQL answers again (the pool reconnects)
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop.store(true, Ordering::Relaxed);
    for sender in senders {
        sender.await.unwrap();
    }
    let (acknowledged, refused) = {
        let seen = seen.lock().unwrap();
        (seen.acknowledged.clone(), seen.refused.clone())
    };
    let after_restart = acknowledged.len() - before - during;
    println!(
        "shared spool, PostgreSQL restarted: acknowledged {} ({before} before, {during} while down, {after_restart} after), refused {refused:?}",
        acknowledged.len()
    );
    assert!(before >= 20, "too little load before the stop: {before}");
    assert!(
        refused_while_down > 0 && refused.keys().all(|&s| s == 503),
        "PostgreSQL down means 503, nothing else: {refused:?}"
    );
    assert!(
        during <= 8,
        "at most the requests in flight at the stop are answered 2xx after it: {during}"
    );
    assert!(
        after_restart > 0,
        "requests are taken again after the restart"
    );
    let expected: HashSet<String> = acknowledged.iter().map(|(_, id)| id.clone()).collect();
    let (lost, duplicates) = wait_for_all(&target, &expected, 60).await;
    println!("  duplicates {duplicates}, lost {}", lost.len());
    assert!(lost.is_empty(), "{} acknowledged webhooks lost", lost.len());
    assert_eq!(entries_left(&own.db, 15), 0, "delivered rows are deleted");
    // an instance still serves after the restart
    let r = TestClient::new(addrs[1])
        .post("orders", &[], r#"{"after": "restart"}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
}

async fn admin(client: &TestClient, method: &str, path: &str) -> webhook_testkit::TestResponse {
    let bearer = format!("Bearer {TOKEN}");
    client
        .request(method, path, &[("Authorization", bearer.as_str())], "")
        .await
}

async fn dead_letter_ids(client: &TestClient) -> Vec<String> {
    let r = admin(client, "GET", "/admin/dead-letters").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    r.json()["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_made_on_one_instance_are_replayed_and_deleted_from_another() {
    let db = fresh_database();
    let url = db.url();
    let target_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let once = r#"{"max_attempts": 1}"#;
    let a = Instance::start(&url, target_addr, once);
    let b = Instance::start(&url, target_addr, once);
    let (a_client, b_client) = (TestClient::new(a.addr), TestClient::new(b.addr));

    let mut ids = Vec::new();
    for n in 0..2 {
        let r = a_client
            .post("orders", &[], format!(r#"{{"n": {n}}}"#))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let listed = loop {
        let listed = dead_letter_ids(&b_client).await;
        if listed.len() == 2 || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let expected: Vec<String> = ids.iter().map(|id| format!("{id}-0")).collect();
    let mut sorted = listed.clone();
    sorted.sort();
    let mut wanted = expected.clone();
    wanted.sort();
    assert_eq!(sorted, wanted, "instance b lists a's dead letters");
    assert_eq!(dead_letter_ids(&a_client).await.len(), 2);

    // The destination comes up; b replays the first and deletes the second.
    let target = HttpTarget::start_on(target_addr).await;
    let r = admin(
        &b_client,
        "POST",
        &format!("/admin/dead-letters/{}/replay", expected[0]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = admin(
        &b_client,
        "DELETE",
        &format!("/admin/dead-letters/{}", expected[1]),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = admin(
        &a_client,
        "DELETE",
        &format!("/admin/dead-letters/{}", expected[1]),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "deleted for every instance: {}",
        r.text()
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    while received_ids(&target).is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        received_ids(&target),
        vec![ids[0].clone()],
        "only the replayed one arrives"
    );
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&target.received()[0].body).unwrap(),
        serde_json::json!({"n": 0})
    );
    assert!(dead_letter_ids(&a_client).await.is_empty());
    let rows = db.query(
        "SELECT count(*) AS n FROM webhook_gateway_dead_letters",
        &[],
    );
    assert_eq!(rows[0]["n"].as_u64(), Some(0), "{rows:?}");
    assert_eq!(entries_left(&db, 10), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_url_that_is_not_postgres_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let webhooks = write_webhooks(dir.path(), "127.0.0.1:9".parse().unwrap(), "{}");
    let output = std::process::Command::new(webhook_testkit::server_binary())
        .args(["--spool", "mysql://root:hunter2@127.0.0.1/x"])
        .env("WEBHOOKS_CONFIG_FILE", &webhooks)
        .env("PORT", "0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("only postgres://"), "{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "no password in the error: {stderr}"
    );
}
