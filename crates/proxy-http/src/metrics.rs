//! Prometheus metrics of the gateway (text format at `GET /metrics`).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

/// The gateway's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Requests by path and status.
    pub requests: IntCounterVec,
    /// Request latency by path (whole response, streams included).
    pub latency: HistogramVec,
    /// Bedrock call latency by operation (until Bedrock answered / the stream started).
    pub bedrock_latency: HistogramVec,
    /// Time to the first content event of a stream, by model.
    pub ttft: HistogramVec,
    /// Tokens by model and kind (input, output, cache_read, cache_write).
    pub tokens: IntCounterVec,
    /// Errors by Anthropic error type.
    pub errors: IntCounterVec,
    /// Usage records dropped because the queue was full (the store far behind).
    pub usage_dropped: prometheus::IntCounter,
    /// Usage records the store refused (after a retry).
    pub usage_failed: prometheus::IntCounter,
    /// Response cache lookups by result (`hit`, `miss`, `error`).
    pub cache: IntCounterVec,
    /// Shared-limit checks the store could not answer (the process-local limit decided instead).
    pub limit_store_errors: prometheus::IntCounter,
    /// Background store writes dropped because too many were pending.
    pub background_dropped: prometheus::IntCounter,
    /// Estimated cost in USD by model (from the config's price table).
    pub cost: prometheus::CounterVec,
    /// What was removed from requests before Bedrock, by kind (`beta`, `eager_input_streaming`,
    /// `cache_control_scope`, `metadata_user_id`).
    pub rewrites: IntCounterVec,
    /// Failed reads of Bedrock's model catalog.
    pub catalog_refresh_errors: prometheus::IntCounter,
    /// When Bedrock's model catalog was last read (Unix seconds; 0: never, the built-in table
    /// routes).
    pub catalog_last_success: prometheus::Gauge,
    /// How many names the route table read from Bedrock's catalog routes.
    pub catalog_models: prometheus::IntGauge,
    /// Time spent in the gateway itself, by path and whether streamed: the request's time less its
    /// waits for Bedrock (the answer or head, and for streams the gaps between upstream events).
    pub overhead: HistogramVec,
    /// Time to the end of `/v1/messages` responses (streams: to the end of the stream), by model
    /// and whether streamed.
    pub model_latency: HistogramVec,
    /// Streams being relayed now.
    pub open_streams: prometheus::IntGauge,
    /// Requests the gateway's own limits refused, by reason (`requests`, `tokens_per_minute`,
    /// `monthly_budget`, `model_not_allowed`).
    pub limit_refusals: IntCounterVec,
    /// Errors from Bedrock, by Anthropic error type (`rate_limit_error` is Bedrock throttling), at
    /// the call or inside a stream.
    pub bedrock_errors: IntCounterVec,
    /// Tokens by API key id (never key material) and kind.
    pub key_tokens: IntCounterVec,
    /// Estimated cost in USD by API key id.
    pub key_cost: prometheus::CounterVec,
    /// Store operations that failed on the request path, by operation (`key_lookup`,
    /// `monthly_usage`, `cache_write`).
    pub store_errors: IntCounterVec,
    /// Defences against hostile clients and for shutdown (issue 12; docs/RELIABILITY.md).
    pub defences: Defences,
    /// The per-model and per-key series a served request touches, resolved once.
    series: std::sync::Arc<SeriesCache>,
}

/// The token kinds of `gateway_tokens_total` and `gateway_key_tokens_total`, in [`Usage`] order.
///
/// [`Usage`]: proxy_schema::Usage
const TOKEN_KINDS: [&str; 4] = ["input", "output", "cache_read", "cache_write"];

/// A model's series: resolving a label set hashes the labels and takes the vector's lock, a dozen
/// times per request before these were kept.
#[derive(Debug)]
pub struct ModelSeries {
    tokens: [prometheus::IntCounter; 4],
    cost: prometheus::Counter,
    /// `gateway_model_latency_seconds`, not streamed and streamed.
    latency: [prometheus::Histogram; 2],
    ttft: prometheus::Histogram,
}

impl ModelSeries {
    /// Time to the end of a response.
    pub fn observe_latency(&self, stream: bool, secs: f64) {
        self.latency[usize::from(stream)].observe(secs);
    }

    /// Time to the first content event.
    pub fn observe_ttft(&self, secs: f64) {
        self.ttft.observe(secs);
    }

    /// Estimated cost in USD.
    pub fn add_cost(&self, usd: f64) {
        self.cost.inc_by(usd);
    }
}

/// An API key's series.
#[derive(Debug)]
pub struct KeySeries {
    tokens: [prometheus::IntCounter; 4],
    cost: prometheus::Counter,
}

