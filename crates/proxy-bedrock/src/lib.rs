//! `proxy-bedrock`: the gateway's Bedrock side. One shared `aws-sdk-bedrockruntime` client (connection
//! reuse, the standard credential chain including Bedrock API keys, the standard endpoint overrides)
//! for the control plane and CountTokens, model routing ([`Router`], with its route table read from
//! Bedrock's own catalog: [`catalog`]), and the mapping of every upstream failure to an Anthropic
//! error type ([`UpstreamError`]). Bedrock's Anthropic Messages API, which the SDK cannot call, and
//! InvokeModel and Converse, where the SDK's per-call work cost as much as the rest of the gateway,
//! go through a lean signed client of its own ([`signed`], [`messages`]; SSE decoding in [`sse`], the AWS
//! event-stream framing in [`eventstream`]).
//!
//! It does no conversion itself (that is `proxy-convert`) and knows nothing of HTTP serving.

pub mod catalog;
pub mod eventstream;
mod invoke;
pub mod messages;
mod retry;
mod routing;
pub mod signed;
mod sigv4;
pub mod sse;
mod upstream;

/// The decoding steps of the streamed routes, as the streams run them, for the fuzz targets
/// (`fuzz/` at the repository's root) and the hot-path bench; not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::invoke::chunk_bytes;
    pub use crate::messages::stream_item;
}

use std::time::Duration;

use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::types::CountTokensInput;
use proxy_schema::ErrorType;

pub use catalog::{Listing, RouteTable};
pub use invoke::EventStream;
pub use messages::{Endpoint, Endpoints, MessageStream, MessagesClient, MessagesReply};
pub use retry::{RetryEvent, RetryHook, RetryPolicy, Retryable};
pub use routing::{
    Api, ListedModel, ModelRoute, Route, RouteError, Router, RoutingConfig, geographies, geography,
};
pub use upstream::{Call, JsonMessage, Reply, ReplyEvent, ReplyStream, Sent, Target};

/// The longest a read of Bedrock's catalog (both listings, every page) may take.
pub const CATALOG_TIMEOUT: Duration = Duration::from_secs(30);

/// An upstream failure, as the client will see it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct UpstreamError {
    /// The Anthropic error type (decides the HTTP status).
    pub kind: ErrorType,
    /// A message for people (Bedrock's own where it has one).
    pub message: String,
    /// Seconds the client should wait before retrying, for throttling and overload.
    pub retry_after: Option<u64>,
    /// Whether the gateway may try the call again (only for failures before Bedrock's answer
    /// started: throttling, unavailability, a connection that failed, expired credentials).
    pub retryable: Option<Retryable>,
}

impl UpstreamError {
    fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        let retry_after =
            matches!(kind, ErrorType::RateLimitError | ErrorType::OverloadedError).then_some(1);
        let mut message = message.into();
        if message.trim().is_empty() {
            // Bedrock's own message can be blank; the client still gets an error that says something.
            message = format!("Bedrock returned an error ({})", kind.as_str());
        }
        UpstreamError {
            kind,
            message,
            retry_after,
            retryable: None,
        }
    }

    fn retryable(mut self, why: Option<Retryable>) -> Self {
        self.retryable = why;
        self
    }
}

/// Maps an SDK error of any operation.
pub fn upstream_error<E, R>(err: SdkError<E, R>) -> UpstreamError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match &err {
        SdkError::ServiceError(ctx) => {
            let e = ctx.err();
            let code = e.code().unwrap_or("InternalServerException");
            let message = e
                .message()
                .unwrap_or("Bedrock returned an error")
                .to_owned();
            UpstreamError::new(proxy_convert::error_type(code, &message), message)
        }
        SdkError::TimeoutError(_) => {
            UpstreamError::new(ErrorType::TimeoutError, "Bedrock did not answer in time")
        }
        SdkError::DispatchFailure(d) => {
            tracing::warn!(error = ?d, "Bedrock unreachable");
            UpstreamError::new(
                ErrorType::OverloadedError,
                "Bedrock is unreachable from the gateway",
            )
        }
        SdkError::ConstructionFailure(c) => {
            tracing::error!(error = ?c, "cannot build the Bedrock request (credentials or configuration)");
            UpstreamError::new(
                ErrorType::ApiError,
                "the gateway cannot call Bedrock (credentials or configuration)",
            )
        }
        other => {
            tracing::warn!(error = ?other, "unexpected Bedrock response");
            UpstreamError::new(ErrorType::ApiError, "unexpected response from Bedrock")
        }
    }
}

/// The Messages API client from the SDK's configuration: the same region, credential chain and
/// Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`, read as the SDK reads it) and endpoint overrides.
fn messages_client(shared: &aws_types::SdkConfig, timeout: Duration) -> Option<MessagesClient> {
    let Some(region) = shared.region().map(|r| r.to_string()) else {
        tracing::debug!("no AWS region: the Messages API route is unavailable");
        return None;
    };
    let bearer = aws_types::service_config::ServiceConfigKey::builder()
        .service_id("bedrock")
        .env("AWS_BEARER_TOKEN")
        .profile("")
        .build()
        .ok()
        .and_then(|key| shared.service_config()?.load_config(key))
        .filter(|t| !t.trim().is_empty());
    let auth = match (bearer, shared.credentials_provider()) {
        (Some(token), _) => signed::Auth::Bearer(token),
        (None, Some(provider)) => signed::Auth::SigV4(provider),
        (None, None) => {
            tracing::debug!("no AWS credentials: the Messages API route is unavailable");
            return None;
        }
    };
    match signed::SignedClient::new(auth, signed::ClientSettings::new(timeout)) {
        Ok(client) => Some(MessagesClient::new(
            client,
            region.clone(),
            Endpoints::from_sdk_config(shared, &region),
        )),
        Err(e) => {
            tracing::error!(error = %e, "cannot set up the Messages API client");
            None
        }
    }
}

