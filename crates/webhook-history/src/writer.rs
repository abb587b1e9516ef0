//! The writer thread: takes events from the pipeline's queue and writes them in batches
//! (one transaction per batch, at most every `FLUSH_EVERY`), and applies retention.

use std::fmt::Write as _;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};
use webhook_core::history::{AttemptRecord, HistoryEvent, RequestRecord};
use webhook_core::is_sensitive_header;

use tokio::sync::broadcast;

use crate::{HistoryError, HistoryOptions, LiveEvent};

/// Most events written in one transaction.
const BATCH: usize = 4096;
/// Longest an event waits in the queue before it is written.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// How often retention runs.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// What the writer thread is sent.
pub(crate) enum Message {
    Event(HistoryEvent),
    /// Write everything queued before this, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

/// Run until every sender is gone (the queue is written out first).
pub(crate) fn run(
    mut db: Connection,
    queue: &Receiver<Message>,
    options: &HistoryOptions,
    live: &broadcast::Sender<LiveEvent>,
) {
    let mut batch: Vec<HistoryEvent> = Vec::with_capacity(BATCH);
    let mut waiting: Vec<std::sync::mpsc::Sender<()>> = Vec::new();
    let mut last_prune = Instant::now();
    // attempts are numbered here (their table has no rowid)
    let mut attempt_seq: i64 = db
        .query_row("SELECT coalesce(max(seq), 0) FROM attempts", [], |row| {
            row.get(0)
        })
        .unwrap_or(0);
    prune_logged(&db, options);
    // Set when the last batch stopped at BATCH: more is waiting, take it at once.
    let mut behind = false;
    loop {
        let first = match queue.recv_timeout(PRUNE_EVERY) {
            Ok(message) => Some(message),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut open = true;
        if let Some(first) = first {
            // Let a batch gather while this thread sleeps: a sender then never has to wake
            // it (a wake-up per event would cost the request path a futex call each).
            if !behind && !matches!(first, Message::Flush(_)) {
                std::thread::sleep(FLUSH_EVERY);
            }
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Event(event) => batch.push(event),
                    Message::Flush(done) => {
                        waiting.push(done);
                        break;
                    }
                }
                if batch.len() >= BATCH {
                    break;
                }
                next = match queue.try_recv() {
                    Ok(message) => Some(message),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        None
                    }
                };
            }
        }
        behind = batch.len() >= BATCH;
        if !batch.is_empty() {
            match write(&mut db, &batch, &mut attempt_seq) {
                Ok(()) => crate::live::publish(live, &batch),
                Err(err) => {
                    metrics::counter!("webhook_history_dropped_total")
                        .increment(batch.len() as u64);
                    tracing::warn!(error = %err, events = batch.len(), "request history: batch not written");
                }
            }
            batch.clear();
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            prune_logged(&db, options);
            last_prune = Instant::now();
        }
        if !open {
            break;
        }
    }
    prune_logged(&db, options);
}

pub(crate) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn micros(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// Rows one multi-row `INSERT` writes: a batch costs one statement run per this many rows
/// (the rest go one by one).
const ROWS_PER_INSERT: usize = 32;

const REQUEST_COLUMNS: &str = "INSERT INTO requests (request_id, webhook, received_ms, \
     client_ip, method, status, outcome, reason, latency_us, body_size, delivery_id, ack, \
     headers, body)";
const REQUEST_VALUES: usize = 14;
const ATTEMPT_COLUMNS: &str = "INSERT INTO attempts (request_id, seq, webhook, destination, \
     module, attempt, at_ms, duration_us, state, error_class, error, next_retry_ms)";
const ATTEMPT_VALUES: usize = 12;

/// `insert` followed by `rows` rows of `values` parameters each.
fn insert_sql(insert: &str, values: usize, rows: usize) -> String {
    let row = format!("({})", vec!["?"; values].join(", "));
    format!("{insert} VALUES {}", vec![row; rows].join(", "))
}

static REQUESTS_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(REQUEST_COLUMNS, REQUEST_VALUES, 1));
static REQUESTS_MANY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(REQUEST_COLUMNS, REQUEST_VALUES, ROWS_PER_INSERT));
static ATTEMPTS_ONE: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(ATTEMPT_COLUMNS, ATTEMPT_VALUES, 1));
static ATTEMPTS_MANY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| insert_sql(ATTEMPT_COLUMNS, ATTEMPT_VALUES, ROWS_PER_INSERT));

fn write(
    db: &mut Connection,
    batch: &[HistoryEvent],
    attempt_seq: &mut i64,
) -> Result<(), HistoryError> {
    let mut requests = Vec::with_capacity(batch.len());
    let mut attempts = Vec::with_capacity(batch.len());
    for event in batch {
        match event {
            HistoryEvent::Request(r) => requests.push(r),
            HistoryEvent::Attempt(a) => {
                *attempt_seq += 1;
                attempts.push((a, *attempt_seq));
            }
        }
    }
    let tx = db.transaction()?;
    // one buffer for every request's masked headers (SQLite copies what is bound)
    let mut headers = String::with_capacity(1024);
    insert_rows(
        &tx,
        &REQUESTS_ONE,
        &REQUESTS_MANY,
        &requests,
        |stmt, at, r| bind_request(stmt, at, r, &mut headers),
    )?;
    insert_rows(
        &tx,
        &ATTEMPTS_ONE,
        &ATTEMPTS_MANY,
        &attempts,
        |stmt, at, (a, seq)| bind_attempt(stmt, at, a, *seq),
    )?;
    tx.commit()?;
    Ok(())
}

