//! What the SQL destinations (`webhook-postgres`, `webhook-mysql`) share, so each of them is
//! only its driver: the original's `module-config` ([`SqlConfig`]) and connection keys
//! ([`SqlConnection`]), the checked table plan
//! ([`Table`]: identifiers validated, columns per storage mode), the statements in each
//! [`Dialect`] (identifiers quoted, every value a bound parameter), the row of one webhook
//! ([`Row`]), and [`SqlDestination`]: the `Module` around a driver's [`Writer`], which makes
//! the table and puts concurrent deliveries into one multi-row `INSERT`.
//!
//! Every row carries the request id in a unique `request_id` column, so a redelivery after
//! a crash finds its row already there and adds no second one.

mod batch;
mod classify;
mod config;
mod connection;
mod destination;
mod dialect;
mod error;
mod row;
mod table;

pub use classify::{class_of, class_of_sqlstate};
pub use config::{SqlConfig, StorageMode};
pub use connection::{ACQUIRE_TIMEOUT, SqlConnection};
pub use destination::{SqlDestination, Writer, register};
pub use dialect::Dialect;
pub use error::SqlError;
pub use row::Row;
pub use table::{ColumnType, Table};
