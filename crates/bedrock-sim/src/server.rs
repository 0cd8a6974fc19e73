//! The HTTP side: routing AWS paths to operations, auth, errors as AWS sends them, event streams,
//! request recording and the control endpoints.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::catalog::{Catalog, Model, ResolveError};
use crate::directives::{BadDirective, Directives, ErrorKind, Fault, extract_markers};
use crate::eventstream::{event_frame, exception_frame};
use crate::faults::{Abort, ConnCtl, Counts, FaultIo, Held, abort_connection};
use crate::generate::{
    Format, Plan, Request as PlanRequest, b64, estimate_input_tokens, last_user_texts, unique_hex,
};
use crate::messages;
use crate::validate::{self, CountInput};

pub(crate) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Largest request body accepted (Bedrock's InvokeModel limit is 25,000,000 bytes).
pub(crate) const MAX_BODY: usize = 25_000_000;

/// A per-model rule of the config file.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelRule {
    /// An exact model id, or a prefix ending in `*`.
    pub model: String,
    /// Directives applied to requests for matching models.
    pub directives: String,
}

impl ModelRule {
    fn matches(&self, model_id: &str) -> bool {
        match self.model.strip_suffix('*') {
            Some(prefix) => model_id.starts_with(prefix),
            None => self.model == model_id,
        }
    }
}

/// The emulator's settings (flags, or the TOML config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Region used in ARNs.
    pub region: String,
    /// Directives for every request.
    pub defaults: String,
    /// Per-model directives.
    #[serde(rename = "rule")]
    pub rules: Vec<ModelRule>,
    /// Models added to (or replacing) the built-in catalog.
    #[serde(rename = "model")]
    pub models: Vec<Model>,
    /// How many received requests `/_sim/requests` keeps (oldest dropped first); 0 keeps none.
    pub record_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            region: "us-east-1".into(),
            defaults: String::new(),
            rules: Vec::new(),
            models: Vec::new(),
            record_limit: 1000,
        }
    }
}

impl Config {
    /// Parses a TOML config file's text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    /// Checks that every directive in the config parses.
    pub fn check(&self) -> Result<(), String> {
        let mut d = Directives::default();
        d.apply(&self.defaults)
            .map_err(|e| format!("defaults: {e}"))?;
        for r in &self.rules {
            d.apply(&r.directives)
                .map_err(|e| format!("rule for {}: {e}", r.model))?;
        }
        Ok(())
    }
}

/// A running emulator's shared state.
#[derive(Debug)]
pub struct Sim {
    config: Config,
    /// Replaced whole when `POST /_sim/models` adds a model, so a request keeps the catalog it
    /// started with.
    catalog: RwLock<Arc<Catalog>>,
    recorded: Mutex<VecDeque<Value>>,
    /// Progress of the streams served, by request id (shown in `/_sim/requests`).
    streams: Mutex<std::collections::HashMap<String, Arc<Mutex<StreamProgress>>>>,
    /// Open connections and requests in progress (`/_sim/connections`).
    counts: Arc<Counts>,
    /// How many requests each `fail_first` key has seen.
    fail_counts: Mutex<std::collections::HashMap<String, u64>>,
}

impl Sim {
    /// Builds the emulator state from a checked config.
    pub fn new(config: Config) -> Arc<Sim> {
        let catalog = Catalog::new(config.models.clone(), &config.region);
        Arc::new(Sim {
            config,
            catalog: RwLock::new(Arc::new(catalog)),
            recorded: Mutex::new(VecDeque::new()),
            streams: Mutex::new(std::collections::HashMap::new()),
            counts: Arc::default(),
            fail_counts: Mutex::default(),
        })
    }

    /// Applies `fail_first=N`: past the first N requests with its key, the faults are dropped.
    pub(crate) fn gate(&self, d: &mut Directives) {
        let Some((n, key)) = &d.fail_first else {
            return;
        };
        let mut counts = self.fail_counts.lock().unwrap_or_else(|e| e.into_inner());
        let seen = counts.entry(key.clone()).or_insert(0);
        *seen += 1;
        if *seen > *n {
            d.error = None;
            d.stream_error = None;
            d.fault = None;
        }
    }

