//! A minimal HTTP/1.1 client for the admin API, used by the `dead-letters` subcommand.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Send `method path` to the server at `base` (`http://host:port`) with the ops token.
pub async fn request(
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
) -> Result<(StatusCode, Bytes)> {
    let Some(authority) = base.strip_prefix("http://") else {
        bail!(
            "--admin-url must start with http:// (got {base}); this client has no TLS: \
             run it on the server's host or through an SSH tunnel to a loopback port"
        );
    };
    let authority = authority.trim_end_matches('/');
    if token.is_some() && !is_loopback(authority) {
        // the CLI has no log output: its warnings go to stderr
        eprintln!(
            "warning: the ops token goes in cleartext to {authority}, which is not this \
             machine: prefer running the CLI on the server's host or through an SSH tunnel"
        );
    }
    let stream = TcpStream::connect(authority)
        .await
        .with_context(|| format!("cannot connect to {authority}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake failed")?;
    tokio::spawn(connection);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::HOST, authority);
    if let Some(token) = token {
        builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = sender
        .send_request(builder.body(Empty::<Bytes>::new())?)
        .await
        .context("request failed")?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// `host:port` names this machine (`localhost`, 127.0.0.0/8 or `[::1]`).
fn is_loopback(authority: &str) -> bool {
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_authorities() {
        for yes in [
            "127.0.0.1:8000",
            "localhost:1",
            "[::1]:8000",
            "127.9.9.9",
            "LOCALHOST",
        ] {
            assert!(is_loopback(yes), "{yes}");
        }
        for no in [
            "10.0.0.1:8000",
            "example.com:8000",
            "[2001:db8::1]:80",
            "localhost.evil:1",
        ] {
            assert!(!is_loopback(no), "{no}");
        }
    }
}
