//! `proxy-http`: the gateway's raw `hyper` 1 server. It serves the Anthropic API surface
//! (`/v1/messages`, `/v1/messages/count_tokens`, `/v1/models`), health, readiness and metrics, with
//! auth, request ids, the Anthropic error envelope and SSE streaming, over `proxy-convert` and
//! `proxy-bedrock`.
//!
//! Performance by design: no blocking call on the request path, no per-request control-plane or
//! store round trip, one shared Bedrock client, SSE frames written as they arrive (the body is a
//! pull-based stream: a slow client slows its own upstream, a gone client cancels it).

mod accounting;
mod auth;
mod cache;
mod conn;
mod count_tokens;
mod error;
mod keys;
mod limits;
mod messages;
mod metrics;
mod models;
mod service;
mod sse;
mod telemetry;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulConnection;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use keys::{KEY_CACHE_TTL, Limit, Principal};
pub use metrics::Metrics;
pub use telemetry::export_traces;

/// Settings of the HTTP layer (the binary builds them from flags and environment variables).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether `/v1/*` needs a key.
    pub require_api_key: bool,
    /// The one key accepted until the key store lands.
    pub master_api_key: Option<String>,
    /// The key header (lowercase), besides `Authorization: Bearer`.
    pub api_key_header: String,
    /// Accept `tools` (otherwise a request with tools is a 400).
    pub enable_tool_use: bool,
    /// Pass `thinking` on (otherwise it is removed and the model answers without thinking).
    pub enable_extended_thinking: bool,
    /// Accept `document` blocks (otherwise a 400).
    pub enable_document_support: bool,
    /// Turn `cache_control` into Bedrock cache points (otherwise it is removed).
    pub prompt_caching: bool,
    /// Largest request body (bytes); more is a 413.
    pub max_body_bytes: usize,
    /// SSE `ping` after this much upstream silence.
    pub ping_interval: Duration,
    /// The request limit of store keys that have none of their own (`None`: unlimited).
    pub default_rate_limit: Option<Limit>,
    /// Whether per-key request limits are enforced at all.
    pub rate_limit_enabled: bool,
    /// The response cache's lifetime (`None`: no cache).
    pub cache_ttl: Option<Duration>,
    /// Prices for the cost estimate metric (`gateway_cost_usd_total`); empty: no estimate.
    pub prices: proxy_store::PriceTable,
    /// List Bedrock's other (non-Claude) models by their ids in `GET /v1/models` too.
    pub list_bedrock_models: bool,
    /// At most this many client connections at once; beyond, a connection gets a 503 and is closed.
    pub max_connections: usize,
    /// A connection that has been sending a request head for this long is closed.
    pub header_read_timeout: Duration,
    /// A request body not received in whole within this time gets a 408.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed (keep-alive, or never used).
    pub idle_timeout: Duration,
    /// A stream whose first event does not come from Bedrock within this time ends with an SSE
    /// `error` (`timeout_error`).
    pub stream_first_event_timeout: Duration,
    /// A stream with no event from Bedrock for this long (after the first) ends with an SSE `error`.
    pub stream_idle_timeout: Duration,
    /// After SIGTERM, new connections are still accepted for this long (while `/ready` says 503, so
    /// that load balancers stop sending), then refused.
    pub drain_accept_grace: Duration,
    /// After SIGTERM, requests in flight (streams included) get this long to finish; streams still
    /// open then end with an SSE `error` and their usage is recorded.
    pub drain_timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            require_api_key: true,
            master_api_key: None,
            api_key_header: "x-api-key".into(),
            enable_tool_use: true,
            enable_extended_thinking: true,
            enable_document_support: true,
            prompt_caching: true,
            max_body_bytes: 32 * 1024 * 1024,
            ping_interval: Duration::from_secs(15),
            default_rate_limit: None,
            rate_limit_enabled: true,
            cache_ttl: None,
            prices: proxy_store::PriceTable::default(),
            list_bedrock_models: true,
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(30),
            body_read_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            stream_first_event_timeout: Duration::from_secs(300),
            stream_idle_timeout: Duration::from_secs(120),
            drain_accept_grace: Duration::from_secs(2),
            drain_timeout: Duration::from_secs(30),
        }
    }
}

