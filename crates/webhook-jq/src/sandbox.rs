//! The server's side of the workers: per memory limit, a few driver tasks, each owning one
//! worker process and feeding it batches of the requests waiting in a shared queue.
//!
//! A batch costs one hop to the worker and back however many requests it holds. The
//! worker times each request itself and, when one overstays its limit, names it and dies:
//! that request fails, the rest of its batch runs again on a fresh worker (a program gives
//! the same output on every run). A worker that dies otherwise (its memory limit, a stack
//! overflow) is replaced and the unanswered part of its batch runs one request at a time,
//! so that only the request that kills a fresh worker on its own fails.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, mpsc, oneshot};
use webhook_core::transform::TransformError;

use crate::protocol::{MAX_FRAME, OVERSTAYED, Request, Response};
use crate::worker::{MEMORY_ENV, WORKER_ENV};

/// Most requests sent to a worker at once.
const MAX_BATCH: usize = 64;
/// A batch stops growing past this many bytes of requests.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// How long past the sum of its requests' limits a batch may take before the server stops
/// the worker itself (the worker's own watchdog normally acts first).
const BACKSTOP_SLACK: Duration = Duration::from_secs(1);

/// Workers of one memory limit.
pub(crate) struct Pool {
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
}

struct Shared {
    executable: PathBuf,
    memory_mb: u64,
    /// How many drivers (and so workers) may run.
    size: usize,
    drivers: AtomicUsize,
    queue: Mutex<mpsc::UnboundedReceiver<Job>>,
}

/// One request waiting for, or in, a batch.
struct Job {
    id: u64,
    frame: Vec<u8>,
    timeout: Duration,
    answer: oneshot::Sender<Result<Response, TransformError>>,
}

impl Job {
    fn finish(self, result: Result<Response, TransformError>) {
        let _ = self.answer.send(result);
    }

    fn timed_out(self) {
        let message = format!(
            "the program did not finish within {} ms (stopped)",
            self.timeout.as_millis()
        );
        self.finish(Err(TransformError(message)));
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Pool {
    pub(crate) fn new(executable: PathBuf, memory_mb: u64, size: usize) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        Self {
            jobs,
            shared: Arc::new(Shared {
                executable,
                memory_mb,
                size: size.max(1),
                drivers: AtomicUsize::new(0),
                queue: Mutex::new(queue),
            }),
        }
    }

    /// Run one request on a worker (its id is set here). Its time limit counts the run in
    /// the worker only, not the wait for a batch or a worker's start.
    pub(crate) async fn run(&self, mut request: Request<'_>) -> Result<Response, TransformError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        request.id = id;
        let timeout = Duration::from_millis(u64::from(request.timeout_ms));
        let (answer, answered) = oneshot::channel();
        let job = Job {
            id,
            frame: request.encode(),
            timeout,
            answer,
        };
        self.start_drivers()?;
        self.jobs
            .send(job)
            .map_err(|_| TransformError("the jq workers are shut down".to_owned()))?;
        answered
            .await
            .map_err(|_| TransformError("the jq workers are shut down".to_owned()))?
    }

    /// Start drivers up to the pool's size (they end with the runtime or the pool).
    fn start_drivers(&self) -> Result<(), TransformError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| TransformError("jq runs inside the server's runtime".to_owned()))?;
        loop {
            let running = self.shared.drivers.load(Ordering::SeqCst);
            if running >= self.shared.size {
                return Ok(());
            }
            if self
                .shared
                .drivers
                .compare_exchange(running, running + 1, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                let shared = Arc::clone(&self.shared);
                runtime.spawn(drive(shared));
            }
        }
    }
}

/// Counts a driver out however it ends.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.drivers.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn drive(shared: Arc<Shared>) {
    let running = Running(shared);
    let shared = &running.0;
    let mut worker = None;
    while let Some(batch) = next_batch(shared).await {
        run_batch(shared, &mut worker, batch).await;
    }
}

/// The next requests waiting (at least one), or `None` once the pool is gone.
async fn next_batch(shared: &Shared) -> Option<Vec<Job>> {
    let mut queue = shared.queue.lock().await;
    let mut batch = Vec::new();
    let mut bytes = 0;
    while batch.is_empty() {
        let job = queue.recv().await?;
        if !job.answer.is_closed() {
            bytes += job.frame.len();
            batch.push(job);
        }
    }
    while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
        let Ok(job) = queue.try_recv() else { break };
        if !job.answer.is_closed() {
            bytes += job.frame.len();
            batch.push(job);
        }
    }
    Some(batch)
}

