//! `webhook-server`: receive webhooks, verify them, deliver them.

mod cli;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{CommandFactory, FromArgMatches};
use ipnet::IpNet;
use tokio::net::TcpListener;
use webhook_core::config::{Config, ConfigSource, Env};
use webhook_core::{Pipeline, PipelineOptions, Registry};
use webhook_server::connection::{self, ConnectionLimits};
use webhook_server::live::{ConfigFiles, LivePipeline};
use webhook_server::logging;
use webhook_server::registry;
use webhook_server::server::{self, ServerOptions};

use crate::cli::{Cli, Command, DeadLetterCommand, TestArgs};

/// mimalloc: per-thread free lists, so buffers freed on another thread than the one that
/// allocated them (request tasks ↔ the spool writer) do not contend on glibc's arena locks.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The config served when no webhooks file is given or found: a `demo` webhook logging
/// what it receives, and `demo-signed` that needs a GitHub-style signature.
const DEFAULT_WEBHOOKS: &str = include_str!("../config/default-webhooks.json");

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
