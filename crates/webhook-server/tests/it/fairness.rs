//! Quota fairness (issue 18, point 5) through the real server: junk sent to one public
//! webhook whose destination refuses everything fills the dead letters and that
//! webhook's share, never the other webhooks' room; dead letters may expire; a damaged
//! dead letter is listed as damaged and can be deleted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_core::{PipelineOptions, SpoolOptions};
use webhook_server::server::{OpsToken, ServerOptions};
use webhook_testkit::{TestClient, TestServer};

const TOKEN: &str = "fairness-token";

async fn start(dir: &Path, spool: SpoolOptions) -> TestServer {
    TestServer::builder(
        r#"{"public": {"ack": "persisted", "data_type": "blob", "module": "test_recorder",
                       "module-config": {"sink": "fairness_public", "fail_as": "permanent"}},
            "important": {"ack": "persisted", "module": "log"}}"#,
    )
    .options(PipelineOptions {
        spool: SpoolOptions {
            dir: dir.to_path_buf(),
            ..spool
        },
        ..PipelineOptions::default()
    })
    .server_options(ServerOptions {
        ops_token: OpsToken::new(TOKEN),
        ..ServerOptions::default()
    })
    .start()
    .await
}

async fn dead_letters(client: &TestClient) -> Vec<serde_json::Value> {
    let bearer = format!("Bearer {TOKEN}");
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

#[tokio::test]
async fn one_webhook_cannot_block_the_others() {
    let dir = tempfile::tempdir().unwrap();
    webhook_testkit::recorder::Sink::named("fairness_public").fail_next(u32::MAX);
    let server = start(
        dir.path(),
        SpoolOptions {
            max_bytes: 2_000_000,
            dead_letter_max_bytes: 500_000,
            ..SpoolOptions::default()
        },
    )
    .await;
    let junk = "j".repeat(200_000);
    let mut refused = 0;
    for _ in 0..20 {
        match server.post("public", &[], junk.clone()).await.status {
            StatusCode::OK => {}
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("unexpected {other}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused > 0, "the public webhook was never refused");
    // the important webhook is still taken, now and five seconds later
    for _ in 0..2 {
        let answer = server.post("important", &[], r#"{"order": 1}"#).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let letters = dead_letters(&server).await;
    assert!(
        !letters.is_empty() && letters.len() <= 3,
        "{} dead letters",
        letters.len()
    );
}

#[tokio::test]
async fn dead_letters_expire_and_damaged_ones_are_listed_and_deletable() {
    let dir = tempfile::tempdir().unwrap();
    webhook_testkit::recorder::Sink::named("fairness_public").fail_next(u32::MAX);
    let server = start(
        dir.path(),
        SpoolOptions {
            dead_letter_ttl: Some(Duration::from_secs(2)),
            ..SpoolOptions::default()
        },
    )
    .await;
    for _ in 0..2 {
        assert_eq!(server.post("public", &[], "x").await.status, StatusCode::OK);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while dead_letters(&server).await.len() < 2 {
        assert!(Instant::now() < deadline, "no dead letters");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // damage one file
    let letters = dead_letters(&server).await;
    let id = letters[0]["id"].as_str().unwrap().to_owned();
    let file = dir.path().join("dead").join(format!("{id}.dead"));
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[20] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let listed = dead_letters(&server).await;
    let damaged: Vec<_> = listed.iter().filter(|l| l["damaged"] == true).collect();
    assert_eq!(damaged.len(), 1, "{listed:?}");
    assert_eq!(damaged[0]["id"], id.as_str());
    let bearer = format!("Bearer {TOKEN}");
    let deleted = server
        .request(
            "DELETE",
            &format!("/admin/dead-letters/{id}"),
            &[("Authorization", bearer.as_str())],
            "",
        )
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.text());
    assert!(!file.exists());
    // the other one expires by itself
    let deadline = Instant::now() + Duration::from_secs(10);
    while !dead_letters(&server).await.is_empty() {
        assert!(Instant::now() < deadline, "the dead letter did not expire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
