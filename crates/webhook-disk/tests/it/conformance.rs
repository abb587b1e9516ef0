//! `save_to_disk` under the destination conformance suite: files in a data directory of the
//! test's own, read back with `std::fs`. It has no service to cut, so the suite's
//! unavailable/reconnect and refusal steps do not apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use webhook_core::PipelineOptions;
use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::proxy::TcpProxy;

struct Disk {
    data: tempfile::TempDir,
}

impl Subject for Disk {
    fn registry(&self) -> webhook_core::Registry {
        let mut registry = webhook_testkit::recorder::registry_with_recorder();
        webhook_disk::register(&mut registry);
        registry
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        None
    }

    fn options(&self) -> PipelineOptions {
        PipelineOptions {
            data_dir: self.data.path().to_path_buf(),
            ..PipelineOptions::default()
        }
    }

    fn destination(&self) -> String {
        r#""module": "save_to_disk", "module-config": {"path": "conformance"}"#.to_owned()
    }

    fn refused(&self) -> Option<String> {
        None
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let dir = self.data.path().join("conformance");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut files: Vec<Received> = std::fs::read_dir(&dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                        .map(|e| {
                            // `<webhook id>-<unix ms>-<request id>.json`
                            let name = e.file_name().to_string_lossy().into_owned();
                            let stem = name.trim_end_matches(".json").trim_end_matches(".bin");
                            let id = stem.get(stem.len().saturating_sub(36)..).map(str::to_owned);
                            Received {
                                body: std::fs::read(e.path()).unwrap(),
                                request_id: id,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            if files.len() >= at_least || Instant::now() > deadline {
                files.sort_by(|a, b| a.body.cmp(&b.body));
                return files;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn save_to_disk_conforms() {
    let subject = Disk {
        data: tempfile::tempdir().unwrap(),
    };
    conformance::check(&subject).await;
}
