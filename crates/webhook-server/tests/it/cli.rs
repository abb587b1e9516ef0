//! The `webhook-server` binary itself: flags, env fallbacks, check-config, signals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_server::registry::DESTINATIONS;
use webhook_testkit::TestClient;

const BIN: &str = env!("CARGO_BIN_EXE_webhook-server");

#[test]
fn version_lists_what_this_build_has() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let destinations: Vec<&str> = text
        .lines()
        .find_map(|l| l.strip_prefix("destinations: "))
        .unwrap()
        .split(", ")
        .collect();
    let mut expected = vec!["log"];
    // the kinds the table declares are exactly those its crates register
    for destination in DESTINATIONS {
        if destination.compiled {
            expected.extend_from_slice(destination.kinds);
        }
    }
    expected.sort_unstable();
    assert_eq!(destinations, expected, "{text}");
    assert!(
        text.contains("validators: ip_whitelist, authorization, basic_auth, digest_auth, header_auth, query_auth, jwt, oauth1, oauth2, hmac, verify, rate_limit, recaptcha, json_schema"),
        "{text}"
    );
}

#[test]
fn check_config_lists_every_error_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.json");
    std::fs::write(
        &path,
        r#"{"w": {"module": "log", "colour": 1}, "v": {"module": "log", "hmac": {}}}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("check-config")
        .env("WEBHOOKS_CONFIG_FILE", &path)
        .env_remove("CONNECTIONS_CONFIG_FILE")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = path.display().to_string();
    assert!(
        stderr.contains(&format!("{file}: w.colour: unknown key")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{file}: v.hmac: missing field `secret`")),
        "{stderr}"
    );

    let out = Command::new(BIN)
        .args(["check-config", "--webhooks-config", "/does/not/exist.json"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/does/not/exist.json: cannot read file")
    );
}

#[test]
fn every_compiled_out_destination_names_its_feature() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.json");
    for destination in DESTINATIONS.iter().filter(|d| !d.compiled) {
        for kind in destination.kinds {
            std::fs::write(&path, format!(r#"{{"d": {{"module": "{kind}"}}}}"#)).unwrap();
            let out = Command::new(BIN)
                .args(["check-config", "--webhooks-config"])
                .arg(&path)
                .output()
                .unwrap();
            assert!(!out.status.success());
            let stderr = String::from_utf8_lossy(&out.stderr);
            let feature = destination.feature;
            assert!(
                stderr.contains(&format!(
                    "d.module: module `{kind}` is not in this build; rebuild with `--features {feature}`"
                )),
                "{stderr}"
            );
        }
    }
}

/// A transform language is in the build with its feature (`--version` lists it and a good
/// program passes `check-config`), or asking for it names the feature to rebuild with.
#[test]
fn transform_languages_are_in_the_build_or_name_their_feature() {
    let version = Command::new(BIN).arg("--version").output().unwrap();
    let version = String::from_utf8(version.stdout).unwrap();
    let listed: Vec<&str> = version
        .lines()
        .find_map(|l| l.strip_prefix("transforms: "))
        .unwrap_or("")
        .split(", ")
        .filter(|l| !l.is_empty())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("webhooks.json");
    for (language, program, built) in [
        ("jq", "{ref}", cfg!(feature = "jq")),
        (
            "js",
            "addHandler('transform', (r) => r)",
            cfg!(feature = "js"),
        ),
    ] {
        assert_eq!(listed.contains(&language), built, "{version}");
        let config = serde_json::json!({"t": {"module": "log", "transform": {language: program}}});
        std::fs::write(&path, config.to_string()).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--webhooks-config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), built, "{language}: {stderr}");
        if !built {
            assert!(
                stderr.contains(&format!("t.transform.{language}"))
                    && stderr.contains(&format!("--features {language}")),
                "{stderr}"
            );
        }
    }
}

#[tokio::test]
async fn serves_from_env_config_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hooks.json");
    std::fs::write(
        &path,
        r#"{"hello": {"module": "log", "authorization": "Bearer {$HELLO_TOKEN}"}}"#,
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["--log-format", "json"])
        .env("WEBHOOKS_CONFIG_FILE", &path)
        .env_remove("CONNECTIONS_CONFIG_FILE")
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("HELLO_TOKEN", "xyz")
        .env("RUST_LOG", "info")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut addr = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while addr.is_none() && Instant::now() < deadline {
        if let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                panic!("a log line is not JSON: {line}");
            };
            if entry["message"] == "listening" {
                addr = entry["address"].as_str().map(|a| a.parse().unwrap());
            }
        }
    }
    let addr = addr.expect("the server did not report its address");
    let client = TestClient::new(addr);
    let r = client
        .post("hello", &[("Authorization", "Bearer xyz")], r#"{"a":1}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        client.post("hello", &[], "{}").await.status,
        StatusCode::UNAUTHORIZED
    );

    // The log line of the delivery carries ids, not the body (include_body is off), and
    // each request has one access-log line: request id, webhook, status, latency. In either
    // order: with `ack: persisted` the delivery runs after the answer.
    let (mut saw_delivery, mut saw_access) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(saw_delivery && saw_access) && Instant::now() < deadline {
        let Ok(line) = lines_rx.recv_timeout(Duration::from_millis(200)) else {
            continue;
        };
        if line.contains("webhook received") {
            assert!(line.contains(r#""webhook":"hello""#), "{line}");
            assert!(
                !line.contains(r#"{\"a\":1}"#),
                "body logged without include_body: {line}"
            );
            saw_delivery = true;
        } else if line.contains(r#""target":"webhook::request""#) {
            let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(entry["webhook"], "hello", "{line}");
            assert!(
                entry["request_id"]
                    .as_str()
                    .is_some_and(|id| id.len() == 36),
                "{line}"
            );
            assert!(entry["latency_us"].as_u64().is_some(), "{line}");
            assert!(!line.contains("xyz"), "a secret in the access log: {line}");
            saw_access = true;
        }
    }
    assert!(saw_delivery, "no log line for the delivered webhook");
    assert!(saw_access, "no access-log line");

    // SIGHUP reloads the file.
    std::fs::write(
        &path,
        r#"{"hello": {"module": "log", "authorization": "Bearer {$HELLO_TOKEN}"}, "added": {"module": "log"}}"#,
    )
    .unwrap();
    let status = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.post("added", &[], "{}").await.status != StatusCode::OK {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}
