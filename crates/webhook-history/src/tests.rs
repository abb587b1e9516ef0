use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue};
use uuid::Uuid;
use webhook_core::history::{
    AttemptRecord, AttemptState, HistoryEvent, RequestOutcome, RequestRecord,
};

use super::*;

fn request(
    webhook: &str,
    status: u16,
    reason: Option<&'static str>,
    at: SystemTime,
) -> RequestRecord {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-hub-signature-256",
        HeaderValue::from_static("sha256=deadbeef"),
    );
    headers.insert("x-github-delivery", HeaderValue::from_static("d-1"));
    headers.insert(
        "user-agent",
        HeaderValue::from_static("GitHub-Hookshot/abc"),
    );
    RequestRecord {
        request_id: Uuid::now_v7(),
        webhook: Arc::from(webhook),
        received_at: at,
        client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        method: http::Method::POST,
        status,
        outcome: if status == 200 {
            RequestOutcome::Accepted
        } else {
            RequestOutcome::Rejected
        },
        reason,
        latency: Duration::from_micros(1500),
        body_size: 3,
        headers: Arc::new(headers),
        body: None,
        ack: "persisted",
    }
}

fn open(dir: &tempfile::TempDir, options: HistoryOptions) -> History {
    History::open(&dir.path().join("history.sqlite"), options).unwrap()
}

