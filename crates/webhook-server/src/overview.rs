//! `GET /admin/overview`: the state of this instance at a glance, for the dashboard's
//! overview — spool entries, bytes and the age of the oldest pending entry, dead letters,
//! destination health (the cached `/health` checks) and, per destination, deliveries in
//! flight and the delivery counters (read back from the Prometheus recorder).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{Value, json};
use webhook_core::ResponseBody;
use webhook_core::response::json_bytes;

use crate::live::LivePipeline;

/// Per-destination series read from `/metrics`, and the key each gets in the answer.
const DESTINATION_SERIES: &[(&str, &str)] = &[
    ("webhook_destination_in_flight", "in_flight"),
    ("webhook_destination_delivered_total", "delivered"),
    ("webhook_destination_failed_total", "failed"),
    ("webhook_destination_retries_total", "retries"),
    ("webhook_destination_dead_lettered_total", "dead_lettered"),
];

/// Answer `GET /admin/overview`.
pub async fn answer(live: &LivePipeline, health_cache: Duration) -> Response<ResponseBody> {
    let pipeline = live.current();
    let spool = match pipeline.spool() {
        Some(spool) => {
            let (entries, bytes) = spool.usage();
            let oldest = spool.oldest_pending().map(|received| {
                SystemTime::now()
                    .duration_since(received)
                    .unwrap_or_default()
                    .as_secs_f64()
            });
            json!({"kind": "local", "entries": entries, "bytes": bytes, "oldest_pending_age_s": oldest})
        }
        None => json!({"kind": "shared or none"}),
    };
    let dead_letters = match pipeline.dead_letters().await {
        Ok(list) => json!(list.len()),
        Err(err) => {
            tracing::warn!(error = %err, "overview: the dead letters cannot be read");
            Value::Null
        }
    };
    let health = live.health().get(live, health_cache).await;
    let health: Value = serde_json::from_slice(&health.report).unwrap_or(Value::Null);
    let destinations = crate::metrics::handle()
        .map(|handle| destinations(&handle.render()))
        .unwrap_or_default();
    let answer = json!({
        "spool": spool,
        "dead_letters": dead_letters,
        "health": health,
        "destinations": destinations,
    });
    json_bytes(StatusCode::OK, Bytes::from(answer.to_string()))
}

/// `[{webhook, destination, in_flight, delivered, failed, retries, dead_lettered}]` from
/// the Prometheus text `rendered`.
fn destinations(rendered: &str) -> Vec<Value> {
    let mut rows: BTreeMap<(String, String), serde_json::Map<String, Value>> = BTreeMap::new();
    for line in rendered.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, labels)) = series.split_once('{') else {
            continue;
        };
        let Some(&(_, key)) = DESTINATION_SERIES.iter().find(|(n, _)| *n == name) else {
            continue;
        };
        let labels = parse_labels(labels.trim_end_matches('}'));
        let (Some(webhook), Some(destination)) = (labels.get("webhook"), labels.get("destination"))
        else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let row = rows
            .entry((webhook.clone(), destination.clone()))
            .or_default();
        let sum = row.get(key).and_then(Value::as_f64).unwrap_or(0.0) + value;
        row.insert(key.into(), json!(sum));
    }
    rows.into_iter()
        .map(|((webhook, destination), mut row)| {
            row.insert("webhook".into(), json!(webhook));
            row.insert("destination".into(), json!(destination));
            Value::Object(row)
        })
        .collect()
}

/// `a="x",b="y\"z"` as a map (values unescaped).
fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((name, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, other)) => value.push(other),
                    None => {}
                },
                '"' => {
                    end = i + 1;
                    break;
                }
                other => value.push(other),
            }
        }
        labels.insert(name.trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

#[cfg(test)]
mod tests {
    #[test]
    fn destination_rows_come_from_the_rendered_metrics() {
        let text = "# TYPE webhook_destination_in_flight gauge\n\
            webhook_destination_in_flight{webhook=\"gh\",destination=\"log\"} 2\n\
            webhook_destination_failed_total{webhook=\"gh\",destination=\"log\",retryable=\"true\"} 3\n\
            webhook_destination_failed_total{webhook=\"gh\",destination=\"log\",retryable=\"false\"} 1\n\
            webhook_destination_delivered_total{webhook=\"a\\\"b\",destination=\"kafka\"} 7\n\
            webhook_requests_total{webhook=\"gh\"} 9\n";
        let rows = super::destinations(text);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["webhook"], "a\"b");
        assert_eq!(rows[0]["delivered"], 7.0);
        assert_eq!(rows[1]["webhook"], "gh");
        assert_eq!(rows[1]["in_flight"], 2.0);
        assert_eq!(rows[1]["failed"], 4.0);
    }
}
