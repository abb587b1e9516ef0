//! `s3` under the destination conformance suite, against s3s-fs (an S3-compatible server
//! that checks SigV4) behind the suite's proxy, read back with boto3.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::proxy::TcpProxy;

use super::s3::{SECRET_KEY, Store, connections, decode};

struct S3 {
    store: Store,
    proxy: TcpProxy,
}

impl Subject for S3 {
    fn registry(&self) -> webhook_core::Registry {
        let mut registry = webhook_testkit::recorder::registry_with_recorder();
        webhook_s3::register(&mut registry);
        registry
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        r#""module": "s3", "connection": "store", "module-config": {"bucket": "conformance", "timeout": 2}"#
            .to_owned()
    }

    fn connections(&self) -> Option<String> {
        let endpoint = format!("http://{}", self.proxy.addr);
        let mut both: serde_json::Value =
            serde_json::from_str(&connections(&endpoint, SECRET_KEY)).unwrap();
        let bad: serde_json::Value =
            serde_json::from_str(&connections(&endpoint, "not-the-secret")).unwrap();
        both["bad"] = bad["store"].clone();
        Some(both.to_string())
    }

    fn refused(&self) -> Option<String> {
        // a wrong secret: SignatureDoesNotMatch, which retrying cannot fix
        Some(
            r#""module": "s3", "connection": "bad", "module-config": {"bucket": "conformance"}"#
                .to_owned(),
        )
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let objects = tokio::task::block_in_place(|| self.store.objects("conformance"));
            if objects.len() >= at_least || std::time::Instant::now() > deadline {
                return objects
                    .iter()
                    .map(|o| Received {
                        body: decode(&o["body"]),
                        request_id: o["metadata"]["webhook-request-id"]
                            .as_str()
                            .map(str::to_owned),
                    })
                    .collect();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_conforms() {
    let store = Store::start("conformance");
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", store.server.port).parse().unwrap()).await;
    conformance::check(&S3 { store, proxy }).await;
}