impl KeySeries {
    /// Estimated cost in USD.
    pub fn add_cost(&self, usd: f64) {
        self.cost.inc_by(usd);
    }
}

/// Series by model name and by key id. As many entries as the vectors have series: models that
/// route and keys that authenticated.
#[derive(Debug, Default)]
struct SeriesCache {
    models: std::sync::Mutex<foldhash::HashMap<String, std::sync::Arc<ModelSeries>>>,
    keys: std::sync::Mutex<foldhash::HashMap<String, std::sync::Arc<KeySeries>>>,
}

/// The entry of `name` in `map`, made by `make` the first time.
fn kept<T>(
    map: &std::sync::Mutex<foldhash::HashMap<String, std::sync::Arc<T>>>,
    name: &str,
    make: impl FnOnce() -> T,
) -> std::sync::Arc<T> {
    let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = map.get(name) {
        return s.clone();
    }
    let s = std::sync::Arc::new(make());
    map.insert(name.to_owned(), s.clone());
    s
}

/// The metrics of the connection-level defences, panics, and estimated usage.
#[derive(Debug, Clone)]
pub struct Defences {
    /// Open client connections.
    pub open_connections: prometheus::IntGauge,
    /// Connections refused beyond `MAX_CONNECTIONS`.
    pub refused_connections: prometheus::IntCounter,
    /// Connections the gateway closed, by reason (`header_read_timeout`, `idle_timeout`,
    /// `write_timeout`).
    pub closed_connections: IntCounterVec,
    /// Panics caught in request handling (answered with a 500) or in a response body (aborted).
    pub panics: prometheus::IntCounter,
    /// Usage records with estimated tokens (a stream that ended before Bedrock's final usage), by
    /// outcome.
    pub estimated_usage: IntCounterVec,
    /// Streams ended by the gateway, by reason (`first_event_timeout`, `idle_timeout`, `shutdown`).
    pub streams_cut: IntCounterVec,
    /// Bedrock calls tried again before their answer started, by reason (`throttled`,
    /// `unavailable`, `connection`, `expired_credentials`).
    pub upstream_retries: IntCounterVec,
    /// Requests sent on to the next target of a model's `fallbacks`, by model names (configured
    /// names only, so bounded by the config).
    pub upstream_fallbacks: IntCounterVec,
}

