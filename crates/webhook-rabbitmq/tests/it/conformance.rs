//! `rabbitmq` under the destination conformance suite, against the real RabbitMQ (through
//! the suite's proxy), read back with pika.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;

use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::interop::{require_tcp, unique};
use webhook_testkit::proxy::TcpProxy;

use super::rabbitmq::{amqp_parts, body_of, connections, declare_with_pika, registry, run_pika};

struct Rabbit {
    proxy: TcpProxy,
    queue: String,
    mismatched: String,
    got: Mutex<Vec<Received>>,
}

impl Subject for Rabbit {
    fn registry(&self) -> webhook_core::Registry {
        registry()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{}"}}"#,
            self.queue
        )
    }

    fn connections(&self) -> Option<String> {
        Some(connections("127.0.0.1", self.proxy.addr.port()))
    }

    fn refused(&self) -> Option<String> {
        // declared by pika with other arguments than the gateway's: the broker refuses
        Some(format!(
            r#""module": "rabbitmq", "connection": "rabbit", "module-config": {{"queue_name": "{}"}}"#,
            self.mismatched
        ))
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let have = self.got.lock().unwrap().len();
        if have < at_least {
            let wanted = (at_least - have).to_string();
            let output = tokio::task::block_in_place(|| {
                run_pika("rabbit_consume.py", &[&self.queue, &wanted, "10", "keep"])
            });
            let mut got = self.got.lock().unwrap();
            for line in output.lines() {
                let message: serde_json::Value = serde_json::from_str(line).unwrap();
                if message.get("body").is_some() {
                    got.push(Received {
                        body: body_of(&message),
                        request_id: message["message_id"].as_str().map(str::to_owned),
                    });
                }
            }
        }
        self.got.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_conforms() {
    let (_, _, host, port) = amqp_parts();
    require_tcp("rabbitmq", &host, port);
    let mismatched = unique("conformance_mismatch");
    assert_eq!(
        declare_with_pika(&mismatched, r#"{"x-queue-version": 2}"#),
        "ok"
    );
    let broker: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let subject = Rabbit {
        proxy: TcpProxy::start(broker).await,
        queue: unique("conformance"),
        mismatched,
        got: Mutex::new(Vec::new()),
    };
    conformance::check(&subject).await;
    // leave nothing behind
    run_pika("rabbit_consume.py", &[&subject.queue, "0", "1"]);
    run_pika("rabbit_consume.py", &[&subject.mismatched, "0", "1"]);
}