    /// The current catalog.
    pub(crate) fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds a model to the catalog (replacing one of the same id).
    pub fn add_model(&self, model: Model) {
        let mut current = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Catalog::clone(&current);
        next.add(model);
        *current = Arc::new(next);
    }

    pub(crate) fn record(&self, entry: Value) {
        if self.config.record_limit == 0 {
            return;
        }
        let mut rec = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        while rec.len() >= self.config.record_limit {
            rec.pop_front();
        }
        rec.push_back(entry);
    }
}

/// Serves the emulator on `listener` until `shutdown` completes, then drains open connections.
pub async fn run(
    listener: TcpListener,
    sim: Arc<Sim>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let open = Held::open(&sim.counts);
                let ctl = Arc::new(ConnCtl::default());
                let io = FaultIo::new(stream, ctl.clone());
                let sim = sim.clone();
                let req_ctl = ctl.clone();
                let service = service_fn(move |mut req: Request<Incoming>| {
                    let sim = sim.clone();
                    req.extensions_mut().insert(req_ctl.clone());
                    async move { Ok::<_, Infallible>(handle(sim, req).await) }
                });
                let conn = builder.serve_connection(TokioIo::new(io), service).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    tokio::select! {
                        ended = conn => if let Err(e) = ended {
                            tracing::debug!(error = %e, "connection ended with an error");
                        },
                        // A fault ends the connection: dropping it closes (or resets) the socket.
                        _ = ctl.killed() => {}
                    }
                    drop(open);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
    }
    Ok(())
}

pub(crate) fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed_unsync(Full::new(body.into()))
}

pub(crate) fn request_id() -> String {
    let h = unique_hex(32);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

pub(crate) fn json_response(status: u16, body: &Value, rid: &str) -> Response<Body> {
    let mut resp = Response::new(full(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-amzn-requestid", v);
    }
    resp
}

/// An error as AWS rest-json services send it.
#[derive(Debug)]
pub(crate) struct AwsError {
    status: u16,
    code: &'static str,
    pub(crate) message: String,
    extra: Option<Value>,
}

impl AwsError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            status,
            code,
            message: message.into(),
            extra: None,
        }
    }
    fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }
    pub(crate) fn expired() -> Self {
        Self::new(
            403,
            "ExpiredTokenException",
            "The security token included in the request is expired",
        )
    }
    fn from_kind(kind: ErrorKind) -> Self {
        let mut e = Self::new(kind.status(), kind.code(), kind.message());
        if matches!(kind, ErrorKind::ModelError | ErrorKind::ModelStreamError) {
            e.extra = Some(
                json!({ "originalStatusCode": 500, "originalMessage": "bedrock-sim: model failure requested by directive", "resourceName": "bedrock-sim" }),
            );
        }
        e
    }
    pub(crate) fn into_response(self, rid: &str) -> Response<Body> {
        let mut body = json!({ "message": self.message });
        if let Some(Value::Object(extra)) = self.extra {
            for (k, v) in extra {
                body[k] = v;
            }
        }
        let mut resp = json_response(self.status, &body, rid);
        let value = format!(
            "{}:http://internal.amazon.com/coral/com.amazon.bedrock/",
            self.code
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            resp.headers_mut().insert("x-amzn-errortype", v);
        }
        resp
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(k).unwrap_or_else(|| k.to_owned()),
                percent_decode(&v.replace('+', " ")).unwrap_or_else(|| v.to_owned()),
            )
        })
        .collect()
}

