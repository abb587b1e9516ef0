use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};
use webhook_core::BuildError;
use webhook_core::config::{Secret, de};

/// A connections.json entry of type `postgresql` (or `postgres`), with the original's keys.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConnection {
    /// `postgresql://user:password@host:port/database?sslmode=…`; wins over the other keys.
    #[serde(default)]
    pub connection_string: Option<Secret>,
    /// Server host (default `localhost`).
    #[serde(default = "default_host")]
    pub host: String,
    /// Server port (default 5432).
    #[serde(default = "default_port", deserialize_with = "de::number")]
    pub port: u16,
    /// Database (default `postgres`).
    #[serde(default = "default_database")]
    pub database: String,
    /// User (default `postgres`).
    #[serde(default = "default_user", alias = "username")]
    pub user: String,
    /// Password (default none).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Require TLS (`sslmode=require`; with `ssl_ca_cert`, the server's certificate is
    /// verified against it: `verify-full`).
    #[serde(default)]
    pub ssl: bool,
    /// CA certificate file (PEM) that signed the server's certificate.
    #[serde(default)]
    pub ssl_ca_cert: Option<String>,
    /// Client certificate file (PEM), with `ssl_key`.
    #[serde(default)]
    pub ssl_cert: Option<String>,
    /// Client key file (PEM), with `ssl_cert`.
    #[serde(default)]
    pub ssl_key: Option<String>,
    /// Connections kept open (default 2).
    #[serde(default = "default_min", deserialize_with = "de::number")]
    pub pool_min_size: u32,
    /// Connections at most, and so statements in flight (default 10).
    #[serde(default = "default_max", deserialize_with = "de::number")]
    pub pool_max_size: u32,
}

impl PostgresConnection {
    /// The driver's options.
    pub(crate) fn options(&self) -> Result<PgConnectOptions, BuildError> {
        let mut options = match &self.connection_string {
            Some(url) => PgConnectOptions::from_str(url.expose()).map_err(|_| {
                // (the driver's message may quote the string, password included)
                BuildError::key(
                    "connection_string",
                    "is not a postgresql://user:password@host:port/database URL",
                )
            })?,
            None => {
                let mut options = PgConnectOptions::new_without_pgpass()
                    .host(&self.host)
                    .port(self.port)
                    .username(&self.user)
                    .database(&self.database);
                // (`"password": ""`, as in the original's defaults, is no password)
                if let Some(password) = self.password.as_ref().filter(|p| !p.expose().is_empty()) {
                    options = options.password(password.expose());
                }
                options
            }
        };
        if self.ssl {
            options = options.ssl_mode(if self.ssl_ca_cert.is_some() {
                PgSslMode::VerifyFull
            } else {
                PgSslMode::Require
            });
        }
        if let Some(ca) = &self.ssl_ca_cert {
            options = options.ssl_root_cert(ca);
        }
        match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => {
                options = options.ssl_client_cert(cert).ssl_client_key(key);
            }
            (None, None) => {}
            _ => {
                return Err(BuildError::other(
                    "give both `ssl_cert` and `ssl_key`, or neither",
                ));
            }
        }
        if self.pool_max_size == 0 || self.pool_min_size > self.pool_max_size {
            return Err(BuildError::key(
                "pool_max_size",
                "must be at least 1 and at least pool_min_size",
            ));
        }
        Ok(options
            .application_name("webhook-gateway")
            .statement_cache_capacity(128))
    }
}

/// How long a delivery waits for a connection before it counts as unavailable.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

fn default_host() -> String {
    "localhost".to_owned()
}

fn default_port() -> u16 {
    5432
}

fn default_database() -> String {
    "postgres".to_owned()
}

fn default_user() -> String {
    "postgres".to_owned()
}

fn default_min() -> u32 {
    2
}

fn default_max() -> u32 {
    10
}
