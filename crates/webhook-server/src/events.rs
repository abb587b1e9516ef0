//! `GET /admin/events`: the request history's live events as Server-Sent Events
//! (`event: request` / `event: attempt`, `data:` the JSON of [`webhook_history::LiveEvent`]),
//! optionally for one webhook (`?webhook=`). The dashboard's request log follows it.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::Either;
use tokio::sync::{broadcast, mpsc, watch};
use webhook_core::response::json;
use webhook_history::{History, LiveEvent};

use crate::server::ServedBody;

/// How often an idle stream gets a comment line (keeps proxies from closing it and notices
/// a browser that went away).
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A Server-Sent Events body: the chunks a task sends, until it stops.
#[derive(Debug)]
pub struct EventStream {
    chunks: mpsc::Receiver<Bytes>,
}

impl http_body::Body for EventStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.chunks
            .poll_recv(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// Tells open event streams the server is shutting down (so they end, and the drain does
/// not wait for them).
#[derive(Debug, Clone)]
pub struct Closing(Arc<watch::Sender<bool>>);

impl Default for Closing {
    fn default() -> Self {
        Self(Arc::new(watch::channel(false).0))
    }
}

impl Closing {
    /// End every open stream.
    pub fn close(&self) {
        self.0.send_replace(true);
    }
}

/// Answer `GET /admin/events` with `query` (the URL's query string).
pub fn answer(history: Option<&History>, query: &str, closing: &Closing) -> Response<ServedBody> {
    let Some(history) = history else {
        return json(
            StatusCode::NOT_FOUND,
            r#"{"detail":"Not Found (the request history is off: --history on)"}"#,
        )
        .map(Either::Left);
    };
    let webhook = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "webhook")
        .map(|(_, value)| value.into_owned())
        .filter(|value| !value.is_empty());
    let events = history.subscribe();
    let (chunks, body) = mpsc::channel(64);
    tokio::spawn(follow(events, chunks, webhook, closing.0.subscribe()));
    let mut response = Response::new(EventStream { chunks: body });
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    *response.status_mut() = StatusCode::OK;
    response.map(Either::Right)
}

/// Copy `events` (those of `webhook`, when set) to `chunks` until the client goes away or
/// the server shuts down.
async fn follow(
    mut events: broadcast::Receiver<LiveEvent>,
    chunks: mpsc::Sender<Bytes>,
    webhook: Option<String>,
    mut closing: watch::Receiver<bool>,
) {
    if chunks
        .send(Bytes::from_static(b"retry: 2000\n: following\n\n"))
        .await
        .is_err()
    {
        return;
    }
    let mut beat = tokio::time::interval(KEEP_ALIVE);
    beat.tick().await;
    loop {
        let chunk = tokio::select! {
            got = events.recv() => match got {
                Ok(event) if webhook.as_deref().is_none_or(|w| *w == *event.webhook) => {
                    Bytes::from(format!("event: {}\ndata: {}\n\n", event.kind, event.data))
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Bytes::from(format!("event: lagged\ndata: {{\"missed\":{missed}}}\n\n"))
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = beat.tick() => Bytes::from_static(b": keep-alive\n\n"),
            _ = closing.wait_for(|closing| *closing) => break,
            () = chunks.closed() => break,
        };
        if chunks.send(chunk).await.is_err() {
            break;
        }
    }
}
