//! A scripted camera: a minimal RTSP server written in the test that sends
//! raw RTP over TCP the way quirky cameras do: STAP-A aggregates, RTP header
//! extensions, padding, its own SSRC and sequence numbers, and vendor SDP
//! attributes (Hikvision-style, including a `profile-level-id` that
//! contradicts the SPS). camgate must let none of it through.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The camera's own SSRC; camgate must not reuse it.
pub const CAMERA_SSRC: u32 = 0xCAFE_BABE;
/// The camera's first sequence number.
pub const CAMERA_SEQ0: u16 = 1000;
/// Vendor attributes that must not reach a recorder.
pub const VENDOR_ATTRS: [&str; 4] = ["Media_header", "appversion", "x-dimensions", "420029"];

pub struct ScriptedCamera {
    pub addr: SocketAddr,
    /// Connections accepted so far (to show camgate pulls once).
    pub connections: Arc<AtomicUsize>,
    /// Connections open now.
    pub active: Arc<AtomicUsize>,
    kill: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

/// How the scripted camera behaves.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Announce `sprop-parameter-sets` in the SDP (else only in-band).
    pub sprop: bool,
    /// Also announce tracks camgate does not relay by default (G.726
    /// audio, ONVIF metadata).
    pub extra_tracks: bool,
    /// Send an ONVIF metadata document every second on the metadata track
    /// (with `extra_tracks`), if the client set it up.
    pub metadata: bool,
    /// After this many frames, stop sending video but keep the session
    /// looking alive: an RTCP sender report every second (a hung encoder).
    pub stall_after: Option<usize>,
    /// After this many frames, send an RTCP BYE and then nothing, with the
    /// connection left open (a media server at the end of its file).
    pub bye_after: Option<usize>,
    /// `(frames, bytes_per_sec)`: after this many frames, start one H.264
    /// FU-A NAL unit and never end it (no E bit, no marker, one timestamp),
    /// sending this many bytes a second of it (a hostile camera on a link
    /// of that speed).
    pub endless_au: Option<(usize, u64)>,
    /// Send new parameter sets with every frame (the SPS's level changing
    /// back and forth).
    pub churn_sps: bool,
    /// Appended to the SDP as is (hostile track lists).
    pub sdp_extra: &'static str,
    /// Answer DESCRIBE with a 10 GB body, streamed at this many bytes a
    /// second (a hostile camera keeping the client's parser reading).
    pub endless_describe: Option<u64>,
    /// After this many frames, send only access units holding a lone
    /// access unit delimiter (17-byte packets, marker set), one per frame
    /// time: what a depacketizer might call key frames.
    pub aud_only_after: Option<usize>,
    /// Replaces the video track's `a=rtpmap` and `a=fmtp` lines (another
    /// codec, hostile parameter sets).
    pub video_format: Option<&'static str>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sprop: true,
            extra_tracks: false,
            metadata: false,
            stall_after: None,
            bye_after: None,
            endless_au: None,
            churn_sps: false,
            sdp_extra: "",
            endless_describe: None,
            aud_only_after: None,
            video_format: None,
        }
    }
}

impl Drop for ScriptedCamera {
    fn drop(&mut self) {
        self.stop();
    }
}

impl ScriptedCamera {
    /// Stops listening and closes every connection, like a camera that died.
    pub fn stop(&self) {
        self.task.abort();
        self.kill.cancel();
    }

    pub async fn start() -> ScriptedCamera {
        Self::start_with(Options::default()).await
    }

    pub async fn start_with(opts: Options) -> ScriptedCamera {
        Self::start_on("127.0.0.1".parse().unwrap(), opts).await
    }

    /// Listens on `ip` (any loopback address) instead of 127.0.0.1.
    pub async fn start_on(ip: std::net::IpAddr, opts: Options) -> ScriptedCamera {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let active = Arc::new(AtomicUsize::new(0));
        let (c, a) = (connections.clone(), active.clone());
        let kill = tokio_util::sync::CancellationToken::new();
        let k = kill.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                a.fetch_add(1, Ordering::SeqCst);
                let a = a.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = serve(s, addr, opts) => {}
                        _ = k.cancelled() => {}
                    }
                    a.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        ScriptedCamera {
            addr,
            connections,
            active,
            kill,
            task,
        }
    }
}

