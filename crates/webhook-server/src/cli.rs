//! The command line: the flags (each with its environment variable) and the subcommands.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use webhook_server::logging::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "webhook-server",
    about = "Receive webhooks, verify them and deliver them without losing one"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,

    /// webhooks.json; default: ./webhooks.json if present, else the embedded demo config.
    #[arg(long, env = "WEBHOOKS_CONFIG_FILE", global = true)]
    pub(crate) webhooks_config: Option<PathBuf>,

    /// connections.json; default: ./connections.json if present.
    #[arg(long, env = "CONNECTIONS_CONFIG_FILE", global = true)]
    pub(crate) connections_config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0", global = true)]
    pub(crate) host: String,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8000, global = true)]
    pub(crate) port: u16,

    /// Directory that relative destination paths resolve against and may not leave.
    #[arg(long, env = "WEBHOOK_DATA_DIR", default_value = ".", global = true)]
    pub(crate) data_dir: PathBuf,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "WEBHOOK_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024, global = true)]
    pub(crate) max_body_bytes: usize,

    /// Most connections open at once; default: 80 % of the file-descriptor limit (raised to
    /// its hard limit at start-up) less 64.
    #[arg(long, env = "WEBHOOK_MAX_CONNECTIONS", global = true)]
    pub(crate) max_connections: Option<usize>,

    /// Seconds a connection may stay open without a request in flight (before its first
    /// request, and between requests).
    #[arg(
        long,
        env = "WEBHOOK_IDLE_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    pub(crate) idle_timeout: u64,

    /// Seconds a client may take to send its request headers.
    #[arg(
        long,
        env = "WEBHOOK_HEADER_READ_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    pub(crate) header_read_timeout: u64,

    /// Largest request header block in bytes (HTTP/1 and HTTP/2); more is answered 431.
    #[arg(long, env = "WEBHOOK_MAX_HEADER_BYTES", default_value_t = 32 * 1024, global = true)]
    pub(crate) max_header_bytes: usize,

    /// Seconds a body may take before the minimum rate applies; a body not complete within
    /// this + bytes / --min-body-rate is answered 408.
    #[arg(
        long,
        env = "WEBHOOK_BODY_READ_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    pub(crate) body_read_timeout: u64,

    /// Bytes per second a slow body must keep up after --body-read-timeout (0 = none).
    #[arg(long, env = "WEBHOOK_MIN_BODY_RATE", default_value_t = 8 * 1024, global = true)]
    pub(crate) min_body_rate: u64,

    /// Request-body bytes held in memory across all requests; past it new bodies get 503 +
    /// Retry-After.
    #[arg(long, env = "WEBHOOK_MAX_INFLIGHT_BODY_BYTES", default_value_t = 256 << 20, global = true)]
    pub(crate) max_inflight_body_bytes: u64,

    /// Proxies (IPs or CIDRs, comma separated) whose X-Forwarded-For is believed.
    #[arg(
        long,
        env = "WEBHOOK_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub(crate) trusted_proxies: Vec<String>,

    /// Log format.
    #[arg(
        long,
        env = "WEBHOOK_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub(crate) log_format: LogFormat,

    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "WEBHOOK_DRAIN_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    pub(crate) drain_timeout: u64,

    /// Do not serve `GET /metrics` (Prometheus text format).
    #[arg(long, env = "WEBHOOK_NO_METRICS", global = true)]
    pub(crate) no_metrics: bool,

    /// Require `Authorization: Bearer <token>` on `/metrics`, `/stats`, `/openapi.json`,
    /// `/health`'s details and `/admin/*`. Prefer --ops-token-file: a flag is visible in
    /// `ps`.
    #[arg(long, env = "WEBHOOK_OPS_TOKEN", global = true, hide_env_values = true)]
    pub(crate) ops_token: Option<String>,

    /// Read the ops token from this file (its first line).
    #[arg(
        long,
        env = "WEBHOOK_OPS_TOKEN_FILE",
        global = true,
        conflicts_with = "ops_token"
    )]
    pub(crate) ops_token_file: Option<PathBuf>,

    /// Serve `/openapi.json` to anyone even with an ops token set.
    #[arg(long, env = "WEBHOOK_PUBLIC_OPENAPI", global = true)]
    pub(crate) public_openapi: bool,

    /// Serve the embedded demo config (a `demo` webhook without authentication and
    /// `demo-signed`, whose secret is public) even when config files exist.
    #[arg(long, global = true)]
    pub(crate) demo: bool,

    /// Check the config files every N seconds and reload when their contents changed
    /// (follows symlinks, so a Kubernetes ConfigMap update is seen); 0 = off.
    #[arg(long, env = "WEBHOOK_WATCH_CONFIG", default_value_t = 0, global = true)]
    pub(crate) watch_config: u64,

    /// The Redis that several instances share (`redis://[:password@]host:port/db`): the
    /// `/stats` counters (unless --stats-redis-url names another), every `rate_limit`
    /// (counted for all instances together) and every `verify.dedup` window that names no
    /// `redis_url` of its own.
    #[arg(
        long,
        env = "WEBHOOK_SHARED_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    pub(crate) shared_redis_url: Option<String>,

    /// Keep the `/stats` counters in Redis (`redis://[:password@]host:port/db`), shared by
    /// every instance using the same Redis and kept across restarts.
    #[arg(
        long,
        env = "WEBHOOK_STATS_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    pub(crate) stats_redis_url: Option<String>,

    /// Key prefix of the Redis `/stats` counters.
    #[arg(
        long,
        env = "WEBHOOK_STATS_REDIS_PREFIX",
        default_value = "webhook-gateway:stats",
        global = true
    )]
    pub(crate) stats_redis_prefix: String,

    /// Networks (IPs or CIDRs, comma separated) allowed to use `/metrics`, `/stats` and
    /// `/admin/*`; default: any.
    #[arg(long, env = "WEBHOOK_OPS_ALLOW", value_delimiter = ',', global = true)]
    pub(crate) ops_allow: Vec<String>,

    /// Serve `/metrics` on this address instead of the webhook port (e.g. 127.0.0.1:9100).
    #[arg(long, env = "WEBHOOK_METRICS_LISTEN", global = true)]
    pub(crate) metrics_listen: Option<String>,

    /// Do not serve `GET /openapi.json`.
    #[arg(long, env = "WEBHOOK_NO_OPENAPI", global = true)]
    pub(crate) no_openapi: bool,

    /// Directory of the durable spool (`ack: persisted` webhooks) and its dead letters.
    #[arg(
        long,
        env = "WEBHOOK_SPOOL_DIR",
        default_value = "spool",
        global = true
    )]
    pub(crate) spool_dir: PathBuf,

    /// A spool shared by several instances instead of the local directory:
    /// `postgres://user:password@host:port/database` (the tables are created and migrated
    /// at start). `persisted` answers 2xx once PostgreSQL committed; any instance delivers
    /// what one that stopped left, and the dead letters are the cluster's.
    #[arg(long, env = "WEBHOOK_SPOOL", global = true, hide_env_values = true)]
    pub(crate) spool: Option<String>,

    /// With --spool postgres://…: seconds an instance's entries stay its own without a
    /// heartbeat; after a crash the others deliver them this long after its last one.
    #[arg(long, env = "WEBHOOK_SPOOL_LEASE", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub(crate) spool_lease: u64,

    /// Keep a request history (every request, its reason, its delivery attempts) for
    /// `/admin/requests`: `auto` (on when an ops token is set), `on` or `off`.
    #[arg(long, env = "WEBHOOK_HISTORY", default_value = "auto", value_parser = ["auto", "on", "off"], global = true)]
    pub(crate) history: String,

    /// The request history's SQLite file (default: `history.sqlite` beside the spool
    /// directory).
    #[arg(long, env = "WEBHOOK_HISTORY_FILE", global = true)]
    pub(crate) history_file: Option<PathBuf>,

    /// Most requests the history keeps (the oldest go first).
    #[arg(long, env = "WEBHOOK_HISTORY_MAX_ENTRIES", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub(crate) history_max_entries: u64,

    /// Oldest request the history keeps, in seconds (default 7 days).
    #[arg(long, env = "WEBHOOK_HISTORY_MAX_AGE", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub(crate) history_max_age: u64,

    /// Most bytes the spool may take; past it, persisted webhooks get 503 + Retry-After.
    #[arg(long, env = "WEBHOOK_SPOOL_MAX_BYTES", default_value_t = 1 << 30, global = true)]
    pub(crate) spool_max_bytes: u64,

    /// Most of the spool one webhook's pending entries may take, in percent; past it that
    /// webhook gets 503 while the others go on.
    #[arg(long, env = "WEBHOOK_SPOOL_WEBHOOK_SHARE", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100), global = true)]
    pub(crate) spool_webhook_share: u8,

    /// Most bytes the dead letters may take (a quota of their own); default a quarter of
    /// --spool-max-bytes. Past it, deliveries given up stay pending in the spool.
    #[arg(long, env = "WEBHOOK_DEAD_LETTER_MAX_BYTES", global = true)]
    pub(crate) dead_letter_max_bytes: Option<u64>,

    /// Delete dead letters older than this many seconds (default: keep them).
    #[arg(long, env = "WEBHOOK_DEAD_LETTER_TTL", global = true)]
    pub(crate) dead_letter_ttl: Option<u64>,

    /// How the spool makes a group durable: `direct` (O_DIRECT + O_DSYNC writes, falling
    /// back to `fdatasync` where the file system refuses direct I/O) or `fdatasync`
    /// (buffered writes + fdatasync).
    #[arg(long, env = "WEBHOOK_SPOOL_SYNC", default_value = "direct", value_parser = ["direct", "fdatasync"], global = true)]
    pub(crate) spool_sync: String,

    /// Most background deliveries in flight per destination.
    #[arg(
        long,
        env = "WEBHOOK_DESTINATION_CONCURRENCY",
        default_value_t = 64,
        global = true
    )]
    pub(crate) destination_concurrency: usize,

    /// Base URL of the running server for `dead-letters` (default: http://127.0.0.1:PORT).
    #[arg(long, env = "WEBHOOK_ADMIN_URL", global = true)]
    pub(crate) admin_url: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum DeadLetterCommand {
    /// List the dead letters (JSON).
    List,
    /// Deliver a dead letter again.
    Replay {
        /// The dead letter's id (from `list`).
        id: String,
    },
    /// Drop a dead letter without delivering it (frees its space in the spool's quota).
    Delete {
        /// The dead letter's id (from `list`).
        id: String,
    },
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum Command {
    /// Serve webhooks (the default).
    Serve,
    /// Load and check the configuration, print a summary, exit 0 if it is valid.
    CheckConfig,
    /// Print the OpenAPI 3.1 document of the webhooks (as served at /openapi.json).
    Openapi,
    /// List, replay or delete dead letters through a running server's admin API (needs its
    /// --ops-token).
    #[command(subcommand)]
    DeadLetters(DeadLetterCommand),
    /// Run a sample request through a webhook's filters and transforms, from the config
    /// files alone, and print what each destination would get (JSON); nothing is
    /// delivered or stored.
    Test(TestArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct TestArgs {
    /// The webhook id.
    pub(crate) id: String,
    /// The file holding the sample body (`-` for stdin; none: an empty body).
    #[arg(long)]
    pub(crate) body: Option<PathBuf>,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    pub(crate) headers: Vec<String>,
    /// The query string, without `?`.
    #[arg(long)]
    pub(crate) query: Option<String>,
    /// Also run the webhook's validators (signatures…) on the sample.
    #[arg(long)]
    pub(crate) verify: bool,
}
