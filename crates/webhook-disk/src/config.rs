use serde::Deserialize;
use webhook_core::BuildError;

/// `module-config` of the `save_to_disk` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// The directory for the files, relative to `base_dir` (default `.`). Absolute paths
    /// are accepted when they lie inside the data directory.
    #[serde(default = "default_path")]
    pub path: String,
    /// The original's base of `path` (default: the data directory); it must lie inside
    /// the data directory too.
    #[serde(default)]
    pub base_dir: Option<String>,
    /// The file name, with `{uuid}` (the request id, required so no file overwrites
    /// another), `{timestamp}` (milliseconds since the epoch) and `{webhook_id}`; default
    /// `{webhook_id}-{timestamp}-{uuid}` + the extension.
    #[serde(default)]
    pub filename_pattern: Option<String>,
    /// The extension of default file names (default `.json` for JSON webhooks, `.bin` for
    /// blobs); a `filename_pattern` carries its own.
    #[serde(default)]
    pub file_extension: Option<String>,
    /// Write `{"payload": …, "headers": {…}}` (the body embedded byte for byte) instead of
    /// the exact body (default `false`).
    #[serde(default)]
    pub include_headers: bool,
}

fn default_path() -> String {
    ".".to_owned()
}

impl DiskConfig {
    /// Check `filename_pattern` and `file_extension`.
    pub(crate) fn check_names(&self) -> Result<(), BuildError> {
        if let Some(pattern) = &self.filename_pattern {
            if !pattern.contains("{uuid}") {
                return Err(BuildError::key(
                    "filename_pattern",
                    "must contain `{uuid}`, or one webhook's file would overwrite another's",
                ));
            }
            let sample = expand(pattern, "w", 0, "u");
            if !is_plain_name(&sample) || sample.contains(['{', '}']) {
                return Err(BuildError::key(
                    "filename_pattern",
                    "must be a file name (no `/`, no `..`) using only {uuid}, {timestamp}, {webhook_id}",
                ));
            }
        }
        if let Some(extension) = &self.file_extension {
            let bare = extension.trim_start_matches('.');
            if bare.is_empty() || !is_plain_name(bare) || bare.contains('.') {
                return Err(BuildError::key(
                    "file_extension",
                    "must be a plain extension such as `.json` or `txt`",
                ));
            }
        }
        Ok(())
    }
}

/// `pattern` with its placeholders filled in.
pub(crate) fn expand(pattern: &str, webhook_id: &str, millis: u128, uuid: &str) -> String {
    pattern
        .replace("{uuid}", uuid)
        .replace("{timestamp}", &millis.to_string())
        .replace("{webhook_id}", webhook_id)
}

fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.starts_with('.')
        && !name.contains(['/', '\\', '\0'])
}
