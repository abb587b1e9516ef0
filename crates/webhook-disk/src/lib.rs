//! The `save_to_disk` destination: one file per webhook holding the exact body bytes.
//!
//! Each file is written to a temporary name in the target directory, `fsync`ed, renamed
//! into place and the directory `fsync`ed, so a reader never sees a partial file and a
//! confirmed webhook survives a crash. The target directory must stay inside the server's
//! data directory (`--data-dir`); a `path` that escapes it is a config error.
//!
//! ```json
//! {"orders": {"data_type": "json", "module": "save_to_disk", "module-config": {"path": "orders"}}}
//! ```
//!
//! Files are named `<webhook id>-<unix ms>-<request id>.json` (`.bin` for blob webhooks).

mod config;
mod disk;
mod error;

pub use config::DiskConfig;
pub use disk::SaveToDisk;

/// Add the `save_to_disk` destination to `registry`.
pub fn register(registry: &mut webhook_core::Registry) {
    registry.register_module::<SaveToDisk>();
}
