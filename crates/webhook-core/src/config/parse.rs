//! Parsing webhooks.json: the outer entry by hand (so unknown keys can be reported), then
//! each validator's and destination's own strict config, every error collected with its
//! `file: id.key.path`.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::connections::Connections;
use super::*;
use crate::Registry;
use crate::registry::PrepareError;

/// Keys of a webhook entry that the pipeline itself reads (validators add theirs).
const CORE_KEYS: &[&str] = &[
    "data_type",
    "module",
    "module-config",
    "connection",
    "queue_name",
    "topic",
    "destination",
    "redis",
    "retry",
    "chain",
    "chain-config",
    "ack",
    "forward_credentials",
    "trusted_proxies",
    "credential_cleanup",
    "filter",
    "transform",
    "history",
];

/// Keys that older files put at the top level instead of in `module-config`.
const TOP_LEVEL_FALLBACK_KEYS: &[&str] = &["queue_name", "topic", "destination", "redis"];

const MAX_CHAIN: usize = 20;

/// Parse and check `webhooks.json` (and `connections.json` when given) against what
/// `registry` offers. Every problem is reported, not just the first.
pub fn parse(
    registry: &Registry,
    webhooks: &ConfigSource,
    connections: Option<&ConfigSource>,
    env: &Env,
) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let connections = Connections::parse(connections, env, &mut errors);

    let Some(root) = json_object(webhooks, "webhook ids to webhooks", &mut errors) else {
        return Err(ConfigErrors(errors));
    };

    let mut plans = Vec::with_capacity(root.len());
    for (id, mut entry) in root {
        let mut ctx = EntryContext {
            file: &webhooks.name,
            id: &id,
            errors: &mut errors,
        };
        if let Err(message) = check_webhook_id(&id) {
            ctx.error("", message);
            continue;
        }
        let mut substitution_errors = Vec::new();
        env::substitute(
            &mut entry,
            env,
            &mut String::new(),
            &mut substitution_errors,
        );
        for err in substitution_errors {
            ctx.error(err.path, err.message);
        }
        if let Some(plan) = parse_webhook(registry, &connections, entry, &mut ctx) {
            plans.push(plan);
        }
    }

    if errors.is_empty() {
        Ok(Config {
            webhooks_file: webhooks.name.clone(),
            webhooks: plans,
        })
    } else {
        Err(ConfigErrors(errors))
    }
}

/// An IP (`10.0.0.1`, a /32 or /128) or a CIDR block (`10.0.0.0/8`).
fn parse_net(text: &str) -> Option<ipnet::IpNet> {
    let text = text.trim();
    text.parse::<ipnet::IpNet>().ok().or_else(|| {
        text.parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}

fn check_webhook_id(id: &str) -> Result<(), String> {
    let valid = (1..=64).contains(&id.len())
        && id
            .bytes()
            .enumerate()
            .all(|(i, b)| b.is_ascii_alphanumeric() || (i > 0 && (b == b'_' || b == b'-')));
    if valid {
        Ok(())
    } else {
        Err("invalid webhook id: use 1-64 characters [A-Za-z0-9_-], starting with a letter or digit".to_owned())
    }
}

struct EntryContext<'a> {
    file: &'a str,
    id: &'a str,
    errors: &'a mut Vec<ConfigError>,
}

impl EntryContext<'_> {
    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(self.file, Some(self.id), key, message));
    }
}

