//! The one finishing step of every served request, streamed or not, cache hit or not, whatever the
//! route: usage into the store (batched) and the tokens-per-minute budget, the metrics (tokens, cost,
//! time to first token, latency), the response cache fill, and the usage log line. It runs when the
//! [`Account`] is dropped, so a stream the client cut short, or that failed upstream, is recorded
//! with the usage known at that point.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proxy_schema::{Delta, StreamEvent, Usage};

use crate::Gateway;

/// Who and what a request's usage record is about.
#[derive(Debug, Clone)]
pub(crate) struct UsageContext {
    pub request_id: String,
    /// The key's tokens-per-minute budget, charged when the request ends.
    pub tokens_per_minute: Option<u64>,
    pub key_id: String,
    pub user_id: String,
    pub model: String,
    pub bedrock_model: String,
    /// Input tokens to record if a stream ends before Bedrock said how many (one per 4 bytes of
    /// the request).
    pub input_estimate: u64,
}

/// A served request's account, settled when dropped.
pub(crate) struct Account {
    gateway: Arc<Gateway>,
    ctx: UsageContext,
    started: Instant,
    stream: bool,
    first_token: Option<Instant>,
    usage: Usage,
    outcome: &'static str,
    span: tracing::Span,
    /// With a cacheable request: the message (rebuilt from the events of a stream), stored if the
    /// request completes.
    /// Boxed, as is `message`: most requests are not cached, and inline the two would be most of
    /// the size of every stream's state (about 0.9 KB of 1.4).
    cache: Option<Box<(crate::cache::CacheFill, proxy_schema::Accumulator)>>,
    message: Option<Box<proxy_schema::Message>>,
    /// Bedrock refused the request before anything was served: nothing to record.
    refused: bool,
    /// Bedrock's final usage (a whole message, or a stream's `message_delta`) was seen.
    final_usage: bool,
    /// Bytes of text, thinking and tool input relayed in a stream's deltas.
    relayed_bytes: u64,
    /// Time spent waiting for Bedrock (its answer or head, then the gaps between stream events):
    /// the rest of the request's time is the gateway's overhead.
    upstream: Duration,
    /// Counted in the open-streams gauge.
    relaying: bool,
}

impl Account {
    /// Opens the account of a request (its outcome is `cancelled` until told otherwise).
    pub(crate) fn open(
        gateway: Arc<Gateway>,
        ctx: UsageContext,
        started: Instant,
        stream: bool,
        cache: Option<crate::cache::CacheFill>,
    ) -> Self {
        Account {
            gateway,
            ctx,
            started,
            stream,
            first_token: None,
            usage: Usage::default(),
            outcome: "cancelled",
            span: tracing::Span::current(),
            cache: cache.map(|c| Box::new((c, proxy_schema::Accumulator::new()))),
            message: None,
            refused: false,
            final_usage: false,
            relayed_bytes: 0,
            upstream: Duration::ZERO,
            relaying: false,
        }
    }

    /// The model that served (a fallback of another model, or another Bedrock target of the same
    /// one): the usage record is its.
    pub(crate) fn served_by(&mut self, model: &str, bedrock_model: &str) {
        if self.ctx.model != model {
            model.clone_into(&mut self.ctx.model);
        }
        if self.ctx.bedrock_model != bedrock_model {
            bedrock_model.clone_into(&mut self.ctx.bedrock_model);
        }
    }

    /// Adds time spent waiting for Bedrock (excluded from the overhead metric).
    pub(crate) fn waited(&mut self, d: Duration) {
        self.upstream += d;
    }

    /// Bedrock failed inside the stream.
    pub(crate) fn bedrock_error(&self, kind: proxy_schema::ErrorType) {
        self.gateway
            .metrics
            .bedrock_errors
            .with_label_values(&[kind.as_str()])
            .inc();
    }

    /// The stream is being relayed: counted in `gateway_open_streams` until the account settles.
    pub(crate) fn relaying(&mut self) {
        if !self.relaying {
            self.relaying = true;
            self.gateway.metrics.open_streams.inc();
        }
    }

