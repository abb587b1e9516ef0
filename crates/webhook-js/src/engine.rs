//! One program loaded in a QuickJS runtime of its own: its memory limit, its stack limit
//! and an interrupt handler that ends a run at its deadline. A runtime lives and runs on
//! the thread that made it (QuickJS measures the stack from there).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rquickjs::context::EvalOptions;
use rquickjs::{CatchResultExt, CaughtError, Coerced, Context, Ctx, Function, Object, Persistent};
use rquickjs::{Runtime, Value};
use webhook_core::transform::{ProgramError, TransformError, TransformLimits, TransformOutput};

use crate::output;

/// The name programs have in QuickJS's stack traces, where positions are read from.
const FILENAME: &str = "transform.js";
const PRELUDE: &str = include_str!("prelude.js");
/// Native stack a run may use. Threads that load programs have [`THREAD_STACK`].
const MAX_STACK: usize = 1 << 20;
/// Stack of the threads that load and run programs.
pub(crate) const THREAD_STACK: usize = 8 << 20;

/// What one run gets: the request and context as JSON text, and what makes `Date` and
/// `Math.random` deterministic.
pub(crate) struct Input {
    pub(crate) request_json: String,
    pub(crate) context_json: String,
    /// `Date.now()` during the run: the request's `received_at`, in ms since the epoch.
    pub(crate) now_ms: f64,
    /// Seed of `Math.random`, from the request id.
    pub(crate) seed: [u32; 4],
    pub(crate) timeout: Duration,
    pub(crate) max_output_bytes: usize,
}

/// The wall-clock deadline the interrupt handler checks.
struct Deadline {
    base: Instant,
    /// Nanoseconds after `base`; `u64::MAX` when no run is going.
    at: AtomicU64,
    /// The handler stopped a run.
    hit: AtomicBool,
}

impl Deadline {
    fn arm(&self, timeout: Duration) {
        let at = self.base.elapsed().saturating_add(timeout).as_nanos();
        self.hit.store(false, Ordering::Relaxed);
        self.at
            .store(u64::try_from(at).unwrap_or(u64::MAX - 1), Ordering::Relaxed);
    }

    fn disarm(&self) {
        self.at.store(u64::MAX, Ordering::Relaxed);
    }

    fn passed(&self) -> bool {
        let at = self.at.load(Ordering::Relaxed);
        let passed = at != u64::MAX && self.base.elapsed().as_nanos() >= u128::from(at);
        if passed {
            self.hit.store(true, Ordering::Relaxed);
        }
        passed
    }
}

/// A loaded program, ready to run requests.
pub(crate) struct Loaded {
    // The persistent handles are declared before the context and the runtime so that they
    // are dropped first.
    begin: Persistent<Function<'static>>,
    handler: Persistent<Function<'static>>,
    context: Context,
    deadline: Arc<Deadline>,
    memory_mb: u64,
    runtime: Runtime,
}