/// The shared Bedrock client.
#[derive(Debug, Clone)]
pub struct Bedrock {
    client: Client,
    control: aws_sdk_bedrock::Client,
    credentials: Option<aws_sdk_bedrockruntime::config::SharedCredentialsProvider>,
    bearer: bool,
    timeout: Duration,
    /// The Messages API client; `None` when it could not be set up (no region, no credentials, or
    /// no TLS), which `messages_api` reports.
    messages: Option<MessagesClient>,
    /// Retries before the answer starts, and who hears of them.
    retry: RetryPolicy,
    hook: Option<RetryHook>,
}

impl Bedrock {
    /// Builds the client from the standard AWS configuration chain (env, profile, web identity, ECS,
    /// IMDS, `credential_process`; `AWS_BEARER_TOKEN_BEDROCK`; `AWS_ENDPOINT_URL_BEDROCK_RUNTIME`),
    /// with `region` when the chain has none. The SDK does not retry; [`Bedrock::send`] does, under
    /// its [`RetryPolicy`], before the answer starts.
    pub async fn from_env(region: Option<String>, timeout: Duration) -> Self {
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r));
        }
        let shared = loader.load().await;
        let credentials = shared.credentials_provider();
        let bearer = std::env::var_os("AWS_BEARER_TOKEN_BEDROCK").is_some();
        let conf = aws_sdk_bedrockruntime::config::Builder::from(&shared)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build(),
            )
            .build();
        // The control plane (model listings) honours AWS_ENDPOINT_URL_BEDROCK.
        let control = aws_sdk_bedrock::Client::new(&shared);
        let messages = messages_client(&shared, timeout);
        Bedrock {
            client: Client::from_conf(conf),
            control,
            credentials,
            bearer,
            timeout,
            messages,
            retry: RetryPolicy::default(),
            hook: None,
        }
    }

    /// Retries throttled and unavailable calls under `policy` (the default: [`RetryPolicy::default`]).
    pub fn with_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// `hook` hears of every retry and every fallback (for metrics).
    pub fn set_retry_hook(&mut self, hook: RetryHook) {
        self.hook = Some(hook);
    }

    /// The Messages API client (runtime's `/anthropic` and Mantle), or why there is none.
    pub fn messages_api(&self) -> Result<&MessagesClient, UpstreamError> {
        self.messages.as_ref().ok_or_else(|| {
            UpstreamError::new(
                ErrorType::ApiError,
                "the gateway cannot call Bedrock's Messages API (no region, credentials or TLS; see the start-up log)",
            )
        })
    }

    /// The region in use.
    pub fn region(&self) -> Option<String> {
        self.client.config().region().map(|r| r.to_string())
    }

    /// Whether credentials resolve (readiness).
    pub async fn credentials_ok(&self) -> bool {
        use aws_sdk_bedrockruntime::config::ProvideCredentials;
        if self.bearer {
            return true;
        }
        match &self.credentials {
            Some(p) => p.provide_credentials().await.is_ok(),
            None => false,
        }
    }

    /// The underlying SDK client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// `fut` within `BEDROCK_TIMEOUT`. A map over the timeout, not an `async fn`, which would hold
    /// `fut` twice (as its argument and inside the timeout it awaits).
    fn timed<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, UpstreamError>>,
    ) -> impl std::future::Future<Output = Result<T, UpstreamError>> {
        futures::FutureExt::map(tokio::time::timeout(self.timeout, fut), |r| {
            r.unwrap_or_else(|_| {
                Err(UpstreamError::new(
                    ErrorType::TimeoutError,
                    "Bedrock did not answer within BEDROCK_TIMEOUT",
                ))
            })
        })
    }

    /// Bedrock's catalog: its text models (ListFoundationModels) and system-defined inference
    /// profiles (ListInferenceProfiles), for [`Router::update`]. Two control-plane calls or more
    /// (profiles are paged), within [`CATALOG_TIMEOUT`]; the caller reads it in the background,
    /// never per request.
    pub async fn catalog(&self) -> Result<Listing, UpstreamError> {
        tokio::time::timeout(CATALOG_TIMEOUT, catalog::fetch(&self.control))
            .await
            .unwrap_or_else(|_| {
                Err(UpstreamError::new(
                    ErrorType::TimeoutError,
                    "Bedrock's control plane did not list the models in time",
                ))
            })
    }

    /// CountTokens on a foundation-model id.
    pub async fn count_tokens(
        &self,
        model_id: &str,
        input: CountTokensInput,
    ) -> Result<u64, UpstreamError> {
        let call = self.client.count_tokens().model_id(model_id).input(input);
        self.timed(async {
            call.send()
                .await
                .map(|o| o.input_tokens().max(0) as u64)
                .map_err(upstream_error)
        })
        .await
    }
}
