//! A lean signed HTTP client for Bedrock calls the AWS SDK has no operation for (the Messages API),
//! and for any other Bedrock call that wants to skip the SDK's machinery.
//!
//! - Auth: SigV4 (a lean signer for the plain requests the gateway sends, `sigv4.rs`, and
//!   `aws-sigv4`, the SDK's own signer, for any other) with credentials from the standard provider
//!   chain, cached until five minutes before they expire and refreshed by one caller while the
//!   others wait (the chain's provider does not cache by itself); or a Bedrock API key
//!   (`AWS_BEARER_TOKEN_BEDROCK`) sent as `Authorization: Bearer`, with no signature.
//! - Transport: one pooled hyper-util client over rustls with the crypto provider (aws-lc-rs) and
//!   the platform's root certificates, as the SDK's default HTTPS client uses; plain `http://` too,
//!   for local endpoints; TCP_NODELAY; a connect timeout. HTTP/1.1 only, each call in flight on a
//!   connection of its own: Bedrock's runtime endpoint also speaks HTTP/2, but hyper-util's pool
//!   puts every HTTP/2 call to a host on one connection and opens no second one at the server's
//!   limit of concurrent streams (hyperium/hyper#3623), where the gateway's calls, streams open
//!   for minutes, would wait and time out (`tests/tls_streams.rs`).
//! - [`SignedClient::sign_and_send`] resolves when the response head arrives, within the client's
//!   timeout (`BEDROCK_TIMEOUT`); the body is the caller's to read, and dropping it closes the stream.

use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4::SigningParams;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use crate::sigv4::SigningKeys;
use crate::sigv4::sign_plain;

/// How requests are authenticated.
#[derive(Clone)]
pub enum Auth {
    /// SigV4 with credentials from this provider (cached, refreshed before they expire).
    SigV4(SharedCredentialsProvider),
    /// A Bedrock API key, sent as `Authorization: Bearer <key>` instead of a signature.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::SigV4(_) => f.write_str("SigV4"),
            Auth::Bearer(_) => f.write_str("Bearer(** redacted **)"),
        }
    }
}

/// Why a request could not be sent or got no response head.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The credential chain gave no usable credentials.
    #[error("no usable AWS credentials: {0}")]
    Credentials(String),
    /// The request cannot be built or signed (bad URL, header value, or configuration).
    #[error("cannot build the request: {0}")]
    InvalidRequest(String),
    /// No response head within the client's timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The endpoint could not be reached, or the connection failed before the response head.
    #[error("cannot reach the endpoint: {0}")]
    Transport(String),
}

/// Timeouts of a [`SignedClient`].
#[derive(Debug, Clone, Copy)]
pub struct ClientSettings {
    /// Bound on the wait for the response head, credentials and connecting included
    /// (`BEDROCK_TIMEOUT`).
    pub timeout: Duration,
    /// Bound on establishing a TCP connection.
    pub connect_timeout: Duration,
}

impl ClientSettings {
    /// The gateway's settings: `timeout` for the response head, 10 s to connect (as the SDK client).
    pub fn new(timeout: Duration) -> Self {
        ClientSettings {
            timeout,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The signed client; cheap to clone (clones share the connection pool and the credential cache).
#[derive(Clone)]
pub struct SignedClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient,
    auth: AuthState,
    timeout: Duration,
}

enum AuthState {
    SigV4(CredentialCache, SigningKeys),
    Bearer(HeaderValue),
}

impl std::fmt::Debug for SignedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignedClient")
            .field(
                "auth",
                &match self.inner.auth {
                    AuthState::SigV4(..) => "SigV4",
                    AuthState::Bearer(_) => "Bearer",
                },
            )
            .field("timeout", &self.inner.timeout)
            .finish()
    }
}

/// The platform's root certificates, loaded once (it can take hundreds of milliseconds). As the
/// SDK does, load errors and an empty store are logged, not fatal: HTTPS then fails per request.
static NATIVE_ROOTS: LazyLock<rustls::RootCertStore> = LazyLock::new(|| {
    let loaded = rustls_native_certs::load_native_certs();
    if !loaded.errors.is_empty() {
        tracing::warn!(errors = ?loaded.errors, "errors loading the platform's root certificates");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (valid, invalid) = roots.add_parsable_certificates(loaded.certs);
    if valid == 0 {
        tracing::warn!(
            invalid,
            "no usable root certificates: HTTPS calls to Bedrock will fail"
        );
    }
    roots
});

fn http_client(settings: &ClientSettings) -> Result<HttpClient, SendError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SendError::InvalidRequest(format!("TLS configuration: {e}")))?
        .with_root_certificates(NATIVE_ROOTS.clone())
        .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        // Not HTTP/2: see the module's documentation.
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .build(https))
}

