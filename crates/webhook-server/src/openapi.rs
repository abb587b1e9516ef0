//! `GET /openapi.json` and `webhook-server openapi`: an OpenAPI 3.1 document generated
//! from the webhooks.json in use — one path per webhook, its authentication as security
//! schemes (never a secret), its `json_schema` as the request body schema.

use serde_json::{Map, Value, json};
use webhook_validators::Provider;

/// The document for the webhooks.json `text` (an object of webhook entries). Entries that
/// are not objects are skipped; the config loader reports them.
pub fn document(text: &str) -> Value {
    let entries = serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| match v {
            Value::Object(map) => Some(map),
            _ => None,
        })
        .unwrap_or_default();
    let mut paths = Map::new();
    let mut schemes = Map::new();
    let mut ids: Vec<&String> = entries.keys().collect();
    ids.sort();
    for id in ids {
        let Some(Value::Object(entry)) = entries.get(id) else {
            continue;
        };
        let mut security = Vec::new();
        for (key, value) in entry {
            if let Some(scheme) = security_scheme(key, value) {
                let name = format!("{id}.{key}");
                schemes.insert(name.clone(), scheme);
                security.push(json!({ name: [] }));
            }
        }
        let blob = entry.get("data_type").and_then(Value::as_str) == Some("blob");
        let body = match entry.get("json_schema") {
            Some(schema) => json!({"application/json": {"schema": schema}}),
            None if blob => {
                json!({"*/*": {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}})
            }
            None => json!({"application/json": {"schema": {}}}),
        };
        let destinations = match (entry.get("module"), entry.get("chain")) {
            (Some(Value::String(module)), _) => module.clone(),
            (_, Some(Value::Array(chain))) => chain
                .iter()
                .filter_map(|c| {
                    c.as_str()
                        .or_else(|| c.get("module").and_then(Value::as_str))
                })
                .collect::<Vec<_>>()
                .join(", "),
            _ => String::new(),
        };
        let mut operation = json!({
            "operationId": format!("post_{}", id.replace(|c: char| !c.is_ascii_alphanumeric(), "_")),
            "summary": format!("Receive webhook `{id}`"),
            "description": format!("Verified, then delivered to: {destinations}. Answered 200 only after every destination confirmed."),
            "requestBody": {"required": true, "content": body},
            "responses": responses(),
        });
        if !security.is_empty() {
            operation["security"] = Value::Array(security);
        }
        if let Some(list) = entry.get("ip_whitelist") {
            operation["x-ip-allow-list"] = list.clone();
        }
        paths.insert(format!("/webhook/{id}"), json!({ "post": operation }));
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "webhook gateway",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Webhooks this gateway receives, generated from its webhooks.json.",
        },
        "paths": paths,
    });
    if !schemes.is_empty() {
        document["components"] = json!({ "securitySchemes": schemes });
    }
    document
}

fn responses() -> Value {
    let answer = |description: &str| json!({"description": description, "content": {"application/json": {"schema": {"type": "object"}}}});
    json!({
        "200": answer("Delivered to every destination (or a duplicate / handshake answered)"),
        "400": answer("Malformed JSON or unreadable body"),
        "401": answer("Authentication or signature failed"),
        "403": answer("Client IP not allowed"),
        "404": answer("Unknown webhook id"),
        "413": answer("Body over the size limit"),
        "422": answer("Body does not match the webhook's JSON Schema"),
        "429": answer("Rate limited; see Retry-After"),
        "502": answer("Delivery failed; `retryable` says whether to retry"),
        "503": answer("Destination unavailable; retry after Retry-After"),
    })
}

fn header_key(name: &str, description: &str) -> Value {
    json!({"type": "apiKey", "in": "header", "name": name, "description": description})
}

/// The security scheme of one authentication key of a webhook entry (no secrets).
fn security_scheme(key: &str, value: &Value) -> Option<Value> {
    let text = |field: &str, default: &str| {
        value
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or(default)
            .to_owned()
    };
    Some(match key {
        "authorization" => header_key("Authorization", "The whole Authorization header value"),
        "basic_auth" => json!({"type": "http", "scheme": "basic"}),
        "jwt" => json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                        "description": format!("JWT signed with {}", text("algorithm", "HS256"))}),
        "header_auth" => header_key(&text("header_name", "X-API-Key"), "API key"),
        "query_auth" => json!({"type": "apiKey", "in": "query",
                               "name": text("parameter_name", "api_key"), "description": "API key"}),
        "hmac" => header_key(
            &text("header", "X-HMAC-Signature"),
            &format!(
                "HMAC-{} of the raw body, hex",
                text("algorithm", "sha256").to_uppercase()
            ),
        ),
        "verify" => {
            let provider: Option<Provider> = value
                .get("provider")
                .and_then(|p| serde_json::from_value(p.clone()).ok());
            match provider {
                Some(provider) => header_key(
                    &provider.scheme().signature_header,
                    &format!("{} webhook signature", provider.name()),
                ),
                None => header_key(
                    value
                        .pointer("/scheme/signature_header")
                        .and_then(Value::as_str)
                        .unwrap_or("signature"),
                    "Webhook signature",
                ),
            }
        }
        _ => return None,
    })
}