/// Insert `rows`, [`ROWS_PER_INSERT`] per run of `many` and the rest with `one`; `bind`
/// binds a row's values from parameter `at` (1-based) on.
fn insert_rows<T>(
    tx: &rusqlite::Transaction<'_>,
    one: &str,
    many: &str,
    rows: &[T],
    mut bind: impl FnMut(&mut rusqlite::Statement<'_>, usize, &T) -> rusqlite::Result<usize>,
) -> Result<(), HistoryError> {
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut stmt = tx.prepare_cached(many)?;
        for chunk in &mut chunks {
            let mut at = 1;
            for row in chunk {
                at = bind(&mut stmt, at, row)?;
            }
            stmt.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut stmt = tx.prepare_cached(one)?;
        for row in rest {
            bind(&mut stmt, 1, row)?;
            stmt.raw_execute()?;
        }
    }
    Ok(())
}

/// Bind `values` from parameter `at` on; the next free parameter.
fn bind_all(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    values: &[&dyn rusqlite::ToSql],
) -> rusqlite::Result<usize> {
    for (offset, value) in values.iter().enumerate() {
        stmt.raw_bind_parameter(at + offset, value)?;
    }
    Ok(at + values.len())
}

fn bind_request(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    r: &RequestRecord,
    headers: &mut String,
) -> rusqlite::Result<usize> {
    let delivery_id = masked_headers(&r.headers, headers);
    let mut ip = String::new();
    let _ = write!(ip, "{}", r.client_ip);
    bind_all(
        stmt,
        at,
        params![
            r.request_id.as_bytes().as_slice(),
            &*r.webhook,
            millis(r.received_at),
            ip,
            r.method.as_str(),
            r.status,
            r.outcome.as_str(),
            r.reason,
            micros(r.latency),
            i64::try_from(r.body_size).unwrap_or(i64::MAX),
            delivery_id,
            r.ack,
            headers.as_str(),
            r.body.as_deref(),
        ],
    )
}

fn bind_attempt(
    stmt: &mut rusqlite::Statement<'_>,
    at: usize,
    a: &AttemptRecord,
    seq: i64,
) -> rusqlite::Result<usize> {
    bind_all(
        stmt,
        at,
        params![
            a.request_id.as_bytes().as_slice(),
            seq,
            &*a.webhook,
            a.destination,
            a.module,
            a.attempt,
            millis(a.at),
            micros(a.duration),
            a.state.as_str(),
            a.error_class,
            a.error.as_deref(),
            a.next_retry.map(millis),
        ],
    )
}

/// Headers a provider puts its delivery's id in, most specific first.
const DELIVERY_ID_HEADERS: &[&str] = &[
    "x-github-delivery",
    "x-gitlab-event-uuid",
    "x-shopify-webhook-id",
    "x-shopify-event-id",
    "svix-id",
    "webhook-id",
    "x-event-id",
    "x-delivery-id",
    "x-request-id",
];

/// Write the headers into `out` as a JSON object with credentials and signatures replaced
/// by `***` (as the `log` destination shows them; the values of a repeated header joined
/// by `, `); the provider's delivery id, if one is there.
fn masked_headers(headers: &http::HeaderMap, out: &mut String) -> Option<String> {
    out.clear();
    out.push('{');
    // (rank in DELIVERY_ID_HEADERS, value) of the most specific delivery id seen so far
    let mut delivery: Option<(usize, &http::HeaderValue)> = None;
    // a header map yields a name's values one after the other
    let mut previous: Option<&http::HeaderName> = None;
    for (name, value) in headers {
        let repeated = previous == Some(name);
        previous = Some(name);
        let text = name.as_str();
        let sensitive = is_sensitive_header(text);
        if repeated {
            // reopen the string written for the name's first value
            out.pop();
            out.push_str(", ");
        } else {
            if out.len() > 1 {
                out.push(',');
            }
            push_json_string(out, text);
            out.push(':');
            out.push('"');
            if let Some(rank) = DELIVERY_ID_HEADERS.iter().position(|known| *known == text)
                && delivery.is_none_or(|(best, _)| rank < best)
            {
                delivery = Some((rank, value));
            }
        }
        if sensitive {
            out.push_str("***");
        } else {
            match std::str::from_utf8(value.as_bytes()) {
                Ok(text) => push_json_escaped(out, text),
                Err(_) => push_json_escaped(out, &String::from_utf8_lossy(value.as_bytes())),
            }
        }
        out.push('"');
    }
    out.push('}');
    delivery
        .and_then(|(_, value)| value.to_str().ok())
        .map(|value| value.chars().take(200).collect())
}

/// `text` as a JSON string, quotes included.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    push_json_escaped(out, text);
    out.push('"');
}

