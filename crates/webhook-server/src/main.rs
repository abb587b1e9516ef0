//! `webhook-server`: receive webhooks, verify them, deliver them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use ipnet::IpNet;
use tokio::net::TcpListener;
use webhook_core::config::{Config, ConfigSource, Env};
use webhook_core::{Pipeline, PipelineOptions, Registry};
use webhook_server::connection::{self, ConnectionLimits};
use webhook_server::live::{ConfigFiles, LivePipeline};
use webhook_server::logging::{self, LogFormat};
use webhook_server::registry;
use webhook_server::server::{self, ServerOptions};

/// mimalloc: per-thread free lists, so buffers freed on another thread than the one that
/// allocated them (request tasks ↔ the spool writer) do not contend on glibc's arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config served when no webhooks file is given or found: a `demo` webhook logging
/// what it receives, and `demo-signed` that needs a GitHub-style signature.
const DEFAULT_WEBHOOKS: &str = include_str!("../config/default-webhooks.json");

#[derive(Debug, Parser)]
#[command(
    name = "webhook-server",
    about = "Receive webhooks, verify them and deliver them without losing one"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// webhooks.json; default: ./webhooks.json if present, else the embedded demo config.
    #[arg(long, env = "WEBHOOKS_CONFIG_FILE", global = true)]
    webhooks_config: Option<PathBuf>,

    /// connections.json; default: ./connections.json if present.
    #[arg(long, env = "CONNECTIONS_CONFIG_FILE", global = true)]
    connections_config: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "0.0.0.0", global = true)]
    host: String,

    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8000, global = true)]
    port: u16,

    /// Directory that relative destination paths resolve against and may not leave.
    #[arg(long, env = "WEBHOOK_DATA_DIR", default_value = ".", global = true)]
    data_dir: PathBuf,

    /// Largest accepted request body in bytes.
    #[arg(long, env = "WEBHOOK_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024, global = true)]
    max_body_bytes: usize,

    /// Most connections open at once; default: 80 % of the file-descriptor limit (raised to
    /// its hard limit at start-up) less 64.
    #[arg(long, env = "WEBHOOK_MAX_CONNECTIONS", global = true)]
    max_connections: Option<usize>,

    /// Seconds a connection may stay open without a request in flight (before its first
    /// request, and between requests).
    #[arg(
        long,
        env = "WEBHOOK_IDLE_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    idle_timeout: u64,

    /// Seconds a client may take to send its request headers.
    #[arg(
        long,
        env = "WEBHOOK_HEADER_READ_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    header_read_timeout: u64,

    /// Largest request header block in bytes (HTTP/1 and HTTP/2); more is answered 431.
    #[arg(long, env = "WEBHOOK_MAX_HEADER_BYTES", default_value_t = 32 * 1024, global = true)]
    max_header_bytes: usize,

    /// Seconds a body may take before the minimum rate applies; a body not complete within
    /// this + bytes / --min-body-rate is answered 408.
    #[arg(
        long,
        env = "WEBHOOK_BODY_READ_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    body_read_timeout: u64,

    /// Bytes per second a slow body must keep up after --body-read-timeout (0 = none).
    #[arg(long, env = "WEBHOOK_MIN_BODY_RATE", default_value_t = 8 * 1024, global = true)]
    min_body_rate: u64,

    /// Request-body bytes held in memory across all requests; past it new bodies get 503 +
    /// Retry-After.
    #[arg(long, env = "WEBHOOK_MAX_INFLIGHT_BODY_BYTES", default_value_t = 256 << 20, global = true)]
    max_inflight_body_bytes: u64,

    /// Proxies (IPs or CIDRs, comma separated) whose X-Forwarded-For is believed.
    #[arg(
        long,
        env = "WEBHOOK_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    trusted_proxies: Vec<String>,

    /// Log format.
    #[arg(
        long,
        env = "WEBHOOK_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

    /// Seconds in-flight requests may take to finish after SIGTERM/SIGINT.
    #[arg(
        long,
        env = "WEBHOOK_DRAIN_TIMEOUT",
        default_value_t = 30,
        global = true
    )]
    drain_timeout: u64,

    /// Do not serve `GET /metrics` (Prometheus text format).
    #[arg(long, env = "WEBHOOK_NO_METRICS", global = true)]
    no_metrics: bool,

    /// Require `Authorization: Bearer <token>` on `/metrics`, `/stats`, `/openapi.json`,
    /// `/health`'s details and `/admin/*`. Prefer --ops-token-file: a flag is visible in
    /// `ps`.
    #[arg(long, env = "WEBHOOK_OPS_TOKEN", global = true, hide_env_values = true)]
    ops_token: Option<String>,

    /// Read the ops token from this file (its first line).
    #[arg(
        long,
        env = "WEBHOOK_OPS_TOKEN_FILE",
        global = true,
        conflicts_with = "ops_token"
    )]
    ops_token_file: Option<PathBuf>,

    /// Serve `/openapi.json` to anyone even with an ops token set.
    #[arg(long, env = "WEBHOOK_PUBLIC_OPENAPI", global = true)]
    public_openapi: bool,

    /// Serve the embedded demo config (a `demo` webhook without authentication and
    /// `demo-signed`, whose secret is public) even when config files exist.
    #[arg(long, global = true)]
    demo: bool,

    /// Check the config files every N seconds and reload when their contents changed
    /// (follows symlinks, so a Kubernetes ConfigMap update is seen); 0 = off.
    #[arg(long, env = "WEBHOOK_WATCH_CONFIG", default_value_t = 0, global = true)]
    watch_config: u64,

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
    shared_redis_url: Option<String>,

    /// Keep the `/stats` counters in Redis (`redis://[:password@]host:port/db`), shared by
    /// every instance using the same Redis and kept across restarts.
    #[arg(
        long,
        env = "WEBHOOK_STATS_REDIS_URL",
        global = true,
        hide_env_values = true
    )]
    stats_redis_url: Option<String>,

    /// Key prefix of the Redis `/stats` counters.
    #[arg(
        long,
        env = "WEBHOOK_STATS_REDIS_PREFIX",
        default_value = "webhook-gateway:stats",
        global = true
    )]
    stats_redis_prefix: String,

    /// Networks (IPs or CIDRs, comma separated) allowed to use `/metrics`, `/stats` and
    /// `/admin/*`; default: any.
    #[arg(long, env = "WEBHOOK_OPS_ALLOW", value_delimiter = ',', global = true)]
    ops_allow: Vec<String>,

    /// Serve `/metrics` on this address instead of the webhook port (e.g. 127.0.0.1:9100).
    #[arg(long, env = "WEBHOOK_METRICS_LISTEN", global = true)]
    metrics_listen: Option<String>,

    /// Do not serve `GET /openapi.json`.
    #[arg(long, env = "WEBHOOK_NO_OPENAPI", global = true)]
    no_openapi: bool,

    /// Directory of the durable spool (`ack: persisted` webhooks) and its dead letters.
    #[arg(
        long,
        env = "WEBHOOK_SPOOL_DIR",
        default_value = "spool",
        global = true
    )]
    spool_dir: PathBuf,

    /// A spool shared by several instances instead of the local directory:
    /// `postgres://user:password@host:port/database` (the tables are created and migrated
    /// at start). `persisted` answers 2xx once PostgreSQL committed; any instance delivers
    /// what one that stopped left, and the dead letters are the cluster's.
    #[arg(long, env = "WEBHOOK_SPOOL", global = true, hide_env_values = true)]
    spool: Option<String>,

    /// With --spool postgres://…: seconds an instance's entries stay its own without a
    /// heartbeat; after a crash the others deliver them this long after its last one.
    #[arg(long, env = "WEBHOOK_SPOOL_LEASE", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    spool_lease: u64,

    /// Keep a request history (every request, its reason, its delivery attempts) for
    /// `/admin/requests`: `auto` (on when an ops token is set), `on` or `off`.
    #[arg(long, env = "WEBHOOK_HISTORY", default_value = "auto", value_parser = ["auto", "on", "off"], global = true)]
    history: String,

    /// The request history's SQLite file (default: `history.sqlite` beside the spool
    /// directory).
    #[arg(long, env = "WEBHOOK_HISTORY_FILE", global = true)]
    history_file: Option<PathBuf>,

    /// Most requests the history keeps (the oldest go first).
    #[arg(long, env = "WEBHOOK_HISTORY_MAX_ENTRIES", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    history_max_entries: u64,

    /// Oldest request the history keeps, in seconds (default 7 days).
    #[arg(long, env = "WEBHOOK_HISTORY_MAX_AGE", default_value_t = 604_800, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    history_max_age: u64,

    /// Most bytes the spool may take; past it, persisted webhooks get 503 + Retry-After.
    #[arg(long, env = "WEBHOOK_SPOOL_MAX_BYTES", default_value_t = 1 << 30, global = true)]
    spool_max_bytes: u64,

    /// Most of the spool one webhook's pending entries may take, in percent; past it that
    /// webhook gets 503 while the others go on.
    #[arg(long, env = "WEBHOOK_SPOOL_WEBHOOK_SHARE", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=100), global = true)]
    spool_webhook_share: u8,

    /// Most bytes the dead letters may take (a quota of their own); default a quarter of
    /// --spool-max-bytes. Past it, deliveries given up stay pending in the spool.
    #[arg(long, env = "WEBHOOK_DEAD_LETTER_MAX_BYTES", global = true)]
    dead_letter_max_bytes: Option<u64>,

    /// Delete dead letters older than this many seconds (default: keep them).
    #[arg(long, env = "WEBHOOK_DEAD_LETTER_TTL", global = true)]
    dead_letter_ttl: Option<u64>,

    /// How the spool makes a group durable: `direct` (O_DIRECT + O_DSYNC writes, falling
    /// back to `fdatasync` where the file system refuses direct I/O) or `fdatasync`
    /// (buffered writes + fdatasync).
    #[arg(long, env = "WEBHOOK_SPOOL_SYNC", default_value = "direct", value_parser = ["direct", "fdatasync"], global = true)]
    spool_sync: String,

    /// Most background deliveries in flight per destination.
    #[arg(
        long,
        env = "WEBHOOK_DESTINATION_CONCURRENCY",
        default_value_t = 64,
        global = true
    )]
    destination_concurrency: usize,

    /// Base URL of the running server for `dead-letters` (default: http://127.0.0.1:PORT).
    #[arg(long, env = "WEBHOOK_ADMIN_URL", global = true)]
    admin_url: Option<String>,
}

