//! `transform` per destination (jq) through the real server: the program's output arrives
//! at a real destination (Redis, read back with redis-py), its variables are the request's,
//! null or no output skips that destination, a destination without a transform still gets
//! the exact bytes, a retry and a SIGKILL + restart give the same output; hostile programs
//! (endless loop, huge allocation, deep recursion, giant output) end within their limits as
//! dead letters with a clear error while another webhook keeps flowing.
//! (Metrics are process-wide: each test has webhook ids of its own.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_core::{PipelineOptions, SpoolOptions};
use webhook_server::server::{OpsToken, ServerOptions};
use webhook_testkit::interop::{python, require_tcp, scripts_dir, service_url, unique};
use webhook_testkit::recorder::Sink;
use webhook_testkit::{TestClient, TestServer};

const TOKEN: &str = "transform-token";

/// A GitHub push, shortened.
pub(crate) const PUSH: &str = r#"{"ref": "refs/heads/main", "repository": {"full_name": "octo/hello"},
  "commits": [{"id": "c1", "message": "one"}, {"id": "c2", "message": "two"}],
  "pusher": {"name": "octocat"}}"#;

pub(crate) fn redis_parts() -> (String, u16) {
    let url = service_url("redis", "redis://127.0.0.1:6379/0");
    let rest = url.trim_start_matches("redis://");
    let hostport = rest.split('/').next().unwrap_or(rest);
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "6379"));
    (host.to_owned(), port.parse().unwrap())
}

/// The bodies of `stream`'s entries, as redis-py's XREAD gives them.
pub(crate) fn stream_bodies(stream: &str, at_least: usize) -> Vec<serde_json::Value> {
    let (host, port) = redis_parts();
    let out = Command::new(python())
        .arg(scripts_dir().join("redis_xread.py"))
        .args([
            &format!("redis://{host}:{port}/0"),
            stream,
            &at_least.to_string(),
            "10",
        ])
        .output()
        .expect("python with redis-py (bash .ci/test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    use base64::Engine as _;
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let entry: serde_json::Value = serde_json::from_str(line).unwrap();
            let body = base64::engine::general_purpose::STANDARD
                .decode(entry["fields"]["body"].as_str().unwrap())
                .unwrap();
            serde_json::from_slice(&body).unwrap()
        })
        .collect()
}

