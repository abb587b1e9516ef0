//! `transform` per destination in JavaScript (`{"js": "addHandler(\"transform\", …)"}`)
//! through the real server: a Hookdeck-style program's output arrives at Redis (read back
//! with redis-py) and at an HTTP target with the headers it set, null skips, a destination
//! without a transform keeps the exact bytes; every attempt — retries and the ones after a
//! SIGKILL + restart — gets the same output (`Date`, `Math.random` included); hostile
//! programs end within their limits as dead letters while another JS webhook flows; bad
//! programs are config errors with their position, caught by `check-config` too.
//! (Metrics are process-wide: each test has webhook ids of its own.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_core::{PipelineOptions, SpoolOptions};
use webhook_server::server::{OpsToken, ServerOptions};
use webhook_testkit::interop::{require_tcp, unique};
use webhook_testkit::recorder::Sink;
use webhook_testkit::target::HttpTarget;
use webhook_testkit::{TestClient, TestServer};

use crate::transform::{PUSH, dead_letters, redis_parts, stream_bodies, wait_for};

const TOKEN: &str = "transform-js-token";

/// The benchmark's reshaping (bench/transform.sh), as a Hookdeck user writes it.
const RESHAPE: &str = r#"addHandler("transform", (request, context) => {
  const push = request.body;
  request.body = {
    ref: push.ref,
    repo: push.repository.full_name,
    commits: push.commits.map((c) => c.id),
    event: request.headers["x-github-event"],
    env: request.parsed_query.env,
    query: request.query,
    path: request.path,
    method: request.method,
    webhook: context.webhook_id,
    request_id: request.request_id,
    received_at: request.received_at,
  };
  return request;
});"#;

/// For the HTTP target: a text body and header changes.
const SLACK_TEXT: &str = r#"addHandler("transform", (request) => {
  const push = request.body;
  request.headers["content-type"] = "text/plain";
  request.headers["x-transformed"] = "by-js";
  request.headers["x-commit-count"] = push.commits.length;
  delete request.headers["x-github-event"];
  request.body = `${push.pusher.name} pushed ${push.commits.length} commits to ${push.ref}`;
  return request;
});"#;

