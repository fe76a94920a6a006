//! The egress trap: listeners that receive every outbound TCP connection
//! (firewall `redirect`, original destination from `SO_ORIGINAL_DST`) and
//! UDP datagram (firewall `tproxy`, original destination from
//! `IP_RECVORIGDSTADDR`) the cameras try. Each attempt is read briefly,
//! put in a category, counted per device and dropped (TCP with a reset):
//! no byte goes out, unless an `[[egress.allow]]` rule names the
//! destination, in which case the connection is forwarded and counted.
//!
//! Bounded: connections held at once (`egress.max_connections`) and per
//! camera (`egress.max_connections_per_device`, so one camera cannot hold
//! every slot), on a [`crate::listener::Pool`] shared by the IPv4 and IPv6
//! listeners; beyond either, new ones are classified by port and reset at
//! once. Also bounded: bytes read per attempt, the wait for first bytes,
//! and on forwarded connections idleness and each write (a peer that stops
//! reading is closed); logs are rate-limited.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::SockRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::book::{Book, canonical};
use super::categories::{Categories, Proto};
use super::sniff::{self, Kind};
use crate::config::EgressConfig;
use crate::listener::{ConnGuard, Limits, Listener};
use crate::metrics::Metrics;
use crate::ratelimit::LogLimiter;

/// Most bytes read from an attempt before it is judged.
pub const PEEK_MAX: usize = 8192;
/// Category of connections an allow rule forwards.
const SITE: &str = "site";

/// How an attempt was labelled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub category: String,
    /// For `direct_ip`: the vendor category its port, bytes or name point at.
    pub vendor_category: Option<String>,
    /// The name the destination was looked up as, or its SNI / Host.
    pub name: Option<String>,
}

/// Labels an attempt from `src` to `dst` that sent `bytes` first.
pub fn classify(
    categories: &Categories,
    book: &Book,
    src: IpAddr,
    dst: SocketAddr,
    proto: Proto,
    bytes: &[u8],
) -> Classified {
    let sniffed = sniff::sniff(bytes, dst.port(), proto == Proto::Udp);
    let looked_up = book.looked_up(src, dst.ip());
    let vendor = looked_up
        .as_deref()
        .and_then(|n| categories.by_name(n))
        .or_else(|| sniffed.name.as_deref().and_then(|n| categories.by_name(n)))
        .or_else(|| categories.by_first_bytes(bytes))
        .or_else(|| match (sniffed.kind, sniffed.path.as_deref()) {
            (Kind::Http, Some(p)) => categories.by_http_path(p),
            _ => None,
        })
        .or_else(|| categories.by_port(proto, dst.port()));
    let name = looked_up.clone().or(sniffed.name);
    match vendor {
        // An address camgate's resolver gave this device for the name.
        Some(c) if looked_up.is_some() => Classified {
            category: c.id.clone(),
            vendor_category: None,
            name,
        },
        // A vendor service reached by an address camgate never handed out.
        Some(c) => Classified {
            category: "direct_ip".into(),
            vendor_category: Some(c.id.clone()),
            name,
        },
        None => {
            let generic = match sniffed.kind {
                Kind::Ntp => "ntp",
                Kind::Dns => "dns",
                Kind::Http => "http",
                Kind::Tls => "tls",
                _ if proto == Proto::Udp && dst.port() == 123 => "ntp",
                _ if dst.port() == 53 => "dns",
                _ => "unknown",
            };
            Classified {
                category: generic.into(),
                vendor_category: None,
                name,
            }
        }
    }
}

/// Shared by the TCP and UDP traps.
pub struct Trap {
    cfg: EgressConfig,
    book: Arc<Book>,
    metrics: Metrics,
}

/// The TCP trap's connection limits: every connection counts as
/// unauthenticated for its whole life, so the per-source cap is the
/// per-device cap (a camera is its address: IPv6 sources are not grouped).
pub fn limits(cfg: &EgressConfig) -> Limits {
    Limits {
        max_connections: cfg.max_connections,
        max_unauthenticated: cfg.max_connections,
        max_unauthenticated_per_address: cfg.max_connections_per_device,
        unauthenticated_timeout: None,
        ipv6_prefix: 128,
    }
}

impl Trap {
    /// The trap's shared state.
    pub fn new(cfg: EgressConfig, book: Arc<Book>, metrics: Metrics) -> Arc<Trap> {
        Arc::new(Trap { cfg, book, metrics })
    }

