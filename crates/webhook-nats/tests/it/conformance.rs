//! `nats` (JetStream) under the destination conformance suite, against the machine's NATS
//! through the suite's proxy, read back by nats-py connecting directly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, ToSocketAddrs};

use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::interop::{require_tcp, unique};
use webhook_testkit::proxy::TcpProxy;

use super::nats::{connections, create_stream, nats_parts, nats_url, read_stream, registry};

struct JetStream {
    proxy: TcpProxy,
    stream: String,
}

impl JetStream {
    fn subject(&self) -> String {
        self.stream.to_lowercase()
    }
}

impl Subject for JetStream {
    fn registry(&self) -> webhook_core::Registry {
        registry()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "nats", "connection": "nats", "module-config": {{"subject": "{}", "jetstream": true}}"#,
            self.subject()
        )
    }

    fn connections(&self) -> Option<String> {
        Some(connections("127.0.0.1", self.proxy.addr.port()))
    }

    /// JetStream required on a subject no stream captures.
    fn refused(&self) -> Option<String> {
        Some(format!(
            r#""module": "nats", "connection": "nats", "module-config": {{"subject": "{}-nostream", "jetstream": true}}"#,
            self.subject()
        ))
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let stream = self.stream.clone();
        tokio::task::spawn_blocking(move || read_stream(&nats_url(), &stream, at_least, 10))
            .await
            .unwrap()
            .into_iter()
            .map(|m| Received {
                body: m.data,
                request_id: m.headers["Nats-Msg-Id"].as_str().map(str::to_owned),
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn nats_jetstream_conforms() {
    let (host, port) = nats_parts();
    require_tcp("nats", &host, port);
    let nats: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let stream = unique("CONF");
    create_stream(&nats_url(), &stream, &[&stream.to_lowercase()]);
    let subject = JetStream {
        proxy: TcpProxy::start(nats).await,
        stream,
    };
    conformance::check(&subject).await;
}
