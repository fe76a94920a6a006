//! Fan-out benchmark: one ~4 Mbit/s 25 fps H.264 stream (camgate's simulated
//! camera, served by a first camgate process) pulled once by a second
//! camgate process and re-served to N TCP recorders, played by lightweight
//! readers in this process that count bytes, RTP sequence gaps, frames and
//! the arrival of the first complete key frame.
//!
//! Reports the relay's CPU (from /proc/<pid>/stat), CPU seconds per
//! delivered Gbit, peak RSS, and delivered bitrate per reader.
//!
//! `cargo bench --bench fanout` runs N = 1, 50, 200 for 10 s each;
//! `cargo bench --bench fanout -- --readers 1,50 --secs 5` picks others.
//! Without `--bench` (as `cargo test --all-targets` runs it) it does a short
//! smoke run (N = 5, 2 s) and fails if a reader got nothing.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_camgate");
const USER: &str = "bench";
const PASS: &str = "bench-pw";

struct Opts {
    readers: Vec<usize>,
    secs: u64,
    warmup: u64,
    smoke: bool,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut o = Opts {
        readers: if smoke { vec![5] } else { vec![1, 50, 200] },
        secs: if smoke { 2 } else { 10 },
        warmup: if smoke { 1 } else { 3 },
        smoke,
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--readers" => {
                o.readers = it
                    .next()
                    .expect("--readers N,N,...")
                    .split(',')
                    .map(|n| n.parse().expect("reader count"))
                    .collect()
            }
            "--secs" => o.secs = it.next().expect("--secs N").parse().expect("seconds"),
            "--warmup" => o.warmup = it.next().expect("--warmup N").parse().expect("seconds"),
            _ => {}
        }
    }
    o
}

/// A camgate child process, killed on drop.
struct Proc {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

fn start(config: &str) -> (Proc, SocketAddr) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("camgate.toml");
    std::fs::write(&file, config).unwrap();
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
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines.next().expect("camgate exited early").unwrap();
        if let Some(i) = line.find("\"rtsp\":\"") {
            let rest = &line[i + 8..];
            break rest[..rest.find('"').unwrap()].parse().unwrap();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Proc { child, _dir: dir }, addr)
}

fn config(listen: &str, device: &str) -> String {
    format!(
        "[rtsp]\nlisten = \"{listen}\"\nudp = false\nmax_connections = 4096\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[recorder]]\nname = \"bench\"\nusername = \"{USER}\"\npassword = \"{PASS}\"\ndevices = [\"*\"]\n{device}"
    )
}

/// Per-reader counters.
#[derive(Default)]
struct Stats {
    bytes: AtomicU64,
    packets: AtomicU64,
    lost: AtomicU64,
    frames: AtomicU64,
    /// Microseconds from connect to the end of the first key frame (0 = not yet).
    first_key_us: AtomicU64,
}

async fn request(s: &mut TcpStream, req: String) -> std::io::Result<String> {
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if let Some(len) = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
    {
        let mut body = vec![0; len.trim().parse().unwrap_or(0)];
        s.read_exact(&mut body).await?;
    }
    if !head.starts_with("RTSP/1.0 200") {
        return Err(std::io::Error::other(head));
    }
    Ok(head)
}