    fn categories(&self) -> &Categories {
        &self.cfg.categories
    }

    /// Counts and logs a blocked attempt.
    fn blocked(&self, src: SocketAddr, dst: SocketAddr, proto: Proto, bytes: &[u8], total: u64) {
        let device = self.book.device_of(src.ip()).to_string();
        let c = classify(self.categories(), &self.book, src.ip(), dst, proto, bytes);
        self.metrics
            .egress_attempt(&device, proto.as_str(), &c.category, "blocked", total);
        static LOG: LogLimiter = LogLimiter::new(2);
        if let Some(suppressed) = LOG.allow() {
            info!(
                device,
                source = %src.ip(),
                protocol = proto.as_str(),
                destination = %dst,
                category = %c.category,
                vendor_category = c.vendor_category.as_deref().unwrap_or(""),
                name = c.name.as_deref().unwrap_or(""),
                bytes = total,
                suppressed,
                "outbound attempt blocked"
            );
        }
        self.book.attempt(
            &device,
            Book::stamp(
                proto.as_str(),
                dst,
                &c.category,
                c.vendor_category.as_deref(),
                c.name,
                "blocked",
                total,
            ),
        );
    }

    /// The allow rule naming `dst` for the device at `src`, if any.
    fn allowed(&self, src: IpAddr, dst: SocketAddr) -> bool {
        let device = self.book.device_of(src);
        self.cfg.allow.iter().any(|a| {
            a.to == dst && device != super::book::UNKNOWN_DEVICE && a.devices.contains(device)
        })
    }
}

/// Binds the TCP trap.
pub async fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // IPv4 is trapped by its own listener (see `ipv6_twin`).
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(1024)?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(sock.into())
}

/// For a trap on `0.0.0.0:port`, the IPv6 listener on `[::]:port` that
/// IPv6 cameras' redirected traffic reaches.
pub fn ipv6_twin(addr: SocketAddr) -> Option<SocketAddr> {
    match addr {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() => Some(SocketAddr::from((
            std::net::Ipv6Addr::UNSPECIFIED,
            v4.port(),
        ))),
        _ => None,
    }
}

/// Serves the TCP trap until `cancel`.
pub async fn serve_tcp(
    listener: Listener,
    trap: Arc<Trap>,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let t = trap.clone();
    let serve = move |stream: TcpStream, guard: ConnGuard| {
        let trap = t.clone();
        async move {
            let peer = guard.peer();
            let peer = SocketAddr::new(canonical(peer.ip()), peer.port());
            let dst = original_dst(&stream);
            tokio::select! {
                _ = guard.closed() => {}
                _ = handle_tcp(&trap, stream, peer, dst) => {}
            }
        }
    };
    // Over a cap: judged by port and name alone, reset at once.
    let refuse = move |stream: TcpStream, peer: SocketAddr, _| {
        let peer = SocketAddr::new(canonical(peer.ip()), peer.port());
        let dst = original_dst(&stream);
        trap.blocked(peer, dst, Proto::Tcp, &[], 0);
        reset(stream);
    };
    listener.run(cancel, tracker, serve, refuse).await;
}

/// The destination the camera asked for: `SO_ORIGINAL_DST` after a
/// redirect, else the local address (tproxy, or a direct connection).
fn original_dst(stream: &TcpStream) -> SocketAddr {
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let s = SockRef::from(stream);
    let orig = if local.is_ipv4() || canonical(local.ip()).is_ipv4() {
        s.original_dst_v4()
    } else {
        s.original_dst_v6()
    };
    let dst = orig.ok().and_then(|a| a.as_socket()).unwrap_or(local);
    SocketAddr::new(canonical(dst.ip()), dst.port())
}

/// Closes with a reset: the camera learns nothing but a refusal.
fn reset(stream: TcpStream) {
    let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn handle_tcp(trap: &Trap, mut stream: TcpStream, peer: SocketAddr, dst: SocketAddr) {
    if trap.allowed(peer.ip(), dst) {
        forward(trap, stream, peer, dst).await;
        return;
    }
    let mut buf = Vec::with_capacity(2048);
    let deadline = tokio::time::Instant::now() + trap.cfg.peek_timeout;
    let mut chunk = [0u8; 2048];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => 0,
        };
        if n == 0 {
            break;
        }
        let room = PEEK_MAX - buf.len();
        buf.extend_from_slice(&chunk[..n.min(room)]);
        if buf.len() >= PEEK_MAX || sniff::complete(&buf) {
            break;
        }
    }
    trap.blocked(peer, dst, Proto::Tcp, &buf, buf.len() as u64);
    reset(stream);
}

