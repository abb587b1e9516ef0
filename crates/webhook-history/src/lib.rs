//! The request history of the webhook gateway (issue 21): every request to a known
//! webhook — accepted, rejected with its reason, duplicate, filtered — and every delivery
//! attempt, in a bounded SQLite file beside the spool.
//!
//! The pipeline hands events to [`History::sink`], which queues them without waiting (a
//! full queue drops the event and counts it in `webhook_history_dropped_total`); one
//! writer thread writes them in batches, one transaction per batch at most every 100 ms,
//! without an fsync per batch. So a crash may lose the last moments of history, never a
//! webhook: the spool, not the history, is what makes a 2xx safe. Retention keeps at most
//! `max_entries` requests and none older than `max_age`. Reads ([`History::list`],
//! [`History::get`]) use their own connection (WAL: they never block the writer).

mod live;
mod query;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use webhook_core::history::{HistoryEvent, HistorySink};

pub use live::LiveEvent;
pub use query::RequestFilter;

/// Everything that can go wrong opening or reading the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// SQLite said no.
    #[error("request history: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer build.
    #[error(
        "the request history file has schema version {0}, newer than this build's; use a newer build or another --history-file"
    )]
    NewerSchema(i64),
    /// A filter's value does not parse.
    #[error("{0}")]
    BadFilter(String),
    /// The writer thread could not be started.
    #[error("request history: cannot start its writer: {0}")]
    Thread(std::io::Error),
}

/// Retention and queue size.
#[derive(Debug, Clone)]
pub struct HistoryOptions {
    /// Most requests kept (default 100,000); the oldest go first.
    pub max_entries: u64,
    /// Oldest request kept (default 7 days).
    pub max_age: Duration,
    /// Events queued for the writer before new ones are dropped (default 65,536).
    pub queue: usize,
}

impl Default for HistoryOptions {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_age: Duration::from_secs(7 * 24 * 3600),
            queue: 65_536,
        }
    }
}

/// The request history: a sink for the pipeline and the queries of the admin API.
#[derive(Debug, Clone)]
pub struct History {
    sink: Arc<QueueSink>,
    reader: Arc<Mutex<rusqlite::Connection>>,
    path: PathBuf,
    live: tokio::sync::broadcast::Sender<LiveEvent>,
}

/// The pipeline's side: queues events for the writer thread.
#[derive(Debug)]
struct QueueSink {
    queue: SyncSender<writer::Message>,
}

impl HistorySink for QueueSink {
    fn record(&self, event: HistoryEvent) {
        match self.queue.try_send(writer::Message::Event(event)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                metrics::counter!("webhook_history_dropped_total").increment(1);
            }
        }
    }
}

impl History {
    /// Open (or create) the history file at `path` and start its writer thread.
    ///
    /// # Errors
    ///
    /// The file cannot be opened or created, or was written by a newer build.
    pub fn open(path: &Path, options: HistoryOptions) -> Result<Self, HistoryError> {
        let mut db = rusqlite::Connection::open(path)?;
        db.busy_timeout(Duration::from_secs(5))?;
        schema::prepare(&mut db)?;
        let reader = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(Duration::from_secs(5))?;
        // registered at once, so /metrics shows it (at 0) before anything is dropped
        metrics::counter!("webhook_history_dropped_total").increment(0);
        let (queue, events) = std::sync::mpsc::sync_channel(options.queue.max(1));
        let (live, _) = tokio::sync::broadcast::channel(live::BUFFER);
        let published = live.clone();
        std::thread::Builder::new()
            .name("history-writer".into())
            .spawn(move || writer::run(db, &events, &options, &published))
            .map_err(HistoryError::Thread)?;
        Ok(Self {
            sink: Arc::new(QueueSink { queue }),
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_path_buf(),
            live,
        })
    }

    /// Where the pipeline sends its events ([`webhook_core::PipelineOptions::history`]).
    pub fn sink(&self) -> Arc<dyn HistorySink> {
        Arc::clone(&self.sink) as Arc<dyn HistorySink>
    }

    /// Follow what is written from now on: each batch's events right after its commit. A
    /// follower more than 1,024 events behind misses some (its next `recv` says how many).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Wait (blocking, at most `timeout`) until everything queued so far is written: at
    /// shutdown, and in tests.
    pub fn flush(&self, timeout: Duration) -> bool {
        let (done, written) = std::sync::mpsc::channel();
        if self.sink.queue.send(writer::Message::Flush(done)).is_err() {
            return false;
        }
        written.recv_timeout(timeout).is_ok()
    }

    /// Requests matching `filter`, newest first, as JSON objects (without headers and body;
    /// [`History::get`] has them).
    ///
    /// # Errors
    ///
    /// A filter value that does not parse, or SQLite failing.
    pub fn list(&self, filter: &RequestFilter) -> Result<serde_json::Value, HistoryError> {
        let db = lock(&self.reader);
        query::list(&db, filter)
    }

    /// One request with its masked headers, its body when kept, and its attempts per
    /// destination with each one's state; `None` when it is not (or no longer) kept.
    ///
    /// # Errors
    ///
    /// SQLite failing.
    pub fn get(&self, request_id: &str) -> Result<Option<serde_json::Value>, HistoryError> {
        let db = lock(&self.reader);
        query::get(&db, request_id)
    }

    /// Per webhook since `since_ms` (Unix milliseconds): counts per outcome and reason,
    /// the same per outcome over time (at most 60 buckets up to now) and the answer
    /// latency's p50 and p99.
    ///
    /// # Errors
    ///
    /// SQLite failing.
    pub fn summary(&self, since_ms: i64) -> Result<serde_json::Value, HistoryError> {
        let now_ms = writer::millis(std::time::SystemTime::now());
        let db = lock(&self.reader);
        query::summary(&db, since_ms, now_ms)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests;
