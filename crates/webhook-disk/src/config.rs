use serde::Deserialize;

/// `module-config` of the `save_to_disk` destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskConfig {
    /// The directory for the files, relative to the data directory (default `.`, the data
    /// directory itself). Absolute paths are accepted when they lie inside it.
    #[serde(default = "default_path")]
    pub path: String,
}

fn default_path() -> String {
    ".".to_owned()
}
