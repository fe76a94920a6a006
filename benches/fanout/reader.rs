//! Lightweight RTSP readers: DESCRIBE, SETUP the video track (TCP
//! interleaved or UDP), PLAY, then count what arrives without decoding.
//! They stand in for recorders without eating the CPU being measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

pub const USER: &str = "bench";
pub const PASS: &str = "bench-pw";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

/// A frame's identity and when its first packet arrived.
pub type Arrival = ([u8; 8], Instant);

/// One reader's counters.
#[derive(Default)]
pub struct Stats {
    pub bytes: AtomicU64,
    pub packets: AtomicU64,
    pub lost: AtomicU64,
    pub frames: AtomicU64,
    pub key_frames: AtomicU64,
    /// Key frames during which a packet was lost.
    pub damaged_key_frames: AtomicU64,
    /// Largest key frame received intact, in payload bytes.
    pub max_key_bytes: AtomicU64,
    /// Microseconds from connect to the end of the first key frame (0 = none).
    pub first_key_us: AtomicU64,
    pub setup_failed: AtomicU64,
    /// (slice key, arrival) of each frame's first packet, when sampled.
    pub arrivals: Option<Mutex<Vec<Arrival>>>,
}

impl Stats {
    pub fn new(sample_arrivals: bool) -> Stats {
        Stats {
            arrivals: sample_arrivals.then(|| Mutex::new(Vec::new())),
            ..Stats::default()
        }
    }
}

/// Frame identity shared by every relay: the first 8 bytes after the NAL
/// header of a picture's first NAL unit (slice header and the start of the
/// slice data), whether it came whole or as the first FU-A fragment.
pub fn slice_key(payload: &[u8]) -> Option<[u8; 8]> {
    let t = payload.first()? & 0x1f;
    let body = match t {
        1..=5 => payload.get(1..9)?,
        28 if payload.get(1)? & 0x80 != 0 && (1..=5).contains(&(payload[1] & 0x1f)) => {
            payload.get(2..10)?
        }
        _ => return None,
    };
    body.try_into().ok()
}

/// Per-stream packet accounting shared by both transports.
struct Counter {
    next_seq: Option<u16>,
    in_key: bool,
    key_lost: bool,
    key_bytes: u64,
    frame_started: bool,
    t0: Instant,
}

impl Counter {
    fn packet(&mut self, stats: &Stats, p: &[u8]) {
        if p.len() < 13 || p[0] >> 6 != 2 || p[1] & 0x7f >= 72 && p[1] & 0x7f <= 76 {
            return; // not RTP (or RTCP on the same channel)
        }
        let cc = usize::from(p[0] & 0x0f);
        let mut off = 12 + 4 * cc;
        if p[0] & 0x10 != 0 {
            let Some(ext) = p.get(off + 2..off + 4) else {
                return;
            };
            off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
        }
        let Some(payload) = p.get(off..) else { return };
        stats.packets.fetch_add(1, Ordering::Relaxed);
        let seq = u16::from_be_bytes([p[2], p[3]]);
        if let Some(e) = self.next_seq {
            let gap = seq.wrapping_sub(e);
            if gap != 0 && gap < 0x8000 {
                stats.lost.fetch_add(u64::from(gap), Ordering::Relaxed);
                self.key_lost = true;
            }
        }
        self.next_seq = Some(seq.wrapping_add(1));
        let nal = payload.first().map_or(0, |b| b & 0x1f);
        let fu_type = if nal == 28 {
            payload.get(1).map_or(0, |b| b & 0x1f)
        } else {
            0
        };
        if (nal == 7 || nal == 5 || fu_type == 5) && !self.in_key {
            self.in_key = true;
            self.key_lost = false;
            self.key_bytes = 0;
        }
        if self.in_key {
            self.key_bytes += payload.len() as u64;
        }
        if !self.frame_started
            && let Some(k) = slice_key(payload)
        {
            self.frame_started = true;
            if let Some(a) = &stats.arrivals {
                a.lock().unwrap().push((k, Instant::now()));
            }
        }
        if p[1] & 0x80 != 0 {
            self.frame_started = false;
            stats.frames.fetch_add(1, Ordering::Relaxed);
            if self.in_key {
                stats.key_frames.fetch_add(1, Ordering::Relaxed);
                if self.key_lost {
                    stats.damaged_key_frames.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats
                        .max_key_bytes
                        .fetch_max(self.key_bytes, Ordering::Relaxed);
                    if stats.first_key_us.load(Ordering::Relaxed) == 0 {
                        let us = self.t0.elapsed().as_micros() as u64 + 1;
                        stats.first_key_us.store(us, Ordering::Relaxed);
                    }
                }
                self.in_key = false;
            }
        }
    }
}

