//! RTP over UDP unicast toward recorders: the server's RTP/RTCP socket pair,
//! the receiver that turns RTCP receiver reports into session keepalives,
//! and the per-session sender.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, Weak};

use std::io::IoSlice;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::session::{PlayTicket, Session};
use crate::media::hub::{Subscriber, SubscriberEnd};
use crate::metrics::RecorderMetrics;
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

/// Packets per pacing step (and per `sendmmsg` call).
const MMSG_CHUNK: usize = 32;
/// Most segments the kernel accepts in one UDP GSO send.
const GSO_MAX_SEGMENTS: usize = 64;

/// Whether the kernel took UDP GSO (`UDP_SEGMENT`) so far; cleared at the
/// first refusal, after which camgate falls back to `sendmmsg`.
static GSO: AtomicBool = AtomicBool::new(true);

/// Sends datagrams with as few system calls as possible: runs of
/// equal-sized packets to one destination (a frame's FU-A fragments) go out
/// as one UDP GSO send, the rest with `sendmmsg(2)`. Waits for the socket
/// to become writable when its buffer is full.
pub async fn send_all(sock: &UdpSocket, packets: &[(&[u8], SocketAddr)]) -> std::io::Result<()> {
    let mut i = 0;
    while i < packets.len() {
        let run = if GSO.load(Ordering::Relaxed) {
            gso_run(&packets[i..])
        } else {
            1
        };
        let r = if run >= 2 {
            let group = &packets[i..i + run];
            sock.try_io(Interest::WRITABLE, || send_gso(sock.as_raw_fd(), group))
        } else {
            // Singles: as many as follow that do not start a GSO run.
            let mut n = 1;
            while i + n < packets.len()
                && n < MMSG_CHUNK
                && (!GSO.load(Ordering::Relaxed) || gso_run(&packets[i + n..]) < 2)
            {
                n += 1;
            }
            let chunk = &packets[i..i + n];
            sock.try_io(Interest::WRITABLE, || sendmmsg(sock.as_raw_fd(), chunk))
        };
        match r {
            Ok(n) => i += n.max(1),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => sock.writable().await?,
            Err(e)
                if run >= 2
                    && matches!(e.raw_os_error(), Some(libc_eio) if GSO_REFUSALS.contains(&libc_eio)) =>
            {
                tracing::info!(error = %e, "UDP GSO refused by the kernel: using sendmmsg");
                GSO.store(false, Ordering::Relaxed);
            }
            // One bad destination must not stall the rest: skip the packet.
            Err(_) => i += 1,
        }
    }
    Ok(())
}

/// errno values meaning "no UDP GSO here" (EIO, EINVAL, ENOPROTOOPT, EOPNOTSUPP).
const GSO_REFUSALS: [i32; 4] = [5, 22, 92, 95];

/// Length of the GSO-able run at the start of `packets`: same destination,
/// equal sizes except a shorter last one, within the kernel's limits.
fn gso_run(packets: &[(&[u8], SocketAddr)]) -> usize {
    let Some((first, dest)) = packets.first() else {
        return 0;
    };
    let seg = first.len();
    let mut total = seg;
    let mut n = 1;
    for (p, d) in &packets[1..] {
        if d != dest || p.len() > seg || n == GSO_MAX_SEGMENTS || total + p.len() > 65_000 {
            break;
        }
        total += p.len();
        n += 1;
        if p.len() < seg {
            break;
        }
    }
    n
}

/// One UDP GSO send of `group` (all to one destination); returns the
/// number of packets it carried.
fn send_gso(fd: std::os::fd::RawFd, group: &[(&[u8], SocketAddr)]) -> std::io::Result<usize> {
    use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrStorage};
    let seg = group[0].0.len() as u16;
    let iov: Vec<IoSlice<'_>> = group.iter().map(|(p, _)| IoSlice::new(p)).collect();
    let addr = SockaddrStorage::from(group[0].1);
    nix::sys::socket::sendmsg(
        fd,
        &iov,
        &[ControlMessage::UdpGsoSegments(&seg)],
        MsgFlags::MSG_DONTWAIT,
        Some(&addr),
    )
    .map_err(std::io::Error::from)?;
    Ok(group.len())
}

/// One `sendmmsg` call; returns how many datagrams went out.
fn sendmmsg(fd: std::os::fd::RawFd, chunk: &[(&[u8], SocketAddr)]) -> std::io::Result<usize> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage};
    let iovs: Vec<[IoSlice<'_>; 1]> = chunk.iter().map(|(p, _)| [IoSlice::new(p)]).collect();
    let addrs: Vec<Option<SockaddrStorage>> = chunk
        .iter()
        .map(|(_, a)| Some(SockaddrStorage::from(*a)))
        .collect();
    let mut headers = MultiHeaders::<SockaddrStorage>::preallocate(chunk.len(), None);
    let results =
        nix::sys::socket::sendmmsg(fd, &mut headers, &iovs, &addrs, [], MsgFlags::MSG_DONTWAIT)
            .map_err(std::io::Error::from)?;
    Ok(results.count())
}

