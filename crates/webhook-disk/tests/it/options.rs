//! The original's later `save_to_disk` keys through the real pipeline: `base_dir`,
//! `filename_pattern`, `file_extension`, `include_headers`, each confined to the data
//! directory and checked at load.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_core::PipelineOptions;
use webhook_testkit::TestServer;

fn registry() -> webhook_core::Registry {
    let mut registry = webhook_testkit::recorder::registry_with_recorder();
    webhook_disk::register(&mut registry);
    registry
}

fn options(data: &Path) -> PipelineOptions {
    PipelineOptions {
        data_dir: data.to_path_buf(),
        ..webhook_testkit::delivered_options()
    }
}

/// The names and contents of the files in `dir` once there are `count`.
async fn files(dir: &Path, count: usize) -> Vec<(String, Vec<u8>)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut found: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .filter(|(name, _)| !name.starts_with('.'))
                    .collect()
            })
            .unwrap_or_default();
        if found.len() >= count || Instant::now() > deadline {
            found.sort();
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_originals_later_keys() {
    let data = tempfile::tempdir().unwrap();
    let server = TestServer::builder(
        r#"{"pattern": {"module": "save_to_disk", "module-config": {
                "base_dir": "archive", "path": "stripe",
                "filename_pattern": "webhook_{webhook_id}_{timestamp}_{uuid}.txt",
                "include_headers": true}},
            "ext": {"module": "save_to_disk", "data_type": "blob",
                "module-config": {"path": "blobs", "file_extension": ".dat"}}}"#,
    )
    .registry(registry())
    .options(options(data.path()))
    .start()
    .await;
    let r = server
        .post("pattern", &[("X-Event", "charge")], r#"{"amount": 1}"#)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let id = r.header("x-request-id").unwrap().to_owned();
    assert_eq!(
        server.post("ext", &[], "raw bytes").await.status,
        StatusCode::OK
    );

    let saved = files(&data.path().join("archive/stripe"), 1).await;
    assert_eq!(saved.len(), 1);
    let (name, content) = &saved[0];
    assert!(
        name.starts_with("webhook_pattern_") && name.ends_with(&format!("_{id}.txt")),
        "{name}"
    );
    let envelope: serde_json::Value = serde_json::from_slice(content).unwrap();
    assert_eq!(envelope["payload"]["amount"], 1);
    assert_eq!(envelope["headers"]["x-event"], "charge");

    let blobs = files(&data.path().join("blobs"), 1).await;
    assert_eq!(blobs.len(), 1);
    assert!(blobs[0].0.ends_with(".dat"), "{}", blobs[0].0);
    assert_eq!(
        blobs[0].1, b"raw bytes",
        "exact bytes without include_headers"
    );

    for (config, expected) in [
        (
            r#"{"filename_pattern": "{timestamp}.json"}"#,
            "filename_pattern: ",
        ),
        (r#"{"filename_pattern": "../{uuid}"}"#, "filename_pattern: "),
        (
            r#"{"filename_pattern": "{uuid}{date}"}"#,
            "filename_pattern: ",
        ),
        (r#"{"file_extension": "a/b"}"#, "file_extension: "),
        (r#"{"base_dir": "/etc"}"#, "base_dir: "),
        (r#"{"base_dir": "x", "path": "../../y"}"#, "path: "),
    ] {
        let error = TestServer::builder(&format!(
            r#"{{"w": {{"module": "save_to_disk", "module-config": {config}}}}}"#
        ))
        .registry(registry())
        .options(options(data.path()))
        .config_error()
        .await;
        assert!(
            error.contains(&format!("w.module-config.{expected}")),
            "{config}: {error}"
        );
    }
    assert!(!data.path().join("x").exists() && !data.path().join("y").exists());
}
