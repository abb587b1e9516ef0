//! The configuration model: `webhooks.json` and `connections.json` in the original
//! service's format.
//!
//! Parsing is strict and reports every problem at once, each naming the file, the webhook id
//! (or connection name) and the key. It happens in two phases: [`parse`] checks the outer
//! webhook entries, builds the validators and parses each destination's own strict config
//! (no I/O); [`crate::Pipeline::build`] then connects the destinations.

pub mod de;
mod env;
mod error;
mod secret;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

pub use env::Env;
pub use error::{ConfigError, ConfigErrors};
pub use secret::Secret;

use crate::registry::{PrepareError, PreparedModule};
use crate::validator::DynValidator;
use crate::{DataType, Registry};

/// The text of one config file and the name used for it in error messages.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    name: String,
    text: String,
}

impl ConfigSource {
    /// A config given as text; `name` is how errors refer to it (usually the file path).
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }

    /// Read a config file; errors name the file.
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Ok(Self { name, text }),
            Err(err) => Err(ConfigError::new(
                &name,
                None,
                "",
                format!("cannot read file: {err}"),
            )),
        }
    }

    /// The file's text, as read.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The name used in error messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// When the sender gets its answer (`ack` in webhooks.json).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AckMode {
    /// Answer 2xx once the request is durably in the spool (fsync'd); deliver in the
    /// background with retries. 503 with `Retry-After` when the spool cannot take it.
    #[default]
    Persisted,
    /// Answer only after every destination confirmed (502/503 when one did not).
    Delivered,
    /// Answer at once; deliver in the background without durability (lost on a crash).
    Accepted,
}

impl AckMode {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Persisted => "persisted",
            AckMode::Delivered => "delivered",
            AckMode::Accepted => "accepted",
        }
    }
}

/// How a chain of destinations runs (`chain-config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    /// One destination after the other, in the listed order.
    #[default]
    Sequential,
    /// All destinations at once.
    Parallel,
}

/// `chain-config`: how the destinations of a webhook run.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainConfig {
    /// Sequential (default) or parallel.
    pub execution: Execution,
    /// Sequential chains: go on to the next destination after one failed (default true).
    /// The sender is still answered with a failure, so nothing is lost.
    pub continue_on_error: bool,
    /// Seconds one attempt of one destination may take (default 30); with `ack: delivered`
    /// also the longest the sender waits for the whole delivery, retries included.
    #[serde(deserialize_with = "de::number")]
    pub timeout: f64,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            execution: Execution::Sequential,
            continue_on_error: true,
            timeout: 30.0,
        }
    }
}

/// `retry`: how often a retryable delivery failure is retried, in every ack mode.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryConfig {
    /// Whether failed attempts are retried. Not set: on for `persisted`/`accepted`, off for
    /// `delivered` (where the sender retries).
    pub enabled: Option<bool>,
    /// Attempts in all, the first included (default 3).
    #[serde(deserialize_with = "de::number")]
    pub max_attempts: u32,
    /// Seconds before the first retry (default 1.0).
    #[serde(deserialize_with = "de::number")]
    pub initial_delay: f64,
    /// Upper bound of a delay in seconds (default 60.0).
    #[serde(deserialize_with = "de::number")]
    pub max_delay: f64,
    /// Growth of the delay per attempt (default 2.0).
    #[serde(deserialize_with = "de::number")]
    pub backoff_multiplier: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            enabled: None,
            max_attempts: 3,
            initial_delay: 1.0,
            max_delay: 60.0,
            backoff_multiplier: 2.0,
        }
    }
}

impl RetryConfig {
    fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(1..=100).contains(&self.max_attempts) {
            problems.push(("max_attempts", "must be between 1 and 100".to_owned()));
        }
        for (key, value) in [
            ("initial_delay", self.initial_delay),
            ("max_delay", self.max_delay),
        ] {
            if !(0.0..=86_400.0).contains(&value) {
                problems.push((key, "must be between 0 and 86400 seconds".to_owned()));
            }
        }
        if !(1.0..=100.0).contains(&self.backoff_multiplier) {
            problems.push(("backoff_multiplier", "must be between 1 and 100".to_owned()));
        }
        problems
    }
}

/// A checked configuration, ready for [`crate::Pipeline::build`].
pub struct Config {
    pub(crate) webhooks_file: String,
    pub(crate) webhooks: Vec<WebhookPlan>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("webhooks_file", &self.webhooks_file)
            .field("webhooks", &self.summaries().collect::<Vec<_>>())
            .finish()
    }
}

/// A short description of one configured webhook (for `check-config` and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSummary<'a> {
    /// The webhook id.
    pub id: &'a str,
    /// Its data type.
    pub data_type: DataType,
    /// Its validators' keys, in the order they run.
    pub validators: Vec<&'static str>,
    /// Its destinations' kinds, in chain order.
    pub destinations: Vec<&'a str>,
}