/// SPS, PPS, and frames as (NAL units, key).
type Clip = (Vec<u8>, Vec<u8>, Vec<(Vec<Vec<u8>>, bool)>);

fn clip() -> Clip {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/clip.h264")).unwrap();
    let (codec, frames) = camgate::camera::clip::parse_h264_annexb(&data).unwrap();
    let camgate::media::VideoCodec::H264 { sps, pps } = codec else {
        unreachable!()
    };
    let frames = frames
        .into_iter()
        .take(60)
        .map(|(d, key)| {
            let nals = camgate::rtp::length_prefixed_nals(&d)
                .unwrap()
                .iter()
                .map(|n| n.to_vec())
                .collect();
            (nals, key)
        })
        .collect();
    (sps.to_vec(), pps.to_vec(), frames)
}

async fn serve(s: TcpStream, addr: SocketAddr, opts: Options) {
    let (mut rd, mut wr) = s.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(16);
    let (sps, pps, frames) = clip();
    let b64 = base64::engine::general_purpose::STANDARD;
    let sprop = if opts.sprop {
        format!(
            "; sprop-parameter-sets={},{}",
            b64.encode(&sps),
            b64.encode(&pps)
        )
    } else {
        String::new()
    };
    let extra = if opts.extra_tracks {
        format!(
            "m=audio 0 RTP/AVP 98\r\na=rtpmap:98 G726-32/8000\r\na=control:rtsp://{addr}/Streaming/Channels/101/trackID=2\r\n\
             m=application 0 RTP/AVP 107\r\na=rtpmap:107 vnd.onvif.metadata/90000\r\na=control:rtsp://{addr}/Streaming/Channels/101/trackID=3\r\n"
        )
    } else {
        String::new()
    };
    let format = match opts.video_format {
        Some(f) => f.to_string(),
        None => format!(
            "a=rtpmap:96 H264/90000\r\na=fmtp:96 profile-level-id=420029; packetization-mode=1{sprop}\r\n"
        ),
    };
    let sdp = format!(
        "v=0\r\no=- 1109162014219182 1109162014219192 IN IP4 10.20.0.11\r\ns=Media Presentation\r\ne=NONE\r\nb=AS:5100\r\nt=0 0\r\n\
         a=control:rtsp://{addr}/Streaming/Channels/101/\r\nm=video 0 RTP/AVP 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:5000\r\na=recvonly\r\n\
         a=x-dimensions:1280,720\r\na=control:rtsp://{addr}/Streaming/Channels/101/trackID=1\r\n{format}\
         a=Media_header:MEDIAINFO=494D4B48010300000400000100000000000000000000000000000000000000000000000000000000;\r\n\
         a=appversion:1.0\r\n{extra}{}",
        opts.sdp_extra
    );
    // The interleaved channel the client chose for the metadata track.
    let meta_channel = Arc::new(std::sync::atomic::AtomicU16::new(u16::MAX));
    let meta_ch = meta_channel.clone();
    // Requests: answered by the writer loop, in order.
    let reader = tokio::spawn(async move {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                // Skip interleaved RTCP from the client.
                if buf.first() == Some(&b'$') {
                    if buf.len() < 4 {
                        break;
                    }
                    let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                    if buf.len() < len {
                        break;
                    }
                    buf.drain(..len);
                    continue;
                }
                let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                    break;
                };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                let method = head.split(' ').next().unwrap_or("").to_string();
                let cseq = head
                    .lines()
                    .find_map(|l| l.strip_prefix("CSeq:").or_else(|| l.strip_prefix("Cseq:")))
                    .unwrap_or("0")
                    .trim()
                    .to_string();
                let resp = match method.as_str() {
                    "OPTIONS" => format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER\r\n\r\n"
                    ),
                    "DESCRIBE" => format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://{addr}/Streaming/Channels/101/\r\nContent-Length: {}\r\n\r\n{sdp}",
                        sdp.len()
                    ),
                    "SETUP" => {
                        // Echo the client's interleaved channels.
                        let ch = head
                            .split("interleaved=")
                            .nth(1)
                            .map(|r| {
                                r.split([';', '\r', ','])
                                    .next()
                                    .unwrap_or("0-1")
                                    .to_string()
                            })
                            .unwrap_or_else(|| "0-1".into());
                        if head.lines().next().is_some_and(|l| l.contains("trackID=3"))
                            && let Some(c) = ch.split('-').next().and_then(|c| c.parse().ok())
                        {
                            meta_ch.store(c, Ordering::SeqCst);
                        }
                        format!(
                            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession:       7F3A0B12;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved={ch};ssrc={CAMERA_SSRC:08X};mode=\"play\"\r\n\r\n"
                        )
                    }
                    "PLAY" => {
                        // RTP-Info names every track set up, as cameras do.
                        let meta = if meta_ch.load(Ordering::SeqCst) <= 255 {
                            format!(
                                ",url=rtsp://{addr}/Streaming/Channels/101/trackID=3;seq=0;rtptime=0"
                            )
                        } else {
                            String::new()
                        };
                        format!(
                            "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 7F3A0B12\r\nRTP-Info: url=rtsp://{addr}/Streaming/Channels/101/trackID=1;seq={CAMERA_SEQ0};rtptime=0{meta}\r\n\r\n"
                        )
                    }
                    _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 7F3A0B12\r\n\r\n"),
                };
                if let (Some(rate), "DESCRIBE") = (opts.endless_describe, method.as_str()) {
                    let head = format!(
                        "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Type: application/sdp\r\nContent-Length: 10000000000\r\n\r\n"
                    );
                    if tx.send(head.into_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = (rate / 25).max(1) as usize;
                    let mut tick = tokio::time::interval(Duration::from_millis(40));
                    loop {
                        tick.tick().await;
                        if tx.send(vec![b'a'; chunk]).await.is_err() {
                            return;
                        }
                    }
                }
                let play = method == "PLAY";
                if tx.send(resp.into_bytes()).await.is_err() {
                    return;
                }
                if play {
                    // Marker for the writer: start streaming.
                    let _ = tx.send(Vec::new()).await;
                }
            }
        }
    });
    let mut playing = false;
    let mut seq = CAMERA_SEQ0;
    let mut i = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(40));
    loop {
        tokio::select! {
            m = rx.recv() => match m {
                None => break,
                Some(v) if v.is_empty() => playing = true,
                Some(v) => if wr.write_all(&v).await.is_err() { break },
            },
            _ = tick.tick(), if playing => {
                if let Some((after, rate)) = opts.endless_au
                    && i >= after
                {
                    // 40 ms worth of 1400-byte fragments of one IDR slice.
                    let ts = (after as u32).wrapping_mul(3600);
                    let mut out = BytesMut::new();
                    let fragments = (rate / 25 / 1400).max(1);
                    for k in 0..fragments {
                        let start = if i == after && k == 0 { 0x80 } else { 0 };
                        let mut payload = vec![0x7c, start | 5];
                        payload.resize(1400, 0x5a);
                        packet(&mut out, &mut seq, ts, false, &payload, false, 0);
                    }
                    if wr.write_all(&out).await.is_err() { break }
                    i += 1;
                    continue;
                }
                if opts.aud_only_after.is_some_and(|n| i >= n) {
                    let mut out = BytesMut::new();
                    let ts = (i as u32).wrapping_mul(3600);
                    packet(&mut out, &mut seq, ts, true, &[0x09, 0xf0], false, 0);
                    if wr.write_all(&out).await.is_err() { break }
                    i += 1;
                    continue;
                }
                if opts.bye_after == Some(i) {
                    // RTCP BYE (RFC 3550 §6.6) for the camera's SSRC.
                    let bye = [b'$', 1, 0, 8, 0x81, 203, 0, 1];
                    let mut out = bye.to_vec();
                    out.extend_from_slice(&CAMERA_SSRC.to_be_bytes());
                    if wr.write_all(&out).await.is_err() { break }
                }
                if opts.bye_after.is_some_and(|n| i >= n) {
                    i += 1;
                    continue;
                }
                if opts.stall_after.is_some_and(|n| i >= n) {
                    // Stalled: only a sender report, once a second.
                    if i.is_multiple_of(25) {
                        let mut sr = BytesMut::with_capacity(32);
                        sr.put_u8(b'$');
                        sr.put_u8(1);
                        sr.put_u16(28);
                        sr.put_slice(&[0x80, 200, 0, 6]);
                        sr.put_u32(CAMERA_SSRC);
                        sr.put_u64(0xE000_0000_0000_0000 | i as u64);
                        sr.put_u32((i as u32).wrapping_mul(3600));
                        sr.put_u32(i as u32);
                        sr.put_u32(0);
                        if wr.write_all(&sr).await.is_err() { break }
                    }
                    i += 1;
                    continue;
                }
                let (nals, key) = &frames[i % frames.len()];
                let ts = (i as u32).wrapping_mul(3600);
                let out = if opts.churn_sps {
                    let mut sps = sps.clone();
                    sps[3] = if i.is_multiple_of(2) { 0x1e } else { 0x1f };
                    packetize_quirky(&sps, &pps, nals, true, ts, &mut seq)
                } else {
                    packetize_quirky(&sps, &pps, nals, *key, ts, &mut seq)
                };
                if wr.write_all(&out).await.is_err() { break }
                let ch = meta_channel.load(Ordering::SeqCst);
                if opts.metadata && i.is_multiple_of(25) && ch <= 255 {
                    let out = metadata_packet(ch as u8, (i / 25) as u16, ts, i / 25);
                    if wr.write_all(&out).await.is_err() { break }
                }
                i += 1;
            }
        }
    }
    reader.abort();
}