    /// The response cache entry this request fills when it completes.
    pub(crate) fn with_cache(mut self, cache: Option<crate::cache::CacheFill>) -> Self {
        self.cache = cache.map(|c| Box::new((c, proxy_schema::Accumulator::new())));
        self
    }

    /// Bedrock refused the request before anything was served (the client gets the error): no usage
    /// is recorded.
    pub(crate) fn refused(&mut self) {
        self.refused = true;
    }

    /// How the request ended (the first outcome given stands).
    pub(crate) fn end(&mut self, outcome: &'static str) {
        if self.outcome == "cancelled" {
            self.outcome = outcome;
        }
    }

    /// A whole message was served: its usage, and the cache fill.
    pub(crate) fn message(&mut self, message: &proxy_schema::Message) {
        self.usage = message.usage.clone();
        self.final_usage = true;
        if self.cache.is_some() {
            self.message = Some(Box::new(message.clone()));
        }
        self.end("completed");
    }

    /// A whole message was served as Bedrock's JSON: its usage, and the cache fill (the only use
    /// that needs the message parsed).
    pub(crate) fn json_message(&mut self, message: &proxy_bedrock::JsonMessage) {
        self.usage = message.usage.clone();
        self.final_usage = true;
        if self.cache.is_some() {
            match message.message() {
                Ok(m) => self.message = Some(Box::new(m)),
                // Served all the same; only not cached.
                Err(_) => self.cache = None,
            }
        }
        self.end("completed");
    }

    /// A cache hit was served: no tokens (Bedrock did no work), and nothing to store.
    pub(crate) fn cache_hit(&mut self) {
        self.cache = None;
        self.final_usage = true;
        self.end("cache_hit");
    }

    /// One event of a stream was relayed: usage, time to first token, the cache's accumulator.
    pub(crate) fn event(&mut self, event: &StreamEvent) {
        match event {
            StreamEvent::MessageStart { message } => self.usage = message.usage.clone(),
            StreamEvent::ContentBlockStart { .. } => self.first_token(),
            StreamEvent::ContentBlockDelta { delta, .. } => {
                self.first_token();
                self.relayed_bytes += match delta {
                    Delta::TextDelta { text } => text.len(),
                    Delta::InputJsonDelta { partial_json } => partial_json.len(),
                    Delta::ThinkingDelta { thinking } => thinking.len(),
                    Delta::SignatureDelta { .. } | Delta::CitationsDelta { .. } => 0,
                } as u64;
            }
            StreamEvent::MessageDelta { usage, .. } => {
                self.final_usage = true;
                self.usage.output_tokens = usage.output_tokens;
                if let Some(n) = usage.input_tokens {
                    self.usage.input_tokens = n;
                }
                if let Some(n) = usage.cache_read_input_tokens {
                    self.usage.cache_read_input_tokens = Some(n);
                }
                if let Some(n) = usage.cache_creation_input_tokens {
                    self.usage.cache_creation_input_tokens = Some(n);
                }
            }
            _ => {}
        }
        if let Some((_, acc)) = self.cache.as_deref_mut()
            && acc.push(event).is_err()
        {
            self.cache = None;
        }
    }

    /// An event the schema does not model was relayed: a stream so made is not cached.
    pub(crate) fn unmodelled_event(&mut self) {
        self.cache = None;
    }

    fn first_token(&mut self) {
        if self.first_token.is_none() {
            let now = Instant::now();
            self.first_token = Some(now);
            self.gateway
                .metrics
                .model(&self.ctx.model)
                .observe_ttft((now - self.started).as_secs_f64());
        }
    }

    /// The usage record of this request, taking the context's names (called once, as it is
    /// settled; the model name stays for the metrics).
    fn record(&mut self, elapsed: std::time::Duration) -> proxy_store::UsageRecord {
        let usage = &self.usage;
        proxy_store::UsageRecord {
            request_id: std::mem::take(&mut self.ctx.request_id),
            key_id: std::mem::take(&mut self.ctx.key_id),
            user_id: std::mem::take(&mut self.ctx.user_id),
            model: self.ctx.model.clone(),
            bedrock_model: std::mem::take(&mut self.ctx.bedrock_model),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens.unwrap_or(0),
            cache_creation_input_tokens: usage.cache_creation_input_tokens.unwrap_or(0),
            latency_ms: elapsed.as_millis() as u64,
            ttft_ms: self
                .first_token
                .map(|t| (t - self.started).as_millis() as u64),
            status: 200,
            stream: self.stream,
            timestamp: proxy_store::now(),
        }
    }
}