/// SigV4 or Bearer must be present and well-formed; the signature is not verified.
fn check_auth(headers: &http::HeaderMap) -> Result<(), AwsError> {
    let Some(auth) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(AwsError::new(
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    if let Some(token) = auth.strip_prefix("Bearer ") {
        if token.trim().is_empty() {
            return Err(AwsError::new(
                403,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            ));
        }
        return Ok(());
    }
    if sigv4_service(auth, headers)? != "bedrock" {
        return Err(AwsError::new(
            403,
            "InvalidSignatureException",
            "Credential should be scoped to correct service: 'bedrock'. ",
        ));
    }
    Ok(())
}

/// The service of a well-formed SigV4 `Authorization` header's credential scope
/// (`Credential=AKID/yyyymmdd/region/service/aws4_request`); the signature is not verified.
pub(crate) fn sigv4_service(auth: &str, headers: &http::HeaderMap) -> Result<String, AwsError> {
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(AwsError::new(
            403,
            "IncompleteSignatureException",
            "Unsupported Authorization Type",
        ));
    };
    let part = |name: &str| {
        rest.split(',')
            .map(str::trim)
            .find_map(|p| p.strip_prefix(name))
            .map(str::to_owned)
    };
    let (Some(credential), Some(_), Some(_)) = (
        part("Credential="),
        part("SignedHeaders="),
        part("Signature="),
    ) else {
        return Err(AwsError::new(
            403,
            "IncompleteSignatureException",
            format!(
                "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters. Authorization={auth}"
            ),
        ));
    };
    if headers.get("x-amz-date").is_none() && headers.get(header::DATE).is_none() {
        return Err(AwsError::new(
            403,
            "IncompleteSignatureException",
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        ));
    }
    let scope: Vec<&str> = credential.split('/').collect();
    if scope.len() != 5 || scope[4] != "aws4_request" {
        return Err(AwsError::new(
            403,
            "IncompleteSignatureException",
            format!("Credential is malformed: {credential}"),
        ));
    }
    Ok(scope[3].to_owned())
}

/// Bedrock's refusal of a bare id of a model served only through inference profiles.
pub(crate) fn on_demand_message(id: &str) -> String {
    format!(
        "Invocation of model ID {id} with on-demand throughput isn\u{2019}t supported. Retry your request with the ID or ARN of an inference profile that contains this model."
    )
}

pub(crate) fn headers_json(headers: &http::HeaderMap) -> Value {
    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        map.insert(
            name.as_str().to_owned(),
            Value::String(String::from_utf8_lossy(value.as_bytes()).into_owned()),
        );
    }
    Value::Object(map)
}

/// What a request was, for the recording.
struct Received {
    operation: &'static str,
    model_id: Option<String>,
    method: String,
    path: String,
    query: String,
    headers: Value,
    body: Value,
}

async fn handle(sim: Arc<Sim>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let rid = request_id();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or_default().to_owned();

    let raw = Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes());
    if let Some(control) = path.strip_prefix("/_sim/") {
        return control_endpoint(&sim, &parts.method, control, raw.ok().as_ref(), &rid);
    }
    // Counted busy until the response body is dropped (sent whole, or its connection gone).
    let busy = Held::busy(&sim.counts);
    let hold = move |resp: Response<Body>| {
        resp.map(|body| {
            BodyExt::boxed_unsync(body.map_frame(move |f| {
                let _ = &busy;
                f
            }))
        })
    };
    let conn = parts
        .extensions
        .get::<Arc<ConnCtl>>()
        .cloned()
        .unwrap_or_default();
    if let Some(route) = messages::Route::parse(&path) {
        return hold(messages::serve(&sim, route, &parts, raw.ok(), &rid, &conn).await);
    }
    let raw = match raw {
        Ok(raw) => raw,
        Err(_) => {
            return AwsError::validation(format!(
                "Input is too long for requested model (more than {MAX_BODY} bytes)."
            ))
            .into_response(&rid);
        }
    };
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (operation, model_id) = match (&parts.method, segments.as_slice()) {
        (&Method::POST, ["model", id, op]) => {
            let op = match *op {
                "converse" => "Converse",
                "converse-stream" => "ConverseStream",
                "invoke" => "InvokeModel",
                "invoke-with-response-stream" => "InvokeModelWithResponseStream",
                "count-tokens" => "CountTokens",
                _ => "Unknown",
            };
            (op, percent_decode(id))
        }
        (&Method::GET, ["foundation-models"]) => ("ListFoundationModels", None),
        (&Method::GET, ["foundation-models", id]) => ("GetFoundationModel", percent_decode(id)),
        (&Method::GET, ["inference-profiles"]) => ("ListInferenceProfiles", None),
        (&Method::GET, ["inference-profiles", id]) => ("GetInferenceProfile", percent_decode(id)),
        _ => ("Unknown", None),
    };
    let body_json: Result<Value, _> = if raw.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_slice(&raw)
    };
    let received = Received {
        operation,
        model_id: model_id.clone(),
        method: parts.method.to_string(),
        path: path.clone(),
        query: query.clone(),
        headers: headers_json(&parts.headers),
        body: match &body_json {
            Ok(v) => v.clone(),
            Err(_) => Value::String(String::from_utf8_lossy(&raw).into_owned()),
        },
    };

    let result = match check_auth(&parts.headers) {
        Err(e) => Err(e),
        Ok(()) => {
            dispatch(
                &sim,
                operation,
                model_id.as_deref(),
                &parts.headers,
                &parse_query(Some(&query)),
                body_json,
                &raw,
                started,
                &rid,
                &conn,
            )
            .await
        }
    };
    let response = match result {
        Ok(resp) => resp,
        Err(e) => e.into_response(&rid),
    };
    let error_code = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(':').next())
        .map(str::to_owned);
    sim.record(json!({
        "request_id": rid,
        "endpoint": if received.operation.starts_with("List") || received.operation.starts_with("Get") { "control" } else { "runtime" },
        "operation": received.operation,
        "model_id": received.model_id,
        "method": received.method,
        "path": received.path,
        "query": received.query,
        "headers": received.headers,
        "body": received.body,
        "status": response.status().as_u16(),
        "error": error_code,
    }));
    hold(response)
}