#[derive(Debug, Clone, Subcommand)]
enum DeadLetterCommand {
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
enum Command {
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
struct TestArgs {
    /// The webhook id.
    id: String,
    /// The file holding the sample body (`-` for stdin; none: an empty body).
    #[arg(long)]
    body: Option<PathBuf>,
    /// A request header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// The query string, without `?`.
    #[arg(long)]
    query: Option<String>,
    /// Also run the webhook's validators (signatures…) on the sample.
    #[arg(long)]
    verify: bool,
}

fn main() -> std::process::ExitCode {
    // A jq worker (a copy of this executable the server started) serves and exits here.
    #[cfg(feature = "jq")]
    webhook_jq::serve_if_worker();
    let registry = registry::registry();
    let command = Cli::command().version(registry::describe(&registry));
    let cli = match Cli::from_arg_matches(&command.get_matches()) {
        Ok(cli) => cli,
        Err(err) => err.exit(),
    };
    let log_output = (!matches!(
        cli.command,
        Some(Command::Openapi | Command::DeadLetters(_) | Command::Test(_))
    ))
    .then(|| logging::init(cli.log_format));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(cli, registry));
    if let Some(log_output) = log_output {
        log_output.flush();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, registry: Registry) -> Result<()> {
    if let Some(Command::DeadLetters(command)) = &cli.command {
        return dead_letters(&cli, command).await;
    }
    let options = pipeline_options(&cli)?;
    if let Some(url) = &cli.shared_redis_url {
        if !cfg!(feature = "redis") {
            bail!("--shared-redis-url needs Redis support: rebuild with `--features redis`");
        }
        // before the config is built: the validators read it then
        webhook_validators::shared_redis::set_default_url(url);
    }
    let (config, webhooks_text) = load_config(&cli, &registry)?;
    let openapi = webhook_server::openapi::document(&webhooks_text);
    match cli.command.as_ref().unwrap_or(&Command::Serve) {
        Command::CheckConfig => {
            config.validate(&options)?;
            print_summary(&config);
            Ok(())
        }
        Command::Openapi => {
            print_document(&openapi);
            Ok(())
        }
        Command::Serve => serve(&cli, config, options, openapi, registry).await,
        Command::Test(args) => test_sample(&config, args, options.max_json_depth).await,
        Command::DeadLetters(_) => Ok(()),
    }
}

#[allow(clippy::print_stdout)]
fn print_document(document: &serde_json::Value) {
    match serde_json::to_string_pretty(document) {
        Ok(text) => println!("{text}"),
        Err(_) => println!("{document}"),
    }
}

/// `test ID --body FILE -H 'K: V'`: the dry run of a sample, printed as JSON.
async fn test_sample(config: &Config, args: &TestArgs, max_json_depth: usize) -> Result<()> {
    let body = match &args.body {
        None => Vec::new(),
        Some(path) if path.as_os_str() == "-" => {
            let mut body = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut body)
                .context("cannot read the body from stdin")?;
            body
        }
        Some(path) => std::fs::read(path)
            .with_context(|| format!("cannot read the body file {}", path.display()))?,
    };
    let body = String::from_utf8(body).context("the body file is not UTF-8 text")?;
    let mut headers = std::collections::BTreeMap::new();
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            anyhow::bail!("-H `{header}`: give `Name: value`");
        };
        headers.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    let sample = webhook_core::Sample {
        method: None,
        query: args.query.clone(),
        headers,
        body: serde_json::Value::String(body),
        verify: args.verify,
    };
    let report = config.dry_run(&args.id, sample, max_json_depth).await?;
    print_document(&report);
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_summary(config: &Config) {
    println!("configuration is valid");
    for summary in config.summaries() {
        println!(
            "  {} ({}): validators [{}] -> destinations [{}]",
            summary.id,
            summary.data_type.as_str(),
            summary.validators.join(", "),
            summary.destinations.join(", ")
        );
    }
}

async fn serve(
    cli: &Cli,
    config: Config,
    options: PipelineOptions,
    openapi: serde_json::Value,
    registry: Registry,
) -> Result<()> {
    let ops_token = ops_token(cli)?;
    let ids: Vec<String> = config.webhook_ids().map(str::to_owned).collect();
    if !cli.no_metrics {
        // The pipeline registers its metric handles when it is built: recorder first.
        let _ = webhook_server::metrics::install();
    }
    let mut options = options;
    if let Some(url) = cli
        .stats_redis_url
        .as_ref()
        .or(cli.shared_redis_url.as_ref())
    {
        options.stats_store = Some(stats_store(url, &cli.stats_redis_prefix).await?);
    }
    if let Some(url) = &cli.spool {
        options.shared_spool = Some(shared_spool(url).await?);
        options.shared_spool_options.lease = Duration::from_secs(cli.spool_lease);
    }
    let history = history(cli, ops_token.is_some())?;
    options.history = history.as_ref().map(webhook_history::History::sink);
    let pipeline = Pipeline::build(config, options.clone()).await?;
    let drain_timeout = Duration::from_secs(cli.drain_timeout);
    let live = Arc::new(match config_files(cli) {
        Some(files) => LivePipeline::from_files(pipeline, files, registry, options, drain_timeout),
        None => LivePipeline::fixed(pipeline),
    });
    let addr: SocketAddr = format!("{}:{}", bracket_v6(&cli.host), cli.port)
        .parse()
        .with_context(|| format!("invalid listen address {}:{}", cli.host, cli.port))?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(address = %listener.local_addr()?, webhooks = ?ids, "listening");
    let ops_allow = parse_nets("--ops-allow", &cli.ops_allow)?;
    let limits = connection_limits(cli);
    let options = ServerOptions {
        limits,
        drain_timeout: Duration::from_secs(cli.drain_timeout),
        metrics: !cli.no_metrics && cli.metrics_listen.is_none(),
        ops_allow,
        ops_token: ops_token.as_deref().and_then(server::OpsToken::new),
        public_openapi: cli.public_openapi,
        openapi: (!cli.no_openapi).then(|| bytes::Bytes::from(openapi.to_string())),
        health_cache: webhook_server::health::HEALTH_CACHE_TTL,
        history,
        ..ServerOptions::default()
    };
    if let (Some(address), false) = (&cli.metrics_listen, cli.no_metrics) {
        let metrics_listener = TcpListener::bind(address)
            .await
            .with_context(|| format!("cannot listen on {address} (--metrics-listen)"))?;
        tracing::info!(address = %metrics_listener.local_addr()?, "serving /metrics");
        tokio::spawn(server::serve_metrics(
            metrics_listener,
            Arc::new(options.clone()),
        ));
    }
    reload_on_sighup(Arc::clone(&live));
    if cli.watch_config > 0 {
        tokio::spawn(Arc::clone(&live).watch(Duration::from_secs(cli.watch_config)));
    }
    server::serve(listener, live, options, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(feature = "redis")]
async fn stats_store(url: &str, prefix: &str) -> Result<Arc<dyn webhook_core::stats::StatsStore>> {
    let store = webhook_redis::stats::RedisStats::connect(url, prefix)
        .await
        .map_err(anyhow::Error::msg)?;
    Ok(store)
}

#[cfg(not(feature = "redis"))]
async fn stats_store(
    _url: &str,
    _prefix: &str,
) -> Result<Arc<dyn webhook_core::stats::StatsStore>> {
    bail!("--stats-redis-url needs Redis support: rebuild with `--features redis`")
}

#[cfg(feature = "spool-postgres")]
async fn shared_spool(url: &str) -> Result<Arc<dyn webhook_core::spool::shared::SharedSpool>> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        bail!(
            "--spool {}: only postgres:// (or postgresql://) URLs name a shared spool; the local spool is --spool-dir",
            webhook_core::url_for_logs(url)
        );
    }
    let spool = webhook_spool_postgres::PgSpool::connect(url)
        .await
        .map_err(|err| anyhow::anyhow!("--spool: {err}"))?;
    Ok(Arc::new(spool))
}

