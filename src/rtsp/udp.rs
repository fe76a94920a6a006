//! RTP over UDP unicast toward recorders: the server's RTP/RTCP socket pair,
//! the receiver that turns RTCP receiver reports into session keepalives,
//! and the per-session sender.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::session::Session;
use crate::media::hub::{Subscriber, SubscriberEnd};
use crate::rtp::framed_packets;

/// Bytes of frames gathered per wakeup.
const BATCH_BYTES: usize = 256 << 10;
/// Pace of UDP sends per session, in bytes per second (64 Mbit/s). A new
/// recorder gets the GOP cache (up to a few MB) at once; sent unpaced, that
/// burst overflows the recorder's socket buffer and it loses the key frame
/// it needs. Live streams stay far below this rate.
const PACE_BYTES_PER_SEC: f64 = 8e6;
/// Bytes that may leave back to back before pacing starts.
const PACE_BURST: f64 = 32e3;

/// A token bucket over bytes.
struct Pacer {
    budget: f64,
    last: tokio::time::Instant,
}

impl Pacer {
    fn new() -> Pacer {
        Pacer {
            budget: PACE_BURST,
            last: tokio::time::Instant::now(),
        }
    }

    /// Waits until `len` bytes may be sent.
    async fn take(&mut self, len: usize) {
        let now = tokio::time::Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * PACE_BYTES_PER_SEC;
        self.budget = (self.budget + refill).min(PACE_BURST);
        self.last = now;
        self.budget -= len as f64;
        if self.budget < 0.0 {
            let wait = std::time::Duration::from_secs_f64(-self.budget / PACE_BYTES_PER_SEC);
            tokio::time::sleep(wait).await;
        }
    }
}

/// The server's RTP and RTCP sockets.
pub struct UdpPair {
    pub rtp: UdpSocket,
    pub rtcp: UdpSocket,
    /// Recorders' addresses (either port) -> their session, for keepalives.
    peers: Mutex<HashMap<SocketAddr, Weak<Session>>>,
}

impl UdpPair {
    /// Binds `rtp_port` and `rtp_port + 1` on `ip`; port 0 finds a free
    /// even/odd pair.
    pub async fn bind(ip: IpAddr, rtp_port: u16) -> std::io::Result<UdpPair> {
        if rtp_port != 0 {
            let rtcp_port = rtp_port
                .checked_add(1)
                .ok_or(std::io::ErrorKind::InvalidInput)?;
            let rtp = UdpSocket::bind((ip, rtp_port)).await?;
            let rtcp = UdpSocket::bind((ip, rtcp_port)).await?;
            return Ok(UdpPair::new(rtp, rtcp));
        }
        let mut last_err = None;
        for _ in 0..64 {
            let rtp = UdpSocket::bind((ip, 0)).await?;
            let port = rtp.local_addr()?.port();
            if port % 2 != 0 || port == u16::MAX {
                continue;
            }
            match UdpSocket::bind((ip, port + 1)).await {
                Ok(rtcp) => return Ok(UdpPair::new(rtp, rtcp)),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| std::io::ErrorKind::AddrInUse.into()))
    }

    fn new(rtp: UdpSocket, rtcp: UdpSocket) -> UdpPair {
        UdpPair {
            rtp,
            rtcp,
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// The server's (RTP, RTCP) ports.
    pub fn ports(&self) -> (u16, u16) {
        let p = |s: &UdpSocket| s.local_addr().map(|a| a.port()).unwrap_or(0);
        (p(&self.rtp), p(&self.rtcp))
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Weak<Session>>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Associates a recorder's ports with its session.
    pub fn register(&self, addrs: [SocketAddr; 2], session: &Arc<Session>) {
        let mut m = self.peers();
        // Drop entries of ended sessions, keeping the map bounded.
        m.retain(|_, w| w.strong_count() > 0);
        for a in addrs {
            m.insert(a, Arc::downgrade(session));
        }
    }

    /// Reads whatever recorders send (RTCP receiver reports, NAT punches)
    /// and counts it as a sign of life for their session.
    pub async fn receive(self: Arc<Self>, cancel: CancellationToken) {
        let mut a = vec![0u8; 2048];
        let mut b = vec![0u8; 2048];
        loop {
            let from = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.rtcp.recv_from(&mut a) => r,
                r = self.rtp.recv_from(&mut b) => r,
            };
            let Ok((_, from)) = from else { continue };
            let s = self.peers().get(&from).and_then(Weak::upgrade);
            if let Some(s) = s {
                s.touch();
            }
        }
    }
}

/// Sends a session's media over UDP until stopped or the stream ends.
pub async fn play(
    udp: Arc<UdpPair>,
    session: Arc<Session>,
    mut subscriber: Subscriber,
    dest: Vec<Option<(SocketAddr, SocketAddr)>>,
    stop: CancellationToken,
    started: tokio::sync::oneshot::Receiver<()>,
    on_end: impl FnOnce(SubscriberEnd),
) {
    // Media must not precede the PLAY response (RFC 2326 §10.5): wait until
    // the writer has sent it.
    tokio::select! {
        _ = stop.cancelled() => return,
        r = started => if r.is_err() { return },
    }
    let mut batch = Vec::new();
    let mut pacer = Pacer::new();
    loop {
        let r = tokio::select! {
            _ = stop.cancelled() => return,
            r = subscriber.next_batch(&mut batch, BATCH_BYTES) => r,
        };
        if let Err(end) = r {
            info!(session = %session.id, recorder = %session.recorder.name, ?end, "ending UDP session");
            on_end(end);
            return;
        }
        let dropped = subscriber.take_dropped();
        if dropped > 0 {
            debug!(session = %session.id, dropped, "UDP recorder skipped to the latest key frame");
        }
        for node in batch.drain(..) {
            let Some(f) = node.frame() else { continue };
            let Some(Some((rtp, rtcp))) = dest.get(usize::from(f.track)) else {
                continue;
            };
            for p in framed_packets(&f.data) {
                pacer.take(p.packet.len()).await;
                let (sock, to) = if p.channel % 2 == 0 {
                    (&udp.rtp, *rtp)
                } else {
                    (&udp.rtcp, *rtcp)
                };
                // Errors (e.g. ICMP port unreachable) are not fatal: the
                // session ends by timeout if the recorder is really gone.
                let _ = sock.send_to(p.packet, to).await;
            }
        }
    }
}
