//! `proxy-server`: the Anthropic Messages API on AWS Bedrock.
//!
//! Every setting is a flag and an environment variable (names kept from the Python proxy users
//! migrate from); a bad setting stops start-up with a message that names it.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser};

mod otel;

/// mimalloc rather than glibc malloc: per-thread heaps, no lock contention between tokio's worker
/// threads on the allocations every request makes (measured in docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => Err(format!("expected true or false, got `{other}`")),
    }
}

/// Read from the environment only, as by every AWS SDK; listed in `--help`.
const AFTER_HELP: &str = "\
AWS settings read from the environment, as every AWS SDK reads them:
  AWS_REGION / AWS_DEFAULT_REGION     region (or --region); decides the geography of Claude's profiles
  AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_WEB_IDENTITY_TOKEN_FILE, ...
                                      credentials (the standard chain: environment, profile, web identity,
                                      ECS, instance metadata)
  AWS_BEARER_TOKEN_BEDROCK            a Bedrock API key, sent as `Authorization: Bearer` instead of SigV4
  AWS_ENDPOINT_URL_BEDROCK_RUNTIME    Bedrock Runtime endpoint (e.g. bedrock-sim: http://127.0.0.1:8001)
  AWS_ENDPOINT_URL_BEDROCK_MANTLE     bedrock-mantle endpoint (the Messages API route on Mantle)
  AWS_ENDPOINT_URL_BEDROCK            Bedrock control plane endpoint (model listings)
  AWS_ENDPOINT_URL_DYNAMODB           DynamoDB endpoint (STORE_BACKEND=dynamodb)

OpenTelemetry traces, off unless an endpoint is set (read as every OpenTelemetry SDK reads them):
  OTEL_EXPORTER_OTLP_ENDPOINT         OTLP/HTTP collector (e.g. http://otel-collector:4318), protobuf
  OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_TIMEOUT,
  OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG, OTEL_BSP_*, OTEL_SDK_DISABLED

A bad setting stops start-up with one line naming it (exit status 2).";

/// The Anthropic Messages API on AWS Bedrock.
#[derive(Debug, Parser)]
#[command(name = "proxy-server", version, after_help = AFTER_HELP)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address served is printed).
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:8000")]
    listen: String,
    /// TOML config file: model routes ([[models]] with name, bedrock_id, api, endpoint;
    /// fallback_model; profile_prefix) and the price table for cost estimates ([prices."model"]
    /// input, output, cache_read, cache_write in USD per million tokens).
    #[arg(long, env = "PROXY_CONFIG")]
    config: Option<PathBuf>,
    /// AWS region (otherwise the standard AWS configuration chain decides).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
    /// Whether /v1/* needs an API key.
    #[arg(long, env = "REQUIRE_API_KEY", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    require_api_key: bool,
    /// An operator key accepted besides the store's keys (x-api-key or Authorization: Bearer).
    #[arg(long, env = "MASTER_API_KEY", hide_env_values = true)]
    master_api_key: Option<String>,
    /// Header that carries the API key (Authorization: Bearer is always accepted too).
    #[arg(long, env = "API_KEY_HEADER", default_value = "x-api-key")]
    api_key_header: String,
    /// Accept requests with tools.
    #[arg(long, env = "ENABLE_TOOL_USE", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    enable_tool_use: bool,
    /// Pass extended thinking settings on (otherwise they are removed).
    #[arg(long, env = "ENABLE_EXTENDED_THINKING", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    enable_extended_thinking: bool,
    /// Accept document blocks.
    #[arg(long, env = "ENABLE_DOCUMENT_SUPPORT", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    enable_document_support: bool,
    /// Turn cache_control into Bedrock cache points (otherwise they are removed).
    #[arg(long, env = "PROMPT_CACHING_ENABLED", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    prompt_caching_enabled: bool,
    /// Where claude-* model names found nowhere go (a name that routes); unset, they go to Bedrock as
    /// themselves.
    #[arg(long, env = "FALLBACK_MODEL")]
    fallback_model: Option<String>,
    /// Seconds to wait for Bedrock to answer (streams: to start).
    #[arg(long, env = "BEDROCK_TIMEOUT", default_value = "600")]
    bedrock_timeout: u64,
    /// Retries of a throttled or unavailable Bedrock call (429, 503, 500, a failed connection)
    /// before its answer starts, per target; 0 turns retries off (fallbacks still apply).
    #[arg(long, env = "BEDROCK_MAX_RETRIES", default_value = "2")]
    bedrock_max_retries: u32,
    /// Milliseconds a request may spend on retries and fallbacks (full-jitter backoff from 200 ms,
    /// doubling, at most 5 s a wait): no wait that would end past it starts.
    #[arg(long, env = "BEDROCK_RETRY_BUDGET_MS", default_value = "10000")]
    bedrock_retry_budget_ms: u64,
    /// Largest request body in bytes.
    #[arg(long, env = "MAX_BODY_BYTES", default_value = "33554432")]
    max_body_bytes: usize,
    /// Store backend for API keys and usage: `embedded` (a SQLite file shared with proxy-admin) or `dynamodb`.
    #[arg(long, env = "STORE_BACKEND", default_value = "embedded")]
    store_backend: String,
    /// The embedded store's file.
    #[arg(long, env = "STORE_PATH", default_value = "data/gateway.db")]
    store_path: PathBuf,
    /// Prefix of the DynamoDB tables (`{prefix}-api-keys`, `-usage`, `-cache`).
    #[arg(long, env = "DYNAMODB_TABLE_PREFIX", default_value = "anthropic-proxy")]
    dynamodb_table_prefix: String,
    /// Enforce per-key limits: requests per window, tokens per minute, monthly token budgets.
    #[arg(long, env = "RATE_LIMIT_ENABLED", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    rate_limit_enabled: bool,
    /// Requests per window for store keys without their own limit.
    #[arg(long, env = "RATE_LIMIT_REQUESTS", default_value = "100")]
    rate_limit_requests: u32,
    /// The window of RATE_LIMIT_REQUESTS, in seconds.
    #[arg(long, env = "RATE_LIMIT_WINDOW", default_value = "60")]
    rate_limit_window: u64,
    /// Answer identical deterministic requests (temperature 0, top_k 1, or the request header
    /// `x-proxy-cache: on`) of the same key from the store for CACHE_TTL seconds.
    #[arg(long, env = "CACHE_ENABLED", default_value = "false", value_parser = parse_bool, action = ArgAction::Set)]
    cache_enabled: bool,
    /// Seconds a cached response is served.
    #[arg(long, env = "CACHE_TTL", default_value = "3600")]
    cache_ttl: u64,
    /// Also list Bedrock's other (non-Claude) models by their ids in GET /v1/models.
    #[arg(long, env = "LIST_BEDROCK_MODELS", default_value = "true", value_parser = parse_bool, action = ArgAction::Set)]
    list_bedrock_models: bool,
    /// Seconds between reads of Bedrock's model catalog (ListFoundationModels,
    /// ListInferenceProfiles), from which the routes are built; 0: never read it, route with the
    /// built-in table of Claude models.
    #[arg(long, env = "MODEL_REFRESH_INTERVAL", default_value = "600")]
    model_refresh_interval: u64,
    /// Seconds of upstream silence after which a stream gets an SSE ping.
    #[arg(long, env = "SSE_PING_INTERVAL", default_value = "15")]
    sse_ping_interval: u64,
    /// Seconds requests in flight (streams included) get to finish after SIGTERM; streams still
    /// open then end with an SSE error, and their usage is recorded before exit [default: 30].
    #[arg(long, env = "DRAIN_TIMEOUT")]
    drain_timeout: Option<u64>,
    /// The former name of DRAIN_TIMEOUT (used when DRAIN_TIMEOUT is not set).
    #[arg(long, env = "SHUTDOWN_GRACE", hide = true)]
    shutdown_grace: Option<u64>,
    /// Seconds new connections are still accepted after SIGTERM (while /ready answers 503), before
    /// they are refused.
    #[arg(long, env = "DRAIN_ACCEPT_GRACE", default_value = "2")]
    drain_accept_grace: u64,
    /// At most this many client connections at once; beyond, a connection gets a 503
    /// (overloaded_error) and is closed. Keep it under half the process's descriptor limit.
    #[arg(long, env = "MAX_CONNECTIONS", default_value = "10000")]
    max_connections: usize,
    /// Seconds a client may take to send a request head (slowloris); the connection is then closed.
    #[arg(long, env = "HEADER_READ_TIMEOUT", default_value = "30")]
    header_read_timeout: u64,
    /// Seconds a client may take to send a whole request body; then a 408.
    #[arg(long, env = "BODY_READ_TIMEOUT", default_value = "60")]
    body_read_timeout: u64,
    /// Seconds a connection may stay open with no request in flight (keep-alive, or never used),
    /// or with a response that cannot be written (the client stopped reading).
    #[arg(long, env = "IDLE_TIMEOUT", default_value = "75")]
    idle_timeout: u64,
    /// Seconds a stream waits for Bedrock's first event; then an SSE error (timeout_error).
    #[arg(long, env = "STREAM_FIRST_EVENT_TIMEOUT", default_value = "300")]
    stream_first_event_timeout: u64,
    /// Seconds a stream waits between Bedrock's events; then an SSE error (timeout_error).
    #[arg(long, env = "STREAM_IDLE_TIMEOUT", default_value = "120")]
    stream_idle_timeout: u64,
    /// Log level: error, warn, info, debug, trace or off, or per-module directives such as
    /// `info,proxy_http=debug`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    log_level: String,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("proxy-server: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // One line per configuration error: no backtrace (RUST_BACKTRACE is often set on hosts), no
    // debug dump.
    match runtime.block_on(serve(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy-server: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

const LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace", "off"];

/// The log filter: a level, or comma-separated directives `[target=]level`. Anything else (a typo
/// such as `bogus`, which tracing would read as a target name and so log nothing) is refused.
fn log_filter(spec: &str) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    let refuse = || {
        anyhow::anyhow!(
            "LOG_LEVEL / --log-level: `{spec}` is not a log level: use one of {} or directives such as `info,proxy_http=debug`",
            LEVELS.join(", ")
        )
    };
    let directives: Vec<&str> = spec.split(',').map(str::trim).collect();
    let valid = directives.iter().all(|d| {
        let level = d.rsplit_once('=').map_or(
            *d,
            |(target, level)| {
                if target.is_empty() { "" } else { level }
            },
        );
        LEVELS.contains(&level.to_ascii_lowercase().as_str())
    });
    if !valid {
        return Err(refuse());
    }
    // Without a region, aws-config asks instance metadata and logs each failed try as a warning with
    // the whole response debug-printed; start-up then stops with one clear line instead (below).
    let quiet = if spec.contains("aws_config") {
        String::new()
    } else {
        ",aws_config::imds::region=error".to_owned()
    };
    tracing_subscriber::EnvFilter::try_new(format!("{spec}{quiet}")).map_err(|_| refuse())
}

/// Logs as LOG_LEVEL and LOG_FORMAT say, and with OpenTelemetry's variables set, request spans
/// exported over OTLP/HTTP: the fmt layer and the export layer then filter separately (the spans are
/// exported whatever the log level). Returns the tracer provider to shut down at exit.
fn init_tracing(
    args: &Args,
    filter: tracing_subscriber::EnvFilter,
) -> anyhow::Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>> {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let provider = otel::provider()?;
    let fmt = if args.log_format == "json" {
        tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    } else {
        use std::io::IsTerminal;
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed()
    };
    // Only the request spans and their Bedrock child: no log events (their messages may quote
    // Bedrock's answers), nothing of the SDKs.
    let spans = tracing_subscriber::filter::filter_fn(|m| {
        m.is_span()
            && (m.target() == "gateway_otel"
                || (m.target() == "proxy_http::service" && m.name() == "request"))
    });
    let export = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("proxy-server"))
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false)
        .with_filter(spans);
    tracing_subscriber::registry()
        .with(fmt)
        .with(export)
        .try_init()?;
    proxy_http::export_traces();
    Ok(Some(provider))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let filter = log_filter(&args.log_level)?;
    let tracer_provider = if otel::wanted() {
        init_tracing(&args, filter)?
    } else {
        init_logs(&args, filter);
        None
    };
    install_panic_hook();
    let outcome = serve_traced(args).await;
    if let Some(provider) = tracer_provider {
        // The batch exporter blocks while it flushes; its requests run on this runtime.
        let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    }
    outcome
}

/// Logs only (no OpenTelemetry variables): the subscriber as it always was.
fn init_logs(args: &Args, filter: tracing_subscriber::EnvFilter) {
    if args.log_format == "json" {
        tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        use std::io::IsTerminal;
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .init();
    }
}

async fn serve_traced(args: Args) -> anyhow::Result<()> {
    if args.master_api_key.as_deref().is_some_and(|k| k.len() < 16) {
        bail!("MASTER_API_KEY must be at least 16 characters");
    }
    if args.rate_limit_requests == 0 || args.rate_limit_window == 0 {
        bail!("RATE_LIMIT_REQUESTS and RATE_LIMIT_WINDOW must be at least 1");
    }
    let store = proxy_store::open(
        &args.store_backend,
        &args.store_path,
        &args.dynamodb_table_prefix,
    )
    .await
    .map_err(anyhow::Error::msg)?;
    if args.cache_enabled && args.cache_ttl == 0 {
        bail!("CACHE_TTL must be at least 1 second when CACHE_ENABLED is true");
    }
    if args.sse_ping_interval == 0 {
        bail!("SSE_PING_INTERVAL must be at least 1 second");
    }
    if args.bedrock_timeout == 0 {
        bail!("BEDROCK_TIMEOUT must be at least 1 second");
    }
    for (name, value) in [
        ("HEADER_READ_TIMEOUT", args.header_read_timeout),
        ("BODY_READ_TIMEOUT", args.body_read_timeout),
        ("IDLE_TIMEOUT", args.idle_timeout),
        (
            "STREAM_FIRST_EVENT_TIMEOUT",
            args.stream_first_event_timeout,
        ),
        ("STREAM_IDLE_TIMEOUT", args.stream_idle_timeout),
    ] {
        if value == 0 {
            bail!("{name} must be at least 1 second");
        }
    }
    if args.max_connections == 0 {
        bail!("MAX_CONNECTIONS must be at least 1");
    }
    let drain_timeout = args.drain_timeout.or(args.shutdown_grace).unwrap_or(30);
    if args.api_key_header.trim().is_empty() || http_header_invalid(&args.api_key_header) {
        bail!(
            "API_KEY_HEADER `{}` is not a valid header name",
            args.api_key_header
        );
    }
    let mut prices = proxy_store::PriceTable::default();
    let mut routing: proxy_bedrock::RoutingConfig = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("PROXY_CONFIG / --config: cannot read {}", path.display())
            })?;
            let invalid = || {
                format!(
                    "PROXY_CONFIG / --config: {} is not a valid config",
                    path.display()
                )
            };
            let mut doc: toml::Table = toml::from_str(&text).with_context(invalid)?;
            // The price table: cost estimates in /metrics here, and in `proxy-admin usage`. The rest
            // of the file is the routing.
            prices = proxy_store::PriceTable::take_from(&mut doc)
                .map_err(|e| anyhow::anyhow!("PROXY_CONFIG / --config: {}: {e}", path.display()))?;
            doc.try_into().with_context(invalid)?
        }
        None => proxy_bedrock::RoutingConfig::default(),
    };
    if let Some(f) = args.fallback_model {
        routing.fallback_model = Some(f);
    }
    let config_error = |e: String| match &args.config {
        Some(path) => anyhow::anyhow!("PROXY_CONFIG / --config: {}: {e}", path.display()),
        None => anyhow::anyhow!("{e}"),
    };
    routing.check().map_err(config_error)?;
    let bedrock =
        proxy_bedrock::Bedrock::from_env(args.region, Duration::from_secs(args.bedrock_timeout))
            .await
            .with_retry(proxy_bedrock::RetryPolicy {
                max_retries: args.bedrock_max_retries,
                budget: Duration::from_millis(args.bedrock_retry_budget_ms),
                ..proxy_bedrock::RetryPolicy::default()
            });
    // The Messages API route needs the signed client (a region, credentials or a Bedrock API key):
    // found at start rather than on the first request.
    if let Some(m) = routing
        .models
        .iter()
        .find(|m| m.api == proxy_bedrock::Api::Messages)
        && let Err(e) = bedrock.messages_api()
    {
        return Err(config_error(format!(
            "[[models]] `{}`: api = \"messages\" cannot be served: {e}",
            m.name
        )));
    }
    let Some(region) = bedrock.region() else {
        bail!(
            "AWS_REGION is not set, and neither the AWS profile nor instance metadata names a region: set AWS_REGION or --region"
        );
    };
    let router = proxy_bedrock::Router::new(routing, &region);
    if let Some(f) = router_fallback_error(&router) {
        bail!("fallback_model / FALLBACK_MODEL: {f}");
    }
    let settings = proxy_http::Settings {
        require_api_key: args.require_api_key,
        master_api_key: args.master_api_key,
        api_key_header: args.api_key_header.to_ascii_lowercase(),
        enable_tool_use: args.enable_tool_use,
        enable_extended_thinking: args.enable_extended_thinking,
        enable_document_support: args.enable_document_support,
        prompt_caching: args.prompt_caching_enabled,
        max_body_bytes: args.max_body_bytes,
        ping_interval: Duration::from_secs(args.sse_ping_interval),
        rate_limit_enabled: args.rate_limit_enabled,
        default_rate_limit: Some(proxy_http::Limit {
            limit: args.rate_limit_requests,
            window: Duration::from_secs(args.rate_limit_window),
        }),
        cache_ttl: args
            .cache_enabled
            .then(|| Duration::from_secs(args.cache_ttl)),
        prices,
        list_bedrock_models: args.list_bedrock_models,
        max_connections: args.max_connections,
        header_read_timeout: Duration::from_secs(args.header_read_timeout),
        body_read_timeout: Duration::from_secs(args.body_read_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        stream_first_event_timeout: Duration::from_secs(args.stream_first_event_timeout),
        stream_idle_timeout: Duration::from_secs(args.stream_idle_timeout),
        drain_accept_grace: Duration::from_secs(args.drain_accept_grace),
        drain_timeout: Duration::from_secs(drain_timeout),
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("LISTEN_ADDR / --listen: cannot bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "proxy-server listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, %region, "serving");
    warn_about_descriptors(args.max_connections);
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
        tracing::info!("shutting down: draining open requests");
    };
    let gateway = proxy_http::Gateway::new(settings, router, bedrock, Some(store));
    if args.model_refresh_interval > 0 {
        gateway.spawn_model_refresh(Duration::from_secs(args.model_refresh_interval));
    }
    proxy_http::run(listener, gateway.clone(), shutdown).await?;
    // Every served request's usage is stored before the process exits.
    gateway.flush_usage().await;
    tracing::info!("usage flushed; bye");
    Ok(())
}

