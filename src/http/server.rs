//! Listeners of the camera API proxy: the path-based front and each
//! device's front, plain or TLS, on one [`crate::listener::Pool`] (one
//! connection cap for all of them, per-address caps on unauthenticated
//! clients), with a header timeout and a header size cap.
//!
//! Every request carries its connection's [`AuthHandle`] in its extensions:
//! the proxy calls [`AuthHandle::authenticated`] once a request's
//! credentials check out, which lifts the connection's unauthenticated
//! deadline and takes it out of its address's unauthenticated count. A
//! connection with no authenticated request within
//! `http.unauthenticated_timeout_secs` of its accept is closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::proxy::{Mode, Proxy};
use crate::config::schema::HttpSection;
use crate::listener::{AuthHandle, ConnGuard, Ended, Limits, Listener, refuse_with};

/// How long a connection closed by a limit (or at shutdown) may take to
/// finish the response in flight.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// What a refused client is told before the connection closes.
const REFUSED: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

/// The connection limits of `cfg` (clients grouped per IPv6 /64).
pub fn limits(cfg: &HttpSection) -> Limits {
    Limits {
        max_connections: cfg.max_connections,
        max_unauthenticated: cfg.max_unauthenticated(),
        max_unauthenticated_per_address: cfg.max_unauthenticated_per_address,
        unauthenticated_timeout: Some(Duration::from_secs(cfg.unauthenticated_timeout_secs)),
        ipv6_prefix: 64,
    }
}

/// Serves `listener` until `cancel`.
pub async fn serve(
    listener: Listener,
    proxy: Arc<Proxy>,
    mode: Mode,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let local = listener.local_addr();
    let serve = move |stream: TcpStream, guard: ConnGuard| {
        let (proxy, mode, tls) = (proxy.clone(), mode.clone(), tls.clone());
        async move {
            let local = stream.local_addr().unwrap_or(local);
            let peer = guard.peer();
            let _ = stream.set_nodelay(true);
            // The request head must come within the unauthenticated
            // deadline as well as the proxy's own timeout.
            let header_timeout = Duration::from_secs(
                proxy
                    .cfg
                    .timeout_secs
                    .min(proxy.cfg.unauthenticated_timeout_secs),
            );
            match tls {
                None => {
                    let io = TokioIo::new(stream);
                    connection(io, proxy, mode, local, header_timeout, guard).await
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream));
                    let s = tokio::select! {
                        r = handshake => r,
                        ended = guard.closed() => {
                            debug!(%peer, ?ended, "closed during the TLS handshake");
                            return;
                        }
                    };
                    match s {
                        Ok(Ok(s)) => {
                            let io = TokioIo::new(s);
                            connection(io, proxy, mode, local, header_timeout, guard).await
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        }
    };
    listener
        .run(cancel, tracker, serve, refuse_with(REFUSED))
        .await;
}

async fn connection<I>(
    io: I,
    proxy: Arc<Proxy>,
    mode: Mode,
    local: SocketAddr,
    header_timeout: Duration,
    guard: ConnGuard,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let peer = guard.peer();
    let max_head = proxy.cfg.max_header_bytes.max(8192);
    let auth = guard.auth_handle();
    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let (proxy, mode) = (proxy.clone(), mode.clone());
        req.extensions_mut().insert::<AuthHandle>(auth.clone());
        async move { Ok::<_, std::convert::Infallible>(proxy.handle(req, peer, local, mode).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(max_head)
        .serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "HTTP connection") },
        ended = guard.closed() => {
            if ended != Ended::Shutdown {
                debug!(%peer, ?ended, "closing HTTP connection: listener limit");
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, conn).await;
        }
    }
}