fn control_endpoint(
    sim: &Sim,
    method: &Method,
    what: &str,
    body: Option<&Bytes>,
    rid: &str,
) -> Response<Body> {
    match (method, what) {
        (&Method::GET, "models") => {
            let catalog = sim.catalog();
            json_response(200, &json!({ "models": catalog.models() }), rid)
        }
        (&Method::POST, "models") => {
            let parsed = body
                .ok_or_else(|| "body too large".to_owned())
                .and_then(|b| serde_json::from_slice::<Model>(b).map_err(|e| e.to_string()));
            match parsed {
                Ok(model) => {
                    let reply = json!({ "added": model.id, "model": &model });
                    sim.add_model(model);
                    json_response(200, &reply, rid)
                }
                Err(e) => json_response(
                    400,
                    &json!({ "message": format!("POST /_sim/models: {e}") }),
                    rid,
                ),
            }
        }
        (&Method::GET, "requests") => {
            let rec = sim.recorded.lock().unwrap_or_else(|e| e.into_inner());
            let streams = sim.streams.lock().unwrap_or_else(|e| e.into_inner());
            let list = rec
                .iter()
                .map(|entry| {
                    let mut entry = entry.clone();
                    if let Some(p) = entry["request_id"].as_str().and_then(|id| streams.get(id)) {
                        let p = p.lock().unwrap_or_else(|e| e.into_inner());
                        entry["stream"] = json!({ "events_sent": p.events_sent, "state": p.state });
                    }
                    entry
                })
                .collect();
            json_response(200, &Value::Array(list), rid)
        }
        (&Method::GET, "connections") => json_response(
            200,
            &json!({
                "open": sim.counts.open.load(std::sync::atomic::Ordering::SeqCst),
                "busy": sim.counts.busy.load(std::sync::atomic::Ordering::SeqCst),
            }),
            rid,
        ),
        (&Method::POST, "reset") => {
            sim.recorded
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            sim.fail_counts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
            json_response(200, &json!({ "reset": true }), rid)
        }
        (&Method::GET, "health") => json_response(200, &json!({ "status": "ok" }), rid),
        _ => json_response(
            404,
            &json!({ "message": format!("no control endpoint {method} /_sim/{what}") }),
            rid,
        ),
    }
}

/// Directives for one request: defaults, per-model rules, the header, then markers in the text.
fn directives_for(
    sim: &Sim,
    model_id: &str,
    headers: &http::HeaderMap,
    markers: &[String],
) -> Result<Directives, BadDirective> {
    let mut d = Directives::default();
    d.apply(&sim.config.defaults)?;
    for rule in sim.config.rules.iter().filter(|r| r.matches(model_id)) {
        d.apply(&rule.directives)?;
    }
    if let Some(h) = headers.get("x-bedrock-sim").and_then(|v| v.to_str().ok()) {
        d.apply(h)?;
    }
    for m in markers {
        d.apply(m)?;
    }
    Ok(d)
}

