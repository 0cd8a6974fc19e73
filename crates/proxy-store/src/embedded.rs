//! The embedded backend: one SQLite file (bundled library, WAL journal, busy timeout), used by the
//! server and the admin CLI at the same time. Calls run on tokio's blocking pool; reads, writes and
//! WAL checkpoints each on a connection of their own (see [`EmbeddedStore`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{ApiKey, KeyLimits, KeyUpdate, StoreError, UsageQuery, UsageRecord, UsageRow, utc_day};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_keys (
    key_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_used_at INTEGER,
    active INTEGER NOT NULL,
    limits TEXT NOT NULL,
    allowed_models TEXT,
    metadata TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys(user_id);
CREATE TABLE IF NOT EXISTS usage (
    request_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    model TEXT NOT NULL,
    bedrock_model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_input_tokens INTEGER NOT NULL,
    cache_creation_input_tokens INTEGER NOT NULL,
    latency_ms INTEGER NOT NULL,
    ttft_ms INTEGER,
    status INTEGER NOT NULL,
    stream INTEGER NOT NULL,
    timestamp INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS usage_daily (
    key_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    day TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_input_tokens INTEGER NOT NULL,
    cache_creation_input_tokens INTEGER NOT NULL,
    PRIMARY KEY (key_id, day, model)
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cache (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
";

/// The SQLite store.
///
/// A file store has three connections. Writes take turns on one. Reads (key lookups, counters,
/// cache hits, usage queries) have one of their own: WAL lets them read the last commit while the
/// writer writes or waits on the disk. And WAL checkpoints, the only step that waits for `fsync`
/// (`synchronous = NORMAL`), run on a thread of their own, so neither waits for them. On a disk
/// busy with other files' writeback, an `fsync` can take seconds (ext4 orders them behind other
/// dirty data); when the checkpoint ran on the one connection, every key lookup queued behind it
/// and timed out.
#[derive(Debug, Clone)]
pub struct EmbeddedStore {
    writer: Lane,
    /// The writer itself in an in-memory store (its connections would not share one database).
    reader: Lane,
    /// Ends the checkpoint thread when the last clone is dropped; `None` in memory.
    _checkpoints: Option<Arc<std::sync::mpsc::Sender<()>>>,
}

/// One connection, and the operations queued on it.
#[derive(Debug, Clone)]
struct Lane {
    conn: Arc<Mutex<Connection>>,
    /// Operations on a blocking thread at once. They take turns on the connection anyway; without
    /// a bound, a burst (every request missing the key cache at once) parked a blocking thread
    /// per operation on the mutex: up to 70 threads after 1,000 streams opened together (tokio
    /// allows 512). Two: one running, the next one ready; the rest wait as tasks.
    gate: Arc<tokio::sync::Semaphore>,
}

/// See [`Lane::gate`].
const BLOCKING_OPERATIONS: usize = 2;

/// Rows of a usage batch written between two offers of the CPU to other threads (see
/// `EmbeddedStore::insert_usage`).
const YIELD_EVERY: usize = 16;

/// How often the checkpoint thread copies the WAL's pages into the database file. SQLite's own
/// automatic checkpoint (on the writer, at 1,000 pages) is switched off.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl Lane {
    fn new(conn: Connection) -> Self {
        Lane {
            conn: Arc::new(Mutex::new(conn)),
            gate: Arc::new(tokio::sync::Semaphore::new(BLOCKING_OPERATIONS)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        // Held by the operation itself, so one whose caller gave up still counts until it ends.
        let turn = self.gate.clone().acquire_owned().await.map_err(backend)?;
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard)
        })
        .await
        .map_err(backend)?
    }
}

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// A connection to the store file with the settings every connection needs.
fn connect(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)
        .map_err(|e| backend(format!("cannot open {}: {e}", path.display())))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(backend)?;
    Ok(conn)
}