/// Each client connection can hold a second descriptor (its Bedrock call): a limit of connections
/// above half the process's descriptor limit lets a flood exhaust descriptors before it is refused.
fn warn_about_descriptors(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse::<usize>().ok());
    if let Some(soft) = soft
        && max_connections.saturating_mul(2) > soft
    {
        tracing::warn!(
            max_connections,
            open_files_limit = soft,
            "MAX_CONNECTIONS is above half the descriptor limit (ulimit -n): raise the limit or lower MAX_CONNECTIONS"
        );
    }
}

/// A panic anywhere is one log line (where, and the message), whatever RUST_BACKTRACE says: the
/// request tasks turn theirs into a 500 (and count them); no client input should reach one.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(%location, %message, "panic");
    }));
}

fn http_header_invalid(name: &str) -> bool {
    !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
}

/// A fallback that does not itself route is a configuration error, found at start rather than on
/// the first request.
fn router_fallback_error(router: &proxy_bedrock::Router) -> Option<String> {
    router.fallback_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_are_checked() {
        for ok in [
            "info",
            "WARN",
            "off",
            "info,proxy_http=debug",
            "aws_config=error",
        ] {
            assert!(log_filter(ok).is_ok(), "{ok}");
        }
        for bad in ["bogus", "", "info,", "=debug", "proxy_http=loud", "inf"] {
            let e = log_filter(bad).unwrap_err().to_string();
            assert!(e.starts_with("LOG_LEVEL / --log-level: "), "{e}");
        }
    }
}
