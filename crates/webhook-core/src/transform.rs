//! Transformations per destination (`"transform": {"jq": "…"}` in a destination entry):
//! a program that turns the request into what that one destination gets.
//!
//! A language ([`TransformLanguage`], registered like destinations: `jq` in `webhook-jq`,
//! `js` in `webhook-js`) compiles each program when the config is loaded, so a syntax
//! error is a config error with its position. At delivery time the destination's
//! [`Transform`] runs on the spooled request — the raw bytes as received — so a retry, a
//! replay or the recovery after a crash gives the same output; the spool keeps the
//! original, and a destination without a transform still gets the exact bytes received.
//!
//! A run is bounded by [`TransformLimits`]; the language enforces them (a process it can
//! kill, an interrupt handler) and the pipeline cuts off a run that overstays anyway. A
//! failure is permanent for that destination (a dead letter naming the reason): running
//! the same program on the same bytes again would fail the same way.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use serde::Deserialize;

use crate::{BoxFuture, DataType, Delivery};

/// Bounds of one run of a program (the keys beside the program in `transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformLimits {
    /// Wall-clock limit of one run, in milliseconds (`timeout_ms`, default 100).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Memory a run may use, in MiB (`memory_mb`, default 64).
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    /// Largest output body, in bytes (`max_output_bytes`, default 1 MiB).
    #[serde(default = "default_max_output_bytes")]
    pub max_output_bytes: usize,
}

fn default_timeout_ms() -> u64 {
    100
}
fn default_memory_mb() -> u64 {
    64
}
fn default_max_output_bytes() -> usize {
    1 << 20
}

impl Default for TransformLimits {
    fn default() -> Self {
        Self {
            timeout_ms: default_timeout_ms(),
            memory_mb: default_memory_mb(),
            max_output_bytes: default_max_output_bytes(),
        }
    }
}

impl TransformLimits {
    /// The wall-clock limit.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// What is wrong with these limits, as `(key, message)`.
    pub(crate) fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if !(1..=60_000).contains(&self.timeout_ms) {
            problems.push(("timeout_ms", "must be 1 to 60000".to_owned()));
        }
        if !(8..=4096).contains(&self.memory_mb) {
            problems.push(("memory_mb", "must be 8 to 4096".to_owned()));
        }
        if !(1..=64 << 20).contains(&self.max_output_bytes) {
            problems.push(("max_output_bytes", "must be 1 to 67108864".to_owned()));
        }
        problems
    }
}

/// A program that does not compile: where (1-based line and column in the program) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ProgramError {
    /// 1-based line in the program.
    pub line: usize,
    /// 1-based column (in characters) in that line.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl ProgramError {
    /// An error at byte `offset` of `program`.
    pub fn at(program: &str, offset: usize, message: impl Into<String>) -> Self {
        let before = program.get(..offset.min(program.len())).unwrap_or(program);
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Self {
            line,
            column,
            message: message.into(),
        }
    }
}

/// Why a run gave no output: the program failed, ran over a limit, or gave bad output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransformError(pub String);

/// What a run gives one destination.
#[derive(Debug, Clone)]
pub enum TransformOutput {
    /// Deliver this body (and these headers, when the program changed them).
    Deliver {
        /// The new body.
        body: Bytes,
        /// What the new body is: JSON text, or any other bytes (a JS program that returns a
        /// string body).
        data_type: DataType,
        /// The headers the destination gets instead of the received ones; `None` keeps them.
        headers: Option<HeaderMap>,
    },
    /// The program answered null: this destination skips the request.
    Skip,
}

/// A compiled program, ready to run on requests.
pub trait Transform: Send + Sync + 'static {
    /// Run the program on `delivery` (the request as received) within `limits`.
    fn run<'a>(
        &'a self,
        delivery: &'a Delivery,
        limits: &'a TransformLimits,
    ) -> BoxFuture<'a, Result<TransformOutput, TransformError>>;
}

/// A transform language: compiles programs at config load.
pub trait TransformLanguage: Send + Sync + 'static {
    /// The key that names it in a `transform` object: `"jq"`, `"js"`.
    fn key(&self) -> &'static str;
    /// Compile `program` for runs within `limits`.
    fn compile(
        &self,
        program: &str,
        limits: &TransformLimits,
    ) -> Result<Arc<dyn Transform>, ProgramError>;
}

/// A destination's transform: the compiled program and its limits.
#[derive(Clone)]
pub(crate) struct DestinationTransform {
    pub(crate) language: &'static str,
    pub(crate) program: Arc<dyn Transform>,
    pub(crate) limits: TransformLimits,
}

impl std::fmt::Debug for DestinationTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationTransform")
            .field("language", &self.language)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Grace beyond `timeout_ms` before the pipeline stops waiting for a language that did
/// not end its run itself. Each language enforces `timeout_ms` from the moment a run
/// starts; this safety net also covers the wait for a free worker under load, so it is
/// generous: a run cut off here is a dead letter.
const OVERSTAY: Duration = Duration::from_secs(10);

impl DestinationTransform {
    /// Run on `delivery`: `Ok(Some(..))` the delivery this destination gets, `Ok(None)` it
    /// skips the request.
    pub(crate) async fn apply(
        &self,
        delivery: &Delivery,
    ) -> Result<Option<Delivery>, TransformError> {
        let run = self.program.run(delivery, &self.limits);
        let output = match tokio::time::timeout(self.limits.timeout() + OVERSTAY, run).await {
            Ok(output) => output?,
            Err(_) => {
                return Err(TransformError(format!(
                    "{} transform did not finish within {} ms",
                    self.language, self.limits.timeout_ms
                )));
            }
        };
        match output {
            TransformOutput::Skip => Ok(None),
            TransformOutput::Deliver { body, .. } if body.len() > self.limits.max_output_bytes => {
                Err(TransformError(format!(
                    "{} transform output is {} bytes, over max_output_bytes {}",
                    self.language,
                    body.len(),
                    self.limits.max_output_bytes
                )))
            }
            TransformOutput::Deliver {
                body,
                data_type,
                headers,
            } => Ok(Some(Delivery {
                body,
                headers: headers.map_or_else(|| Arc::clone(&delivery.headers), Arc::new),
                data_type,
                ..delivery.clone()
            })),
        }
    }
}

/// The request path a webhook is received on (`$path` of a program).
pub fn webhook_path(webhook_id: &str) -> String {
    format!("/webhook/{webhook_id}")
}
