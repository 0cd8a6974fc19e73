//! `floor-proxy`: the floor that `cargo xtask bench` measures the gateway against.
//!
//! The least a JSON proxy in front of Bedrock can do, with the usual good choices and nothing else:
//! a hyper 1 HTTP/1.1 server with keep-alive; each request body parsed into a `serde_json::Value`
//! and encoded again (every gateway must at least read the JSON it forwards); forwarded to the
//! upstream on the path it was received at, through a pooled `hyper_util` client with
//! `TCP_NODELAY`; the response relayed frame by frame as it arrives; mimalloc as the allocator (as
//! in proxy-server: without transparent huge pages). No authentication, conversion, signing,
//! limits or usage records: it is a yardstick, not a product.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::uri::{Authority, PathAndQuery};
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

/// A minimal JSON pass-through proxy, the floor of the gateway's benchmark.
#[derive(Debug, Parser)]
#[command(name = "floor-proxy", version)]
struct Args {
    /// Address to listen on (port 0 picks a free one; the address served is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// The upstream's base URL, `http://HOST:PORT` (requests keep their path and query).
    #[arg(long)]
    upstream: String,
}

type Upstream = Client<HttpConnector, Full<Bytes>>;
type Reply = Response<Either<Incoming, Full<Bytes>>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let uri: Uri = args
        .upstream
        .parse()
        .with_context(|| format!("--upstream: not a URL: {}", args.upstream))?;
    if uri.scheme_str() != Some("http") {
        bail!("--upstream: only http:// upstreams are supported");
    }
    let authority = uri
        .authority()
        .cloned()
        .context("--upstream: no host in the URL")?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Upstream = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(usize::MAX)
        .build(connector);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "floor-proxy listening on http://{}",
        listener.local_addr()?
    )?;
    out.flush()?;
    drop(out);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                eprintln!("floor-proxy: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let authority = authority.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| forward(client.clone(), authority.clone(), req));
            // A connection's errors (a client gone mid-request) end that connection only.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Parses, re-encodes and forwards one request; relays the upstream's response as it arrives.
async fn forward(
    client: Upstream,
    authority: Authority,
    req: Request<Incoming>,
) -> Result<Reply, Infallible> {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "cannot read the request body",
        ));
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "the request body is not JSON",
        ));
    };
    let Ok(body) = serde_json::to_vec(&value) else {
        return Ok(plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot encode JSON",
        ));
    };
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let Ok(uri) = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
    else {
        return Ok(plain(StatusCode::BAD_REQUEST, "bad request target"));
    };
    let mut upstream = Request::new(Full::new(Bytes::from(body)));
    *upstream.method_mut() = parts.method;
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = end_to_end(parts.headers);
    match client.request(upstream).await {
        Ok(resp) => {
            let (mut parts, body) = resp.into_parts();
            parts.headers.remove(CONNECTION);
            parts.headers.remove(TRANSFER_ENCODING);
            Ok(Response::from_parts(parts, Either::Left(body)))
        }
        Err(e) => Ok(plain(StatusCode::BAD_GATEWAY, &format!("upstream: {e}"))),
    }
}

/// The request's headers less those of this hop (the client sets `host` and `content-length`).
fn end_to_end(mut headers: HeaderMap) -> HeaderMap {
    for name in [HOST, CONTENT_LENGTH, CONNECTION, TRANSFER_ENCODING] {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers
}

fn plain(status: StatusCode, message: &str) -> Reply {
    let mut resp = Response::new(Either::Right(Full::new(Bytes::from(message.to_owned()))));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
    resp
}