/// An ONVIF metadata document (a motion event) in one RTP packet on
/// `channel`, marker set, payload type 107.
pub fn metadata_packet(channel: u8, seq: u16, ts: u32, n: usize) -> BytesMut {
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><tt:MetadataStream xmlns:tt=\"http://www.onvif.org/ver10/schema\">\
         <tt:Event><wsnt:NotificationMessage xmlns:wsnt=\"http://docs.oasis-open.org/wsn/b-2\"><wsnt:Topic>tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic>\
         <wsnt:Message><tt:Message UtcTime=\"2026-11-28T00:00:{:02}Z\"><tt:Data><tt:SimpleItem Name=\"IsMotion\" Value=\"true\"/></tt:Data></tt:Message></wsnt:Message>\
         </wsnt:NotificationMessage></tt:Event></tt:MetadataStream>",
        n % 60
    );
    let mut p = BytesMut::new();
    p.put_u8(0x80);
    p.put_u8(0x80 | 107);
    p.put_u16(seq);
    p.put_u32(ts);
    // The SSRC the SETUP answer announced (the same for every track).
    p.put_u32(CAMERA_SSRC);
    p.put_slice(doc.as_bytes());
    let mut out = BytesMut::new();
    out.put_u8(b'$');
    out.put_u8(channel);
    out.put_u16(p.len() as u16);
    out.put_slice(&p);
    out
}