#[cfg(not(feature = "spool-postgres"))]
async fn shared_spool(_url: &str) -> Result<Arc<dyn webhook_core::spool::shared::SharedSpool>> {
    bail!("--spool postgres://… needs the shared spool: rebuild with `--features spool-postgres`")
}

/// SIGHUP: reload the config files (errors are logged; the old config keeps serving).
fn reload_on_sighup(live: Arc<LivePipeline>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangup.recv().await.is_some() {
            match live.reload().await {
                Ok(report) => tracing::info!(webhooks = ?report.webhooks, "SIGHUP: reloaded"),
                Err(err) => {
                    tracing::error!(error = %err, "SIGHUP: reload refused; the old configuration keeps serving");
                }
            }
        }
    });
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// IPs or CIDRs from a comma-separated flag.
fn parse_nets(flag: &str, entries: &[String]) -> Result<Vec<IpNet>> {
    let mut nets = Vec::new();
    for entry in entries.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let net = entry
            .parse::<IpNet>()
            .or_else(|_| entry.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                anyhow::anyhow!("{flag}: `{entry}` is neither an IP address nor a CIDR")
            })?;
        nets.push(net);
    }
    Ok(nets)
}

fn connection_limits(cli: &Cli) -> ConnectionLimits {
    let (fd_limit, default_cap) = connection::default_max_connections();
    let max_connections = cli.max_connections.unwrap_or(default_cap).max(1);
    tracing::info!(
        max_connections,
        fd_limit,
        idle_timeout_s = cli.idle_timeout,
        "connection limits"
    );
    ConnectionLimits {
        max_connections,
        idle_timeout: Duration::from_secs(cli.idle_timeout.max(1)),
        header_read_timeout: Duration::from_secs(cli.header_read_timeout.max(1)),
        max_header_bytes: cli.max_header_bytes.max(1024),
        ..ConnectionLimits::default()
    }
}

