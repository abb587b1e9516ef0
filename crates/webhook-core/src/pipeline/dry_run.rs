//! Test before deploy: a sample request through a webhook's validators (when asked), its
//! filter, each destination's routing filter and transform — nothing delivered, nothing
//! stored. [`Pipeline::dry_run`] serves `POST /admin/webhooks/{id}/test`;
//! [`Config::dry_run`] the CLI's `test`, from the config files alone.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Pipeline;
use super::request::{clean, filter_input, without_credentials};
use crate::config::Config;
use crate::transform::DestinationTransform;
use crate::validator::{Check, DynValidator, RequestView};
use crate::{DataType, Delivery};

/// A sample request (the body of `POST /admin/webhooks/{id}/test`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// The method (default `POST`).
    #[serde(default)]
    pub method: Option<String>,
    /// The query string, without `?` (`env=prod&x=1`).
    #[serde(default)]
    pub query: Option<String>,
    /// Request headers, name → value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: a string is taken as the raw bytes, any other JSON value as its JSON text.
    #[serde(default)]
    pub body: Value,
    /// Also run the webhook's validators (signatures, allow-lists…) on the sample.
    #[serde(default)]
    pub verify: bool,
}

/// Why a dry run could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DryRunError {
    /// No webhook has this id.
    #[error("no webhook `{0}`")]
    UnknownWebhook(String),
    /// The sample cannot be a request (a header name or value, the method, the query).
    #[error("bad sample: {0}")]
    BadSample(String),
}

/// What a dry run looks at of a webhook, from a built pipeline or from a config.
struct Subject<'a> {
    id: &'a Arc<str>,
    data_type: DataType,
    validators: &'a [Arc<dyn DynValidator>],
    filter: Option<&'a crate::filter::Filter>,
    cleanup: Option<&'a crate::cleanup::CredentialCleanup>,
    strip_headers: Vec<HeaderName>,
    destinations: Vec<Target<'a>>,
    max_json_depth: usize,
}

struct Target<'a> {
    kind: &'a str,
    filter: Option<&'a crate::filter::Filter>,
    transform: Option<&'a DestinationTransform>,
}

impl Pipeline {
    /// Run `sample` through webhook `id` as a request would go, without delivering or
    /// storing anything: `{"webhook", "verified", "filtered", "destinations": [{index,
    /// module, matched, outcome: deliver|skip|filtered|error, headers, body, error,
    /// took_ms}]}`. Secrets in headers are masked in the answer.
    pub async fn dry_run(&self, id: &str, sample: Sample) -> Result<Value, DryRunError> {
        let webhook = self
            .webhooks
            .get(id)
            .ok_or_else(|| DryRunError::UnknownWebhook(id.to_owned()))?;
        let subject = Subject {
            id: &webhook.id,
            data_type: webhook.data_type,
            validators: &webhook.validators,
            filter: webhook.filter.as_ref(),
            cleanup: webhook.cleanup.as_ref(),
            strip_headers: webhook.strip_headers.clone(),
            destinations: webhook
                .route
                .destinations
                .iter()
                .map(|d| Target {
                    kind: d.module.kind(),
                    filter: d.filter.as_deref(),
                    transform: d.transform.as_ref(),
                })
                .collect(),
            max_json_depth: self.options.max_json_depth,
        };
        run(subject, sample).await
    }
}

impl Config {
    /// [`Pipeline::dry_run`] from the config alone (no destination is connected).
    pub async fn dry_run(
        &self,
        id: &str,
        sample: Sample,
        max_json_depth: usize,
    ) -> Result<Value, DryRunError> {
        let plan = self
            .webhooks
            .iter()
            .find(|w| &*w.id == id)
            .ok_or_else(|| DryRunError::UnknownWebhook(id.to_owned()))?;
        let subject = Subject {
            id: &plan.id,
            data_type: plan.data_type,
            validators: &plan.validators,
            filter: plan.filter.as_ref(),
            cleanup: plan.cleanup.as_ref(),
            strip_headers: super::build::strip_headers(&plan.validators, plan.forward_credentials),
            destinations: plan
                .destinations
                .iter()
                .map(|d| Target {
                    kind: &d.kind,
                    filter: d.filter.as_deref(),
                    transform: d.transform.as_ref(),
                })
                .collect(),
            max_json_depth,
        };
        run(subject, sample).await
    }
}