/// Answer every request of `batch`, on `slot`'s worker or fresh ones.
async fn run_batch(shared: &Shared, slot: &mut Option<Worker>, mut batch: Vec<Job>) {
    let mut one_at_a_time = false;
    let mut retried_fresh = false;
    while !batch.is_empty() {
        if one_at_a_time && batch.len() > 1 {
            for job in batch {
                Box::pin(run_batch(shared, slot, vec![job])).await;
            }
            return;
        }
        let mut worker = match slot.take() {
            Some(worker) => worker,
            None => match shared.spawn() {
                Ok(worker) => worker,
                Err(err) => {
                    for job in batch {
                        job.finish(Err(err.clone()));
                    }
                    return;
                }
            },
        };
        let fresh = worker.served == 0;
        let mut answers = Vec::with_capacity(batch.len());
        let backstop = batch
            .iter()
            .map(|job| job.timeout)
            .sum::<Duration>()
            .saturating_add(BACKSTOP_SLACK);
        let finished = tokio::time::timeout(backstop, worker.exchange(&batch, &mut answers)).await;
        worker.served += answers.len();
        let unanswered = batch.split_off(answers.len());
        for (job, answer) in batch.into_iter().zip(answers) {
            job.finish(Ok(answer));
        }
        batch = unanswered;
        if batch.is_empty() {
            *slot = Some(worker);
            return;
        }
        if finished.is_err() {
            // The watchdog did not act: stop the worker here.
            worker.kill().await;
            if batch.len() == 1 {
                batch.remove(0).timed_out();
                return;
            }
            one_at_a_time = true;
            continue;
        }
        match worker.death(shared.memory_mb).await {
            Death::Overstayed(id) => match batch.iter().position(|job| job.id == id) {
                Some(index) => batch.remove(index).timed_out(),
                None => one_at_a_time = true,
            },
            // Blamed only after it killed a fresh worker by itself: a worker that served
            // others first may have died of what they left behind (memory kept).
            Death::Other(err) if batch.len() == 1 && (fresh || retried_fresh) => {
                batch.remove(0).finish(Err(err));
                return;
            }
            Death::Other(_) if batch.len() == 1 => retried_fresh = true,
            Death::Other(_) => one_at_a_time = true,
        }
    }
}

impl Shared {
    fn spawn(&self) -> Result<Worker, TransformError> {
        let mut child = Command::new(&self.executable)
            // A program sees no environment variable (no secret), only its request.
            .env_clear()
            .env(WORKER_ENV, "1")
            .env(MEMORY_ENV, self.memory_mb.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                TransformError(format!(
                    "cannot start a jq worker ({}): {err}",
                    self.executable.display()
                ))
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(TransformError("a jq worker has no pipes".to_owned()));
        };
        Ok(Worker {
            served: 0,
            child,
            stdin: BufWriter::with_capacity(64 << 10, stdin),
            stdout: BufReader::with_capacity(64 << 10, stdout),
            stderr,
        })
    }
}

struct Worker {
    /// Requests it answered.
    served: usize,
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr: ChildStderr,
}

/// Why a worker stopped answering.
enum Death {
    /// Its watchdog ended it: this request overstayed its time limit.
    Overstayed(u64),
    Other(TransformError),
}

impl Worker {
    /// Send `batch` and read its answers into `answers`, in order, until all came or the
    /// worker stopped answering. Writing and reading go on together: a batch may be
    /// larger than what the pipes hold.
    async fn exchange(&mut self, batch: &[Job], answers: &mut Vec<Response>) {
        let stdin = &mut self.stdin;
        let write = async move {
            for job in batch {
                stdin.write_all(&job.frame).await?;
            }
            stdin.flush().await
        };
        let stdout = &mut self.stdout;
        let read = async move {
            while answers.len() < batch.len() {
                match read_answer(stdout).await {
                    Ok(answer) => answers.push(answer),
                    Err(_) => return,
                }
            }
        };
        let (written, ()) = tokio::join!(write, read);
        if let Err(err) = written
            && err.kind() != ErrorKind::BrokenPipe
        {
            tracing::debug!(%err, "writing to a jq worker");
        }
    }

    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Why the worker stopped answering, from its exit and what it printed.
    async fn death(mut self, memory_mb: u64) -> Death {
        let _ = self.child.start_kill();
        let status = self.child.wait().await;
        let mut printed = Vec::new();
        let mut stderr = (&mut self.stderr).take(64 << 10);
        let read = stderr.read_to_end(&mut printed);
        let _ = tokio::time::timeout(Duration::from_millis(200), read).await;
        let printed = String::from_utf8_lossy(&printed);
        if let Some(id) = printed
            .lines()
            .find_map(|line| line.strip_prefix(OVERSTAYED))
            .and_then(|id| id.trim().parse().ok())
        {
            return Death::Overstayed(id);
        }
        let message = if printed.contains("overflowed its stack") {
            "the program recursed too deep (the worker's stack overflowed)".to_owned()
        } else if printed.contains("memory allocation of") || printed.contains("out of memory") {
            format!("the program ran out of its memory limit ({memory_mb} MiB)")
        } else {
            let last = printed.lines().rev().find(|l| !l.trim().is_empty());
            match (status, last) {
                (_, Some(line)) => format!("the jq worker died: {line}"),
                (Ok(status), None) => format!("the jq worker died ({status})"),
                (Err(err), None) => format!("the jq worker died: {err}"),
            }
        };
        Death::Other(TransformError(message))
    }
}

async fn read_answer(stdout: &mut BufReader<ChildStdout>) -> std::io::Result<Response> {
    let mut len = [0u8; 4];
    stdout.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(std::io::Error::other("answer too large"));
    }
    let mut payload = vec![0; len];
    stdout.read_exact(&mut payload).await?;
    Response::decode(payload).ok_or_else(|| std::io::Error::other("malformed answer"))
}
