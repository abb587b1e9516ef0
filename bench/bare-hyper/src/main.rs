//! The ceiling for the benchmark: hyper + tokio, read the body (capped), verify
//! `X-Hub-Signature-256` over it in constant time, answer 200. Nothing else.
//!
//! `bare-hyper PORT SECRET`; with SECRET `-` it answers 200 to every request after reading
//! the body (the HTTP target of the `http_webhook` benchmark).

use std::convert::Infallible;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::Sha256;
use tokio::net::TcpListener;

const MAX_BODY: usize = 10 * 1024 * 1024;

async fn handle(keyed: Option<Hmac<Sha256>>, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let signature = request
        .headers()
        .get("x-hub-signature-256")
        .and_then(|v| v.as_bytes().strip_prefix(b"sha256="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok());
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::PAYLOAD_TOO_LARGE,
                r#"{"detail":"Payload too large"}"#,
            );
        }
    };
    let Some(mut mac) = keyed else {
        return reply(StatusCode::OK, r#"{"message":"200 OK"}"#);
    };
    mac.update(&body);
    match signature {
        Some(sig) if mac.verify_slice(&sig).is_ok() => {
            reply(StatusCode::OK, r#"{"message":"200 OK"}"#)
        }
        _ => reply(StatusCode::UNAUTHORIZED, r#"{"detail":"Unauthorized"}"#),
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().unwrap_or_else(|| "9101".to_owned()).parse()?;
    let secret = args.next().unwrap_or_else(|| "bench-secret".to_owned());
    let keyed = if secret == "-" {
        None
    } else {
        Some(Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?)
    };
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let keyed = keyed.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let keyed = keyed.clone();
                async move { Ok::<_, Infallible>(handle(keyed, req).await) }
            });
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
