use std::time::Duration;

use fred::prelude::*;
use fred::types::config::{Config as FredConfig, ReconnectPolicy, ServerConfig, TcpConfig};
use webhook_core::{BuildContext, BuildError, ModuleError};

use crate::config::RedisConnection;

/// How long start-up waits for the first connection before going on without it (the
/// client keeps reconnecting in the background; deliveries answer 503 meanwhile).
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(3);

/// The client for a connection entry, shared by every webhook that names it.
pub(crate) async fn shared_client(
    connection: Option<RedisConnection>,
    context: &BuildContext,
) -> Result<std::sync::Arc<Client>, BuildError> {
    let connection =
        connection.ok_or_else(|| BuildError::other("a redis connection is required"))?;
    let name = context.connection_name.clone().unwrap_or_default();
    context
        .shared
        .get_or_try_init(&name, || connect(connection, name.clone()))
        .await
}

/// The client for a server named in a webhook's own `redis` block: shared by every block
/// naming the same server and database.
pub(crate) async fn inline_client(
    connection: RedisConnection,
    context: &BuildContext,
) -> Result<std::sync::Arc<Client>, BuildError> {
    let name = format!(
        "redis block {}:{}/{}",
        connection.host, connection.port, connection.db
    );
    context
        .shared
        .get_or_try_init(&name, || connect(connection, name.clone()))
        .await
}

async fn connect(connection: RedisConnection, name: String) -> Result<Client, BuildError> {
    let config = FredConfig {
        server: ServerConfig::new_centralized(connection.host.clone(), connection.port),
        database: Some(connection.db),
        username: connection.username.clone(),
        password: connection
            .password
            .as_ref()
            .map(|p| p.expose())
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        // While disconnected, fail at once (the sender gets 503) instead of queueing.
        fail_fast: true,
        ..FredConfig::default()
    };
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.max_command_attempts = 1;
            c.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            };
        })
        .with_performance_config(|p| {
            p.default_command_timeout = Duration::from_secs(2);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()
        .map_err(|e| BuildError::other(format!("redis client for connection `{name}`: {e}")))?;
    let _task = client.connect();
    match tokio::time::timeout(FIRST_CONNECT_WAIT, client.wait_for_connect()).await {
        Ok(Ok(())) => {
            tracing::info!(connection = %name, host = %connection.host, port = connection.port, "connected to redis");
        }
        Ok(Err(err)) => {
            tracing::warn!(connection = %name, error = %err, "redis not reachable at start-up; retrying in the background");
        }
        Err(_) => {
            tracing::warn!(connection = %name, "redis not reachable at start-up; retrying in the background");
        }
    }
    Ok(client)
}

/// Per-command options: never queue a command while disconnected (the sender gets 503
/// now, and the command is not replayed behind its back after a reconnect), one attempt,
/// bounded wait.
pub(crate) fn command_options() -> Options {
    Options {
        fail_fast: true,
        max_attempts: Some(1),
        timeout: Some(Duration::from_secs(2)),
        ..Options::default()
    }
}

/// Fail at once when the client is not connected.
pub(crate) fn ensure_connected(client: &Client) -> Result<(), ModuleError> {
    if client.is_connected() {
        Ok(())
    } else {
        Err(ModuleError::unavailable(
            "not connected to redis (reconnecting)",
        ))
    }
}

/// A round trip to the server.
pub(crate) async fn ping(client: &Client) -> Result<(), ModuleError> {
    ensure_connected(client)?;
    client
        .with_options(&command_options())
        .ping::<String>(None)
        .await
        .map(|_| ())
        .map_err(|e| crate::error::RedisError::from(e).into())
}

/// Close the connection (idempotent: several webhooks may share the client).
pub(crate) async fn quit(client: &Client) {
    if client.is_connected() {
        let _ = client.quit().await;
    }
}
