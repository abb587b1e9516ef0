//! JavaScript transforms (`"transform": {"js": "<program>"}` on a destination entry) in
//! [QuickJS](https://github.com/quickjs-ng/quickjs) through `rquickjs`.
//!
//! A program registers its handler as Hookdeck's do, so theirs paste in:
//!
//! ```js
//! addHandler("transform", (request, context) => {
//!   request.body = { ref: request.body.ref, commits: request.body.commits.map((c) => c.id) };
//!   request.headers["x-transformed"] = "yes";
//!   return request;
//! });
//! ```
//!
//! `request` is `{method, path, query, parsed_query, headers, body, webhook_id,
//! request_id, received_at}` (`body` parsed for JSON webhooks, a string for UTF-8 blobs;
//! `query` the raw string and `parsed_query` its parameters, as Hookdeck gives them);
//! `context` is `{webhook_id, request_id, received_at}`. The returned object's `body` is
//! what the destination gets (a string as it is, anything else as JSON) and its `headers`,
//! when present, replace the received ones; `null` or `undefined` skips the destination.
//!
//! Every run is bounded: `timeout_ms` by an interrupt handler (even an endless loop inside
//! `try` ends), `memory_mb` by the runtime's heap limit, the stack by QuickJS's stack
//! limit, the output by `max_output_bytes`. `Date` (no arguments) and `Date.now()` are the
//! request's `received_at` and `Math.random` is seeded from its request id, so a retry,
//! a replay or the recovery after a crash gives the same output. Programs run on threads
//! of their own, never on the async workers. Globals a program changes during a run may
//! persist into the next runs on the same thread: a handler should depend only on its
//! arguments.

mod engine;
mod output;
mod pool;
mod request;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use webhook_core::transform::{
    ProgramError, Transform, TransformError, TransformLanguage, TransformLimits, TransformOutput,
};
use webhook_core::{BoxFuture, Delivery};

use crate::engine::{Loaded, THREAD_STACK};
use crate::pool::{Pool, Program};

/// Ids of compiled programs, unique in the process.
static NEXT_PROGRAM: AtomicU64 = AtomicU64::new(1);

/// The `js` transform language.
#[derive(Debug)]
pub struct JsLanguage {
    pool: Arc<Pool>,
}

impl JsLanguage {
    /// Runs on `threads` threads of their own (started on the first run).
    pub fn new(threads: usize) -> Self {
        Self {
            pool: Arc::new(Pool::new(threads)),
        }
    }

    /// One thread per CPU.
    pub fn per_cpu() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, usize::from))
    }
}

impl TransformLanguage for JsLanguage {
    fn key(&self) -> &'static str {
        "js"
    }

    fn compile(
        &self,
        program: &str,
        limits: &TransformLimits,
    ) -> Result<Arc<dyn Transform>, ProgramError> {
        check(program, limits)?;
        Ok(Arc::new(JsTransform {
            program: Arc::new(Program {
                id: NEXT_PROGRAM.fetch_add(1, Ordering::Relaxed),
                source: program.into(),
                limits: *limits,
            }),
            pool: Arc::clone(&self.pool),
        }))
    }
}

/// Load the program once, on a thread like the ones it will run on: syntax errors, a
/// top-level error and a missing handler are found at config load.
fn check(program: &str, limits: &TransformLimits) -> Result<(), ProgramError> {
    let source = program.to_owned();
    let limits = *limits;
    let checked = std::thread::Builder::new()
        .name("webhook-js-check".to_owned())
        .stack_size(THREAD_STACK)
        .spawn(move || Loaded::load(&source, &limits).map(drop))
        .map_err(|err| ProgramError::at(program, 0, format!("cannot start a thread: {err}")))?;
    checked
        .join()
        .unwrap_or_else(|_| Err(ProgramError::at(program, 0, "loading the program failed")))
}

#[derive(Debug)]
struct JsTransform {
    program: Arc<Program>,
    pool: Arc<Pool>,
}

impl Transform for JsTransform {
    fn run<'a>(
        &'a self,
        delivery: &'a Delivery,
        limits: &'a TransformLimits,
    ) -> BoxFuture<'a, Result<TransformOutput, TransformError>> {
        Box::pin(async move {
            let input = request::input(delivery, limits.timeout(), limits.max_output_bytes)?;
            self.pool.run(&self.program, input).await
        })
    }
}
