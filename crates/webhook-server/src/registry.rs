//! The one list of what this build offers: every validator, and every destination with its
//! Cargo feature, its crate and the kinds it registers — one line each in [`destinations!`].
//! That line feeds the registry, the "not in this build; rebuild with `--features x`"
//! error, `--version` and the CLI test ([`DESTINATIONS`]).
//!
//! Adding a destination = its crate + one line in the table below + the feature and
//! dependency lines in this crate's Cargo.toml (ARCHITECTURE.md has the steps).

use webhook_core::Registry;

/// An optional destination crate of this server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestinationCrate {
    /// The Cargo feature that compiles it in (`--features kafka`).
    pub feature: &'static str,
    /// The `module` names it registers.
    pub kinds: &'static [&'static str],
    /// Whether this build has it.
    pub compiled: bool,
}

/// `"feature" => crate_name ["kind", …]`, one line per destination crate: registers the
/// crate when its feature is on, else names its kinds as "not in this build".
macro_rules! destinations {
    ($($feature:literal => $krate:ident [$($kind:literal),+ $(,)?]),* $(,)?) => {
        /// Every optional destination, in the order of the table.
        pub const DESTINATIONS: &[DestinationCrate] = &[$(DestinationCrate {
            feature: $feature,
            kinds: &[$($kind),+],
            compiled: cfg!(feature = $feature),
        }),*];

        fn register_destinations(registry: &mut Registry) {
            $(
                #[cfg(feature = $feature)]
                $krate::register(registry);
                #[cfg(not(feature = $feature))]
                {
                    $(registry.not_in_build($kind, $feature);)+
                }
            )*
        }
    };
}

destinations! {
    "save_to_disk" => webhook_disk ["save_to_disk"],
    "redis" => webhook_redis ["redis_rq", "redis_publish", "redis_stream"],
    "rabbitmq" => webhook_rabbitmq ["rabbitmq"],
    "kafka" => webhook_kafka ["kafka"],
    "http" => webhook_http ["http_webhook"],
    "s3" => webhook_s3 ["s3"],
    "websocket" => webhook_websocket ["websocket"],
    "nats" => webhook_nats ["nats"],
    "mqtt" => webhook_mqtt ["mqtt"],
    "postgresql" => webhook_postgres ["postgresql", "postgres"],
    "mysql" => webhook_mysql ["mysql", "mariadb"],
}

/// The registry of this build: validators in the order they run, then destinations
/// (`log` is always there) and transform languages, whose workers are copies of this
/// executable.
pub fn registry() -> Registry {
    match std::env::current_exe() {
        Ok(executable) => registry_with_workers(executable),
        Err(err) => {
            eprintln!("jq transforms are off: cannot find this executable ({err})");
            let mut registry = base_registry();
            registry.transform_not_in_build("jq", "jq");
            registry
        }
    }
}

/// [`registry`] with transform workers started from `executable` (a `webhook-server`
/// binary: tests, which run in a harness of their own, point it at the built server).
pub fn registry_with_workers(executable: std::path::PathBuf) -> Registry {
    let mut registry = base_registry();
    #[cfg(feature = "jq")]
    {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        registry.register_transform_language(std::sync::Arc::new(webhook_jq::JqLanguage::new(
            executable, workers,
        )));
    }
    #[cfg(not(feature = "jq"))]
    {
        let _ = executable;
        registry.transform_not_in_build("jq", "jq");
    }
    registry
}

fn base_registry() -> Registry {
    let mut registry = Registry::new();
    webhook_validators::register(&mut registry);
    webhook_log::register(&mut registry);
    register_destinations(&mut registry);
    // JavaScript runs on threads of its own in this process (QuickJS bounds each run).
    #[cfg(feature = "js")]
    registry.register_transform_language(std::sync::Arc::new(webhook_js::JsLanguage::per_cpu()));
    #[cfg(not(feature = "js"))]
    registry.transform_not_in_build("js", "js");
    registry
}

/// One line per destination and validator, for `--version`.
pub fn describe(registry: &Registry) -> String {
    format!(
        "{}\ndestinations: {}\nvalidators: {}\ntransforms: {}\nspools: {}",
        env!("CARGO_PKG_VERSION"),
        registry.module_kinds().join(", "),
        registry.validator_keys().join(", "),
        registry.transform_keys().join(", "),
        if cfg!(feature = "spool-postgres") {
            "local, postgres"
        } else {
            "local"
        }
    )
}
