//! `GET /admin/requests`, `/admin/requests/{id}` and `/admin/summary`: the request history
//! (`webhook-history`) as JSON for operators and the dashboard.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Response, StatusCode};
use webhook_core::ResponseBody;
use webhook_core::response::{json, json_bytes};
use webhook_history::{History, HistoryError, RequestFilter};

const HISTORY_OFF: &str = r#"{"detail":"Not Found (the request history is off: --history on)"}"#;
const NOT_KEPT: &str =
    r#"{"detail":"No such request in the history (never seen, or past retention)"}"#;
const UNREADABLE: &str =
    r#"{"detail":"The request history cannot be read (the server log says why)"}"#;

/// What is asked of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRoute<'a> {
    /// `/admin/requests`.
    List,
    /// `/admin/requests/{id}`.
    One(&'a str),
    /// `/admin/summary`.
    Summary,
}

/// Answer `route` (a GET) with `query` (the URL's query string).
pub async fn answer(
    history: Option<&History>,
    route: HistoryRoute<'_>,
    query: &str,
) -> Response<ResponseBody> {
    let Some(history) = history.cloned() else {
        return json(StatusCode::NOT_FOUND, HISTORY_OFF);
    };
    let query = query.to_owned();
    let id = match route {
        HistoryRoute::One(id) => id.to_owned(),
        _ => String::new(),
    };
    let list = matches!(route, HistoryRoute::List);
    let summary = matches!(route, HistoryRoute::Summary);
    let asked = tokio::task::spawn_blocking(move || {
        if list {
            RequestFilter::from_query(&query).and_then(|filter| history.list(&filter).map(Some))
        } else if summary {
            since(&query).and_then(|since| history.summary(since).map(Some))
        } else {
            history.get(&id)
        }
    })
    .await;
    match asked {
        Ok(Ok(Some(value))) => json_bytes(StatusCode::OK, Bytes::from(value.to_string())),
        Ok(Ok(None)) => json(StatusCode::NOT_FOUND, NOT_KEPT),
        Ok(Err(HistoryError::BadFilter(message))) => json_bytes(
            StatusCode::BAD_REQUEST,
            Bytes::from(serde_json::json!({ "detail": message }).to_string()),
        ),
        Ok(Err(err)) => {
            tracing::error!(error = %err, "request history: query failed");
            json(StatusCode::INTERNAL_SERVER_ERROR, UNREADABLE)
        }
        Err(err) => {
            tracing::error!(error = %err, "request history: query task failed");
            json(StatusCode::INTERNAL_SERVER_ERROR, UNREADABLE)
        }
    }
}

/// `since` of `/admin/summary` (default: the last 24 hours).
fn since(query: &str) -> Result<i64, HistoryError> {
    let day_ago = SystemTime::now()
        .checked_sub(Duration::from_secs(24 * 3600))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    if query.is_empty() {
        return Ok(day_ago);
    }
    let filter = RequestFilter::from_query(query)?;
    Ok(filter.since_ms.unwrap_or(day_ago))
}