/// The gateway's shared state, built once at start.
#[derive(Debug)]
pub struct Gateway {
    settings: Settings,
    router: proxy_bedrock::Router,
    bedrock: proxy_bedrock::Bedrock,
    metrics: Metrics,
    ready: tokio::sync::Mutex<Option<(Instant, bool)>>,
    store: Option<proxy_store::Store>,
    key_cache: keys::KeyCache,
    rate_limiter: keys::RateLimiter,
    token_budgets: keys::TokenBudgets,
    /// Tokens used this month per key: (month `YYYY-MM`, tokens, read from the store at).
    monthly: std::sync::Mutex<foldhash::HashMap<String, (String, u64, Instant)>>,
    usage: Option<keys::UsageSink>,
    /// Permits for background store writes (shared token counts, cache fills).
    background: Arc<tokio::sync::Semaphore>,
    /// Set at SIGTERM: `/ready` answers 503 from then on.
    draining: std::sync::atomic::AtomicBool,
    /// Set when the drain time is over: every stream still open ends with an SSE `error`.
    cut: tokio::sync::watch::Sender<bool>,
}

/// How soon a failed read of Bedrock's catalog is tried again.
pub const CATALOG_RETRY: Duration = Duration::from_secs(60);

/// At most this many background store writes (shared token counts, cache fills) at a time.
pub const BACKGROUND_TASKS: usize = 1024;

impl Gateway {
    /// The gateway over a router and a Bedrock client.
    /// With a store, its keys are accepted besides `MASTER_API_KEY` and every served request leaves a
    /// usage record in it. Must be called inside a tokio runtime (the usage writer is a task).
    pub fn new(
        settings: Settings,
        router: proxy_bedrock::Router,
        bedrock: proxy_bedrock::Bedrock,
        store: Option<proxy_store::Store>,
    ) -> Arc<Self> {
        let metrics = Metrics::new();
        let mut bedrock = bedrock;
        let (retries, fallbacks) = (
            metrics.defences.upstream_retries.clone(),
            metrics.defences.upstream_fallbacks.clone(),
        );
        bedrock.set_retry_hook(proxy_bedrock::RetryHook(Arc::new(
            move |event| match event {
                proxy_bedrock::RetryEvent::Retry(why) => {
                    retries.with_label_values(&[why.as_str()]).inc()
                }
                proxy_bedrock::RetryEvent::Fallback { from, to } => {
                    fallbacks.with_label_values(&[from, to]).inc()
                }
            },
        )));
        let usage = store.clone().map(|s| {
            keys::UsageSink::start(
                s,
                65_536,
                metrics.usage_dropped.clone(),
                metrics.usage_failed.clone(),
            )
        });
        Arc::new(Gateway {
            settings,
            router,
            bedrock,
            metrics,
            ready: tokio::sync::Mutex::new(None),
            store,
            key_cache: keys::KeyCache::default(),
            rate_limiter: keys::RateLimiter::default(),
            token_budgets: keys::TokenBudgets::default(),
            monthly: std::sync::Mutex::new(foldhash::HashMap::default()),
            usage,
            background: Arc::new(tokio::sync::Semaphore::new(BACKGROUND_TASKS)),
            draining: std::sync::atomic::AtomicBool::new(false),
            cut: tokio::sync::watch::channel(false).0,
        })
    }

