//! `proxy-store`: the gateway's persistent state (API keys, usage records with daily aggregates,
//! the counters of limits shared by replicas, and cached responses) behind one interface, [`Store`],
//! with an embedded backend (SQLite in WAL mode, so `proxy-server` and `proxy-admin` can use the same
//! file at the same time) and a DynamoDB backend (tables `{prefix}-api-keys`, `-usage` and `-cache`,
//! created by [`setup_tables`], never by the server). [`PriceTable`] turns usage into cost estimates.
//!
//! It holds no secrets: keys are stored as SHA-256 hashes (see `proxy-auth`), with a short
//! displayable prefix. Caching of keys and the rate-limit policy live in `proxy-http`; the store only
//! offers the atomic bounded counter they are built on ([`Store::add_to_counter`]).

mod dynamo;
mod embedded;
mod prices;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use dynamo::{DynamoStore, setup_tables, table_names};
pub use embedded::EmbeddedStore;
pub use prices::{Price, PriceTable};

/// Per-key limits; `None` means the gateway's defaults apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    /// Requests per window.
    pub rate_limit_requests: Option<u32>,
    /// The window, in seconds.
    pub rate_limit_window_secs: Option<u32>,
    /// Input + output tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Tokens per calendar month (UTC).
    pub monthly_token_budget: Option<u64>,
}

/// An API key as stored: never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Stable id, e.g. `key_3f9a...`.
    pub key_id: String,
    /// SHA-256 of the key, lowercase hex.
    pub key_hash: String,
    /// A displayable prefix, e.g. `sk-4Fz9qL`.
    pub prefix: String,
    /// Owner.
    pub user_id: String,
    /// A name for people.
    pub name: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds of the last request, updated now and then (not per request).
    pub last_used_at: Option<i64>,
    /// False once revoked.
    pub active: bool,
    /// Limits.
    pub limits: KeyLimits,
    /// Models the key may use (client names); `None`: all.
    pub allowed_models: Option<Vec<String>>,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
}

/// A change to a key; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyUpdate {
    /// New name.
    pub name: Option<String>,
    /// New limits (replaced whole).
    pub limits: Option<KeyLimits>,
    /// New allowed models (`Some(None)` clears the list).
    pub allowed_models: Option<Option<Vec<String>>>,
    /// Activate or deactivate.
    pub active: Option<bool>,
    /// New metadata (replaced whole).
    pub metadata: Option<Map<String, Value>>,
}

impl KeyUpdate {
    /// Applies the change to a key.
    pub fn apply(&self, key: &mut ApiKey) {
        if let Some(v) = &self.name {
            key.name = v.clone();
        }
        if let Some(v) = &self.limits {
            key.limits = v.clone();
        }
        if let Some(v) = &self.allowed_models {
            key.allowed_models = v.clone();
        }
        if let Some(v) = self.active {
            key.active = v;
        }
        if let Some(v) = &self.metadata {
            key.metadata = v.clone();
        }
    }
}

/// One served request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The request id (`req_...`); a record is stored once per id.
    pub request_id: String,
    /// The key used.
    pub key_id: String,
    /// Its owner.
    pub user_id: String,
    /// The name the client sent.
    pub model: String,
    /// What Bedrock got.
    pub bedrock_model: String,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache reads.
    pub cache_read_input_tokens: u64,
    /// Cache writes.
    pub cache_creation_input_tokens: u64,
    /// Total latency.
    pub latency_ms: u64,
    /// Time to first token (streams).
    pub ttft_ms: Option<u64>,
    /// HTTP status.
    pub status: u16,
    /// Streamed or not.
    pub stream: bool,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Which usage to report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQuery {
    /// One key.
    pub key_id: Option<String>,
    /// One user.
    pub user_id: Option<String>,
    /// From this UTC day on (`YYYY-MM-DD`).
    pub since: Option<String>,
}

/// Usage of one key, one UTC day, one model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The key.
    pub key_id: String,
    /// Its owner.
    pub user_id: String,
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// The client's model name.
    pub model: String,
    /// Requests.
    pub requests: u64,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cache reads.
    pub cache_read_input_tokens: u64,
    /// Cache writes.
    pub cache_creation_input_tokens: u64,
}

