//! The server's side of the workers: a pool of worker processes per memory limit, each
//! running one program at a time, killed when a run overstays its time limit and replaced
//! when it dies.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use webhook_core::transform::TransformError;

use crate::protocol::{MAX_FRAME, Response};
use crate::worker::{MEMORY_ENV, WORKER_ENV};

/// Workers of one memory limit.
pub(crate) struct Pool {
    executable: PathBuf,
    memory_mb: u64,
    idle: Mutex<Vec<Worker>>,
    /// One permit per worker that may exist.
    permits: tokio::sync::Semaphore,
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: ChildStdout,
    stderr: ChildStderr,
}

impl Pool {
    pub(crate) fn new(executable: PathBuf, memory_mb: u64, size: usize) -> Self {
        Self {
            executable,
            memory_mb,
            idle: Mutex::new(Vec::new()),
            permits: tokio::sync::Semaphore::new(size.max(1)),
        }
    }

    /// Send `frame` to a worker and read its answer within `timeout` (waiting for a free
    /// worker and starting one are not counted).
    pub(crate) async fn run(
        &self,
        frame: &[u8],
        timeout: Duration,
    ) -> Result<Response, TransformError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| TransformError("the jq workers are shut down".to_owned()))?;
        let mut worker = match self.take_idle() {
            Some(worker) => worker,
            None => self.spawn()?,
        };
        match tokio::time::timeout(timeout, worker.exchange(frame)).await {
            Ok(Ok(response)) => {
                self.put_back(worker);
                Ok(response)
            }
            Ok(Err(_)) => Err(worker.death(self.memory_mb).await),
            Err(_) => {
                worker.kill().await;
                Err(TransformError(format!(
                    "the program did not finish within {} ms (stopped)",
                    timeout.as_millis()
                )))
            }
        }
    }

    fn take_idle(&self) -> Option<Worker> {
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        idle.pop()
    }

    fn put_back(&self, worker: Worker) {
        let mut idle = match self.idle.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        idle.push(worker);
    }

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
            child,
            stdin,
            stdout,
            stderr,
        })
    }
}

impl Worker {
    async fn exchange(&mut self, frame: &[u8]) -> std::io::Result<Response> {
        self.stdin.write_all(frame).await?;
        self.stdin.flush().await?;
        let mut len = [0u8; 4];
        self.stdout.read_exact(&mut len).await?;
        let len = u32::from_le_bytes(len) as usize;
        if len > MAX_FRAME {
            return Err(std::io::Error::other("answer too large"));
        }
        let mut payload = vec![0; len];
        self.stdout.read_exact(&mut payload).await?;
        Response::decode(payload).ok_or_else(|| std::io::Error::other("malformed answer"))
    }

    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Why the worker stopped answering, from its exit and what it printed.
    async fn death(mut self, memory_mb: u64) -> TransformError {
        let _ = self.child.start_kill();
        let status = self.child.wait().await;
        let mut printed = Vec::new();
        let mut stderr = (&mut self.stderr).take(64 << 10);
        let read = stderr.read_to_end(&mut printed);
        let _ = tokio::time::timeout(Duration::from_millis(200), read).await;
        let printed = String::from_utf8_lossy(&printed);
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
        TransformError(message)
    }
}