/// One RTP packet framed for channel 0, with optional header extension
/// and padding.
fn packet(
    out: &mut BytesMut,
    seq: &mut u16,
    ts: u32,
    marker: bool,
    payload: &[u8],
    ext: bool,
    pad: u8,
) {
    let mut p = BytesMut::new();
    let b0 = 0x80 | if ext { 0x10 } else { 0 } | if pad > 0 { 0x20 } else { 0 };
    p.put_u8(b0);
    p.put_u8(if marker { 0x80 | 96 } else { 96 });
    p.put_u16(*seq);
    p.put_u32(ts);
    p.put_u32(CAMERA_SSRC);
    if ext {
        p.put_u16(0xABAC);
        p.put_u16(1);
        p.put_u32(0xDEAD_BEEF);
    }
    p.put_slice(payload);
    if pad > 0 {
        p.put_bytes(0, usize::from(pad - 1));
        p.put_u8(pad);
    }
    out.put_u8(b'$');
    out.put_u8(0);
    out.put_u16(p.len() as u16);
    out.put_slice(&p);
    *seq = seq.wrapping_add(1);
}

/// Packetizes like a quirky camera: parameter sets (and SEI) in a STAP-A,
/// small NALs with a header extension, large ones in FU-A with padding.
fn packetize_quirky(
    sps: &[u8],
    pps: &[u8],
    nals: &[Vec<u8>],
    key: bool,
    ts: u32,
    seq: &mut u16,
) -> BytesMut {
    let mut out = BytesMut::new();
    let mut rest: Vec<&[u8]> = nals.iter().map(|n| n.as_slice()).collect();
    if key {
        let mut stap = vec![24u8];
        let mut agg: Vec<&[u8]> = vec![sps, pps];
        // Aggregate any SEI with the parameter sets.
        while rest.first().is_some_and(|n| n[0] & 0x1f == 6) {
            agg.push(rest.remove(0));
        }
        for n in agg {
            stap.extend_from_slice(&(n.len() as u16).to_be_bytes());
            stap.extend_from_slice(n);
        }
        packet(&mut out, seq, ts, false, &stap, false, 0);
    }
    let count = rest.len();
    for (k, nal) in rest.iter().enumerate() {
        let last = k + 1 == count;
        if nal.len() <= 1200 {
            packet(&mut out, seq, ts, last, nal, true, 0);
            continue;
        }
        let hdr = nal[0];
        let body = &nal[1..];
        let chunks: Vec<&[u8]> = body.chunks(1000).collect();
        for (j, c) in chunks.iter().enumerate() {
            let s = if j == 0 { 0x80 } else { 0 };
            let e = if j + 1 == chunks.len() { 0x40 } else { 0 };
            let mut payload = vec![(hdr & 0xe0) | 28, s | e | (hdr & 0x1f)];
            payload.extend_from_slice(c);
            packet(&mut out, seq, ts, last && e != 0, &payload, j % 2 == 0, 4);
        }
    }
    out
}