impl Defences {
    fn new(registry: &Registry) -> Self {
        let d = Defences {
            open_connections: prometheus::IntGauge::new(
                "gateway_open_connections",
                "Open client connections",
            )
            .unwrap(),
            refused_connections: prometheus::IntCounter::new(
                "gateway_connections_refused_total",
                "Connections refused with a 503 beyond MAX_CONNECTIONS",
            )
            .unwrap(),
            closed_connections: IntCounterVec::new(
                Opts::new(
                    "gateway_connections_closed_total",
                    "Connections the gateway closed, by reason",
                ),
                &["reason"],
            )
            .unwrap(),
            panics: prometheus::IntCounter::new(
                "gateway_panics_total",
                "Panics caught while serving a request (answered 500, or the response aborted)",
            )
            .unwrap(),
            estimated_usage: IntCounterVec::new(
                Opts::new(
                    "gateway_usage_estimated_total",
                    "Usage records whose tokens are estimated (the stream ended before Bedrock's final usage), by outcome",
                ),
                &["outcome"],
            )
            .unwrap(),
            streams_cut: IntCounterVec::new(
                Opts::new(
                    "gateway_streams_cut_total",
                    "Streams the gateway ended with an SSE error, by reason",
                ),
                &["reason"],
            )
            .unwrap(),
            upstream_retries: IntCounterVec::new(
                Opts::new(
                    "gateway_upstream_retries_total",
                    "Bedrock calls tried again before their answer started, by reason",
                ),
                &["reason"],
            )
            .unwrap(),
            upstream_fallbacks: IntCounterVec::new(
                Opts::new(
                    "gateway_upstream_fallbacks_total",
                    "Requests sent on to the next target of a model's fallbacks, from one model name to the next",
                ),
                &["from", "to"],
            )
            .unwrap(),
        };
        registry
            .register(Box::new(d.open_connections.clone()))
            .unwrap();
        for c in [&d.upstream_retries, &d.upstream_fallbacks] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        for reason in [
            "throttled",
            "unavailable",
            "connection",
            "expired_credentials",
        ] {
            d.upstream_retries.with_label_values(&[reason]);
        }
        for c in [&d.refused_connections, &d.panics] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        for c in [&d.closed_connections, &d.estimated_usage, &d.streams_cut] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        d
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Self {
        let registry = Registry::new();
        let buckets = vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        ];
        let requests = IntCounterVec::new(
            Opts::new(
                "gateway_requests_total",
                "Requests served, by path and status",
            ),
            &["path", "status"],
        )
        .unwrap();
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "gateway_request_duration_seconds",
                "Time to the end of the response, by path",
            )
            .buckets(buckets.clone()),
            &["path"],
        )
        .unwrap();
        let bedrock_latency = HistogramVec::new(
            HistogramOpts::new(
                "gateway_bedrock_duration_seconds",
                "Time until Bedrock answered (streams: until the stream started), by operation",
            )
            .buckets(buckets.clone()),
            &["operation"],
        )
        .unwrap();
        let model_latency = HistogramVec::new(
            HistogramOpts::new(
                "gateway_messages_duration_seconds",
                "Time to the end of /v1/messages responses (streams: to their end), by model and whether streamed",
            )
            .buckets(buckets.clone()),
            &["model", "stream"],
        )
        .unwrap();
        let ttft = HistogramVec::new(
            HistogramOpts::new(
                "gateway_time_to_first_token_seconds",
                "Time to the first content event of a stream, by model",
            )
            .buckets(buckets),
            &["model"],
        )
        .unwrap();
        let tokens = IntCounterVec::new(
            Opts::new("gateway_tokens_total", "Tokens by model and kind"),
            &["model", "kind"],
        )
        .unwrap();
        let errors = IntCounterVec::new(
            Opts::new(
                "gateway_errors_total",
                "Errors returned, by Anthropic error type",
            ),
            &["type"],
        )
        .unwrap();
        let usage_dropped = prometheus::IntCounter::new(
            "gateway_usage_records_dropped_total",
            "Usage records dropped: queue full",
        )
        .unwrap();
        let usage_failed = prometheus::IntCounter::new(
            "gateway_usage_records_failed_total",
            "Usage records the store did not take",
        )
        .unwrap();
        let cache = IntCounterVec::new(
            Opts::new(
                "gateway_cache_lookups_total",
                "Response cache lookups, by result",
            ),
            &["result"],
        )
        .unwrap();
        let limit_store_errors = prometheus::IntCounter::new(
            "gateway_limit_store_errors_total",
            "Shared rate-limit checks the store could not answer (the local limit applied)",
        )
        .unwrap();
        let background_dropped = prometheus::IntCounter::new(
            "gateway_background_writes_dropped_total",
            "Background store writes (shared token counts, cache fills) dropped: too many pending",
        )
        .unwrap();
        let cost = prometheus::CounterVec::new(
            Opts::new(
                "gateway_cost_usd_total",
                "Estimated cost in USD of the tokens served, by model (models in the price table)",
            ),
            &["model"],
        )
        .unwrap();
        let rewrites = IntCounterVec::new(
            Opts::new(
                "gateway_request_rewrites_total",
                "What was removed from requests because Bedrock rejects it, by kind",
            ),
            &["kind"],
        )
        .unwrap();
        let catalog_refresh_errors = prometheus::IntCounter::new(
            "gateway_model_catalog_refresh_errors_total",
            "Failed reads of Bedrock's model catalog (the previous route table, or the built-in one, stays in use)",
        )
        .unwrap();
        let catalog_last_success = prometheus::Gauge::new(
            "gateway_model_catalog_last_success_timestamp_seconds",
            "When Bedrock's model catalog was last read, Unix time (0: never; the built-in table routes)",
        )
        .unwrap();
        let catalog_models = prometheus::IntGauge::new(
            "gateway_model_catalog_models",
            "Names the route table read from Bedrock's catalog routes",
        )
        .unwrap();
        // Overhead is well under a millisecond per request: finer buckets at the low end.
        let overhead = HistogramVec::new(
            HistogramOpts::new(
                "gateway_overhead_seconds",
                "Time in the gateway itself, excluding the waits for Bedrock (first byte, and the gaps between stream events), by path",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
            ]),
            &["path", "stream"],
        )
        .unwrap();
        let open_streams = prometheus::IntGauge::new(
            "gateway_open_streams",
            "Streams being relayed to clients now",
        )
        .unwrap();
        let limit_refusals = IntCounterVec::new(
            Opts::new(
                "gateway_limit_refusals_total",
                "Requests refused by the gateway's own per-key limits, by reason",
            ),
            &["reason"],
        )
        .unwrap();
        let bedrock_errors = IntCounterVec::new(
            Opts::new(
                "gateway_bedrock_errors_total",
                "Errors Bedrock returned (at the call or inside a stream), by Anthropic error type; rate_limit_error is Bedrock throttling",
            ),
            &["type"],
        )
        .unwrap();
        let key_tokens = IntCounterVec::new(
            Opts::new("gateway_key_tokens_total", "Tokens by API key id and kind"),
            &["key", "kind"],
        )
        .unwrap();
        let key_cost = prometheus::CounterVec::new(
            Opts::new(
                "gateway_key_cost_usd_total",
                "Estimated cost in USD of the tokens served, by API key id (models in the price table)",
            ),
            &["key"],
        )
        .unwrap();
        let store_errors = IntCounterVec::new(
            Opts::new(
                "gateway_store_errors_total",
                "Store operations on the request path that failed, by operation",
            ),
            &["operation"],
        )
        .unwrap();
        for c in [&limit_refusals, &bedrock_errors, &key_tokens, &store_errors] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        // Exported at 0 from the start, so that rates and alerts see a series before the first one.
        for reason in [
            "requests",
            "tokens_per_minute",
            "monthly_budget",
            "model_not_allowed",
        ] {
            limit_refusals.with_label_values(&[reason]);
        }
        for operation in ["key_lookup", "monthly_usage", "cache_write"] {
            store_errors.with_label_values(&[operation]);
        }
        for kind in ["rate_limit_error", "overloaded_error"] {
            bedrock_errors.with_label_values(&[kind]);
        }
        for result in ["hit", "miss", "error"] {
            cache.with_label_values(&[result]);
        }
        registry.register(Box::new(model_latency.clone())).unwrap();
        registry.register(Box::new(key_cost.clone())).unwrap();
        registry.register(Box::new(overhead.clone())).unwrap();
        registry.register(Box::new(open_streams.clone())).unwrap();
        registry
            .register(Box::new(catalog_refresh_errors.clone()))
            .unwrap();
        registry
            .register(Box::new(catalog_last_success.clone()))
            .unwrap();
        registry.register(Box::new(catalog_models.clone())).unwrap();
        registry.register(Box::new(cost.clone())).unwrap();
        for c in [&limit_store_errors, &background_dropped] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        registry.register(Box::new(usage_dropped.clone())).unwrap();
        registry.register(Box::new(usage_failed.clone())).unwrap();
        for c in [&requests, &tokens, &errors, &cache, &rewrites] {
            registry.register(Box::new(c.clone())).unwrap();
        }
        for h in [&latency, &bedrock_latency, &ttft] {
            registry.register(Box::new(h.clone())).unwrap();
        }
        let defences = Defences::new(&registry);
        Metrics {
            registry,
            defences,
            requests,
            latency,
            bedrock_latency,
            ttft,
            tokens,
            errors,
            usage_dropped,
            usage_failed,
            cache,
            limit_store_errors,
            background_dropped,
            cost,
            rewrites,
            catalog_refresh_errors,
            catalog_last_success,
            catalog_models,
            overhead,
            model_latency,
            open_streams,
            limit_refusals,
            bedrock_errors,
            key_tokens,
            key_cost,
            store_errors,
            series: std::sync::Arc::default(),
        }
    }

    /// The series of `model`.
    pub fn model(&self, model: &str) -> std::sync::Arc<ModelSeries> {
        kept(&self.series.models, model, || ModelSeries {
            tokens: TOKEN_KINDS.map(|kind| self.tokens.with_label_values(&[model, kind])),
            cost: self.cost.with_label_values(&[model]),
            latency: ["false", "true"]
                .map(|stream| self.model_latency.with_label_values(&[model, stream])),
            ttft: self.ttft.with_label_values(&[model]),
        })
    }

    /// The series of the key `key_id`.
    pub fn key(&self, key_id: &str) -> std::sync::Arc<KeySeries> {
        kept(&self.series.keys, key_id, || KeySeries {
            tokens: TOKEN_KINDS.map(|kind| self.key_tokens.with_label_values(&[key_id, kind])),
            cost: self.key_cost.with_label_values(&[key_id]),
        })
    }

    /// Adds a usage record's tokens, by model and by key id.
    pub fn add_usage(&self, model: &ModelSeries, key: &KeySeries, usage: &proxy_schema::Usage) {
        let counts = [
            usage.input_tokens,
            usage.output_tokens,
            usage.cache_read_input_tokens.unwrap_or(0),
            usage.cache_creation_input_tokens.unwrap_or(0),
        ];
        for (i, n) in counts.into_iter().enumerate() {
            model.tokens[i].inc_by(n);
            key.tokens[i].inc_by(n);
        }
    }

    /// Counts and logs (at debug level) what was removed from a request before Bedrock.
    pub fn add_rewrites(&self, removals: &[proxy_convert::Removal]) {
        for removal in removals {
            self.rewrites.with_label_values(&[removal.label()]).inc();
            tracing::debug!(
                kind = removal.label(),
                detail = %removal.detail,
                "removed from the request: Bedrock rejects it"
            );
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
