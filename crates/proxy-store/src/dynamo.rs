//! The DynamoDB backend: tables `{prefix}-api-keys`, `{prefix}-usage`, `{prefix}-cache`, created by
//! [`setup_tables`] (never by the server). Keys are found by hash through a GSI; usage records are
//! written once per request id together with their daily aggregate, in one transaction.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, Projection, ProjectionType, Put, ReturnValue, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};

use crate::{ApiKey, KeyUpdate, StoreError, UsageQuery, UsageRecord, UsageRow, utc_day};

type Item = HashMap<String, AttributeValue>;

/// A query or a scan, read to the end page by page.
enum Read {
    Query(aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder),
    Scan(aws_sdk_dynamodb::operation::scan::builders::ScanFluentBuilder),
}

impl Read {
    /// Every item, following `LastEvaluatedKey` until there is none.
    async fn all(self) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let (page, next) = match &self {
                Read::Query(q) => {
                    let out = q
                        .clone()
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| backend(e.into_service_error()))?;
                    (out.items, out.last_evaluated_key)
                }
                Read::Scan(q) => {
                    let out = q
                        .clone()
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(|e| backend(e.into_service_error()))?;
                    (out.items, out.last_evaluated_key)
                }
            };
            items.extend(page.unwrap_or_default());
            match next {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }
}

/// The DynamoDB store.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    keys: String,
    usage: String,
    cache: String,
}

