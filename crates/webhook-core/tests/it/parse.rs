//! The parser of webhooks.json / connections.json: every error names the file, the
//! webhook id and the key; every error is listed at once; `{$VAR}` substitution. Run with
//! the validators and the `log` destination (what webhook-core parses against is a
//! registry; these are the crates every build has).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use webhook_core::Registry;
use webhook_core::config::{self, ConfigErrors, ConfigSource, Env};

fn registry() -> Registry {
    let mut registry = Registry::new();
    webhook_validators::register(&mut registry);
    webhook_log::register(&mut registry);
    registry
}

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
        &registry(),
        &ConfigSource::new("webhooks.json", webhooks),
        connections.as_ref(),
        &Env::from_map(env),
    )
}

fn errors_of(webhooks: &str) -> Vec<String> {
    match parse_with(webhooks, None, &[]) {
        Ok(_) => panic!("expected config errors for {webhooks}"),
        Err(errors) => errors.errors().iter().map(ToString::to_string).collect(),
    }
}

fn assert_error(webhooks: &str, expected_prefix: &str, expected_fragment: &str) {
    let errors = errors_of(webhooks);
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(expected_prefix) && e.contains(expected_fragment)),
        "no error starting with {expected_prefix:?} containing {expected_fragment:?} in {errors:#?}"
    );
}

#[test]
fn errors_name_file_webhook_and_key() {
    assert_error(
        r#"{"w": {"module": "log", "colour": "red"}}"#,
        "webhooks.json: w.colour: ",
        "unknown key",
    );
    assert_error(
        r#"{"w": {"module": "log", "module-config": {"prety_print": true}}}"#,
        "webhooks.json: w.module-config",
        "prety_print",
    );
    assert_error(
        r#"{"w": {"module": "log", "hmac": {"header": "X"}}}"#,
        "webhooks.json: w.hmac: ",
        "missing field `secret`",
    );
    assert_error(
        r#"{"w": {"module": "log", "hmac": {"secret": "s", "algorithm": "md5"}}}"#,
        "webhooks.json: w.hmac.algorithm: ",
        "md5",
    );
    assert_error(
        r#"{"w": {"module": "log", "ip_whitelist": ["10.0.0.1", "10.0.0.0/40"]}}"#,
        "webhooks.json: w.ip_whitelist[1]: ",
        "10.0.0.0/40",
    );
    assert_error(
        r#"{"w": {"module": "log", "rate_limit": {"max_requests": 2000000}}}"#,
        "webhooks.json: w.rate_limit.max_requests: ",
        "between",
    );
    assert_error(
        r#"{"w": {"module": "log", "chain-config": {"timeout": 0}}}"#,
        "webhooks.json: w.chain-config.timeout: ",
        "between 0.001 and 3600 seconds",
    );
    assert_error(
        r#"{"w": {"module": "log", "data_type": "xml"}}"#,
        "webhooks.json: w.data_type: ",
        "xml",
    );
    assert_error(
        r#"{"w": {"module": "carrier_pigeon"}}"#,
        "webhooks.json: w.module: ",
        "unknown module `carrier_pigeon`",
    );
    assert_error(
        r#"{"w": {"module": "log", "jwt": {"secret": "s", "algorithm": "none"}}}"#,
        "webhooks.json: w.jwt.algorithm: ",
        "`none` (unsigned tokens) is refused",
    );
    assert_error(
        r#"{"w": {"module": "log", "connection": "c"}}"#,
        "webhooks.json: w.connection: ",
        "takes no connection",
    );
    assert_error(
        r#"{"w": {"module": "log", "queue_name": "q"}}"#,
        "webhooks.json: w.queue_name: ",
        "does not use `queue_name`",
    );
    assert_error(
        r#"{"w": {"module-config": {}}}"#,
        "webhooks.json: w.module: ",
        "missing",
    );
    assert_error(
        r#"{"w": {"module": "log", "chain": ["log"]}}"#,
        "webhooks.json: w.chain: ",
        "either",
    );
    assert_error(
        r#"{"w": {"chain": []}}"#,
        "webhooks.json: w.chain: ",
        "1 to 20",
    );
    assert_error(
        r#"{"w": {"chain": [{"module": "log", "modul-config": {}}]}}"#,
        "webhooks.json: w.chain[0]",
        "modul-config",
    );
    assert_error(
        r#"{"w": {"module": "log", "retry": {"max_attempts": 0}}}"#,
        "webhooks.json: w.retry.max_attempts: ",
        "between",
    );
    assert_error(
        r#"{"w": {"module": "log", "retry": {"max_attempts": "many"}}}"#,
        "webhooks.json: w.retry.max_attempts: ",
        "many",
    );
    assert_error(
        r#"{"bad id!": {"module": "log"}}"#,
        "webhooks.json: bad id!: ",
        "invalid webhook id",
    );
    assert_error(
        r#"{"w": {"module": "log",}}"#,
        "webhooks.json: ",
        "not valid JSON",
    );
    assert_error(r#"["w"]"#, "webhooks.json: ", "must be a JSON object");
}

#[test]
fn every_error_is_listed_at_once() {
    let errors = errors_of(
        r#"{"a": {"module": "log", "colour": 1},
            "b": {"module": "nope"},
            "c": {"module": "log", "hmac": {}},
            "ok": {"module": "log"}}"#,
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert!(
        errors[0].contains("a.colour")
            && errors[1].contains("b.module")
            && errors[2].contains("c.hmac")
    );
}

#[test]
fn environment_substitution() {
    let config = parse_with(
        r#"{"w": {"module": "log", "authorization": "Bearer {$TOKEN}",
                  "rate_limit": {"max_requests": "{$MAX:5}", "window_seconds": "{$WINDOW:60}"},
                  "hmac": {"secret": "pre-{$SECRET}-post", "header": "{$HEADER:X-Sig}"}}}"#,
        None,
        &[("TOKEN", "abc"), ("SECRET", "s$&id"), ("MAX", "7")],
    );
    let config = config.unwrap();
    assert_eq!(
        config.summaries().next().unwrap().validators,
        vec!["authorization", "hmac", "rate_limit"]
    );

    let errors = match parse_with(
        r#"{"w": {"module": "log", "authorization": "Bearer {$NOT_SET_ANYWHERE}"}}"#,
        None,
        &[],
    ) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a missing variable must be an error"),
    };
    assert!(
        errors.contains(
            "webhooks.json: w.authorization: environment variable `NOT_SET_ANYWHERE` is not set"
        ),
        "{errors}"
    );
}
