//! How much memory a hostile camera can make camgate hold: a camera that
//! never ends an access unit, so the RTSP client (retina) keeps buffering.
//!
//! camgate runs as its own process (release build) pulling one camera that
//! is this process: a minimal RTSP server that answers DESCRIBE/SETUP/PLAY,
//! sends one honest key frame, then, for `--secs`, as fast as camgate
//! reads, one of:
//!
//! - `fu-a`: one H.264 FU-A NAL unit started and never ended (no E bit, no
//!   RTP marker), 1400-byte fragments;
//! - `same-ts`: complete non-IDR slices, all with one timestamp and no
//!   marker: an access unit that never ends;
//! - `sei`: SEI NAL units the same way.
//!
//! An RTCP sender report every second keeps the session looking alive. The
//! table gives the bytes sent, camgate's RSS before, at its peak and after,
//! and how many RTSP sessions camgate opened (more than one: it dropped the
//! session and reconnected). A run stops early past 3 GiB RSS.
//!
//! ```sh
//! cargo bench --bench hostile_camera                  # 20 s per variant
//! cargo bench --bench hostile_camera -- --out docs/hostile-camera.md
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke
//! test: 2 s per variant, failing if camgate died.

#[path = "common/sys.rs"]
mod sys;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use sys::Proc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BIN: &str = env!("CARGO_BIN_EXE_camgate");
/// A run stops once camgate holds this much.
const RSS_CAP_MIB: f64 = 3072.0;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    FuA,
    SameTs,
    Sei,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::FuA => "fu-a",
            Variant::SameTs => "same-ts",
            Variant::Sei => "sei",
        }
    }
}

struct Opts {
    smoke: bool,
    secs: u64,
    out: Option<PathBuf>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut o = Opts {
        smoke,
        secs: if smoke { 2 } else { 20 },
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--secs" => o.secs = val().parse().expect("--secs N"),
            "--out" => o.out = Some(PathBuf::from(val())),
            _ => {}
        }
    }
    o
}

/// SPS, PPS and the first key frame's NAL units, from the bundled clip.
fn key_frame() -> (Vec<u8>, Vec<u8>, Vec<Vec<u8>>) {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/clip.h264"))
        .expect("assets/clip.h264");
    let (codec, frames) = camgate::camera::clip::parse_h264_annexb(&data).expect("clip");
    let camgate::media::VideoCodec::H264 { sps, pps } = codec else {
        panic!("the clip is H.264")
    };
    let (first, key) = frames.into_iter().next().expect("a frame");
    assert!(key);
    let nals = camgate::rtp::length_prefixed_nals(&first)
        .expect("NAL units")
        .iter()
        .map(|n| n.to_vec())
        .collect();
    (sps.to_vec(), pps.to_vec(), nals)
}

fn rtp(channel: u8, marker: bool, seq: u16, ts: u32, payload: &[u8]) -> Vec<u8> {
    let len = 12 + payload.len();
    let mut p = Vec::with_capacity(4 + len);
    p.push(b'$');
    p.push(channel);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.push(0x80);
    p.push(96 | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&0x0BAD_CA11u32.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn sender_report(ts: u32, packets: u32, octets: u32) -> Vec<u8> {
    let mut p = vec![b'$', 1, 0, 28, 0x80, 200, 0, 6];
    p.extend_from_slice(&0x0BAD_CA11u32.to_be_bytes());
    let ntp = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
        + 2_208_988_800)
        << 32;
    p.extend_from_slice(&ntp.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&packets.to_be_bytes());
    p.extend_from_slice(&octets.to_be_bytes());
    p
}

/// The hostile camera: serves every connection until `stop`.
struct Camera {
    addr: SocketAddr,
    sessions: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
}

async fn start_camera(variant: Variant, stop: Arc<AtomicBool>) -> Camera {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind camera");
    let addr = listener.local_addr().expect("camera address");
    let sessions = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let (s2, b2) = (sessions.clone(), sent.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve(
                s,
                addr,
                variant,
                stop.clone(),
                s2.clone(),
                b2.clone(),
            ));
        }
    });
    Camera {
        addr,
        sessions,
        sent,
    }
}