pub(crate) async fn wait_for(sink: &Sink, n: usize) {
    for _ in 0..100 {
        if sink.bodies().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jq_output_arrives_at_redis_and_others_keep_the_exact_bytes() {
    let (host, port) = redis_parts();
    require_tcp("redis", &host, port);
    let stream = unique("jq_stream");
    let exact = Sink::named("jq_exact");
    let main_only = Sink::named("jq_main_only");
    let program = r#"{ref, repo: .repository.full_name, commits: [.commits[].id],
        event: $headers["x-github-event"], env: $query.env, path: $path, method: $method,
        webhook: $webhook_id, request_id: $request_id, received_at: $received_at}"#;
    let server = TestServer::builder(&format!(
        r#"{{"jq_hook": {{"ack": "persisted", "chain-config": {{"execution": "parallel"}}, "chain": [
            {{"module": "redis_stream", "connection": "redis",
              "module-config": {{"stream": "{stream}"}},
              "transform": {{"jq": {program}}}}},
            {{"module": "test_recorder", "module-config": {{"sink": "jq_exact"}}}},
            {{"module": "test_recorder", "module-config": {{"sink": "jq_main_only"}},
              "transform": {{"jq": "select(.ref == \"refs/heads/main\") | {{branch: .ref}}"}}}}]}}}}"#,
        program = serde_json::to_string(program).unwrap()
    ))
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
                "/webhook/jq_hook?env=prod&x=1",
                &[("X-GitHub-Event", "push")],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.header("x-request-id").unwrap().to_owned());
    }
    let outputs = stream_bodies(&stream, 2);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    for (id, branch) in ids.iter().zip(["refs/heads/main", "refs/heads/dev"]) {
        // delivered in the background, in either order
        let output = outputs
            .iter()
            .find(|o| o["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no output for {id}: {outputs:?}"));
        assert_eq!(output["ref"], branch);
        assert_eq!(output["repo"], "octo/hello");
        assert_eq!(output["commits"], serde_json::json!(["c1", "c2"]));
        assert_eq!(output["event"], "push");
        assert_eq!(output["env"], "prod");
        assert_eq!(output["path"], "/webhook/jq_hook");
        assert_eq!(output["method"], "POST");
        assert_eq!(output["webhook"], "jq_hook");
        assert_eq!(output["request_id"], id.as_str());
        assert!(
            output["received_at"].as_str().unwrap().starts_with("20"),
            "{output}"
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
            r#"webhook_destination_skipped_total{webhook="jq_hook",destination="test_recorder"} 1"#
        ),
        "the dev push skipped the main-only destination"
    );
    assert!(
        metrics.contains(r#"webhook_transform_duration_seconds_count{webhook="jq_hook",destination="redis_stream"} 2"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("transform"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_the_same_output() {
    let sink = Sink::named("jq_retry");
    sink.fail_next(2);
    let server = TestServer::start(
        r#"{"jq_retry": {"ack": "persisted", "module": "test_recorder",
              "module-config": {"sink": "jq_retry"},
              "retry": {"max_attempts": 5, "initial_delay": 0.05, "max_delay": 0.1},
              "transform": {"jq": "{id: $request_id, at: $received_at, n: (.n * 2)}"}}}"#,
    )
    .await;
    let r = server.post("jq_retry", &[], r#"{"n": 21}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    wait_for(&sink, 1).await;
    assert_eq!(sink.attempts(), 3, "two failed attempts, then delivered");
    let delivered: serde_json::Value = serde_json::from_slice(&sink.bodies()[0]).unwrap();
    assert_eq!(delivered["n"], 42);
    assert_eq!(delivered["id"], r.header("x-request-id").unwrap());
    let deliveries = sink.deliveries();
    assert_eq!(
        deliveries[0].request_id.to_string(),
        r.header("x-request-id").unwrap()
    );
    assert_eq!(
        delivered["at"].as_str().unwrap(),
        deliveries[0].received_at_rfc3339(),
        "the time the request was received, not of the attempt"
    );
}