/// Starts the thread that checkpoints the WAL every [`CHECKPOINT_EVERY`], on a connection of its
/// own, until the returned sender is dropped; then it checkpoints once more and ends.
fn checkpoint_thread(path: &Path) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    use std::sync::mpsc::RecvTimeoutError;
    let conn = connect(path)?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("store-checkpoint".into())
        .spawn(move || {
            loop {
                let last = matches!(
                    stopped.recv_timeout(CHECKPOINT_EVERY),
                    Err(RecvTimeoutError::Disconnected)
                );
                // PASSIVE: copies what no reader still needs, never waits for or blocks anyone.
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
                if last {
                    break;
                }
            }
        })
        .map_err(|e| backend(format!("cannot start the checkpoint thread: {e}")))?;
    Ok(stop)
}

fn key_from_row(row: &Row<'_>) -> rusqlite::Result<ApiKey> {
    let json = |i: usize, row: &Row<'_>| -> rusqlite::Result<Option<String>> { row.get(i) };
    let limits: KeyLimits =
        serde_json::from_str(&json(8, row)?.unwrap_or_default()).unwrap_or_default();
    let allowed_models = json(9, row)?.and_then(|s| serde_json::from_str(&s).ok());
    let metadata = serde_json::from_str(&json(10, row)?.unwrap_or_default()).unwrap_or_default();
    Ok(ApiKey {
        key_id: row.get(0)?,
        key_hash: row.get(1)?,
        prefix: row.get(2)?,
        user_id: row.get(3)?,
        name: row.get(4)?,
        created_at: row.get(5)?,
        last_used_at: row.get(6)?,
        active: row.get::<_, i64>(7)? != 0,
        limits,
        allowed_models,
        metadata,
    })
}

const KEY_COLUMNS: &str = "key_id, key_hash, prefix, user_id, name, created_at, last_used_at, active, limits, allowed_models, metadata";