/// One destination as written in the entry, before its module config is checked.
struct DestinationSpec {
    kind: String,
    config: Map<String, Value>,
    connection: Option<String>,
    retry: RetryConfig,
    key_prefix: String,
    /// A chain item's `filter`: routing, this destination only gets matching requests.
    filter: Option<Value>,
    /// `transform`: what this destination gets instead of the request as received.
    transform: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainItem {
    module: String,
    #[serde(default)]
    connection: Option<String>,
    #[serde(default, rename = "module-config")]
    module_config: Option<Map<String, Value>>,
    #[serde(default)]
    retry: Option<RetryConfig>,
    /// Routing: only requests that match go to this destination.
    #[serde(default)]
    filter: Option<Value>,
    /// What this destination gets instead of the request as received.
    #[serde(default)]
    transform: Option<Value>,
    /// Legacy: older files put these at the top of a chain item instead of in its
    /// `module-config`.
    #[serde(default)]
    topic: Option<Value>,
    #[serde(default)]
    queue_name: Option<Value>,
    #[serde(default)]
    destination: Option<Value>,
}

/// `_comment`, `_note`…: keys the original's files use for notes, at the top of either
/// file and inside entries. They are ignored (as the original ignores them); the original
/// reserves ids starting with `_`, so no webhook or connection can have such a name.
pub(super) fn is_comment(key: &str) -> bool {
    key.starts_with('_')
}

fn take<T: serde::de::DeserializeOwned>(
    map: &mut Map<String, Value>,
    key: &str,
    ctx: &mut EntryContext<'_>,
) -> Option<T> {
    let value = map.remove(key)?;
    match crate::registry::from_value::<T>(value) {
        Ok(v) => Some(v),
        Err((path, message)) => {
            ctx.error(join_key(key, &path), message);
            None
        }
    }
}

fn join_key(prefix: &str, path: &str) -> String {
    match (prefix.is_empty(), path.is_empty()) {
        (_, true) => prefix.to_owned(),
        (true, false) => path.to_owned(),
        (false, false) if path.starts_with('[') => format!("{prefix}{path}"),
        (false, false) => format!("{prefix}.{path}"),
    }
}

fn parse_webhook(
    registry: &Registry,
    connections: &Connections,
    entry: Value,
    ctx: &mut EntryContext<'_>,
) -> Option<WebhookPlan> {
    let Value::Object(mut map) = entry else {
        ctx.error("", "must be an object");
        return None;
    };
    let errors_before = ctx.errors.len();
    map.retain(|key, _| !is_comment(key));

    let data_type = take::<DataType>(&mut map, "data_type", ctx).unwrap_or_default();
    let module = take::<String>(&mut map, "module", ctx);
    let module_config = take::<Map<String, Value>>(&mut map, "module-config", ctx);
    let connection = take::<String>(&mut map, "connection", ctx);
    let retry = take::<RetryConfig>(&mut map, "retry", ctx).unwrap_or_default();
    for (key, message) in retry.check() {
        ctx.error(format!("retry.{key}"), message);
    }
    if retry.retryable_errors.is_some() || retry.non_retryable_errors.is_some() {
        tracing::info!(
            webhook = ctx.id,
            "retry.retryable_errors / non_retryable_errors name Python exceptions and are \
             ignored: here the destination classifies each failure (unreachable and timed out \
             are retried, refused is not)"
        );
    }
    let ack = take::<AckMode>(&mut map, "ack", ctx);
    let forward_credentials = take::<bool>(&mut map, "forward_credentials", ctx).unwrap_or(false);
    let cleanup = take::<crate::cleanup::CleanupConfig>(&mut map, "credential_cleanup", ctx)
        .and_then(crate::cleanup::CredentialCleanup::new);
    let filter =
        map.remove("filter")
            .and_then(|value| match crate::filter::Filter::parse(&value) {
                Ok(filter) => Some(filter),
                Err(err) => {
                    ctx.error(err.path, err.message);
                    None
                }
            });
    let trusted_proxies = take::<Vec<String>>(&mut map, "trusted_proxies", ctx)
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, text)| match parse_net(text) {
            Some(net) => Some(net),
            None => {
                ctx.error(
                    format!("trusted_proxies[{i}]"),
                    format!("`{text}` is not an IP address or CIDR block"),
                );
                None
            }
        })
        .collect();
    let history =
        take::<crate::history::HistoryConfig>(&mut map, "history", ctx).unwrap_or_default();
    let transform = map.remove("transform");
    let chain = map.remove("chain");
    let chain_config = take::<ChainConfig>(&mut map, "chain-config", ctx).unwrap_or_default();
    if let Err(message) = timeout_seconds(chain_config.timeout) {
        ctx.error("chain-config.timeout", message);
    }
    let top_level: Vec<(&'static str, Value)> = TOP_LEVEL_FALLBACK_KEYS
        .iter()
        .filter_map(|&key| map.remove(key).map(|v| (key, v)))
        .collect();

    // Validators, in the order the registry runs them.
    let mut validators = Vec::new();
    for factory in registry.validators() {
        if let Some(value) = map.remove(factory.key()) {
            match factory.build(value) {
                Ok(Some(v)) => validators.push(v),
                Ok(None) => {}
                Err(err) => ctx.error(join_key(factory.key(), &err.key), err.message),
            }
        }
    }

    // Whatever is left is not ours.
    for key in map.keys() {
        if let Some(why) = registry.unsupported(key) {
            ctx.error(
                key.as_str(),
                format!("not supported by this build yet: {why}"),
            );
        } else {
            let mut accepted: Vec<&str> = CORE_KEYS.to_vec();
            accepted.extend(registry.validator_keys());
            ctx.error(
                key.as_str(),
                format!("unknown key; accepted keys are: {}", accepted.join(", ")),
            );
        }
    }

    // The destinations: `module` (+ `module-config`, `connection`) or a `chain`.
    let mut specs = Vec::new();
    match (module, chain) {
        (Some(_), Some(_)) => ctx.error("chain", "give either `module` or `chain`, not both"),
        (None, None) => ctx.error("module", "missing: give `module` (or a `chain`)"),
        (Some(kind), None) => {
            let mut config = module_config.unwrap_or_default();
            if let Ok(kind_ok) = registry.module(&kind) {
                for (key, value) in top_level {
                    if !kind_ok.top_level_keys().contains(&key) {
                        ctx.error(key, format!("module `{kind}` does not use `{key}`"));
                    } else if !config.contains_key(key) {
                        config.insert(key.to_owned(), value);
                    }
                }
            }
            specs.push(DestinationSpec {
                kind,
                config,
                connection,
                retry,
                key_prefix: String::new(),
                // (a single destination's routing filter is the webhook's `filter`)
                filter: None,
                transform,
            });
        }
        (None, Some(chain)) => {
            for key in top_level
                .iter()
                .map(|(k, _)| *k)
                .chain(module_config.as_ref().map(|_| "module-config"))
            {
                ctx.error(
                    key,
                    "not used with `chain`: put it into the chain item's `module-config`",
                );
            }
            if transform.is_some() {
                ctx.error(
                    "transform",
                    "not used with `chain`: give each chain item its own `transform`",
                );
            }
            parse_chain(registry, chain, connection.as_ref(), retry, ctx, &mut specs);
        }
    }

    let mut destinations = Vec::with_capacity(specs.len());
    for spec in specs {
        if let Some(plan) = prepare_destination(registry, connections, spec, ctx) {
            destinations.push(plan);
        }
    }

    if ctx.errors.len() > errors_before {
        return None;
    }
    Some(WebhookPlan {
        id: Arc::from(ctx.id),
        data_type,
        validators,
        destinations,
        chain: chain_config,
        ack,
        forward_credentials,
        trusted_proxies,
        cleanup,
        filter,
        history,
    })
}