/// The dead letters, as `GET /admin/dead-letters` with the ops token `token` lists them.
pub(crate) async fn dead_letters(client: &TestClient, token: &str) -> Vec<serde_json::Value> {
    let bearer = format!("Bearer {token}");
    let answer = client
        .request(
            "GET",
            "/admin/dead-letters",
            &[("Authorization", bearer.as_str())],
            "",
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    answer.json()["dead_letters"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Each hostile program ends within its limit as a dead letter naming what happened, and a
/// healthy webhook keeps flowing meanwhile (its latencies are printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_programs_end_as_dead_letters_while_others_flow() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Sink::named("jq_healthy");
    let hostile: [(&str, &str, &str); 6] = [
        ("loop", "def f: f; f", "did not finish within 100 ms"),
        ("alloc", "[range(1e9)]", "memory limit (64 MiB)"),
        ("recursion", "def f: 1 + f; f", "recursed too deep"),
        // A 2 MB string: past max_output_bytes (1 MiB) while far inside the memory limit
        // (an array of 300,000 numbers was once blamed on memory in a loaded CI run).
        ("output", "\"x\" * 2000000", "larger than max_output_bytes"),
        ("failing", ".missing | keys", "the program failed"),
        ("notjson", ".", "not JSON"),
    ];
    let mut webhooks = serde_json::Map::new();
    for (name, program, _) in hostile {
        // Only the endless loop is to meet the time limit (the default 100 ms); the others
        // get room (a debug build on a loaded machine is slow), so that what ends them is
        // their own limit.
        let timeout_ms = if name == "loop" { 100 } else { 30_000 };
        webhooks.insert(
            format!("jq_{name}"),
            serde_json::json!({"ack": "persisted", "data_type": "blob", "module": "log",
                "transform": {"jq": program, "timeout_ms": timeout_ms}}),
        );
    }
    webhooks.insert(
        "jq_flowing".to_owned(),
        serde_json::json!({"ack": "persisted", "module": "test_recorder",
            "module-config": {"sink": "jq_healthy"},
            "transform": {"jq": "{n}"}}),
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
        let body = if name == "notjson" { "not json" } else { "{}" };
        let r = server.post(&format!("jq_{name}"), &[], body).await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.text());
    }
    // Meanwhile, the healthy webhook: 50 requests, each answered and transformed.
    let mut latencies = Vec::new();
    for n in 0..50 {
        let sent = Instant::now();
        let r = server
            .post("jq_flowing", &[], format!(r#"{{"n": {n}, "x": 1}}"#))
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
        "healthy webhook: 50 requests delivered {:.0} ms after the hostile ones were sent; \
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
            .find(|l| l["webhook"] == format!("jq_{name}"))
            .unwrap_or_else(|| panic!("no dead letter for {name}: {letters:?}"));
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.contains("jq transform") && error.contains(expected),
            "{name}: {error} (all: {:?})",
            letters
                .iter()
                .map(|l| format!("{} {}", l["webhook"], l["error"]))
                .collect::<Vec<_>>()
        );
        assert_eq!(letter["attempts"], 1, "{name}: not retried");
    }
    assert!(
        all_dead < Duration::from_secs(10),
        "every hostile program ended within its limits: {all_dead:?}"
    );
    let bearer = format!("Bearer {TOKEN}");
    let metrics = server
        .request("GET", "/metrics", &[("Authorization", bearer.as_str())], "")
        .await
        .text();
    assert!(
        metrics
            .contains(r#"webhook_transform_failed_total{webhook="jq_loop",destination="log"} 1"#),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("jq_loop"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn bad_programs_are_config_errors_naming_webhook_key_and_position() {
    for (transform, place, message) in [
        (
            r#"{"jq": "{a: .b,\n  c: (.d | map(.e)}"}"#,
            "hook.transform.jq",
            "line 2",
        ),
        (
            r#"{"jq": ".a | nosuch"}"#,
            "hook.transform.jq",
            "undefined filter `nosuch`",
        ),
        (
            r#"{"jq": "$ENV.SECRET"}"#,
            "hook.transform.jq",
            "undefined variable",
        ),
        (
            r#"{"js": "x"}"#,
            "hook.transform.js",
            "does not compile: threw ReferenceError: x is not defined (line 1, column 1",
        ),
        (
            r#"{"lua": "x"}"#,
            "hook.transform.lua",
            "unknown transform language",
        ),
        (
            r#"{"jq": ".", "timeout_ms": 0}"#,
            "hook.transform.timeout_ms",
            "1 to 60000",
        ),
        (
            r#"{"jq": ".", "memory": 1}"#,
            "hook.transform",
            "one program",
        ),
        (r#"".a""#, "hook.transform", "must be an object"),
    ] {
        let error = TestServer::builder(&format!(
            r#"{{"hook": {{"module": "log", "transform": {transform}}}}}"#
        ))
        .config_error()
        .await;
        assert!(
            error.contains("webhooks.json") && error.contains(place) && error.contains(message),
            "{transform}: {error}"
        );
    }
    let error = TestServer::builder(
        r#"{"hook": {"chain": [{"module": "log"}, {"module": "log", "transform": {"jq": "{"}}]}}"#,
    )
    .config_error()
    .await;
    assert!(
        error.contains("hook.chain[1].transform.jq") && error.contains("column"),
        "{error}"
    );
    let error = TestServer::builder(
        r#"{"hook": {"chain": [{"module": "log"}], "transform": {"jq": "."}}}"#,
    )
    .config_error()
    .await;
    assert!(error.contains("each chain item its own"), "{error}");
}

/// The output is made from the spool: with the destination down, requests are answered,
/// the server is SIGKILLed and started again, the destination comes up, and each request
/// arrives transformed from its own bytes, request id, time and query string.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_output_is_the_same_after_a_sigkill_and_restart() {
    use std::net::SocketAddr;

    use webhook_testkit::interop::free_port;
    use webhook_testkit::target::HttpTarget;

    use crate::spool_crash::start_server;

    let dir = tempfile::tempdir().unwrap();
    let target: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(
        &webhooks,
        format!(
            r#"{{"gh": {{"ack": "persisted", "module": "http_webhook",
                 "module-config": {{"url": "http://{target}/in"}},
                 "retry": {{"max_attempts": 100, "initial_delay": 0.05, "max_delay": 0.3}},
                 "transform": {{"jq": "{{i, id: $request_id, at: $received_at, q: $query.q}}"}}}}}}"#
        ),
    )
    .unwrap();
    let (mut server, addr) = start_server(dir.path(), &webhooks, &[]);
    let client = TestClient::new(addr);
    let mut expected = Vec::new();
    for i in 0..10 {
        let r = client
            .request(
                "POST",
                &format!("/webhook/gh?q=n{i}"),
                &[],
                format!(r#"{{"i": {i}, "other": "dropped"}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        expected.push((i, r.header("x-request-id").unwrap().to_owned()));
    }
    server.kill().unwrap(); // SIGKILL with everything pending
    server.wait().unwrap();
    let (mut server, _) = start_server(dir.path(), &webhooks, &[]);
    let target = HttpTarget::start_on(target).await;
    let received = |target: &HttpTarget| {
        let mut bodies: Vec<serde_json::Value> = target
            .received()
            .iter()
            .map(|r| serde_json::from_slice(&r.body).unwrap())
            .collect();
        bodies.sort_by_key(|b| b["i"].as_i64());
        bodies.dedup(); // at-least-once: a delivery cut by the kill may come twice
        bodies
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while received(&target).len() < expected.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bodies = received(&target);
    assert_eq!(bodies.len(), expected.len(), "{bodies:?}");
    for (body, (i, id)) in bodies.iter().zip(&expected) {
        assert_eq!(body["i"], *i);
        assert_eq!(body["id"], id.as_str());
        assert_eq!(body["q"], format!("n{i}"), "the query string was spooled");
        assert!(body["at"].as_str().unwrap().starts_with("20"), "{body}");
        assert!(body.get("other").is_none());
    }
    let _ = server.kill();
    let _ = server.wait();
}

const TESTED: &str = r#"{"tested": {"ack": "persisted", "chain": [
      {"module": "test_recorder", "module-config": {"sink": "dry_pushes"},
       "filter": {"headers": {"x-github-event": "push"}}},
      {"module": "test_recorder", "module-config": {"sink": "dry_shaped"},
       "transform": {"jq": "{text: \"\\(.pusher.name) pushed \\(.commits | length) commits to \\($query.repo)\"}"}},
      {"module": "test_recorder", "module-config": {"sink": "dry_broken"},
       "transform": {"jq": ".commits[0] + 1"}}],
    "hmac": {"secret": "dry-secret", "header": "X-Hub-Signature-256"}}}"#;

