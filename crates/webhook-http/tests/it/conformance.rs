//! `http_webhook` under the destination conformance suite, against a real HTTP server
//! (the testkit's recording `HttpTarget`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use http::StatusCode;
use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::proxy::TcpProxy;
use webhook_testkit::target::HttpTarget;

struct Http {
    target: HttpTarget,
    proxy: TcpProxy,
    refusing: HttpTarget,
}

impl Subject for Http {
    fn registry(&self) -> webhook_core::Registry {
        let mut registry = webhook_testkit::recorder::registry_with_recorder();
        webhook_http::register(&mut registry);
        registry
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        let via = self.proxy.addr;
        format!(
            r#""module": "http_webhook", "module-config": {{"url": "http://{via}/conformance", "timeout": 2}}"#
        )
    }

    fn refused(&self) -> Option<String> {
        Some(format!(
            r#""module": "http_webhook", "module-config": {{"url": "{}"}}"#,
            self.refusing.url("/refused")
        ))
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let received = self.target.received();
            if received.len() >= at_least || Instant::now() > deadline {
                return received
                    .into_iter()
                    .map(|r| Received {
                        body: r.body.to_vec(),
                        request_id: r
                            .headers
                            .get("x-webhook-request-id")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    })
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn http_webhook_conforms() {
    let refusing = HttpTarget::start().await;
    refusing.respond(StatusCode::UNPROCESSABLE_ENTITY, &[]);
    let target = HttpTarget::start().await;
    let subject = Http {
        proxy: TcpProxy::start(target.addr).await,
        target,
        refusing,
    };
    conformance::check(&subject).await;
}
