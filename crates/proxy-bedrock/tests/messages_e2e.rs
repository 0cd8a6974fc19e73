//! The Messages API client end to end against a local hyper server playing Bedrock's side with
//! answers of the shapes Bedrock gives (JSON message, SSE, Anthropic's error envelope, runtime's
//! coral `UnknownOperationException` in a 200, AWS throttling), checking both what arrives upstream
//! (path, headers, signature and its service name, body) and what the caller gets.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use bytes::Bytes;
use futures::StreamExt;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use proxy_bedrock::signed::{Auth, ClientSettings, SignedClient};
use proxy_bedrock::{
    Endpoint, Endpoints, MessagesClient, MessagesReply, ReplyEvent, UpstreamError,
};
use proxy_schema::{ErrorType, StreamEvent};

/// What the fake Bedrock answers to one request.
#[derive(Default)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// Body chunks, written one by one with `gap` between them.
    chunks: Vec<Bytes>,
    gap: Duration,
    /// Keep the body open after the chunks, writing a comment every `gap` until the client goes.
    keep_open: bool,
    /// Set when a write failed because the client went away.
    cancelled: Option<Arc<AtomicBool>>,
    /// Wait this long before answering at all.
    delay: Duration,
}

impl Reply {
    fn json(status: u16, body: &str) -> Reply {
        Reply {
            status,
            headers: vec![("content-type", "application/json".into())],
            chunks: vec![Bytes::from(body.to_owned())],
            ..Reply::default()
        }
    }

    fn sse(chunks: &[&str]) -> Reply {
        Reply {
            status: 200,
            headers: vec![("content-type", "text/event-stream; charset=utf-8".into())],
            chunks: chunks.iter().map(|c| Bytes::from(c.to_string())).collect(),
            ..Reply::default()
        }
    }
}

/// One request as the fake Bedrock saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Default)]
struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// TCP connections accepted.
    connections: Arc<AtomicUsize>,
}

type Body = UnsyncBoxBody<Bytes, Infallible>;

