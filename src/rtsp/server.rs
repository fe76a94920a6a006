//! The recorder-facing RTSP listener: accept loop with a connection cap,
//! the UDP socket pair, and the sweeper that ends silent UDP sessions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span, warn};

use super::conn;
use super::session::Sessions;
use super::udp::UdpPair;
use crate::auth::Authenticator;
use crate::config::DeviceId;
use crate::config::schema::RtspSection;
use crate::devices::Registry;
use crate::metrics::Metrics;
use crate::ratelimit::LogLimiter;

/// State shared by every connection.
pub struct Server {
    pub cfg: RtspSection,
    pub metrics: Metrics,
    pub registry: Arc<Registry>,
    pub auth: Arc<Authenticator>,
    pub sessions: Sessions,
    pub udp: Option<Arc<UdpPair>>,
    next_conn: AtomicU64,
}

impl Server {
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// A bound, not yet running, RTSP server.
pub struct Bound {
    server: Arc<Server>,
    /// The main listener first, then device fronts (with their device).
    listeners: Vec<(TcpListener, Option<DeviceId>)>,
}

/// Binds the TCP listeners (main and device fronts) and the UDP pair when UDP
/// is enabled. An error names the address that could not be bound.
pub async fn bind(
    cfg: &RtspSection,
    fronts: &[(SocketAddr, DeviceId)],
    registry: Arc<Registry>,
    auth: Arc<Authenticator>,
    metrics: Metrics,
) -> Result<Bound, (SocketAddr, std::io::Error)> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| (cfg.listen, e))?;
    let udp = if cfg.udp {
        let ip = listener.local_addr().map_err(|e| (cfg.listen, e))?.ip();
        let udp_addr = SocketAddr::new(ip, cfg.udp_rtp_port);
        Some(Arc::new(
            UdpPair::bind(ip, cfg.udp_rtp_port)
                .await
                .map_err(|e| (udp_addr, e))?,
        ))
    } else {
        None
    };
    let mut listeners = vec![(listener, None)];
    for (addr, device) in fronts {
        let l = TcpListener::bind(addr).await.map_err(|e| (*addr, e))?;
        listeners.push((l, Some(device.clone())));
    }
    Ok(Bound {
        server: Arc::new(Server {
            cfg: cfg.clone(),
            metrics,
            registry,
            auth,
            sessions: Sessions::default(),
            udp,
            next_conn: AtomicU64::new(1),
        }),
        listeners,
    })
}

impl Bound {
    /// The main listener's address.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listeners[0].0.local_addr()
    }

    /// The UDP (RTP, RTCP) ports, if UDP is enabled.
    pub fn udp_ports(&self) -> Option<(u16, u16)> {
        self.server.udp.as_ref().map(|u| u.ports())
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Accepts connections until `cancel`; every task goes on `tracker`.
    pub async fn run(self, cancel: CancellationToken, tracker: TaskTracker) {
        let Bound { server, listeners } = self;
        let limit = Arc::new(Semaphore::new(server.cfg.max_connections));
        if let Some(udp) = &server.udp {
            tracker.spawn(udp.clone().receive(cancel.clone()));
        }
        tracker.spawn(sweep(server.clone(), cancel.clone()));
        for (listener, front) in listeners {
            tracker.spawn(accept(
                server.clone(),
                listener,
                front,
                limit.clone(),
                cancel.clone(),
                tracker.clone(),
            ));
        }
    }
}

async fn accept(
    server: Arc<Server>,
    listener: TcpListener,
    front: Option<DeviceId>,
    limit: Arc<Semaphore>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    static ACCEPT_ERR: LogLimiter = LogLimiter::new(10);
    static FULL: LogLimiter = LogLimiter::new(10);
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => break,
            r = listener.accept() => r,
        };
        let (mut stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                if let Some(suppressed) = ACCEPT_ERR.allow() {
                    warn!(error = %e, suppressed, "RTSP accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            if let Some(suppressed) = FULL.allow() {
                warn!(%peer, max = server.cfg.max_connections, suppressed,
                    "RTSP connection limit reached: refusing");
            }
            tracker.spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream
                        .write_all(b"RTSP/1.0 503 Service Unavailable\r\nServer: camgate\r\n\r\n"),
                )
                .await;
            });
            continue;
        };
        let id = server.next_conn_id();
        let span = info_span!("rtsp_conn", conn = id, peer = %peer, front = front.as_ref().map(|d| d.to_string()));
        let (server, cancel, t, front) = (
            server.clone(),
            cancel.clone(),
            tracker.clone(),
            front.clone(),
        );
        tracker.spawn(
            async move {
                debug!("connected");
                conn::serve(server, stream, peer, id, front, cancel, t).await;
                debug!("disconnected");
                drop(permit);
            }
            .instrument(span),
        );
    }
    info!("RTSP listener stopped");
}

/// Ends UDP sessions that sent neither requests nor RTCP for the timeout.
async fn sweep(server: Arc<Server>, cancel: CancellationToken) {
    let timeout = Duration::from_secs(server.cfg.session_timeout_secs);
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(timeout));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        for s in server
            .sessions
            .remove_where(|s| s.is_udp() && s.idle() > timeout)
        {
            info!(session = %s.id, recorder = %s.recorder.name, device = %s.device,
                "UDP session timed out");
        }
    }
}
