//! `proxy-admin`: manage the gateway's API keys and read its usage, on the same store as
//! `proxy-server` (the same flags and environment variables).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use proxy_store::{ApiKey, KeyLimits, KeyUpdate, Store, UsageQuery, UsageRow};
use serde_json::{Value, json};

/// Manage the gateway's API keys and read its usage.
#[derive(Debug, Parser)]
#[command(name = "proxy-admin", version)]
struct Cli {
    /// Store backend: `embedded` (a SQLite file shared with proxy-server) or `dynamodb`.
    #[arg(long, env = "STORE_BACKEND", default_value = "embedded", global = true)]
    store_backend: String,
    /// The embedded store's file.
    #[arg(
        long,
        env = "STORE_PATH",
        default_value = "data/gateway.db",
        global = true
    )]
    store_path: PathBuf,
    /// Prefix of the DynamoDB tables (`{prefix}-api-keys`, `-usage`, `-cache`).
    #[arg(
        long,
        env = "DYNAMODB_TABLE_PREFIX",
        default_value = "anthropic-proxy",
        global = true
    )]
    dynamodb_table_prefix: String,
    /// The gateway's config file; its `[prices]` table adds cost estimates (`cost_usd`) to usage.
    #[arg(long, env = "PROXY_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Create the DynamoDB tables that do not exist yet (idempotent).
    SetupTables,
    /// Exit 0 when the gateway answers `GET /health` with 200 within 3 s (a container's health check:
    /// the images have no shell or curl).
    Health {
        /// The health endpoint; default: `/health` on 127.0.0.1 at the port of `LISTEN_ADDR` (as
        /// proxy-server reads it; 8000 when unset).
        #[arg(long)]
        url: Option<String>,
    },
    /// Usage per key and day (or totals).
    Usage {
        /// One key.
        #[arg(long)]
        key_id: Option<String>,
        /// One user.
        #[arg(long)]
        user_id: Option<String>,
        /// From this UTC day on (YYYY-MM-DD).
        #[arg(long)]
        since: Option<String>,
        /// Totals per key instead of per key and day.
        #[arg(long)]
        totals: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
struct LimitArgs {
    /// Requests per window.
    #[arg(long)]
    rate_limit_requests: Option<u32>,
    /// The window, in seconds.
    #[arg(long)]
    rate_limit_window: Option<u32>,
    /// Input + output tokens per minute.
    #[arg(long)]
    tokens_per_minute: Option<u64>,
    /// Tokens per calendar month (UTC).
    #[arg(long)]
    monthly_token_budget: Option<u64>,
    /// Models the key may use, comma-separated (client names).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; the key is printed once and never stored.
    Create {
        /// Owner.
        #[arg(long)]
        user_id: String,
        /// A name for people.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        /// One user's keys.
        #[arg(long)]
        user_id: Option<String>,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        /// The key id.
        key_id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key (it stops working on every replica).
    Revoke {
        /// The key id.
        key_id: String,
    },
    /// Change a key's name, limits, models or state.
    Update {
        /// The key id.
        key_id: String,
        /// New name.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Allow every model again.
        #[arg(long, conflicts_with = "models")]
        all_models: bool,
        /// Reactivate a revoked key.
        #[arg(long)]
        activate: bool,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

async fn open(cli: &Cli) -> anyhow::Result<Store> {
    proxy_store::open(
        &cli.store_backend,
        &cli.store_path,
        &cli.dynamodb_table_prefix,
    )
    .await
    .map_err(anyhow::Error::msg)
}

fn key_json(k: &ApiKey) -> Value {
    json!({
        "key_id": k.key_id, "prefix": k.prefix, "user_id": k.user_id, "name": k.name,
        "created_at": k.created_at, "last_used_at": k.last_used_at, "active": k.active,
        "limits": k.limits, "allowed_models": k.allowed_models, "metadata": k.metadata,
    })
}

/// Prints rows as an aligned table.
fn table(header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn key_row(k: &ApiKey) -> Vec<String> {
    let l = &k.limits;
    vec![
        k.key_id.clone(),
        format!("{}...", k.prefix),
        k.user_id.clone(),
        k.name.clone(),
        if k.active {
            "active".into()
        } else {
            "revoked".into()
        },
        proxy_store::utc_day(k.created_at),
        k.last_used_at
            .map(proxy_store::utc_day)
            .unwrap_or_else(|| "-".into()),
        match (l.rate_limit_requests, l.rate_limit_window_secs) {
            (Some(n), Some(w)) => format!("{n}/{w}s"),
            (Some(n), None) => format!("{n}/window"),
            _ => "-".into(),
        },
        opt(l.tokens_per_minute),
        opt(l.monthly_token_budget),
        k.allowed_models
            .as_ref()
            .map(|m| m.join(","))
            .unwrap_or_else(|| "all".into()),
    ]
}

const KEY_HEADER: &[&str] = &[
    "KEY_ID",
    "PREFIX",
    "USER_ID",
    "NAME",
    "STATE",
    "CREATED",
    "LAST_USED",
    "REQUESTS",
    "TOKENS/MIN",
    "MONTHLY",
    "MODELS",
];

fn limits_from(args: &LimitArgs, base: KeyLimits) -> KeyLimits {
    KeyLimits {
        rate_limit_requests: args.rate_limit_requests.or(base.rate_limit_requests),
        rate_limit_window_secs: args.rate_limit_window.or(base.rate_limit_window_secs),
        tokens_per_minute: args.tokens_per_minute.or(base.tokens_per_minute),
        monthly_token_budget: args.monthly_token_budget.or(base.monthly_token_budget),
    }
}

fn check_limits(args: &LimitArgs) -> anyhow::Result<()> {
    if args.rate_limit_requests == Some(0) {
        bail!("--rate-limit-requests must be at least 1");
    }
    if args.rate_limit_window == Some(0) {
        bail!("--rate-limit-window must be at least 1 second");
    }
    if args
        .models
        .as_ref()
        .is_some_and(|m| m.iter().any(|s| s.trim().is_empty()))
    {
        bail!("--models: empty model name");
    }
    Ok(())
}

/// `GET url` over plain HTTP/1.1 (the gateway serves plain HTTP; TLS ends in front of it): Ok when
/// the status is 200.
fn health(url: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};
    use std::time::Duration;
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--url {url}: only http:// URLs"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let timeout = Duration::from_secs(3);
    let addr = authority
        .to_socket_addrs()
        .with_context(|| format!("--url {url}: cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("--url {url}: no address for {authority}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("cannot connect to {authority}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes())?;
    // The status line may arrive in pieces (a server writes its head as it likes): read until it
    // is whole, the answer ends, or 1 KiB came without one.
    let mut head = Vec::with_capacity(128);
    let mut buf = [0u8; 256];
    while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 1024 {
        let n = stream.read(&mut buf).context("no answer")?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let status = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    if status != "200" {
        bail!(
            "{url} answered {:?}",
            line.lines().next().unwrap_or_default()
        );
    }
    println!("{url}: 200");
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    // Errors as one line (`{e:#}` joins the causes): no backtrace even with RUST_BACKTRACE set.
    match run(Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("proxy-admin: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Health { url } = &cli.command {
        let url = url.clone().unwrap_or_else(|| {
            let listen = std::env::var("LISTEN_ADDR").unwrap_or_default();
            let port = listen.rsplit_once(':').map_or("8000", |(_, port)| port);
            format!("http://127.0.0.1:{port}/health")
        });
        return health(&url);
    }
    if let Command::SetupTables = &cli.command {
        let client = proxy_store::dynamodb_client().await;
        let created = proxy_store::setup_tables(&client, &cli.dynamodb_table_prefix).await?;
        for name in proxy_store::table_names(&cli.dynamodb_table_prefix) {
            let state = if created.contains(&name) {
                "created"
            } else {
                "exists"
            };
            println!("{name}: {state}");
        }
        return Ok(());
    }
    let store = open(&cli).await?;
    match &cli.command {
        Command::Keys(KeysCommand::Create {
            user_id,
            name,
            limits,
            json,
        }) => {
            check_limits(limits)?;
            if user_id.trim().is_empty() || name.trim().is_empty() {
                bail!("--user-id and --name must not be empty");
            }
            let new = proxy_auth::generate_key()?;
            let key = ApiKey {
                key_id: new.key_id.clone(),
                key_hash: new.key_hash.clone(),
                prefix: new.prefix.clone(),
                user_id: user_id.clone(),
                name: name.clone(),
                created_at: proxy_store::now(),
                last_used_at: None,
                active: true,
                limits: limits_from(limits, KeyLimits::default()),
                allowed_models: limits.models.clone(),
                metadata: Default::default(),
            };
            store.create_key(&key).await?;
            if *json {
                let mut v = key_json(&key);
                v["key"] = json!(new.key);
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "Created {} for user {} ({}).",
                    key.key_id, key.user_id, key.name
                );
                println!("Key (shown once, store it now): {}", new.key);
            }
        }
        Command::Keys(KeysCommand::List { user_id, json }) => {
            let keys = store.list_keys(user_id.as_deref()).await?;
            if *json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&keys.iter().map(key_json).collect::<Vec<_>>())?
                );
            } else {
                table(KEY_HEADER, &keys.iter().map(key_row).collect::<Vec<_>>());
            }
        }
        Command::Keys(KeysCommand::Show { key_id, json }) => {
            let key = store
                .key_by_id(key_id)
                .await?
                .with_context(|| format!("no key with id {key_id}"))?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&key_json(&key))?);
            } else {
                table(KEY_HEADER, &[key_row(&key)]);
            }
        }
        Command::Keys(KeysCommand::Revoke { key_id }) => {
            store
                .update_key(
                    key_id,
                    &KeyUpdate {
                        active: Some(false),
                        ..KeyUpdate::default()
                    },
                )
                .await?;
            println!("Revoked {key_id}.");
        }
        Command::Keys(KeysCommand::Update {
            key_id,
            name,
            limits,
            all_models,
            activate,
            json,
        }) => {
            check_limits(limits)?;
            let current = store
                .key_by_id(key_id)
                .await?
                .with_context(|| format!("no key with id {key_id}"))?;
            let update = KeyUpdate {
                name: name.clone(),
                limits: Some(limits_from(limits, current.limits.clone())),
                allowed_models: if *all_models {
                    Some(None)
                } else {
                    limits.models.clone().map(Some)
                },
                active: activate.then_some(true),
                metadata: None,
            };
            let key = store.update_key(key_id, &update).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&key_json(&key))?);
            } else {
                table(KEY_HEADER, &[key_row(&key)]);
            }
        }
        Command::SetupTables | Command::Health { .. } => unreachable!("handled above"),
        Command::Usage {
            key_id,
            user_id,
            since,
            totals,
            json,
        } => {
            if let Some(s) = since
                && !(s.len() == 10 && s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-')
            {
                bail!("--since must be a date YYYY-MM-DD, got `{s}`");
            }
            let rows = store
                .usage(&UsageQuery {
                    key_id: key_id.clone(),
                    user_id: user_id.clone(),
                    since: since.clone(),
                })
                .await?;
            let rows = if *totals { totals_by_key(&rows) } else { rows };
            let prices = match &cli.config {
                Some(path) => {
                    let text = std::fs::read_to_string(path).with_context(|| {
                        format!("PROXY_CONFIG / --config: cannot read {}", path.display())
                    })?;
                    proxy_store::PriceTable::from_config(&text).map_err(|e| {
                        anyhow::anyhow!("PROXY_CONFIG / --config: {}: {e}", path.display())
                    })?
                }
                None => proxy_store::PriceTable::default(),
            };
            let priced = !prices.is_empty();
            if *json {
                let mut out = serde_json::to_value(&rows)?;
                if priced && let Some(items) = out.as_array_mut() {
                    for (item, row) in items.iter_mut().zip(&rows) {
                        item["cost_usd"] = serde_json::json!(prices.cost(row));
                    }
                }
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                let cells: Vec<Vec<String>> = rows
                    .iter()
                    .map(|r| {
                        vec![
                            if *totals {
                                "total".into()
                            } else {
                                r.day.clone()
                            },
                            r.key_id.clone(),
                            r.user_id.clone(),
                            r.model.clone(),
                            r.requests.to_string(),
                            r.input_tokens.to_string(),
                            r.output_tokens.to_string(),
                            r.cache_read_input_tokens.to_string(),
                            r.cache_creation_input_tokens.to_string(),
                        ]
                        .into_iter()
                        .chain(priced.then(|| {
                            prices
                                .cost(r)
                                .map(|c| format!("{c:.4}"))
                                .unwrap_or_else(|| "-".into())
                        }))
                        .collect()
                    })
                    .collect();
                let mut header = vec![
                    "DAY",
                    "KEY_ID",
                    "USER_ID",
                    "MODEL",
                    "REQUESTS",
                    "INPUT",
                    "OUTPUT",
                    "CACHE_READ",
                    "CACHE_WRITE",
                ];
                if priced {
                    header.push("COST_USD");
                }
                table(&header, &cells);
            }
        }
    }
    Ok(())
}

/// Sums the daily rows per key and model.
fn totals_by_key(rows: &[UsageRow]) -> Vec<UsageRow> {
    let mut out: Vec<UsageRow> = Vec::new();
    for r in rows {
        match out
            .iter_mut()
            .find(|o| o.key_id == r.key_id && o.model == r.model)
        {
            Some(o) => {
                o.requests += r.requests;
                o.input_tokens += r.input_tokens;
                o.output_tokens += r.output_tokens;
                o.cache_read_input_tokens += r.cache_read_input_tokens;
                o.cache_creation_input_tokens += r.cache_creation_input_tokens;
            }
            None => out.push(UsageRow {
                day: String::new(),
                ..r.clone()
            }),
        }
    }
    out
}