/// Forwards an allowed connection, counting its bytes (both directions)
/// until either side closes or it is idle too long.
async fn forward(trap: &Trap, camera: TcpStream, peer: SocketAddr, dst: SocketAddr) {
    let device = trap.book.device_of(peer.ip()).to_string();
    let upstream = match tokio::time::timeout(trap.cfg.peek_timeout, TcpStream::connect(dst)).await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            static FAIL: LogLimiter = LogLimiter::new(10);
            if let Some(suppressed) = FAIL.allow() {
                warn!(device, destination = %dst, error = %e, suppressed, "allowed egress destination unreachable");
            }
            trap.metrics
                .egress_attempt(&device, "tcp", SITE, "failed", 0);
            reset(camera);
            return;
        }
        Err(_) => {
            trap.metrics
                .egress_attempt(&device, "tcp", SITE, "failed", 0);
            reset(camera);
            return;
        }
    };
    trap.metrics
        .egress_attempt(&device, "tcp", SITE, "forwarded", 0);
    let counter = trap.metrics.egress_bytes(&device, "tcp", SITE);
    let sent = pipe(
        camera,
        upstream,
        trap.cfg.forward_idle_timeout,
        trap.cfg.forward_write_timeout,
        &counter,
    )
    .await;
    trap.book.attempt(
        &device,
        Book::stamp("tcp", dst, SITE, None, None, "forwarded", sent),
    );
}

/// Copies both ways until both sides closed, the connection is idle for
/// `idle`, or a side does not take bytes for `write` (a peer that stops
/// reading would otherwise hold the slot forever: the copy waits on its
/// write and never sees the idle timer). Returns the bytes the camera sent.
async fn pipe(
    a: TcpStream,
    b: TcpStream,
    idle: Duration,
    write: Duration,
    counter: &prometheus_client::metrics::counter::Counter,
) -> u64 {
    let (mut ar, mut aw) = a.into_split();
    let (mut br, mut bw) = b.into_split();
    let (mut abuf, mut bbuf) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    let (mut a_open, mut b_open) = (true, true);
    let mut from_camera = 0u64;
    while a_open || b_open {
        tokio::select! {
            r = ar.read(&mut abuf), if a_open => match r {
                Ok(0) | Err(_) => {
                    a_open = false;
                    let _ = tokio::time::timeout(write, bw.shutdown()).await;
                }
                Ok(n) => {
                    if !matches!(tokio::time::timeout(write, bw.write_all(&abuf[..n])).await, Ok(Ok(()))) {
                        stalled("destination");
                        break;
                    }
                    from_camera += n as u64;
                    counter.inc_by(n as u64);
                }
            },
            r = br.read(&mut bbuf), if b_open => match r {
                Ok(0) | Err(_) => {
                    b_open = false;
                    let _ = tokio::time::timeout(write, aw.shutdown()).await;
                }
                Ok(n) => {
                    if !matches!(tokio::time::timeout(write, aw.write_all(&bbuf[..n])).await, Ok(Ok(()))) {
                        stalled("camera");
                        break;
                    }
                }
            },
            _ = tokio::time::sleep(idle) => break,
        }
    }
    from_camera
}

/// Logs (rate-limited) a forwarded connection closed because `side` did
/// not take bytes (or failed) within the write timeout.
fn stalled(side: &'static str) {
    static STALLED: LogLimiter = LogLimiter::new(10);
    if let Some(suppressed) = STALLED.allow() {
        info!(
            side,
            suppressed, "forwarded egress connection closed: a side stopped reading"
        );
    }
}

/// Binds the UDP trap: `IP_TRANSPARENT` (so tproxied datagrams for any
/// destination arrive; needs CAP_NET_ADMIN) and `IP_RECVORIGDSTADDR` (to
/// learn each one's destination).
pub fn bind_udp(addr: SocketAddr) -> io::Result<(UdpSocket, bool)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    let transparent = if addr.is_ipv4() {
        sock.set_ip_transparent_v4(true)
    } else {
        sock.set_ip_transparent_v6(true)
    }
    .is_ok();
    {
        use nix::sys::socket::{setsockopt, sockopt};
        let r = if addr.is_ipv4() {
            setsockopt(&sock, sockopt::Ipv4OrigDstAddr, &true)
        } else {
            setsockopt(&sock, sockopt::Ipv6OrigDstAddr, &true)
        };
        r.map_err(io::Error::from)?;
    }
    sock.bind(&addr.into())?;
    sock.set_nonblocking(true)?;
    Ok((UdpSocket::from_std(sock.into())?, transparent))
}