async fn run(subject: Subject<'_>, sample: Sample) -> Result<Value, DryRunError> {
    let method = match sample.method.as_deref() {
        None => Method::POST,
        Some(text) => Method::from_bytes(text.as_bytes())
            .map_err(|_| DryRunError::BadSample(format!("method `{text}`")))?,
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &sample.headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| DryRunError::BadSample(format!("header name `{name}`")))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| DryRunError::BadSample(format!("the value of header `{name}`")))?;
        headers.append(header, value);
    }
    let path = crate::transform::webhook_path(subject.id);
    let uri: Uri = match &sample.query {
        Some(query) => format!("{path}?{query}"),
        None => path,
    }
    .parse()
    .map_err(|_| DryRunError::BadSample("the query string".to_owned()))?;
    let body = match sample.body {
        Value::String(text) => Bytes::from(text),
        Value::Null => Bytes::new(),
        other => Bytes::from(other.to_string()),
    };
    let delivery = Delivery {
        webhook_id: Arc::clone(subject.id),
        request_id: Uuid::now_v7(),
        headers: Arc::new(headers),
        query: uri.query().map(Arc::from),
        body,
        received_at: SystemTime::now(),
        data_type: subject.data_type,
    };
    let mut report =
        json!({"webhook": &**subject.id, "request_id": delivery.request_id.to_string()});

    if sample.verify {
        let view = RequestView {
            webhook_id: subject.id,
            method: &method,
            uri: &uri,
            headers: &delivery.headers,
            peer: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            client_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            body: &delivery.body,
            received_at: delivery.received_at,
        };
        for validator in subject.validators {
            let verdict = match validator.check(&view) {
                Check::Pass => Ok(None),
                Check::Reject(rejection) => Err(rejection),
                Check::Answer(answer) => Ok(Some(answer)),
                Check::Pending(future) => future.await,
            };
            match verdict {
                Ok(None) => {}
                Ok(Some(answer)) => {
                    report["verified"] = json!(true);
                    report["answered"] = json!({"validator": validator.key(), "reason": answer.reason,
                        "status": answer.status.as_u16()});
                    return Ok(report);
                }
                Err(rejection) => {
                    report["verified"] = json!(false);
                    report["rejected"] = json!({"validator": validator.key(), "reason": rejection.reason,
                        "status": rejection.kind.status().as_u16()});
                    return Ok(report);
                }
            }
        }
        report["verified"] = json!(true);
    } else {
        report["verified"] = Value::Null;
    }

    if subject.data_type == DataType::Json
        && let Err(err) = crate::json::check(&delivery.body, subject.max_json_depth)
    {
        report["error"] = json!(format!(
            "the body is not valid JSON ({err}): a request would be answered 400"
        ));
        return Ok(report);
    }
    let input = filter_input(&method, &uri, &delivery);
    let filtered = subject.filter.is_some_and(|f| !f.matches(&input));
    report["filtered"] = json!(filtered);
    let mut delivery = without_credentials(delivery, &subject.strip_headers);
    if let Some(cleanup) = subject.cleanup {
        clean(cleanup, &mut delivery);
    }
    let mut destinations = Vec::with_capacity(subject.destinations.len());
    for (index, target) in subject.destinations.iter().enumerate() {
        let matched = !filtered && target.filter.is_none_or(|f| f.matches(&input));
        let mut entry = json!({"index": index, "module": target.kind, "matched": matched,
            "transform": target.transform.map(|t| t.language)});
        if !matched {
            entry["outcome"] = json!("filtered");
            destinations.push(entry);
            continue;
        }
        match target.transform {
            None => {
                entry["outcome"] = json!("deliver");
                describe(&mut entry, &delivery);
            }
            Some(transform) => {
                let started = Instant::now();
                let output = transform.apply(&delivery).await;
                entry["took_ms"] = json!(started.elapsed().as_secs_f64() * 1000.0);
                match output {
                    Ok(Some(output)) => {
                        entry["outcome"] = json!("deliver");
                        describe(&mut entry, &output);
                    }
                    Ok(None) => entry["outcome"] = json!("skip"),
                    Err(err) => {
                        entry["outcome"] = json!("error");
                        entry["error"] = json!(format!("{} transform: {err}", transform.language));
                    }
                }
            }
        }
        destinations.push(entry);
    }
    report["destinations"] = Value::Array(destinations);
    Ok(report)
}

/// The headers (secrets masked) and body a destination would get.
fn describe(entry: &mut Value, delivery: &Delivery) {
    let headers: serde_json::Map<String, Value> = delivery
        .header_map()
        .into_iter()
        .map(|(name, value)| {
            let value = if crate::is_sensitive_header(&name) {
                "***".to_owned()
            } else {
                value
            };
            (name, Value::String(value))
        })
        .collect();
    entry["headers"] = Value::Object(headers);
    match serde_json::from_slice::<Value>(&delivery.body) {
        Ok(body) if delivery.data_type == DataType::Json => entry["body"] = body,
        _ => match delivery.body_str() {
            Some(text) => entry["body"] = json!(text),
            None => {
                entry["body"] = json!(BASE64.encode(&delivery.body));
                entry["body_encoding"] = json!("base64");
            }
        },
    }
}