/// A conditional write's output, `None` when its condition did not hold (a macro: each operation
/// has its own error type).
macro_rules! unless_condition_failed {
    ($result:expr) => {
        match $result {
            Ok(out) => Ok(Some(out)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(backend(e.into_service_error())),
        }
    };
}

fn backend(e: impl std::fmt::Debug) -> StoreError {
    StoreError::Backend(format!("{e:?}"))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_s(item: &Item, k: &str) -> String {
    item.get(k)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn get_n(item: &Item, k: &str) -> Option<i64> {
    item.get(k)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
}

fn key_item(k: &ApiKey) -> Item {
    let mut item = Item::from([
        ("key_id".into(), s(&k.key_id)),
        ("key_hash".into(), s(&k.key_hash)),
        ("prefix".into(), s(&k.prefix)),
        ("user_id".into(), s(&k.user_id)),
        ("name".into(), s(&k.name)),
        ("created_at".into(), n(k.created_at)),
        ("active".into(), AttributeValue::Bool(k.active)),
        (
            "limits".into(),
            s(serde_json::to_string(&k.limits).unwrap_or_default()),
        ),
        (
            "metadata".into(),
            s(serde_json::to_string(&k.metadata).unwrap_or_default()),
        ),
    ]);
    if let Some(t) = k.last_used_at {
        item.insert("last_used_at".into(), n(t));
    }
    if let Some(m) = &k.allowed_models {
        item.insert(
            "allowed_models".into(),
            s(serde_json::to_string(m).unwrap_or_default()),
        );
    }
    item
}

fn key_from(item: &Item) -> ApiKey {
    ApiKey {
        key_id: get_s(item, "key_id"),
        key_hash: get_s(item, "key_hash"),
        prefix: get_s(item, "prefix"),
        user_id: get_s(item, "user_id"),
        name: get_s(item, "name"),
        created_at: get_n(item, "created_at").unwrap_or_default(),
        last_used_at: get_n(item, "last_used_at"),
        active: item
            .get("active")
            .and_then(|v| v.as_bool().ok())
            .copied()
            .unwrap_or(false),
        limits: serde_json::from_str(&get_s(item, "limits")).unwrap_or_default(),
        allowed_models: item
            .get("allowed_models")
            .and_then(|v| v.as_s().ok())
            .and_then(|v| serde_json::from_str(v).ok()),
        metadata: serde_json::from_str(&get_s(item, "metadata")).unwrap_or_default(),
    }
}

fn row_from(item: &Item) -> UsageRow {
    let u = |k: &str| get_n(item, k).unwrap_or_default().max(0) as u64;
    UsageRow {
        key_id: get_s(item, "key_id"),
        user_id: get_s(item, "user_id"),
        day: get_s(item, "day"),
        model: get_s(item, "model"),
        requests: u("requests"),
        input_tokens: u("input_tokens"),
        output_tokens: u("output_tokens"),
        cache_read_input_tokens: u("cache_read_input_tokens"),
        cache_creation_input_tokens: u("cache_creation_input_tokens"),
    }
}

/// The three table names for a prefix.
pub fn table_names(prefix: &str) -> [String; 3] {
    [
        format!("{prefix}-api-keys"),
        format!("{prefix}-usage"),
        format!("{prefix}-cache"),
    ]
}

fn attr(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("set")
}

fn key_schema(hash: &str, range: Option<&str>) -> Vec<KeySchemaElement> {
    let mut out = vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .expect("set"),
    ];
    if let Some(r) = range {
        out.push(
            KeySchemaElement::builder()
                .attribute_name(r)
                .key_type(KeyType::Range)
                .build()
                .expect("set"),
        );
    }
    out
}

fn gsi(name: &str, hash: &str, range: Option<&str>) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .set_key_schema(Some(key_schema(hash, range)))
        .projection(
            Projection::builder()
                .projection_type(ProjectionType::All)
                .build(),
        )
        .build()
        .expect("set")
}

/// A table to create: name, attributes, key schema, global secondary indexes.
type TableSpec = (
    String,
    Vec<AttributeDefinition>,
    Vec<KeySchemaElement>,
    Vec<GlobalSecondaryIndex>,
);

/// Creates the tables (and their indexes and TTL) that do not exist yet; returns the names created.
pub async fn setup_tables(client: &Client, prefix: &str) -> Result<Vec<String>, StoreError> {
    let [keys, usage, cache] = table_names(prefix);
    let specs: Vec<TableSpec> = vec![
        (
            keys,
            vec![attr("key_id"), attr("key_hash"), attr("user_id")],
            key_schema("key_id", None),
            vec![
                gsi("key_hash-index", "key_hash", None),
                gsi("user_id-index", "user_id", None),
            ],
        ),
        (
            usage,
            vec![attr("pk"), attr("sk"), attr("agg_user")],
            key_schema("pk", Some("sk")),
            vec![gsi("agg_user-index", "agg_user", Some("sk"))],
        ),
        (
            cache.clone(),
            vec![attr("pk")],
            key_schema("pk", None),
            Vec::new(),
        ),
    ];
    let mut created = Vec::new();
    for (name, attrs, schema, indexes) in specs {
        let result = client
            .create_table()
            .table_name(&name)
            .set_attribute_definitions(Some(attrs))
            .set_key_schema(Some(schema))
            .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await;
        match result {
            Ok(_) => created.push(name),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_in_use_exception()) => {}
            Err(e) => {
                return Err(StoreError::Backend(format!(
                    "cannot create table {name}: {:?}",
                    e.into_service_error()
                )));
            }
        }
    }
    for name in table_names(prefix) {
        for _ in 0..100 {
            let d = client
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .map_err(backend)?;
            if d.table()
                .and_then(|t| t.table_status())
                .is_some_and(|s| s.as_str() == "ACTIVE")
            {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    // Cached responses expire by themselves.
    let ttl = client
        .update_time_to_live()
        .table_name(&cache)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name("expires_at")
                .build()
                .expect("set"),
        )
        .send()
        .await;
    if let Err(e) = ttl {
        let text = format!("{:?}", e.into_service_error());
        if !text.contains("already enabled") && !text.contains("TimeToLive is already") {
            tracing::warn!(error = %text, "cannot enable TTL on the cache table");
        }
    }
    Ok(created)
}

impl DynamoStore {
    /// Connects with the standard AWS configuration (`AWS_ENDPOINT_URL_DYNAMODB` works) and checks
    /// that the tables exist; a missing one is an error that says how to create it.
    pub async fn connect(client: Client, prefix: &str) -> Result<Self, StoreError> {
        let [keys, usage, cache] = table_names(prefix);
        for name in [&keys, &usage, &cache] {
            if let Err(e) = client.describe_table().table_name(name).send().await {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    return Err(StoreError::Backend(format!(
                        "DynamoDB table {name} does not exist: create the tables with `cargo xtask setup-tables` or `proxy-admin setup-tables`"
                    )));
                }
                return Err(StoreError::Backend(format!(
                    "cannot reach DynamoDB table {name}: {:?}",
                    e.into_service_error()
                )));
            }
        }
        Ok(DynamoStore {
            client,
            keys,
            usage,
            cache,
        })
    }

    pub(crate) async fn create_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        if self.key_by_hash(&key.key_hash).await?.is_some() {
            return Err(StoreError::Conflict);
        }
        let r = self
            .client
            .put_item()
            .table_name(&self.keys)
            .set_item(Some(key_item(key)))
            .condition_expression("attribute_not_exists(key_id)")
            .send()
            .await;
        unless_condition_failed!(r)?
            .map(|_| ())
            .ok_or(StoreError::Conflict)
    }

    pub(crate) async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.keys)
            .index_name("key_hash-index")
            .key_condition_expression("key_hash = :h")
            .expression_attribute_values(":h", s(hash))
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?;
        Ok(out.items().first().map(key_from))
    }

    pub(crate) async fn key_by_id(&self, key_id: &str) -> Result<Option<ApiKey>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.keys)
            .key("key_id", s(key_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?;
        Ok(out.item().map(key_from))
    }

    pub(crate) async fn list_keys(&self, user_id: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
        let read = match user_id {
            Some(u) => Read::Query(
                self.client
                    .query()
                    .table_name(&self.keys)
                    .index_name("user_id-index")
                    .key_condition_expression("user_id = :u")
                    .expression_attribute_values(":u", s(u)),
            ),
            None => Read::Scan(self.client.scan().table_name(&self.keys)),
        };
        let mut keys: Vec<ApiKey> = read.all().await?.iter().map(key_from).collect();
        keys.sort_by(|a, b| (a.created_at, &a.key_id).cmp(&(b.created_at, &b.key_id)));
        Ok(keys)
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
        let r = self
            .client
            .put_item()
            .table_name(&self.keys)
            .set_item(Some(key_item(&key)))
            .condition_expression("attribute_exists(key_id)")
            .send()
            .await;
        unless_condition_failed!(r)?
            .map(|_| key)
            .ok_or_else(|| StoreError::NotFound(key_id.to_owned()))
    }

    pub(crate) async fn touch_key(&self, key_id: &str, at: i64) -> Result<(), StoreError> {
        let r = self
            .client
            .update_item()
            .table_name(&self.keys)
            .key("key_id", s(key_id))
            .update_expression("SET last_used_at = :t")
            .condition_expression("attribute_exists(key_id) AND (attribute_not_exists(last_used_at) OR last_used_at < :t)")
            .expression_attribute_values(":t", n(at))
            .send()
            .await;
        unless_condition_failed!(r)?;
        Ok(())
    }

    pub(crate) async fn insert_usage(&self, records: &[UsageRecord]) -> Result<usize, StoreError> {
        let mut inserted = 0;
        for r in records {
            let record = Item::from([
                ("pk".into(), s(format!("req#{}", r.request_id))),
                ("sk".into(), s("record")),
                (
                    "record".into(),
                    s(serde_json::to_string(r).unwrap_or_default()),
                ),
            ]);
            let day = utc_day(r.timestamp);
            let put = Put::builder()
                .table_name(&self.usage)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(backend)?;
            let aggregate = Update::builder()
                .table_name(&self.usage)
                .key("pk", s(format!("key#{}", r.key_id)))
                .key("sk", s(format!("{day}#{}", r.model)))
                .update_expression(
                    "ADD #req :one, #in :in, #out :out, #cr :cr, #cw :cw SET #k = :k, #u = :u, #au = :u, #d = :d, #m = :m",
                )
                .expression_attribute_names("#req", "requests")
                .expression_attribute_names("#in", "input_tokens")
                .expression_attribute_names("#out", "output_tokens")
                .expression_attribute_names("#cr", "cache_read_input_tokens")
                .expression_attribute_names("#cw", "cache_creation_input_tokens")
                .expression_attribute_names("#k", "key_id")
                .expression_attribute_names("#u", "user_id")
                .expression_attribute_names("#au", "agg_user")
                .expression_attribute_names("#d", "day")
                .expression_attribute_names("#m", "model")
                .expression_attribute_values(":one", n(1))
                .expression_attribute_values(":in", n(r.input_tokens))
                .expression_attribute_values(":out", n(r.output_tokens))
                .expression_attribute_values(":cr", n(r.cache_read_input_tokens))
                .expression_attribute_values(":cw", n(r.cache_creation_input_tokens))
                .expression_attribute_values(":k", s(&r.key_id))
                .expression_attribute_values(":u", s(&r.user_id))
                .expression_attribute_values(":d", s(&day))
                .expression_attribute_values(":m", s(&r.model))
                .build()
                .map_err(backend)?;
            let result = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(aggregate).build())
                .send()
                .await;
            match result {
                Ok(_) => inserted += 1,
                // The record exists already (a retried flush): the aggregate already counts it.
                Err(e)
                    if format!("{:?}", e.as_service_error()).contains("ConditionalCheckFailed") => {
                }
                Err(e) => return Err(backend(e.into_service_error())),
            }
        }
        Ok(inserted)
    }

    pub(crate) async fn usage(&self, q: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        // Days sort as strings; "0000" is before every day (DynamoDB rejects empty key values).
        let since = q.since.clone().unwrap_or_else(|| "0000".into());
        let read = if let Some(key_id) = &q.key_id {
            Read::Query(
                self.client
                    .query()
                    .table_name(&self.usage)
                    .key_condition_expression("pk = :p AND sk >= :s")
                    .expression_attribute_values(":p", s(format!("key#{key_id}")))
                    .expression_attribute_values(":s", s(&since)),
            )
        } else if let Some(user_id) = &q.user_id {
            Read::Query(
                self.client
                    .query()
                    .table_name(&self.usage)
                    .index_name("agg_user-index")
                    .key_condition_expression("agg_user = :u AND sk >= :s")
                    .expression_attribute_values(":u", s(user_id))
                    .expression_attribute_values(":s", s(&since)),
            )
        } else {
            Read::Scan(
                self.client
                    .scan()
                    .table_name(&self.usage)
                    .filter_expression("begins_with(pk, :p) AND sk >= :s")
                    .expression_attribute_values(":p", s("key#"))
                    .expression_attribute_values(":s", s(&since)),
            )
        };
        let mut rows: Vec<UsageRow> = read.all().await?.iter().map(row_from).collect();
        rows.retain(|r| q.user_id.as_ref().is_none_or(|u| &r.user_id == u));
        rows.sort_by(|a, b| (&a.day, &a.key_id, &a.model).cmp(&(&b.day, &b.key_id, &b.model)));
        Ok(rows)
    }

    pub(crate) async fn add_to_counter(
        &self,
        name: &str,
        amount: u64,
        max: Option<u64>,
        expires_at: i64,
    ) -> Result<Option<u64>, StoreError> {
        let room = match max {
            Some(m) if amount > m => return Ok(None),
            Some(m) => Some(m - amount),
            None => None,
        };
        let mut update = self
            .client
            .update_item()
            .table_name(&self.cache)
            .key("pk", s(format!("ctr#{name}")))
            .update_expression("ADD #v :a SET expires_at = :e")
            .expression_attribute_names("#v", "v")
            .expression_attribute_values(":a", n(amount))
            .expression_attribute_values(":e", n(expires_at))
            .return_values(ReturnValue::UpdatedNew);
        if let Some(room) = room {
            update = update
                .condition_expression("attribute_not_exists(#v) OR #v <= :r")
                .expression_attribute_values(":r", n(room));
        }
        Ok(unless_condition_failed!(update.send().await)?
            .and_then(|out| out.attributes().and_then(|a| get_n(a, "v")))
            .map(|v| v as u64))
    }

    pub(crate) async fn counter(&self, name: &str) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.cache)
            .key("pk", s(format!("ctr#{name}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?;
        Ok(out.item().and_then(|i| get_n(i, "v")).unwrap_or(0) as u64)
    }

    pub(crate) async fn cache_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.cache)
            .key("pk", s(format!("resp#{key}")))
            .send()
            .await
            .map_err(|e| backend(e.into_service_error()))?;
        // DynamoDB deletes expired items lazily (within days): expiry is checked here.
        Ok(out
            .item()
            .filter(|i| get_n(i, "expires_at").is_some_and(|t| t > crate::now()))
            .map(|i| get_s(i, "v")))
    }

    pub(crate) async fn cache_put(
        &self,
        key: &str,
        value: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // An unexpired entry stays: the first answer is served until it expires.
        let r = self
            .client
            .put_item()
            .table_name(&self.cache)
            .item("pk", s(format!("resp#{key}")))
            .item("v", s(value))
            .item("expires_at", n(expires_at))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(crate::now()))
            .send()
            .await;
        unless_condition_failed!(r)?;
        Ok(())
    }
}