    /// Tokens a key used this month (UTC): read from the store at most once a minute, plus what
    /// this process served since.
    pub(crate) async fn monthly_tokens(
        &self,
        key_id: &str,
    ) -> Result<u64, proxy_store::StoreError> {
        let today = proxy_store::utc_day(proxy_store::now());
        let month = today[..7].to_owned();
        if let Some((m, used, at)) = self
            .monthly
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key_id)
            && *m == month
            && at.elapsed() < Duration::from_secs(60)
        {
            return Ok(*used);
        }
        let Some(store) = &self.store else {
            return Ok(0);
        };
        // Boxed: see `limits::take_request`.
        let rows = Box::pin(store.usage(&proxy_store::UsageQuery {
            key_id: Some(key_id.to_owned()),
            user_id: None,
            since: Some(format!("{month}-01")),
        }))
        .await?;
        let used = rows.iter().map(|r| r.input_tokens + r.output_tokens).sum();
        self.monthly
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key_id.to_owned(), (month, used, Instant::now()));
        Ok(used)
    }

    /// Stores every usage record still queued (call after [`run`] returned).
    pub async fn flush_usage(&self) {
        if let Some(u) = &self.usage {
            u.flush().await;
        }
    }

    /// Accounts a served request: its usage record, and its tokens against the key's
    /// tokens-per-minute budget.
    pub(crate) fn record_usage(
        &self,
        record: proxy_store::UsageRecord,
        tokens_per_minute: Option<u64>,
        model: &metrics::ModelSeries,
        key: &metrics::KeySeries,
    ) {
        if let Some((_, used, _)) = self
            .monthly
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&record.key_id)
        {
            *used += record.input_tokens + record.output_tokens;
        }
        if let (Some(_), Some(store)) = (tokens_per_minute, self.shared_limits()) {
            self.spawn_background(keys::shared::charge_tokens(
                store.clone(),
                record.key_id.clone(),
                record.input_tokens + record.output_tokens,
            ));
        }
        if let Some(tpm) = tokens_per_minute {
            self.token_budgets.charge(
                &record.key_id,
                tpm,
                record.input_tokens + record.output_tokens,
            );
        }
        if let Some(cost) = self.settings.prices.cost_of(
            &record.model,
            [
                record.input_tokens,
                record.output_tokens,
                record.cache_read_input_tokens,
                record.cache_creation_input_tokens,
            ],
        ) {
            model.add_cost(cost);
            key.add_cost(cost);
        }
        if let Some(u) = &self.usage {
            u.record(record);
        }
    }

    /// Reads Bedrock's catalog now and puts the route table built from it in use (the router
    /// keeps the one it had when the read fails). Returns how many names route.
    pub async fn refresh_models(&self) -> Result<usize, proxy_bedrock::UpstreamError> {
        match self.bedrock.catalog().await {
            Ok(listing) => {
                let table = self.router.update(&listing);
                self.metrics.catalog_models.set(table.len() as i64);
                self.metrics
                    .catalog_last_success
                    .set(proxy_store::now() as f64);
                Ok(table.len())
            }
            Err(e) => {
                self.metrics.catalog_refresh_errors.inc();
                Err(e)
            }
        }
    }

    /// Starts the background reading of Bedrock's catalog: now, then every `every`; after a failure
    /// again within [`CATALOG_RETRY`] (or `every`, if shorter). While it fails, the route table it
    /// read last stays in use, or the built-in table if it never succeeded: a warning says so once
    /// per streak of failures, `gateway_model_catalog_refresh_errors_total` counts every one.
    pub fn spawn_model_refresh(self: &Arc<Self>, every: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut failing = false;
            let mut read_once = false;
            loop {
                let Some(g) = weak.upgrade() else { return };
                let wait = match g.refresh_models().await {
                    Ok(count) => {
                        if failing {
                            tracing::info!(count, "Bedrock's model catalog read again");
                        } else {
                            tracing::debug!(count, "Bedrock's model catalog read");
                        }
                        if !read_once && let Some(f) = g.router.fallback_unknown() {
                            tracing::warn!(
                                fallback_model = f,
                                "fallback_model is neither configured nor in Bedrock's catalog; it goes to Bedrock as itself"
                            );
                        }
                        failing = false;
                        read_once = true;
                        every
                    }
                    Err(e) => {
                        if !failing {
                            if read_once {
                                tracing::warn!(error = %e, "cannot read Bedrock's model catalog; routing with the one read last until it can");
                            } else {
                                tracing::warn!(error = %e, "cannot read Bedrock's model catalog; routing with the built-in table of Claude models until it can");
                            }
                        }
                        failing = true;
                        every.min(CATALOG_RETRY)
                    }
                };
                drop(g);
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Every model `GET /v1/models` lists: configured names, the Claude models by their Anthropic
    /// names, then (with `list_bedrock_models`) Bedrock's other models by their ids.
    pub(crate) fn listed_models(&self) -> Vec<proxy_bedrock::ListedModel> {
        self.router.listed(self.settings.list_bedrock_models)
    }

    /// Runs a store write off the request path, at most [`BACKGROUND_TASKS`] at a time: beyond
    /// that (the store far behind) the write is dropped and counted, so memory stays bounded.
    pub(crate) fn spawn_background(&self, fut: impl Future<Output = ()> + Send + 'static) {
        match self.background.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    fut.await;
                    drop(permit);
                });
            }
            Err(_) => {
                self.metrics.background_dropped.inc();
                tracing::warn!("too many store writes pending: one dropped");
            }
        }
    }

    /// The store that holds limits shared by all replicas (DynamoDB), if any.
    pub(crate) fn shared_limits(&self) -> Option<&proxy_store::Store> {
        self.store
            .as_ref()
            .filter(|s| matches!(s, proxy_store::Store::Dynamo(_)))
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Whether the gateway is draining (after SIGTERM).
    pub fn is_draining(&self) -> bool {
        self.draining.load(std::sync::atomic::Ordering::Acquire)
    }

    /// What ends the streams still open when the drain time is over.
    pub(crate) fn cut_signal(&self) -> tokio::sync::watch::Receiver<bool> {
        self.cut.subscribe()
    }

    /// Readiness: the store answers and Bedrock credentials resolve (checked at most every 10 s).
    pub async fn is_ready(&self) -> bool {
        let mut cached = self.ready.lock().await;
        if let Some((at, ok)) = *cached
            && at.elapsed() < Duration::from_secs(10)
        {
            return ok;
        }
        let store_ok = match &self.store {
            Some(s) => s.key_by_hash("readiness-probe").await.is_ok(),
            None => true,
        };
        let ok = store_ok && self.bedrock.credentials_ok().await;
        *cached = Some((Instant::now(), ok));
        ok
    }
}

