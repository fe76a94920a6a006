//! The recorder-facing RTSP listeners (main and device fronts, one
//! [`crate::listener::Pool`] for all: connection caps, per-address caps on
//! unauthenticated recorders, their deadline), the UDP socket pair, and the
//! sweeper that ends silent UDP sessions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, info_span};

use super::conn;
use super::session::Sessions;
use super::udp::UdpPair;
use crate::auth::Authenticator;
use crate::config::DeviceId;
use crate::config::schema::RtspSection;
use crate::devices::Registry;
use crate::listener::{ConnGuard, Limits, Listener, Pool, refuse_with};
use crate::metrics::Metrics;

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
    /// A fresh connection id (for logs and session ownership).
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }
}

/// A bound, not yet running, RTSP server.
pub struct Bound {
    server: Arc<Server>,
    /// The main listener first, then device fronts (with their device). All
    /// count against one pool: `max_connections` covers them together.
    listeners: Vec<(Listener, Option<DeviceId>)>,
}

/// What a refused recorder is told before the connection closes.
const REFUSED: &[u8] = b"RTSP/1.0 503 Service Unavailable\r\nServer: camgate\r\n\r\n";

/// The connection limits of `cfg`: recorders are grouped per IPv6 /64.
pub fn limits(cfg: &RtspSection) -> Limits {
    Limits {
        max_connections: cfg.max_connections,
        max_unauthenticated: cfg.max_unauthenticated(),
        max_unauthenticated_per_address: cfg.max_unauthenticated_per_address,
        unauthenticated_timeout: Some(Duration::from_secs(cfg.unauthenticated_timeout_secs)),
        ipv6_prefix: 64,
    }
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
    let pool = Pool::new("rtsp", limits(cfg), &metrics);
    let listener = Listener::bind(cfg.listen, pool.clone())
        .await
        .map_err(|e| (e.addr, e.source))?;
    let udp = if cfg.udp {
        let ip = listener.local_addr().ip();
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
        let l = Listener::bind(*addr, pool.clone())
            .await
            .map_err(|e| (e.addr, e.source))?;
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
        Ok(self.listeners[0].0.local_addr())
    }

    /// The UDP (RTP, RTCP) ports, if UDP is enabled.
    pub fn udp_ports(&self) -> Option<(u16, u16)> {
        self.server.udp.as_ref().map(|u| u.ports())
    }

    /// The state every connection shares.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Accepts connections until `cancel`; every task goes on `tracker`.
    pub async fn run(self, cancel: CancellationToken, tracker: TaskTracker) {
        let Bound { server, listeners } = self;
        if let Some(udp) = &server.udp {
            tracker.spawn(udp.clone().receive(cancel.clone()));
        }
        tracker.spawn(sweep(server.clone(), cancel.clone()));
        for (listener, front) in listeners {
            let (server, t) = (server.clone(), tracker.clone());
            let conn_cancel = cancel.clone();
            let serve = move |stream: TcpStream, guard: ConnGuard| {
                let id = server.next_conn_id();
                let peer = guard.peer();
                let span = info_span!("rtsp_conn", conn = id, peer = %peer,
                    front = front.as_ref().map(|d| d.to_string()));
                let (server, cancel, t, front) = (
                    server.clone(),
                    conn_cancel.clone(),
                    t.clone(),
                    front.clone(),
                );
                async move {
                    debug!("connected");
                    conn::serve(server, stream, peer, id, front, guard, cancel, t).await;
                    debug!("disconnected");
                }
                .instrument(span)
            };
            tracker.spawn(listener.run(
                cancel.clone(),
                tracker.clone(),
                serve,
                refuse_with(REFUSED),
            ));
        }
    }
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
