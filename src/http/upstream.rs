//! camgate as the HTTP client of a camera: connect (with a timeout), TLS
//! with the camera's pinned certificate, and authentication with the
//! camera's own credentials (the Digest state is reused so most requests
//! need one round trip). Nothing is sent before the camera challenges, and
//! a challenge offering only Basic (the password in clear) is refused
//! ([`ErrorKind::BasicRefused`]) unless the device opted in with
//! `auth = "basic"` ([`Upstream::allow_basic`]).
//!
//! Connections are kept alive and reused: a response's connection goes back
//! to a small idle pool once its body has been read to the end (so a
//! long-lived event stream holds its own connection and blocks nothing),
//! and idle connections are dropped after [`IDLE_FOR`], before cameras
//! close them. A request that a reused connection could not carry (the
//! camera closed it first) is sent again on a fresh one when it was never
//! sent, or when it is a GET/HEAD; other methods are never sent twice.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
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
    /// The camera offered only Basic authentication and the device did not
    /// opt in: the password was not sent.
    BasicRefused,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Auth => "auth",
            ErrorKind::BasicRefused => "basic_refused",
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

/// Idle connections kept per camera (cameras accept few connections).
pub const MAX_IDLE: usize = 8;
/// How long an idle connection is kept (shorter than the keep-alive
/// timeout of the cameras' web servers, typically 5 s or more).
pub const IDLE_FOR: Duration = Duration::from_secs(3);

type Sender = SendRequest<Full<Bytes>>;

/// Idle keep-alive connections to one camera, most recent last.
#[derive(Default)]
struct Pool {
    idle: Mutex<Vec<(Sender, Instant)>>,
}

impl Pool {
    fn take(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((sender, since)) = idle.pop() {
            if since.elapsed() < IDLE_FOR && !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|(s, since)| since.elapsed() < IDLE_FOR && !s.is_closed());
        if idle.len() < MAX_IDLE {
            idle.push((sender, Instant::now()));
        }
    }
}

/// A camera's response body; its connection returns to the pool when the
/// body has been read to the end.
pub struct UpstreamBody {
    inner: Incoming,
    giveback: Option<(Sender, Weak<Pool>)>,
}

impl UpstreamBody {
    fn give_back(&mut self) {
        if let Some((sender, pool)) = self.giveback.take()
            && let Some(pool) = pool.upgrade()
        {
            pool.put(sender);
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        match &r {
            Poll::Ready(None) => self.give_back(),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => self.give_back(),
            Poll::Ready(Some(Err(_))) => self.giveback = None,
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One camera's HTTP API.
pub struct Upstream {
    addr: SocketAddr,
    /// The Host header camgate sends (the camera's own address).
    host: String,
    tls: Option<tokio_rustls::TlsConnector>,
    creds: Option<(String, Secret)>,
    /// Whether a Basic challenge may be answered (`auth = "basic"`).
    allow_basic: bool,
    /// The last challenge's client state (a std mutex: never held across
    /// an await).
    auth: Mutex<Option<http_auth::PasswordClient>>,
    timeout: Duration,
    pool: Arc<Pool>,
    tracker: TaskTracker,
    /// Ends idle connections at shutdown.
    cancel: CancellationToken,
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
        cancel: CancellationToken,
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
            allow_basic: false,
            auth: Mutex::new(None),
            timeout,
            pool: Arc::default(),
            tracker,
            cancel,
        }
    }

    /// Lets a Basic challenge be answered with the password (the device's
    /// `auth = "basic"`); refused otherwise. Digest is still preferred when
    /// the camera offers both.
    pub fn allow_basic(mut self, allow: bool) -> Upstream {
        self.allow_basic = allow;
        self
    }

    /// The camera's address as recorders must never see it.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    async fn connect(&self) -> Result<Sender, Error> {
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

    async fn handshake<S>(&self, io: S) -> Result<Sender, Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        // A fixed 64 KiB read buffer: big enough for a snapshot to arrive in
        // few reads, small enough to come from the heap rather than a fresh
        // mmap (and its page faults) for every read of every request.
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .read_buf_exact_size(Some(64 * 1024))
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| err(ErrorKind::Protocol, e.to_string()))?;
        // The connection task ends when the camera or camgate closes the
        // connection, or at shutdown.
        let cancel = self.cancel.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = cancel.cancelled() => {}
            }
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