fn parse_chain(
    registry: &Registry,
    chain: Value,
    connection: Option<&String>,
    retry: RetryConfig,
    ctx: &mut EntryContext<'_>,
    specs: &mut Vec<DestinationSpec>,
) {
    let Value::Array(items) = chain else {
        ctx.error(
            "chain",
            "must be a list of module names or {module, connection, module-config, retry} objects",
        );
        return;
    };
    if items.is_empty() || items.len() > MAX_CHAIN {
        ctx.error("chain", format!("must have 1 to {MAX_CHAIN} items"));
        return;
    }
    for (i, item) in items.into_iter().enumerate() {
        let key_prefix = format!("chain[{i}]");
        match item {
            Value::String(kind) => specs.push(DestinationSpec {
                kind,
                config: Map::new(),
                connection: connection.cloned(),
                retry,
                key_prefix,
                filter: None,
                transform: None,
            }),
            other => match crate::registry::from_value::<ChainItem>(other) {
                Ok(item) => {
                    let item_retry = item.retry.unwrap_or(retry);
                    for (key, message) in item_retry.check() {
                        ctx.error(format!("{key_prefix}.retry.{key}"), message);
                    }
                    let mut config = item.module_config.unwrap_or_default();
                    let legacy = [
                        ("topic", item.topic),
                        ("queue_name", item.queue_name),
                        ("destination", item.destination),
                    ];
                    for (key, value) in legacy {
                        let Some(value) = value else { continue };
                        match registry.module(&item.module) {
                            Ok(kind) if !kind.top_level_keys().contains(&key) => ctx.error(
                                format!("{key_prefix}.{key}"),
                                format!("module `{}` does not use `{key}`", item.module),
                            ),
                            _ => {
                                config.entry(key).or_insert(value);
                            }
                        }
                    }
                    specs.push(DestinationSpec {
                        kind: item.module,
                        config,
                        connection: item.connection.or_else(|| connection.cloned()),
                        retry: item_retry,
                        key_prefix,
                        filter: item.filter,
                        transform: item.transform,
                    });
                }
                Err((path, message)) => ctx.error(join_key(&key_prefix, &path), message),
            },
        }
    }
}

