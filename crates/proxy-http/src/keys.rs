//! Keys on the hot path (a short-lived cache in front of the store, so a known key costs no store
//! round trip and a revoked one stops within the TTL), per-key request limits (token buckets), and
//! usage recording off the request path (a bounded queue drained in batches, flushed at shutdown).

// foldhash, not SipHash: these maps are read on every request (Cargo.toml says why it is safe).
use foldhash::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proxy_store::{ApiKey, Store, UsageRecord};

/// How long a looked-up key (or its absence) is trusted. Revocation takes effect within this time
/// on every replica.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// How long a store call on the request path may take before the request goes on without it (a
/// key lookup then fails with 529; a shared limit falls back to the local one; a cache lookup is a
/// miss). A slow store must not hold every request.
pub const STORE_DEADLINE: Duration = Duration::from_millis(500);

/// `fut` within [`STORE_DEADLINE`]; running out of time is a store error.
pub(crate) async fn within<T>(
    fut: impl std::future::Future<Output = Result<T, proxy_store::StoreError>>,
) -> Result<T, proxy_store::StoreError> {
    tokio::time::timeout(STORE_DEADLINE, fut)
        .await
        .unwrap_or_else(|_| {
            Err(proxy_store::StoreError::Backend(format!(
                "the store did not answer within {} ms",
                STORE_DEADLINE.as_millis()
            )))
        })
}

/// At most this many cached lookups (unknown keys included); beyond it, expired entries go first,
/// then everything.
const KEY_CACHE_MAX: usize = 10_000;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// `MASTER_API_KEY`.
    Master,
    /// A key from the store.
    Key(Arc<ApiKey>),
    /// No key required (`REQUIRE_API_KEY=false`).
    Anonymous,
}

impl Principal {
    /// (key id, user id) for usage records.
    pub fn ids(&self) -> (String, String) {
        match self {
            Principal::Master => ("master".into(), "master".into()),
            Principal::Key(k) => (k.key_id.clone(), k.user_id.clone()),
            Principal::Anonymous => ("anonymous".into(), "anonymous".into()),
        }
    }
}

/// A cached lookup: the active key (or none) and when it was read.
type Cached = (Option<Arc<ApiKey>>, Instant);

/// Store lookups by key hash, cached for [`KEY_CACHE_TTL`].
#[derive(Debug, Default)]
pub struct KeyCache {
    entries: Mutex<HashMap<String, Cached>>,
}

impl KeyCache {
    /// The active key with this hash, if any.
    pub async fn lookup(
        &self,
        store: &Store,
        hash: &str,
    ) -> Result<Option<Arc<ApiKey>>, proxy_store::StoreError> {
        if let Some((key, at)) = self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(key.clone());
        }
        let key = within(store.key_by_hash(hash))
            .await?
            .filter(|k| k.active)
            .map(Arc::new);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= KEY_CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < KEY_CACHE_TTL);
            if entries.len() >= KEY_CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(hash.to_owned(), (key.clone(), Instant::now()));
        Ok(key)
    }
}

/// A per-key request limit: `limit` requests per `window`, as a token bucket refilled continuously.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    /// Requests per window.
    pub limit: u32,
    /// The window.
    pub window: Duration,
}

/// The outcome of taking a request from a bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the request may go on.
    pub allowed: bool,
    /// The limit in force.
    pub limit: u32,
    /// Requests left now.
    pub remaining: u32,
    /// Time until the bucket is full again.
    pub reset: Duration,
    /// When refused: time until one request is available.
    pub retry_after: Duration,
}