impl SignedClient {
    /// A client authenticating with `auth`. Fails only when TLS cannot be set up, or the bearer
    /// token is not a valid header value.
    pub fn new(auth: Auth, settings: ClientSettings) -> Result<SignedClient, SendError> {
        let auth = match auth {
            Auth::SigV4(provider) => {
                AuthState::SigV4(CredentialCache::new(provider), SigningKeys::default())
            }
            Auth::Bearer(token) => {
                let mut v =
                    HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| {
                        SendError::InvalidRequest(
                            "the Bedrock API key is not a valid header value".into(),
                        )
                    })?;
                v.set_sensitive(true);
                AuthState::Bearer(v)
            }
        };
        Ok(SignedClient {
            inner: Arc::new(Inner {
                http: http_client(&settings)?,
                auth,
                timeout: settings.timeout,
            }),
        })
    }

    /// The bound on the wait for a response head.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// Forgets the held credentials (Bedrock said they expired): the next request asks the chain
    /// again, which rereads a `credential_process`, the container or instance credentials, ...
    pub fn invalidate_credentials(&self) {
        if let AuthState::SigV4(cache, _) = &self.inner.auth {
            *cache
                .current
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        }
    }

    /// Whether requests carry a bearer token rather than a signature.
    pub fn is_bearer(&self) -> bool {
        matches!(self.inner.auth, AuthState::Bearer(_))
    }

    /// Authenticates the request (SigV4 for `service` in `region`, or the bearer token) and sends
    /// it; resolves with the response head, whatever its status. `url` must be absolute and already
    /// percent-encoded (`:` in a model id as `%3A`, as the SDK sends it); it is signed as given.
    pub async fn sign_and_send(
        &self,
        service: &str,
        region: &str,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, SendError> {
        let timeout = self.inner.timeout;
        let send = async {
            let mut request = build_request(method, url, headers, body.clone())?;
            match &self.inner.auth {
                AuthState::Bearer(v) => {
                    request.headers_mut().insert(AUTHORIZATION, v.clone());
                }
                AuthState::SigV4(cache, keys) => {
                    let credentials = cache.get(SystemTime::now()).await?;
                    sign_cached(
                        &mut request,
                        &body,
                        &credentials,
                        service,
                        region,
                        SystemTime::now(),
                        Some(keys),
                    )?;
                }
            }
            self.inner.http.request(request).await.map_err(|e| {
                let what = if e.is_connect() { "connect" } else { "request" };
                // The source chain says why (DNS, refused, TLS, reset); the Display alone does not.
                let mut detail = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    detail.push_str(": ");
                    detail.push_str(&s.to_string());
                    source = s.source();
                }
                SendError::Transport(format!("{what}: {detail}"))
            })
        };
        tokio::time::timeout(timeout, send)
            .await
            .unwrap_or(Err(SendError::Timeout(timeout)))
    }
}

/// The request [`SignedClient::sign_and_send`] sends, before authentication: `url` must be an
/// absolute `http` or `https` URL, already percent-encoded; `headers` are sent as given.
pub fn build_request(
    method: Method,
    url: &str,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, SendError> {
    let uri: Uri = url
        .parse()
        .map_err(|e| SendError::InvalidRequest(format!("URL {url:?}: {e}")))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
        return Err(SendError::InvalidRequest(format!(
            "URL {url:?} is not an absolute http(s) URL"
        )));
    }
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    Ok(request)
}

/// Signs `request` (SigV4, signature in the `authorization` header; adds `x-amz-date` and, with a
/// session token, `x-amz-security-token`) for `service` in `region` at `time`. Every header of the
/// request is signed except `authorization`, `user-agent`, `x-amzn-trace-id` and
/// `transfer-encoding`; the path is normalised and encoded once more, as for every AWS service but S3.
/// `body` must be the bytes the request will carry.
pub fn sign_request<B>(
    request: &mut Request<B>,
    body: &[u8],
    credentials: &Credentials,
    service: &str,
    region: &str,
    time: SystemTime,
) -> Result<(), SendError> {
    sign_cached(request, body, credentials, service, region, time, None)
}

/// [`sign_request`] with signing keys kept in `keys` between calls (what [`SignedClient`] does):
/// the gateway's plain requests take the lean signer (`sigv4.rs`), any other one `aws-sigv4`.
pub fn sign_cached<B>(
    request: &mut Request<B>,
    body: &[u8],
    credentials: &Credentials,
    service: &str,
    region: &str,
    time: SystemTime,
    keys: Option<&SigningKeys>,
) -> Result<(), SendError> {
    match sign_plain(request, body, credentials, service, region, time, keys) {
        Some(result) => result,
        None => sign_with_aws_sigv4(request, body, credentials, service, region, time),
    }
}

