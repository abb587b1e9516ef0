//! `websocket` under the destination conformance suite, against a recording Python
//! `websockets` server behind the suite's proxy (raw frames: the exact body bytes).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::proxy::TcpProxy;

use super::websocket::{Peer, data};

struct Ws {
    peer: Peer,
    proxy: TcpProxy,
}

impl Subject for Ws {
    fn registry(&self) -> webhook_core::Registry {
        let mut registry = webhook_testkit::recorder::registry_with_recorder();
        webhook_websocket::register(&mut registry);
        registry
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "websocket", "module-config": {{"url": "ws://{}/events", "format": "raw", "timeout": 2}}"#,
            self.proxy.addr
        )
    }

    fn refused(&self) -> Option<String> {
        None
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        self.peer
            .wait_for(at_least)
            .await
            .iter()
            .map(|frame| Received {
                body: data(frame),
                request_id: None,
            })
            .collect()
    }
}

#[tokio::test]
async fn websocket_conforms() {
    let peer = Peer::start("silent");
    let proxy = TcpProxy::start(format!("127.0.0.1:{}", peer.server.port).parse().unwrap()).await;
    conformance::check(&Ws { peer, proxy }).await;
}