impl Account {
    /// A stream that ended before Bedrock's final usage (the client left, a timeout, the drain,
    /// an upstream failure): Bedrock has read the input and generated at least what was relayed.
    /// Input: `message_start`'s count, or the request's estimate where that is 0 (Converse reports
    /// usage only at the end); output: one token per 4 bytes relayed, at least `message_start`'s.
    /// Returns whether the usage is estimated.
    fn estimate(&mut self) -> bool {
        if !self.stream || self.final_usage {
            return false;
        }
        let u = &mut self.usage;
        let cached =
            u.cache_read_input_tokens.unwrap_or(0) + u.cache_creation_input_tokens.unwrap_or(0);
        if u.input_tokens == 0 && cached == 0 {
            u.input_tokens = self.ctx.input_estimate;
        }
        u.output_tokens = u.output_tokens.max(self.relayed_bytes.div_ceil(4));
        self.gateway
            .metrics
            .defences
            .estimated_usage
            .with_label_values(&[self.outcome])
            .inc();
        true
    }
}

impl Drop for Account {
    fn drop(&mut self) {
        // One clock reading for what the request's end records (usage, latencies, the log line)...
        if !self.refused {
            self.settle(self.started.elapsed());
        }
        let g = &self.gateway;
        if self.relaying {
            g.metrics.open_streams.dec();
        }
        // ...and one after settling, which is on the request path too (a whole message is
        // returned after it) and so part of the gateway's own time.
        g.metrics
            .overhead
            .with_label_values(&["/v1/messages", if self.stream { "true" } else { "false" }])
            .observe(
                self.started
                    .elapsed()
                    .saturating_sub(self.upstream)
                    .as_secs_f64(),
            );
    }
}

impl Account {
    /// Records a served request: usage, metrics, the cache fill, the log line.
    fn settle(&mut self, elapsed: std::time::Duration) {
        let estimated = self.estimate();
        let record = self.record(elapsed);
        let g = &self.gateway;
        let model = g.metrics.model(&self.ctx.model);
        let key = g.metrics.key(&record.key_id);
        g.metrics.add_usage(&model, &key, &self.usage);
        // Nothing to charge against a tokens-per-minute budget without tokens (a cache hit, a stream
        // cut before its first event): no store write for it.
        let used = self.usage.input_tokens + self.usage.output_tokens;
        let tpm = self.ctx.tokens_per_minute.filter(|_| used > 0);
        g.record_usage(record, tpm, &model, &key);
        if self.outcome == "completed"
            && let Some(cache) = self.cache.take()
        {
            let (fill, acc) = *cache;
            let message = match self.message.take() {
                Some(m) => Some(*m),
                None if acc.error().is_none() => acc.into_message(),
                None => None,
            };
            if let Some(message) = message {
                fill.put(g, &message);
            }
        }
        model.observe_latency(self.stream, elapsed.as_secs_f64());
        if self.stream {
            g.metrics
                .latency
                .with_label_values(&["/v1/messages (stream end)"])
                .observe(elapsed.as_secs_f64());
        }
        crate::telemetry::usage(&self.span, &self.ctx.model, &self.usage, self.outcome);
        self.span.in_scope(|| {
            tracing::info!(
                outcome = self.outcome,
                stream = self.stream,
                estimated,
                input_tokens = self.usage.input_tokens,
                output_tokens = self.usage.output_tokens,
                cache_read_input_tokens = self.usage.cache_read_input_tokens.unwrap_or(0),
                cache_creation_input_tokens = self.usage.cache_creation_input_tokens.unwrap_or(0),
                ttft_ms = self
                    .first_token
                    .map(|t| (t - self.started).as_millis() as u64),
                latency_ms = elapsed.as_millis() as u64,
                "usage"
            )
        });
    }
}