/// [`sign_request`] by `aws-sigv4` for every request (the reference the lean signer is tested
/// against).
pub(crate) fn sign_with_aws_sigv4<B>(
    request: &mut Request<B>,
    body: &[u8],
    credentials: &Credentials,
    service: &str,
    region: &str,
    time: SystemTime,
) -> Result<(), SendError> {
    if request.uri().host().is_none() {
        return Err(SendError::InvalidRequest(
            "the URL to sign has no host".into(),
        ));
    }
    let identity: Identity = credentials.clone().into();
    let params = SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SendError::InvalidRequest(format!("signing parameters: {e}")))?
        .into();
    let mut headers = Vec::with_capacity(request.headers().len());
    for (name, value) in request.headers() {
        let value = value.to_str().map_err(|_| {
            SendError::InvalidRequest(format!("header {name} is not visible ASCII"))
        })?;
        headers.push((name.as_str(), value));
    }
    let uri = request.uri().to_string();
    let signable = SignableRequest::new(
        request.method().as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SendError::InvalidRequest(format!("cannot sign: {e}")))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SendError::InvalidRequest(format!("cannot sign: {e}")))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    Ok(())
}

/// Refresh this long before credentials expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Never ask the chain again sooner than this after an answer (short-lived credentials, or a chain
/// that fails while the credentials held are still valid), so a burst of requests cannot turn into
/// a burst of credential calls.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Credentials held until shortly before they expire; one refresh at a time.
struct CredentialCache {
    provider: SharedCredentialsProvider,
    current: RwLock<Option<Cached>>,
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    /// In an `Arc`: cloning `Credentials` itself copies its property map (two or three allocations
    /// on every request).
    credentials: Arc<Credentials>,
    /// When to ask the chain again; `None`: never (credentials without expiry).
    refresh_at: Option<SystemTime>,
}

impl CredentialCache {
    fn new(provider: SharedCredentialsProvider) -> Self {
        CredentialCache {
            provider,
            current: RwLock::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    fn held(&self) -> Option<Cached> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn fresh(&self, now: SystemTime) -> Option<Arc<Credentials>> {
        self.held()
            .filter(|c| c.refresh_at.is_none_or(|at| now < at))
            .map(|c| c.credentials)
    }

    fn store(&self, cached: Cached) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cached);
    }