/// How long streams cut at the end of the drain get to write their SSE `error` and end before
/// their connections are dropped.
const CUT_GRACE: Duration = Duration::from_secs(2);

/// hyper's settings, chosen for an API gateway facing untrusted clients (docs/RELIABILITY.md):
/// HTTP/1 heads up to 64 KiB and 100 headers (431 beyond), half-closed connections answered;
/// HTTP/2 at most 100 concurrent streams per connection, 64 KiB of headers, 20 streams reset by
/// the client before the server accepted them (HTTP/2 rapid reset, CVE-2023-44487: beyond, the
/// connection is closed with `ENHANCE_YOUR_CALM`), 1024 streams the server reset for errors.
struct Builders {
    http1: http1::Builder,
    http2: http2::Builder<TokioExecutor>,
}

fn connection_builders() -> Builders {
    let mut http1 = http1::Builder::new();
    http1
        .half_close(true)
        .max_buf_size(64 * 1024)
        .max_headers(100);
    let mut http2 = http2::Builder::new(TokioExecutor::new());
    http2
        .max_concurrent_streams(100)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024);
    Builders { http1, http2 }
}

/// HTTP/2's connection preface: a client speaking HTTP/2 without TLS (prior knowledge) starts
/// with it.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether the client speaks HTTP/2, from the first bytes it sent, looked at with `peek` and left
/// in the socket. (hyper-util's `auto` connection reads them into a buffer it hands back first;
/// with those bytes in it, hyper's HTTP/1 read buffer grew to 16 KB on every connection, against
/// 8 KB read straight from the socket, and `auto` boxed another 4.8 KB: docs/BENCHMARKS.md.) The
/// first byte tells almost always (`P` of `POST` or `PRI` needs a second); a client that stops
/// inside the preface is closed at the head timeout.
async fn speaks_http2(stream: &tokio::net::TcpStream, state: &conn::ConnState) -> bool {
    let mut first = [0u8; H2_PREFACE.len()];
    let mut pause = Duration::from_millis(1);
    loop {
        let n = match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        state.bytes_read();
        if first[..n] != H2_PREFACE[..n] {
            return false;
        }
        if n == H2_PREFACE.len() {
            return true;
        }
        // Part of the preface: `peek` answers at once while those bytes wait, so wait a little
        // (longer each time) for the rest.
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Serves one accepted connection until it ends, is closed for a timeout, or is cut at the end of
/// the drain (`drain` becomes true: hyper's graceful shutdown, which lets requests in flight end).
async fn serve_connection(
    gateway: Arc<Gateway>,
    builders: Arc<Builders>,
    stream: tokio::net::TcpStream,
    mut drain: tokio::sync::watch::Receiver<bool>,
) {
    let state = conn::ConnState::new();
    // Before the first bytes: a drain closes the connection at once (nothing is in flight).
    let draining = async {
        let _ = drain.wait_for(|cut| *cut).await;
    };
    let h2 = tokio::select! {
        h2 = speaks_http2(&stream, &state) => h2,
        () = draining => return,
        () = expiry(&gateway, &state) => return,
    };
    let io = TokioIo::new(conn::Tracked::new(stream, state.clone()));
    let g = gateway.clone();
    let st = state.clone();
    let service = service_fn(move |req| {
        let gateway = g.clone();
        let guard = st.start_request();
        let mut cut = gateway.cut_signal();
        // Boxed: hyper keeps a connection's request future in one allocation of the future's
        // size for as long as the connection lives; a box there is a pointer, and the request's
        // own state (about 2.5 KB) is freed once its response is ready.
        Box::pin(async move {
            // A request still without its response at the end of the drain (a non-streaming
            // call Bedrock has not answered) gets a 503 rather than a closed connection. The
            // request's future is made inside the `select!` so that it is stored once, not also
            // in a variable beside it.
            let handled = tokio::select! {
                r = std::panic::AssertUnwindSafe(service::handle(gateway.clone(), req))
                    .catch_unwind() => r,
                Ok(_) = cut.wait_for(|cut| *cut) => Ok(service::shutdown_response()),
            };
            let resp = match handled {
                Ok(resp) => resp,
                Err(panic) => {
                    gateway.metrics.defences.panics.inc();
                    let message = conn::panic_message(&*panic);
                    tracing::error!(panic = %message, "a request panicked; answered 500");
                    service::panic_response()
                }
            };
            let panics = gateway.metrics.defences.panics.clone();
            Ok::<_, Infallible>(resp.map(|b| conn::GuardedBody::new(b, guard, panics)))
        })
    });
    if h2 {
        // Boxed: an HTTP/2 connection's state is about twice an HTTP/1 one's, and inline it would
        // size every connection's task.
        let conn = builders.http2.serve_connection(io, service);
        Box::pin(drive(conn, &gateway, &state, &mut drain)).await;
    } else {
        let conn = builders.http1.serve_connection(io, service);
        drive(conn, &gateway, &state, &mut drain).await;
    }
}

/// Runs a connection to its end: gracefully shut down when the drain starts, closed when
/// [`conn::ConnState::expired`] says so.
async fn drive<C>(
    conn: C,
    gateway: &Gateway,
    state: &conn::ConnState,
    drain: &mut tokio::sync::watch::Receiver<bool>,
) where
    C: GracefulConnection<Error = hyper::Error>,
{
    tokio::pin!(conn);
    let mut draining = false;
    if *drain.borrow_and_update() {
        draining = true;
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = drain.changed(), if !draining => {
                if changed.is_err() || *drain.borrow() {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = expiry(gateway, state) => return,
        }
    }
}

/// Completes when the connection is to be closed for a timeout ([`conn::ConnState::expired`]
/// with the gateway's settings), counted and logged.
async fn expiry(gateway: &Gateway, state: &conn::ConnState) {
    let s = &gateway.settings;
    let why = state.expired(s.header_read_timeout, s.idle_timeout).await;
    gateway
        .metrics
        .defences
        .closed_connections
        .with_label_values(&[why.label()])
        .inc();
    tracing::debug!(reason = why.label(), "connection closed");
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains (docs/RELIABILITY.md):
/// `/ready` answers 503 at once; new connections are accepted for `drain_accept_grace`, then
/// refused; requests in flight (streams included) get up to `drain_timeout` from the signal; streams
/// still open then end with an SSE `error` (their usage recorded), and what remains is dropped.
/// The caller flushes the usage queue after this returns.
pub async fn run(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let s = &gateway.settings;
    let builders = Arc::new(connection_builders());
    let permits = Arc::new(tokio::sync::Semaphore::new(s.max_connections.max(1)));
    // Refusals hold a descriptor for up to a second each: at most an eighth of the limit of them.
    let refusing = Arc::new(tokio::sync::Semaphore::new(
        (s.max_connections / 8).clamp(4, 256),
    ));
    let (drain_tx, drain_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    let mut last_accept_warning: Option<Instant> = None;
    let open = gateway.metrics.defences.open_connections.clone();
    let accept = |stream: tokio::net::TcpStream, conns: &mut tokio::task::JoinSet<()>| {
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            gateway.metrics.defences.refused_connections.inc();
            conn::refuse(stream, &refusing, s.max_connections);
            return;
        };
        let _ = stream.set_nodelay(true);
        let (gateway, builders, drain) = (gateway.clone(), builders.clone(), drain_rx.clone());
        let open = open.clone();
        open.inc();
        conns.spawn(async move {
            serve_connection(gateway, builders, stream, drain).await;
            open.dec();
            drop(permit);
        });
    };
    let mut on_accept_error = |e: std::io::Error| {
        // Out of descriptors: say so at most once a second, not once per try.
        if last_accept_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
            tracing::warn!(error = %e, "accept failed");
            last_accept_warning = Some(Instant::now());
        }
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => accept(stream, &mut conns),
                Err(e) => {
                    on_accept_error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = &mut shutdown => break,
        }
    }
    let signalled = Instant::now();
    gateway
        .draining
        .store(true, std::sync::atomic::Ordering::Release);
    tracing::info!(
        accept_grace_s = s.drain_accept_grace.as_secs_f64(),
        drain_timeout_s = s.drain_timeout.as_secs_f64(),
        "draining: /ready answers 503; new connections accepted for the grace, then refused"
    );
    let grace_end = tokio::time::sleep(s.drain_accept_grace.min(s.drain_timeout));
    tokio::pin!(grace_end);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => accept(stream, &mut conns),
                Err(e) => {
                    on_accept_error(e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = &mut grace_end => break,
        }
    }
    drop(listener);
    let _ = drain_tx.send(true);
    let deadline = tokio::time::Instant::from_std(signalled + s.drain_timeout);
    let all_done = async { while conns.join_next().await.is_some() {} };
    let finished = tokio::time::timeout_at(deadline, all_done).await.is_ok();
    if !finished {
        let open = conns.len();
        tracing::warn!(
            connections = open,
            "drain time over: open streams end with an SSE error"
        );
        gateway.cut.send_replace(true);
        let cut_done = async { while conns.join_next().await.is_some() {} };
        if tokio::time::timeout(CUT_GRACE, cut_done).await.is_err() {
            // Clients that do not read: their connections are dropped (usage still recorded, as
            // dropping a response body settles its account).
            conns.abort_all();
            while conns.join_next().await.is_some() {}
        }
    }
    Ok(())
}
