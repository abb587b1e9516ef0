use std::time::SystemTime;

use jiff::Timestamp;
use webhook_core::{BuildError, Delivery};

/// A piece of a `filename_pattern`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Uuid,
    Timestamp,
    WebhookId,
}

/// A parsed `filename_pattern` plus the prefix: turns a delivery into its object key.
#[derive(Debug, Clone)]
pub(crate) struct KeyLayout {
    prefix: String,
    parts: Vec<Part>,
}

impl KeyLayout {
    pub(crate) fn parse(prefix: &str, pattern: &str) -> Result<Self, BuildError> {
        let mut parts = Vec::new();
        let mut rest = pattern;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| {
                BuildError::key("filename_pattern", "has a `{` without a closing `}`")
            })?;
            parts.push(match &after[..close] {
                "uuid" => Part::Uuid,
                "timestamp" => Part::Timestamp,
                "webhook_id" => Part::WebhookId,
                other => {
                    return Err(BuildError::key(
                        "filename_pattern",
                        format!(
                            "`{{{other}}}` is not a placeholder: use {{uuid}}, {{timestamp}} or {{webhook_id}}"
                        ),
                    ));
                }
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if parts.is_empty() {
            return Err(BuildError::key("filename_pattern", "must not be empty"));
        }
        if pattern.split('/').any(|segment| segment == "..") {
            return Err(BuildError::key(
                "filename_pattern",
                "must not contain `..` segments",
            ));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|segment| segment == "..") {
            return Err(BuildError::key("prefix", "must not contain `..` segments"));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
            parts,
        })
    }

    /// `prefix/YYYY/MM/DD/HH/<filename>`, the hour of receipt in UTC.
    pub(crate) fn key(&self, delivery: &Delivery) -> String {
        let at = Timestamp::try_from(delivery.received_at)
            .or_else(|_| Timestamp::try_from(SystemTime::now()))
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let mut key = String::with_capacity(self.prefix.len() + 64);
        if !self.prefix.is_empty() {
            key.push_str(&self.prefix);
            key.push('/');
        }
        key.push_str(&at.strftime("%Y/%m/%d/%H/").to_string());
        for part in &self.parts {
            match part {
                Part::Text(text) => key.push_str(text),
                Part::Uuid => key.push_str(&delivery.request_id.to_string()),
                Part::Timestamp => key.push_str(&at.strftime("%Y%m%dT%H%M%SZ").to_string()),
                Part::WebhookId => key.push_str(&delivery.webhook_id),
            }
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn delivery() -> Delivery {
        Delivery {
            webhook_id: Arc::from("gh"),
            request_id: uuid::Uuid::nil(),
            headers: Arc::default(),
            query: None,
            body: bytes::Bytes::new(),
            // 2026-11-28T16:32:45Z
            received_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_883_565),
            data_type: webhook_core::DataType::Json,
        }
    }

    #[test]
    fn keys_follow_the_layout() {
        let layout = KeyLayout::parse("webhooks", "webhook_{uuid}.json").unwrap();
        assert_eq!(
            layout.key(&delivery()),
            "webhooks/2026/11/28/16/webhook_00000000-0000-0000-0000-000000000000.json"
        );
        let layout = KeyLayout::parse("/a/b/", "{webhook_id}-{timestamp}").unwrap();
        assert_eq!(
            layout.key(&delivery()),
            "a/b/2026/11/28/16/gh-20261128T163245Z"
        );
        let layout = KeyLayout::parse("", "x").unwrap();
        assert_eq!(layout.key(&delivery()), "2026/11/28/16/x");
    }

    #[test]
    fn bad_patterns_are_config_errors() {
        for (prefix, pattern, key) in [
            ("p", "{name}.json", "filename_pattern"),
            ("p", "{uuid", "filename_pattern"),
            ("p", "", "filename_pattern"),
            ("p", "../{uuid}", "filename_pattern"),
            ("../p", "{uuid}", "prefix"),
        ] {
            assert_eq!(KeyLayout::parse(prefix, pattern).unwrap_err().key, key);
        }
    }
}
