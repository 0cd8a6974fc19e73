//! `bedrock-sim`: a local AWS Bedrock Runtime emulator that speaks the real AWS wire protocol.
//!
//! Point an AWS SDK at it (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME=http://127.0.0.1:8001`, any static
//! credentials) and it answers Converse, ConverseStream, InvokeModel(-WithResponseStream),
//! CountTokens, ListFoundationModels and ListInferenceProfiles with deterministic, scriptable replies,
//! and Bedrock's Anthropic Messages API on the runtime (`/anthropic/...`) and Mantle
//! (`/mantle/anthropic/...`) paths.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

const AFTER_HELP: &str = "\
SCRIPTING
  Directives script a reply: `key` or `key=value` words. Sources, later overriding earlier:
  --defaults, per-model [[rule]] tables in --config, the `x-bedrock-sim` request header, and a
  marker `[sim ...]` in the last user message (the one that reaches the emulator through a proxy).

  reply='text'        reply with this text       words=N          reply with N words
  tool | tool=NAME    call the first/named tool  tools=N          N parallel tool calls
  input='{...}'       tool input JSON            thinking         a signed reasoning block first
  redacted            a redacted reasoning block stop=REASON      force the stop reason
  cache_read=N        cache read tokens          cache_write=N    cache write tokens
  error=KIND          fail with an HTTP error    stream_error=KIND after=N   exception after N events
  ttfb_ms=N           delay before the response  delay_ms=N       delay between stream events

  Transport faults, after N stream events (after=N, default 2):
  reset after=N       TCP reset (SO_LINGER 0, then close); a plain call is reset before its response
  truncate after=N    half a frame, then close; a plain call gets half its body
  bad_crc after=N     a frame with a wrong message CRC (streams only)
  oversize after=N    a prelude claiming a frame over 16 MiB, then nothing (streams only)
  stall after=N       no more bytes, connection kept open; a plain call is never answered
  On the Messages API (plain SSE, no CRC): bad_crc is an event whose data is not JSON, oversize a
  data line of 16 MiB + 1 byte.
  fail_first=N        the faults of this marker (error=, stream_error=, the five above) hit its first
                      N requests only; keyed by the whole marker: add a nonce such as id=abc
  expired_key=AKID    403 ExpiredTokenException for requests signed with access key AKID

  KIND: validation access_denied not_found throttling quota not_ready timeout model_error internal
        unavailable model_stream_error

  Example: curl ... -d '{\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"hi [sim tool thinking]\"}]}]}'

ANTHROPIC MESSAGES API
  POST /anthropic/v1/messages                  bedrock-runtime: profile ids (us., eu., global., ...) and
                                               ARNs; a bare id of a profile-only model gets Bedrock's
                                               \"on-demand throughput isn't supported\" 400
  POST /mantle/anthropic/v1/messages           bedrock-mantle: bare ids only (anthropic.claude-opus-4-8);
  POST /mantle/anthropic/v1/messages/count_tokens   profile ids and ARNs get 404 not_found_error
  Body and answers are Anthropic's (stream: true gives plain SSE); errors use Anthropic's envelope.
  A request is for Mantle when its path starts with /mantle (Mantle base URL http://HOST:PORT/mantle)
  or its SigV4 scope names bedrock-mantle. Auth: SigV4 (bedrock or bedrock-mantle), Authorization:
  Bearer, or x-api-key; none (or two at once) is a 401 authentication_error. Runtime answers other
  /anthropic routes (count_tokens included) with 200 and an UnknownOperationException body.
  Refused everywhere, as Bedrock does: first-party-only betas (claude-code-*, oauth-*, files-api-*,
  ...), tools[].eager_input_streaming, cache_control.scope, a metadata.user_id outside
  [a-zA-Z0-9_-], and thinking.type enabled on Opus 4.7 and later.

CONTROL ENDPOINTS
  GET /_sim/requests   what was received (endpoint, operation, model id, headers, body, status)
  POST /_sim/reset     forget it (and the fail_first counts)
  GET /_sim/connections  {\"open\": N, \"busy\": M}: open connections (this one included), requests
                       being answered (streams until their body is dropped)
  GET /_sim/health     200
  GET /_sim/models     the catalog
  POST /_sim/models    add a model now (JSON with the [[model]] keys below); listed by the next
                       ListFoundationModels / ListInferenceProfiles

CONFIG FILE (TOML)
  region = \"us-east-1\"
  defaults = \"delay_ms=2\"
  record_limit = 1000
  [[rule]]
  model = \"qwen.*\"
  directives = \"words=200 delay_ms=5\"
  [[model]]
  id = \"acme.model-v1:0\"
  name = \"Acme Model\"
  provider = \"Acme\"                          # default Anthropic for anthropic.* ids
  on_demand = true                           # or inference_types = [\"ON_DEMAND\", \"INFERENCE_PROFILE\"]
  geos = [\"us\"]                              # us eu apac au jp in global us-gov
  [[model]]
  id = \"anthropic.claude-opus-6\"
  name = \"Claude Opus 6\"
  inference_types = [\"INFERENCE_PROFILE\"]     # profile-only: the bare id is refused
  geos = [\"us\", \"global\"]
  mantle = true                              # served on Mantle by its id (or mantle_id = \"...\")
  adaptive_thinking = true                   # refuses thinking.type enabled
";

/// A local AWS Bedrock Runtime emulator that speaks the real AWS wire protocol.
#[derive(Debug, Parser)]
#[command(name = "bedrock-sim", version, after_help = AFTER_HELP)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address served is printed).
    #[arg(long, env = "BEDROCK_SIM_LISTEN", default_value = "127.0.0.1:8001")]
    listen: String,
    /// TOML config file: region, defaults, per-model rules, extra models, record limit.
    #[arg(long, env = "BEDROCK_SIM_CONFIG")]
    config: Option<PathBuf>,
    /// Directives applied to every request (e.g. "words=200 delay_ms=5").
    #[arg(long, env = "BEDROCK_SIM_DEFAULTS")]
    defaults: Option<String>,
    /// Region used in ARNs.
    #[arg(long, env = "BEDROCK_SIM_REGION")]
    region: Option<String>,
    /// How many received requests /_sim/requests keeps (0 keeps none, for benchmarks).
    #[arg(long, env = "BEDROCK_SIM_RECORD_LIMIT")]
    record_limit: Option<usize>,
    /// Log filter (error, warn, info, debug, trace).
    #[arg(long, env = "LOG_LEVEL", default_value = "warn")]
    log_level: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .context("--log-level / LOG_LEVEL")?,
        )
        .with_writer(std::io::stderr)
        .init();
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("--config: cannot read {}", path.display()))?;
            bedrock_sim::Config::from_toml(&text)
                .map_err(|e| anyhow::anyhow!("--config {}: {e}", path.display()))?
        }
        None => bedrock_sim::Config::default(),
    };
    if let Some(d) = args.defaults {
        config.defaults = d;
    }
    if let Some(r) = args.region {
        config.region = r;
    }
    if let Some(n) = args.record_limit {
        config.record_limit = n;
    }
    config
        .check()
        .map_err(|e| anyhow::anyhow!("--defaults / --config: {e}"))?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("--listen: cannot bind {}", args.listen))?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "bedrock-sim listening on http://{addr}")?;
        out.flush()?;
    }
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {}
        }
    };
    bedrock_sim::run(listener, bedrock_sim::Sim::new(config), shutdown).await?;
    Ok(())
}
