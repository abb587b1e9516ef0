//! The admin API's questions to the history: list with filters, one request with its
//! attempts, counts. Every value is a bound parameter.

use base64::Engine;
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use serde_json::{Value, json};

use crate::HistoryError;

/// Most requests one list answers.
const MAX_LIMIT: i64 = 1000;

/// What `GET /admin/requests` filters by (every field optional, all must match).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestFilter {
    /// The webhook id.
    pub webhook: Option<String>,
    /// The status answered (`401`), or a class (`4xx`).
    pub status: Option<String>,
    /// The outcome (`accepted`, `rejected`, `duplicate`, `filtered`, `answered`, `failed`).
    pub outcome: Option<String>,
    /// The reason (`signature_mismatch`…).
    pub reason: Option<String>,
    /// Received at or after (RFC 3339 or Unix milliseconds).
    pub since_ms: Option<i64>,
    /// Received before (RFC 3339 or Unix milliseconds).
    pub until_ms: Option<i64>,
    /// The gateway's request id.
    pub request_id: Option<String>,
    /// The provider's delivery id (`X-GitHub-Delivery`…).
    pub delivery_id: Option<String>,
    /// Text that the (masked) headers contain.
    pub text: Option<String>,
    /// Only requests older than this list position (`seq` of the last one seen): paging.
    pub before: Option<i64>,
    /// How many (default 100, at most 1000).
    pub limit: Option<i64>,
}

impl RequestFilter {
    /// The filter of a URL query string: `webhook`, `status`, `outcome`, `reason`,
    /// `since`, `until`, `request_id`, `delivery_id`, `q` (text in headers), `before`,
    /// `limit`.
    ///
    /// # Errors
    ///
    /// An unknown parameter or a value that does not parse, named in the message.
    pub fn from_query(query: &str) -> Result<Self, HistoryError> {
        let mut filter = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            if value.is_empty() {
                continue;
            }
            match &*key {
                "webhook" => filter.webhook = Some(value),
                "status" => {
                    let ok = value.len() == 3
                        && (value.parse::<u16>().is_ok()
                            || (value.as_bytes()[0].is_ascii_digit()
                                && value[1..].eq_ignore_ascii_case("xx")));
                    if !ok {
                        return Err(bad("status", &value, "a status (401) or class (4xx)"));
                    }
                    filter.status = Some(value.to_ascii_lowercase());
                }
                "outcome" => filter.outcome = Some(value),
                "reason" => filter.reason = Some(value),
                "since" => {
                    filter.since_ms = Some(time(&value).ok_or_else(|| bad("since", &value, TIME))?);
                }
                "until" => {
                    filter.until_ms = Some(time(&value).ok_or_else(|| bad("until", &value, TIME))?);
                }
                "request_id" => {
                    let id = uuid::Uuid::parse_str(&value)
                        .map_err(|_| bad("request_id", &value, "a request id"))?;
                    filter.request_id = Some(id.hyphenated().to_string());
                }
                "delivery_id" => filter.delivery_id = Some(value),
                "q" => filter.text = Some(value),
                "before" => {
                    filter.before = Some(
                        value
                            .parse()
                            .map_err(|_| bad("before", &value, "a list position (seq)"))?,
                    );
                }
                "limit" => {
                    let limit: i64 = value
                        .parse()
                        .map_err(|_| bad("limit", &value, "1 to 1000"))?;
                    if !(1..=MAX_LIMIT).contains(&limit) {
                        return Err(bad("limit", &value, "1 to 1000"));
                    }
                    filter.limit = Some(limit);
                }
                other => {
                    return Err(HistoryError::BadFilter(format!(
                        "unknown filter `{other}`; filters are webhook, status, outcome, reason, \
                         since, until, request_id, delivery_id, q, before, limit"
                    )));
                }
            }
        }
        Ok(filter)
    }
}

const TIME: &str = "RFC 3339 (2026-12-04T10:00:00Z) or Unix milliseconds";