/// Plays `url` over TCP interleaved and counts what arrives.
async fn reader(
    addr: SocketAddr,
    path: &str,
    stats: Arc<Stats>,
    stop: tokio_util::sync::CancellationToken,
) {
    let t0 = Instant::now();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
    let url = format!("rtsp://{addr}/{path}");
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return eprintln!("reader connect: {e}"),
    };
    let setup = async {
        request(
            &mut s,
            format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: Basic {auth}\r\n\r\n"),
        )
        .await?;
        let head = request(
            &mut s,
            format!("SETUP {url}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nAuthorization: Basic {auth}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"),
        )
        .await?;
        let session = head
            .lines()
            .find_map(|l| l.strip_prefix("Session: "))
            .and_then(|v| v.split(';').next())
            .unwrap_or("")
            .to_string();
        request(
            &mut s,
            format!("SETUP {url}/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Basic {auth}\r\nSession: {session}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=2-3\r\n\r\n"),
        )
        .await?;
        request(&mut s, format!("PLAY {url} RTSP/1.0\r\nCSeq: 4\r\nAuthorization: Basic {auth}\r\nSession: {session}\r\n\r\n")).await
    };
    if let Err(e) = setup.await {
        return eprintln!("reader setup: {e}");
    }
    let mut buf = vec![0u8; 256 << 10];
    let mut have = 0usize;
    let mut next_seq: Option<u16> = None;
    let mut in_key = false;
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
            let ch = buf[off + 1];
            let p = &buf[off + 4..off + 4 + len];
            if ch == 0 && p.len() > 12 {
                stats.packets.fetch_add(1, Ordering::Relaxed);
                let seq = u16::from_be_bytes([p[2], p[3]]);
                if let Some(e) = next_seq {
                    stats
                        .lost
                        .fetch_add(u64::from(seq.wrapping_sub(e)), Ordering::Relaxed);
                }
                next_seq = Some(seq.wrapping_add(1));
                let nal = p[12] & 0x1f;
                if nal == 7 {
                    in_key = true;
                }
                if p[1] & 0x80 != 0 {
                    stats.frames.fetch_add(1, Ordering::Relaxed);
                    if in_key && stats.first_key_us.load(Ordering::Relaxed) == 0 {
                        stats
                            .first_key_us
                            .store(t0.elapsed().as_micros() as u64 + 1, Ordering::Relaxed);
                    }
                    in_key = false;
                }
            }
            off += 4 + len;
        }
        buf.copy_within(off..have, 0);
        have -= off;
    }
}

/// utime + stime of a process, in seconds.
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

fn clk_tck() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// (busy, total) jiffies of the whole machine from /proc/stat.
fn machine_cpu() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let v: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: f64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    (total - idle, total)
}

fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

struct Row {
    n: usize,
    cores: f64,
    machine_cores: f64,
    s_per_gbit: f64,
    gbps: f64,
    min_mbps: f64,
    med_mbps: f64,
    lost: u64,
    ttff_p50_ms: f64,
    ttff_p99_ms: f64,
    rss_mib: f64,
    hwm_mib: f64,
    starved: usize,
}