/// What went wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such key.
    #[error("no key with id {0}")]
    NotFound(String),
    /// A key with that id or hash exists.
    #[error("a key with this id or hash already exists")]
    Conflict,
    /// The backend failed.
    #[error("store backend error: {0}")]
    Backend(String),
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
pub fn utc_day(unix_secs: i64) -> String {
    let mut day = String::with_capacity(10);
    push_day(&mut day, unix_secs);
    day
}

/// Appends the UTC day of a Unix time as `YYYY-MM-DD`.
fn push_day(out: &mut String, unix_secs: i64) {
    // Howard Hinnant's days-to-civil algorithm.
    let z = unix_secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // Written digit by digit: `format!` with padding cost more than the arithmetic (it runs for
    // every request's limits and usage record).
    push_digits(out, y as u64, 4);
    out.push('-');
    push_digits(out, m as u64, 2);
    out.push('-');
    push_digits(out, d as u64, 2);
}

/// RFC 3339 (UTC, seconds) of a Unix time: `YYYY-MM-DDTHH:MM:SSZ`, in a string of exactly its
/// length (a header value takes it without a copy).
pub fn utc_time(unix_secs: i64) -> String {
    let mut out = String::with_capacity(20);
    push_day(&mut out, unix_secs);
    let s = unix_secs.rem_euclid(86_400) as u64;
    out.push('T');
    push_digits(&mut out, s / 3600, 2);
    out.push(':');
    push_digits(&mut out, s / 60 % 60, 2);
    out.push(':');
    push_digits(&mut out, s % 60, 2);
    out.push('Z');
    out
}

/// Appends the last `width` decimal digits of `n`, zero-padded.
fn push_digits(out: &mut String, n: u64, width: u32) {
    for p in (0..width).rev() {
        out.push(char::from(b'0' + (n / 10u64.pow(p) % 10) as u8));
    }
}

/// The current Unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The largest value [`Store::cache_put`] takes.
pub const MAX_CACHE_VALUE_BYTES: usize = 350 * 1024;

/// The store the gateway and the admin CLI use; the backend is chosen by `STORE_BACKEND`.
#[derive(Debug, Clone)]
pub enum Store {
    /// SQLite file at `STORE_PATH`.
    Embedded(EmbeddedStore),
    /// DynamoDB tables `{DYNAMODB_TABLE_PREFIX}-api-keys`, `-usage`, `-cache`.
    Dynamo(DynamoStore),
}

/// Opens the store the settings name: `STORE_BACKEND` (`embedded` or `dynamodb`), `STORE_PATH`
/// (embedded), `DYNAMODB_TABLE_PREFIX` (DynamoDB). The error names the setting at fault.
pub async fn open(
    backend: &str,
    path: &std::path::Path,
    table_prefix: &str,
) -> Result<Store, String> {
    match backend {
        "embedded" => EmbeddedStore::open(path)
            .map(Store::Embedded)
            .map_err(|e| format!("STORE_PATH {}: {e}", path.display())),
        "dynamodb" => DynamoStore::connect(dynamodb_client().await, table_prefix)
            .await
            .map(Store::Dynamo)
            .map_err(|e| {
                format!("STORE_BACKEND=dynamodb, DYNAMODB_TABLE_PREFIX={table_prefix}: {e}")
            }),
        other => Err(format!(
            "STORE_BACKEND `{other}` is not a backend (use `embedded` or `dynamodb`)"
        )),
    }
}

/// A DynamoDB client from the standard AWS configuration (`AWS_ENDPOINT_URL_DYNAMODB` included).
pub async fn dynamodb_client() -> aws_sdk_dynamodb::Client {
    // Bounded calls: a hanging DynamoDB must surface as an error (the gateway then falls back or
    // answers 529), not hold requests. Each attempt gets 5 s, a call with its retries 15 s.
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(5))
        .operation_timeout(std::time::Duration::from_secs(15))
        .build();
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .timeout_config(timeouts)
        .load()
        .await;
    aws_sdk_dynamodb::Client::new(&conf)
}

/// Calls the backend's method and awaits it. DynamoDB's futures (the SDK's calls) are boxed: they
/// are kilobytes, and a future holds its largest await inline, so every caller's future (each
/// request's, through authentication, limits and the cache) would carry one and be copied whole
/// each time it moves, with the embedded store as well.
macro_rules! dispatch {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Store::Embedded($s) => $call.await,
            Store::Dynamo($s) => Box::pin($call).await,
        }
    };
}

