//! The history file's tables, created at open (versioned: a file from a newer build is
//! refused, one from an older build is migrated in place).
//!
//! Every index costs each written row a B-tree insert (and each pruned row a delete), so
//! the tables keep only the indexes the admin API's questions need: a request by id, a
//! webhook's newest requests, requests since a time. Attempts live in one B-tree keyed by
//! (request id, seq): a request's attempts in order, and, as request ids are UUIDv7 (their
//! first 48 bits the arrival's Unix milliseconds), the oldest first. Request ids are their
//! 16 bytes, not 36 characters of text.

use rusqlite::Connection;

use crate::HistoryError;

/// Schema version this build writes.
const VERSION: i64 = 2;

const TABLES: &str = r"
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY,
    request_id BLOB NOT NULL,
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
CREATE TABLE IF NOT EXISTS attempts (
    request_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    webhook TEXT NOT NULL,
    destination INTEGER NOT NULL,
    module TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    state TEXT NOT NULL,
    error_class TEXT,
    error TEXT,
    next_retry_ms INTEGER,
    PRIMARY KEY (request_id, seq)
) WITHOUT ROWID;
";

/// Version 1 kept request ids as text and indexed delivery ids and attempt times: its rows
/// move to the version 2 tables (ids as bytes), in one transaction.
const FROM_VERSION_1: &str = r"
DROP INDEX IF EXISTS requests_request_id;
DROP INDEX IF EXISTS requests_webhook;
DROP INDEX IF EXISTS requests_received;
DROP INDEX IF EXISTS requests_delivery_id;
DROP INDEX IF EXISTS attempts_request_id;
DROP INDEX IF EXISTS attempts_at;
ALTER TABLE requests RENAME TO requests_v1;
ALTER TABLE attempts RENAME TO attempts_v1;
";

const COPY_FROM_VERSION_1: &str = r"
INSERT INTO requests (seq, request_id, webhook, received_ms, client_ip, method, status,
    outcome, reason, latency_us, body_size, delivery_id, ack, headers, body)
SELECT seq, unhex(replace(request_id, '-', '')), webhook, received_ms, client_ip, method,
    status, outcome, reason, latency_us, body_size, delivery_id, ack, headers, body
FROM requests_v1 WHERE unhex(replace(request_id, '-', '')) IS NOT NULL;
INSERT INTO attempts (seq, request_id, webhook, destination, module, attempt, at_ms,
    duration_us, state, error_class, error, next_retry_ms)
SELECT seq, unhex(replace(request_id, '-', '')), webhook, destination, module, attempt,
    at_ms, duration_us, state, error_class, error, next_retry_ms
FROM attempts_v1 WHERE unhex(replace(request_id, '-', '')) IS NOT NULL;
DROP TABLE requests_v1;
DROP TABLE attempts_v1;
";

/// Set the file up for one writer and many readers, and create, migrate or check the
/// tables.
pub(crate) fn prepare(db: &mut Connection) -> Result<(), HistoryError> {
    db.pragma_update(None, "journal_mode", "WAL")?;
    // a crash may lose the last commits of history (never a webhook): no fsync per batch
    db.pragma_update(None, "synchronous", "NORMAL")?;
    let version: i64 = db.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if version > VERSION {
        return Err(HistoryError::NewerSchema(version));
    }
    let tx = db.transaction()?;
    if version == 1 {
        tx.execute_batch(FROM_VERSION_1)?;
        tx.execute_batch(TABLES)?;
        tx.execute_batch(COPY_FROM_VERSION_1)?;
        tracing::info!("request history: file migrated from schema version 1 to 2");
    } else {
        tx.execute_batch(TABLES)?;
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 1 file (as session 22's build wrote it) opens with its rows, ids as bytes.
    #[test]
    fn a_version_1_file_is_migrated_with_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.sqlite");
        {
            let db = Connection::open(&path).unwrap();
            db.execute_batch(
                "CREATE TABLE requests (seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL,
                    webhook TEXT NOT NULL, received_ms INTEGER NOT NULL, client_ip TEXT NOT NULL,
                    method TEXT NOT NULL, status INTEGER NOT NULL, outcome TEXT NOT NULL,
                    reason TEXT, latency_us INTEGER NOT NULL, body_size INTEGER NOT NULL,
                    delivery_id TEXT, ack TEXT NOT NULL, headers TEXT NOT NULL, body BLOB);
                 CREATE INDEX requests_request_id ON requests (request_id);
                 CREATE INDEX requests_delivery_id ON requests (delivery_id);
                 CREATE TABLE attempts (seq INTEGER PRIMARY KEY, request_id TEXT NOT NULL,
                    webhook TEXT NOT NULL, destination INTEGER NOT NULL, module TEXT NOT NULL,
                    attempt INTEGER NOT NULL, at_ms INTEGER NOT NULL,
                    duration_us INTEGER NOT NULL, state TEXT NOT NULL, error_class TEXT,
                    error TEXT, next_retry_ms INTEGER);
                 CREATE INDEX attempts_at ON attempts (at_ms);
                 INSERT INTO requests VALUES (7, '0192f0a4-0000-7000-8000-00000000abcd', 'gh',
                    1, '127.0.0.1', 'POST', 200, 'accepted', NULL, 5, 3, 'd-1', 'persisted',
                    '{}', NULL);
                 INSERT INTO attempts VALUES (3, '0192f0a4-0000-7000-8000-00000000abcd', 'gh',
                    0, 'log', 1, 2, 10, 'delivered', NULL, NULL, NULL);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let mut db = Connection::open(&path).unwrap();
        prepare(&mut db).unwrap();
        let id = uuid::Uuid::parse_str("0192f0a4-0000-7000-8000-00000000abcd").unwrap();
        let (seq, delivery): (i64, String) = db
            .query_row(
                "SELECT seq, delivery_id FROM requests WHERE request_id = ?",
                [id.as_bytes().as_slice()],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!((seq, delivery.as_str()), (7, "d-1"));
        let state: String = db
            .query_row(
                "SELECT state FROM attempts WHERE request_id = ?",
                [id.as_bytes().as_slice()],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(state, "delivered");
        let version: i64 = db
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, VERSION);
        let indexes: i64 = db
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN \
                 ('requests_delivery_id', 'attempts_at')",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(indexes, 0, "the dropped indexes are gone");
        // and a second open leaves it as it is
        prepare(&mut db).unwrap();
    }
}
