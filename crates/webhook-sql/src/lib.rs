//! What the SQL destinations (`webhook-postgres`, `webhook-mysql`) share, so each of them is
//! only its driver: the original's `module-config` ([`SqlConfig`]), the checked table plan
//! ([`Table`]: identifiers validated, columns per storage mode), the statements in each
//! [`Dialect`] (identifiers quoted, every value a bound parameter), the row of one webhook
//! ([`Row`]), and [`SqlDestination`]: the destination around a driver's [`Writer`], which
//! makes the table and puts concurrent deliveries into one multi-row `INSERT`.
//!
//! Every row carries the request id in a unique `request_id` column, so a redelivery after
//! a crash finds its row already there and adds no second one.

mod batch;
mod classify;
mod config;
mod destination;
mod dialect;
mod row;
mod table;

pub use classify::{class_of, class_of_sqlstate};
pub use config::{SqlConfig, StorageMode};
pub use destination::{SqlDestination, Writer};
pub use dialect::Dialect;
pub use row::Row;
pub use table::{ColumnType, Table};
