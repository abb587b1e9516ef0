use ipnet::IpNet;
use webhook_core::{BuildError, Check, Rejection, RequestView, Validator};

/// `ip_whitelist`: only clients whose IP is in the list (IPs or CIDRs, v4 and v6) pass.
///
/// The client IP is the socket peer, or the `X-Forwarded-For` client when the peer is a
/// trusted proxy (see `PipelineOptions::trusted_proxies`).
#[derive(Debug, Clone)]
pub struct IpAllowList {
    networks: Vec<IpNet>,
}

impl Validator for IpAllowList {
    const KEY: &'static str = "ip_whitelist";
    type Config = Vec<String>;

    fn build(config: Vec<String>) -> Result<Self, BuildError> {
        if config.is_empty() {
            return Err(BuildError::other(
                "the list is empty: no client could ever pass",
            ));
        }
        let mut networks = Vec::with_capacity(config.len());
        for (i, entry) in config.iter().enumerate() {
            let text = entry.trim();
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
            match net {
                Ok(net) => networks.push(net.trunc()),
                Err(_) => {
                    return Err(BuildError::key(
                        format!("[{i}]"),
                        format!("`{entry}` is neither an IP address nor a CIDR (e.g. 10.0.0.0/8)"),
                    ));
                }
            }
        }
        Ok(Self { networks })
    }

    fn needs_body(&self) -> bool {
        false
    }

    fn check<'a>(&'a self, request: &'a RequestView<'a>) -> Check<'a> {
        // unknown (an unparsable X-Forwarded-For from a trusted proxy): fail closed
        if request.client_ip.is_unspecified() {
            return Check::Reject(Rejection::forbidden("client_ip_unknown"));
        }
        if self
            .networks
            .iter()
            .any(|net| net.contains(&request.client_ip))
        {
            Check::Pass
        } else {
            Check::Reject(Rejection::forbidden("ip_not_allowed"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::run;
    use http::HeaderMap;

    #[test]
    fn ips_and_cidrs() {
        let v = IpAllowList::build(vec![
            "192.0.2.7".into(),
            "10.0.0.0/8".into(),
            "2001:db8::/32".into(),
        ])
        .unwrap();
        let h = HeaderMap::new();
        assert!(run(&v, &h, b"", "192.0.2.7").is_ok());
        assert!(run(&v, &h, b"", "10.200.1.1").is_ok());
        assert!(run(&v, &h, b"", "2001:db8::1").is_ok());
        assert_eq!(
            run(&v, &h, b"", "192.0.2.8").unwrap_err().reason,
            "ip_not_allowed"
        );
        assert!(run(&v, &h, b"", "2001:db9::1").is_err());
    }

    #[test]
    fn bad_entries_are_named() {
        let err = IpAllowList::build(vec!["10.0.0.1".into(), "10.0.0.0/33".into()]).unwrap_err();
        assert_eq!(err.key, "[1]");
        assert!(IpAllowList::build(vec![]).is_err());
    }
}