const MAIN_ONLY: &str = r#"addHandler("transform", (request) =>
  request.body.ref === "refs/heads/main" ? { body: { branch: request.body.ref } } : null);"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn js_output_arrives_at_redis_and_http_with_its_headers() {
    let (host, port) = redis_parts();
    require_tcp("redis", &host, port);
    let stream = unique("js_stream");
    let exact = Sink::named("js_exact");
    let main_only = Sink::named("js_main_only");
    let target = HttpTarget::start().await;
    let config = serde_json::json!({"js_hook": {"ack": "persisted",
        "chain-config": {"execution": "parallel"}, "chain": [
        {"module": "redis_stream", "connection": "redis", "module-config": {"stream": stream},
         "transform": {"js": RESHAPE}},
        {"module": "http_webhook",
         "module-config": {"url": target.url("/slack"), "forward_headers": true},
         "transform": {"js": SLACK_TEXT}},
        {"module": "test_recorder", "module-config": {"sink": "js_exact"}},
        {"module": "test_recorder", "module-config": {"sink": "js_main_only"},
         "transform": {"js": MAIN_ONLY}}]}});
    let server = TestServer::builder(&config.to_string())
        .connections(&format!(
            r#"{{"redis": {{"type": "redis-rq", "host": "{host}", "port": "{port}"}}}}"#
        ))
        .server_options(ServerOptions {
            metrics: true,
            ..ServerOptions::default()
        })
        .start()
        .await;
    let other = PUSH.replace("refs/heads/main", "refs/heads/dev");
    let mut ids = Vec::new();
    for body in [PUSH.to_owned(), other.clone()] {
        let r = server
            .request(
                "POST",
                "/webhook/js_hook?env=prod&x=1",
                &[("X-GitHub-Event", "push"), ("X-Kept", "yes")],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let outputs = stream_bodies(&stream, 2);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    for (id, branch) in ids.iter().zip(["refs/heads/main", "refs/heads/dev"]) {
        let output = outputs
            .iter()
            .find(|o| o["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no output for {id}: {outputs:?}"));
        assert_eq!(output["ref"], branch);
        assert_eq!(output["repo"], "octo/hello");
        assert_eq!(output["commits"], serde_json::json!(["c1", "c2"]));
        assert_eq!(output["event"], "push");
        assert_eq!(output["env"], "prod");
        assert_eq!(output["query"], "env=prod&x=1");
        assert_eq!(output["path"], "/webhook/js_hook");
        assert_eq!(output["method"], "POST");
        assert_eq!(output["webhook"], "js_hook");
        assert!(
            output["received_at"].as_str().unwrap().starts_with("20"),
            "{output}"
        );
    }

    let deadline = Instant::now() + Duration::from_secs(10);
    while target.received().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut texts: Vec<(String, http::HeaderMap)> = target
        .received()
        .into_iter()
        .map(|r| (String::from_utf8(r.body.to_vec()).unwrap(), r.headers))
        .collect();
    texts.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert_eq!(texts[0].0, "octocat pushed 2 commits to refs/heads/dev");
    assert_eq!(texts[1].0, "octocat pushed 2 commits to refs/heads/main");
    for (_, headers) in &texts {
        assert_eq!(headers["x-transformed"], "by-js");
        assert_eq!(headers["x-commit-count"], "2");
        assert_eq!(headers["x-kept"], "yes", "headers the program kept");
        assert_eq!(headers["content-type"], "text/plain");
        assert!(
            headers.get("x-github-event").is_none(),
            "deleted: {headers:?}"
        );
    }

    wait_for(&exact, 2).await;
    wait_for(&main_only, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut exact_bodies: Vec<Vec<u8>> = exact.bodies().iter().map(|b| b.to_vec()).collect();
    exact_bodies.sort();
    let mut sent = [PUSH.as_bytes().to_vec(), other.as_bytes().to_vec()];
    sent.sort();
    assert_eq!(exact_bodies, sent, "without a transform: the exact bytes");
    let main_bodies: Vec<Vec<u8>> = main_only.bodies().iter().map(|b| b.to_vec()).collect();
    assert_eq!(main_bodies, [br#"{"branch":"refs/heads/main"}"#.to_vec()]);
    let metrics = server.get("/metrics").await.text();
    assert!(
        metrics.contains(
            r#"webhook_destination_skipped_total{webhook="js_hook",destination="test_recorder"} 1"#
        ),
        "the dev push skipped the main-only destination"
    );
    assert!(
        metrics.contains(
            r#"webhook_transform_duration_seconds_count{webhook="js_hook",destination="redis_stream"} 2"#
        ),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("transform"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Every attempt of a request — retries against a failing target, then the ones after a
/// SIGKILL and a restart from the spool — carries the same output, `Date` and
/// `Math.random` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attempt_gets_the_same_output_across_retries_and_a_sigkill() {
    use crate::spool_crash::start_server;

    let dir = tempfile::tempdir().unwrap();
    let target = HttpTarget::start().await;
    target.respond(StatusCode::SERVICE_UNAVAILABLE, &[]);
    let program = r#"addHandler("transform", (request, context) => ({ body: {
        i: request.body.i, id: context.request_id, q: request.parsed_query.q,
        random: [Math.random(), Math.random()], now: Date.now(), iso: new Date().toISOString(),
        received_at: context.received_at } }));"#;
    let webhooks = dir.path().join("webhooks.json");
    let config = serde_json::json!({"gh": {"ack": "persisted", "module": "http_webhook",
        "module-config": {"url": target.url("/in")},
        "retry": {"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.2},
        "transform": {"js": program}}});
    std::fs::write(&webhooks, config.to_string()).unwrap();
    let (mut server, addr) = start_server(dir.path(), &webhooks, &[]);
    let client = TestClient::new(addr);
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = client
            .request(
                "POST",
                &format!("/webhook/gh?q=n{i}"),
                &[],
                format!(r#"{{"i": {i}, "other": "dropped"}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let attempts_of = |target: &HttpTarget, id: &str| {
        target
            .received()
            .iter()
            .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap())
            .filter(|b| b["id"] == id)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while ids.iter().any(|id| attempts_of(&target, id) < 2) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill().unwrap(); // SIGKILL with everything pending
    server.wait().unwrap();
    let before_kill = target.received().len();
    let (mut server, _) = start_server(dir.path(), &webhooks, &[]);
    target.respond(StatusCode::OK, &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while target.received().len() < before_kill + ids.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received: Vec<serde_json::Value> = target
        .received()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let mut randoms = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let outputs: Vec<&serde_json::Value> =
            received.iter().filter(|b| b["id"] == id.as_str()).collect();
        assert!(
            outputs.len() >= 3,
            "{id}: two failed attempts, then the one after the restart: {outputs:?}"
        );
        for output in &outputs {
            assert_eq!(*output, outputs[0], "{id}: every attempt, the same output");
        }
        let output = outputs[0];
        assert_eq!(output["i"], i);
        assert_eq!(output["q"], format!("n{i}"));
        assert_eq!(
            output["iso"], output["received_at"],
            "new Date() is the time the request was received"
        );
        assert!(output.get("other").is_none());
        randoms.push(output["random"].clone());
    }
    randoms.dedup();
    assert_eq!(
        randoms.len(),
        ids.len(),
        "each request id seeds its own sequence"
    );
    let _ = server.kill();
    let _ = server.wait();
}

/// Each hostile program ends within its limit as a dead letter naming what happened, while
/// a healthy JavaScript webhook keeps flowing on the same threads (latencies printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_js_programs_end_as_dead_letters_while_others_flow() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Sink::named("js_healthy");
    let hostile: [(&str, &str, &str); 7] = [
        ("loop", "for (;;) {}", "did not finish within 100 ms"),
        (
            "caught_loop",
            "try { for (;;) {} } catch (e) {}",
            "did not finish within 100 ms",
        ),
        (
            "alloc",
            "const a = []; for (;;) a.push(new Array(1e5).fill(7))",
            "ran out of its memory limit (16 MiB)",
        ),
        (
            "recursion",
            "const f = (n) => f(n + 1) + 1; f(0)",
            "recursed too deep",
        ),
        (
            "output",
            "r.body = 'x'.repeat(2e6)",
            "over max_output_bytes",
        ),
        ("throws", "r.body.missing.field = 1", "threw TypeError"),
        ("promise", "return Promise.resolve(r)", "returned a Promise"),
    ];
    let mut webhooks = serde_json::Map::new();
    for (name, code, _) in hostile {
        // Only the endless loops are to meet the time limit (the default 100 ms); the
        // others get room (a debug build on a loaded machine is slow), so that what ends
        // them is their own limit.
        let timeout_ms = if name.ends_with("loop") { 100 } else { 30_000 };
        let program = format!("addHandler('transform', (r) => {{ {code}; return r }})");
        webhooks.insert(
            format!("js_{name}"),
            serde_json::json!({"ack": "persisted", "module": "log",
                "transform": {"js": program, "timeout_ms": timeout_ms, "memory_mb": 16}}),
        );
    }
    webhooks.insert(
        "js_flowing".to_owned(),
        serde_json::json!({"ack": "persisted", "module": "test_recorder",
            "module-config": {"sink": "js_healthy"},
            "transform": {"js": "addHandler('transform', (r) => ({ body: { n: r.body.n } }))"}}),
    );
    let server = TestServer::builder(&serde_json::Value::Object(webhooks).to_string())
        .options(PipelineOptions {
            spool: SpoolOptions {
                dir: dir.path().to_path_buf(),
                ..SpoolOptions::default()
            },
            ..PipelineOptions::default()
        })
        .server_options(ServerOptions {
            ops_token: OpsToken::new(TOKEN),
            metrics: true,
            ..ServerOptions::default()
        })
        .start()
        .await;
    let started = Instant::now();
    for (name, _, _) in hostile {
        let r = server.post(&format!("js_{name}"), &[], r#"{"x": 1}"#).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
    }
    let mut latencies = Vec::new();
    for n in 0..50 {
        let sent = Instant::now();
        let r = server
            .post("js_flowing", &[], format!(r#"{{"n": {n}, "x": 1}}"#))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        latencies.push(sent.elapsed());
    }
    wait_for(&healthy, 50).await;
    let flowed = started.elapsed();
    assert_eq!(healthy.bodies().len(), 50);
    assert!(
        healthy.bodies().iter().any(|b| &b[..] == br#"{"n":7}"#),
        "the transform's output"
    );
    let mut letters = Vec::new();
    while letters.len() < hostile.len() && started.elapsed() < Duration::from_secs(20) {
        letters = dead_letters(&server, TOKEN).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all_dead = started.elapsed();
    latencies.sort();
    println!(
        "healthy js webhook: 50 requests delivered {:.0} ms after the hostile ones were sent; \
         answer latency median {:?}, max {:?}; all {} hostile ones dead-lettered after {:.0} ms",
        flowed.as_secs_f64() * 1000.0,
        latencies[25],
        latencies[49],
        hostile.len(),
        all_dead.as_secs_f64() * 1000.0
    );
    for (name, _, expected) in hostile {
        let letter = letters
            .iter()
            .find(|l| l["webhook"] == format!("js_{name}"))
            .unwrap_or_else(|| panic!("no dead letter for {name}: {letters:?}"));
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.contains("js transform") && error.contains(expected),
            "{name}: {error}"
        );
        assert_eq!(letter["attempts"], 1, "{name}: not retried");
    }
    assert!(
        all_dead < Duration::from_secs(10),
        "every hostile program ended within its limits: {all_dead:?}"
    );
}

#[tokio::test]
async fn bad_js_programs_are_config_errors_naming_webhook_key_and_position() {
    for (program, message) in [
        (
            "addHandler('transform', (r) => {\n  return r +;\n});",
            "(line 2, column 13 of the program)",
        ),
        ("const x = 1;", "does not call addHandler"),
        ("\n\nundefinedThing.x;", "line 3"),
        (
            "addHandler('filter', (r) => r)",
            "only \"transform\" handlers",
        ),
        ("for (;;) {}", "did not finish within 100 ms"),
    ] {
        let config = serde_json::json!({"hook": {"chain": [{"module": "log"},
            {"module": "log", "transform": {"js": program}}]}});
        let error = TestServer::builder(&config.to_string())
            .config_error()
            .await;
        assert!(
            error.contains("webhooks.json")
                && error.contains("hook.chain[1].transform.js")
                && error.contains(message),
            "{program}: {error}"
        );
    }
}

/// `check-config` compiles every program: a bad jq and a bad js program are both named.
#[test]
fn check_config_catches_bad_programs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.json");
    std::fs::write(
        &path,
        r#"{"a": {"module": "log", "transform": {"jq": "{a: .b"}},
            "b": {"module": "log", "transform": {"js": "addHandler('transform', (r) => {"}},
            "c": {"module": "log", "transform": {"js": "addHandler('transform', (r) => r)"}}}"#,
    )
    .unwrap();
    let out = Command::new(crate::spool_crash::BIN)
        .arg("check-config")
        .env("WEBHOOKS_CONFIG_FILE", &path)
        .env_remove("CONNECTIONS_CONFIG_FILE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    for (place, problem) in [
        ("a.transform.jq", "expected closing brace (line 1, column 7"),
        ("b.transform.js", "threw SyntaxError"),
    ] {
        assert!(
            stderr.contains(&format!("{file}: {place}: does not compile: {problem}")),
            "{stderr}"
        );
    }
    assert!(!stderr.contains(": c."), "a good program is fine: {stderr}");
}

/// The test endpoint runs JS programs too, and delivers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_endpoint_runs_js_without_delivering() {
    let sink = Sink::named("js_dry");
    let config = serde_json::json!({"js_tested": {"module": "test_recorder",
        "module-config": {"sink": "js_dry"}, "transform": {"js": RESHAPE}}});
    let server = TestServer::builder(&config.to_string())
        .server_options(ServerOptions {
            ops_token: OpsToken::new(TOKEN),
            ..ServerOptions::default()
        })
        .start()
        .await;
    let bearer = format!("Bearer {TOKEN}");
    let sample = serde_json::json!({"query": "env=staging",
        "headers": {"X-GitHub-Event": "push"}, "body": PUSH});
    let r = server
        .request(
            "POST",
            "/admin/webhooks/js_tested/test",
            &[("Authorization", bearer.as_str())],
            sample.to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let report = r.json();
    let output = &report["destinations"][0];
    assert_eq!(output["outcome"], "deliver", "{report}");
    assert_eq!(output["body"]["repo"], "octo/hello");
    assert_eq!(output["body"]["env"], "staging");
    assert_eq!(output["body"]["commits"], serde_json::json!(["c1", "c2"]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.attempts(), 0, "nothing was delivered");
}
