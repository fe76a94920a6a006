//! camgate as the HTTP client of a camera: connect (with a timeout), TLS
//! with the camera's pinned certificate, and authentication with the
//! camera's own credentials (Digest or Basic, whatever it challenges with;
//! the Digest state is reused so most requests need one round trip).
//!
//! A connection per request: cameras serve few clients, and a new
//! connection keeps a long-lived event stream from blocking other requests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::task::TaskTracker;

use crate::config::Secret;

/// Why the camera could not be asked (a bounded label for metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Connect,
    Timeout,
    Tls,
    Protocol,
    /// The camera refused camgate's credentials.
    Auth,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Auth => "auth",
        }
    }
}

#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

fn err(kind: ErrorKind, message: impl Into<String>) -> Error {
    Error {
        kind,
        message: message.into(),
    }
}

/// One camera's HTTP API.
pub struct Upstream {
    addr: SocketAddr,
    /// The Host header camgate sends (the camera's own address).
    host: String,
    tls: Option<tokio_rustls::TlsConnector>,
    creds: Option<(String, Secret)>,
    /// The last challenge's client state (a std mutex: never held across
    /// an await).
    auth: Mutex<Option<http_auth::PasswordClient>>,
    timeout: Duration,
    tracker: TaskTracker,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl Upstream {
    pub fn new(
        addr: SocketAddr,
        tls_pin: Option<[u8; 32]>,
        creds: Option<(String, Secret)>,
        timeout: Duration,
        tracker: TaskTracker,
    ) -> Upstream {
        let host = match addr.port() {
            80 if tls_pin.is_none() => addr.ip().to_string(),
            443 if tls_pin.is_some() => addr.ip().to_string(),
            _ => addr.to_string(),
        };
        Upstream {
            addr,
            host,
            tls: tls_pin.map(|p| tokio_rustls::TlsConnector::from(crate::tls::pinned_client(p))),
            creds,
            auth: Mutex::new(None),
            timeout,
            tracker,
        }
    }

    /// The camera's address as recorders must never see it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn connect(&self) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Error> {
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr))
            .await
            .map_err(|_| err(ErrorKind::Timeout, format!("connecting to {}", self.addr)))?
            .map_err(|e| err(ErrorKind::Connect, format!("{}: {e}", self.addr)))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.handshake(tcp).await,
            Some(tls) => {
                let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
                let stream = tokio::time::timeout(self.timeout, tls.connect(name, tcp))
                    .await
                    .map_err(|_| err(ErrorKind::Timeout, "TLS handshake"))?
                    .map_err(|e| err(ErrorKind::Tls, e.to_string()))?;
                self.handshake(stream).await
            }
        }
    }

    async fn handshake<S>(
        &self,
        io: S,
    ) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| err(ErrorKind::Protocol, e.to_string()))?;
        // The connection task ends with the response body (or an error).
        self.tracker.spawn(async move {
            let _ = conn.await;
        });
        Ok(sender)
    }

    fn authorization(&self, method: &str, uri: &str, body: &[u8]) -> Option<String> {
        let (user, pw) = self.creds.as_ref()?;
        let mut g = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        let client = g.as_mut()?;
        client
            .respond(&http_auth::PasswordParams {
                username: user,
                password: pw.expose(),
                uri,
                method,
                body: Some(body),
            })
            .ok()
    }

    /// Sends one request to the camera, answering its authentication
    /// challenge once. `target` is the canonical origin-form target.
    pub async fn send(
        &self,
        method: &hyper::Method,
        target: &str,
        headers: &hyper::HeaderMap,
        body: Bytes,
    ) -> Result<Response<Incoming>, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut b = Request::builder().method(method.clone()).uri(target);
            for (k, v) in headers {
                b = b.header(k, v);
            }
            b = b.header(hyper::header::HOST, &self.host);
            if let Some(a) = self.authorization(method.as_str(), target, &body) {
                b = b.header(hyper::header::AUTHORIZATION, a);
            }
            let req = b
                .body(Full::new(body.clone()))
                .map_err(|e| err(ErrorKind::Protocol, e.to_string()))?;
            let mut sender = self.connect().await?;
            let resp = tokio::time::timeout(self.timeout, sender.send_request(req))
                .await
                .map_err(|_| err(ErrorKind::Timeout, "waiting for the camera's response"))?
                .map_err(|e| err(ErrorKind::Protocol, e.to_string()))?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok(resp);
            }
            if self.creds.is_none() || attempt > 1 {
                return Err(err(
                    ErrorKind::Auth,
                    "the camera refused camgate's credentials",
                ));
            }
            let challenge = resp
                .headers()
                .get_all(hyper::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(", ");
            let client = http_auth::PasswordClient::try_from(challenge.as_str())
                .map_err(|e| err(ErrorKind::Auth, format!("unusable challenge: {e}")))?;
            *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        }
    }
}

/// Shared handle.
pub type Shared = Arc<Upstream>;