impl Config {
    /// The configured webhook ids, sorted.
    pub fn webhook_ids(&self) -> impl Iterator<Item = &str> {
        self.webhooks.iter().map(|w| &*w.id)
    }

    /// A summary of each webhook, sorted by id.
    pub fn summaries(&self) -> impl Iterator<Item = WebhookSummary<'_>> {
        self.webhooks.iter().map(|w| WebhookSummary {
            id: &w.id,
            data_type: w.data_type,
            validators: w.validators.iter().map(|v| v.key()).collect(),
            destinations: w.destinations.iter().map(|d| d.kind.as_str()).collect(),
        })
    }
}

pub(crate) struct WebhookPlan {
    pub(crate) id: Arc<str>,
    pub(crate) data_type: DataType,
    pub(crate) validators: Vec<Arc<dyn DynValidator>>,
    pub(crate) destinations: Vec<DestinationPlan>,
    pub(crate) chain: ChainConfig,
    /// `ack`, when the webhook sets it (else the pipeline's default).
    pub(crate) ack: Option<AckMode>,
}

pub(crate) struct DestinationPlan {
    pub(crate) kind: String,
    /// Where this destination's config sits in the webhook entry (`module-config`,
    /// `chain[1].module-config`), for errors raised while building it.
    pub(crate) config_key: String,
    pub(crate) connection_name: Option<String>,
    pub(crate) retry: RetryConfig,
    pub(crate) prepared: Box<dyn PreparedModule>,
    /// What the built destination depends on besides the webhook's data type (kind, module
    /// config, connection entry), so a reload can keep a destination that did not change.
    pub(crate) fingerprint: String,
}

/// Keys of a webhook entry that the pipeline itself reads (validators add theirs).
const CORE_KEYS: &[&str] = &[
    "data_type",
    "module",
    "module-config",
    "connection",
    "queue_name",
    "topic",
    "retry",
    "chain",
    "chain-config",
    "ack",
];

/// Keys that older files put at the top level instead of in `module-config`.
const TOP_LEVEL_FALLBACK_KEYS: &[&str] = &["queue_name", "topic"];

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

/// The entries of connections.json after substitution, by name.
struct Connections {
    file: Option<String>,
    entries: BTreeMap<String, (String, Map<String, Value>)>,
}

impl Connections {
    fn parse(source: Option<&ConfigSource>, env: &Env, errors: &mut Vec<ConfigError>) -> Self {
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

/// One destination as written in the entry, before its module config is checked.
struct DestinationSpec {
    kind: String,
    config: Map<String, Value>,
    connection: Option<String>,
    retry: RetryConfig,
    key_prefix: String,
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

    let data_type = take::<DataType>(&mut map, "data_type", ctx).unwrap_or_default();
    let module = take::<String>(&mut map, "module", ctx);
    let module_config = take::<Map<String, Value>>(&mut map, "module-config", ctx);
    let connection = take::<String>(&mut map, "connection", ctx);
    let retry = take::<RetryConfig>(&mut map, "retry", ctx).unwrap_or_default();
    for (key, message) in retry.check() {
        ctx.error(format!("retry.{key}"), message);
    }
    let ack = take::<AckMode>(&mut map, "ack", ctx);
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
                Ok(v) => validators.push(v),
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
            parse_chain(chain, connection.as_ref(), retry, ctx, &mut specs);
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
    })
}

fn parse_chain(
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
            }),
            other => match crate::registry::from_value::<ChainItem>(other) {
                Ok(item) => {
                    let item_retry = item.retry.unwrap_or(retry);
                    for (key, message) in item_retry.check() {
                        ctx.error(format!("{key_prefix}.retry.{key}"), message);
                    }
                    specs.push(DestinationSpec {
                        kind: item.module,
                        config: item.module_config.unwrap_or_default(),
                        connection: item.connection.or_else(|| connection.cloned()),
                        retry: item_retry,
                        key_prefix,
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
fn json_object(
    source: &ConfigSource,
    mapping: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Map<String, Value>> {
    let message = match serde_json::from_str::<Value>(&source.text) {
        Ok(Value::Object(root)) => return Some(root),
        Ok(_) => format!("must be a JSON object mapping {mapping}"),
        Err(err) => format!("not valid JSON: {err}"),
    };
    errors.push(ConfigError::new(&source.name, None, "", message));
    None
}

/// A configured timeout in seconds as a [`Duration`]: between 1 ms and one hour.
///
/// # Errors
///
/// The message to report under the timeout's key when `seconds` is outside that range
/// (or not a number).
pub fn timeout_seconds(seconds: f64) -> Result<Duration, &'static str> {
    if (0.001..=3600.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err("must be between 0.001 and 3600 seconds")
    }
}
