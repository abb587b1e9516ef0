//! Fuzz the request path: arbitrary headers, query and body through every validator of
//! the build (signature schemes, JWT, JSON Schema, …), the JSON check and a `log`
//! destination. Input: lines `name: value` up to an empty line, then the body; a first
//! line starting with `?` is the query string.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use bytes::Bytes;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use webhook_core::config::{ConfigSource, Env};
use webhook_core::{Pipeline, PipelineOptions};

const WEBHOOKS: &str = r#"{
  "gh": {"module": "log", "verify": {"provider": "github", "secret": "s", "dedup": true}},
  "stripe": {"module": "log", "verify": {"provider": "stripe", "secrets": ["whsec_a", "whsec_b"]}},
  "slack": {"module": "log", "verify": {"provider": "slack", "secret": "s"}},
  "zoom": {"module": "log", "verify": {"provider": "zoom", "secret": "s"}},
  "std": {"module": "log", "verify": {"provider": "standard-webhooks", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}},
  "paddle": {"module": "log", "verify": {"provider": "paddle", "secret": "s"}},
  "twilio": {"data_type": "blob", "module": "log", "verify": {"provider": "twilio", "secret": "s", "public_url": "https://x.example/t"}},
  "gitlab": {"module": "log", "verify": {"provider": "gitlab", "secret": "s"}},
  "hmac": {"module": "log", "hmac": {"secret": "s", "header": "X-Sig", "algorithm": "sha512"}},
  "jwt": {"module": "log", "jwt": {"secret": "s"}},
  "basic": {"module": "log", "basic_auth": {"username": "u", "password": "p"}, "header_auth": {"api_key": "k"}},
  "query": {"module": "log", "query_auth": {"api_key": "k"}},
  "schema": {"module": "log", "json_schema": {"type": "object", "properties": {"a": {"type": "integer"}}}},
  "ip": {"module": "log", "ip_whitelist": ["10.0.0.0/8", "::1"], "rate_limit": {"max_requests": 5, "window_seconds": 1}},
  "open": {"module": "log"}
}"#;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    pipeline: Pipeline,
    ids: Vec<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let registry = webhook_server::registry::registry();
        let config = webhook_core::config::parse(
            &registry,
            &ConfigSource::new("webhooks.json", WEBHOOKS),
            None,
            &Env::empty(),
        )
        .expect("the fuzz config parses");
        let ids = config.webhook_ids().map(str::to_owned).collect();
        let pipeline = runtime
            // `delivered`: the request path is what is fuzzed here (the spool has its own
            // target), and nothing is written to disk per input.
            .block_on(Pipeline::build(
                config,
                PipelineOptions {
                    default_ack: webhook_core::config::AckMode::Delivered,
                    ..PipelineOptions::default()
                },
            ))
            .expect("the fuzz pipeline builds");
        Fixture {
            runtime,
            pipeline,
            ids,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let id = &fixture.ids[usize::from(selector) % fixture.ids.len()];
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut uri = format!("/webhook/{id}");
    let mut builder = http::Request::builder().method("POST");
    for (n, line) in head.split(|&b| b == b'\n').enumerate() {
        if n == 0 && line.first() == Some(&b'?') {
            uri.push_str(&String::from_utf8_lossy(line));
            continue;
        }
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name),
                http::HeaderValue::from_bytes(value),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    let Ok(request) = builder
        .uri(uri.as_str())
        .body(Full::new(Bytes::copy_from_slice(body)))
    else {
        return;
    };
    let peer: SocketAddr = ([10, 1, 2, 3], 4000).into();
    let response = fixture
        .runtime
        .block_on(fixture.pipeline.handle_webhook(id, request, peer));
    let status = response.status().as_u16();
    assert!(
        matches!(status, 200 | 400 | 401 | 403 | 404 | 413 | 422 | 429),
        "unexpected status {status}"
    );
});
