use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::HeaderMap;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use webhook_core::config::timeout_seconds;
use webhook_core::{BuildContext, BuildError, Delivery, Module, ModuleError, NoConnection};

use crate::config::{FrameFormat, WebSocketConfig};
use crate::connection::{Command, Outgoing, Target, supervise};
use crate::error::WsError;

/// Frames waiting for the connection task; senders beyond this wait their turn.
const QUEUE: usize = 1024;

/// The `websocket` destination.
#[derive(Debug)]
pub struct WebSocket {
    commands: mpsc::Sender<Command>,
    connected: Arc<AtomicBool>,
    format: FrameFormat,
    include_headers: bool,
    wait_for_response: bool,
    timeout: Duration,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The SSRF guard `config` asks for; a literal private target is refused at once.
fn guard(config: &WebSocketConfig) -> Result<Option<webhook_http_client::TargetGuard>, BuildError> {
    let guard = webhook_http_client::TargetGuard::from_config(&webhook_http_client::GuardConfig {
        deny_private_targets: config.deny_private_targets,
        allowed_hosts: config.allowed_hosts.clone(),
    });
    if let Some(guard) = &guard
        && let Ok(uri) = config.url.parse::<http::Uri>()
        && let Some(host) = uri.host()
    {
        guard
            .check_host(host)
            .map_err(|e| BuildError::key("url", e))?;
    }
    Ok(guard)
}

impl Module for WebSocket {
    const KIND: &'static str = "websocket";
    type Config = WebSocketConfig;
    type Connection = NoConnection;

    fn validate(config: &WebSocketConfig, _: &BuildContext) -> Result<(), BuildError> {
        scheme_is_tls(&config.url)?;
        guard(config)?;
        handshake_headers(config)?;
        timeout_seconds(config.timeout).map_err(|m| BuildError::key("timeout", m))?;
        Ok(())
    }

    async fn build(
        config: WebSocketConfig,
        _: Option<NoConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        if config.max_retries.is_some() {
            tracing::warn!(webhook = %context.webhook_id, "websocket max_retries has no effect: retries are the webhook's `retry` setting and reconnecting never stops");
        }
        let tls = if scheme_is_tls(&config.url)? {
            Some(webhook_http_client::tls_config().map_err(|e| BuildError::other(e.to_string()))?)
        } else {
            None
        };
        let timeout = timeout_seconds(config.timeout).map_err(|m| BuildError::key("timeout", m))?;
        let target = Target {
            guard: guard(&config)?,
            url: config.url.clone(),
            headers: handshake_headers(&config)?,
            tls,
            timeout,
        };
        let (commands, receiver) = mpsc::channel(QUEUE);
        let connected = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(supervise(target, receiver, Arc::clone(&connected)));
        Ok(Self {
            commands,
            connected,
            format: config.format,
            include_headers: config.include_headers,
            wait_for_response: config.wait_for_response,
            timeout,
            task: Mutex::new(Some(task)),
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let frame = match self.format {
            FrameFormat::Json => {
                let text = String::from_utf8(delivery.json_envelope(self.include_headers))
                    .unwrap_or_default();
                Message::text(text)
            }
            FrameFormat::Raw => Message::binary(delivery.body.clone()),
        };
        let (done, result) = oneshot::channel();
        let outgoing = Outgoing {
            frame,
            wait_for_reply: self.wait_for_response,
            done,
        };
        self.commands
            .send(Command::Send(outgoing))
            .await
            .map_err(|_| ModuleError::from(WsError::Stopped))?;
        // The task answers every frame; the bound only guards against a stuck peer.
        match tokio::time::timeout(self.timeout * 2 + Duration::from_secs(1), result).await {
            Ok(Ok(outcome)) => outcome.map_err(ModuleError::from),
            Ok(Err(_)) => Err(WsError::Stopped.into()),
            Err(_) => Err(WsError::NoReply(self.timeout).into()),
        }
    }

    async fn health(&self) -> Result<(), ModuleError> {
        if self.connected.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(WsError::Disconnected.into())
        }
    }

    /// Close the connection (a close frame) after the frames already handed over.
    async fn shutdown(&self) {
        let _ = self.commands.send(Command::Close).await;
        let task = self.task.lock().await.take();
        if let Some(task) = task
            && tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
        {
            tracing::warn!("websocket did not close within 2 s");
        }
    }
}

/// Whether the URL is `wss://` (true) or `ws://` (false).
fn scheme_is_tls(url: &str) -> Result<bool, BuildError> {
    let lower = url.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("wss://") {
        (true, rest)
    } else if let Some(rest) = lower.strip_prefix("ws://") {
        (false, rest)
    } else {
        return Err(BuildError::key(
            "url",
            format!("`{url}` must start with ws:// or wss://"),
        ));
    };
    if rest.1.is_empty() || rest.1.starts_with('/') {
        return Err(BuildError::key("url", format!("`{url}` has no host")));
    }
    Ok(rest.0)
}

fn handshake_headers(config: &WebSocketConfig) -> Result<HeaderMap, BuildError> {
    webhook_http_client::parse_headers(&config.headers, |_| false)
}