fn pipeline_options(cli: &Cli) -> Result<PipelineOptions> {
    let trusted_proxies = parse_nets("--trusted-proxies", &cli.trusted_proxies)?;
    if cli.max_body_bytes == 0 {
        bail!("--max-body-bytes must be at least 1");
    }
    // a spool frame stores lengths as u32
    if cli.max_body_bytes as u64 > u64::from(u32::MAX) - (1 << 20) {
        bail!("--max-body-bytes must be below 4 GiB");
    }
    if (cli.max_body_bytes as u64) > cli.max_inflight_body_bytes {
        bail!(
            "--max-inflight-body-bytes ({}) must be at least --max-body-bytes ({})",
            cli.max_inflight_body_bytes,
            cli.max_body_bytes
        );
    }
    Ok(PipelineOptions {
        max_body_bytes: cli.max_body_bytes,
        trusted_proxies,
        data_dir: cli.data_dir.clone(),
        spool: webhook_core::SpoolOptions {
            dir: cli.spool_dir.clone(),
            max_bytes: cli.spool_max_bytes,
            direct_io: cli.spool_sync == "direct",
            webhook_share_percent: cli.spool_webhook_share,
            dead_letter_max_bytes: cli.dead_letter_max_bytes.unwrap_or(cli.spool_max_bytes / 4),
            dead_letter_ttl: cli.dead_letter_ttl.map(Duration::from_secs),
            ..webhook_core::SpoolOptions::default()
        },
        destination_concurrency: cli.destination_concurrency.max(1),
        body_read_timeout: Duration::from_secs(cli.body_read_timeout),
        min_body_rate: cli.min_body_rate,
        body_budget: webhook_core::BodyBudget::new(cli.max_inflight_body_bytes),
        ..PipelineOptions::default()
    })
}

