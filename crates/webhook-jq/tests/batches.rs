//! The worker pool on its own: requests sent together travel as one batch to a worker, and
//! each gets its own answer — also when others in its batch loop, blow the memory limit or
//! recurse too deep and so end the worker they ran on.
//!
//! This executable is its own worker (`serve_if_worker` first thing in `main`), so it has
//! no test harness: `main` runs the cases and fails with a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::future::join_all;
use webhook_core::transform::{Transform, TransformLanguage, TransformLimits, TransformOutput};
use webhook_core::{DataType, Delivery};
use webhook_jq::JqLanguage;

fn main() {
    webhook_jq::serve_if_worker();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        answers_go_to_their_own_requests().await;
        hostile_neighbours_in_a_batch_fail_alone().await;
    });
    println!("batches: 2 cases passed");
}

fn delivery(body: String) -> Delivery {
    Delivery {
        webhook_id: Arc::from("hook"),
        request_id: uuid::Uuid::now_v7(),
        headers: Arc::new(http::HeaderMap::new()),
        query: None,
        body: Bytes::from(body),
        received_at: SystemTime::now(),
        data_type: DataType::Json,
    }
}

fn limits(timeout_ms: u64) -> TransformLimits {
    TransformLimits {
        timeout_ms,
        memory_mb: 64,
        max_output_bytes: 1 << 20,
    }
}

fn compile(language: &JqLanguage, program: &str, limits: &TransformLimits) -> Arc<dyn Transform> {
    language.compile(program, limits).unwrap()
}

fn output(result: Result<TransformOutput, String>) -> Result<String, String> {
    match result? {
        TransformOutput::Deliver { body, .. } => Ok(String::from_utf8(body.to_vec()).unwrap()),
        TransformOutput::Skip => Ok("skip".to_owned()),
    }
}

/// 400 requests at once over two workers: every answer is its own request's.
async fn answers_go_to_their_own_requests() {
    let language = JqLanguage::new(std::env::current_exe().unwrap(), 2);
    let limits = limits(10_000);
    let program = compile(&language, "{n, twice: (.n * 2)}", &limits);
    let deliveries: Vec<Delivery> = (0..400)
        .map(|n| delivery(format!(r#"{{"n": {n}, "pad": "{}"}}"#, "x".repeat(n * 7))))
        .collect();
    let started = Instant::now();
    let runs = deliveries.iter().map(|d| {
        let program = Arc::clone(&program);
        async move { output(program.run(d, &limits).await.map_err(|e| e.0)) }
    });
    let answers = join_all(runs).await;
    for (n, answer) in answers.into_iter().enumerate() {
        assert_eq!(
            answer.as_deref(),
            Ok(format!(r#"{{"n":{n},"twice":{}}}"#, n * 2).as_str()),
            "request {n}"
        );
    }
    println!(
        "400 requests, 2 workers: all answered by their own output in {:?}",
        started.elapsed()
    );
}

/// One worker, one batch: healthy requests between an endless loop, a huge allocation and
/// a deep recursion get their output; each hostile one fails with its own cause.
async fn hostile_neighbours_in_a_batch_fail_alone() {
    let language = JqLanguage::new(std::env::current_exe().unwrap(), 1);
    let fast = limits(100);
    let roomy = limits(30_000);
    let healthy = compile(&language, "{n}", &fast);
    let looping = compile(&language, "def f: f; f", &fast);
    let alloc = compile(&language, "[range(1e9)]", &roomy);
    let recursion = compile(&language, "def f: 1 + f; f", &roomy);
    let mut cases: Vec<(Arc<dyn Transform>, TransformLimits, &str)> = Vec::new();
    for round in 0..3 {
        for _ in 0..5 {
            cases.push((Arc::clone(&healthy), fast, "healthy"));
        }
        let (hostile, limits, name) = match round {
            0 => (&looping, &fast, "loop"),
            1 => (&alloc, &roomy, "alloc"),
            _ => (&recursion, &roomy, "recursion"),
        };
        cases.push((Arc::clone(hostile), *limits, name));
    }
    cases.push((Arc::clone(&healthy), fast, "healthy"));
    let deliveries: Vec<Delivery> = (0..cases.len())
        .map(|n| delivery(format!(r#"{{"n": {n}}}"#)))
        .collect();
    let started = Instant::now();
    // Sent in one go, before the only worker's driver runs: they leave as one batch.
    let runs = cases
        .iter()
        .zip(&deliveries)
        .map(|((program, limits, _), d)| async move {
            output(program.run(d, limits).await.map_err(|e| e.0))
        });
    let answers = join_all(runs).await;
    let elapsed = started.elapsed();
    for (n, ((_, _, name), answer)) in cases.iter().zip(&answers).enumerate() {
        match *name {
            "healthy" => assert_eq!(answer.as_deref(), Ok(format!(r#"{{"n":{n}}}"#).as_str())),
            "loop" => assert!(
                answer
                    .as_ref()
                    .is_err_and(|e| e.contains("did not finish within 100 ms")),
                "{answer:?}"
            ),
            "alloc" => assert!(
                answer
                    .as_ref()
                    .is_err_and(|e| e.contains("memory limit (64 MiB)")),
                "{answer:?}"
            ),
            _ => assert!(
                answer
                    .as_ref()
                    .is_err_and(|e| e.contains("recursed too deep")),
                "{answer:?}"
            ),
        }
    }
    assert!(
        elapsed < Duration::from_secs(20),
        "the batch ended within its limits: {elapsed:?}"
    );
    println!(
        "a batch of {} with a loop, an allocation and a recursion among them: each answered in {elapsed:?}",
        cases.len()
    );
}
