//! The `log` destination: one structured `tracing` line per webhook (target
//! `webhook::log`), carrying the webhook id, request id, body size and content type.
//!
//! It never logs secrets: bodies and headers are left out unless asked for, and asked-for
//! headers that carry credentials or signatures are redacted.
//!
//! ```json
//! {"demo": {"module": "log", "module-config": {"include_body": true, "pretty_print": false}}}
//! ```

use http::HeaderMap;
use serde::Deserialize;
use webhook_core::{
    BuildContext, BuildError, Delivery, Module, ModuleError, NoConnection, is_sensitive_header,
};

/// `module-config` of the `log` destination.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Add the body to the line (default false). Non-UTF-8 bodies are shown by size only.
    pub include_body: bool,
    /// With `include_body`, re-indent JSON bodies (the original's option; default false).
    pub pretty_print: bool,
    /// Add the request headers, credentials and signatures redacted (default false).
    pub include_headers: bool,
}

/// The `log` destination.
#[derive(Debug, Clone)]
pub struct LogModule {
    config: LogConfig,
}

/// Add the `log` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<LogModule>();
}

impl Module for LogModule {
    const KIND: &'static str = "log";
    type Config = LogConfig;
    type Connection = NoConnection;

    async fn build(
        config: LogConfig,
        _: Option<NoConnection>,
        _: &BuildContext,
    ) -> Result<Self, BuildError> {
        Ok(Self { config })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let content_type = delivery
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let body = self
            .config
            .include_body
            .then(|| body_text(delivery, self.config.pretty_print));
        let headers = self
            .config
            .include_headers
            .then(|| redacted_headers(&delivery.headers));
        tracing::info!(
            target: "webhook::log",
            webhook = %delivery.webhook_id,
            request_id = %delivery.request_id,
            bytes = delivery.body.len(),
            content_type,
            body = body.as_deref(),
            headers = headers.as_deref(),
            "webhook received"
        );
        Ok(())
    }
}

fn body_text(delivery: &Delivery, pretty: bool) -> String {
    let Some(text) = delivery.body_str() else {
        return format!("<{} bytes of binary data>", delivery.body.len());
    };
    if pretty
        && let Ok(value) = serde_json::from_str::<serde_json::Value>(text)
        && let Ok(pretty) = serde_json::to_string_pretty(&value)
    {
        return pretty;
    }
    text.to_owned()
}

/// The headers as a JSON object, credentials and signatures replaced by `***`.
pub fn redacted_headers(headers: &HeaderMap) -> String {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        let name = name.as_str();
        let shown = if is_sensitive_header(name) {
            "***".to_owned()
        } else {
            String::from_utf8_lossy(value.as_bytes()).into_owned()
        };
        map.insert(name.to_owned(), serde_json::Value::String(shown));
    }
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn credentials_are_redacted() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        h.insert("x-hub-signature-256", HeaderValue::from_static("sha256=00"));
        h.insert("x-api-key", HeaderValue::from_static("k"));
        h.insert("x-github-event", HeaderValue::from_static("push"));
        let text = redacted_headers(&h);
        assert!(
            !text.contains("abc") && !text.contains("sha256=00") && !text.contains("\"k\""),
            "{text}"
        );
        assert!(text.contains(r#""x-github-event":"push""#), "{text}");
    }

    #[tokio::test]
    async fn delivers_ok() {
        let module = LogModule {
            config: LogConfig {
                include_body: true,
                pretty_print: true,
                include_headers: true,
            },
        };
        let delivery = Delivery {
            webhook_id: "t".into(),
            request_id: uuid::Uuid::now_v7(),
            headers: Default::default(),
            query: None,
            body: bytes::Bytes::from_static(b"\xff\xfe"),
            received_at: std::time::SystemTime::now(),
            data_type: webhook_core::DataType::Blob,
        };
        assert!(module.deliver(&delivery).await.is_ok());
        assert_eq!(body_text(&delivery, true), "<2 bytes of binary data>");
    }
}
