//! The benches' HTTP client: one keep-alive HTTP/1.1 connection per client (hyper's low-level client, TCP_NODELAY),
//! the headers every request carries, and a one-off GET. Shared with `#[path = "shared/http.rs"] mod http;`.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where the clients send, and the headers every request carries.
pub struct Target {
    pub addr: SocketAddr,
    host: HeaderValue,
    authorization: HeaderValue,
    json: HeaderValue,
}

impl Target {
    pub fn new(addr: SocketAddr, key: &str) -> anyhow::Result<Target> {
        Ok(Target {
            addr,
            host: HeaderValue::from_str(&addr.to_string()).context("host header")?,
            authorization: HeaderValue::from_str(&format!("Bearer {key}")).context("the api key is not a header")?,
            json: HeaderValue::from_static("application/json"),
        })
    }
}

/// One keep-alive HTTP/1.1 connection with TCP_NODELAY.
pub struct Client {
    pub target: Arc<Target>,
    sender: http1::SendRequest<Full<Bytes>>,
}

impl Client {
    pub async fn connect(target: &Arc<Target>) -> anyhow::Result<Client> {
        let stream = TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("connect to {}", target.addr))?;
        stream.set_nodelay(true).context("set TCP_NODELAY")?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP/1.1 handshake")?;
        // A connection error also fails the request in flight, which is where it is counted.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Client {
            target: Arc::clone(target),
            sender,
        })
    }

    /// Sends one request and reads the whole answer.
    pub async fn send(&mut self, method: Method, path: &str, body: Bytes) -> Result<(StatusCode, Bytes), hyper::Error> {
        let mut request = Request::builder().method(method).uri(path);
        let headers = request.headers_mut().expect("the bench's paths are valid URIs");
        headers.insert(HOST, self.target.host.clone());
        headers.insert(AUTHORIZATION, self.target.authorization.clone());
        if !body.is_empty() {
            headers.insert(CONTENT_TYPE, self.target.json.clone());
        }
        let request = request.body(Full::new(body)).expect("the bench's paths are valid URIs");
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// A GET on a connection of its own (so an idle keep-alive connection cannot have timed out).
pub async fn get(target: &Arc<Target>, path: &str) -> anyhow::Result<Bytes> {
    let mut client = Client::connect(target).await?;
    let (status, body) = client
        .send(Method::GET, path, Bytes::new())
        .await
        .with_context(|| format!("GET {path}"))?;
    if status != StatusCode::OK {
        bail!("GET {path}: {status} {}", String::from_utf8_lossy(&body));
    }
    Ok(body)
}