/// Tokens-per-minute budgets per key id: a request may start while the budget is positive; its
/// tokens are charged when it ends (so one request can overdraw, and the next waits for the refill).
#[derive(Debug, Default)]
pub struct TokenBudgets {
    budgets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl TokenBudgets {
    /// The key's budget, refilled up to now (a full one for a key not seen before).
    fn refilled<'m>(
        budgets: &'m mut HashMap<String, (f64, Instant)>,
        key_id: &str,
        per_minute: u64,
    ) -> &'m mut (f64, Instant) {
        let now = Instant::now();
        let cap = per_minute as f64;
        let entry = bucket(budgets, key_id, (cap, now));
        entry.0 = (entry.0 + (now - entry.1).as_secs_f64() * cap / 60.0).min(cap);
        entry.1 = now;
        entry
    }

    /// `None` if the key may start a request now, else how long until it may.
    pub fn wait(&self, key_id: &str, per_minute: u64) -> Option<Duration> {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        let entry = Self::refilled(&mut budgets, key_id, per_minute);
        (entry.0 <= 0.0)
            .then(|| Duration::from_secs_f64((-entry.0 + 1.0) * 60.0 / per_minute.max(1) as f64))
    }

    /// Charges a finished request's tokens.
    pub fn charge(&self, key_id: &str, per_minute: u64, tokens: u64) {
        let mut budgets = self.budgets.lock().unwrap_or_else(|e| e.into_inner());
        Self::refilled(&mut budgets, key_id, per_minute).0 -= tokens as f64;
    }
}

/// The entry of `key_id`, made from `new` if there is none: the key is copied only then.
fn bucket<'m>(
    map: &'m mut HashMap<String, (f64, Instant)>,
    key_id: &str,
    new: (f64, Instant),
) -> &'m mut (f64, Instant) {
    if !map.contains_key(key_id) {
        map.insert(key_id.to_owned(), new);
    }
    map.get_mut(key_id).expect("inserted above")
}

/// Token buckets per key id, in this process (the embedded store; with DynamoDB, [`shared`] limits
/// apply and these buckets only stand in while the store cannot answer).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// Takes one request for `key_id` under `limit`.
    pub fn take(&self, key_id: &str, limit: Limit) -> Decision {
        let capacity = f64::from(limit.limit);
        let per_sec = capacity / limit.window.as_secs_f64().max(0.001);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let (tokens, at) = bucket(&mut buckets, key_id, (capacity, now));
        *tokens = (*tokens + (now - *at).as_secs_f64() * per_sec).min(capacity);
        *at = now;
        let allowed = *tokens >= 1.0;
        if allowed {
            *tokens -= 1.0;
        }
        let missing = if allowed { 0.0 } else { 1.0 - *tokens };
        Decision {
            allowed,
            limit: limit.limit,
            remaining: tokens.floor() as u32,
            reset: Duration::from_secs_f64((capacity - *tokens) / per_sec),
            retry_after: Duration::from_secs_f64(missing / per_sec),
        }
    }
}

/// Limits shared by every replica on one store (the DynamoDB backend).
///
/// Requests: a fixed-window counter per key in the store, `rl#{key}#{window}#{n}` for the `n`-th
/// window of `window` seconds since the Unix epoch, incremented by a conditional atomic add that
/// refuses to pass the limit. Within one window the count across all replicas never exceeds the
/// limit; across a window boundary a burst can reach twice the limit within one window's length
/// (the same worst case as a token bucket: a full bucket plus one window's refill). Replica clocks
/// place requests near a boundary in the window their own clock names, so clock skew moves the
/// boundary by the skew, no more. When the store cannot answer, each replica falls back to its own
/// bucket for that request: during a store outage the worst case is one full limit per replica.
///
/// Tokens per minute: a counter per key and UTC minute, increased by a request's tokens when it
/// ends. A request may start while this minute's tokens plus what the previous minute used beyond
/// the budget (an overdraft carries over, as in the local bucket) are below the budget. Requests in
/// flight on any replica are not counted until they end, so the overshoot is what the requests
/// admitted before the counter reached the budget go on to use.
pub(crate) mod shared {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use proxy_store::{Store, StoreError};

    use super::{Decision, Limit, within};