/// The directives of a validated request and the reply they script: the one path every route
/// (Converse, InvokeModel, the Messages API) takes, so that they all answer alike.
pub(crate) fn scripted(
    sim: &Sim,
    model_id: &str,
    headers: &http::HeaderMap,
    body: &Value,
    format: Format,
    model: &Model,
) -> Result<(Directives, Plan), BadDirective> {
    let (own, tool_results) = last_user_texts(body, format);
    let mut markers = Vec::new();
    let mut said = Vec::new();
    for text in &own {
        let (found, cleaned) = extract_markers(text);
        markers.extend(found);
        if !cleaned.is_empty() {
            said.push(cleaned);
        }
    }
    for text in &tool_results {
        markers.extend(extract_markers(text).0);
    }
    let directives = directives_for(sim, model_id, headers, &markers)?;
    let plan = Plan::new(&PlanRequest {
        body,
        format,
        model,
        directives: &directives,
        // The last text block is what the user typed; earlier ones are often injected context.
        said: said.last().cloned().unwrap_or_default(),
        tool_results: tool_results.iter().map(|t| extract_markers(t).1).collect(),
    });
    Ok((directives, plan))
}

#[allow(clippy::too_many_arguments)]
async fn dispatch(
    sim: &Sim,
    operation: &'static str,
    model_id: Option<&str>,
    headers: &http::HeaderMap,
    query: &[(String, String)],
    body: Result<Value, serde_json::Error>,
    raw: &Bytes,
    started: Instant,
    rid: &str,
    conn: &Arc<ConnCtl>,
) -> Result<Response<Body>, AwsError> {
    let catalog = sim.catalog();
    let catalog = &*catalog;
    match operation {
        "ListFoundationModels" => {
            return Ok(json_response(
                200,
                &catalog.list_foundation_models(query),
                rid,
            ));
        }
        "GetFoundationModel" => {
            return catalog
                .get_foundation_model(model_id.unwrap_or_default())
                .map(|v| json_response(200, &v, rid))
                .ok_or_else(|| {
                    AwsError::new(
                        404,
                        "ResourceNotFoundException",
                        "The specified model identifier is not found.",
                    )
                });
        }
        "ListInferenceProfiles" => {
            return catalog
                .list_inference_profiles(query)
                .map(|v| json_response(200, &v, rid))
                .map_err(AwsError::validation);
        }
        "GetInferenceProfile" => {
            return catalog
                .get_inference_profile(model_id.unwrap_or_default())
                .map(|v| json_response(200, &v, rid))
                .ok_or_else(|| {
                    AwsError::new(
                        404,
                        "ResourceNotFoundException",
                        "Inference profile not found.",
                    )
                });
        }
        "Unknown" => {
            return Err(AwsError::new(
                404,
                "UnknownOperationException",
                "The requested operation is not recognized by the service.",
            ));
        }
        _ => {}
    }
    let model_id = model_id
        .ok_or_else(|| AwsError::validation("The provided model identifier is invalid."))?;
    let body = body.map_err(|e| {
        AwsError::new(
            400,
            "SerializationException",
            format!("Malformed request body: {e} (at {} bytes)", raw.len()),
        )
    })?;
    if operation == "CountTokens" {
        return count_tokens(sim, model_id, &body, rid);
    }
    let model = match catalog.resolve(model_id) {
        Ok(r) => r.model,
        Err(ResolveError::Invalid) => {
            return Err(AwsError::validation(
                "The provided model identifier is invalid.",
            ));
        }
        Err(ResolveError::OnDemandNotSupported(id)) => {
            return Err(AwsError::validation(on_demand_message(&id)));
        }
    };
    let format = match operation {
        "Converse" | "ConverseStream" => Format::Converse,
        _ => Format::Native,
    };
    match format {
        Format::Converse => validate::converse(&body, model),
        Format::Native if !model.is_claude() => {
            return Err(AwsError::validation(format!(
                "bedrock-sim serves InvokeModel only with the Anthropic body of Claude models; use Converse for {}.",
                model.id
            )));
        }
        Format::Native => validate::native(&body, model),
    }
    .map_err(|e| AwsError::validation(e.0))?;

    let (mut directives, plan) = scripted(sim, model_id, headers, &body, format, model)
        .map_err(|e| AwsError::validation(e.to_string()))?;
    if let Some(key) = &directives.expired_key
        && access_key(headers).as_deref() == Some(key.as_str())
    {
        return Err(AwsError::expired());
    }
    sim.gate(&mut directives);
    if let Some(kind) = directives.error {
        if let Some(wait) = directives.ttfb {
            tokio::time::sleep(wait).await;
        }
        return Err(AwsError::from_kind(kind));
    }
    let stream = matches!(
        operation,
        "ConverseStream" | "InvokeModelWithResponseStream"
    );
    if !stream && let Some(wait) = directives.ttfb {
        tokio::time::sleep(wait).await;
    }
    if !stream {
        plain_fault(directives.fault, conn).await;
    }
    let truncate = |resp: Response<Body>| -> Result<Response<Body>, AwsError> {
        Ok(match directives.fault {
            Some(Fault::Truncate) => truncated(resp, conn.clone()),
            _ => resp,
        })
    };
    match operation {
        "Converse" => truncate(json_response(
            200,
            &plan.converse_response(started.elapsed().as_millis() as u64),
            rid,
        )),
        "InvokeModel" => {
            let mut resp = json_response(200, &plan.native_response(), rid);
            let h = resp.headers_mut();
            let latency = started.elapsed().as_millis().to_string();
            for (name, value) in [
                (
                    "x-amzn-bedrock-input-token-count",
                    plan.input_tokens.to_string(),
                ),
                (
                    "x-amzn-bedrock-output-token-count",
                    plan.output_tokens.to_string(),
                ),
                ("x-amzn-bedrock-invocation-latency", latency),
                (
                    "x-amzn-bedrock-cache-read-input-token-count",
                    plan.cache_read.to_string(),
                ),
                (
                    "x-amzn-bedrock-cache-write-input-token-count",
                    plan.cache_write.to_string(),
                ),
            ] {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    h.insert(name, v);
                }
            }
            truncate(resp)
        }
        "ConverseStream" => Ok(stream_response(
            converse_frames(&plan),
            &directives,
            started,
            rid,
            false,
            sim.track_stream(rid),
            conn.clone(),
        )),
        _ => Ok(stream_response(
            native_frames(&plan),
            &directives,
            started,
            rid,
            true,
            sim.track_stream(rid),
            conn.clone(),
        )),
    }
}

