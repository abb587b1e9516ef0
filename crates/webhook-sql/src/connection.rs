//! The connections.json entry of a SQL destination: the original's keys, the same for
//! PostgreSQL and MySQL (each driver fills in its own defaults).

use serde::Deserialize;
use webhook_core::BuildError;
use webhook_core::config::{Secret, de};

/// A connections.json entry of type `postgresql`/`postgres` or `mysql`/`mariadb`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConnection {
    /// `postgresql://…` or `mysql://user:password@host:port/database`; wins over the keys
    /// below.
    #[serde(default)]
    pub connection_string: Option<Secret>,
    /// Server host (default `localhost`).
    #[serde(default)]
    pub host: Option<String>,
    /// Server port (default 5432 or 3306).
    #[serde(default, deserialize_with = "de::option_number")]
    pub port: Option<u16>,
    /// Database (default `postgres` or `mysql`).
    #[serde(default)]
    pub database: Option<String>,
    /// User (default `postgres` or `root`).
    #[serde(default, alias = "username")]
    pub user: Option<String>,
    /// Password (default none; `""` is none).
    #[serde(default)]
    pub password: Option<Secret>,
    /// Require TLS; with `ssl_ca_cert`, verify the server's certificate and name against it.
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

impl SqlConnection {
    /// The host, or `localhost`.
    pub fn host(&self) -> &str {
        self.host.as_deref().unwrap_or("localhost")
    }

    /// The password, unless absent or empty.
    pub fn password(&self) -> Option<&str> {
        self.password
            .as_ref()
            .map(Secret::expose)
            .filter(|p| !p.is_empty())
    }

    /// The client certificate and key files, given both or neither.
    pub fn client_cert(&self) -> Result<Option<(&str, &str)>, BuildError> {
        match (&self.ssl_cert, &self.ssl_key) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => Err(BuildError::other(
                "give both `ssl_cert` and `ssl_key`, or neither",
            )),
        }
    }

    /// Check the pool sizes.
    pub fn check_pool(&self) -> Result<(), BuildError> {
        if self.pool_max_size == 0 || self.pool_min_size > self.pool_max_size {
            return Err(BuildError::key(
                "pool_max_size",
                "must be at least 1 and at least pool_min_size",
            ));
        }
        Ok(())
    }

    /// The error for a `connection_string` the driver cannot read (its own message may
    /// quote the string, password included, so it is not passed on).
    pub fn bad_connection_string(scheme: &str) -> BuildError {
        BuildError::key(
            "connection_string",
            format!("is not a {scheme}://user:password@host:port/database URL"),
        )
    }
}

fn default_min() -> u32 {
    2
}

fn default_max() -> u32 {
    10
}

/// How long a delivery waits for a pooled connection before it counts as unavailable.
pub const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
