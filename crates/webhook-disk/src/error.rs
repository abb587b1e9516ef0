use std::io;
use std::path::PathBuf;

use webhook_core::ModuleError;

/// What can go wrong writing a webhook to disk.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DiskError {
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the write task stopped before finishing")]
    Task(#[from] tokio::task::JoinError),
}

impl From<DiskError> for ModuleError {
    fn from(err: DiskError) -> Self {
        let class_error = match &err {
            DiskError::Write { source, .. } => match source.kind() {
                io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => {
                    ModuleError::unavailable("disk full")
                }
                io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
                    ModuleError::permanent("not allowed to write")
                }
                _ => ModuleError::retryable("write failed"),
            },
            DiskError::Task(_) => ModuleError::retryable("write failed"),
        };
        class_error.with_source(err)
    }
}