/// `text` escaped for the inside of a JSON string.
fn push_json_escaped(out: &mut String, text: &str) {
    // most values need nothing: one branch-free pass to find out
    let plain = text.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20 && b != b'"' && b != b'\\')
    });
    if plain {
        out.push_str(text);
        return;
    }
    let mut start = 0;
    // what needs escaping is ASCII, so every such byte is a character boundary
    for (i, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
}

fn prune_logged(db: &Connection, options: &HistoryOptions) {
    if let Err(err) = prune(db, options) {
        tracing::warn!(error = %err, "request history: retention did not run");
    }
}

/// Keep at most `max_entries` requests, none older than `max_age` (their attempts go with
/// them; attempts older than `max_age` go too).
pub(crate) fn prune(db: &Connection, options: &HistoryOptions) -> Result<(), HistoryError> {
    let oldest =
        millis(SystemTime::now()) - i64::try_from(options.max_age.as_millis()).unwrap_or(i64::MAX);
    let max_entries = i64::try_from(options.max_entries).unwrap_or(i64::MAX);
    let cut: Option<i64> = db.query_row(
        "SELECT max(seq) FROM requests WHERE seq <= (SELECT max(seq) FROM requests) - ?1 \
         OR received_ms < ?2",
        params![max_entries, oldest],
        |row| row.get(0),
    )?;
    if let Some(cut) = cut {
        db.execute(
            "DELETE FROM attempts WHERE request_id IN (SELECT request_id FROM requests WHERE seq <= ?1)",
            params![cut],
        )?;
        let gone = db.execute("DELETE FROM requests WHERE seq <= ?1", params![cut])?;
        tracing::debug!(requests = gone, "request history: retention");
    }
    // Attempts of requests older than max_age (also those written after their request
    // went, a late retry): request ids are UUIDv7, so one range of the attempts' key.
    db.execute(
        "DELETE FROM attempts WHERE request_id < ?1",
        params![uuid_v7_floor(oldest).as_slice()],
    )?;
    Ok(())
}

/// The smallest UUIDv7 of Unix millisecond `ms`: every request id of a request that
/// arrived before `ms` sorts below it.
fn uuid_v7_floor(ms: i64) -> [u8; 16] {
    let mut floor = [0u8; 16];
    let ms = u64::try_from(ms).unwrap_or(0).min((1 << 48) - 1);
    floor[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    floor
}

#[cfg(test)]
mod tests {
    use super::{masked_headers, uuid_v7_floor};

    #[test]
    fn the_uuid_v7_floor_of_a_millisecond_sorts_between_its_ids_and_earlier_ones() {
        let at = |ms: u64| {
            let ts = uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                u32::try_from(ms % 1000).unwrap() * 1_000_000,
            );
            *uuid::Uuid::new_v7(ts).as_bytes()
        };
        let ms = 1_764_840_000_123;
        let floor = uuid_v7_floor(i64::try_from(ms).unwrap());
        assert!(at(ms - 1) < floor);
        assert!(floor <= at(ms));
        assert!(floor < at(ms + 1));
        assert_eq!(uuid_v7_floor(-5), [0; 16]);
    }

    #[test]
    fn headers_are_masked_and_the_most_specific_delivery_id_is_kept() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-request-id", "generic".parse().unwrap());
        headers.insert("x-github-delivery", "gh-1".parse().unwrap());
        headers.insert("x-hub-signature-256", "sha256=abc".parse().unwrap());
        headers.append("accept", "a".parse().unwrap());
        headers.append("accept", "b".parse().unwrap());
        headers.append("cookie", "c=secret1".parse().unwrap());
        headers.append("cookie", "d=secret2".parse().unwrap());
        headers.insert(
            "x-quoted",
            http::HeaderValue::from_bytes(b"say \"hi\" \\ \tcaf\xc3\xa9").unwrap(),
        );
        let mut json = String::new();
        let delivery_id = masked_headers(&headers, &mut json);
        let shown: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(delivery_id.as_deref(), Some("gh-1"));
        assert_eq!(shown["x-hub-signature-256"], "***");
        assert_eq!(shown["accept"], "a, b");
        assert_eq!(shown["cookie"], "***, ***");
        assert_eq!(shown["x-quoted"], "say \"hi\" \\ \tcafé");
        assert_eq!(shown["x-request-id"], "generic");
        assert_eq!(shown.as_object().unwrap().len(), 6);
        assert!(!json.contains("abc") && !json.contains("secret"));
        headers.remove("x-github-delivery");
        assert_eq!(
            masked_headers(&headers, &mut json).as_deref(),
            Some("generic")
        );
        assert_eq!(masked_headers(&http::HeaderMap::new(), &mut json), None);
        assert_eq!(json, "{}");
    }
}