fn sample(event: &str, signature: &str, verify: bool) -> String {
    serde_json::json!({"query": "repo=hello", "verify": verify,
        "headers": {"X-GitHub-Event": event, "X-Hub-Signature-256": signature},
        "body": PUSH})
    .to_string()
}

/// `POST /admin/webhooks/{id}/test`: per destination matched or filtered, the output or
/// the error, the time taken; validators only with `verify`; nothing reaches a destination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_endpoint_shows_outputs_without_delivering() {
    let sinks = ["dry_pushes", "dry_shaped", "dry_broken"].map(Sink::named);
    let server = TestServer::builder(TESTED)
        .server_options(ServerOptions {
            ops_token: OpsToken::new(TOKEN),
            ..ServerOptions::default()
        })
        .start()
        .await;
    let bearer = format!("Bearer {TOKEN}");
    let test = |body: String| {
        let server = &server;
        let bearer = bearer.clone();
        async move {
            server
                .request(
                    "POST",
                    "/admin/webhooks/tested/test",
                    &[("Authorization", bearer.as_str())],
                    body,
                )
                .await
        }
    };
    let r = test(sample("push", "sha256=wrong", false)).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let report = r.json();
    assert_eq!(report["verified"], serde_json::Value::Null);
    assert_eq!(report["filtered"], false);
    let destinations = report["destinations"].as_array().unwrap();
    assert_eq!(destinations[0]["outcome"], "deliver");
    assert_eq!(
        destinations[0]["body"],
        serde_json::from_str::<serde_json::Value>(PUSH).unwrap()
    );
    assert_eq!(
        destinations[0]["headers"]["x-github-event"], "push",
        "{report}"
    );
    assert_eq!(
        destinations[0]["headers"]["x-hub-signature-256"], "***",
        "secrets are masked in the answer: {report}"
    );
    assert_eq!(destinations[1]["outcome"], "deliver");
    assert_eq!(
        destinations[1]["body"]["text"],
        "octocat pushed 2 commits to hello"
    );
    assert!(destinations[1]["took_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(destinations[2]["outcome"], "error");
    assert!(
        destinations[2]["error"]
            .as_str()
            .unwrap()
            .starts_with("jq transform: the program failed"),
        "{report}"
    );

    let report = test(sample("ping", "sha256=wrong", false)).await.json();
    assert_eq!(report["destinations"][0]["outcome"], "filtered");
    assert_eq!(report["destinations"][0]["matched"], false);
    assert_eq!(report["destinations"][1]["outcome"], "deliver");

    let report = test(sample("push", "sha256=wrong", true)).await.json();
    assert_eq!(report["verified"], false, "{report}");
    assert_eq!(report["rejected"]["validator"], "hmac");
    assert!(report.get("destinations").is_none());

    use hmac::{KeyInit as _, Mac as _};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"dry-secret").unwrap();
    mac.update(PUSH.as_bytes());
    let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let report = test(sample("push", &signature, true)).await.json();
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["destinations"][1]["outcome"], "deliver");

    for (body, status) in [
        (
            r#"{"body": 1, "nosuch": 2}"#.to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            r#"{"headers": {"bad name": "x"}}"#.to_owned(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let r = test(body.clone()).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
    }
    let r = server
        .request(
            "POST",
            "/admin/webhooks/nosuch/test",
            &[("Authorization", bearer.as_str())],
            "{}",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = server
        .request(
            "POST",
            "/admin/webhooks/tested/test",
            &[],
            sample("push", "", false),
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "the ops token is needed"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    for sink in &sinks {
        assert_eq!(sink.attempts(), 0, "nothing was delivered");
    }
}

/// `webhook-server test ID --body FILE -H 'K: V'`: the same report from the config files.
#[test]
fn the_cli_test_command_prints_the_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let webhooks = dir.path().join("webhooks.json");
    std::fs::write(
        &webhooks,
        r#"{"gh": {"module": "log", "transform": {"jq": "{repo: .repository.full_name, event: $headers[\"x-github-event\"]}"}}}"#,
    )
    .unwrap();
    let body = dir.path().join("push.json");
    std::fs::write(&body, PUSH).unwrap();
    let out = Command::new(crate::spool_crash::BIN)
        .args(["test", "gh", "--body"])
        .arg(&body)
        .args(["-H", "X-GitHub-Event: push", "--webhooks-config"])
        .arg(&webhooks)
        .current_dir(dir.path())
        .env_remove("CONNECTIONS_CONFIG_FILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["destinations"][0]["body"],
        serde_json::json!({"repo": "octo/hello", "event": "push"}),
        "{report}"
    );
    let out = Command::new(crate::spool_crash::BIN)
        .args(["test", "nosuch", "--webhooks-config"])
        .arg(&webhooks)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no webhook `nosuch`"));
}