async fn request(s: &mut TcpStream, req: String) -> std::io::Result<(String, String)> {
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if head.is_empty() && b[0] == b'$' {
            // Some servers (GStreamer) send media before the PLAY response.
            let mut hdr = [0u8; 3];
            s.read_exact(&mut hdr).await?;
            let mut skip = vec![0u8; usize::from(u16::from_be_bytes([hdr[1], hdr[2]]))];
            s.read_exact(&mut skip).await?;
            continue;
        }
        head.push(b[0]);
        if head.len() > 16 << 10 {
            return Err(std::io::Error::other("response too large"));
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut body = Vec::new();
    if let Some(len) = header(&head, "Content-Length") {
        body = vec![0; len.trim().parse().unwrap_or(0)];
        s.read_exact(&mut body).await?;
    }
    if !head.starts_with("RTSP/1.0 200") {
        return Err(std::io::Error::other(
            head.lines().next().unwrap_or("").to_string(),
        ));
    }
    Ok((head, String::from_utf8_lossy(&body).into_owned()))
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// The video track's control URL and the aggregate URL, from an SDP.
fn control_urls(base: &str, sdp: &str) -> (String, String) {
    let resolve = |c: &str| {
        if c.starts_with("rtsp://") {
            c.to_string()
        } else if base.ends_with('/') {
            format!("{base}{c}")
        } else {
            format!("{base}/{c}")
        }
    };
    let mut aggregate = base.to_string();
    let mut video = None;
    let mut in_video = false;
    for l in sdp.lines() {
        if let Some(m) = l.strip_prefix("m=") {
            in_video = m.starts_with("video") && video.is_none();
        } else if let Some(c) = l.strip_prefix("a=control:") {
            let c = c.trim();
            if in_video {
                video = Some(resolve(c));
            } else if video.is_none() && c != "*" {
                aggregate = resolve(c);
            }
        }
    }
    (video.unwrap_or_else(|| resolve("trackID=0")), aggregate)
}

/// Plays `path` on `addr` until `stop`, counting into `stats`.
pub async fn run(
    addr: SocketAddr,
    path: String,
    transport: Transport,
    stats: Arc<Stats>,
    stop: CancellationToken,
) {
    let t0 = Instant::now();
    let r = tokio::select! {
        _ = stop.cancelled() => return,
        r = tokio::time::timeout(Duration::from_secs(30), play(addr, &path, transport)) => r,
    };
    let (mut s, udp) = match r {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            stats.setup_failed.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "reader on {addr}/{path}: {:?}",
                e.to_string().chars().take(120).collect::<String>()
            );
            return;
        }
        Err(_) => {
            stats.setup_failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("reader on {addr}/{path}: setup timed out");
            return;
        }
    };
    let mut c = Counter {
        next_seq: None,
        in_key: false,
        key_lost: false,
        key_bytes: 0,
        frame_started: false,
        t0,
    };
    match udp {
        None => {
            let mut buf = vec![0u8; 256 << 10];
            let mut have = 0usize;
            loop {
                let n = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = s.read(&mut buf[have..]) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
                };
                stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                have += n;
                let mut off = 0;
                while have - off >= 4 {
                    if buf[off] != b'$' {
                        eprintln!("reader: lost interleaved framing");
                        return;
                    }
                    let len = usize::from(u16::from_be_bytes([buf[off + 2], buf[off + 3]]));
                    if have - off < 4 + len {
                        break;
                    }
                    if buf[off + 1] == 0 {
                        c.packet(&stats, &buf[off + 4..off + 4 + len]);
                    }
                    off += 4 + len;
                }
                buf.copy_within(off..have, 0);
                have -= off;
            }
        }
        Some((rtp, _rtcp)) => {
            let mut buf = vec![0u8; 65536];
            loop {
                let n = tokio::select! {
                    _ = stop.cancelled() => return,
                    r = rtp.recv(&mut buf) => match r { Ok(n) => n, Err(_) => continue },
                };
                stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                c.packet(&stats, &buf[..n]);
            }
        }
    }
}

/// Binds an even/odd UDP port pair on loopback.
async fn udp_pair() -> std::io::Result<(UdpSocket, UdpSocket)> {
    for _ in 0..100 {
        let a = UdpSocket::bind("127.0.0.1:0").await?;
        let p = a.local_addr()?.port();
        if p % 2 != 0 {
            continue;
        }
        if let Ok(b) = UdpSocket::bind(("127.0.0.1", p + 1)).await {
            let sock = socket2::SockRef::from(&a);
            let _ = sock.set_recv_buffer_size(4 << 20);
            return Ok((a, b));
        }
    }
    Err(std::io::ErrorKind::AddrInUse.into())
}

type Played = (TcpStream, Option<(UdpSocket, UdpSocket)>);

async fn play(addr: SocketAddr, path: &str, transport: Transport) -> std::io::Result<Played> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    let url = format!("rtsp://{addr}/{path}");
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let (head, sdp) = request(
        &mut s,
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic {auth}\r\nAccept: application/sdp\r\n\r\n"),
    )
    .await?;
    let base = header(&head, "Content-Base").unwrap_or(&url).to_string();
    let (video, aggregate) = control_urls(&base, &sdp);
    let (transport_hdr, udp) = match transport {
        Transport::Tcp => ("RTP/AVP/TCP;unicast;interleaved=0-1".to_string(), None),
        Transport::Udp => {
            let (a, b) = udp_pair().await?;
            let p = a.local_addr()?.port();
            (
                format!("RTP/AVP;unicast;client_port={}-{}", p, p + 1),
                Some((a, b)),
            )
        }
    };
    let (head, _) = request(
        &mut s,
        format!("SETUP {video} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Basic {auth}\r\nTransport: {transport_hdr}\r\n\r\n"),
    )
    .await?;
    let session = header(&head, "Session")
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_string();
    request(
        &mut s,
        format!("PLAY {aggregate} RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Basic {auth}\r\nSession: {session}\r\nRange: npt=0.000-\r\n\r\n"),
    )
    .await?;
    Ok((s, udp))
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_urls() {
        let sdp = "v=0\r\na=control:*\r\nm=video 0 RTP/AVP 96\r\na=control:stream=0\r\n";
        assert_eq!(
            super::control_urls("rtsp://h/cam0/main/", sdp),
            (
                "rtsp://h/cam0/main/stream=0".to_string(),
                "rtsp://h/cam0/main/".to_string()
            )
        );
    }
}
