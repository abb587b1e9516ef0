//! The task that owns one destination's WebSocket: connects, sends the frames it is handed
//! one at a time (so they arrive in order), notices when the peer goes away and reconnects
//! with exponential backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, Request};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::error::WsError;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What the connection task is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a frame.
    Send(Outgoing),
    /// Close the connection (after the frames before this one) and stop.
    Close,
}

/// One frame to send, and where to report how it went.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) frame: Message,
    pub(crate) wait_for_reply: bool,
    pub(crate) done: oneshot::Sender<Result<(), WsError>>,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) url: String,
    pub(crate) headers: HeaderMap,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    pub(crate) timeout: Duration,
    /// The SSRF guard (`deny_private_targets`), if on.
    pub(crate) guard: Option<webhook_http_client::TargetGuard>,
}

impl Target {
    fn request(&self) -> Result<Request<()>, tokio_tungstenite::tungstenite::Error> {
        let mut request = self.url.as_str().into_client_request()?;
        for (name, value) in &self.headers {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        Ok(request)
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Run until every sender of `outgoing` is gone: keep the connection up, send frames.
pub(crate) async fn supervise(
    target: Target,
    mut commands: mpsc::Receiver<Command>,
    connected: Arc<AtomicBool>,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        match connect(&target).await {
            Ok(socket) => {
                tracing::info!(url = %webhook_core::url_for_logs(&target.url), "websocket connected");
                backoff = FIRST_BACKOFF;
                connected.store(true, Ordering::SeqCst);
                let ended = serve(socket, &mut commands, target.timeout).await;
                connected.store(false, Ordering::SeqCst);
                match ended {
                    Ended::Shutdown => return,
                    Ended::Dropped(reason) => {
                        tracing::warn!(url = %webhook_core::url_for_logs(&target.url), reason, "websocket connection lost; reconnecting");
                    }
                }
            }
            Err(reason) => {
                tracing::warn!(url = %webhook_core::url_for_logs(&target.url), error = %reason, retry_in = ?backoff, "websocket connect failed");
            }
        }
        // Down: refuse frames at once (the sender retries) until the next attempt.
        let next_attempt = tokio::time::Instant::now() + backoff;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(next_attempt) => break,
                command = commands.recv() => match command {
                    Some(Command::Send(message)) => {
                        let _ = message.done.send(Err(WsError::Disconnected));
                    }
                    Some(Command::Close) | None => return,
                },
            }
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn connect(target: &Target) -> Result<Socket, String> {
    let request = target.request().map_err(|e| e.to_string())?;
    let connector = match &target.tls {
        Some(config) => Connector::Rustls(Arc::clone(config)),
        None => Connector::Plain,
    };
    let attempt = async {
        let Some(guard) = &target.guard else {
            return tokio_tungstenite::connect_async_tls_with_config(
                request,
                None,
                true,
                Some(connector),
            )
            .await
            .map_err(|e| e.to_string());
        };
        // Resolve, check and connect to the checked address ourselves: what is checked is
        // what is connected to (DNS rebinding gains nothing).
        let uri = request.uri();
        let host = uri.host().unwrap_or("").trim_matches(['[', ']']).to_owned();
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("wss") {
                443
            } else {
                80
            });
        let addrs = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let allowed = guard.allows_host(&host);
        let addr = addrs
            .into_iter()
            .find(|a| allowed || webhook_http_client::is_public(a.ip()))
            .ok_or_else(|| {
                format!("{host} resolves only to private addresses (deny_private_targets)")
            })?;
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        tokio_tungstenite::client_async_tls_with_config(request, stream, None, Some(connector))
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(target.timeout, attempt).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(format!("no handshake within {:?}", target.timeout)),
    }
}

enum Ended {
    Shutdown,
    Dropped(&'static str),
}

async fn serve(socket: Socket, commands: &mut mpsc::Receiver<Command>, timeout: Duration) -> Ended {
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            // A close or EOF already waiting is seen before the next frame is sent.
            biased;
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Close(_))) => return Ended::Dropped("closed by the peer"),
                Some(Ok(_)) => {} // pings are answered by tungstenite; stray frames ignored
                Some(Err(_)) => return Ended::Dropped("read error"),
                None => return Ended::Dropped("end of stream"),
            },
            command = commands.recv() => {
                let Some(Command::Send(message)) = command else {
                    let _ = sink.send(Message::Close(None)).await;
                    return Ended::Shutdown;
                };
                if let Err(err) = sink.send(message.frame).await {
                    let _ = message.done.send(Err(WsError::Send(err)));
                    return Ended::Dropped("write error");
                }
                if !message.wait_for_reply {
                    let _ = message.done.send(Ok(()));
                    continue;
                }
                match tokio::time::timeout(timeout, next_data_frame(&mut stream)).await {
                    Ok(true) => {
                        let _ = message.done.send(Ok(()));
                    }
                    Ok(false) => {
                        let _ = message.done.send(Err(WsError::ClosedBeforeReply));
                        return Ended::Dropped("closed before answering");
                    }
                    Err(_) => {
                        // A late answer would be taken for the next frame's: start afresh.
                        let _ = message.done.send(Err(WsError::NoReply(timeout)));
                        return Ended::Dropped("no answer in time");
                    }
                }
            }
        }
    }
}

/// Wait for the peer's next text or binary frame; false when the connection ends first.
async fn next_data_frame<S>(stream: &mut S) -> bool
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await {
            Some(Ok(Message::Text(_) | Message::Binary(_))) => return true,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return false,
            Some(Ok(_)) => {}
        }
    }
}
