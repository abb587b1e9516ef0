//! The history file's tables, created at open (versioned: a file from a newer build is
//! refused).

use rusqlite::Connection;

use crate::HistoryError;

/// Schema version this build writes.
const VERSION: i64 = 1;

const TABLES: &str = r"
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    webhook TEXT NOT NULL,
    received_ms INTEGER NOT NULL,
    client_ip TEXT NOT NULL,
    method TEXT NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    latency_us INTEGER NOT NULL,
    body_size INTEGER NOT NULL,
    delivery_id TEXT,
    ack TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB
);
CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);
CREATE INDEX IF NOT EXISTS requests_webhook ON requests (webhook, seq);
CREATE INDEX IF NOT EXISTS requests_received ON requests (received_ms);
CREATE INDEX IF NOT EXISTS requests_delivery_id ON requests (delivery_id);
CREATE TABLE IF NOT EXISTS attempts (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL,
    webhook TEXT NOT NULL,
    destination INTEGER NOT NULL,
    module TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    state TEXT NOT NULL,
    error_class TEXT,
    error TEXT,
    next_retry_ms INTEGER
);
CREATE INDEX IF NOT EXISTS attempts_request_id ON attempts (request_id);
CREATE INDEX IF NOT EXISTS attempts_at ON attempts (at_ms);
";

/// Set the file up for one writer and many readers, and create or check the tables.
pub(crate) fn prepare(db: &Connection) -> Result<(), HistoryError> {
    db.pragma_update(None, "journal_mode", "WAL")?;
    // a crash may lose the last commits of history (never a webhook): no fsync per batch
    db.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > VERSION {
        return Err(HistoryError::NewerSchema(version));
    }
    db.execute_batch(TABLES)?;
    db.pragma_update(None, "user_version", VERSION)?;
    Ok(())
}
