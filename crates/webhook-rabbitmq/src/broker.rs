//! One connection and publishing channel per connections.json entry, re-established on
//! demand after it drops.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{Channel, Connection, ConnectionProperties};
use tokio::sync::{Mutex, RwLock};

use crate::config::RabbitConnection;
use crate::error::RabbitError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// After a failed connection attempt, deliveries fail at once for this long instead of
/// each trying again.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Publishing channels per connection. RabbitMQ serves each channel with one Erlang
/// process, so publishes spread over a few channels confirm in parallel.
const CHANNELS: usize = 4;

/// A live connection with its publishing channels (publisher confirms on).
pub(crate) struct Live {
    connection: Connection,
    channels: Vec<Channel>,
    next: AtomicUsize,
    declared: StdMutex<HashSet<String>>,
}

impl Live {
    fn usable(&self) -> bool {
        self.connection.status().connected() && self.channels.iter().all(|c| c.status().connected())
    }

    /// The next publishing channel, round robin.
    pub(crate) fn channel(&self) -> &Channel {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        &self.channels[i]
    }
}

/// The shared broker handle of one connection entry.
pub(crate) struct Broker {
    name: String,
    uri: AMQPUri,
    live: RwLock<Option<Arc<Live>>>,
    connecting: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Broker {
    pub(crate) fn new(name: String, connection: &RabbitConnection) -> Self {
        let uri = AMQPUri {
            scheme: AMQPScheme::AMQP,
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: connection.user.clone(),
                    password: connection.pass.expose().to_owned(),
                },
                host: connection.host.clone(),
                port: connection.port,
            },
            vhost: connection.vhost.clone(),
            query: AMQPQueryString {
                connection_timeout: Some(CONNECT_TIMEOUT.as_millis() as u64),
                heartbeat: Some(10),
                ..AMQPQueryString::default()
            },
        };
        Self {
            name,
            uri,
            live: RwLock::new(None),
            connecting: Mutex::new(None),
        }
    }

    /// The live connection, connecting first when there is none (one attempt at a time).
    pub(crate) async fn live(&self) -> Result<Arc<Live>, RabbitError> {
        if let Some(live) = self.live.read().await.as_ref()
            && live.usable()
        {
            return Ok(Arc::clone(live));
        }
        let mut last_failure = self.connecting.lock().await;
        // Someone else may have reconnected while we waited.
        if let Some(live) = self.live.read().await.as_ref()
            && live.usable()
        {
            return Ok(Arc::clone(live));
        }
        if last_failure.is_some_and(|at| at.elapsed() < RETRY_PAUSE) {
            return Err(RabbitError::Reconnecting);
        }
        match self.connect().await {
            Ok(live) => {
                *last_failure = None;
                let live = Arc::new(live);
                *self.live.write().await = Some(Arc::clone(&live));
                tracing::info!(connection = %self.name, host = %self.uri.authority.host, "connected to rabbitmq");
                Ok(live)
            }
            Err(err) => {
                *last_failure = Some(Instant::now());
                tracing::warn!(connection = %self.name, error = %err, "cannot connect to rabbitmq");
                Err(err)
            }
        }
    }

    async fn connect(&self) -> Result<Live, RabbitError> {
        let connect = Connection::connect_uri(self.uri.clone(), ConnectionProperties::default());
        let connection = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
            Ok(result) => result.map_err(RabbitError::Connect)?,
            Err(_) => return Err(RabbitError::Timeout),
        };
        let mut channels = Vec::with_capacity(CHANNELS);
        for _ in 0..CHANNELS {
            let channel = connection
                .create_channel()
                .await
                .map_err(RabbitError::Connect)?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(RabbitError::Connect)?;
            channels.push(channel);
        }
        Ok(Live {
            connection,
            channels,
            next: AtomicUsize::new(0),
            declared: StdMutex::new(HashSet::new()),
        })
    }

    /// Forget a connection that failed, so the next delivery reconnects.
    pub(crate) async fn discard(&self, broken: &Arc<Live>) {
        let mut live = self.live.write().await;
        if live
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, broken))
        {
            *live = None;
        }
    }

    /// Close the connection (idempotent).
    pub(crate) async fn close(&self) {
        if let Some(live) = self.live.write().await.take() {
            for channel in &live.channels {
                let _ = channel.close(200, "shutdown".into()).await;
            }
            let _ = live.connection.close(200, "shutdown".into()).await;
        }
    }
}

impl Live {
    /// Declare `queue` durable with `arguments`, once per connection.
    pub(crate) async fn ensure_queue(
        &self,
        queue: &str,
        arguments: &FieldTable,
    ) -> Result<(), RabbitError> {
        let known = self
            .declared
            .lock()
            .map(|set| set.contains(queue))
            .unwrap_or(false);
        if known {
            return Ok(());
        }
        self.channel()
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                arguments.clone(),
            )
            .await
            .map_err(|err| declare_error(queue, err))?;
        if let Ok(mut set) = self.declared.lock() {
            set.insert(queue.to_owned());
        }
        Ok(())
    }
}

/// A declaration refused because the queue exists with other arguments is a configuration
/// problem (not retryable); anything else is the channel failing.
fn declare_error(queue: &str, err: lapin::Error) -> RabbitError {
    if let lapin::ErrorKind::ProtocolError(amqp) = err.kind()
        && *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)
    {
        return RabbitError::QueueMismatch {
            queue: queue.to_owned(),
            broker: amqp.get_message().to_string(),
        };
    }
    RabbitError::Channel(err)
}
