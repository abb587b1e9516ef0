//! Fuzz config parsing: arbitrary text as webhooks.json (and, after a NUL byte, as
//! connections.json) through the full registry of the build, with `{$VAR}` substitution.
//! Parsing must return a config or errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webhook_core::config::{ConfigSource, Env};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (webhooks, connections) = match text.split_once('\0') {
        Some((w, c)) => (w.to_owned(), Some(c.to_owned())),
        None => (text.into_owned(), None),
    };
    let registry = webhook_server::registry::registry();
    let env = Env::from_map(
        [("SECRET".to_owned(), "s".to_owned())]
            .into_iter()
            .collect(),
    );
    let connections = connections.map(|c| ConfigSource::new("connections.json", c));
    let _ = webhook_core::config::parse(
        &registry,
        &ConfigSource::new("webhooks.json", webhooks),
        connections.as_ref(),
        &env,
    );
});
