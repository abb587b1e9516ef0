//! The worker: a copy of the server's own executable, started with [`WORKER_ENV`] set,
//! that runs jq programs for it, one request at a time, over stdin and stdout.
//!
//! It is a process of its own so that every way a program can go wrong ends there: an
//! endless loop is killed at its time limit, a huge allocation meets the memory limit
//! (`RLIMIT_DATA`), a deep recursion overflows the worker's stack — and the server, which
//! only sees the worker's pipe close, answers for that one request and starts another.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io;

use jaq_json::Val;

use crate::program::Program;
use crate::protocol::{Request, Response, read_frame};

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
    let mut stdin = io::stdin().lock();
    let mut stdout = io::stdout().lock();
    let mut programs: HashMap<String, Program> = HashMap::new();
    loop {
        let payload = match read_frame(&mut stdin) {
            Ok(Some(payload)) => payload,
            Ok(None) => return 0,
            Err(_) => return 2,
        };
        let response = match Request::decode(&payload) {
            Some(request) => handle(&mut programs, &request),
            None => Response::Error("malformed request frame".to_owned()),
        };
        if response.write_to(&mut stdout).is_err() {
            return 0;
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