fn bad(key: &str, value: &str, expected: &str) -> HistoryError {
    let shown: String = value.chars().take(64).collect();
    HistoryError::BadFilter(format!("filter `{key}`: `{shown}` is not {expected}"))
}

fn time(text: &str) -> Option<i64> {
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

pub(crate) fn rfc3339(ms: i64) -> Value {
    jiff::Timestamp::from_millisecond(ms).map_or(Value::Null, |t| Value::String(format!("{t:.3}")))
}

fn like(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

const COLUMNS: &str = "seq, request_id, webhook, received_ms, client_ip, method, status, outcome, \
     reason, latency_us, body_size, delivery_id, ack";

fn summary_row(row: &Row<'_>) -> rusqlite::Result<Value> {
    let received: i64 = row.get(3)?;
    let latency_us: i64 = row.get(9)?;
    Ok(json!({
        "seq": row.get::<_, i64>(0)?,
        "request_id": request_id(row, 1)?,
        "webhook": row.get::<_, String>(2)?,
        "received_at": rfc3339(received),
        "client_ip": row.get::<_, String>(4)?,
        "method": row.get::<_, String>(5)?,
        "status": row.get::<_, i64>(6)?,
        "outcome": row.get::<_, String>(7)?,
        "reason": row.get::<_, Option<String>>(8)?,
        "latency_ms": latency_us as f64 / 1000.0,
        "body_size": row.get::<_, i64>(10)?,
        "delivery_id": row.get::<_, Option<String>>(11)?,
        "ack": row.get::<_, String>(12)?,
    }))
}

pub(crate) fn list(db: &Connection, filter: &RequestFilter) -> Result<Value, HistoryError> {
    let mut clauses: Vec<&str> = Vec::new();
    let mut args: Vec<Sql> = Vec::new();
    let mut add = |clause: &'static str, value: Sql| {
        clauses.push(clause);
        args.push(value);
    };
    if let Some(v) = &filter.webhook {
        add("webhook = ?", Sql::Text(v.clone()));
    }
    if let Some(v) = &filter.status {
        match v.parse::<i64>() {
            Ok(status) => add("status = ?", Sql::Integer(status)),
            Err(_) => {
                let class = i64::from(v.as_bytes()[0] - b'0');
                add("status / 100 = ?", Sql::Integer(class));
            }
        }
    }
    if let Some(v) = &filter.outcome {
        add("outcome = ?", Sql::Text(v.clone()));
    }
    if let Some(v) = &filter.reason {
        add("reason = ?", Sql::Text(v.clone()));
    }
    if let Some(v) = filter.since_ms {
        add("received_ms >= ?", Sql::Integer(v));
    }
    if let Some(v) = filter.until_ms {
        add("received_ms < ?", Sql::Integer(v));
    }
    if let Some(v) = &filter.request_id {
        let id = uuid::Uuid::parse_str(v).map_err(|_| bad("request_id", v, "a request id"))?;
        add("request_id = ?", Sql::Blob(id.as_bytes().to_vec()));
    }
    if let Some(v) = &filter.delivery_id {
        add("delivery_id = ?", Sql::Text(v.clone()));
    }
    if let Some(v) = &filter.text {
        add("headers LIKE ? ESCAPE '\\'", Sql::Text(like(v)));
    }
    if let Some(v) = filter.before {
        add("seq < ?", Sql::Integer(v));
    }
    let limit = filter.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let mut sql = format!("SELECT {COLUMNS} FROM requests");
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    args.push(Sql::Integer(limit));
    let mut stmt = db.prepare_cached(&sql)?;
    let rows: Vec<Value> = stmt
        .query_map(params_from_iter(args), summary_row)?
        .collect::<Result<_, _>>()?;
    let next = if rows.len() as i64 == limit {
        rows.last().and_then(|r| r.get("seq")).cloned()
    } else {
        None
    };
    Ok(json!({ "requests": rows, "next_before": next }))
}

pub(crate) fn get(db: &Connection, request_id: &str) -> Result<Option<Value>, HistoryError> {
    let Ok(id) = uuid::Uuid::parse_str(request_id) else {
        return Ok(None);
    };
    let request_id = id.as_bytes().as_slice();
    let found = db
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, headers, body FROM requests WHERE request_id = ? ORDER BY seq DESC LIMIT 1"
        ))?
        .query_row([request_id], |row| {
            let mut value = summary_row(row)?;
            let headers: String = row.get(13)?;
            let body: Option<Vec<u8>> = row.get(14)?;
            Ok((value.take(), headers, body))
        })
        .optional()?;
    let Some((mut request, headers, body)) = found else {
        return Ok(None);
    };
    request["headers"] = serde_json::from_str(&headers).unwrap_or(Value::Null);
    request["body_kept"] = Value::Bool(body.is_some());
    if let Some(body) = body {
        let size = request["body_size"].as_i64().unwrap_or(0);
        request["body_truncated"] = Value::Bool((body.len() as i64) < size);
        match std::str::from_utf8(&body) {
            Ok(text) => request["body"] = Value::String(text.to_owned()),
            Err(_) => {
                request["body_base64"] =
                    Value::String(base64::engine::general_purpose::STANDARD.encode(&body));
            }
        }
    }
    let mut stmt = db.prepare_cached(
        "SELECT destination, module, attempt, at_ms, duration_us, state, error_class, error, \
         next_retry_ms FROM attempts WHERE request_id = ? ORDER BY seq",
    )?;
    let attempts: Vec<Value> = stmt
        .query_map([request_id], |row| {
            let duration_us: i64 = row.get(4)?;
            Ok(json!({
                "destination": row.get::<_, i64>(0)?,
                "module": row.get::<_, String>(1)?,
                "attempt": row.get::<_, i64>(2)?,
                "at": rfc3339(row.get(3)?),
                "duration_ms": duration_us as f64 / 1000.0,
                "state": row.get::<_, String>(5)?,
                "error_class": row.get::<_, Option<String>>(6)?,
                "error": row.get::<_, Option<String>>(7)?,
                "next_retry": row.get::<_, Option<i64>>(8)?.map_or(Value::Null, rfc3339),
            }))
        })?
        .collect::<Result<_, _>>()?;
    request["destinations"] = destinations(&attempts, request["ack"].as_str().unwrap_or(""));
    request["attempts"] = Value::Array(attempts);
    Ok(Some(request))
}