impl EmbeddedStore {
    /// Opens (creating if needed) the store file; `:memory:` gives a private in-memory store.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| backend(format!("cannot create {}: {e}", dir.display())))?;
        }
        let conn = connect(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(backend)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(backend)?;
        conn.execute_batch(SCHEMA).map_err(backend)?;
        if path.as_os_str() == ":memory:" {
            let writer = Lane::new(conn);
            return Ok(EmbeddedStore {
                reader: writer.clone(),
                writer,
                _checkpoints: None,
            });
        }
        conn.pragma_update(None, "wal_autocheckpoint", 0)
            .map_err(backend)?;
        let reader = connect(path)?;
        reader
            .pragma_update(None, "query_only", true)
            .map_err(backend)?;
        Ok(EmbeddedStore {
            writer: Lane::new(conn),
            reader: Lane::new(reader),
            _checkpoints: Some(Arc::new(checkpoint_thread(path)?)),
        })
    }

    /// Runs a write on the writer, after the writes before it.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.writer.run(f).await
    }

    /// Runs a read on the reader: it never waits behind a write.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.reader.run(f).await
    }

    pub(crate) async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.write(move |c| {
            let limits = serde_json::to_string(&key.limits).map_err(backend)?;
            let models = key.allowed_models.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default());
            let metadata = serde_json::to_string(&key.metadata).map_err(backend)?;
            c.execute(
                &format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                params![key.key_id, key.key_hash, key.prefix, key.user_id, key.name, key.created_at, key.last_used_at,
                    i64::from(key.active), limits, models, metadata],
            )
            .map_err(|e| match e {
                rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation => StoreError::Conflict,
                other => backend(other),
            })?;
            Ok(())
        })
        .await
    }

    async fn key_where(
        &self,
        column: &'static str,
        value: &str,
    ) -> Result<Option<ApiKey>, StoreError> {
        let value = value.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {KEY_COLUMNS} FROM api_keys WHERE {column} = ?1"
            ))
            .map_err(backend)?
            .query_row([value], key_from_row)
            .optional()
            .map_err(backend)
        })
        .await
    }

    pub(crate) async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_where("key_hash", hash).await
    }

    pub(crate) async fn key_by_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        self.key_where("key_id", key_id).await
    }

    pub(crate) async fn list_keys(&self, user_id: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let user_id = user_id.map(str::to_owned);
        self.read(move |c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE ?1 IS NULL OR user_id = ?1 ORDER BY created_at, key_id"
                ))
                .map_err(backend)?;
            let rows = stmt.query_map([user_id], key_from_row).map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    pub(crate) async fn update_key(
        &self,
        key_id: &str,
        update: &KeyUpdate,
    ) -> Result<ApiKey, StoreError> {
        let Some(mut key) = self.key_by_id(key_id).await? else {
            return Err(StoreError::NotFound(key_id.to_owned()));
        };
        update.apply(&mut key);
        let k = key.clone();
        self.write(move |c| {
            let changed = c
                .execute(
                    "UPDATE api_keys SET name = ?2, limits = ?3, allowed_models = ?4, active = ?5, metadata = ?6 WHERE key_id = ?1",
                    params![
                        k.key_id,
                        k.name,
                        serde_json::to_string(&k.limits).map_err(backend)?,
                        k.allowed_models.as_ref().map(|m| serde_json::to_string(m).unwrap_or_default()),
                        i64::from(k.active),
                        serde_json::to_string(&k.metadata).map_err(backend)?
                    ],
                )
                .map_err(backend)?;
            if changed == 0 {
                return Err(StoreError::NotFound(k.key_id.clone()));
            }
            Ok(())
        })
        .await?;
        Ok(key)
    }

    pub(crate) async fn touch_key(&self, key_id: &str, at: i64) -> Result<(), StoreError> {
        let key_id = key_id.to_owned();
        self.write(move |c| {
            c.prepare_cached("UPDATE api_keys SET last_used_at = MAX(COALESCE(last_used_at, 0), ?2) WHERE key_id = ?1").map_err(backend)?.execute(params![key_id, at],
            )
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn insert_usage(
        &self,
        records: Arc<[UsageRecord]>,
    ) -> Result<usize, StoreError> {
        self.write(move |c| {
            let tx = c.transaction().map_err(backend)?;
            // The daily aggregates of the records stored now, summed per (key, day, model) before
            // they are written: one upsert per group instead of one per record.
            let mut daily: Vec<(&UsageRecord, String, [i64; 5])> = Vec::new();
            for (i, r) in records.iter().enumerate() {
                if i % YIELD_EVERY == 0 {
                    // A batch takes a few hundred µs. Where the gateway's threads share a CPU, a
                    // request that arrives meanwhile waited for all of it: the scheduler lets the
                    // writer run on (and the writer, just woken, may even have taken the CPU from a
                    // request). Offering the CPU first and then every few rows bounds that wait to
                    // a few rows' time (the p99 at c=1: docs/BENCHMARKS.md, seventeenth pass).
                    // With nothing else runnable, it returns at once.
                    std::thread::yield_now();
                }
                // Cached statements: parsing the SQL again for every record cost more than running it.
                let new = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO usage VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                    )
                    .map_err(backend)?
                    .execute(params![r.request_id, r.key_id, r.user_id, r.model, r.bedrock_model, r.input_tokens as i64,
                            r.output_tokens as i64, r.cache_read_input_tokens as i64, r.cache_creation_input_tokens as i64,
                            r.latency_ms as i64, r.ttft_ms.map(|t| t as i64), r.status, i64::from(r.stream), r.timestamp],
                    )
                    .map_err(backend)?;
                if new == 0 {
                    // Already recorded (a retried flush): the aggregates already count it.
                    continue;
                }
                let day = utc_day(r.timestamp);
                let sums = [1, r.input_tokens as i64, r.output_tokens as i64,
                    r.cache_read_input_tokens as i64, r.cache_creation_input_tokens as i64];
                match daily.iter_mut().find(|(g, d, _)| g.key_id == r.key_id && g.model == r.model && *d == day) {
                    Some((_, _, total)) => total.iter_mut().zip(sums).for_each(|(t, n)| *t += n),
                    None => daily.push((r, day, sums)),
                }
            }
            for (r, day, [requests, input, output, cache_read, cache_write]) in &daily {
                tx.prepare_cached("INSERT INTO usage_daily VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (key_id, day, model) DO UPDATE SET
                       requests = requests + excluded.requests,
                       input_tokens = input_tokens + excluded.input_tokens,
                       output_tokens = output_tokens + excluded.output_tokens,
                       cache_read_input_tokens = cache_read_input_tokens + excluded.cache_read_input_tokens,
                       cache_creation_input_tokens = cache_creation_input_tokens + excluded.cache_creation_input_tokens").map_err(backend)?
                    .execute(params![r.key_id, r.user_id, day, r.model, requests, input, output, cache_read, cache_write])
                    .map_err(backend)?;
            }
            let inserted = daily.iter().map(|(_, _, sums)| sums[0] as usize).sum();
            tx.commit().map_err(backend)?;
            Ok(inserted)
        })
        .await
    }

    pub(crate) async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let q = query.clone();
        self.read(move |c| {
            let mut stmt = c
                .prepare(
                    "SELECT key_id, user_id, day, model, requests, input_tokens, output_tokens,
                            cache_read_input_tokens, cache_creation_input_tokens
                     FROM usage_daily
                     WHERE (?1 IS NULL OR key_id = ?1) AND (?2 IS NULL OR user_id = ?2) AND (?3 IS NULL OR day >= ?3)
                     ORDER BY day, key_id, model",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![q.key_id, q.user_id, q.since], |row| {
                    Ok(UsageRow {
                        key_id: row.get(0)?,
                        user_id: row.get(1)?,
                        day: row.get(2)?,
                        model: row.get(3)?,
                        requests: row.get::<_, i64>(4)? as u64,
                        input_tokens: row.get::<_, i64>(5)? as u64,
                        output_tokens: row.get::<_, i64>(6)? as u64,
                        cache_read_input_tokens: row.get::<_, i64>(7)? as u64,
                        cache_creation_input_tokens: row.get::<_, i64>(8)? as u64,
                    })
                })
                .map_err(backend)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(backend)
        })
        .await
    }

    pub(crate) async fn add_to_counter(
        &self,
        name: &str,
        amount: u64,
        max: Option<u64>,
        expires_at: i64,
    ) -> Result<Option<u64>, StoreError> {
        if max.is_some_and(|m| amount > m) {
            return Ok(None);
        }
        let name = name.to_owned();
        let now = crate::now();
        self.write(move |c| {
            // Expired counters are dropped now and then, so the table stays small.
            if every_hundredth_call() {
                c.prepare_cached("DELETE FROM counters WHERE expires_at < ?1").map_err(backend)?.execute([now])
                    .map_err(backend)?;
            }
            c.prepare_cached("INSERT INTO counters (name, value, expires_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET value = value + excluded.value, expires_at = excluded.expires_at
                 WHERE ?4 IS NULL OR value + excluded.value <= ?4
                 RETURNING value").map_err(backend)?.query_row(params![name, amount as i64, expires_at, max.map(|m| m as i64)],
                |row| row.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.map(|v| v as u64))
            .map_err(backend)
        })
        .await
    }

    pub(crate) async fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let name = name.to_owned();
        self.read(move |c| {
            c.prepare_cached("SELECT value FROM counters WHERE name = ?1")
                .map_err(backend)?
                .query_row([name], |row| row.get::<_, i64>(0))
                .optional()
                .map(|v| v.unwrap_or(0) as u64)
                .map_err(backend)
        })
        .await
    }

    pub(crate) async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_owned();
        let now = crate::now();
        self.read(move |c| {
            c.prepare_cached("SELECT value FROM cache WHERE key = ?1 AND expires_at > ?2")
                .map_err(backend)?
                .query_row(params![key, now], |row| row.get::<_, String>(0))
                .optional()
                .map_err(backend)
        })
        .await
    }

    pub(crate) async fn cache_put(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let (key, value) = (key.to_owned(), value.to_owned());
        let now = crate::now();
        self.write(move |c| {
            if every_hundredth_call() {
                c.prepare_cached("DELETE FROM cache WHERE expires_at <= ?1")
                    .map_err(backend)?
                    .execute([now])
                    .map_err(backend)?;
            }
            // An unexpired entry stays: the first answer is served until it expires.
            c.prepare_cached(
                "INSERT INTO cache (key, value, expires_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value, \
                 expires_at = excluded.expires_at WHERE cache.expires_at <= ?4",
            )
            .map_err(backend)?
            .execute(params![key, value, expires_at, now])
            .map_err(backend)?;
            Ok(())
        })
        .await
    }
}