    fn now_secs() -> f64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default()
    }

    /// Takes one request for `key_id` from the shared window counter.
    pub async fn take(store: &Store, key_id: &str, limit: Limit) -> Result<Decision, StoreError> {
        let window = limit.window.as_secs().max(1);
        let now = now_secs();
        let n = now as u64 / window;
        let end = (n + 1) * window;
        let left = Duration::from_secs_f64((end as f64 - now).max(0.0));
        let counter = format!("rl#{key_id}#{window}#{n}");
        let taken = within(store.add_to_counter(
            &counter,
            1,
            Some(u64::from(limit.limit)),
            end as i64 + 60,
        ))
        .await?;
        Ok(match taken {
            Some(used) => Decision {
                allowed: true,
                limit: limit.limit,
                remaining: limit.limit.saturating_sub(used as u32),
                reset: left,
                retry_after: Duration::ZERO,
            },
            None => Decision {
                allowed: false,
                limit: limit.limit,
                remaining: 0,
                reset: left,
                retry_after: left,
            },
        })
    }

    /// The per-minute token counter of `minute` (minutes since the epoch).
    fn minute_counter(key_id: &str, minute: u64) -> String {
        format!("tpm#{key_id}#{minute}")
    }

    /// `None` if the key may start a request now, else how long until it may.
    pub async fn tokens_wait(
        store: &Store,
        key_id: &str,
        per_minute: u64,
    ) -> Result<Option<Duration>, StoreError> {
        let now = now_secs();
        let minute = now as u64 / 60;
        let left = ((minute + 1) * 60) as f64 - now;
        let (this, last) = (
            minute_counter(key_id, minute),
            minute_counter(key_id, minute.saturating_sub(1)),
        );
        let (this, last) = tokio::join!(within(store.counter(&this)), within(store.counter(&last)));
        let used = this? + last?.saturating_sub(per_minute);
        Ok((used >= per_minute).then(|| Duration::from_secs_f64(left.max(1.0))))
    }

    /// Adds a finished request's tokens to this minute's counter.
    pub async fn charge_tokens(store: Store, key_id: String, tokens: u64) {
        if tokens == 0 {
            return;
        }
        let counter = minute_counter(&key_id, now_secs() as u64 / 60);
        let expires_at = proxy_store::now() + 180;
        if let Err(e) = store
            .add_to_counter(&counter, tokens, None, expires_at)
            .await
        {
            tracing::warn!(error = %e, "cannot add tokens to the shared per-minute counter");
        }
    }
}

/// Usage records go through a bounded queue to a writer that stores them in batches. A full queue
/// (the store far behind) drops records and counts them; a store error is logged and counted, and
/// the batch retried once; neither fails a request.
#[derive(Debug)]
pub struct UsageSink {
    tx: Mutex<Option<tokio::sync::mpsc::Sender<UsageRecord>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    dropped: prometheus::IntCounter,
    failed: prometheus::IntCounter,
}

