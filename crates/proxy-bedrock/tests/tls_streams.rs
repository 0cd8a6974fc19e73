//! The signed client against a TLS endpoint that offers HTTP/2 and HTTP/1.1 (as Bedrock's runtime
//! endpoint does: `h2` is optional there) and allows one HTTP/2 stream per connection.
//!
//! Bedrock calls are long: a stream stays open for minutes. hyper-util's pooled client puts every
//! HTTP/2 request to one host on a single connection and never opens a second one when the
//! server's `SETTINGS_MAX_CONCURRENT_STREAMS` is reached (hyperium/hyper#3623), so past that many
//! open streams each further call would wait for one of them to end, and time out. The client
//! therefore offers only HTTP/1.1: each call in flight has a connection of its own.
//!
//! The test's certificate is `tests/tls/localhost.pem` (self-signed for `localhost`, valid to
//! 2126; its key is a test key, used nowhere else), trusted through `SSL_CERT_FILE` as a
//! deployment would add a private CA. Made with `openssl req -x509 -newkey ec -pkeyopt
//! ec_paramgen_curve:prime256v1 -nodes -days 36500 -subj /CN=localhost -addext
//! subjectAltName=DNS:localhost,IP:127.0.0.1 -addext basicConstraints=critical,CA:FALSE -addext
//! extendedKeyUsage=serverAuth -keyout localhost.key -out localhost.pem`.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proxy_bedrock::signed::{Auth, ClientSettings, SignedClient};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/localhost.pem");
const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls/localhost.key");

/// A TLS server offering `h2` and `http/1.1`, one HTTP/2 stream per connection; every response is
/// a head and then a body that never ends. Returns its port and the protocols it negotiated.
async fn holding_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(CERT)
        .expect("test certificate")
        .collect::<Result<_, _>>()
        .expect("test certificate");
    let key = PrivateKeyDer::from_pem_file(KEY).expect("test key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server certificate");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                record
                    .lock()
                    .unwrap()
                    .push(if h2 { "h2" } else { "http/1.1" }.to_owned());
                let service = service_fn(|_req| async {
                    let body = StreamBody::new(futures::stream::pending::<
                        Result<Frame<Bytes>, Infallible>,
                    >());
                    Ok::<_, Infallible>(Response::new(body.boxed()))
                });
                let io = TokioIo::new(tls);
                if h2 {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .max_concurrent_streams(1)
                        .serve_connection(io, service)
                        .await;
                } else {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, service)
                        .await;
                }
            });
        }
    });
    (port, seen)
}

/// Trusting the test certificate takes `SSL_CERT_FILE` in the environment before the first client
/// is made, and this crate sets no environment variables itself (no `unsafe`): the test runs
/// again in a child process that has it.
#[test]
fn calls_held_open_together_do_not_wait_for_each_other() {
    const CHILD: &str = "PROXY_BEDROCK_TLS_STREAMS_CHILD";
    if std::env::var_os(CHILD).is_some() {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(three_calls_held_open());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "calls_held_open_together_do_not_wait_for_each_other",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("SSL_CERT_FILE", CERT)
        .output()
        .expect("the test binary runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("1 passed"), "the child ran no test: {said}");
}

async fn three_calls_held_open() {
    let (port, seen) = holding_server().await;
    let client = SignedClient::new(
        Auth::Bearer("test-token".into()),
        ClientSettings::new(Duration::from_secs(5)),
    )
    .expect("client");
    let url = format!("https://localhost:{port}/model/m/converse-stream");
    let mut open = Vec::new();
    for i in 0..3 {
        let reply = client
            .sign_and_send(
                "bedrock",
                "us-east-1",
                Method::POST,
                &url,
                HeaderMap::new(),
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap_or_else(|e| {
                panic!("call {i}, with {i} others held open, got no response head: {e}")
            });
        assert_eq!(reply.status(), 200);
        // Held, as a stream being relayed is.
        open.push(reply);
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, ["http/1.1", "http/1.1", "http/1.1"], "{seen:?}");
}
