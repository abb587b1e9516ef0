//! One client per connections.json entry; async-nats reconnects it by itself.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use async_nats::{Client, ConnectOptions, jetstream};
use webhook_core::BuildError;

use crate::config::NatsConnection;

/// How long start-up waits for the first connection before going on without it.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(3);
/// How long a JetStream publish waits for the stream's ack.
pub(crate) const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// The shared client of one connection entry and its JetStream context.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: Client,
    pub(crate) jetstream: jetstream::Context,
}

impl Shared {
    pub(crate) fn connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }
}

pub(crate) async fn connect(connection: &NatsConnection, name: &str) -> Result<Shared, BuildError> {
    let mut options = ConnectOptions::new()
        .name(format!("webhook-gateway/{name}"))
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(2))
        .request_timeout(Some(ACK_TIMEOUT))
        // Reconnect quickly: a delivery fails at once (503) while disconnected.
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2_000))
        });
    match (
        &connection.username,
        &connection.password,
        &connection.token,
    ) {
        (Some(user), Some(password), None) => {
            options = options.user_and_password(user.clone(), password.expose().to_owned());
        }
        (None, None, Some(token)) => options = options.token(token.expose().to_owned()),
        (None, None, None) => {}
        _ => {
            return Err(BuildError::other(
                "give `username` with `password`, or `token`, not a mix",
            ));
        }
    }
    if connection.tls {
        options = options.require_tls(true);
    }
    if let Some(ca) = &connection.tls_ca_cert_file {
        options = options.add_root_certificates(PathBuf::from(ca));
    }
    match (&connection.tls_cert_file, &connection.tls_key_file) {
        (Some(cert), Some(key)) => {
            options = options.add_client_certificate(PathBuf::from(cert), PathBuf::from(key));
        }
        (None, None) => {}
        _ => {
            return Err(BuildError::other(
                "give both `tls_cert_file` and `tls_key_file`, or neither",
            ));
        }
    }
    let servers: Vec<String> = match &connection.url {
        Some(urls) => urls.split(',').map(|u| u.trim().to_owned()).collect(),
        None => vec![format!("nats://{}:{}", connection.host, connection.port)],
    };
    let addrs = servers
        .iter()
        .map(|s| s.parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| BuildError::other(format!("bad nats server address: {e}")))?;
    let client = options
        .connect(addrs)
        .await
        .map_err(|e| BuildError::other(format!("cannot set up the nats client: {e}")))?;
    let deadline = Instant::now() + FIRST_CONNECT_WAIT;
    while client.connection_state() != State::Connected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if client.connection_state() == State::Connected {
        tracing::info!(connection = %name, servers = ?servers, "connected to nats");
    } else {
        tracing::warn!(connection = %name, servers = ?servers, "nats not reachable at start-up; reconnecting in the background");
    }
    let jetstream = jetstream::ContextBuilder::new()
        .timeout(ACK_TIMEOUT)
        .build(client.clone());
    Ok(Shared { client, jetstream })
}