async fn scenario(relay: &Proc, addr: SocketAddr, n: usize, o: &Opts) -> Row {
    let pid = relay.child.id();
    let stop = tokio_util::sync::CancellationToken::new();
    let stats: Vec<Arc<Stats>> = (0..n).map(|_| Arc::new(Stats::default())).collect();
    for s in &stats {
        tokio::spawn(reader(addr, "cam/main", s.clone(), stop.clone()));
        // Connect at a steady pace, as recorders would.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    tokio::time::sleep(Duration::from_secs(o.warmup)).await;
    let b0: Vec<u64> = stats
        .iter()
        .map(|s| s.bytes.load(Ordering::Relaxed))
        .collect();
    let l0: u64 = stats.iter().map(|s| s.lost.load(Ordering::Relaxed)).sum();
    let (c0, m0, t0) = (proc_cpu(pid), machine_cpu(), Instant::now());
    tokio::time::sleep(Duration::from_secs(o.secs)).await;
    let (c1, m1, wall) = (proc_cpu(pid), machine_cpu(), t0.elapsed().as_secs_f64());
    let b1: Vec<u64> = stats
        .iter()
        .map(|s| s.bytes.load(Ordering::Relaxed))
        .collect();
    let l1: u64 = stats.iter().map(|s| s.lost.load(Ordering::Relaxed)).sum();
    let rss = status_kib(pid, "VmRSS:");
    let hwm = status_kib(pid, "VmHWM:");
    stop.cancel();
    let mut mbps: Vec<f64> = b0
        .iter()
        .zip(&b1)
        .map(|(a, b)| (b - a) as f64 * 8.0 / wall / 1e6)
        .collect();
    let starved = mbps.iter().filter(|m| **m < 0.01).count();
    let total_bits: f64 = b0.iter().zip(&b1).map(|(a, b)| (b - a) as f64 * 8.0).sum();
    let cpu = c1 - c0;
    let mut ttff: Vec<f64> = stats
        .iter()
        .map(|s| s.first_key_us.load(Ordering::Relaxed))
        .filter(|v| *v > 0)
        .map(|v| v as f64 / 1000.0)
        .collect();
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1) as f64;
    let machine_cores = if m1.1 > m0.1 {
        (m1.0 - m0.0) / (m1.1 - m0.1) * ncpu
    } else {
        0.0
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    Row {
        n,
        cores: cpu / wall,
        machine_cores,
        s_per_gbit: if total_bits > 0.0 {
            cpu / (total_bits / 1e9)
        } else {
            f64::NAN
        },
        gbps: total_bits / wall / 1e9,
        min_mbps: pct(&mut mbps.clone(), 0.0),
        med_mbps: pct(&mut mbps, 0.5),
        lost: l1 - l0,
        ttff_p50_ms: pct(&mut ttff.clone(), 0.5),
        ttff_p99_ms: pct(&mut ttff, 0.99),
        rss_mib: rss as f64 / 1024.0,
        hwm_mib: hwm as f64 / 1024.0,
        starved,
    }
}

fn main() {
    let o = opts();
    let _ = camgate::sys::raise_nofile_limit();
    assert!(Path::new(BIN).exists(), "camgate binary missing: {BIN}");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (_camera, cam_addr) = start(&config(
            "127.0.0.1:0",
            "[[device]]\nid = \"cam\"\nsimulated = true\naudio = \"pass\"\n",
        ));
        let (relay, relay_addr) = start(&config(
            "127.0.0.1:0",
            &format!(
                "[[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\nrtsp_port = {}\nusername = \"{USER}\"\npassword = \"{PASS}\"\naudio = \"pass\"\n[device.streams]\nmain = \"/cam/main\"\n",
                cam_addr.port()
            ),
        ));
        // Let the relay pull the camera and fill its GOP cache.
        tokio::time::sleep(Duration::from_secs(2)).await;
        println!(
            "fan-out: 1 camera (~4.1 Mbit/s H.264 720p25 + AAC) -> camgate -> N TCP readers; {} s per run after {} s warm-up; {} cores",
            o.secs,
            o.warmup,
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!("| N | relay CPU (cores) | machine CPU (cores) | CPU s / Gbit | delivered Gbit/s | per reader Mbit/s min / median | lost pkts | first key frame ms p50 / p99 | RSS MiB (peak) |");
        println!("|---|---|---|---|---|---|---|---|---|");
        let mut failed = false;
        for &n in &o.readers {
            let r = scenario(&relay, relay_addr, n, &o).await;
            println!(
                "| {} | {:.3} | {:.2} | {:.2} | {:.3} | {:.2} / {:.2} | {} | {:.0} / {:.0} | {:.1} ({:.1}) |",
                r.n, r.cores, r.machine_cores, r.s_per_gbit, r.gbps, r.min_mbps, r.med_mbps, r.lost,
                r.ttff_p50_ms, r.ttff_p99_ms, r.rss_mib, r.hwm_mib
            );
            if r.starved > 0 || r.lost > 0 {
                eprintln!("{} readers received nothing; {} packets lost", r.starved, r.lost);
                failed = true;
            }
        }
        if o.smoke && failed {
            std::process::exit(1);
        }
        if o.smoke {
            println!("fanout smoke: 1 passed, 0 failed");
        }
        drop(relay);
    });
}
