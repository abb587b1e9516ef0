//! The worker: a copy of the server's own executable, started with [`WORKER_ENV`] set,
//! that runs jq programs for it, one request at a time, in batches over stdin and stdout.
//!
//! It is a process of its own so that every way a program can go wrong ends there: an
//! endless loop is killed at its time limit, a huge allocation meets the memory limit
//! (`RLIMIT_DATA`), a deep recursion overflows the worker's stack — and the server, which
//! only sees the worker's pipe close, answers for that one request and starts another.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use jaq_json::Val;

use crate::program::Program;
use crate::protocol::{OVERSTAYED, Request, Response, has_whole_frame, read_frame};

/// Set (to anything) in a worker's environment; [`crate::serve_if_worker`] checks it.
pub(crate) const WORKER_ENV: &str = "WEBHOOK_JQ_WORKER";
/// The worker's memory limit in MiB.
pub(crate) const MEMORY_ENV: &str = "WEBHOOK_JQ_MEMORY_MB";

/// Most compiled programs a worker keeps (a reload brings new ones).
const MAX_PROGRAMS: usize = 256;

/// Serve requests until stdin closes; the exit code.
pub(crate) fn serve() -> i32 {
    // Die with the server, even while a program loops.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid().is_none() {
        return 0;
    }
    if let Some(mb) = std::env::var(MEMORY_ENV)
        .ok()
        .and_then(|mb| mb.parse::<u64>().ok())
    {
        let bytes = mb.saturating_mul(1 << 20);
        let limit = rustix::process::Rlimit {
            current: Some(bytes),
            maximum: Some(bytes),
        };
        if rustix::process::setrlimit(rustix::process::Resource::Data, limit).is_err() {
            eprintln!("cannot set the memory limit");
            return 3;
        }
    }
    let watch = Watch::start();
    // Requests come in batches: read them from a large buffer and answer into another,
    // flushed only when no whole request is left to read (one hop per batch).
    let mut input = io::BufReader::with_capacity(INPUT_BUFFER, io::stdin().lock());
    let mut output = io::BufWriter::with_capacity(OUTPUT_BUFFER, io::stdout().lock());
    let mut programs: HashMap<String, Program> = HashMap::new();
    loop {
        if !has_whole_frame(&input) && output.flush().is_err() {
            return 0;
        }
        let payload = match read_frame(&mut input) {
            Ok(Some(payload)) => payload,
            Ok(None) => return 0,
            Err(_) => return 2,
        };
        let response = match Request::decode(&payload) {
            Some(request) => {
                watch.begin(request.id, request.timeout_ms);
                let response = handle(&mut programs, &request);
                watch.end();
                response
            }
            None => Response::Error("malformed request frame".to_owned()),
        };
        if response.write_to(&mut output).is_err() {
            return 0;
        }
    }
}

/// How much of the batch the worker reads at once.
const INPUT_BUFFER: usize = 256 << 10;
/// How much of its answers the worker keeps before writing them.
const OUTPUT_BUFFER: usize = 64 << 10;

/// The watchdog: a thread that ends the worker when the request it runs overstays its
/// time limit (jaq cannot be interrupted), after naming that request on stderr.
struct Watch {
    state: Arc<WatchState>,
    thread: std::thread::Thread,
}

struct WatchState {
    base: Instant,
    /// When the current request began, in ns after `base`, plus one; 0 between requests.
    began: AtomicU64,
    id: AtomicU64,
    timeout_ms: AtomicU64,
    /// The watchdog parks until it is woken (it saw no request running).
    asleep: AtomicBool,
}

