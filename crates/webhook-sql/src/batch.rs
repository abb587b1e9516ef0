//! Group insert: deliveries that arrive while the pool's connections are busy share the
//! next multi-row `INSERT`, one statement and one commit for many webhooks.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, oneshot};
use webhook_core::{ErrorClass, ModuleError};

use crate::destination::{Writer, module_error};
use crate::row::Row;

/// How long one statement may take before its rows count as failed (they are retried; the
/// request id keeps a late commit from becoming a second row).
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the batcher needs of a [`Writer`]: one multi-row insert.
pub(crate) trait Insert: Send + Sync + 'static {
    fn insert(&self, rows: &[Row]) -> impl Future<Output = Result<(), ModuleError>> + Send;
}

impl<W: Writer> Insert for W {
    async fn insert(&self, rows: &[Row]) -> Result<(), ModuleError> {
        match tokio::time::timeout(STATEMENT_TIMEOUT, self.write(rows)).await {
            Ok(result) => result.map_err(module_error::<W>),
            Err(_) => Err(ModuleError::unavailable(format!(
                "{} did not answer in time",
                W::KIND
            ))),
        }
    }
}

struct Job {
    row: Row,
    done: oneshot::Sender<Result<(), ModuleError>>,
}

/// Queues rows and writes them in batches of up to `max_rows`, with at most `concurrency`
/// statements in flight (the pool's size).
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("row", &self.row.request_id)
            .finish()
    }
}

impl Batcher {
    /// Start the batching task (it ends when the last `Batcher` clone is dropped).
    pub(crate) fn start<W: Insert>(writer: Arc<W>, max_rows: usize, concurrency: usize) -> Self {
        let (jobs, mut queue) = mpsc::channel::<Job>(max_rows.max(1) * concurrency.max(1) * 4);
        let permits = Arc::new(Semaphore::new(concurrency.max(1)));
        let max_rows = max_rows.max(1);
        tokio::spawn(async move {
            while let Some(first) = queue.recv().await {
                // Wait for a free connection first: what arrives meanwhile joins this batch.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let mut batch = vec![first];
                while batch.len() < max_rows {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let writer = writer.clone();
                tokio::spawn(async move {
                    write_batch(&*writer, batch).await;
                    drop(permit);
                });
            }
        });
        Self { jobs }
    }

    /// Queue `row` and wait until its batch committed (or failed).
    pub(crate) async fn insert(&self, row: Row) -> Result<(), ModuleError> {
        let (done, result) = oneshot::channel();
        self.jobs
            .send(Job { row, done })
            .await
            .map_err(|_| ModuleError::retryable("the sql writer has stopped"))?;
        result
            .await
            .map_err(|_| ModuleError::retryable("the sql writer has stopped"))?
    }
}

async fn write_batch<W: Insert>(writer: &W, batch: Vec<Job>) {
    let rows: Vec<Row> = batch.iter().map(|j| j.row.clone()).collect();
    match writer.insert(&rows).await {
        Ok(()) => {
            for job in batch {
                let _ = job.done.send(Ok(()));
            }
        }
        Err(err) if batch.len() == 1 || err.class() == ErrorClass::Unavailable => {
            // The server is gone (or there was one row): every row fails the same way.
            let shared = err.chain();
            let class = err.class();
            let mut err = Some(err);
            for job in batch {
                let e = err
                    .take()
                    .unwrap_or_else(|| ModuleError::new(class, shared.clone()));
                let _ = job.done.send(Err(e));
            }
        }
        Err(err) => {
            // One bad row fails its whole statement; write them one by one so that only the
            // bad ones fail.
            tracing::debug!(rows = batch.len(), error = %err.chain(), "batch insert failed; inserting its rows one by one");
            for job in batch {
                let result = writer.insert(std::slice::from_ref(&job.row)).await;
                let _ = job.done.send(result);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct Recorder {
        statements: Mutex<Vec<Vec<String>>>,
    }

    impl Insert for Recorder {
        async fn insert(&self, rows: &[Row]) -> Result<(), ModuleError> {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let ids: Vec<String> = rows.iter().map(|r| r.request_id.clone()).collect();
            self.statements.lock().unwrap().push(ids.clone());
            if ids.iter().any(|id| id == "bad") {
                Err(ModuleError::permanent("bad row"))
            } else {
                Ok(())
            }
        }
    }

    fn row(id: &str) -> Row {
        Row {
            values: vec![],
            request_id: id.to_owned(),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_rows_share_statements_and_a_bad_row_fails_alone() {
        let writer = Arc::new(Recorder::default());
        let batcher = Batcher::start(writer.clone(), 50, 1);
        let mut tasks = Vec::new();
        for i in 0..40 {
            let batcher = batcher.clone();
            let id = if i == 17 {
                "bad".to_owned()
            } else {
                i.to_string()
            };
            tasks.push(tokio::spawn(async move {
                (id.clone(), batcher.insert(row(&id)).await)
            }));
        }
        for task in tasks {
            let (id, result) = task.await.unwrap();
            assert_eq!(result.is_ok(), id != "bad", "{id}");
        }
        let statements = writer.statements.lock().unwrap();
        let multi = statements.iter().filter(|s| s.len() > 1).count();
        assert!(multi >= 1, "{statements:?}");
        assert!(statements.len() < 40 + 2, "{statements:?}");
    }
}
