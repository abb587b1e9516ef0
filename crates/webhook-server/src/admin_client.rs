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
        bail!("--admin-url must start with http:// (got {base})");
    };
    let authority = authority.trim_end_matches('/');
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