impl UsageSink {
    /// Starts the writer.
    pub fn start(
        store: Store,
        capacity: usize,
        dropped: prometheus::IntCounter,
        failed: prometheus::IntCounter,
    ) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<UsageRecord>(capacity);
        let failed_w = failed.clone();
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            loop {
                let n = rx.recv_many(&mut batch, 256).await;
                if n == 0 {
                    return;
                }
                // Gather what arrives within a moment into the same write.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while batch.len() < 1024
                    && let Ok(r) = rx.try_recv()
                {
                    batch.push(r);
                }
                // Shared with the store's thread, not copied; freed here, where they were made.
                let records: std::sync::Arc<[UsageRecord]> = batch.drain(..).collect();
                let mut result = store.insert_usage_shared(records.clone()).await;
                if result.is_err() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    result = store.insert_usage_shared(records.clone()).await;
                }
                match result {
                    Ok(_) => {
                        // Keep `last_used_at` of store keys current, once per key per batch.
                        let mut last: HashMap<&str, i64> = HashMap::default();
                        for r in records.iter().filter(|r| r.key_id.starts_with("key_")) {
                            let t = last.entry(r.key_id.as_str()).or_insert(r.timestamp);
                            *t = (*t).max(r.timestamp);
                        }
                        for (key_id, at) in last {
                            if let Err(e) = store.touch_key(key_id, at).await {
                                tracing::warn!(error = %e, key_id, "cannot update last use of a key");
                            }
                        }
                    }
                    Err(e) => {
                        failed_w.inc_by(records.len() as u64);
                        tracing::error!(error = %e, records = records.len(), "cannot store usage records");
                    }
                }
            }
        });
        UsageSink {
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            dropped,
            failed,
        }
    }

    /// Queues a record; never waits.
    pub fn record(&self, record: UsageRecord) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) => {
                if let Err(e) = tx.try_send(record) {
                    self.dropped.inc();
                    tracing::warn!(error = %e, "usage queue full or closed: record dropped");
                }
            }
            None => {
                self.dropped.inc();
                tracing::warn!("usage recorded after shutdown: record dropped");
            }
        }
    }

    /// Closes the queue and waits until every queued record is stored (or failed).
    pub async fn flush(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(w) = writer {
            let _ = w.await;
        }
        let _ = &self.failed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shared_token_budgets_carry_the_last_minutes_overdraft() {
        let store = Store::Embedded(
            proxy_store::EmbeddedStore::open(std::path::Path::new(":memory:")).unwrap(),
        );
        // Counters are per clock minute: start well inside one.
        while proxy_store::now() % 60 > 57 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let minute = proxy_store::now() as u64 / 60;
        let exp = proxy_store::now() + 120;
        assert_eq!(shared::tokens_wait(&store, "k", 30).await.unwrap(), None);
        // Last minute used 50 of 30: 20 carry over, this minute may use 10 more.
        let last = format!("tpm#k#{}", minute - 1);
        store.add_to_counter(&last, 50, None, exp).await.unwrap();
        assert_eq!(shared::tokens_wait(&store, "k", 30).await.unwrap(), None);
        shared::charge_tokens(store.clone(), "k".into(), 9).await;
        assert_eq!(shared::tokens_wait(&store, "k", 30).await.unwrap(), None);
        shared::charge_tokens(store.clone(), "k".into(), 1).await;
        let wait = shared::tokens_wait(&store, "k", 30).await.unwrap();
        assert!(wait.is_some_and(|w| w <= Duration::from_secs(60)));
        // Another key is not affected.
        assert_eq!(
            shared::tokens_wait(&store, "other", 30).await.unwrap(),
            None
        );
        assert_eq!(
            proxy_store::now() as u64 / 60,
            minute,
            "one minute throughout"
        );
    }

    #[test]
    fn token_budgets_refuse_after_an_overdraw_until_refilled() {
        let b = TokenBudgets::default();
        assert_eq!(b.wait("k", 600), None);
        b.charge("k", 600, 1000);
        let wait = b.wait("k", 600).expect("overdrawn");
        assert!(
            wait > Duration::from_secs(39) && wait <= Duration::from_secs(41),
            "{wait:?}"
        );
        assert_eq!(b.wait("other", 600), None);
    }

    #[test]
    fn buckets_allow_the_limit_then_refuse_with_a_retry_time() {
        let rl = RateLimiter::default();
        let limit = Limit {
            limit: 3,
            window: Duration::from_secs(60),
        };
        for left in [2, 1, 0] {
            let d = rl.take("k", limit);
            assert!(d.allowed && d.remaining == left);
        }
        let d = rl.take("k", limit);
        assert!(!d.allowed);
        assert!(
            d.retry_after > Duration::from_secs(19) && d.retry_after <= Duration::from_secs(20),
            "{:?}",
            d.retry_after
        );
        assert!(rl.take("other", limit).allowed, "buckets are per key");
    }
}
