//! connections.json: named connection entries (after `{$VAR}` substitution) that
//! destinations refer to with `connection`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::parse::json_object;
use super::*;

/// The entries of connections.json after substitution, by name.
pub(super) struct Connections {
    pub(super) file: Option<String>,
    pub(super) entries: BTreeMap<String, (String, Map<String, Value>)>,
}

impl Connections {
    pub(super) fn parse(
        source: Option<&ConfigSource>,
        env: &Env,
        errors: &mut Vec<ConfigError>,
    ) -> Self {
        let mut entries = BTreeMap::new();
        let Some(source) = source else {
            return Self {
                file: None,
                entries,
            };
        };
        let root =
            json_object(source, "connection names to connections", errors).unwrap_or_default();
        for (name, mut entry) in root {
            let mut substitution_errors = Vec::new();
            env::substitute(
                &mut entry,
                env,
                &mut String::new(),
                &mut substitution_errors,
            );
            let mut failed = false;
            for err in substitution_errors {
                failed = true;
                errors.push(ConfigError::new(
                    &source.name,
                    Some(&name),
                    err.path,
                    err.message,
                ));
            }
            let Value::Object(mut map) = entry else {
                errors.push(ConfigError::new(
                    &source.name,
                    Some(&name),
                    "",
                    "must be an object",
                ));
                continue;
            };
            map.retain(|key, _| !super::parse::is_comment(key));
            let kind = match map.remove("type") {
                Some(Value::String(kind)) => kind,
                Some(_) => {
                    errors.push(ConfigError::new(
                        &source.name,
                        Some(&name),
                        "type",
                        "must be a string",
                    ));
                    continue;
                }
                None => {
                    errors.push(ConfigError::new(
                        &source.name,
                        Some(&name),
                        "type",
                        "missing",
                    ));
                    continue;
                }
            };
            if !failed {
                entries.insert(name, (kind, map));
            }
        }
        Self {
            file: Some(source.name.clone()),
            entries,
        }
    }
}