async fn serve(
    mut s: TcpStream,
    addr: SocketAddr,
    variant: Variant,
    stop: Arc<AtomicBool>,
    sessions: Arc<AtomicUsize>,
    sent: Arc<AtomicU64>,
) {
    let (sps, pps, idr) = key_frame();
    let b64 = base64::engine::general_purpose::STANDARD;
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=hostile\r\nt=0 0\r\na=control:rtsp://{addr}/live/\r\n\
         m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n\
         a=fmtp:96 packetization-mode=1; sprop-parameter-sets={},{}\r\na=control:rtsp://{addr}/live/trackID=1\r\n",
        b64.encode(&sps),
        b64.encode(&pps)
    );
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break e;
            }
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end + 4);
        let method = head.split(' ').next().unwrap_or("").to_string();
        let cseq = head
            .lines()
            .find_map(|l| l.strip_prefix("CSeq: "))
            .unwrap_or("0")
            .trim()
            .to_string();
        let reply = match method.as_str() {
            "OPTIONS" => format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nPublic: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n\r\n"
            ),
            "DESCRIBE" => format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nContent-Base: rtsp://{addr}/live/\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
                sdp.len()
            ),
            "SETUP" => format!(
                "RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: 12345678;timeout=60\r\n\r\n"
            ),
            "PLAY" => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678\r\n\r\n"),
            _ => format!("RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: 12345678\r\n\r\n"),
        };
        if s.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
        if method == "PLAY" {
            break;
        }
    }
    sessions.fetch_add(1, Ordering::SeqCst);
    // One honest key frame, then the flood.
    let ts = 90_000u32;
    let mut seq = 1u16;
    let mut out = Vec::new();
    let all: Vec<&Vec<u8>> = [&sps, &pps].into_iter().chain(&idr).collect();
    for (i, n) in all.iter().enumerate() {
        let last_nal = i + 1 == all.len();
        if n.len() <= 1400 {
            out.extend(rtp(0, last_nal, seq, ts, n));
            seq = seq.wrapping_add(1);
            continue;
        }
        // FU-A (RFC 6184 §5.8) for NAL units over the payload size.
        let chunks: Vec<&[u8]> = n[1..].chunks(1398).collect();
        for (j, c) in chunks.iter().enumerate() {
            let (start, end) = (j == 0, j + 1 == chunks.len());
            let fu = [
                (n[0] & 0xe0) | 28,
                (u8::from(start) << 7) | (u8::from(end) << 6) | (n[0] & 0x1f),
            ];
            out.extend(rtp(0, last_nal && end, seq, ts, &[&fu[..], c].concat()));
            seq = seq.wrapping_add(1);
        }
    }
    if s.write_all(&out).await.is_err() {
        return;
    }
    let ts = ts + 3600;
    let filler = vec![0x5au8; 1399];
    let mut first = true;
    let mut last_sr = Instant::now();
    let (mut packets, mut octets) = (0u32, 0u32);
    // Drain what camgate sends (RTCP receiver reports) so it never blocks.
    let (mut rd, mut wr) = s.into_split();
    tokio::spawn(async move {
        let mut sink = [0u8; 4096];
        while let Ok(n) = rd.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::with_capacity(64 * 1420);
        for _ in 0..64 {
            let payload: Vec<u8> = match variant {
                Variant::FuA => {
                    // FU indicator (NRI 3, type 28), FU header (S on the
                    // first fragment only, never E; type 1).
                    let header = if first { 0x80 | 1 } else { 1 };
                    first = false;
                    [&[0x7c, header][..], &filler[..1398]].concat()
                }
                Variant::SameTs => [&[0x41][..], &filler[..]].concat(),
                Variant::Sei => [&[0x06, 0x05, 0xff][..], &filler[..1397]].concat(),
            };
            batch.extend(rtp(0, false, seq, ts, &payload));
            seq = seq.wrapping_add(1);
            packets = packets.wrapping_add(1);
            octets = octets.wrapping_add(payload.len() as u32);
        }
        if last_sr.elapsed() >= Duration::from_secs(1) {
            batch.extend(sender_report(ts, packets, octets));
            last_sr = Instant::now();
        }
        let n = batch.len() as u64;
        if wr.write_all(&batch).await.is_err() {
            return;
        }
        sent.fetch_add(n, Ordering::Relaxed);
    }
}

struct Row {
    variant: Variant,
    /// `[camera] memory_limit_bytes`, if set.
    limit_mib: Option<u64>,
    secs: f64,
    sent_mib: f64,
    before: f64,
    peak: f64,
    after: f64,
    sessions: usize,
    alive: bool,
    capped: bool,
}