impl WatchState {
    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl Watch {
    fn start() -> Self {
        let state = Arc::new(WatchState {
            base: Instant::now(),
            began: AtomicU64::new(0),
            id: AtomicU64::new(0),
            timeout_ms: AtomicU64::new(0),
            asleep: AtomicBool::new(false),
        });
        let watched = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("jq-watchdog".to_owned())
            .stack_size(64 << 10)
            .spawn(move || watch(&watched))
            .map_or_else(|_| std::thread::current(), |handle| handle.thread().clone());
        Self { state, thread }
    }

    fn begin(&self, id: u64, timeout_ms: u32) {
        self.state.id.store(id, Ordering::SeqCst);
        self.state
            .timeout_ms
            .store(u64::from(timeout_ms), Ordering::SeqCst);
        self.state
            .began
            .store(self.state.now().saturating_add(1), Ordering::SeqCst);
        if self.state.asleep.swap(false, Ordering::SeqCst) {
            self.thread.unpark();
        }
    }

    fn end(&self) {
        self.state.began.store(0, Ordering::SeqCst);
    }
}

fn watch(state: &WatchState) {
    loop {
        let began = state.began.load(Ordering::SeqCst);
        if began == 0 {
            state.asleep.store(true, Ordering::SeqCst);
            if state.began.load(Ordering::SeqCst) == 0 {
                std::thread::park();
            }
            state.asleep.store(false, Ordering::SeqCst);
            continue;
        }
        let id = state.id.load(Ordering::SeqCst);
        let timeout_ns = state
            .timeout_ms
            .load(Ordering::SeqCst)
            .saturating_mul(1_000_000);
        if state.began.load(Ordering::SeqCst) != began {
            continue; // the next request began meanwhile
        }
        let deadline = (began - 1).saturating_add(timeout_ns);
        let now = state.now();
        if now < deadline {
            std::thread::park_timeout(Duration::from_nanos(deadline - now));
            continue;
        }
        if state.began.load(Ordering::SeqCst) == began {
            // No allocation here: the program may have taken all the memory there is, and
            // this thread's first allocation would then fail and hide the cause.
            let mut line = [0u8; OVERSTAYED.len() + 21];
            let len = overstayed_line(id, &mut line);
            let _ = rustix::io::write(rustix::stdio::stderr(), &line[..len]);
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
            std::process::exit(5);
        }
    }
}

fn handle(programs: &mut HashMap<String, Program>, request: &Request<'_>) -> Response {
    if !programs.contains_key(request.program) {
        if programs.len() >= MAX_PROGRAMS {
            programs.clear();
        }
        match Program::compile(request.program) {
            Ok(program) => {
                programs.insert(request.program.to_owned(), program);
            }
            Err(err) => return Response::Error(format!("the program does not compile: {err}")),
        }
    }
    let Some(program) = programs.get(request.program) else {
        return Response::Error("the program was not kept".to_owned());
    };
    let input = match jaq_json::read::parse_single(request.body) {
        Ok(input) => input,
        Err(err) => return Response::Error(format!("the body is not JSON ({err})")),
    };
    let vars = match jaq_json::read::parse_single(request.vars) {
        Ok(Val::Arr(vars)) => vars.to_vec(),
        _ => return Response::Error("malformed variables".to_owned()),
    };
    match program.run(input, vars) {
        Ok(None | Some(Val::Null)) => Response::Skip,
        Ok(Some(output)) => {
            let mut text = Capped {
                text: String::new(),
                cap: request.max_output as usize,
            };
            if write!(text, "{output}").is_err() {
                return Response::Error(format!(
                    "the output is larger than max_output_bytes ({})",
                    request.max_output
                ));
            }
            Response::Output(text.text.into_bytes())
        }
        Err(message) => Response::Error(message),
    }
}

/// A string that refuses to grow past `cap` bytes.
struct Capped {
    text: String,
    cap: usize,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len() + s.len() > self.cap {
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// Write [`OVERSTAYED`], `id` and a newline into `out`; the length written.
fn overstayed_line(id: u64, out: &mut [u8; OVERSTAYED.len() + 21]) -> usize {
    let prefix = OVERSTAYED.as_bytes();
    out[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 20];
    let mut n = id;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (slot, digit) in out[prefix.len()..]
        .iter_mut()
        .zip(digits[..count].iter().rev())
    {
        *slot = *digit;
    }
    out[prefix.len() + count] = b'\n';
    prefix.len() + count + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_overstayed_line_names_the_request() {
        for id in [0, 7, 10, 123_456_789, u64::MAX] {
            let mut line = [0u8; OVERSTAYED.len() + 21];
            let len = overstayed_line(id, &mut line);
            assert_eq!(line[..len], *format!("{OVERSTAYED}{id}\n").as_bytes());
        }
    }
}
