//! The threads that run programs: started on the first run, one per CPU, each keeping
//! the programs it has loaded (up to [`LOADED_PER_THREAD`], least recently used out) so a
//! run costs a call, not a new runtime. A program that failed is dropped and loaded again
//! next time, so a hostile run cannot leave anything behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::{mpsc, oneshot};
use webhook_core::transform::{TransformError, TransformLimits, TransformOutput};

use crate::engine::{Input, Loaded, THREAD_STACK};

/// Programs a thread keeps loaded.
const LOADED_PER_THREAD: usize = 32;
/// Runs waiting for a thread, per thread.
const QUEUE_PER_THREAD: usize = 16;

/// A compiled program: its source, its limits and a process-wide id.
#[derive(Debug)]
pub(crate) struct Program {
    pub(crate) id: u64,
    pub(crate) source: Box<str>,
    pub(crate) limits: TransformLimits,
}

type Answer = Result<TransformOutput, TransformError>;

struct Job {
    program: Arc<Program>,
    input: Input,
    answer: oneshot::Sender<Answer>,
}

/// The threads, started on the first run.
#[derive(Debug)]
pub(crate) struct Pool {
    threads: usize,
    jobs: OnceLock<Result<mpsc::Sender<Job>, String>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("program", &self.program.id)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            jobs: OnceLock::new(),
        }
    }

    /// Run `program` on `input` on one of the threads.
    pub(crate) async fn run(&self, program: &Arc<Program>, input: Input) -> Answer {
        let jobs = self
            .jobs
            .get_or_init(|| self.start())
            .as_ref()
            .map_err(|err| TransformError(err.clone()))?;
        let (answer, answered) = oneshot::channel();
        let job = Job {
            program: Arc::clone(program),
            input,
            answer,
        };
        jobs.send(job)
            .await
            .map_err(|_| TransformError("the js transform threads have stopped".to_owned()))?;
        answered.await.map_err(|_| {
            TransformError("a js transform thread stopped during the run".to_owned())
        })?
    }

    fn start(&self) -> Result<mpsc::Sender<Job>, String> {
        let (sender, receiver) = mpsc::channel(self.threads * QUEUE_PER_THREAD);
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..self.threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("webhook-js-{index}"))
                .stack_size(THREAD_STACK)
                .spawn(move || serve(&receiver))
                .map_err(|err| format!("cannot start a js transform thread: {err}"))?;
        }
        Ok(sender)
    }
}

/// A program loaded on one thread.
struct Slot {
    program: Weak<Program>,
    loaded: Loaded,
    used: u64,
}

fn serve(receiver: &Mutex<mpsc::Receiver<Job>>) {
    let mut loaded: HashMap<u64, Slot> = HashMap::new();
    let mut tick = 0_u64;
    loop {
        let job = {
            let mut receiver = match receiver.lock() {
                Ok(receiver) => receiver,
                Err(poisoned) => poisoned.into_inner(),
            };
            receiver.blocking_recv()
        };
        let Some(job) = job else { return };
        if job.answer.is_closed() {
            continue;
        }
        tick += 1;
        // Programs of an older configuration are gone once no destination holds them.
        loaded.retain(|_, slot| slot.program.strong_count() > 0);
        let answer = run(&mut loaded, &job, tick);
        let _ = job.answer.send(answer);
    }
}

fn run(loaded: &mut HashMap<u64, Slot>, job: &Job, tick: u64) -> Answer {
    let id = job.program.id;
    if !loaded.contains_key(&id) {
        if loaded.len() >= LOADED_PER_THREAD
            && let Some(oldest) = loaded
                .iter()
                .min_by_key(|(_, slot)| slot.used)
                .map(|(id, _)| *id)
        {
            loaded.remove(&oldest);
        }
        let program = Loaded::load(&job.program.source, &job.program.limits)
            .map_err(|err| TransformError(format!("js transform did not load: {err}")))?;
        loaded.insert(
            id,
            Slot {
                program: Arc::downgrade(&job.program),
                loaded: program,
                used: tick,
            },
        );
    }
    let Some(slot) = loaded.get_mut(&id) else {
        return Err(TransformError("js transform did not load".to_owned()));
    };
    slot.used = tick;
    let answer = slot.loaded.run(&job.input);
    if answer.is_err() {
        loaded.remove(&id);
    }
    answer
}
