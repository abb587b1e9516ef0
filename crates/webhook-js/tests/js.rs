//! The js language on its own: programs compiled and run as the pipeline does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::HeaderMap;
use webhook_core::transform::{TransformLanguage, TransformLimits, TransformOutput};
use webhook_core::{DataType, Delivery};
use webhook_js::JsLanguage;

fn delivery(body: &str, data_type: DataType) -> Delivery {
    let mut headers = HeaderMap::new();
    headers.insert("x-github-event", "push".parse().unwrap());
    headers.append("x-multi", "a".parse().unwrap());
    headers.append("x-multi", "b".parse().unwrap());
    Delivery {
        webhook_id: Arc::from("gh"),
        request_id: uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        headers: Arc::new(headers),
        query: Some(Arc::from("a=1&b=x%20y")),
        body: Bytes::from(body.to_owned()),
        received_at: SystemTime::UNIX_EPOCH + Duration::from_micros(1_764_000_000_123_900),
        data_type,
    }
}

fn limits(timeout_ms: u64) -> TransformLimits {
    TransformLimits {
        timeout_ms,
        memory_mb: 16,
        max_output_bytes: 1 << 20,
    }
}

async fn run(program: &str, delivery: &Delivery) -> Result<TransformOutput, String> {
    let language = JsLanguage::new(2);
    let limits = limits(100);
    let compiled = language
        .compile(program, &limits)
        .map_err(|e| e.to_string())?;
    compiled.run(delivery, &limits).await.map_err(|e| e.0)
}

fn body_of(output: &TransformOutput) -> (String, DataType) {
    match output {
        TransformOutput::Deliver {
            body, data_type, ..
        } => (String::from_utf8(body.to_vec()).unwrap(), *data_type),
        TransformOutput::Skip => panic!("skipped"),
    }
}

const PUSH: &str = r#"{"ref":"refs/heads/main","repository":{"full_name":"o/r"},"commits":[{"id":"c1"},{"id":"c2"}]}"#;

#[tokio::test]
async fn a_hookdeck_program_reshapes_body_and_headers() {
    let program = r#"
        addHandler("transform", (request, context) => {
          request.body = {
            ref: request.body.ref,
            repo: request.body.repository.full_name,
            commits: request.body.commits.map((c) => c.id),
            event: request.headers["x-github-event"],
            q: request.parsed_query.b,
            raw: request.query,
            path: request.path,
            id: context.request_id,
            at: context.received_at,
          };
          request.headers["x-transformed"] = "yes";
          request.headers["x-count"] = 2;
          request.headers["x-list"] = ["1", "2"];
          delete request.headers["x-github-event"];
          return request;
        });
    "#;
    let output = run(program, &delivery(PUSH, DataType::Json)).await.unwrap();
    let (body, data_type) = body_of(&output);
    assert_eq!(data_type, DataType::Json);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "ref": "refs/heads/main", "repo": "o/r", "commits": ["c1", "c2"], "event": "push",
            "q": "x y", "raw": "a=1&b=x%20y", "path": "/webhook/gh",
            "id": "01234567-89ab-cdef-0123-456789abcdef", "at": "2025-11-24T16:00:00.123Z"
        })
    );
    let TransformOutput::Deliver {
        headers: Some(headers),
        ..
    } = output
    else {
        panic!("headers were returned");
    };
    assert_eq!(headers.get("x-transformed").unwrap(), "yes");
    assert_eq!(headers.get("x-count").unwrap(), "2");
    assert_eq!(headers.get_all("x-list").iter().count(), 2);
    assert_eq!(headers.get("x-multi").unwrap(), "a, b");
    assert!(headers.get("x-github-event").is_none());
}

#[tokio::test]
async fn null_skips_and_a_string_body_is_sent_as_it_is() {
    let skip =
        r#"addHandler("transform", (r) => r.headers["x-github-event"] === "push" ? null : r)"#;
    assert!(matches!(
        run(skip, &delivery(PUSH, DataType::Json)).await.unwrap(),
        TransformOutput::Skip
    ));
    let text = r#"addHandler("transform", (r) => ({ body: r.body.toUpperCase() }))"#;
    let output = run(text, &delivery("plain text", DataType::Blob))
        .await
        .unwrap();
    assert_eq!(body_of(&output), ("PLAIN TEXT".to_owned(), DataType::Blob));
    let TransformOutput::Deliver { headers, .. } = output else {
        unreachable!()
    };
    assert!(
        headers.is_none(),
        "no headers returned: the received ones are kept"
    );
}

