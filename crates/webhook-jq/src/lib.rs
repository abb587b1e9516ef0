//! jq transforms (`"transform": {"jq": "{ref, commits: [.commits[].id]}"}`) with
//! [jaq](https://github.com/01mf02/jaq), run in worker processes.
//!
//! The program reads the JSON body and its output is the body that destination gets;
//! `$headers`, `$query`, `$path`, `$method`, `$webhook_id`, `$request_id` and
//! `$received_at` are bound. No output (`select(…)` that fails) or `null` skips the
//! destination for that request; a second output is an error.
//!
//! Programs compile when the config is loaded ([`JqLanguage::compile`]: a syntax error
//! names its line and column) and run in worker processes — copies of the program's own
//! executable, started with a marker in their environment — so that an endless loop can
//! be killed at `timeout_ms`, a huge allocation meets `memory_mb` and a deep recursion
//! ends one worker, never the server. **A program that offers jq must call
//! [`serve_if_worker`] first thing in `main`.** Workers get an empty environment;
//! `env`, `$ENV`, `now`, `halt` and the other natives that read the environment or the
//! clock, stop the process or print are left out, so a transform gives the same output on
//! every retry.

mod program;
mod protocol;
mod sandbox;
mod worker;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use webhook_core::transform::{
    ProgramError, Transform, TransformError, TransformLanguage, TransformLimits, TransformOutput,
};
use webhook_core::{BoxFuture, Delivery};

/// If this process was started as a jq worker, serve as one and exit; otherwise return at
/// once. Call it first thing in `main`, before any runtime or thread starts.
pub fn serve_if_worker() {
    if std::env::var_os(worker::WORKER_ENV).is_some() {
        std::process::exit(worker::serve());
    }
}

/// The `jq` transform language.
pub struct JqLanguage {
    executable: PathBuf,
    workers: usize,
    pools: Mutex<HashMap<u64, Arc<sandbox::Pool>>>,
}

impl JqLanguage {
    /// Workers are started from `executable` (which calls [`serve_if_worker`]); at most
    /// `workers` run per memory limit.
    pub fn new(executable: PathBuf, workers: usize) -> Self {
        Self {
            executable,
            workers,
            pools: Mutex::new(HashMap::new()),
        }
    }

    /// Workers from this process's own executable, one per CPU.
    pub fn from_current_exe() -> std::io::Result<Self> {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        Ok(Self::new(std::env::current_exe()?, workers))
    }

    fn pool(&self, memory_mb: u64) -> Arc<sandbox::Pool> {
        let mut pools = match self.pools.lock() {
            Ok(pools) => pools,
            Err(poisoned) => poisoned.into_inner(),
        };
        Arc::clone(pools.entry(memory_mb).or_insert_with(|| {
            Arc::new(sandbox::Pool::new(
                self.executable.clone(),
                memory_mb,
                self.workers,
            ))
        }))
    }
}

impl std::fmt::Debug for JqLanguage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JqLanguage")
            .field("executable", &self.executable)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl TransformLanguage for JqLanguage {
    fn key(&self) -> &'static str {
        "jq"
    }

    fn compile(
        &self,
        program: &str,
        limits: &TransformLimits,
    ) -> Result<Arc<dyn Transform>, ProgramError> {
        program::Program::compile(program)?;
        Ok(Arc::new(JqTransform {
            program: Arc::from(program),
            pool: self.pool(limits.memory_mb),
        }))
    }
}

struct JqTransform {
    program: Arc<str>,
    pool: Arc<sandbox::Pool>,
}

impl Transform for JqTransform {
    fn run<'a>(
        &'a self,
        delivery: &'a Delivery,
        limits: &'a TransformLimits,
    ) -> BoxFuture<'a, Result<TransformOutput, TransformError>> {
        Box::pin(async move {
            let vars = variables(delivery);
            let request = protocol::Request {
                id: 0, // set by the pool
                timeout_ms: u32::try_from(limits.timeout_ms).unwrap_or(u32::MAX),
                max_output: u32::try_from(limits.max_output_bytes).unwrap_or(u32::MAX),
                program: &self.program,
                vars: &vars,
                body: &delivery.body,
            };
            match self.pool.run(request).await? {
                protocol::Response::Output(json) => Ok(TransformOutput::Deliver {
                    body: Bytes::from(json),
                    data_type: webhook_core::DataType::Json,
                    headers: None,
                }),
                protocol::Response::Skip => Ok(TransformOutput::Skip),
                protocol::Response::Error(message) => Err(TransformError(message)),
            }
        })
    }
}

/// The values of [`program::VARIABLES`], in order, as a JSON array.
fn variables(delivery: &Delivery) -> Vec<u8> {
    let values = serde_json::json!([
        delivery.header_map(),
        delivery.query_map(),
        webhook_core::transform::webhook_path(&delivery.webhook_id),
        "POST",
        &*delivery.webhook_id,
        delivery.request_id.to_string(),
        delivery.received_at_rfc3339(),
    ]);
    serde_json::to_vec(&values).unwrap_or_else(|_| b"[]".to_vec())
}