fn prepare_destination(
    registry: &Registry,
    connections: &Connections,
    spec: DestinationSpec,
    ctx: &mut EntryContext<'_>,
) -> Option<DestinationPlan> {
    let filter = match spec.filter.as_ref().map(crate::filter::Filter::parse) {
        Some(Ok(filter)) => Some(Arc::new(filter)),
        Some(Err(err)) => {
            ctx.error(join_key(&spec.key_prefix, &err.path), err.message);
            return None;
        }
        None => None,
    };
    let transform = match spec.transform {
        Some(value) => Some(parse_transform(
            registry,
            value,
            &join_key(&spec.key_prefix, "transform"),
            ctx,
        )?),
        None => None,
    };
    let module_key = join_key(&spec.key_prefix, "module");
    let config_key = join_key(&spec.key_prefix, "module-config");
    let connection_key = join_key(&spec.key_prefix, "connection");
    let factory = match registry.module(&spec.kind) {
        Ok(factory) => factory,
        Err(message) => {
            ctx.error(module_key, message);
            return None;
        }
    };
    let types = factory.connection_types();
    let connection = match (&spec.connection, types.is_empty()) {
        (None, true) => None,
        (None, false) if factory.connection_optional() => None,
        (Some(_), true) => {
            ctx.error(
                connection_key,
                format!("module `{}` takes no connection", spec.kind),
            );
            return None;
        }
        (None, false) => {
            ctx.error(
                connection_key,
                format!(
                    "missing: module `{}` needs a connections.json entry of type {}",
                    spec.kind,
                    types.join(" or ")
                ),
            );
            return None;
        }
        (Some(name), false) => match connections.entries.get(name) {
            None => {
                let file = connections
                    .file
                    .as_deref()
                    .unwrap_or("connections.json (not given)");
                ctx.error(
                    connection_key,
                    format!("no connection named `{name}` in {file}"),
                );
                return None;
            }
            Some((kind, _)) if !types.contains(&kind.as_str()) => {
                ctx.error(
                    connection_key,
                    format!(
                        "connection `{name}` has type `{kind}`, but module `{}` needs type {}",
                        spec.kind,
                        types.join(" or ")
                    ),
                );
                return None;
            }
            Some((_, map)) => Some(Value::Object(map.clone())),
        },
    };
    let fingerprint = format!(
        "{}\n{}\n{}\n{}",
        spec.kind,
        Value::Object(spec.config.clone()),
        spec.connection.as_deref().unwrap_or(""),
        connection
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default(),
    );
    match factory.prepare(Value::Object(spec.config), connection) {
        Ok(prepared) => Some(DestinationPlan {
            kind: spec.kind,
            config_key,
            connection_name: spec.connection,
            retry: spec.retry,
            prepared,
            fingerprint,
            filter,
            transform,
        }),
        Err(PrepareError::ModuleConfig { key, message }) => {
            ctx.error(join_key(&config_key, &key), message);
            None
        }
        Err(PrepareError::Connection { key, message }) => {
            let name = spec.connection.unwrap_or_default();
            let file = connections.file.clone().unwrap_or_default();
            ctx.errors.push(ConfigError::new(
                &file,
                Some(&name),
                key,
                format!("{message} (used by webhook `{}`)", ctx.id),
            ));
            None
        }
    }
}