/// Each destination's state from its attempts: the last one's (`given_up` shown as
/// `dead_letter` for webhooks that spool, `failed` for `ack: delivered`), `pending` while
/// it is retrying.
fn destinations(attempts: &[Value], ack: &str) -> Value {
    let mut last: std::collections::BTreeMap<i64, &Value> = std::collections::BTreeMap::new();
    for attempt in attempts {
        if let Some(index) = attempt["destination"].as_i64() {
            last.insert(index, attempt);
        }
    }
    Value::Array(
        last.into_iter()
            .map(|(index, attempt)| {
                let state = match attempt["state"].as_str() {
                    Some("delivered") => "delivered",
                    Some("given_up") if ack == "delivered" => "failed",
                    Some("given_up") => "dead_letter",
                    _ => "pending",
                };
                json!({
                    "destination": index,
                    "module": attempt["module"],
                    "state": state,
                    "attempts": attempts.iter().filter(|a| a["destination"].as_i64() == Some(index) && a["attempt"].as_i64() != Some(0)).count(),
                    "next_retry": attempt["next_retry"],
                })
            })
            .collect(),
    )
}

/// Column `index`, a request id kept as its 16 bytes, in its hyphenated form.
fn request_id(row: &Row<'_>, index: usize) -> rusqlite::Result<String> {
    let bytes: Vec<u8> = row.get(index)?;
    uuid::Uuid::from_slice(&bytes)
        .map(|id| id.hyphenated().to_string())
        .map_err(|err| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Blob,
                Box::new(err),
            )
        })
}

/// Points of each webhook's chart: at most this many time buckets.
const CHART_POINTS: i64 = 60;

