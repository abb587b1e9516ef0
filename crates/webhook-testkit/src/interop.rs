//! Independent clients and real services for integration tests.
//!
//! Python clients (pika, redis, rq, kafka-python…) live in the venv that `.ci/test` creates;
//! services are found through `WEBHOOK_TEST_<SERVICE>_URL` with loopback defaults. A service
//! that cannot be reached fails the test loudly: it is never skipped.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The Python interpreter of the interop venv (`WEBHOOK_TEST_PYTHON`).
pub fn python() -> PathBuf {
    std::env::var_os("WEBHOOK_TEST_PYTHON").map_or_else(
        || PathBuf::from("/opt/webhook-ci/venv/bin/python"),
        PathBuf::from,
    )
}

/// A program installed in the interop venv (e.g. `rq`).
pub fn venv_program(name: &str) -> PathBuf {
    python()
        .parent()
        .map_or_else(|| PathBuf::from(name), |dir| dir.join(name))
}

/// The directory holding the interop scripts (`redis_subscribe.py`, `rq_jobs.py`, …).
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// `WEBHOOK_TEST_<SERVICE>_URL`, or `default`.
pub fn service_url(service: &str, default: &str) -> String {
    std::env::var(format!("WEBHOOK_TEST_{}_URL", service.to_uppercase()))
        .unwrap_or_else(|_| default.to_owned())
}

/// The host and port of a `scheme://[user:password@]host:port[/…]` service URL.
pub fn host_port(url: &str) -> (String, u16) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let hostport = rest.split('/').next().unwrap_or(rest);
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let (host, port) = hostport
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {url}"));
    (
        host.to_owned(),
        port.parse().unwrap_or_else(|_| panic!("bad port in {url}")),
    )
}

/// Panic with a clear message when `host:port` does not accept connections.
pub fn require_tcp(service: &str, host: &str, port: u16) {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    let up = addrs
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok());
    assert!(
        up,
        "{service} is not reachable at {host}:{port}: start it (bash .ci/test does) or set WEBHOOK_TEST_{}_URL",
        service.to_uppercase()
    );
}

/// A name no other test (or earlier run) uses: for queues, channels, topics.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// A server process of a test's own (a broker on a free port), so stopping or restarting
/// it does not disturb other tests. Killed when dropped.
pub struct OwnServer {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl OwnServer {
    /// Run `program args…` and wait until it accepts connections on `127.0.0.1:port`.
    pub fn start(program: &str, args: &[&str], port: u16) -> Self {
        let child = std::process::Command::new(program)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} (bash .ci/test installs it): {e}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "{program} did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            port,
            child: Some(child),
        }
    }

    /// Kill the process (as a crash would) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A tool that `.ci/test` installs into `/opt/webhook-ci/bin` (`WEBHOOK_TEST_TOOLS`), e.g.
/// `s3s-fs`.
pub fn tool(name: &str) -> String {
    let dir = std::env::var("WEBHOOK_TEST_TOOLS").unwrap_or_else(|_| "/opt/webhook-ci/bin".into());
    PathBuf::from(dir).join(name).to_string_lossy().into_owned()
}

/// This machine's host name, which resolves only to loopback addresses here
/// (`/etc/hosts`): a target that is private without being a literal IP (SSRF guard tests).
pub fn loopback_host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("/proc/sys/kernel/hostname")
        .trim()
        .to_owned();
    let resolved: Vec<SocketAddr> = (name.as_str(), 80)
        .to_socket_addrs()
        .expect("the host name resolves")
        .collect();
    assert!(
        resolved.iter().all(|a| a.ip().is_loopback()),
        "{name} resolves to {resolved:?}: the test needs a name of a loopback address"
    );
    name
}
