//! A real HTTP server for tests of destinations that speak HTTP: it records every request
//! (method, path, headers, body) and the number of TCP connections it accepted, and answers
//! as the test tells it (a status, extra headers, a delay).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the target received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Debug, Clone)]
struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    delay: Duration,
    body: Bytes,
}

#[derive(Debug)]
struct State {
    received: Mutex<Vec<ReceivedRequest>>,
    reply: Mutex<Reply>,
    connections: AtomicUsize,
}

/// The target server; stops when dropped.
#[derive(Debug)]
pub struct HttpTarget {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl HttpTarget {
    /// Listen on a free loopback port; answers 200 until told otherwise.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap()).await
    }

    /// Listen on `addr` (to bring a stopped target back on the same port).
    pub async fn start_on(addr: SocketAddr) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            received: Mutex::new(Vec::new()),
            reply: Mutex::new(Reply {
                status: StatusCode::OK,
                headers: Vec::new(),
                delay: Duration::ZERO,
                body: Bytes::from_static(b"{\"ok\":true}"),
            }),
            connections: AtomicUsize::new(0),
        });
        let accept_state = Arc::clone(&state);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accept_state.connections.fetch_add(1, Ordering::SeqCst);
                let state = Arc::clone(&accept_state);
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&state), request));
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answer every following request with `status` and `headers`.
    pub fn respond(&self, status: StatusCode, headers: &[(&str, &str)]) {
        let mut reply = self.state.reply.lock().unwrap();
        reply.status = status;
        reply.headers = headers
            .iter()
            .map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect();
    }

    /// Answer every following request with `body` (JSON: also sets its content type).
    pub fn respond_json(&self, status: StatusCode, body: &str) {
        self.respond(status, &[("content-type", "application/json")]);
        self.state.reply.lock().unwrap().body = Bytes::from(body.to_owned());
    }

    /// Wait this long before answering.
    pub fn delay(&self, delay: Duration) {
        self.state.reply.lock().unwrap().delay = delay;
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.state.received.lock().unwrap().clone()
    }

    /// How many TCP connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }
}

impl Drop for HttpTarget {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let reply = state.reply.lock().unwrap().clone();
    state.received.lock().unwrap().push(ReceivedRequest {
        method: parts.method,
        path: parts
            .uri
            .path_and_query()
            .map_or_else(String::new, |p| p.to_string()),
        headers: parts.headers,
        body,
        at: std::time::Instant::now(),
    });
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value);
    }
    Ok(response)
}