/// How an [`AuthCamera`] asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// `WWW-Authenticate: Basic` only; accepts Basic.
    BasicOnly,
    /// Digest only; accepts Digest.
    Digest,
    /// Two headers, Basic first, then Digest (as Hikvision firmware
    /// sends them); accepts either.
    BasicAndDigest,
    /// DESCRIBE needs no credentials; every later request (SETUP, PLAY)
    /// wants Basic: a camera fishing for the password once the session
    /// has started without one.
    BasicAfterDescribe,
}

/// The camera account an [`AuthCamera`] accepts (the fake HTTP camera's).
pub const AUTH_USER: &str = "admin";
pub const AUTH_PASS: &str = "cam-secret";
const AUTH_NONCE: &str = "scriptedcameranonce42";

/// A [`ScriptedCamera`] behind RTSP authentication: every request but
/// OPTIONS must carry the credentials `mode` accepts, else gets 401 with
/// `mode`'s challenge. Records every request head it receives, so tests
/// can show what a camera was sent.
pub struct AuthCamera {
    pub addr: SocketAddr,
    /// Every request head received, in order, as sent.
    pub heads: Arc<std::sync::Mutex<Vec<String>>>,
    /// The camera behind the gate (its `connections` count authorized
    /// sessions only).
    pub inner: ScriptedCamera,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AuthCamera {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AuthCamera {
    pub async fn start(mode: AuthMode) -> AuthCamera {
        let inner = ScriptedCamera::start().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let (h, inner_addr) = (heads.clone(), inner.addr);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((s, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(gate(s, inner_addr, mode, h.clone()));
            }
        });
        AuthCamera {
            addr,
            heads,
            inner,
            task,
        }
    }

    pub fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }

    /// Panics if any request this camera received carried the password in
    /// any form a Basic answer (or a careless client) would use.
    pub fn assert_never_got_the_password(&self) {
        let b64 =
            base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASS}"));
        for h in self.heads() {
            assert!(!h.contains(&b64), "Basic credentials sent: {h}");
            assert!(!h.contains(AUTH_PASS), "password sent: {h}");
            assert!(
                !h.to_ascii_lowercase().contains("authorization: basic"),
                "Basic authorization sent: {h}"
            );
        }
    }
}

