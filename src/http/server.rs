//! Listeners of the camera API proxy: the path-based front and each
//! device's front, plain or TLS, with a header timeout, a header size cap
//! and a connection cap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::proxy::{Mode, Proxy};
use crate::ratelimit::LogLimiter;

/// Concurrent connections per listener.
const MAX_CONNECTIONS: usize = 512;

/// Serves `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    mode: Mode,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let local = listener.local_addr().ok();
    static ACCEPT_ERR: LogLimiter = LogLimiter::new(10);
    loop {
        let permit = tokio::select! {
            _ = cancel.cancelled() => return,
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            _ = cancel.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    if let Some(suppressed) = ACCEPT_ERR.allow() {
                        warn!(error = %e, suppressed, "HTTP accept failed");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let local = stream.local_addr().ok().or(local).unwrap_or(peer);
        let _ = stream.set_nodelay(true);
        let (proxy, mode, tls, cancel) = (proxy.clone(), mode.clone(), tls.clone(), cancel.clone());
        tracker.spawn(async move {
            let header_timeout = Duration::from_secs(proxy.cfg.timeout_secs);
            match tls {
                None => {
                    connection(
                        TokioIo::new(stream),
                        proxy,
                        mode,
                        peer,
                        local,
                        header_timeout,
                        cancel,
                    )
                    .await
                }
                Some(acceptor) => {
                    match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => {
                            connection(
                                TokioIo::new(s),
                                proxy,
                                mode,
                                peer,
                                local,
                                header_timeout,
                                cancel,
                            )
                            .await
                        }
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn connection<I>(
    io: I,
    proxy: Arc<Proxy>,
    mode: Mode,
    peer: SocketAddr,
    local: SocketAddr,
    header_timeout: Duration,
    cancel: CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let max_head = proxy.cfg.max_header_bytes.max(8192);
    let svc = service_fn(move |req| {
        let (proxy, mode) = (proxy.clone(), mode.clone());
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
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
        }
    }
}
