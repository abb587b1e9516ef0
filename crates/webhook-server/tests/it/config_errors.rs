//! Config loading through the server: substituted values used verbatim, paths kept inside
//! the data directory, connections.json errors, the shipped example configs load
//! unchanged. (The parser's own tests are in webhook-core's `tests/it/parse.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use http::StatusCode;
use webhook_core::config::{self, ConfigErrors, ConfigSource, Env};
use webhook_core::{Pipeline, PipelineOptions};
use webhook_testkit::TestServer;
use webhook_testkit::recorder::registry_with_recorder;

/// Parse with the server's registry (every destination of this build).
fn parse_with(
    webhooks: &str,
    connections: Option<&str>,
    env: &[(&str, &str)],
) -> Result<config::Config, ConfigErrors> {
    let env: HashMap<String, String> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let connections = connections.map(|c| ConfigSource::new("connections.json", c));
    config::parse(
        &webhook_server::registry::registry(),
        &ConfigSource::new("webhooks.json", webhooks),
        connections.as_ref(),
        &Env::from_map(env),
    )
}

#[tokio::test]
async fn substituted_values_are_used_verbatim() {
    // The original silently dropped `$`, `&` and even `id` from substituted values.
    let server =
        TestServer::builder(r#"{"w": {"module": "log", "authorization": "Bearer {$TOKEN}"}}"#)
            .env("TOKEN", "p$a&s id")
            .start()
            .await;
    assert_eq!(
        server
            .post("w", &[("Authorization", "Bearer p$a&s id")], "{}")
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        server
            .post("w", &[("Authorization", "Bearer pas")], "{}")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn path_escape_is_a_config_error() {
    let data = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        data_dir: data.path().join("root"),
        ..webhook_testkit::delivered_options()
    };
    std::fs::create_dir(data.path().join("root")).unwrap();
    for path in ["../outside", "/etc", "a/../../x"] {
        let webhooks = format!(
            r#"{{"w": {{"module": "save_to_disk", "module-config": {{"path": "{path}"}}}}}}"#
        );
        let config = parse_with(&webhooks, None, &[]).unwrap();
        let errors = config.validate(&options).unwrap_err().to_string();
        assert!(
            errors.contains("webhooks.json: w.module-config.path: module `save_to_disk`"),
            "{errors}"
        );
        assert!(errors.contains("outside the data directory"), "{errors}");
        let config = parse_with(&webhooks, None, &[]).unwrap();
        assert!(Pipeline::build(config, options.clone()).await.is_err());
    }
    assert!(!data.path().join("outside").exists());

    // A symlink inside the data directory that leads out is caught when building.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(data.path(), data.path().join("root/link")).unwrap();
        let config = parse_with(
            r#"{"w": {"module": "save_to_disk", "module-config": {"path": "link/x"}}}"#,
            None,
            &[],
        )
        .unwrap();
        let errors = Pipeline::build(config, options.clone())
            .await
            .unwrap_err()
            .to_string();
        assert!(
            errors.contains("w.module-config.path") && errors.contains("symlink"),
            "{errors}"
        );
    }
}

#[test]
fn connection_errors_name_connections_json() {
    // A stand-in destination with a connection, to check connections.json handling.
    #[derive(Debug)]
    struct Queue;
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct QueueConfig {
        queue_name: String,
    }
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct QueueConnection {
        host: String,
        #[serde(deserialize_with = "webhook_core::config::de::number")]
        port: u16,
        user: String,
        pass: webhook_core::config::Secret,
    }
    impl webhook_core::Module for Queue {
        const KIND: &'static str = "queue";
        const CONNECTION_TYPES: &'static [&'static str] = &["rabbitmq"];
        const TOP_LEVEL_KEYS: &'static [&'static str] = &["queue_name"];
        type Config = QueueConfig;
        type Connection = QueueConnection;
        async fn build(
            _: QueueConfig,
            _: Option<QueueConnection>,
            _: &webhook_core::BuildContext,
        ) -> Result<Self, webhook_core::BuildError> {
            Ok(Queue)
        }
        async fn deliver(
            &self,
            _: &webhook_core::Delivery,
        ) -> Result<(), webhook_core::ModuleError> {
            Ok(())
        }
    }
    let mut registry = registry_with_recorder();
    registry.register_module::<Queue>();
    let parse = |webhooks: &str, connections: &str, env: &[(&str, &str)]| {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        config::parse(
            &registry,
            &ConfigSource::new("webhooks.json", webhooks),
            Some(&ConfigSource::new("connections.json", connections)),
            &Env::from_map(env),
        )
    };
    // The original's layout: top-level queue_name, port from the environment as a string.
    let ok = parse(
        r#"{"q": {"module": "queue", "connection": "mq", "queue_name": "jobs"}}"#,
        r#"{"mq": {"type": "rabbitmq", "host": "127.0.0.1", "port": "{$RABBIT_PORT:5672}", "user": "guest", "pass": "{$RABBIT_PASS}"}}"#,
        &[("RABBIT_PASS", "guest")],
    );
    assert!(
        ok.is_ok(),
        "{}",
        ok.err().map(|e| e.to_string()).unwrap_or_default()
    );

    let err = |webhooks: &str, connections: &str| match parse(webhooks, connections, &[]) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    };
    let e = err(
        r#"{"q": {"module": "queue", "connection": "mq", "queue_name": "jobs"}}"#,
        r#"{"mq": {"type": "rabbitmq", "host": "h", "port": 70000, "user": "u", "pass": "p"}}"#,
    );
    assert!(
        e.contains("connections.json: mq.port: ") && e.contains("used by webhook `q`"),
        "{e}"
    );
    let e = err(
        r#"{"q": {"module": "queue", "connection": "nope", "queue_name": "j"}}"#,
        "{}",
    );
    assert!(
        e.contains("webhooks.json: q.connection: no connection named `nope`"),
        "{e}"
    );
    for (connections, expected) in [
        (
            "[1]",
            "connections.json: must be a JSON object mapping connection names",
        ),
        ("{", "connections.json: not valid JSON"),
    ] {
        let e = err(r#"{"l": {"module": "log"}}"#, connections);
        assert!(e.contains(expected), "{e}");
    }
    let e = err(r#"{"q": {"module": "queue", "queue_name": "j"}}"#, "{}");
    assert!(e.contains("webhooks.json: q.connection: missing"), "{e}");
    let e = err(
        r#"{"q": {"module": "queue", "connection": "r", "queue_name": "j"}}"#,
        r#"{"r": {"type": "redis-rq", "host": "h"}}"#,
    );
    assert!(e.contains("connection `r` has type `redis-rq`"), "{e}");
    let e = err(
        r#"{"q": {"module": "queue", "connection": "mq"}}"#,
        r#"{"mq": {"host": "h"}}"#,
    );
    assert!(e.contains("connections.json: mq.type: missing"), "{e}");
    let e = err(
        r#"{"q": {"module": "queue", "connection": "mq", "queue_name": "j"}}"#,
        r#"{"mq": {"type": "rabbitmq", "host": "{$NOPE}"}}"#,
    );
    assert!(
        e.contains("connections.json: mq.host: environment variable `NOPE`"),
        "{e}"
    );
    // module-config wins over the top-level key, and a missing one is named.
    let e = err(
        r#"{"q": {"module": "queue", "connection": "mq"}}"#,
        r#"{"mq": {"type": "rabbitmq", "host": "h", "port": 1, "user": "u", "pass": "p"}}"#,
    );
    assert!(
        e.contains("webhooks.json: q.module-config: missing field `queue_name`"),
        "{e}"
    );
}

fn example(path: &str) -> ConfigSource {
    let full = format!(
        "{}/../../examples/config/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    ConfigSource::read(std::path::Path::new(&full)).unwrap()
}

#[tokio::test]
async fn shipped_example_configs_load_unchanged() {
    let registry = webhook_server::registry::registry();
    let env = Env::from_map(HashMap::from([(
        "GITHUB_WEBHOOK_SECRET".to_owned(),
        "s".to_owned(),
    )]));
    let data = tempfile::tempdir().unwrap();
    let options = PipelineOptions {
        data_dir: data.path().to_path_buf(),
        ..webhook_testkit::delivered_options()
    };
    let config = config::parse(
        &registry,
        &example("webhooks.json"),
        Some(&example("connections.json")),
        &env,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(config.webhook_ids().count() >= 5);
    let pipeline = Pipeline::build(config, options)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pipeline.health().await.healthy);

    // The embedded default config too.
    let default = ConfigSource::new(
        "default",
        include_str!("../../config/default-webhooks.json"),
    );
    config::parse(&registry, &default, None, &Env::empty()).unwrap_or_else(|e| panic!("{e}"));
}

#[cfg(all(
    feature = "redis",
    feature = "rabbitmq",
    feature = "kafka",
    feature = "nats",
    feature = "mqtt",
    feature = "postgresql",
    feature = "mysql"
))]
#[test]
fn shipped_broker_example_configs_parse_and_validate() {
    let registry = webhook_server::registry::registry();
    let config = config::parse(
        &registry,
        &example("brokers/webhooks.json"),
        Some(&example("brokers/connections.json")),
        &Env::empty(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    config
        .validate(&PipelineOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<&str> = config.webhook_ids().collect();
    assert_eq!(ids.len(), 12, "{ids:?}");
}
