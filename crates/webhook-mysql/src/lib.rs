//! The `mysql` destination (alias `mariadb`), for MySQL and MariaDB: one row per webhook in
//! a table the destination creates when it is missing, in the Python original's storage
//! modes (`json`, `relational`, `hybrid`), with its keys and defaults.
//!
//! - One pool per connections.json entry (sqlx, connecting lazily, so the server starts
//!   while the database is down).
//! - Every row carries the request id in a unique column: a redelivery after a crash meets
//!   its own row ("duplicate entry for key `request_id`", counted as stored) and adds none.
//! - Deliveries that arrive while the pool is busy share one multi-row `INSERT`
//!   ([`webhook_sql::Batcher`]); a delivery is confirmed when its statement committed.
//! - Identifiers are validated and quoted; every value is a bound parameter.
//!
//! See this crate's README for the keys.

mod config;
mod module;

pub use module::{MySql, MySqlWriter};
pub use webhook_sql::{SqlConfig as MySqlConfig, SqlConnection as MySqlConnection};

/// Add `mysql` (and its alias `mariadb`) to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    webhook_sql::register::<MySqlWriter>(registry);
}