    /// A pooled connection that is ready, else a new one.
    async fn sender(&self, fresh: bool) -> Result<(Sender, bool), Error> {
        if !fresh {
            while let Some(mut s) = self.pool.take() {
                // Ready at once unless the camera has just closed it.
                if let Ok(Ok(())) = tokio::time::timeout(Duration::from_millis(50), s.ready()).await
                {
                    return Ok((s, true));
                }
            }
        }
        Ok((self.connect().await?, false))
    }

    /// Sends one request to the camera, answering its authentication
    /// challenge once. `target` is the canonical origin-form target.
    pub async fn send(
        &self,
        method: &hyper::Method,
        target: &str,
        headers: &hyper::HeaderMap,
        body: Bytes,
    ) -> Result<Response<UpstreamBody>, Error> {
        let mut attempt = 0;
        let mut fresh = false;
        let resend_safe = matches!(*method, hyper::Method::GET | hyper::Method::HEAD);
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
            let (mut sender, reused) = self.sender(fresh).await?;
            let resp = match tokio::time::timeout(self.timeout, sender.try_send_request(req)).await
            {
                Err(_) => {
                    return Err(err(ErrorKind::Timeout, "waiting for the camera's response"));
                }
                Ok(Ok(resp)) => resp,
                Ok(Err(e)) => {
                    // A kept-alive connection the camera closed under us.
                    if reused
                        && (e.message().is_some()
                            || resend_safe && e.error().is_incomplete_message())
                    {
                        fresh = true;
                        attempt -= 1;
                        continue;
                    }
                    return Err(err(ErrorKind::Protocol, e.into_error().to_string()));
                }
            };
            if resp.status() != StatusCode::UNAUTHORIZED {
                let pool = Arc::downgrade(&self.pool);
                return Ok(resp.map(|inner| UpstreamBody {
                    inner,
                    giveback: Some((sender, pool)),
                }));
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
            // http-auth prefers a well-formed Digest challenge; what it
            // falls back to is Basic, refused unless the device opted in.
            let client = http_auth::PasswordClient::try_from(challenge.as_str())
                .map_err(|e| err(ErrorKind::Auth, format!("unusable challenge: {e}")))?;
            if matches!(client, http_auth::PasswordClient::Basic(_)) && !self.allow_basic {
                return Err(err(
                    ErrorKind::BasicRefused,
                    "the camera offers only Basic authentication (the password in clear); \
                     set auth = \"basic\" on the device to allow it",
                ));
            }
            *self.auth.lock().unwrap_or_else(|p| p.into_inner()) = Some(client);
        }
    }
}

