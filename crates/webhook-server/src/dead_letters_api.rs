//! The dead letters of the admin API: list them (filtered), replay or delete one, or every
//! one matching a filter.
//!
//! Filters (query string): `webhook` and `module` (exact), `request_id` (exact), `error`
//! (text in the last error, any case). A bulk replay or delete needs a filter or `all=true`.

use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::json;
use webhook_core::response::{self, json, json_bytes};
use webhook_core::{DeadLetter, Pipeline, ResponseBody, SpoolError};

const UNREADABLE: &str =
    r#"{"detail":"The dead letters cannot be read (the server log says why)"}"#;
const FAILED: &str =
    r#"{"detail":"The dead letter could not be changed (the server log says why); try again"}"#;
const NEEDS_FILTER: &str = r#"{"detail":"a bulk replay or delete needs a filter (webhook, module, request_id, error) or all=true"}"#;

/// Which dead letters a request is about.
#[derive(Debug, Default)]
struct Filter {
    webhook: Option<String>,
    module: Option<String>,
    request_id: Option<String>,
    error: Option<String>,
    all: bool,
}

impl Filter {
    fn parse(query: &str) -> Result<Self, String> {
        let mut filter = Self::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.trim().to_owned();
            match &*key {
                _ if value.is_empty() => {}
                "webhook" => filter.webhook = Some(value),
                "module" => filter.module = Some(value),
                "request_id" => filter.request_id = Some(value.to_ascii_lowercase()),
                "error" => filter.error = Some(value.to_lowercase()),
                "all" => filter.all = matches!(&*value, "true" | "1"),
                other => {
                    return Err(format!(
                        "unknown filter {other:?} (webhook, module, request_id, error, all)"
                    ));
                }
            }
        }
        Ok(filter)
    }

    fn is_empty(&self) -> bool {
        self.webhook.is_none()
            && self.module.is_none()
            && self.request_id.is_none()
            && self.error.is_none()
    }

    fn matches(&self, letter: &DeadLetter) -> bool {
        self.webhook.as_ref().is_none_or(|w| *w == letter.webhook)
            && self.module.as_ref().is_none_or(|m| *m == letter.module)
            && self
                .request_id
                .as_ref()
                .is_none_or(|r| *r == letter.request_id.to_ascii_lowercase())
            && self
                .error
                .as_ref()
                .is_none_or(|e| letter.error.to_lowercase().contains(e.as_str()))
    }
}

/// What a bulk request does to each matching dead letter.
#[derive(Debug, Clone, Copy)]
pub enum Bulk {
    /// `POST /admin/dead-letters/replay`.
    Replay,
    /// `DELETE /admin/dead-letters`.
    Delete,
}

/// `GET /admin/dead-letters`: the matching dead letters, oldest first.
pub async fn list(pipeline: &Pipeline, query: &str) -> Response<ResponseBody> {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(message) => return bad_request(&message),
    };
    match pipeline.dead_letters().await {
        Ok(list) => {
            let list: Vec<DeadLetter> = list.into_iter().filter(|l| filter.matches(l)).collect();
            answer(StatusCode::OK, &json!({ "dead_letters": list }))
        }
        Err(err) => {
            // the error names files of the spool: for the log, not the answer
            tracing::error!(error = %err, "cannot list the dead letters");
            json(StatusCode::INTERNAL_SERVER_ERROR, UNREADABLE)
        }
    }
}

/// Replay or delete every dead letter matching the query's filter.
pub async fn bulk(pipeline: &Pipeline, query: &str, action: Bulk) -> Response<ResponseBody> {
    let filter = match Filter::parse(query) {
        Ok(filter) => filter,
        Err(message) => return bad_request(&message),
    };
    if filter.is_empty() && !filter.all {
        return json(StatusCode::BAD_REQUEST, NEEDS_FILTER);
    }
    let list = match pipeline.dead_letters().await {
        Ok(list) => list,
        Err(err) => {
            tracing::error!(error = %err, "cannot list the dead letters");
            return json(StatusCode::INTERNAL_SERVER_ERROR, UNREADABLE);
        }
    };
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for letter in list.iter().filter(|l| filter.matches(l)) {
        let outcome = match action {
            Bulk::Replay => pipeline.replay_dead_letter(&letter.id).await,
            Bulk::Delete => pipeline.delete_dead_letter(&letter.id).await,
        };
        match outcome {
            Ok(_) => done.push(letter.id.clone()),
            // gone in between (replayed or deleted by another request): not an error
            Err(SpoolError::NoDeadLetter(_)) => {}
            Err(err) => {
                tracing::error!(error = %err, id = %letter.id, "dead letter: bulk {action:?} failed");
                failed.push(json!({"id": letter.id, "detail": match action {
                    Bulk::Replay => "cannot be replayed (damaged, or the spool failed: the server log says why)",
                    Bulk::Delete => "cannot be deleted (the server log says why)",
                }}));
            }
        }
    }
    let message = match action {
        Bulk::Replay => "replayed",
        Bulk::Delete => "deleted",
    };
    let status = if failed.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    answer(
        status,
        &json!({"message": message, "count": done.len(), "ids": done, "failed": failed}),
    )
}

/// The answer to a replay or delete of one dead letter.
pub fn one(done: Result<DeadLetter, SpoolError>, message: &str) -> Response<ResponseBody> {
    match done {
        Ok(letter) => answer(
            StatusCode::OK,
            &json!({ "message": message, "dead_letter": letter }),
        ),
        Err(err @ SpoolError::NoDeadLetter(_)) => {
            answer(StatusCode::NOT_FOUND, &json!({ "detail": err.to_string() }))
        }
        Err(err) => {
            // the error names files of the spool: for the log, not the answer
            tracing::error!(error = %err, "dead letter: {message} failed");
            let mut response = json(StatusCode::SERVICE_UNAVAILABLE, FAILED);
            response::set_retry_after(&mut response, Duration::from_secs(5));
            response
        }
    }
}

fn bad_request(message: &str) -> Response<ResponseBody> {
    answer(StatusCode::BAD_REQUEST, &json!({ "detail": message }))
}

fn answer(status: StatusCode, value: &serde_json::Value) -> Response<ResponseBody> {
    json_bytes(status, Bytes::from(value.to_string()))
}