/// The request history, when `--history` (or an ops token with `auto`) turns it on.
fn history(cli: &Cli, has_ops_token: bool) -> Result<Option<webhook_history::History>> {
    let on = match cli.history.as_str() {
        "on" => true,
        "off" => false,
        _ => has_ops_token,
    };
    if !on {
        return Ok(None);
    }
    let path = cli.history_file.clone().unwrap_or_else(|| {
        let dir = cli.spool_dir.parent().filter(|p| !p.as_os_str().is_empty());
        dir.map_or_else(
            || PathBuf::from("history.sqlite"),
            |d| d.join("history.sqlite"),
        )
    });
    let options = webhook_history::HistoryOptions {
        max_entries: cli.history_max_entries,
        max_age: Duration::from_secs(cli.history_max_age),
        ..webhook_history::HistoryOptions::default()
    };
    let history = webhook_history::History::open(&path, options)
        .with_context(|| format!("--history-file {}", path.display()))?;
    tracing::info!(file = %path.display(), max_entries = cli.history_max_entries, max_age_s = cli.history_max_age, "request history on");
    Ok(Some(history))
}

/// The config files in use: given, or found in the working directory; `None` when the
/// embedded demo config is served.
fn config_files(cli: &Cli) -> Option<ConfigFiles> {
    if cli.demo {
        return None;
    }
    ConfigFiles::find(
        cli.webhooks_config.as_deref(),
        cli.connections_config.as_deref(),
    )
}