impl Store {
    /// Stores a new key.
    pub async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        dispatch!(self, s => s.create_key(key))
    }

    /// The key with this hash.
    pub async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        dispatch!(self, s => s.key_by_hash(hash))
    }

    /// The key with this id.
    pub async fn key_by_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        dispatch!(self, s => s.key_by_id(key_id))
    }

    /// All keys, or a user's, oldest first.
    pub async fn list_keys(&self, user_id: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        dispatch!(self, s => s.list_keys(user_id))
    }

    /// Applies a change; returns the key as it is now.
    pub async fn update_key(&self, key_id: &str, update: &KeyUpdate) -> Result<ApiKey, StoreError> {
        dispatch!(self, s => s.update_key(key_id, update))
    }

    /// Records that the key was used at `at`.
    pub async fn touch_key(&self, key_id: &str, at: i64) -> Result<(), StoreError> {
        dispatch!(self, s => s.touch_key(key_id, at))
    }

    /// Stores usage records (each request id once) and adds them to the daily aggregates.
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> Result<usize, StoreError> {
        match self {
            // The embedded store's thread needs records of its own.
            Store::Embedded(s) => s.insert_usage(records.into()).await,
            Store::Dynamo(s) => Box::pin(s.insert_usage(records)).await,
        }
    }

    /// [`Store::insert_usage`] of records the caller holds in an `Arc`: the embedded store hands
    /// them to its blocking thread without copying them (five strings per record).
    pub async fn insert_usage_shared(
        &self,
        records: Arc<[UsageRecord]>,
    ) -> Result<usize, StoreError> {
        match self {
            Store::Embedded(s) => s.insert_usage(records).await,
            Store::Dynamo(s) => Box::pin(s.insert_usage(&records)).await,
        }
    }

    /// Daily aggregates per key and model.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        dispatch!(self, s => s.usage(query))
    }

    /// Adds `amount` to the counter `name` unless that would take it above `max`, atomically
    /// across every process sharing the store. Returns the new value, or `None` when refused (the
    /// counter is then unchanged). Counter names are meant to be unique per time window (they are
    /// never reset); `expires_at` (Unix seconds) only lets the store clean them up.
    pub async fn add_to_counter(
        &self,
        name: &str,
        amount: u64,
        max: Option<u64>,
        expires_at: i64,
    ) -> Result<Option<u64>, StoreError> {
        dispatch!(self, s => s.add_to_counter(name, amount, max, expires_at))
    }

    /// A counter's value (0 when it does not exist).
    pub async fn counter(&self, name: &str) -> Result<u64, StoreError> {
        dispatch!(self, s => s.counter(name))
    }

    /// A cached value that has not expired.
    pub async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, s => s.cache_get(key))
    }

    /// Stores a value until `expires_at` (Unix seconds), unless an unexpired one is there: the
    /// first value stays until it expires, so concurrent fills of one key agree. Values over
    /// [`MAX_CACHE_VALUE_BYTES`] are refused on every backend (DynamoDB items end at 400 KB).
    pub async fn cache_put(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        if value.len() > MAX_CACHE_VALUE_BYTES {
            return Err(StoreError::Backend(format!(
                "cache value of {} bytes is over the {MAX_CACHE_VALUE_BYTES}-byte limit",
                value.len()
            )));
        }
        dispatch!(self, s => s.cache_put(key, value, expires_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_days() {
        assert_eq!(utc_day(0), "1970-01-01");
        assert_eq!(utc_day(951_782_400), "2000-02-29");
        assert_eq!(utc_day(1_795_651_199), "2026-11-25");
        assert_eq!(utc_day(-1), "1969-12-31");
        assert_eq!(utc_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_time(951_782_400 + 3_723), "2000-02-29T01:02:03Z");
        assert_eq!(utc_time(1_795_651_199), "2026-11-25T23:59:59Z");
        assert_eq!(utc_time(-1), "1969-12-31T23:59:59Z");
        let t = utc_time(1_795_651_199);
        assert_eq!(
            t.capacity(),
            t.len(),
            "no spare room: a header value takes it as it is"
        );
    }
}
