//! The emulator inside a test process: served on an ephemeral loopback port of the caller's tokio
//! runtime for as long as a [`LocalSim`] lives.
//!
//! ```no_run
//! # async fn example() -> std::io::Result<()> {
//! let sim = bedrock_sim::testing::LocalSim::start(bedrock_sim::Config::default()).await?;
//! // Point an AWS SDK client (endpoint_url) or a proxy at sim.url(), then:
//! let received = sim.recorded().await?;
//! # Ok(()) }
//! ```

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::{Config, Sim, run};

/// An emulator serving on `127.0.0.1` (a port the OS picked) until this value is dropped.
#[derive(Debug)]
pub struct LocalSim {
    url: String,
    _stop: oneshot::Sender<()>,
}

impl LocalSim {
    /// Binds `127.0.0.1:0` and serves `config` there, on a task of the current tokio runtime (so it
    /// must be called inside one, e.g. a `#[tokio::test]`). Dropping the value shuts the server down
    /// gracefully.
    pub async fn start(config: Config) -> std::io::Result<LocalSim> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(run(listener, Sim::new(config), async {
            let _ = stopped.await;
        }));
        Ok(LocalSim { url, _stop: stop })
    }

    /// The base URL, `http://127.0.0.1:PORT`: the endpoint to give an AWS SDK client.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// What the emulator received, oldest first: the answer of `GET /_sim/requests`, fetched over
    /// plain HTTP/1.1 like any other client of the control endpoint.
    pub async fn recorded(&self) -> std::io::Result<Vec<Value>> {
        let (_, body) = self.call("GET", "/_sim/requests", None).await?;
        Ok(serde_json::from_value(body)?)
    }

    /// `GET /_sim/connections`: `{"open": N, "busy": M}`, the connections open now (this one
    /// included) and the requests being answered.
    pub async fn connections(&self) -> std::io::Result<Value> {
        Ok(self.call("GET", "/_sim/connections", None).await?.1)
    }

    /// Adds a model to the running emulator's catalog (`POST /_sim/models`): `spec` is a
    /// [`ModelSpec`](crate::catalog::ModelSpec) as JSON, e.g.
    /// `{"id": "anthropic.claude-opus-6", "name": "Claude Opus 6", "inference_types":
    /// ["INFERENCE_PROFILE"], "geos": ["us", "global"], "mantle": true}`. A spec the emulator
    /// refuses is an error carrying its message.
    pub async fn add_model(&self, spec: &Value) -> std::io::Result<()> {
        let (status, body) = self
            .call("POST", "/_sim/models", Some(&spec.to_string()))
            .await?;
        if status != 200 {
            return Err(std::io::Error::other(format!(
                "POST /_sim/models answered {status}: {body}"
            )));
        }
        Ok(())
    }

    /// `POST path` with `body` and `Authorization: Bearer test` (what a client without the SDK
    /// sends), the answer read whole: status, content type and body (de-chunked).
    pub async fn post(&self, path: &str, body: &[u8]) -> std::io::Result<(u16, String, Vec<u8>)> {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).await?;
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        s.write_all(&request).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP response body"))?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut rest = &raw[split + 4..];
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let content_type = header("content-type").unwrap_or_default();
        if !header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
            return Ok((status, content_type, rest.to_vec()));
        }
        let mut body = Vec::new();
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .ok_or_else(|| std::io::Error::other("bad chunked body"))?;
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..line_end])
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim(),
                16,
            )
            .map_err(std::io::Error::other)?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Ok((status, content_type, body));
            }
            body.extend_from_slice(&rest[..size.min(rest.len())]);
            rest = &rest[(size + 2).min(rest.len())..];
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> std::io::Result<(u16, Value)> {
        let addr = self.url.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).await?;
        let body = body.unwrap_or_default();
        s.write_all(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        let text = String::from_utf8(raw).map_err(std::io::Error::other)?;
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| std::io::Error::other("no HTTP response body"))?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
        Ok((status, serde_json::from_str(body)?))
    }
}
