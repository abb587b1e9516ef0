use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::UNIX_EPOCH;

use webhook_core::{
    BuildContext, BuildError, DataType, Delivery, Module, ModuleError, NoConnection,
};

use crate::config::{DiskConfig, expand};
use crate::error::DiskError;

/// The `save_to_disk` destination.
#[derive(Debug, Clone)]
pub struct SaveToDisk {
    dir: PathBuf,
    extension: String,
    pattern: Option<String>,
    include_headers: bool,
}

impl Module for SaveToDisk {
    const KIND: &'static str = "save_to_disk";
    type Config = DiskConfig;
    type Connection = NoConnection;

    fn validate(config: &DiskConfig, context: &BuildContext) -> Result<(), BuildError> {
        config.check_names()?;
        let dir = directory(config, context)?;
        real_path_inside(&context.data_dir, &dir, &config.path).map(|_| ())
    }

    async fn build(
        config: DiskConfig,
        _: Option<NoConnection>,
        context: &BuildContext,
    ) -> Result<Self, BuildError> {
        config.check_names()?;
        let dir = directory(&config, context)?;
        // Symlinks could lead out: check the real path of what exists before creating
        // anything, and the whole real path after.
        real_path_inside(&context.data_dir, &dir, &config.path)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| {
                BuildError::key("path", format!("cannot create {}: {e}", dir.display()))
            })?;
        let real_dir = real_path_inside(&context.data_dir, &dir, &config.path)?;
        let extension = match (&config.file_extension, context.data_type) {
            (Some(extension), _) => extension.trim_start_matches('.').to_owned(),
            (None, DataType::Json) => "json".to_owned(),
            (None, DataType::Blob) => "bin".to_owned(),
        };
        Ok(Self {
            dir: real_dir,
            extension,
            pattern: config.filename_pattern,
            include_headers: config.include_headers,
        })
    }

    async fn deliver(&self, delivery: &Delivery) -> Result<(), ModuleError> {
        let millis = delivery
            .received_at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let uuid = delivery.request_id.to_string();
        let name = match &self.pattern {
            Some(pattern) => expand(pattern, &delivery.webhook_id, millis, &uuid),
            None => format!("{}-{millis}-{uuid}.{}", delivery.webhook_id, self.extension),
        };
        let dir = self.dir.clone();
        let body = if self.include_headers {
            bytes::Bytes::from(delivery.json_envelope(true))
        } else {
            delivery.body.clone()
        };
        tokio::task::spawn_blocking(move || write_atomically(&dir, &name, &body))
            .await
            .map_err(DiskError::from)??;
        Ok(())
    }

    async fn health(&self) -> Result<(), ModuleError> {
        match fs::metadata(&self.dir) {
            Ok(meta) if meta.is_dir() => Ok(()),
            Ok(_) => Err(ModuleError::unavailable(format!(
                "{} is not a directory",
                self.dir.display()
            ))),
            Err(err) => Err(DiskError::Write {
                path: self.dir.clone(),
                source: err,
            }
            .into()),
        }
    }
}

/// Where `config` puts its files: `base_dir`/`path` inside the data directory.
fn directory(config: &DiskConfig, context: &BuildContext) -> Result<PathBuf, BuildError> {
    let base = match &config.base_dir {
        Some(base) => resolve_inside(&context.data_dir, Path::new(base))
            .map_err(|e| BuildError::key("base_dir", e.message))?,
        None => context.data_dir.to_path_buf(),
    };
    let path = Path::new(&config.path);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    resolve_inside(&context.data_dir, &joined).map_err(|e| BuildError::key("path", e.message))
}

/// The real path (symlinks resolved) of `dir`'s nearest existing ancestor, refused when it
/// is outside the data directory's real path; `dir` itself when it exists.
fn real_path_inside(data_dir: &Path, dir: &Path, configured: &str) -> Result<PathBuf, BuildError> {
    let real_root = fs::canonicalize(data_dir)
        .map_err(|e| BuildError::other(format!("data directory {}: {e}", data_dir.display())))?;
    let existing = dir.ancestors().find(|a| a.exists()).unwrap_or(data_dir);
    let real = fs::canonicalize(existing)
        .map_err(|e| BuildError::key("path", format!("{}: {e}", existing.display())))?;
    if !real.starts_with(&real_root) {
        return Err(BuildError::key(
            "path",
            format!(
                "{configured} leads (through a symlink) to {}, outside the data directory {}",
                real.display(),
                real_root.display()
            ),
        ));
    }
    Ok(real)
}

/// Write `body` to `dir/name` so that the file appears whole or not at all, and stays.
fn write_atomically(dir: &Path, name: &str, body: &[u8]) -> Result<(), DiskError> {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DiskError::Write { path, source }
    };
    let result = (|| {
        // readable by the server's user only: payloads carry customer data
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(err(&temp))?;
        file.write_all(body).map_err(err(&temp))?;
        file.sync_all().map_err(err(&temp))?;
        fs::rename(&temp, &target).map_err(err(&target))?;
        File::open(dir).and_then(|d| d.sync_all()).map_err(err(dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// `root` joined with `path`, normalised without touching the disk; an error when the
/// result is not inside `root`.
fn resolve_inside(root: &Path, path: &Path) -> Result<PathBuf, BuildError> {
    let root = normalize(
        &std::path::absolute(root)
            .map_err(|e| BuildError::other(format!("data directory: {e}")))?,
    )
    .ok_or_else(|| BuildError::other("the data directory cannot be resolved"))?;
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    match normalize(&joined) {
        Some(dir) if dir.starts_with(&root) => Ok(dir),
        _ => Err(BuildError::key(
            "path",
            format!(
                "`{}` is outside the data directory {} (start the server with --data-dir to allow another one)",
                path.display(),
                root.display()
            ),
        )),
    }
}

/// Resolve `.` and `..` lexically; `None` when `..` climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Prefix(_) | Component::RootDir | Component::Normal(_) => out.push(component),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() || out.as_os_str().is_empty() {
                    return None;
                }
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside() {
        let root = Path::new("/srv/hooks");
        assert_eq!(
            resolve_inside(root, Path::new(".")).unwrap(),
            Path::new("/srv/hooks")
        );
        assert_eq!(
            resolve_inside(root, Path::new("a/./b/../c")).unwrap(),
            Path::new("/srv/hooks/a/c")
        );
        assert_eq!(
            resolve_inside(root, Path::new("/srv/hooks/x")).unwrap(),
            Path::new("/srv/hooks/x")
        );
        for bad in [
            "..",
            "../hooks2",
            "a/../../x",
            "/etc",
            "/srv/hooks/../../etc",
        ] {
            let err = resolve_inside(root, Path::new(bad)).unwrap_err();
            assert_eq!(err.key, "path", "{bad}");
        }
        // a sibling whose name starts like the root is not inside it
        assert!(resolve_inside(root, Path::new("/srv/hooks-other")).is_err());
    }
}