    /// Credentials valid at `now`: the held ones while fresh, else new ones from the chain (one
    /// caller asks, the others wait for its answer).
    async fn get(&self, now: SystemTime) -> Result<Arc<Credentials>, SendError> {
        if let Some(c) = self.fresh(now) {
            return Ok(c);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        if let Some(c) = self.fresh(now) {
            return Ok(c);
        }
        match self.provider.provide_credentials().await {
            Ok(credentials) => {
                let credentials = Arc::new(credentials);
                let refresh_at = credentials.expiry().map(|expiry| {
                    let early = expiry
                        .checked_sub(REFRESH_BEFORE_EXPIRY)
                        .unwrap_or(SystemTime::UNIX_EPOCH);
                    let soonest = (now + MIN_REFRESH_INTERVAL).min(expiry);
                    early.max(soonest)
                });
                self.store(Cached {
                    credentials: credentials.clone(),
                    refresh_at,
                });
                Ok(credentials)
            }
            Err(e) => {
                // Credentials not yet expired still sign: keep them a little longer rather than
                // fail requests because a refresh failed early.
                if let Some(held) = self.held()
                    && held.credentials.expiry().is_none_or(|x| now < x)
                {
                    tracing::warn!(error = %e, "refreshing AWS credentials failed; using the held ones until they expire");
                    let retry = (now + MIN_REFRESH_INTERVAL).min(
                        held.credentials
                            .expiry()
                            .unwrap_or(SystemTime::UNIX_EPOCH)
                            .max(now),
                    );
                    let credentials = held.credentials.clone();
                    self.store(Cached {
                        credentials: held.credentials,
                        refresh_at: Some(retry),
                    });
                    return Ok(credentials);
                }
                Err(SendError::Credentials(e.to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::future;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A chain that counts its calls, answers after `delay`, with credentials expiring `lifetime`
    /// after `base` (or never), or fails when `fail` is set.
    #[derive(Debug)]
    struct Counting {
        calls: AtomicUsize,
        base: SystemTime,
        lifetime: Option<Duration>,
        delay: Duration,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Counting {
        fn new(base: SystemTime, lifetime: Option<Duration>) -> Arc<Self> {
            Arc::new(Counting {
                calls: AtomicUsize::new(0),
                base,
                lifetime,
                delay: Duration::ZERO,
                fail: Default::default(),
            })
        }
        fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }
    }

    impl ProvideCredentials for Counting {
        fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            future::ProvideCredentials::new(async move {
                let n = self.calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(self.delay).await;
                if self.fail.load(Ordering::SeqCst) {
                    return Err(CredentialsError::not_loaded("chain down"));
                }
                Ok(Credentials::new(
                    format!("AKID{n}"),
                    "secret",
                    None,
                    self.lifetime.map(|l| self.base + l),
                    "test",
                ))
            })
        }
    }

    fn cache(p: &Arc<Counting>) -> CredentialCache {
        CredentialCache::new(SharedCredentialsProvider::new(
            p.clone() as Arc<dyn ProvideCredentials>
        ))
    }

    const MIN: Duration = Duration::from_secs(60);

    #[tokio::test]
    async fn credentials_without_expiry_are_fetched_once() {
        let t0 = SystemTime::now();
        let p = Counting::new(t0, None);
        let c = cache(&p);
        for i in 0..50 {
            c.get(t0 + MIN * i * 100).await.unwrap();
        }
        assert_eq!(p.calls(), 1);
    }

    #[tokio::test]
    async fn expiring_credentials_are_refreshed_five_minutes_before_expiry() {
        let t0 = SystemTime::now();
        let p = Counting::new(t0, Some(60 * MIN));
        let c = cache(&p);
        assert_eq!(c.get(t0).await.unwrap().access_key_id(), "AKID0");
        assert_eq!(c.get(t0 + 54 * MIN).await.unwrap().access_key_id(), "AKID0");
        assert_eq!(p.calls(), 1);
        // The chain's next answer expires 60 minutes after t0 again (the test provider's clock is
        // fixed): what matters is that the cache asked.
        assert_eq!(c.get(t0 + 56 * MIN).await.unwrap().access_key_id(), "AKID1");
        assert_eq!(p.calls(), 2);
    }

    #[tokio::test]
    async fn short_lived_credentials_are_not_fetched_on_every_request() {
        let t0 = SystemTime::now();
        let p = Counting::new(t0, Some(2 * MIN));
        let c = cache(&p);
        for _ in 0..20 {
            c.get(t0).await.unwrap();
        }
        assert_eq!(p.calls(), 1);
        c.get(t0 + MIN_REFRESH_INTERVAL).await.unwrap();
        assert_eq!(p.calls(), 2);
    }

    #[tokio::test]
    async fn concurrent_callers_share_one_refresh() {
        let t0 = SystemTime::now();
        let p = Arc::new(Counting {
            calls: AtomicUsize::new(0),
            base: t0,
            lifetime: Some(60 * MIN),
            delay: Duration::from_millis(50),
            fail: Default::default(),
        });
        let c = Arc::new(cache(&p));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let c = c.clone();
                tokio::spawn(async move { c.get(t0).await.map(|c| c.access_key_id().to_owned()) })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "AKID0");
        }
        assert_eq!(p.calls(), 1);
    }

    #[tokio::test]
    async fn failed_refresh_keeps_valid_credentials_and_fails_once_they_expire() {
        let t0 = SystemTime::now();
        let p = Counting::new(t0, Some(60 * MIN));
        let c = cache(&p);
        c.get(t0).await.unwrap();
        p.fail.store(true, Ordering::SeqCst);
        let at = t0 + 57 * MIN;
        assert_eq!(c.get(at).await.unwrap().access_key_id(), "AKID0");
        // Not asked again within the retry interval.
        c.get(at + Duration::from_secs(1)).await.unwrap();
        assert_eq!(p.calls(), 2);
        let err = c.get(t0 + 61 * MIN).await.unwrap_err();
        assert!(matches!(err, SendError::Credentials(_)), "{err:?}");
    }

    #[tokio::test]
    async fn no_credentials_is_an_error() {
        let t0 = SystemTime::now();
        let p = Counting::new(t0, None);
        p.fail.store(true, Ordering::SeqCst);
        assert!(matches!(
            cache(&p).get(t0).await,
            Err(SendError::Credentials(_))
        ));
    }

    #[test]
    fn signing_refuses_a_url_without_host_instead_of_panicking() {
        let mut r = Request::new(());
        *r.uri_mut() = Uri::from_static("/anthropic/v1/messages");
        let creds = Credentials::new("a", "b", None, None, "t");
        let err = sign_request(
            &mut r,
            b"",
            &creds,
            "bedrock",
            "us-east-1",
            SystemTime::now(),
        );
        assert!(matches!(err, Err(SendError::InvalidRequest(_))));
    }

    #[test]
    fn build_request_refuses_relative_and_odd_urls() {
        for url in ["/x", "ftp://h/x", "not a url", ""] {
            assert!(
                build_request(Method::POST, url, HeaderMap::new(), Bytes::new()).is_err(),
                "{url}"
            );
        }
    }
}