/// True on one call in a hundred (for occasional clean-ups of expired rows).
fn every_hundredth_call() -> bool {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    CALLS.fetch_add(1, Ordering::Relaxed).is_multiple_of(100)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn temp_store(name: &str) -> (std::path::PathBuf, EmbeddedStore) {
        let dir =
            std::env::temp_dir().join(format!("proxy-store-unit-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("store.db");
        let store = EmbeddedStore::open(&path).unwrap();
        (path, store)
    }

    fn key(hash: &str) -> ApiKey {
        ApiKey {
            key_id: format!("key_{hash}"),
            key_hash: hash.to_owned(),
            prefix: "sk-test".to_owned(),
            user_id: "u".to_owned(),
            name: "n".to_owned(),
            created_at: 1,
            last_used_at: None,
            active: true,
            limits: KeyLimits::default(),
            allowed_models: None,
            metadata: Default::default(),
        }
    }

    #[tokio::test]
    async fn reads_do_not_wait_for_a_stalled_writer() {
        let (_, store) = temp_store("stalled");
        store.create_key(&key("h1")).await.unwrap();
        store.add_to_counter("c", 3, None, i64::MAX).await.unwrap();
        store.cache_put("k", "v", i64::MAX).await.unwrap();
        // The writer's connection held, as by a commit or an fsync that takes seconds.
        let writer = store.writer.conn.clone();
        let (held, release) = std::sync::mpsc::channel::<()>();
        let (taken, is_taken) = std::sync::mpsc::channel::<()>();
        let holder = std::thread::spawn(move || {
            let _guard = writer.lock().unwrap();
            taken.send(()).unwrap();
            let _ = release.recv();
        });
        is_taken.recv().unwrap();
        let reads = async {
            let key = store.key_by_hash("h1").await.unwrap();
            let counter = store.counter("c").await.unwrap();
            let cached = store.cache_get("k").await.unwrap();
            (key.map(|k| k.key_id), counter, cached)
        };
        let answered = tokio::time::timeout(Duration::from_secs(5), reads).await;
        drop(held);
        holder.join().unwrap();
        assert_eq!(
            answered.expect("the reads waited for the writer"),
            (Some("key_h1".to_owned()), 3, Some("v".to_owned()))
        );
    }

    #[tokio::test]
    async fn the_wal_is_checkpointed_off_the_writer() {
        let (path, store) = temp_store("checkpoint");
        let autocheckpoint: i64 = store
            .writer
            .conn
            .lock()
            .unwrap()
            .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
            .unwrap();
        assert_eq!(autocheckpoint, 0, "the writer never checkpoints itself");
        let before = std::fs::metadata(&path).unwrap().len();
        // About 200 KB of rows: far below SQLite's automatic checkpoint (1,000 pages), so only
        // the checkpoint thread puts them into the database file.
        for i in 0..500 {
            store
                .cache_put(&format!("k{i}"), &"x".repeat(400), i64::MAX)
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < before + 200_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "the database file stayed at {} bytes",
                std::fs::metadata(&path).unwrap().len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            store.cache_get("k499").await.unwrap().map(|v| v.len()),
            Some(400)
        );
    }

    #[tokio::test]
    async fn an_in_memory_store_reads_its_own_writes() {
        let store = EmbeddedStore::open(Path::new(":memory:")).unwrap();
        store.create_key(&key("h2")).await.unwrap();
        assert!(store._checkpoints.is_none());
        assert_eq!(
            store.key_by_hash("h2").await.unwrap().map(|k| k.key_id),
            Some("key_h2".to_owned())
        );
    }
}