#[tokio::test]
async fn date_and_random_are_the_same_on_every_run() {
    let program = r#"addHandler("transform", (r) => ({ body: {
        now: Date.now(), iso: new Date().toISOString(), r: [Math.random(), Math.random()],
        parsed: new Date("2020-01-01T00:00:00Z").getTime() } }))"#;
    let language = JsLanguage::new(2);
    let limits = limits(100);
    let compiled = language.compile(program, &limits).unwrap();
    let request = delivery(PUSH, DataType::Json);
    let first = body_of(&compiled.run(&request, &limits).await.unwrap()).0;
    for _ in 0..5 {
        assert_eq!(
            body_of(&compiled.run(&request, &limits).await.unwrap()).0,
            first
        );
    }
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["now"], 1_764_000_000_123_u64);
    assert_eq!(first["iso"], "2025-11-24T16:00:00.123Z");
    assert_eq!(first["parsed"], 1_577_836_800_000_u64);
    assert_ne!(first["r"][0], first["r"][1]);
    let mut other = delivery(PUSH, DataType::Json);
    other.request_id = uuid::Uuid::from_u128(7);
    let second: serde_json::Value =
        serde_json::from_str(&body_of(&compiled.run(&other, &limits).await.unwrap()).0).unwrap();
    assert_ne!(
        first["r"], second["r"],
        "another request id, another sequence"
    );
}

#[tokio::test]
async fn hostile_programs_end_within_their_limits() {
    let cases = [
        ("for (;;) {}", "did not finish within 100 ms"),
        (
            "try { for (;;) {} } catch (e) {}",
            "did not finish within 100 ms",
        ),
        (
            "const a = []; for (;;) a.push(new Array(100000).fill(1))",
            "ran out of its memory limit (16 MiB)",
        ),
        (
            "function f(n) { return f(n + 1) + 1 } f(0)",
            "recursed too deep",
        ),
        ("r.body = 'x'.repeat(2 << 20)", "over max_output_bytes"),
        (
            "throw new RangeError('nope')",
            "threw RangeError: nope (line 1, column",
        ),
        ("throw 'plain'", "threw \"plain\""),
        ("return new Promise(() => {})", "returned a Promise"),
        ("return 42", "returned a number, not a request object"),
        ("return { headers: {} }", "without a body"),
        ("r.headers['bad name'] = 'v'", "header name \"bad name\""),
        (
            "r.headers['x'] = 'a\\nb'",
            "with a value HTTP does not allow",
        ),
    ];
    for (code, expected) in cases {
        let program = format!("addHandler('transform', (r) => {{ {code}; return r }})");
        let started = Instant::now();
        let error = run(&program, &delivery(PUSH, DataType::Json))
            .await
            .unwrap_err();
        println!("{code}: {error}");
        assert!(error.contains(expected), "{code}: {error}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{code} took {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn a_failed_run_leaves_nothing_behind() {
    let program = r#"addHandler("transform", (r) => {
        if (r.headers["x-loop"]) for (;;) {}
        globalThis.runs = (globalThis.runs || 0) + 1;
        return { body: { ok: true } };
    })"#;
    let language = JsLanguage::new(1);
    let limits = limits(50);
    let compiled = language.compile(program, &limits).unwrap();
    let mut looping = delivery(PUSH, DataType::Json);
    let mut headers = (*looping.headers).clone();
    headers.insert("x-loop", "1".parse().unwrap());
    looping.headers = Arc::new(headers);
    for _ in 0..3 {
        let error = compiled.run(&looping, &limits).await.unwrap_err();
        assert!(error.0.contains("did not finish within 50 ms"), "{error}");
        let fine = compiled
            .run(&delivery(PUSH, DataType::Json), &limits)
            .await
            .unwrap();
        assert_eq!(body_of(&fine).0, r#"{"ok":true}"#);
    }
}

#[tokio::test]
async fn binary_bodies_are_refused() {
    let mut request = delivery("", DataType::Blob);
    request.body = Bytes::from_static(&[0xff, 0xfe, 0x00]);
    let error = run("addHandler('transform', (r) => r)", &request)
        .await
        .unwrap_err();
    assert!(error.contains("binary"), "{error}");
}

#[test]
fn compile_errors_name_their_position() {
    let language = JsLanguage::new(1);
    let limits = limits(100);
    let error = |program: &str| language.compile(program, &limits).err().unwrap();
    let syntax = error("addHandler('transform', (r) => {\n  return r +;\n});");
    assert_eq!((syntax.line, syntax.column), (2, 13), "{syntax}");
    let missing = error("const x = 1;");
    assert!(
        missing.message.contains("does not call addHandler"),
        "{missing}"
    );
    let thrown = error("\n\nnull.x;");
    assert_eq!(thrown.line, 3, "{thrown}");
    assert!(thrown.message.contains("TypeError"), "{thrown}");
    let kind = error("addHandler('filter', (r) => r)");
    assert!(
        kind.message.contains("only \"transform\" handlers"),
        "{kind}"
    );
    let slow = error("for (;;) {}");
    assert!(
        slow.message.contains("did not finish within 100 ms"),
        "{slow}"
    );
    assert!(
        language
            .compile("addHandler('transform', r => r)", &limits)
            .is_ok()
    );
}