/// The access key id of a SigV4 request (`Credential=AKID/...`), or a bearer token.
pub(crate) fn access_key(headers: &http::HeaderMap) -> Option<String> {
    let auth = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(token) = auth.strip_prefix("Bearer ") {
        return Some(token.trim().to_owned());
    }
    let credential = auth
        .split([' ', ','])
        .find_map(|p| p.trim().strip_prefix("Credential="))?;
    Some(credential.split('/').next()?.to_owned())
}

/// The faults of a non-streaming call that happen before its answer: `reset` resets the
/// connection, `stall` never answers. Returns for any other.
pub(crate) async fn plain_fault(fault: Option<Fault>, conn: &ConnCtl) {
    match fault {
        Some(Fault::Reset) => abort_connection(conn, Abort::Reset).await,
        Some(Fault::Stall) => std::future::pending::<()>().await,
        _ => {}
    }
}

/// `response` cut after half its body (sent chunked, so the peer sees a body that ends early), then
/// the connection closed.
pub(crate) fn truncated(response: Response<Body>, conn: Arc<ConnCtl>) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    let frames = async_stream::stream! {
        let whole = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
        yield Ok::<_, Infallible>(Frame::data(crate::faults::half(&whole)));
        abort_connection(&conn, Abort::Close).await;
    };
    // The length of the whole body is not known here without reading it; chunked framing, cut
    // before its end, fails the same way for the peer.
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, BodyExt::boxed_unsync(StreamBody::new(frames)))
}

fn count_tokens(
    sim: &Sim,
    model_id: &str,
    body: &Value,
    rid: &str,
) -> Result<Response<Body>, AwsError> {
    let bare = model_id
        .rsplit_once("foundation-model/")
        .map(|(_, id)| id)
        .unwrap_or(model_id);
    let catalog = sim.catalog();
    let Some(model) = catalog.models().iter().find(|m| m.id == bare) else {
        if catalog.resolve(model_id).is_ok() {
            return Err(AwsError::validation(
                "The provided model doesn't support counting tokens.",
            ));
        }
        return Err(AwsError::validation(
            "The provided model identifier is invalid.",
        ));
    };
    if !model.is_claude() {
        return Err(AwsError::validation(
            "The provided model doesn't support counting tokens.",
        ));
    }
    let input = validate::count_tokens(body, model).map_err(|e| AwsError::validation(e.0))?;
    let tokens = match &input {
        CountInput::Converse(conv) => estimate_input_tokens(conv, Format::Converse),
        CountInput::Native(native) => estimate_input_tokens(native, Format::Native),
    };
    Ok(json_response(200, &json!({ "inputTokens": tokens }), rid))
}

