use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};
use webhook_core::BuildError;
use webhook_sql::SqlConnection;

/// The driver's options from the connections.json entry, with PostgreSQL's defaults
/// (port 5432, database and user `postgres`).
pub(crate) fn options(c: &SqlConnection) -> Result<PgConnectOptions, BuildError> {
    let mut options = match &c.connection_string {
        Some(url) => PgConnectOptions::from_str(url.expose())
            .map_err(|_| SqlConnection::bad_connection_string("postgresql"))?,
        None => {
            let options = PgConnectOptions::new_without_pgpass()
                .host(c.host())
                .port(c.port.unwrap_or(5432))
                .username(c.user.as_deref().unwrap_or("postgres"))
                .database(c.database.as_deref().unwrap_or("postgres"));
            match c.password() {
                Some(password) => options.password(password),
                None => options,
            }
        }
    };
    if c.ssl {
        options = options.ssl_mode(match c.ssl_ca_cert {
            Some(_) => PgSslMode::VerifyFull,
            None => PgSslMode::Require,
        });
    }
    if let Some(ca) = &c.ssl_ca_cert {
        options = options.ssl_root_cert(ca);
    }
    if let Some((cert, key)) = c.client_cert()? {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    Ok(options
        .application_name("webhook-gateway")
        .statement_cache_capacity(128))
}
