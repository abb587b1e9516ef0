//! `kafka` under the destination conformance suite, against a tansu broker of the test's
//! own that advertises the suite's proxy (so every connection of the client goes through
//! it), read back with kafka-python.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::interop::{OwnServer, free_port, unique};
use webhook_testkit::proxy::TcpProxy;

use super::kafka::{connections, consume, create_topic, decode, registry, tansu};

struct Kafka {
    proxy: TcpProxy,
    topic: String,
    _broker: OwnServer,
}

impl Subject for Kafka {
    fn registry(&self) -> webhook_core::Registry {
        registry()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "kafka", "connection": "kafka", "module-config": {{"topic": "{}"}}"#,
            self.topic
        )
    }

    fn connections(&self) -> Option<String> {
        Some(connections(&self.proxy.addr.to_string()))
    }

    fn refused(&self) -> Option<String> {
        // a missing topic is refused at start-up, not per delivery
        None
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let bootstrap = self.proxy.addr.to_string();
        let records =
            tokio::task::block_in_place(|| consume(&bootstrap, &self.topic, at_least, 10));
        records
            .iter()
            .map(|r| Received {
                body: decode(&r["value"]),
                request_id: r["headers"]
                    .get("x-request-id")
                    .map(|id| String::from_utf8(decode(id)).unwrap()),
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kafka_conforms() {
    let port = free_port();
    let proxy = TcpProxy::start(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let listener = format!("tcp://127.0.0.1:{port}");
    let advertised = format!("tcp://{}", proxy.addr);
    let broker = OwnServer::start(
        &tansu(),
        &[
            "broker",
            "--listener-url",
            &listener,
            "--advertised-listener-url",
            &advertised,
            "--storage-engine",
            "memory://tansu/",
        ],
        port,
    );
    let topic = unique("conformance");
    create_topic(&proxy.addr.to_string(), &topic, 1).await;
    let subject = Kafka {
        proxy,
        topic,
        _broker: broker,
    };
    conformance::check(&subject).await;
}