fn load_config(cli: &Cli, registry: &Registry) -> Result<(Config, String)> {
    if let Some(files) = config_files(cli) {
        let loaded = files.load(registry)?;
        return Ok((loaded.config, loaded.webhooks_text));
    }
    if !cli.demo {
        tracing::error!(
            "NO CONFIGURATION: no --webhooks-config given and no ./webhooks.json found, so the embedded DEMO config is served: \
             `demo` has no authentication and `demo-signed`'s secret is public. Give a config, or pass --demo to mean it"
        );
    }
    let webhooks = ConfigSource::new("<embedded default webhooks.json>", DEFAULT_WEBHOOKS);
    let connections = cli
        .connections_config
        .as_deref()
        .map(ConfigSource::read)
        .transpose()?;
    let config =
        webhook_core::config::parse(registry, &webhooks, connections.as_ref(), &Env::process())?;
    Ok((config, webhooks.text().to_owned()))
}

/// The ops token from --ops-token or --ops-token-file; an empty one is an error (it would
/// silently mean "no token").
fn ops_token(cli: &Cli) -> Result<Option<String>> {
    let token = match (&cli.ops_token, &cli.ops_token_file) {
        (Some(token), _) => Some(token.clone()),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("--ops-token-file {}", file.display()))?;
            Some(text.lines().next().unwrap_or("").trim().to_owned())
        }
        (None, None) => None,
    };
    if token.as_deref().is_some_and(str::is_empty) {
        bail!(
            "the ops token (--ops-token, WEBHOOK_OPS_TOKEN or --ops-token-file) is empty; leave it unset for no token"
        );
    }
    Ok(token)
}

/// `dead-letters list|replay ID|delete ID`: ask the running server's admin API.
#[allow(clippy::print_stdout)]
async fn dead_letters(cli: &Cli, command: &DeadLetterCommand) -> Result<()> {
    let base = cli
        .admin_url
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", cli.port));
    let (method, path) = match command {
        DeadLetterCommand::List => (http::Method::GET, "/admin/dead-letters".to_owned()),
        DeadLetterCommand::Replay { id } => (
            http::Method::POST,
            format!("/admin/dead-letters/{id}/replay"),
        ),
        DeadLetterCommand::Delete { id } => {
            (http::Method::DELETE, format!("/admin/dead-letters/{id}"))
        }
    };
    let token = ops_token(cli)?;
    let (status, body) =
        webhook_server::admin_client::request(&base, method, &path, token.as_deref()).await?;
    let text = String::from_utf8_lossy(&body);
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_string())
        ),
        Err(_) => println!("{text}"),
    }
    if !status.is_success() {
        bail!("{base}{path} answered {status}");
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
