//! `redis_publish` under the destination conformance suite, against the real Redis
//! (through the suite's proxy), read back by a redis-py subscriber that connects directly.
//! (`redis_rq` hands a worker the parsed payload, not the bytes: its own tests run real
//! `rq` workers.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use webhook_testkit::conformance::{self, Received, Subject};
use webhook_testkit::interop::{python, require_tcp, scripts_dir, unique};
use webhook_testkit::proxy::TcpProxy;

use super::redis::{connections, redis_parts, redis_url, registry};

struct Publish {
    proxy: TcpProxy,
    channel: String,
    subscriber: Child,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Drop for Publish {
    fn drop(&mut self) {
        let _ = self.subscriber.kill();
        let _ = self.subscriber.wait();
    }
}

/// The body embedded byte for byte in `{"payload":<body>,"headers":{…}}`.
fn payload_of(envelope: &[u8]) -> Vec<u8> {
    let rest = envelope.strip_prefix(br#"{"payload":"#).unwrap();
    let marker = br#","headers":"#;
    let end = rest
        .windows(marker.len())
        .rposition(|w| w == marker)
        .unwrap_or(rest.len() - 1);
    rest[..end].to_vec()
}

impl Subject for Publish {
    fn registry(&self) -> webhook_core::Registry {
        registry()
    }

    fn proxy(&self) -> Option<&TcpProxy> {
        Some(&self.proxy)
    }

    fn destination(&self) -> String {
        format!(
            r#""module": "redis_publish", "connection": "redis", "module-config": {{"channel": "{}"}}"#,
            self.channel
        )
    }

    fn connections(&self) -> Option<String> {
        let (_, _, db) = redis_parts();
        Some(connections("127.0.0.1", self.proxy.addr.port(), db))
    }

    fn refused(&self) -> Option<String> {
        None
    }

    async fn received(&self, at_least: usize) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.got.lock().unwrap().len() < at_least && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.got.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn redis_publish_conforms() {
    let (host, port, _) = redis_parts();
    require_tcp("redis", &host, port);
    let redis: SocketAddr = (host.as_str(), port)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap();
    let channel = unique("conformance");
    let mut subscriber = Command::new(python())
        .arg(scripts_dir().join("redis_subscribe.py"))
        .args([
            redis_url(),
            channel.clone(),
            "1000".to_owned(),
            "300".to_owned(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("python with redis-py (bash .ci/test installs it)");
    let mut lines = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "READY");
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let envelope = base64::engine::general_purpose::STANDARD
                .decode(line.trim())
                .unwrap();
            sink.lock().unwrap().push(Received {
                body: payload_of(&envelope),
                request_id: None,
            });
        }
    });
    let subject = Publish {
        proxy: TcpProxy::start(redis).await,
        channel,
        subscriber,
        got,
    };
    conformance::check(&subject).await;
}
