//! `mqtt` under the destination conformance suite: a Mosquitto of the test's own (with a
//! user, so a wrong password is the permanent refusal), reached through the suite's proxy,
//! read back by a paho-mqtt subscriber that connects directly. MQTT 3.1.1 messages carry no
//! headers, so no request id travels with them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::interop::unique;
use webhook_testkit::proxy::TcpProxy;

use super::mqtt::{OwnBroker, Subscriber, connection, registry};

struct Mosquitto {
    broker: OwnBroker,
    proxy: TcpProxy,
    topic: String,
    subscriber: Subscriber,
}

impl Subject for Mosquitto {
    fn registry(&self) -> webhook_core::Registry {
        registry()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "mqtt", "connection": "mqtt", "module-config": {{"topic": "{}"}}"#,
            self.topic
        )
    }

    fn connections(&self) -> Option<String> {
        Some(format!(
            "{{{}, {}}}",
            connection("mqtt", self.proxy.addr.port(), Some(("gateway", "s3cret"))),
            connection("wrong", self.broker.port, Some(("gateway", "nope")))
        ))
    }

    fn refused(&self) -> Option<String> {
        Some(format!(
            r#""module": "mqtt", "connection": "wrong", "module-config": {{"topic": "{}"}}"#,
            self.topic
        ))
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        self.subscriber
            .wait_for(at_least, 10)
            .await
            .into_iter()
            .map(|m| Received {
                body: m.data,
                request_id: None,
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_conforms() {
    let broker = OwnBroker::start(Some(("gateway", "s3cret")));
    let topic = unique("conformance");
    let subscriber = Subscriber::start_with_user(broker.port, &topic, ("gateway", "s3cret"));
    let target: SocketAddr = ([127, 0, 0, 1], broker.port).into();
    let subject = Mosquitto {
        proxy: TcpProxy::start(target).await,
        broker,
        topic,
        subscriber,
    };
    conformance::check(&subject).await;
}