pub(crate) fn summary(db: &Connection, since_ms: i64, now_ms: i64) -> Result<Value, HistoryError> {
    let mut webhooks = serde_json::Map::new();
    let blank =
        || json!({"received": 0, "outcomes": {}, "reasons": {}, "series": [], "latency_ms": {}});
    {
        let mut stmt = db.prepare_cached(
            "SELECT webhook, outcome, coalesce(reason, ''), count(*) FROM requests \
             WHERE received_ms >= ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )?;
        let rows = stmt.query_map([since_ms], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, i64>(3)?,
            ))
        })?;
        for row in rows {
            let (webhook, outcome, reason, count) = row?;
            let entry = webhooks.entry(webhook).or_insert_with(blank);
            entry["received"] = json!(entry["received"].as_i64().unwrap_or(0) + count);
            let outcomes = &mut entry["outcomes"][&outcome];
            *outcomes = json!(outcomes.as_i64().unwrap_or(0) + count);
            if !reason.is_empty() {
                let reasons = &mut entry["reasons"][&reason];
                *reasons = json!(reasons.as_i64().unwrap_or(0) + count);
            }
        }
    }
    // over time: counts per outcome in equal buckets of whole seconds from `since` to
    // now; what rounding leaves past the last bucket is counted in it
    let bucket_ms = (((now_ms - since_ms) / CHART_POINTS + 500) / 1000 * 1000).max(1000);
    {
        let mut stmt = db.prepare_cached(
            "SELECT webhook, min((received_ms - ?1) / ?2, ?3), outcome, count(*) FROM requests \
             WHERE received_ms >= ?1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )?;
        let rows = stmt.query_map(
            rusqlite::params![since_ms, bucket_ms, CHART_POINTS - 1],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                ))
            },
        )?;
        for row in rows {
            let (webhook, bucket, outcome, count) = row?;
            let entry = webhooks.entry(webhook).or_insert_with(blank);
            let start = rfc3339(since_ms + bucket * bucket_ms);
            if let Value::Array(series) = &mut entry["series"] {
                if series.last().is_none_or(|p| p["at"] != start) {
                    series.push(json!({"at": start}));
                }
                if let Some(point) = series.last_mut() {
                    point[&outcome] = json!(count);
                }
            }
        }
    }
    // answer latency: p50 and p99 per webhook
    {
        let mut stmt = db.prepare_cached(
            "SELECT webhook, latency_us FROM requests WHERE received_ms >= ? ORDER BY 1, 2",
        )?;
        let mut rows = stmt.query([since_ms])?;
        let mut current: Option<(String, Vec<i64>)> = None;
        let finish =
            |webhook: String, sorted: Vec<i64>, webhooks: &mut serde_json::Map<String, Value>| {
                if let Some(entry) = webhooks.get_mut(&webhook) {
                    entry["latency_ms"] = json!({
                        "p50": percentile(&sorted, 50) as f64 / 1000.0,
                        "p99": percentile(&sorted, 99) as f64 / 1000.0,
                    });
                }
            };
        while let Some(row) = rows.next()? {
            let webhook: String = row.get(0)?;
            let latency: i64 = row.get(1)?;
            match &mut current {
                Some((name, list)) if *name == webhook => list.push(latency),
                _ => {
                    if let Some((name, list)) = current.replace((webhook, vec![latency])) {
                        finish(name, list, &mut webhooks);
                    }
                }
            }
        }
        if let Some((name, list)) = current {
            finish(name, list, &mut webhooks);
        }
    }
    let (count, oldest): (i64, Option<i64>) = db.query_row(
        "SELECT count(*), min(received_ms) FROM requests",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?;
    Ok(json!({
        "since": rfc3339(since_ms),
        "bucket_seconds": bucket_ms as f64 / 1000.0,
        "webhooks": webhooks,
        "kept": count,
        "oldest": oldest.map_or(Value::Null, rfc3339),
    }))
}

/// The `p`th percentile (nearest rank) of `sorted` (0 when empty).
fn percentile(sorted: &[i64], p: usize) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}