fn start_camgate(camera: SocketAddr, limit_mib: Option<u64>) -> Proc {
    let dir = tempfile::tempdir().expect("temp dir");
    let limit = limit_mib.map_or(0, |m| m << 20);
    let config = format!(
        "[rtsp]\nlisten = \"127.0.0.1:0\"\nudp = false\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [inspect]\nfingerprint = false\n[camera]\nmemory_limit_bytes = {limit}\n\
         [[recorder]]\nname = \"nvr\"\nusername = \"nvr\"\npassword = \"x\"\ndevices = [\"*\"]\n\
         [[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\nrtsp_port = {}\n[device.streams]\nmain = \"/live\"\n",
        camera.port()
    );
    let file = dir.path().join("camgate.toml");
    std::fs::write(&file, config).expect("write config");
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--log-format",
            "json",
            "--log",
            "warn,camgate::app=info",
            "--config",
        ])
        .arg(&file)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start camgate");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    loop {
        let line = lines.next().expect("camgate exited early").expect("log");
        if line.contains("camgate running") {
            break;
        }
    }
    std::thread::spawn(move || {
        // What camgate says about the camera, at most a few lines.
        for (i, l) in lines.map_while(Result::ok).enumerate() {
            if i < 10 {
                eprintln!("camgate: {}", l.chars().take(300).collect::<String>());
            }
        }
    });
    Proc {
        child,
        addr: camera,
        _dir: Some(dir),
    }
}

fn run(variant: Variant, limit_mib: Option<u64>, secs: u64, rt: &tokio::runtime::Runtime) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let cam = rt.block_on(start_camera(variant, stop.clone()));
    let mut gate = start_camgate(cam.addr, limit_mib);
    let pid = gate.pid();
    let before = sys::rss_mib(pid);
    let t = Instant::now();
    let (mut peak, mut capped) = (before, false);
    while t.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(200));
        let rss = sys::rss_mib(pid);
        peak = peak.max(rss);
        if rss > RSS_CAP_MIB {
            capped = true;
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let after = sys::rss_mib(pid);
    let alive = matches!(gate.child.try_wait(), Ok(None));
    Row {
        variant,
        limit_mib,
        secs,
        sent_mib: cam.sent.load(Ordering::Relaxed) as f64 / (1 << 20) as f64,
        before,
        peak,
        after,
        sessions: cam.sessions.load(Ordering::SeqCst),
        alive,
        capped,
    }
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // Each variant with the automatic memory limit (half this machine's
    // memory: far above the cap here) and with a 256 MiB one.
    let rows: Vec<Row> = [Variant::FuA, Variant::SameTs, Variant::Sei]
        .into_iter()
        .flat_map(|v| [(v, None), (v, Some(256))])
        .map(|(v, limit)| run(v, limit, o.secs, &rt))
        .collect();
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| variant | memory limit | seconds | sent (MiB) | camgate RSS before / peak / 2 s after (MiB) | camera sessions | camgate alive |\n|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        let _ = writeln!(
            md,
            "| `{}` | {} | {:.1} | {:.0} | {:.0} / {:.0}{} / {:.0} | {} | {} |",
            r.variant.name(),
            r.limit_mib
                .map_or_else(|| "automatic".to_string(), |m| format!("{m} MiB")),
            r.secs,
            r.sent_mib,
            r.before,
            r.peak,
            if r.capped { " (cap reached)" } else { "" },
            r.after,
            r.sessions,
            if r.alive { "yes" } else { "no" }
        );
    }
    print!("{md}");
    if o.smoke {
        let ok = rows.iter().all(|r| r.alive);
        println!(
            "hostile_camera smoke: {} passed, {} failed",
            usize::from(ok),
            usize::from(!ok)
        );
        if !ok {
            std::process::exit(1);
        }
        return;
    }
    if let Some(path) = o.out {
        let text = format!(
            "# A hostile camera's access units: measured\n\n\
             Latest results of `cargo bench --bench hostile_camera -- --out {}` (method: `benches/hostile_camera.rs`), \
             up to {} s per variant, on this machine (2 cores, loopback).\n\n\
             The camera sends one honest key frame, then never ends an access unit: `fu-a` one FU-A \
             fragment stream without an end, `same-ts` slices sharing one timestamp without a marker, \
             `sei` SEI units the same way; an RTCP sender report every second. A run stops at {RSS_CAP_MIB} MiB \
             of camgate RSS (\"cap reached\"). \"2 s after\" is after the camera stopped; \"camera sessions\" \
             counts camgate's PLAYs (the flooded session, then its reconnect once the camera stopped). \
             \"automatic\" runs with the default `[camera] memory_limit_bytes` (half this machine's memory, \
             above the cap); \"256 MiB\" sets it, so the memory guard ends the session once camgate is over \
             256 MiB and no video came for 2 s (every session counted is a reconnect). \
             What it means: `docs/security.md`, section 3.3.\n\n{md}",
            path.display(),
            o.secs
        );
        std::fs::write(&path, text).expect("write results");
    }
}