#[test]
fn requests_are_listed_newest_first_with_filters_and_masked_headers() {
    let dir = tempfile::tempdir().unwrap();
    let history = open(&dir, HistoryOptions::default());
    let now = SystemTime::now();
    let good = request("gh", 200, None, now);
    let good_id = good.request_id;
    history.sink().record(HistoryEvent::Request(good));
    history.sink().record(HistoryEvent::Request(request(
        "gh",
        401,
        Some("signature_mismatch"),
        now,
    )));
    history
        .sink()
        .record(HistoryEvent::Request(request("other", 200, None, now)));
    history.sink().record(HistoryEvent::Attempt(AttemptRecord {
        request_id: good_id,
        webhook: Arc::from("gh"),
        destination: 0,
        module: "log",
        attempt: 1,
        at: now,
        duration: Duration::from_millis(2),
        state: AttemptState::Retrying,
        error_class: Some("retryable"),
        error: Some("connection refused".into()),
        next_retry: Some(now + Duration::from_secs(1)),
    }));
    assert!(history.flush(Duration::from_secs(5)));

    let all = history.list(&RequestFilter::default()).unwrap();
    assert_eq!(all["requests"].as_array().unwrap().len(), 3);
    assert_eq!(all["requests"][0]["webhook"], "other");
    let rejected = history
        .list(&RequestFilter::from_query("webhook=gh&status=4xx").unwrap())
        .unwrap();
    let rows = rejected["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["reason"], "signature_mismatch");
    assert_eq!(rows[0]["delivery_id"], "d-1");
    let by_reason = history
        .list(&RequestFilter::from_query("reason=signature_mismatch").unwrap())
        .unwrap();
    assert_eq!(by_reason["requests"].as_array().unwrap().len(), 1);
    let text = history
        .list(&RequestFilter::from_query("q=Hookshot").unwrap())
        .unwrap();
    assert_eq!(text["requests"].as_array().unwrap().len(), 3);
    let none = history
        .list(&RequestFilter::from_query("q=deadbeef").unwrap())
        .unwrap();
    assert_eq!(
        none["requests"].as_array().unwrap().len(),
        0,
        "the signature is masked"
    );

    let one = history.get(&good_id.to_string()).unwrap().unwrap();
    assert_eq!(one["headers"]["x-hub-signature-256"], "***");
    assert!(!one.to_string().contains("deadbeef"));
    assert_eq!(one["body_kept"], false);
    assert_eq!(one["attempts"][0]["state"], "retrying");
    assert_eq!(one["destinations"][0]["state"], "pending");
    assert!(history.get(&Uuid::now_v7().to_string()).unwrap().is_none());
}

#[test]
fn bad_filters_are_named() {
    for (query, key) in [
        ("status=abc", "status"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
        ("request_id=not-an-id", "request_id"),
    ] {
        let err = RequestFilter::from_query(query).unwrap_err().to_string();
        assert!(err.contains(key), "{query}: {err}");
    }
}

#[test]
fn retention_keeps_the_newest_and_drops_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let history = open(
        &dir,
        HistoryOptions {
            max_entries: 5,
            max_age: Duration::from_secs(3600),
            queue: 1000,
        },
    );
    let now = SystemTime::now();
    let two_hours_ago = now - Duration::from_secs(7200);
    let mut old = request("gh", 200, None, two_hours_ago);
    // as the pipeline makes them: a UUIDv7 of the arrival
    let since_epoch = two_hours_ago
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    old.request_id = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
    ));
    // a late retry of it, and an attempt of a request that is no longer kept (by age)
    let old_attempt = attempt(old.request_id, 2, now);
    let orphan = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        since_epoch.as_secs() - 60,
        0,
    ));
    history.sink().record(HistoryEvent::Request(old));
    history.sink().record(HistoryEvent::Attempt(old_attempt));
    history
        .sink()
        .record(HistoryEvent::Attempt(attempt(orphan, 1, two_hours_ago)));
    let mut ids = Vec::new();
    for _ in 0..8 {
        let r = request("gh", 200, None, now);
        ids.push(r.request_id);
        history.sink().record(HistoryEvent::Request(r));
        history
            .sink()
            .record(HistoryEvent::Attempt(attempt(ids[ids.len() - 1], 1, now)));
    }
    assert!(history.flush(Duration::from_secs(5)));
    let db = rusqlite::Connection::open(history.path()).unwrap();
    writer::prune(
        &db,
        &HistoryOptions {
            max_entries: 5,
            max_age: Duration::from_secs(3600),
            queue: 1,
        },
    )
    .unwrap();
    let listed = history.list(&RequestFilter::default()).unwrap();
    let rows = listed["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let oldest_kept = rows
        .iter()
        .map(|r| r["seq"].as_i64().unwrap())
        .min()
        .unwrap();
    assert_eq!(
        oldest_kept, 5,
        "the four oldest (one of them too old) are gone"
    );
    let attempts: Vec<Vec<u8>> = db
        .prepare("SELECT request_id FROM attempts ORDER BY request_id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let kept: Vec<Vec<u8>> = ids[3..].iter().map(|id| id.as_bytes().to_vec()).collect();
    assert_eq!(
        attempts, kept,
        "attempts went with their requests, and by age"
    );
    let shown = history.get(&ids[7].to_string()).unwrap().unwrap();
    assert_eq!(shown["attempts"][0]["state"], "delivered");
}

fn attempt(request_id: Uuid, attempt: u32, at: SystemTime) -> AttemptRecord {
    AttemptRecord {
        request_id,
        webhook: Arc::from("gh"),
        destination: 0,
        module: "log",
        attempt,
        at,
        duration: Duration::from_millis(1),
        state: AttemptState::Delivered,
        error_class: None,
        error: None,
        next_retry: None,
    }
}

#[test]
fn the_summary_has_a_series_over_time_and_latency_percentiles() {
    let dir = tempfile::tempdir().unwrap();
    let history = open(&dir, HistoryOptions::default());
    let now = SystemTime::now();
    for i in 0..100u64 {
        let mut r = request("gh", 200, None, now - Duration::from_secs(120));
        r.latency = Duration::from_millis(i + 1);
        history.sink().record(HistoryEvent::Request(r));
    }
    history.sink().record(HistoryEvent::Request(request(
        "gh",
        401,
        Some("signature_mismatch"),
        now,
    )));
    assert!(history.flush(Duration::from_secs(5)));
    let since = writer::millis(now - Duration::from_secs(3600));
    let summary = history.summary(since).unwrap();
    let gh = &summary["webhooks"]["gh"];
    assert_eq!(gh["received"], 101);
    assert_eq!(gh["reasons"]["signature_mismatch"], 1);
    assert_eq!(summary["bucket_seconds"], 60.0);
    let series = gh["series"].as_array().unwrap();
    assert_eq!(series.len(), 2, "{series:?}");
    assert_eq!(series[0]["accepted"], 100);
    assert_eq!(series[1]["rejected"], 1);
    // 101 latencies: 1..=100 ms and the rejected one's 1.5 ms
    assert_eq!(gh["latency_ms"]["p50"], 50.0);
    assert_eq!(gh["latency_ms"]["p99"], 99.0);
}

#[test]
fn followers_get_each_committed_event() {
    let dir = tempfile::tempdir().unwrap();
    let history = open(&dir, HistoryOptions::default());
    let mut live = history.subscribe();
    let r = request("gh", 401, Some("signature_mismatch"), SystemTime::now());
    let id = r.request_id.hyphenated().to_string();
    history.sink().record(HistoryEvent::Request(r));
    assert!(history.flush(Duration::from_secs(5)));
    let event = live.try_recv().unwrap();
    assert_eq!(event.kind, "request");
    assert_eq!(&*event.webhook, "gh");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(data["request_id"], id);
    assert_eq!(data["reason"], "signature_mismatch");
    // committed before it was sent: the history has it
    assert!(history.get(&id).unwrap().is_some());
}

/// A batch larger than one multi-row insert: every row lands whole, in order.
#[test]
fn a_large_batch_is_written_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let history = open(&dir, HistoryOptions::default());
    let now = SystemTime::now();
    let mut ids = Vec::new();
    // 70 = two inserts of 32 rows and 6 rows one by one, for both tables
    for n in 0..70u16 {
        let mut r = request(&format!("w{n}"), 200 + n, None, now);
        r.body_size = usize::from(n);
        ids.push(r.request_id);
        let mut a = attempt(r.request_id, u32::from(n) + 1, now);
        a.destination = u8::try_from(n % 3).unwrap();
        history.sink().record(HistoryEvent::Request(r));
        history.sink().record(HistoryEvent::Attempt(a));
    }
    assert!(history.flush(Duration::from_secs(5)));
    let listed = history
        .list(&RequestFilter::from_query("limit=1000").unwrap())
        .unwrap();
    let rows = listed["requests"].as_array().unwrap();
    assert_eq!(rows.len(), 70);
    for (n, row) in rows.iter().rev().enumerate() {
        assert_eq!(row["webhook"], format!("w{n}"));
        assert_eq!(row["status"], 200 + n);
        assert_eq!(row["body_size"], n);
        assert_eq!(row["request_id"], ids[n].to_string());
        assert_eq!(row["delivery_id"], "d-1");
    }
    for (n, id) in ids.iter().enumerate() {
        let one = history.get(&id.to_string()).unwrap().unwrap();
        let attempts = one["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{n}");
        assert_eq!(attempts[0]["attempt"], n + 1);
        assert_eq!(attempts[0]["destination"], n % 3);
        assert_eq!(one["headers"]["x-hub-signature-256"], "***");
    }
}