impl Loaded {
    /// Load `source` after the prelude and run its top-level code within `limits`; it must
    /// register a handler.
    pub(crate) fn load(source: &str, limits: &TransformLimits) -> Result<Self, ProgramError> {
        let start_error = |err: rquickjs::Error| {
            ProgramError::at(
                source,
                0,
                format!("cannot start a JavaScript runtime: {err}"),
            )
        };
        let runtime = Runtime::new().map_err(start_error)?;
        let memory = usize::try_from(limits.memory_mb << 20).unwrap_or(usize::MAX);
        runtime.set_memory_limit(memory);
        runtime.set_max_stack_size(MAX_STACK);
        let deadline = Arc::new(Deadline {
            base: Instant::now(),
            at: AtomicU64::new(u64::MAX),
            hit: AtomicBool::new(false),
        });
        let watch = Arc::clone(&deadline);
        runtime.set_interrupt_handler(Some(Box::new(move || watch.passed())));
        let context = Context::full(&runtime).map_err(start_error)?;
        let handles = context.with(|ctx| -> Result<_, ProgramError> {
            let api: Object<'_> = ctx
                .eval_with_options(PRELUDE, eval_options("prelude.js"))
                .catch(&ctx)
                .map_err(|err| ProgramError::at(source, 0, format!("the prelude failed: {err}")))?;
            let begin: Function<'_> = api
                .get("begin")
                .map_err(|err| ProgramError::at(source, 0, err.to_string()))?;
            let handler_of: Function<'_> = api
                .get("handler")
                .map_err(|err| ProgramError::at(source, 0, err.to_string()))?;
            deadline.arm(limits.timeout());
            let top_level = ctx
                .eval_with_options::<Value<'_>, _>(source, eval_options(FILENAME))
                .catch(&ctx)
                .map(drop);
            deadline.disarm();
            if let Err(err) = top_level {
                let (line, column) = err_position(&err).unwrap_or((1, 1));
                let message = describe(&ctx, err, &deadline, limits.timeout(), limits.memory_mb);
                let message = message.strip_prefix(PREFIX).unwrap_or(&message).to_owned();
                return Err(ProgramError {
                    line,
                    column,
                    message,
                });
            }
            let handler: Value<'_> = handler_of
                .call(())
                .map_err(|err| ProgramError::at(source, 0, err.to_string()))?;
            let Some(handler) = handler.into_function() else {
                return Err(ProgramError::at(
                    source,
                    0,
                    "the program does not call addHandler(\"transform\", (request, context) => …)",
                ));
            };
            Ok((
                Persistent::save(&ctx, begin),
                Persistent::save(&ctx, handler),
            ))
        })?;
        Ok(Self {
            begin: handles.0,
            handler: handles.1,
            context,
            deadline,
            memory_mb: limits.memory_mb,
            runtime,
        })
    }

    /// Run the handler on one request. After an error the program should be dropped:
    /// an interrupted run or an exhausted heap can leave the context unusable.
    pub(crate) fn run(&self, input: &Input) -> Result<TransformOutput, TransformError> {
        let result = self.context.with(|ctx| {
            self.deadline.arm(input.timeout);
            let result = self.call(&ctx, input);
            self.deadline.disarm();
            result.map_err(|failure| match failure {
                Failure::Caught(err) => {
                    let at = err_position(&err)
                        .map(|(line, column)| format!(" (line {line}, column {column})"))
                        .unwrap_or_default();
                    let message =
                        describe(&ctx, err, &self.deadline, input.timeout, self.memory_mb);
                    if message.starts_with(THREW) {
                        TransformError(format!("{message}{at}"))
                    } else {
                        TransformError(message)
                    }
                }
                Failure::Output(message) => TransformError(format!("js transform {message}")),
            })
        });
        let result = match result {
            Err(TransformError(message)) if message == THREW_NULL && self.heap_is_full() => {
                Err(TransformError(format!(
                    "js transform ran out of its memory limit ({} MiB)",
                    self.memory_mb
                )))
            }
            other => other,
        };
        // No collection per run: reference counting frees a run's values as it ends, and
        // QuickJS's own threshold collects cycles (a forced collection per run cost ~2×).
        result
    }

    /// Whether the heap is within a tenth of its limit.
    fn heap_is_full(&self) -> bool {
        let used = u64::try_from(self.runtime.memory_usage().malloc_size).unwrap_or(0);
        used >= (self.memory_mb << 20) / 10 * 9
    }

    fn call<'js>(&self, ctx: &Ctx<'js>, input: &Input) -> Result<TransformOutput, Failure<'js>> {
        let begin = self.begin.clone().restore(ctx).catch(ctx)?;
        let handler = self.handler.clone().restore(ctx).catch(ctx)?;
        let [a, b, c, d] = input.seed;
        begin
            .call::<_, Value<'_>>((input.now_ms, a, b, c, d))
            .catch(ctx)?;
        let request = ctx.json_parse(input.request_json.as_str()).catch(ctx)?;
        let context = ctx.json_parse(input.context_json.as_str()).catch(ctx)?;
        let returned: Value<'_> = handler.call((request, context)).catch(ctx)?;
        output::convert(ctx, &returned, input.max_output_bytes)
    }
}

