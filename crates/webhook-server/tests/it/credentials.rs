//! Credentials at rest and in transit (issue 18, point 6): the spool, its dead letters and
//! `save_to_disk` files are readable by the server's user only, whatever the umask; the
//! gateway's own inbound credentials are not passed on to destinations unless the webhook
//! asks (`forward_credentials: true`); `save_to_disk` creates nothing outside the data
//! directory, and `check-config` sees through symlinks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use webhook_core::{PipelineOptions, SpoolOptions};
use webhook_testkit::TestServer;
use webhook_testkit::target::HttpTarget;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn spool_dead_letters_and_written_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let spool = dir.path().join("spool");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // (the test process's umask, usually 022, would give 0644 files and 0755 directories)
    let server = TestServer::builder(
        r#"{"rejected": {"ack": "persisted", "module": "test_recorder",
                         "module-config": {"sink": "credentials_private", "fail_as": "permanent"},
                         "authorization": "Bearer tok123"},
            "disk": {"ack": "delivered", "module": "save_to_disk", "module-config": {"path": "out/sub"}}}"#,
    )
    .options(PipelineOptions {
        data_dir: data.clone(),
        spool: SpoolOptions {
            dir: spool.clone(),
            ..SpoolOptions::default()
        },
        ..PipelineOptions::default()
    })
    .start()
    .await;
    webhook_testkit::recorder::Sink::named("credentials_private").fail_next(u32::MAX);
    let answer = server
        .post(
            "rejected",
            &[("Authorization", "Bearer tok123")],
            r#"{"x":1}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        server.post("disk", &[], r#"{"y":2}"#).await.status,
        StatusCode::OK
    );
    // wait for the dead letter
    let dead = spool.join("dead");
    for _ in 0..100 {
        if std::fs::read_dir(&dead).unwrap().count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(mode(&spool), 0o700, "spool directory");
    assert_eq!(mode(&dead), 0o700, "dead/");
    let mut files = 0;
    for entry in std::fs::read_dir(&spool)
        .unwrap()
        .chain(std::fs::read_dir(&dead).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_file() {
            files += 1;
            assert_eq!(mode(&path), 0o600, "{}", path.display());
        }
    }
    assert!(
        files >= 3,
        "segment, LOCK and a dead letter expected, found {files}"
    );
    assert_eq!(mode(&data.join("out")), 0o700);
    assert_eq!(mode(&data.join("out/sub")), 0o700);
    let written: Vec<_> = std::fs::read_dir(data.join("out/sub")).unwrap().collect();
    assert_eq!(written.len(), 1);
    assert_eq!(mode(&written[0].as_ref().unwrap().path()), 0o600);
    // the credential is not at rest either: it was taken off before spooling
    for entry in std::fs::read_dir(&spool)
        .unwrap()
        .chain(std::fs::read_dir(&dead).unwrap())
    {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(6).any(|w| w == b"tok123"),
                "{} holds the bearer token",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn inbound_credentials_stay_at_the_gateway_unless_asked_for() {
    let target = HttpTarget::start().await;
    let webhooks = format!(
        r#"{{"bearer": {{"ack": "delivered", "module": "http_webhook", "authorization": "Bearer inbound-token",
                       "module-config": {{"url": "{url}", "forward_headers": true}}}},
            "apikey": {{"ack": "delivered", "module": "http_webhook", "header_auth": {{"header_name": "X-API-Key", "api_key": "key123"}},
                       "module-config": {{"url": "{url}", "forward_headers": true}}}},
            "gitlab": {{"ack": "delivered", "module": "http_webhook", "verify": {{"provider": "gitlab", "secret": "gl-token"}},
                       "module-config": {{"url": "{url}", "forward_headers": true}}}},
            "asked": {{"ack": "delivered", "module": "http_webhook", "authorization": "Bearer inbound-token",
                      "forward_credentials": true,
                      "module-config": {{"url": "{url}", "forward_headers": true}}}}}}"#,
        url = target.url("/in")
    );
    let server = TestServer::start(&webhooks).await;
    let sent = [
        ("bearer", ("Authorization", "Bearer inbound-token")),
        ("apikey", ("X-API-Key", "key123")),
        ("gitlab", ("X-Gitlab-Token", "gl-token")),
    ];
    for (id, header) in sent {
        let answer = server
            .post(id, &[header, ("X-GitHub-Event", "push")], r#"{"a":1}"#)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{id}: {}", answer.text());
    }
    let answer = server
        .post(
            "asked",
            &[("Authorization", "Bearer inbound-token")],
            r#"{"a":1}"#,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK);

    let received = target.received();
    assert_eq!(received.len(), 4);
    for (request, (id, (name, _))) in received.iter().zip(sent) {
        assert!(
            request.headers.get(name).is_none(),
            "{id}: {name} was forwarded"
        );
        assert_eq!(
            request.headers.get("x-github-event").unwrap(),
            "push",
            "{id}"
        );
    }
    assert_eq!(
        received[3].headers.get("authorization").unwrap(),
        "Bearer inbound-token",
        "forward_credentials: true passes it on"
    );
}

#[tokio::test]
async fn save_to_disk_creates_nothing_outside_the_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, data.join("link")).unwrap();
    let webhooks = r#"{"disk": {"module": "save_to_disk", "module-config": {"path": "link/sub"}}}"#;
    let errors = TestServer::builder(webhooks)
        .options(PipelineOptions {
            data_dir: data.clone(),
            ..webhook_testkit::delivered_options()
        })
        .config_error()
        .await;
    assert!(errors.contains("outside the data directory"), "{errors}");
    assert!(
        !outside.join("sub").exists(),
        "a directory was created outside"
    );

    // check-config (the binary) sees the symlink too
    let file = dir.path().join("webhooks.json");
    std::fs::write(&file, webhooks).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_webhook-server"))
        .args(["check-config", "--webhooks-config"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success(), "check-config accepted a symlink out");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("outside the data directory"), "{text}");
    assert!(!outside.join("sub").exists());
}