/// What a UDP sender task needs.
pub struct UdpPlay {
    pub udp: Arc<UdpPair>,
    pub session: Arc<Session>,
    pub subscriber: Subscriber,
    /// Per track: the recorder's (RTP, RTCP) addresses, if set up.
    pub dest: Vec<Option<(SocketAddr, SocketAddr)>>,
    pub stop: CancellationToken,
    /// The PLAY this task sends for: once the session stops or ends, the
    /// task sends nothing more and returns.
    pub ticket: PlayTicket,
    /// Fires once the PLAY response is written.
    pub started: tokio::sync::oneshot::Receiver<()>,
    pub metrics: RecorderMetrics,
}

/// Sends a session's media over UDP until its PLAY is stopped (PAUSE,
/// TEARDOWN, the session's timeout or removal: `stop` fires and the
/// ticket goes stale; the ticket is checked before every send, so no
/// datagram leaves once the stop has returned but one already in the
/// kernel's hands) or the stream ends; `on_end` runs when the stream ends
/// or the recorder is dropped as too slow while this PLAY is current.
pub async fn play(p: UdpPlay, on_end: impl FnOnce()) {
    let UdpPlay {
        udp,
        session,
        mut subscriber,
        dest,
        stop,
        ticket,
        started,
        metrics,
    } = p;
    // Media must not precede the PLAY response (RFC 2326 §10.5): wait until
    // the writer has sent it. Never written (the connection went): this
    // PLAY is over, and the session must not look as if it played.
    tokio::select! {
        _ = stop.cancelled() => return,
        r = started => if r.is_err() {
            session.finish_play(&ticket);
            return;
        },
    }
    let mut batch = Vec::new();
    let mut pacer = Pacer::new();
    loop {
        if !ticket.is_current() {
            return;
        }
        let r = tokio::select! {
            _ = stop.cancelled() => return,
            r = subscriber.next_batch(&mut batch, BATCH_BYTES) => r,
        };
        if let Err(end) = r {
            if !ticket.is_current() {
                return;
            }
            info!(session = %session.id, recorder = %session.recorder.name, ?end, "ending UDP session");
            if end == SubscriberEnd::TooSlow {
                metrics.dropped_too_slow(subscriber.backlog_frames());
            }
            on_end();
            return;
        }
        let dropped = subscriber.take_dropped();
        if dropped > 0 {
            metrics.dropped_queue_full(dropped);
            debug!(session = %session.id, dropped, "UDP recorder skipped to the latest key frame");
        }
        let mut packets: Vec<(&[u8], SocketAddr)> = Vec::with_capacity(64);
        let mut rtcp: Vec<(&[u8], SocketAddr)> = Vec::new();
        for node in &batch {
            let Some(f) = node.frame() else { continue };
            let Some(Some((rtp, rtcp_to))) = dest.get(usize::from(f.track)) else {
                continue;
            };
            for p in framed_packets(&f.data) {
                if p.channel % 2 == 0 {
                    packets.push((p.packet, *rtp));
                } else {
                    // RTCP: a few per track every 5 s.
                    rtcp.push((p.packet, *rtcp_to));
                }
            }
        }
        for chunk in packets.chunks(MMSG_CHUNK) {
            pacer.take(chunk.iter().map(|(p, _)| p.len()).sum()).await;
            // Checked after the pacing wait, right before the send.
            if !ticket.is_current() {
                return;
            }
            // Errors (e.g. a full buffer that stays full) are not fatal: the
            // session ends by timeout if the recorder is really gone.
            let _ = send_all(&udp.rtp, chunk).await;
            metrics.sent(chunk.iter().map(|(p, _)| p.len() as u64).sum());
        }
        for (p, to) in rtcp.drain(..) {
            if !ticket.is_current() {
                return;
            }
            let _ = udp.rtcp.send_to(p, to).await;
        }
        drop((packets, rtcp));
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gso_runs() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let big = [0u8; 100];
        let small = [0u8; 40];
        let p = |n: &'static [u8], d| (n, d);
        let big: &'static [u8] = Box::leak(Box::new(big));
        let small: &'static [u8] = Box::leak(Box::new(small));
        assert_eq!(gso_run(&[p(big, a), p(big, a), p(small, a), p(big, a)]), 3);
        assert_eq!(gso_run(&[p(small, a), p(big, a)]), 1);
        assert_eq!(gso_run(&[p(big, a), p(big, b)]), 1);
        assert_eq!(gso_run(&[]), 0);
        let many: Vec<_> = (0..100).map(|_| p(big, a)).collect();
        assert_eq!(gso_run(&many), GSO_MAX_SEGMENTS);
    }

    #[tokio::test]
    async fn every_datagram_arrives_with_its_boundaries() {
        let rx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let to = rx.local_addr().unwrap();
        let payloads: Vec<Vec<u8>> = (0..60u32)
            .map(|i| {
                let len = if i % 13 == 12 { 300 + i as usize } else { 1412 };
                (0..len).map(|j| (i as usize + j) as u8).collect()
            })
            .collect();
        let packets: Vec<(&[u8], SocketAddr)> = payloads.iter().map(|p| (&p[..], to)).collect();
        send_all(&tx, &packets).await.unwrap();
        let mut buf = vec![0u8; 65536];
        for (i, want) in payloads.iter().enumerate() {
            let n = tokio::time::timeout(std::time::Duration::from_secs(2), rx.recv(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("datagram {i} missing"))
                .unwrap();
            assert_eq!(&buf[..n], &want[..], "datagram {i}");
        }
    }
}