/// One received datagram: source, original destination, length.
fn recv_with_dst(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(SocketAddr, SocketAddr, usize)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg};
    use std::os::fd::AsRawFd;
    let local = sock.local_addr()?;
    let mut cmsg = nix::cmsg_space!(nix::libc::sockaddr_in6);
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrStorage>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )
    .map_err(io::Error::from)?;
    let src = msg
        .address
        .and_then(|a| {
            a.as_sockaddr_in()
                .map(|v4| SocketAddr::from((v4.ip(), v4.port())))
                .or_else(|| {
                    a.as_sockaddr_in6()
                        .map(|v6| SocketAddr::from((v6.ip(), v6.port())))
                })
        })
        .ok_or_else(|| io::Error::other("datagram without a source"))?;
    let mut dst = local;
    for c in msg.cmsgs().map_err(io::Error::from)? {
        match c {
            ControlMessageOwned::Ipv4OrigDstAddr(a) => {
                let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
                dst = SocketAddr::from((ip, u16::from_be(a.sin_port)));
            }
            ControlMessageOwned::Ipv6OrigDstAddr(a) => {
                let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
                dst = SocketAddr::from((ip, u16::from_be(a.sin6_port)));
            }
            _ => {}
        }
    }
    let n = msg.bytes;
    Ok((
        SocketAddr::new(canonical(src.ip()), src.port()),
        SocketAddr::new(canonical(dst.ip()), dst.port()),
        n,
    ))
}