/// Shared handle.
pub type Shared = Arc<Upstream>;

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A camera answering "hello" to every request; `close_after` closes
    /// each connection after that many answers without saying so (as
    /// cameras do when their keep-alive timeout ends). Counts connections.
    async fn camera(close_after: usize) -> (SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut answered = 0;
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            buf.drain(..end + 4);
                            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                                .await
                                .unwrap();
                            answered += 1;
                            if answered == close_after {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, conns)
    }

    fn upstream(addr: SocketAddr) -> Upstream {
        Upstream::new(
            addr,
            None,
            None,
            Duration::from_secs(5),
            TaskTracker::new(),
            CancellationToken::new(),
        )
    }

    async fn get(u: &Upstream, method: hyper::Method) -> Result<Bytes, Error> {
        let r = u
            .send(&method, "/x", &hyper::HeaderMap::new(), Bytes::new())
            .await?;
        Ok(r.into_body().collect().await.unwrap().to_bytes())
    }

    #[tokio::test]
    async fn keeps_connections_alive_between_requests() {
        let (addr, conns) = camera(usize::MAX).await;
        let u = upstream(addr);
        for _ in 0..5 {
            assert_eq!(get(&u, hyper::Method::GET).await.unwrap(), "hello");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_camera_closed_is_replaced() {
        let (addr, conns) = camera(1).await;
        let u = upstream(addr);
        for method in [hyper::Method::GET, hyper::Method::POST, hyper::Method::GET] {
            assert_eq!(get(&u, method).await.unwrap(), "hello");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_unread_body_does_not_return_its_connection() {
        let (addr, conns) = camera(usize::MAX).await;
        let u = upstream(addr);
        let r = u
            .send(
                &hyper::Method::GET,
                "/x",
                &hyper::HeaderMap::new(),
                Bytes::new(),
            )
            .await
            .unwrap();
        drop(r);
        assert_eq!(get(&u, hyper::Method::GET).await.unwrap(), "hello");
        assert_eq!(conns.load(Ordering::SeqCst), 2);
    }

    /// A camera that challenges with `challenge` (header lines) until a
    /// request carries any `Authorization`; records every request head.
    async fn challenging_camera(challenge: &'static str) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen2 = seen.clone();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                            buf.drain(..end + 4);
                            let authorized = head.to_ascii_lowercase().contains("\nauthorization:");
                            seen.lock().unwrap().push(head);
                            let reply = if authorized {
                                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_string()
                            } else {
                                format!(
                                    "HTTP/1.1 401 Unauthorized\r\n{challenge}Content-Length: 0\r\n\r\n"
                                )
                            };
                            if s.write_all(reply.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (addr, seen)
    }

    fn with_creds(addr: SocketAddr) -> Upstream {
        Upstream::new(
            addr,
            None,
            Some(("admin".into(), Secret::new("cam-secret"))),
            Duration::from_secs(5),
            TaskTracker::new(),
            CancellationToken::new(),
        )
    }

    #[tokio::test]
    async fn basic_is_answered_only_when_the_device_opted_in() {
        let basic_only = "WWW-Authenticate: Basic realm=\"cam\"\r\n";
        let (addr, seen) = challenging_camera(basic_only).await;
        let u = with_creds(addr);
        for _ in 0..2 {
            let e = get(&u, hyper::Method::GET).await.unwrap_err();
            assert_eq!(e.kind, ErrorKind::BasicRefused);
            assert!(e.message.contains("auth = \"basic\""), "{}", e.message);
        }
        let heads = seen.lock().unwrap().clone();
        assert_eq!(heads.len(), 2);
        assert!(
            heads
                .iter()
                .all(|h| !h.to_ascii_lowercase().contains("authorization")),
            "{heads:?}"
        );

        let (addr, seen) = challenging_camera(basic_only).await;
        let u = with_creds(addr).allow_basic(true);
        assert_eq!(get(&u, hyper::Method::GET).await.unwrap(), "hello");
        let heads = seen.lock().unwrap().clone();
        let b64 = base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "admin:cam-secret",
        );
        assert!(heads[1].contains(&format!("Basic {b64}")), "{heads:?}");
    }

    #[tokio::test]
    async fn digest_is_preferred_whatever_the_order() {
        // Two headers, Basic first; then one header listing both.
        for challenge in [
            "WWW-Authenticate: Basic realm=\"cam\"\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"n1\", qop=\"auth\"\r\n",
            "WWW-Authenticate: bAsIc realm=\"cam\", Digest realm=\"cam\", nonce=\"n1\"\r\n",
        ] {
            let (addr, seen) = challenging_camera(challenge).await;
            let u = with_creds(addr);
            assert_eq!(get(&u, hyper::Method::GET).await.unwrap(), "hello");
            let heads = seen.lock().unwrap().clone();
            assert!(heads[1].contains("authorization: Digest "), "{heads:?}");
            assert!(!heads.iter().any(|h| h.contains("Basic ")), "{heads:?}");
        }
        // A Digest challenge http-auth cannot use (no nonce) beside Basic
        // is Basic: refused.
        let (addr, _) = challenging_camera(
            "WWW-Authenticate: Digest realm=\"cam\"\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n",
        )
        .await;
        let e = get(&with_creds(addr), hyper::Method::GET)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::BasicRefused);
    }
}