impl Fake {
    async fn start() -> (Fake, SocketAddr) {
        let fake = Fake::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let f = fake.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                f.connections.fetch_add(1, Ordering::SeqCst);
                let f = f.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let f = f.clone();
                        async move { Ok::<_, Infallible>(f.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        (fake, addr)
    }

    fn push(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        self.seen.lock().unwrap().push(Seen {
            method: parts.method.to_string(),
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
        });
        let reply = self
            .replies
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Reply::json(500, r#"{"message":"no reply scripted"}"#));
        tokio::time::sleep(reply.delay).await;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
        let chunks = reply.chunks.clone();
        let (gap, keep_open, cancelled) = (reply.gap, reply.keep_open, reply.cancelled.clone());
        tokio::spawn(async move {
            for c in chunks {
                if tx.send(c).await.is_err() {
                    break;
                }
                tokio::time::sleep(gap).await;
            }
            if !keep_open {
                return;
            }
            loop {
                if tx
                    .send(Bytes::from_static(b": still here\n"))
                    .await
                    .is_err()
                {
                    if let Some(flag) = &cancelled {
                        flag.store(true, Ordering::SeqCst);
                    }
                    break;
                }
                tokio::time::sleep(gap).await;
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
        });
        let mut resp = Response::new(BodyExt::boxed_unsync(StreamBody::new(stream)));
        *resp.status_mut() = StatusCode::from_u16(reply.status).unwrap();
        for (k, v) in reply.headers {
            resp.headers_mut().insert(k, v.parse().unwrap());
        }
        resp
    }
}

fn client_with(addr: SocketAddr, auth: Auth, timeout: Duration) -> MessagesClient {
    let signed = SignedClient::new(auth, ClientSettings::new(timeout)).unwrap();
    MessagesClient::new(
        signed,
        "us-east-1",
        Endpoints {
            runtime: format!("http://{addr}/rt"),
            mantle: format!("http://{addr}/mantle"),
        },
    )
}

fn sigv4() -> Auth {
    Auth::SigV4(SharedCredentialsProvider::new(Credentials::new(
        "AKIDTEST",
        "secret",
        Some("session-token".into()),
        None,
        "test",
    )))
}

fn client(addr: SocketAddr) -> MessagesClient {
    client_with(addr, sigv4(), Duration::from_secs(5))
}

const MESSAGE: &str = r#"{"id":"msg_bdrk_01","type":"message","role":"assistant","model":"anthropic.claude-opus-4-8","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":3,"cache_creation_input_tokens":0,"cache_read_input_tokens":0}}"#;

const BODY: &str = r#"{"model":"anthropic.claude-opus-4-8","max_tokens":64,"messages":[{"role":"user","content":"Hi"}]}"#;

fn stream_text() -> String {
    [
        "event: message_start\r\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bdrk_02\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"us.anthropic.claude-opus-4-8\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,\"output_tokens\":1}}}\r\n\r\n",
        "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n",
        ": a comment Bedrock might send\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
        "event: something_new\ndata: {\"type\":\"something_new\",\"v\":1}\n\n",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":5}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]
    .concat()
}

/// Splits `text` into chunks at awkward places (inside `\r\n`, inside JSON, inside UTF-8).
fn awkward_chunks(text: &str) -> Vec<Bytes> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut step = 1;
    while i < bytes.len() {
        let end = (i + step).min(bytes.len());
        out.push(Bytes::copy_from_slice(&bytes[i..end]));
        i = end;
        step = step % 37 + 5;
    }
    out
}

async fn collect(mut s: proxy_bedrock::MessageStream) -> Vec<Result<ReplyEvent, UpstreamError>> {
    let mut out = Vec::new();
    while let Some(item) = s.next().await {
        out.push(item);
    }
    out
}

fn expect_stream(reply: Result<MessagesReply, UpstreamError>) -> proxy_bedrock::MessageStream {
    match reply {
        Ok(MessagesReply::Stream(s)) => s,
        Ok(MessagesReply::Message(m)) => panic!("expected a stream, got {m:?}"),
        Err(e) => panic!("expected a stream, got {e:?}"),
    }
}

fn expect_error<T: std::fmt::Debug>(r: Result<T, UpstreamError>) -> UpstreamError {
    match r {
        Err(e) => e,
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

#[tokio::test]
async fn mantle_message_is_signed_for_bedrock_mantle_and_carries_the_client_headers() {
    let (fake, addr) = Fake::start().await;
    fake.push(Reply {
        headers: vec![
            ("content-type", "application/json".into()),
            ("request-id", "req_bdrk_1".into()),
        ],
        ..Reply::json(200, MESSAGE)
    });
    let betas = vec![
        "interleaved-thinking-2025-05-14".to_owned(),
        "effort-2025-11-24".to_owned(),
    ];
    let reply = client(addr)
        .messages(
            Endpoint::Mantle,
            Bytes::from_static(BODY.as_bytes()),
            Some("2026-10-21"),
            &betas,
            false,
        )
        .await
        .unwrap();
    let MessagesReply::Message(m) = reply else {
        panic!("expected a message");
    };
    assert_eq!(m.id, "msg_bdrk_01");
    assert_eq!(m.usage.input_tokens, 12);

    let seen = fake.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/mantle/anthropic/v1/messages");
    assert_eq!(r.body, BODY.as_bytes());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    assert_eq!(r.header("anthropic-version"), Some("2026-10-21"));
    assert_eq!(
        r.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14,effort-2025-11-24")
    );
    assert_eq!(r.header("x-amz-security-token"), Some("session-token"));
    assert!(r.header("x-amz-date").is_some());
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDTEST/")
            && auth.contains("/us-east-1/bedrock-mantle/aws4_request"),
        "{auth}"
    );
    assert!(
        auth.contains("SignedHeaders=accept;anthropic-beta;anthropic-version;content-type;host;x-amz-date;x-amz-security-token"),
        "{auth}"
    );
}

#[tokio::test]
async fn runtime_stream_decodes_events_split_anywhere() {
    let (fake, addr) = Fake::start().await;
    fake.push(Reply {
        chunks: awkward_chunks(&stream_text()),
        ..Reply::sse(&[])
    });
    let s = expect_stream(
        client(addr)
            .messages(
                Endpoint::Runtime,
                Bytes::from_static(BODY.as_bytes()),
                None,
                &[],
                true,
            )
            .await,
    );
    let items = collect(s).await;
    let names: Vec<String> = items
        .iter()
        .map(|i| match i {
            Ok(ReplyEvent { event: Some(e), .. }) => e.name().to_owned(),
            Ok(ReplyEvent { name, .. }) => format!("?{name}"),
            Err(e) => format!("!{e}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "?something_new",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let Ok(ReplyEvent {
        event: Some(StreamEvent::MessageStart { message }),
        ..
    }) = &items[0]
    else {
        panic!("first item {:?}", items[0]);
    };
    assert_eq!(message.model, "us.anthropic.claude-opus-4-8");

    let r = &fake.seen()[0];
    assert_eq!(r.path, "/rt/anthropic/v1/messages");
    assert_eq!(r.header("accept"), Some("text/event-stream"));
    // ⚠ default version when the client sent none; no beta header for no betas.
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("anthropic-beta"), None);
    let auth = r.header("authorization").unwrap();
    assert!(auth.contains("/us-east-1/bedrock/aws4_request"), "{auth}");
}

#[tokio::test]
async fn envelope_error_keeps_its_type_and_message() {
    let (fake, addr) = Fake::start().await;
    fake.push(Reply::json(
        404,
        r#"{"type":"error","error":{"type":"not_found_error","message":"The model 'anthropic.claude-nope' does not exist"}}"#,
    ));
    let e = expect_error(
        client(addr)
            .messages(
                Endpoint::Mantle,
                Bytes::from_static(BODY.as_bytes()),
                None,
                &[],
                true,
            )
            .await,
    );
    assert_eq!(e.kind, ErrorType::NotFoundError);
    assert_eq!(
        e.message,
        "The model 'anthropic.claude-nope' does not exist"
    );
}

#[tokio::test]
async fn throttling_maps_to_rate_limit_with_retry_after() {
    let (fake, addr) = Fake::start().await;
    fake.push(Reply {
        headers: vec![
            ("content-type", "application/json".into()),
            (
                "x-amzn-errortype",
                "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/".into(),
            ),
            ("retry-after", "3".into()),
        ],
        ..Reply::json(
            429,
            r#"{"message":"Too many requests, please wait before trying again."}"#,
        )
    });
    let e = expect_error(
        client(addr)
            .messages(
                Endpoint::Runtime,
                Bytes::from_static(BODY.as_bytes()),
                None,
                &[],
                false,
            )
            .await,
    );
    assert_eq!(e.kind, ErrorType::RateLimitError);
    assert_eq!(
        e.message,
        "Too many requests, please wait before trying again."
    );
    assert_eq!(e.retry_after, Some(3));
}

#[tokio::test]
async fn unknown_operation_in_a_200_is_an_error_not_a_message() {
    let (fake, addr) = Fake::start().await;
    let coral = r#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#;
    fake.push(Reply::json(200, coral));
    fake.push(Reply::json(200, coral));
    let c = client(addr);
    let e = expect_error(
        c.count_tokens(
            Endpoint::Runtime,
            Bytes::from_static(BODY.as_bytes()),
            None,
            &[],
        )
        .await,
    );
    assert_eq!(e.kind, ErrorType::ApiError);
    assert!(
        e.message.contains("UnknownOperationException"),
        "{}",
        e.message
    );
    // The same answer to a streaming request (JSON where SSE was asked for).
    let e = expect_error(
        c.messages(
            Endpoint::Runtime,
            Bytes::from_static(BODY.as_bytes()),
            None,
            &[],
            true,
        )
        .await,
    );
    assert!(
        e.message.contains("UnknownOperationException"),
        "{}",
        e.message
    );
    assert_eq!(
        fake.seen()[0].path,
        "/rt/anthropic/v1/messages/count_tokens"
    );
}

#[tokio::test]
async fn mantle_count_tokens_returns_the_count() {
    let (fake, addr) = Fake::start().await;
    fake.push(Reply::json(200, r#"{"input_tokens":42}"#));
    let n = client(addr)
        .count_tokens(
            Endpoint::Mantle,
            Bytes::from_static(BODY.as_bytes()),
            Some("2023-06-01"),
            &["token-counting-2024-11-01".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(n, 42);
    let r = &fake.seen()[0];
    assert_eq!(r.path, "/mantle/anthropic/v1/messages/count_tokens");
    assert_eq!(
        r.header("anthropic-beta"),
        Some("token-counting-2024-11-01")
    );
    assert!(
        r.header("authorization")
            .unwrap()
            .contains("/bedrock-mantle/aws4_request")
    );
}

#[tokio::test]
async fn sse_error_mid_stream_is_an_error_item_then_the_end() {
    let (fake, addr) = Fake::start().await;
    let text = stream_text();
    let start = text.split("event: ping").next().unwrap().to_owned();
    fake.push(Reply::sse(&[
        &start,
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]));
    let s = expect_stream(
        client(addr)
            .messages(
                Endpoint::Mantle,
                Bytes::from_static(BODY.as_bytes()),
                None,
                &[],
                true,
            )
            .await,
    );
    let items = collect(s).await;
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(matches!(
        items[0],
        Ok(ReplyEvent {
            event: Some(StreamEvent::MessageStart { .. }),
            ..
        })
    ));
    let Err(e) = &items[1] else {
        panic!("{:?}", items[1])
    };
    assert_eq!(e.kind, ErrorType::OverloadedError);
    assert_eq!(e.message, "Overloaded");
}

#[tokio::test]
async fn stream_cut_before_message_stop_ends_in_an_error() {
    let (fake, addr) = Fake::start().await;
    let text = stream_text();
    let cut = text
        .split("event: message_delta")
        .next()
        .unwrap()
        .to_owned();
    fake.push(Reply::sse(&[&cut, "event: message_delta\ndata: {\"ty"]));
    let s = expect_stream(
        client(addr)
            .messages(
                Endpoint::Mantle,
                Bytes::from_static(BODY.as_bytes()),
                None,
                &[],
                true,
            )
            .await,
    );
    let items = collect(s).await;
    let last = items.last().unwrap();
    assert!(
        matches!(last, Err(e) if e.message.contains("before message_stop")),
        "{last:?}"
    );
    assert_eq!(items.iter().filter(|i| i.is_err()).count(), 1);
}

#[tokio::test]
async fn dropping_the_stream_closes_the_upstream_connection() {
    let (fake, addr) = Fake::start().await;
    let cancelled = Arc::new(AtomicBool::new(false));
    let text = stream_text();
    let start = text.split("event: ping").next().unwrap().to_owned();
    fake.push(Reply {
        keep_open: true,
        gap: Duration::from_millis(20),
        cancelled: Some(cancelled.clone()),
        ..Reply::sse(&[&start])
    });
    let mut s = expect_stream(
        client(addr)
            .messages(
                Endpoint::Mantle,
                Bytes::from_static(BODY.as_bytes()),
                None,
                &[],
                true,
            )
            .await,
    );
    assert!(matches!(
        s.next().await,
        Some(Ok(ReplyEvent {
            event: Some(StreamEvent::MessageStart { .. }),
            ..
        }))
    ));
    // The server is still writing; nothing was cancelled yet.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!cancelled.load(Ordering::SeqCst));
    drop(s);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while !cancelled.load(Ordering::SeqCst) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server kept writing after the stream was dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn no_response_head_in_time_is_a_timeout() {
    let (fake, addr) = Fake::start().await;
    fake.push(Reply {
        delay: Duration::from_secs(5),
        ..Reply::json(200, MESSAGE)
    });
    let c = client_with(addr, sigv4(), Duration::from_millis(200));
    let started = std::time::Instant::now();
    let e = expect_error(
        c.messages(
            Endpoint::Mantle,
            Bytes::from_static(BODY.as_bytes()),
            None,
            &[],
            false,
        )
        .await,
    );
    assert_eq!(e.kind, ErrorType::TimeoutError);
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn unreachable_endpoint_is_overloaded() {
    // A port that was just free: nothing listens there.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let e = expect_error(
        client(addr)
            .messages(
                Endpoint::Runtime,
                Bytes::from_static(BODY.as_bytes()),
                None,
                &[],
                false,
            )
            .await,
    );
    assert_eq!(e.kind, ErrorType::OverloadedError);
    assert_eq!(e.retry_after, Some(1));
}

#[tokio::test]
async fn bearer_key_replaces_the_signature() {
    let (fake, addr) = Fake::start().await;
    fake.push(Reply::json(200, MESSAGE));
    let c = client_with(
        addr,
        Auth::Bearer("ABSK-test-key".into()),
        Duration::from_secs(5),
    );
    c.messages(
        Endpoint::Runtime,
        Bytes::from_static(BODY.as_bytes()),
        None,
        &[],
        false,
    )
    .await
    .unwrap();
    let r = &fake.seen()[0];
    assert_eq!(r.header("authorization"), Some("Bearer ABSK-test-key"));
    assert_eq!(r.header("x-amz-date"), None);
    assert_eq!(r.header("x-amz-security-token"), None);
}

#[tokio::test]
async fn connections_are_reused() {
    let (fake, addr) = Fake::start().await;
    for _ in 0..3 {
        fake.push(Reply::json(200, MESSAGE));
    }
    let c = client(addr);
    for _ in 0..3 {
        c.messages(
            Endpoint::Mantle,
            Bytes::from_static(BODY.as_bytes()),
            None,
            &[],
            false,
        )
        .await
        .unwrap();
    }
    assert_eq!(fake.seen().len(), 3);
    assert_eq!(fake.connections.load(Ordering::SeqCst), 1);
}