/// Serves the UDP trap until `cancel`: every datagram is classified,
/// counted and dropped, one at a time (no per-datagram task or buffer).
pub async fn serve_udp(sock: UdpSocket, trap: Arc<Trap>, cancel: CancellationToken) {
    let mut buf = vec![0u8; 65_536];
    static RECV: LogLimiter = LogLimiter::new(10);
    loop {
        let r = tokio::select! {
            _ = cancel.cancelled() => return,
            r = sock.async_io(tokio::io::Interest::READABLE, || recv_with_dst(&sock, &mut buf)) => r,
        };
        match r {
            Ok((src, dst, n)) => {
                let seen = &buf[..n.min(PEEK_MAX)];
                trap.blocked(src, dst, Proto::Udp, seen, n as u64);
            }
            Err(e) => {
                if let Some(suppressed) = RECV.allow() {
                    warn!(error = %e, suppressed, "egress trap receive failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (Categories, Book) {
        let c = crate::config::tests_support::config_with(
            "[[device]]\nid = \"cam\"\nhost = \"10.20.0.11\"\n[device.streams]\nmain = \"/x\"\n",
        );
        (
            Categories::built_in(),
            Book::new(&c, Some("198.18.0.0/16".parse().unwrap())),
        )
    }

    fn cam() -> IpAddr {
        "10.20.0.11".parse().unwrap()
    }

    #[test]
    fn looked_up_vendor_names_keep_their_category() {
        let (cats, book) = setup();
        let dst: SocketAddr = "198.18.0.7:8666".parse().unwrap();
        book.resolved(cam(), dst.ip(), "litedev.ezvizlife.com");
        let c = classify(&cats, &book, cam(), dst, Proto::Tcp, b"\x00\x01binary");
        assert_eq!(c.category, "ezviz");
        assert_eq!(c.name.as_deref(), Some("litedev.ezvizlife.com"));
    }

    #[test]
    fn bare_ip_vendor_traffic_is_direct_ip() {
        let (cats, book) = setup();
        let p2p: SocketAddr = "203.0.113.30:8800".parse().unwrap();
        let c = classify(
            &cats,
            &book,
            cam(),
            p2p,
            Proto::Udp,
            b"DHGET /probe/p2psrv HTTP/1.1\r\n",
        );
        assert_eq!(c.category, "direct_ip");
        assert_eq!(c.vendor_category.as_deref(), Some("dahua_p2p"));
        let mqtt: SocketAddr = "203.0.113.31:31006".parse().unwrap();
        let c = classify(&cats, &book, cam(), mqtt, Proto::Tcp, b"");
        assert_eq!(c.vendor_category.as_deref(), Some("hik_connect"));
        // TLS to a bare IP naming a vendor host in its SNI.
        let ch = sniff_tests_client_hello("api.hik-connect.com");
        let c = classify(
            &cats,
            &book,
            cam(),
            "203.0.113.10:443".parse().unwrap(),
            Proto::Tcp,
            &ch,
        );
        assert_eq!(c.category, "direct_ip");
        assert_eq!(c.name.as_deref(), Some("api.hik-connect.com"));
    }

    #[test]
    fn generic_categories() {
        let (cats, book) = setup();
        let d = |s: &str| s.parse::<SocketAddr>().unwrap();
        let mut ntp = vec![0u8; 48];
        ntp[0] = 0x1b;
        assert_eq!(
            classify(&cats, &book, cam(), d("192.0.2.1:123"), Proto::Udp, &ntp).category,
            "ntp"
        );
        assert_eq!(
            classify(
                &cats,
                &book,
                cam(),
                d("8.8.8.8:53"),
                Proto::Udp,
                b"\x12\x34"
            )
            .category,
            "dns"
        );
        assert_eq!(
            classify(
                &cats,
                &book,
                cam(),
                d("192.0.2.1:80"),
                Proto::Tcp,
                b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n"
            )
            .category,
            "http"
        );
        assert_eq!(
            classify(
                &cats,
                &book,
                cam(),
                d("192.0.2.1:443"),
                Proto::Tcp,
                &sniff_tests_client_hello("example.org")
            )
            .category,
            "tls"
        );
        assert_eq!(
            classify(&cats, &book, cam(), d("192.0.2.1:5555"), Proto::Tcp, b"").category,
            "unknown"
        );
        // Firmware fetch by path.
        let c = classify(
            &cats,
            &book,
            cam(),
            d("192.0.2.1:80"),
            Proto::Tcp,
            b"GET /fw/upgrade/IPC.dav HTTP/1.1\r\n\r\n",
        );
        assert_eq!(c.vendor_category.as_deref(), Some("upgrade"));
    }

    /// A camera (127.0.0.1, allowed to `dst`) forwarding to a destination
    /// that accepts and never reads: once the buffers are full, camgate
    /// gives up after the write timeout, not the (hour-long) idle timeout.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_forwarded_connection_whose_destination_stops_reading_is_closed() {
        let dest = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dst = dest.local_addr().unwrap();
        let c = crate::config::tests_support::config_with(&format!(
            "[egress]\nforward_write_timeout_secs = 1\nforward_idle_timeout_secs = 3600\n\
             [[egress.allow]]\ndevices = [\"cam\"]\nto = \"{dst}\"\n\
             [[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\n[device.streams]\nmain = \"/x\"\n"
        ));
        let metrics = Metrics::new();
        let trap = Trap::new(c.egress.clone(), Arc::new(Book::new(&c, None)), metrics);
        let holder = tokio::spawn(async move {
            let (s, _) = dest.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
            drop(s);
        });
        // The camera's connection as the trap accepted it.
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut camera = TcpStream::connect(front.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, peer) = front.accept().await.unwrap();
        assert!(trap.allowed(peer.ip(), dst));
        let t = std::time::Instant::now();
        let fwd = tokio::spawn(async move { forward(&trap, accepted, peer, dst).await });
        let writer = tokio::spawn(async move {
            let chunk = vec![0x55u8; 64 << 10];
            let mut sent = 0usize;
            while camera.write_all(&chunk).await.is_ok() {
                sent += chunk.len();
            }
            sent
        });
        tokio::time::timeout(Duration::from_secs(30), fwd)
            .await
            .expect("the forward ended at the write timeout")
            .unwrap();
        assert!(t.elapsed() >= Duration::from_secs(1), "{:?}", t.elapsed());
        // The camera learns: its writes fail once camgate closed.
        let sent = tokio::time::timeout(Duration::from_secs(30), writer)
            .await
            .expect("the camera's writes failed")
            .unwrap();
        assert!(sent > 64 << 10, "{sent}");
        holder.abort();
    }

    fn sniff_tests_client_hello(name: &str) -> Vec<u8> {
        super::super::sniff::test_support::client_hello(name)
    }
}