/// How far a stream got: events sent, and whether it completed, failed (an injected exception) or
/// was cancelled (the client went away before the end).
#[derive(Debug, Default)]
pub(crate) struct StreamProgress {
    pub(crate) events_sent: usize,
    pub(crate) state: &'static str,
}

/// Marks a stream cancelled if it is dropped before it finished.
pub(crate) struct ProgressGuard(Option<Arc<Mutex<StreamProgress>>>);

impl ProgressGuard {
    pub(crate) fn update(&self, f: impl FnOnce(&mut StreamProgress)) {
        if let Some(p) = &self.0 {
            f(&mut p.lock().unwrap_or_else(|e| e.into_inner()));
        }
    }
}

impl Drop for ProgressGuard {
    fn drop(&mut self) {
        self.update(|p| {
            if p.state == "streaming" {
                p.state = "cancelled";
            }
        });
    }
}

impl Sim {
    pub(crate) fn track_stream(&self, rid: &str) -> ProgressGuard {
        if self.config.record_limit == 0 {
            return ProgressGuard(None);
        }
        let progress = Arc::new(Mutex::new(StreamProgress {
            events_sent: 0,
            state: "streaming",
        }));
        let mut streams = self.streams.lock().unwrap_or_else(|e| e.into_inner());
        if streams.len() >= self.config.record_limit {
            streams.retain(|_, p| p.lock().map(|p| p.state == "streaming").unwrap_or(false));
        }
        streams.insert(rid.to_owned(), progress.clone());
        ProgressGuard(Some(progress))
    }
}

/// A stream event before framing: the frame builder gets the measured latencies when it is sent.
enum StreamEvent {
    Converse(&'static str, Value),
    Native(Value),
}

fn converse_frames(plan: &Plan) -> Vec<StreamEvent> {
    plan.converse_events()
        .into_iter()
        .map(|(t, v)| StreamEvent::Converse(t, v))
        .collect()
}

fn native_frames(plan: &Plan) -> Vec<StreamEvent> {
    plan.native_events()
        .into_iter()
        .map(StreamEvent::Native)
        .collect()
}

/// Bedrock pads stream payloads with a `p` field of varying length so sizes leak nothing; clients
/// must ignore it.
fn padding(n: usize) -> &'static str {
    const PAD: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    &PAD[..(n * 7) % PAD.len() + 1]
}

fn render(event: StreamEvent, n: usize, started: Instant, first_byte_ms: u64) -> Bytes {
    match event {
        StreamEvent::Converse(kind, mut payload) => {
            if kind == "metadata" {
                payload["metrics"]["latencyMs"] = json!(started.elapsed().as_millis() as u64);
            }
            payload["p"] = json!(padding(n));
            event_frame(kind, &serde_json::to_vec(&payload).unwrap_or_default())
        }
        StreamEvent::Native(mut payload) => {
            if let Some(m) = payload.get_mut("amazon-bedrock-invocationMetrics") {
                m["invocationLatency"] = json!(started.elapsed().as_millis() as u64);
                m["firstByteLatency"] = json!(first_byte_ms);
            }
            let inner = serde_json::to_string(&payload).unwrap_or_default();
            let chunk = json!({ "bytes": b64(&inner), "p": padding(n) });
            event_frame("chunk", &serde_json::to_vec(&chunk).unwrap_or_default())
        }
    }
}

