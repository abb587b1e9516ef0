//! The optional SSRF guard of HTTP-speaking destinations (`deny_private_targets`, with the
//! original's `allowed_hosts`): a target that is, or resolves to, a loopback, private,
//! link-local (cloud metadata), unique-local, CGNAT, multicast or unspecified address is
//! refused. Hostnames are checked on the addresses they resolve to when each connection is
//! made (so DNS rebinding gains nothing); literal IPs when the destination is built.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use serde::Deserialize;

/// The guard's settings, in a destination's `module-config`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct GuardConfig {
    /// Refuse private targets (default false: targets come from the operator's config).
    #[serde(default)]
    pub deny_private_targets: bool,
    /// Hosts allowed even when private (names or IPs, compared case-insensitively); the
    /// original's key. Setting it turns the guard on.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// A built guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGuard {
    allowed: Vec<String>,
}

impl TargetGuard {
    /// The guard `config` asks for; `None` when it is off.
    pub fn from_config(config: &GuardConfig) -> Option<Self> {
        (config.deny_private_targets || !config.allowed_hosts.is_empty()).then(|| Self {
            allowed: config
                .allowed_hosts
                .iter()
                .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
                .collect(),
        })
    }

    /// Whether `host` (a URL's host) is on the allow-list.
    pub fn allows_host(&self, host: &str) -> bool {
        let host = host.trim_matches(['[', ']']).to_ascii_lowercase();
        self.allowed.contains(&host)
    }

    /// Check a URL's host when the destination is built: a literal private IP is refused
    /// (hostnames are checked when they are resolved).
    pub fn check_host(&self, host: &str) -> Result<(), String> {
        let bare = host.trim_matches(['[', ']']);
        match bare.parse::<IpAddr>() {
            Ok(ip) if !self.allows_host(host) && !is_public(ip) => Err(format!(
                "{host} is a private address and deny_private_targets is on (add it to allowed_hosts to allow it)"
            )),
            _ if bare.eq_ignore_ascii_case("localhost") && !self.allows_host(host) => {
                Err("localhost is refused with deny_private_targets (add it to allowed_hosts to allow it)".to_owned())
            }
            _ => Ok(()),
        }
    }
}

/// Whether `ip` is a public unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// The system resolver; with a guard, it drops private addresses of hosts not on the
/// allow-list.
#[derive(Debug, Clone)]
pub(crate) struct GuardedResolver {
    inner: GaiResolver,
    guard: Option<Arc<TargetGuard>>,
}

impl GuardedResolver {
    pub(crate) fn new(guard: Option<TargetGuard>) -> Self {
        Self {
            inner: GaiResolver::new(),
            guard: guard.map(Arc::new),
        }
    }
}

type Resolving = Pin<Box<dyn Future<Output = io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = io::Error;
    type Future = Resolving;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let host = name.as_str().to_owned();
        let resolving = self.inner.call(name);
        let guard = self.guard.clone();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = resolving.await?.collect();
            let Some(guard) = guard else {
                return Ok(addrs.into_iter());
            };
            if guard.allows_host(&host) {
                return Ok(addrs.into_iter());
            }
            let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{host} resolves only to private addresses (deny_private_targets)"),
                ));
            }
            Ok(public.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_targets_are_told_apart() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        let guard = TargetGuard::from_config(&GuardConfig {
            deny_private_targets: true,
            allowed_hosts: vec!["internal.example".into(), "10.0.0.5".into()],
        })
        .unwrap();
        assert!(guard.check_host("169.254.169.254").is_err());
        assert!(guard.check_host("localhost").is_err());
        assert!(guard.check_host("10.0.0.5").is_ok());
        assert!(guard.check_host("example.com").is_ok());
        assert!(TargetGuard::from_config(&GuardConfig::default()).is_none());
    }
}