fn auth_challenge(mode: AuthMode) -> String {
    let digest = format!("WWW-Authenticate: Digest realm=\"camgate\", nonce=\"{AUTH_NONCE}\"\r\n");
    let basic = "WWW-Authenticate: Basic realm=\"camera\"\r\n".to_string();
    match mode {
        AuthMode::BasicOnly | AuthMode::BasicAfterDescribe => basic,
        AuthMode::Digest => digest,
        AuthMode::BasicAndDigest => basic + &digest,
    }
}

fn auth_ok(mode: AuthMode, method: &str, head: &str) -> bool {
    if method == "OPTIONS" || (mode == AuthMode::BasicAfterDescribe && method == "DESCRIBE") {
        return true;
    }
    let Some(value) = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("authorization")
            .then(|| v.trim().to_string())
    }) else {
        return false;
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((&value, ""));
    let basic_ok = mode != AuthMode::Digest;
    let digest_ok = matches!(mode, AuthMode::Digest | AuthMode::BasicAndDigest);
    if scheme.eq_ignore_ascii_case("basic") {
        let want =
            base64::engine::general_purpose::STANDARD.encode(format!("{AUTH_USER}:{AUTH_PASS}"));
        return basic_ok && rest.trim() == want;
    }
    if !scheme.eq_ignore_ascii_case("digest") || !digest_ok {
        return false;
    }
    let get = |k: &str| {
        rest.split(',').find_map(|p| {
            p.trim()
                .strip_prefix(&format!("{k}="))
                .map(|v| v.trim_matches('"').to_string())
        })
    };
    let (Some(user), Some(uri), Some(resp)) = (get("username"), get("uri"), get("response")) else {
        return false;
    };
    let expected = camgate::auth::digest_response(
        &user,
        &camgate::config::Secret::new(AUTH_PASS),
        method,
        &uri,
        AUTH_NONCE,
        None,
    );
    user == AUTH_USER && resp == expected
}

/// One client connection of an [`AuthCamera`]: authorized requests (and
/// interleaved data) go to the scripted camera, whose answers and media
/// come straight back; the others get a 401.
async fn gate(
    client: TcpStream,
    inner_addr: SocketAddr,
    mode: AuthMode,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let (mut rd, wr) = client.into_split();
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let mut inner: Option<tokio::net::tcp::OwnedWriteHalf> = None;
    let mut copier: Option<tokio::task::JoinHandle<()>> = None;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    'conn: loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            if buf.first() == Some(&b'$') {
                if buf.len() < 4 {
                    break;
                }
                let len = 4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]));
                if buf.len() < len {
                    break;
                }
                if let Some(i) = inner.as_mut() {
                    let _ = i.write_all(&buf[..len]).await;
                }
                buf.drain(..len);
                continue;
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let body_len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() < end + 4 + body_len {
                break;
            }
            let request: Vec<u8> = buf.drain(..end + 4 + body_len).collect();
            heads.lock().unwrap().push(head.clone());
            let method = head.split(' ').next().unwrap_or("").to_string();
            if auth_ok(mode, &method, &head) {
                if inner.is_none() {
                    let Ok(s) = TcpStream::connect(inner_addr).await else {
                        break 'conn;
                    };
                    let (mut ird, iwr) = s.into_split();
                    inner = Some(iwr);
                    let wr = wr.clone();
                    copier = Some(tokio::spawn(async move {
                        let mut chunk = [0u8; 16384];
                        loop {
                            let n = match ird.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if wr.lock().await.write_all(&chunk[..n]).await.is_err() {
                                return;
                            }
                        }
                    }));
                }
                if let Some(i) = inner.as_mut()
                    && i.write_all(&request).await.is_err()
                {
                    break 'conn;
                }
            } else {
                let cseq = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.trim()
                            .eq_ignore_ascii_case("cseq")
                            .then(|| v.trim().to_string())
                    })
                    .unwrap_or_else(|| "0".into());
                let reply = format!(
                    "RTSP/1.0 401 Unauthorized\r\nCSeq: {cseq}\r\n{}\r\n",
                    auth_challenge(mode)
                );
                if wr.lock().await.write_all(reply.as_bytes()).await.is_err() {
                    break 'conn;
                }
            }
        }
    }
    if let Some(c) = copier {
        c.abort();
    }
}
