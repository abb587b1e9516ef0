use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};
use webhook_core::BuildError;
use webhook_sql::SqlConnection;

/// The driver's options from the connections.json entry, with MySQL's defaults (port 3306,
/// database `mysql`, user `root`).
pub(crate) fn options(c: &SqlConnection) -> Result<MySqlConnectOptions, BuildError> {
    let mut options = match &c.connection_string {
        Some(url) => url
            .expose()
            .parse::<MySqlConnectOptions>()
            .map_err(|_| SqlConnection::bad_connection_string("mysql"))?,
        None => {
            let options = MySqlConnectOptions::new()
                .host(c.host())
                .port(c.port.unwrap_or(3306))
                .username(c.user.as_deref().unwrap_or("root"))
                .database(c.database.as_deref().unwrap_or("mysql"));
            match c.password() {
                Some(password) => options.password(password),
                None => options,
            }
        }
    };
    if c.ssl {
        options = options.ssl_mode(match c.ssl_ca_cert {
            Some(_) => MySqlSslMode::VerifyIdentity,
            None => MySqlSslMode::Required,
        });
    }
    if let Some(ca) = &c.ssl_ca_cert {
        options = options.ssl_ca(ca);
    }
    if let Some((cert, key)) = c.client_cert()? {
        options = options.ssl_client_cert(cert).ssl_client_key(key);
    }
    Ok(options.charset("utf8mb4").statement_cache_capacity(128))
}
