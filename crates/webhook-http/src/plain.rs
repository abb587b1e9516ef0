//! Keep-alive HTTP/1.1 connections to `http://` targets, each driven by the task that sends
//! on it.
//!
//! hyper-util's pooled client runs every connection as a task of its own and hands each
//! request and response across a channel to it, so one forward costs two task wake-ups (and
//! often a hop between worker threads) plus the pool's bookkeeping. Here a delivery takes an
//! idle connection out of the pool, polls hyper's HTTP/1 connection itself while it waits
//! for the answer, and puts the connection back when the answer is read: one task, no
//! hand-over. `https://` targets keep hyper-util's client (TLS, HTTP/2 by ALPN).

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower_service::Service;

use crate::error::HttpError;

/// Most idle connections kept per target (host and port).
const MAX_IDLE_PER_TARGET: usize = 256;

type Sender = http1::SendRequest<Full<Bytes>>;
type Driver = http1::Connection<TokioIo<TcpStream>, Full<Bytes>>;

/// One HTTP/1.1 connection: the half that sends requests and the half that does the I/O.
struct Connection {
    sender: Sender,
    driver: Driver,
    /// Set once the connection has ended (closed by the target, or failed).
    ended: bool,
    idle_since: Instant,
}

/// Poll a connection's I/O half (it reads and writes as the exchange needs); note when it
/// ends.
fn drive(driver: &mut Driver, ended: &mut bool, cx: &mut Context<'_>) {
    if !*ended && Pin::new(driver).poll(cx).is_ready() {
        *ended = true;
    }
}

impl Connection {
    /// Poll the I/O half once, without waiting: a close the target sent is noticed here.
    async fn settle(&mut self) {
        poll_fn(|cx| {
            drive(&mut self.driver, &mut self.ended, cx);
            Poll::Ready(())
        })
        .await;
    }

    /// Not ended and waiting for a request.
    fn usable(&self) -> bool {
        !self.ended && self.sender.is_ready()
    }
}

/// How one exchange on a connection went.
enum Exchange {
    /// The answer, read whole (body up to `max_body`); `true` when the connection can carry
    /// another request.
    Answered(Response<Bytes>, bool),
    /// The connection failed before the request was written: it can go on another one.
    NotSent(Request<Full<Bytes>>, hyper::Error),
    /// The request failed after (or while) it was written.
    Failed(hyper::Error),
}

/// The pool of idle connections to `http://` targets, by authority.
pub(crate) struct PlainPool {
    connector: HttpConnector,
    idle: Mutex<HashMap<Authority, Vec<Connection>>>,
    idle_timeout: Duration,
    max_body: usize,
}

impl std::fmt::Debug for PlainPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainPool").finish_non_exhaustive()
    }
}

impl PlainPool {
    pub(crate) fn new(connector: HttpConnector, idle_timeout: Duration, max_body: usize) -> Self {
        Self {
            connector,
            idle: Mutex::new(HashMap::new()),
            idle_timeout,
            max_body,
        }
    }

    /// Send `request` (its URI absolute, `http://`) and read the answer. A pooled
    /// connection the target closed meanwhile is replaced by a new one, the request resent
    /// only when it had not been written.
    pub(crate) async fn send(
        &self,
        mut request: Request<Full<Bytes>>,
    ) -> Result<Response<Bytes>, HttpError> {
        let uri = request.uri().clone();
        let Some(authority) = uri.authority().cloned() else {
            return Err(HttpError::Request("the URL has no host".into()));
        };
        if !request.headers().contains_key(HOST) {
            let host = match uri.port_u16() {
                Some(80) | None => HeaderValue::from_str(uri.host().unwrap_or_default()),
                Some(_) => HeaderValue::from_str(authority.as_str()),
            };
            if let Ok(host) = host {
                request.headers_mut().insert(HOST, host);
            }
        }
        *request.uri_mut() = Uri::from(
            uri.path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        );
        loop {
            let (mut connection, pooled) = match self.checkout(&authority).await {
                Some(connection) => (connection, true),
                None => (self.connect(&uri).await?, false),
            };
            match self.exchange(&mut connection, request).await {
                Exchange::Answered(response, reusable) => {
                    if reusable {
                        self.checkin(authority, connection);
                    }
                    return Ok(response);
                }
                // a kept-alive connection the target had closed: try the next one
                Exchange::NotSent(unsent, _) if pooled => request = unsent,
                Exchange::NotSent(_, err) | Exchange::Failed(err) => {
                    return Err(HttpError::Request(err.into()));
                }
            }
        }
    }

    /// The most recently used idle connection to `authority` that is still open.
    async fn checkout(&self, authority: &Authority) -> Option<Connection> {
        loop {
            let mut connection = {
                let mut idle = match self.idle.lock() {
                    Ok(idle) => idle,
                    Err(poisoned) => poisoned.into_inner(),
                };
                idle.get_mut(authority)?.pop()?
            };
            if connection.idle_since.elapsed() < self.idle_timeout {
                connection.settle().await;
                if connection.usable() {
                    return Some(connection);
                }
            }
        }
    }

    fn checkin(&self, authority: Authority, mut connection: Connection) {
        connection.idle_since = Instant::now();
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        let list = idle.entry(authority).or_default();
        if list.len() < MAX_IDLE_PER_TARGET {
            list.push(connection);
        }
    }

    async fn connect(&self, uri: &Uri) -> Result<Connection, HttpError> {
        let stream = self
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(|err| HttpError::Connect(err.into()))?;
        let (sender, driver) = http1::Builder::new()
            .handshake(stream)
            .await
            .map_err(|err| HttpError::Connect(err.into()))?;
        Ok(Connection {
            sender,
            driver,
            ended: false,
            idle_since: Instant::now(),
        })
    }

    /// Send on `connection` and read the answer, polling the connection's I/O meanwhile.
    async fn exchange(
        &self,
        connection: &mut Connection,
        request: Request<Full<Bytes>>,
    ) -> Exchange {
        let Connection {
            sender,
            driver,
            ended,
            ..
        } = connection;
        let answer = {
            let mut answer = pin!(sender.try_send_request(request));
            poll_fn(|cx| {
                drive(driver, ended, cx);
                answer.as_mut().poll(cx)
            })
            .await
        };
        let response = match answer {
            Ok(response) => response,
            Err(mut err) => {
                return match err.take_message() {
                    Some(unsent) => Exchange::NotSent(unsent, err.into_error()),
                    None => Exchange::Failed(err.into_error()),
                };
            }
        };
        let (parts, body) = response.into_parts();
        let body = {
            let mut collect = pin!(Limited::new(body, self.max_body).collect());
            poll_fn(|cx| {
                drive(driver, ended, cx);
                collect.as_mut().poll(cx)
            })
            .await
        };
        let (body, complete) = match body {
            Ok(collected) => (collected.to_bytes(), true),
            Err(_) => (Bytes::new(), false),
        };
        // a `Connection: close` answer ends the connection here
        connection.settle().await;
        let reusable = complete && connection.usable();
        Exchange::Answered(Response::from_parts(parts, body), reusable)
    }
}