/// The top-level JSON object of a config file (`mapping` says what it maps), or `None`
/// with the error recorded.
pub(super) fn json_object(
    source: &ConfigSource,
    mapping: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Map<String, Value>> {
    let message = match serde_json::from_str::<Value>(&source.text) {
        Ok(Value::Object(mut root)) => {
            root.retain(|key, _| !is_comment(key));
            return Some(root);
        }
        Ok(_) => format!("must be a JSON object mapping {mapping}"),
        Err(err) => format!("not valid JSON: {err}"),
    };
    errors.push(ConfigError::new(&source.name, None, "", message));
    None
}

/// The keys of a `transform` object besides its program.
const TRANSFORM_LIMIT_KEYS: &[&str] = &["timeout_ms", "memory_mb", "max_output_bytes"];

/// `transform: {"jq": "<program>", "timeout_ms": …}`: the language, its compiled program
/// and the limits (`None` with the errors recorded under `key`).
fn parse_transform(
    registry: &Registry,
    value: Value,
    key: &str,
    ctx: &mut EntryContext<'_>,
) -> Option<crate::transform::DestinationTransform> {
    let shape = "must be an object with one program, {\"jq\": \"<program>\"} or \
                 {\"js\": \"<program>\"}, and optionally timeout_ms, memory_mb, max_output_bytes";
    let Value::Object(mut map) = value else {
        ctx.error(key, shape);
        return None;
    };
    map.retain(|k, _| !is_comment(k));
    let languages: Vec<String> = map
        .keys()
        .filter(|k| !TRANSFORM_LIMIT_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    let [language_key] = languages.as_slice() else {
        ctx.error(key, shape);
        return None;
    };
    let program_key = join_key(key, language_key);
    let language = match registry.transform_language(language_key) {
        Ok(language) => Arc::clone(language),
        Err(message) => {
            ctx.error(program_key, message);
            return None;
        }
    };
    let program = match map.remove(language_key.as_str()) {
        Some(Value::String(program)) if !program.trim().is_empty() => program,
        _ => {
            ctx.error(
                program_key,
                "must be the program's text (a non-empty string)",
            );
            return None;
        }
    };
    let limits = match crate::registry::from_value::<crate::transform::TransformLimits>(
        Value::Object(map),
    ) {
        Ok(limits) => limits,
        Err((path, message)) => {
            ctx.error(join_key(key, &path), message);
            return None;
        }
    };
    let problems = limits.check();
    let failed = !problems.is_empty();
    for (limit, message) in problems {
        ctx.error(join_key(key, limit), message);
    }
    if failed {
        return None;
    }
    match language.compile(&program, &limits) {
        Ok(compiled) => Some(crate::transform::DestinationTransform {
            language: language.key(),
            program: compiled,
            limits,
        }),
        Err(err) => {
            ctx.error(
                program_key,
                format!(
                    "does not compile: {} (line {}, column {} of the program)",
                    err.message, err.line, err.column
                ),
            );
            None
        }
    }
}