/// Why a run gave no output.
pub(crate) enum Failure<'js> {
    /// QuickJS raised: an exception, a thrown value, an interrupt, out of memory.
    Caught(CaughtError<'js>),
    /// The handler returned something that is not a request.
    Output(String),
}

impl<'js> From<CaughtError<'js>> for Failure<'js> {
    fn from(err: CaughtError<'js>) -> Self {
        Failure::Caught(err)
    }
}

fn eval_options(filename: &str) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.backtrace_barrier = true;
    options.promise = false;
    options.filename = Some(filename.to_owned());
    options
}

/// How [`describe`]'s messages begin.
const PREFIX: &str = "js transform ";

/// How [`describe`] begins an exception's message (which gets its position).
const THREW: &str = "js transform threw";

/// What [`describe`] says of a thrown `null`.
const THREW_NULL: &str = "js transform threw null";

/// The message for what QuickJS raised, naming the limit that ended the run.
///
/// QuickJS throws `null` when it cannot even make its "out of memory" error: that is
/// [`THREW_NULL`], which the caller tells apart from a program's `throw null` by the heap.
fn describe<'js>(
    ctx: &Ctx<'js>,
    err: CaughtError<'js>,
    deadline: &Deadline,
    timeout: Duration,
    memory_mb: u64,
) -> String {
    if deadline.hit.load(Ordering::Relaxed) {
        return format!(
            "js transform did not finish within {} ms",
            timeout.as_millis()
        );
    }
    let out_of_memory = || format!("js transform ran out of its memory limit ({memory_mb} MiB)");
    match err {
        CaughtError::Exception(exception) => {
            let message = exception.message().unwrap_or_default();
            if message.contains("Maximum call stack size exceeded") {
                return format!(
                    "js transform recursed too deep (over {} KiB of stack)",
                    MAX_STACK >> 10
                );
            }
            if message == "out of memory" {
                return out_of_memory();
            }
            let name: String = exception
                .get::<_, Coerced<String>>("name")
                .map_or_else(|_| "Error".to_owned(), |name| name.0);
            format!("js transform threw {name}: {message}")
        }
        CaughtError::Value(value) => {
            let shown = ctx
                .json_stringify(value)
                .ok()
                .flatten()
                .and_then(|text| text.to_string().ok())
                .unwrap_or_else(|| "a value".to_owned());
            format!("js transform threw {}", shorten(&shown))
        }
        CaughtError::Error(rquickjs::Error::Allocation) => out_of_memory(),
        CaughtError::Error(err) => format!("js transform failed: {err}"),
    }
}

/// Where an error happened in the program: the first `transform.js:L:C` of its stack.
fn err_position(err: &CaughtError<'_>) -> Option<(usize, usize)> {
    match err {
        CaughtError::Exception(exception) => position(exception.stack().as_deref()),
        _ => None,
    }
}

fn position(stack: Option<&str>) -> Option<(usize, usize)> {
    let stack = stack?;
    let marker = format!("{FILENAME}:");
    let at = stack.find(&marker)? + marker.len();
    let mut numbers = stack[at..]
        .split(|c: char| !c.is_ascii_digit())
        .take(2)
        .map(str::parse::<usize>);
    let line = numbers.next()?.ok()?;
    let column = numbers.next()?.ok()?;
    Some((line, column))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::position;

    #[test]
    fn positions_come_from_the_program_frame() {
        assert_eq!(
            position(Some(
                "    at f (transform.js:3:9)\n    at <eval> (transform.js:5:1)\n"
            )),
            Some((3, 9))
        );
        assert_eq!(position(Some("    at transform.js:12:2\n")), Some((12, 2)));
        assert_eq!(position(Some("    at prelude.js:1:1\n")), None);
        assert_eq!(position(None), None);
    }
}
