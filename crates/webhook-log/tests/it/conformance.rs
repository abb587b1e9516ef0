//! `log` under the destination conformance suite. Its "service" is the log: the lines of
//! target `webhook::log` are read back by a `tracing` layer of the test's own (installed
//! for this test binary), with the body and request id they carry. It has no service to
//! cut, so the suite's unavailable/reconnect and refusal steps do not apply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::proxy::TcpProxy;

/// Every `webhook::log` line's `body` and `request_id`.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<Received>>>);

#[derive(Default)]
struct Fields {
    body: Option<String>,
    request_id: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "body" {
            self.body = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "request_id" => self.request_id = Some(format!("{value:?}")),
            "body" if self.body.is_none() => self.body = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Lines {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "webhook::log" {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.0.lock().unwrap().push(Received {
            body: fields.body.unwrap_or_default().into_bytes(),
            request_id: fields.request_id,
        });
    }
}

struct Log {
    lines: Lines,
}

impl Subject for Log {
    fn registry(&self) -> webhook_core::Registry {
        webhook_testkit::recorder::registry_with_recorder()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        None
    }

    fn destination(&self) -> String {
        r#""module": "log", "module-config": {"include_body": true}"#.to_owned()
    }

    fn refused(&self) -> Option<String> {
        None
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines.0.lock().unwrap().len() < at_least && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.lines.0.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn log_conforms() {
    let lines = Lines::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(lines.clone()))
        .unwrap();
    conformance::check(&Log { lines }).await;
}