fn stream_response(
    events: Vec<StreamEvent>,
    d: &Directives,
    started: Instant,
    rid: &str,
    native: bool,
    progress: ProgressGuard,
    conn: Arc<ConnCtl>,
) -> Response<Body> {
    let ttfb = d.ttfb;
    let delay = d.delay;
    let failure = d.stream_error.map(|k| (k, d.after.unwrap_or(2)));
    let fault = d.fault.map(|f| (f, d.after.unwrap_or(2)));
    let frames = async_stream::stream! {
        if let Some(wait) = ttfb {
            tokio::time::sleep(wait).await;
        }
        let mut first_byte_ms = None;
        for (n, event) in events.into_iter().enumerate() {
            if let Some((fault, after)) = fault && n == after {
                progress.update(|p| p.state = fault.name());
                let fb = *first_byte_ms.get_or_insert(started.elapsed().as_millis() as u64);
                match fault {
                    Fault::Stall => {}
                    Fault::Reset => abort_connection(&conn, Abort::Reset).await,
                    Fault::Truncate => {
                        yield Ok(Frame::data(crate::faults::half(&render(event, n, started, fb))));
                        abort_connection(&conn, Abort::Close).await;
                    }
                    Fault::BadCrc => {
                        yield Ok(Frame::data(crate::faults::bad_crc(&render(event, n, started, fb))));
                        return;
                    }
                    Fault::Oversize => yield Ok(Frame::data(crate::faults::oversize_prelude())),
                }
                std::future::pending::<()>().await;
                return;
            }
            if let Some((kind, after)) = failure && n == after {
                let mut payload = json!({ "message": kind.message() });
                if kind == ErrorKind::ModelStreamError {
                    payload["originalStatusCode"] = json!(500);
                    payload["originalMessage"] = json!("bedrock-sim: stream failure requested by directive");
                }
                let frame = exception_frame(&kind.stream_member(), &serde_json::to_vec(&payload).unwrap_or_default());
                progress.update(|p| p.state = "failed");
                yield Ok::<_, Infallible>(Frame::data(frame));
                return;
            }
            if n > 0 && let Some(wait) = delay {
                tokio::time::sleep(wait).await;
            }
            let fb = *first_byte_ms.get_or_insert(started.elapsed().as_millis() as u64);
            yield Ok(Frame::data(render(event, n, started, fb)));
            progress.update(|p| p.events_sent += 1);
        }
        progress.update(|p| p.state = "completed");
    };
    let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(frames)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    if let Ok(v) = HeaderValue::from_str(rid) {
        h.insert("x-amzn-requestid", v);
    }
    if native {
        h.insert(
            "x-amzn-bedrock-content-type",
            HeaderValue::from_static("application/json"),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_percent_encoded_model_ids() {
        assert_eq!(
            percent_decode("anthropic.claude-3-haiku-20240307-v1%3A0").unwrap(),
            "anthropic.claude-3-haiku-20240307-v1:0"
        );
        assert_eq!(
            percent_decode("arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fx").unwrap(),
            "arn:aws:bedrock:us-east-1::foundation-model/x"
        );
        assert!(percent_decode("bad%zz").is_none());
    }

    #[test]
    fn auth_rules() {
        let mut h = http::HeaderMap::new();
        assert_eq!(
            check_auth(&h).unwrap_err().code,
            "MissingAuthenticationTokenException"
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer abc"),
        );
        assert!(check_auth(&h).is_ok());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc"),
        );
        assert_eq!(
            check_auth(&h).unwrap_err().code,
            "IncompleteSignatureException"
        );
        h.insert("x-amz-date", HeaderValue::from_static("20260101T000000Z"));
        assert!(check_auth(&h).is_ok());
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/bedrock-runtime/aws4_request, SignedHeaders=host, Signature=abc"),
        );
        assert_eq!(
            check_auth(&h).unwrap_err().code,
            "InvalidSignatureException"
        );
    }

    #[test]
    fn config_file_parses_and_checks_directives() {
        let c = Config::from_toml(
            "defaults = \"delay_ms=1\"\n[[rule]]\nmodel = \"qwen.*\"\ndirectives = \"words=5\"\n[[model]]\nid = \"acme.model-v1:0\"\nname = \"Acme\"\nprovider = \"Acme\"\non_demand = true\n",
        )
        .unwrap();
        assert!(c.rules[0].matches("qwen.qwen3-32b-v1:0"));
        assert!(!c.rules[0].matches("anthropic.x"));
        assert_eq!(c.models[0].id, "acme.model-v1:0");
        assert!(
            Config::from_toml("defaults = \"bogus\"")
                .unwrap_err()
                .contains("bogus")
        );
        assert!(Config::from_toml("unknown = 1").is_err());
    }
}
