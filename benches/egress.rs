//! The DNS sinkhole and the egress trap under load, on loopback.
//!
//! camgate runs as its own process (release build) with a camera device at
//! 127.0.0.1, so every query and attempt from this process is that camera's.
//! Three loads, each for `--secs`:
//!
//! - `dns`: 64 UDP clients, closed loop (send, wait for the answer, send),
//!   names cycling through sinkholed vendor names, a static name and
//!   refused names: answers per second and latency percentiles.
//! - `trap-tcp`: 32 connectors, closed loop: connect, send a ClientHello
//!   naming a vendor host, wait for the reset: attempts classified and
//!   closed per second, and whether camgate's counter matches.
//! - `trap-udp`: one sender, 20 000 datagrams per second (Dahua P2P
//!   greeting): datagrams counted per second.
//!
//! camgate's CPU and RSS (before, peak, after) and the machine's CPU are
//! reported; targets (issue 6): 20k DNS queries/s and 5k trapped
//! connections/s on 2 cores, with bounded memory.
//!
//! ```sh
//! cargo bench --bench egress                       # 3 runs x 10 s each
//! cargo bench --bench egress -- --out docs/egress-benchmarks.md
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a
//! smoke test: 1 s of each load, failing if anything went unanswered or
//! uncounted.

#[path = "common/sys.rs"]
mod sys;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sys::Proc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const BIN: &str = env!("CARGO_BIN_EXE_camgate");

struct Opts {
    smoke: bool,
    runs: usize,
    secs: u64,
    out: Option<PathBuf>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut o = Opts {
        smoke,
        runs: if smoke { 1 } else { 3 },
        secs: if smoke { 1 } else { 10 },
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--runs" => o.runs = val().parse().expect("--runs N"),
            "--secs" => o.secs = val().parse().expect("--secs N"),
            "--out" => o.out = Some(PathBuf::from(val())),
            _ => {}
        }
    }
    o
}

struct Gate {
    proc: Proc,
    dns: SocketAddr,
    tcp: SocketAddr,
    udp: SocketAddr,
    admin: SocketAddr,
}

fn field(line: &str, key: &str) -> Option<String> {
    let i = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let rest = &line[i..];
    Some(rest[..rest.find('"')?].to_string())
}

fn start() -> Gate {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = "[rtsp]\nlisten = \"127.0.0.1:0\"\nudp_rtp_port = 0\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [dns]\nlisten = \"127.0.0.1:0\"\n[[dns.static]]\nname = \"ntp.site.example\"\naddresses = [\"10.0.0.123\"]\n\
         [egress]\ntrap_tcp = \"127.0.0.1:0\"\ntrap_udp = \"127.0.0.1:0\"\nmax_connections = 1024\n\
         [[recorder]]\nname = \"nvr\"\nusername = \"nvr\"\npassword = \"x\"\ndevices = [\"*\"]\n\
         [[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\nrtsp_port = 9\npull = \"on-demand\"\n[device.streams]\nmain = \"/x\"\n";
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
    let (mut dns, mut tcp, mut udp, mut admin) = (None, None, None, None);
    while admin.is_none() {
        let line = lines.next().expect("camgate exited early").expect("log");
        if line.contains("DNS sinkhole running") {
            dns = field(&line, "addr");
        }
        if line.contains("egress trap running") {
            let strip = |s: String| {
                s.trim_start_matches("Some(")
                    .trim_end_matches(')')
                    .to_string()
            };
            tcp = field(&line, "tcp").map(strip);
            udp = field(&line, "udp").map(strip);
        }
        if line.contains("camgate running") {
            admin = field(&line, "admin");
        }
    }
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if l.contains("\"WARN\"") || l.contains("\"ERROR\"") {
                eprintln!("camgate: {l}");
            }
        }
    });
    let p = |s: Option<String>| s.expect("address in the log").parse().expect("address");
    Gate {
        dns: p(dns),
        tcp: p(tcp),
        udp: p(udp),
        admin: p(admin),
        proc: Proc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            _dir: Some(dir),
        },
    }
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut q = Vec::with_capacity(64);
    q.extend(id.to_be_bytes());
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

const NAMES: [&str; 6] = [
    "litedev.hik-connect.com",
    "www.easy4ipcloud.com",
    "ntp.site.example",
    "example.com",
    "time.ys7.com",
    "api.ezvizlife.com",
];

/// Per-load results.
#[derive(Default, Clone)]
struct Load {
    done: u64,
    failed: u64,
    secs: f64,
    lat_us: Vec<u32>,
    camgate_cores: f64,
    machine_cores: f64,
    rss_before: f64,
    rss_peak: f64,
    rss_after: f64,
    counted: u64,
}

impl Load {
    fn rate(&self) -> f64 {
        self.done as f64 / self.secs
    }

    fn pct(&self, p: f64) -> f64 {
        if self.lat_us.is_empty() {
            return f64::NAN;
        }
        let mut v = self.lat_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 * p) as usize).min(v.len() - 1);
        f64::from(v[i]) / 1000.0
    }
}

/// Runs `f` for `secs` while sampling camgate's RSS.
async fn measured<F, Fut>(g: &Gate, secs: u64, f: F) -> Load
where
    F: FnOnce(Arc<AtomicBool>) -> Fut,
    Fut: std::future::Future<Output = Load>,
{
    let pid = g.proc.pid();
    let rss_before = sys::rss_mib(pid);
    let cpu0 = sys::proc_cpu(pid);
    let (busy0, _) = sys::machine_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, peak) = (stop.clone(), peak.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = (sys::rss_mib(pid) * 1024.0) as u64;
                peak.fetch_max(r, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let t0 = Instant::now();
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(secs)).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let mut load = f(stop.clone()).await;
    let _ = timer.await;
    let _ = sampler.await;
    let dt = t0.elapsed().as_secs_f64();
    let (busy1, _) = sys::machine_cpu();
    load.secs = dt;
    load.camgate_cores = (sys::proc_cpu(pid) - cpu0) / dt;
    load.machine_cores = (busy1 - busy0) / dt;
    load.rss_before = rss_before;
    load.rss_peak = peak.load(Ordering::Relaxed) as f64 / 1024.0;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    load.rss_after = sys::rss_mib(pid);
    load
}

async fn dns_load(dns: SocketAddr, stop: Arc<AtomicBool>) -> Load {
    let mut tasks = Vec::new();
    for c in 0..64u16 {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
            sock.connect(dns).await.expect("connect");
            let mut l = Load::default();
            let mut buf = [0u8; 512];
            let mut i = c as usize;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let id = (i as u16).wrapping_mul(31).wrapping_add(c);
                let q = query(id, NAMES[i % NAMES.len()]);
                let t = Instant::now();
                if sock.send(&q).await.is_err() {
                    l.failed += 1;
                    continue;
                }
                match tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await {
                    Ok(Ok(n)) if n >= 12 && buf[..2] == id.to_be_bytes() => {
                        l.done += 1;
                        if l.lat_us.len() < 200_000 {
                            l.lat_us.push(t.elapsed().as_micros() as u32);
                        }
                    }
                    _ => l.failed += 1,
                }
            }
            l
        }));
    }
    let mut total = Load::default();
    for t in tasks {
        let l = t.await.expect("dns task");
        total.done += l.done;
        total.failed += l.failed;
        total.lat_us.extend(l.lat_us);
    }
    total
}

fn client_hello(name: &str) -> Vec<u8> {
    let n = name.as_bytes();
    let mut sni = Vec::new();
    sni.extend(((n.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend((n.len() as u16).to_be_bytes());
    sni.extend(n);
    let mut exts = vec![0, 0];
    exts.extend((sni.len() as u16).to_be_bytes());
    exts.extend(&sni);
    let mut body = vec![3, 3];
    body.extend([9u8; 32]);
    body.push(0);
    body.extend([0, 2, 0x13, 0x01, 1, 0]);
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(&exts);
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(&hs);
    rec
}

async fn tcp_load(trap: SocketAddr, stop: Arc<AtomicBool>) -> Load {
    let hello = Arc::new(client_hello("api.hik-connect.com"));
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (stop, hello) = (stop.clone(), hello.clone());
        tasks.push(tokio::spawn(async move {
            let mut l = Load::default();
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let Ok(Ok(mut s)) =
                    tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(trap)).await
                else {
                    l.failed += 1;
                    continue;
                };
                let _ = s.set_nodelay(true);
                if s.write_all(&hello).await.is_err() {
                    // Reset before the write: still an attempt.
                    l.done += 1;
                    continue;
                }
                match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        l.done += 1;
                        if l.lat_us.len() < 200_000 {
                            l.lat_us.push(t.elapsed().as_micros() as u32);
                        }
                    }
                    _ => l.failed += 1,
                }
            }
            l
        }));
    }
    let mut total = Load::default();
    for t in tasks {
        let l = t.await.expect("tcp task");
        total.done += l.done;
        total.failed += l.failed;
        total.lat_us.extend(l.lat_us);
    }
    total
}

async fn udp_load(trap: SocketAddr, stop: Arc<AtomicBool>) -> Load {
    let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let msg = b"DHGET /probe/p2psrv HTTP/1.1\r\nCSeq: 1\r\n\r\n";
    let mut l = Load::default();
    let per_tick = 20; // 20 datagrams per ms: 20 000/s
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        for _ in 0..per_tick {
            match sock.send_to(msg, trap).await {
                Ok(_) => l.done += 1,
                Err(_) => l.failed += 1,
            }
        }
    }
    l
}

async fn counter(g: &Gate, protocol: &str) -> u64 {
    let mut s = TcpStream::connect(g.admin).await.expect("admin");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("scrape");
    let mut text = String::new();
    s.read_to_string(&mut text).await.expect("scrape");
    text.lines()
        .filter(|l| {
            l.starts_with("camgate_egress_attempts_total{")
                && l.contains(&format!("protocol=\"{protocol}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let o = opts();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let g = start();
        let mut results: Vec<(&str, Vec<Load>)> =
            vec![("dns", vec![]), ("trap-tcp", vec![]), ("trap-udp", vec![])];
        for run in 0..o.runs {
            println!("run {}/{}", run + 1, o.runs);
            let dns = g.dns;
            results[0]
                .1
                .push(measured(&g, o.secs, |stop| dns_load(dns, stop)).await);
            let before = counter(&g, "tcp").await;
            let tcp = g.tcp;
            let mut l = measured(&g, o.secs, |stop| tcp_load(tcp, stop)).await;
            l.counted = counter(&g, "tcp").await - before;
            results[1].1.push(l);
            let before = counter(&g, "udp").await;
            let udp = g.udp;
            let mut l = measured(&g, o.secs, |stop| udp_load(udp, stop)).await;
            l.counted = counter(&g, "udp").await - before;
            results[2].1.push(l);
        }
        let report = report(&o, &results);
        println!("{report}");
        if let Some(p) = &o.out {
            std::fs::write(p, &report).expect("write report");
            println!("written to {}", p.display());
        }
        if o.smoke {
            let dns_ok = results[0].1.iter().all(|l| l.done > 0 && l.failed == 0);
            let tcp_ok = results[1]
                .1
                .iter()
                .all(|l| l.done > 0 && l.counted >= l.done);
            let udp_ok = results[2].1.iter().all(|l| l.done > 0 && l.counted > 0);
            if !(dns_ok && tcp_ok && udp_ok) {
                println!(
                    "egress smoke: 0 passed, 1 failed (dns {dns_ok}, tcp {tcp_ok}, udp {udp_ok})"
                );
                std::process::exit(1);
            }
            println!("egress smoke: 1 passed, 0 failed");
        }
    });
}

fn report(o: &Opts, results: &[(&str, Vec<Load>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Egress benchmark\n\nLatest results of `cargo bench --bench egress -- --out docs/egress-benchmarks.md` \
         (method: `benches/egress.rs`).\n\n- date: {}\n- machine: {}\n- {} runs x {} s per load; the load \
         generator (2 tokio workers) and camgate share the machine; figures are medians of the runs\n",
        Command::new("date")
            .args(["-u", "+%Y-%m-%d"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default(),
        sys::cpu_model(),
        o.runs,
        o.secs
    );
    let get = |name: &str| {
        results
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (dns, tcp, udp) = (get("dns"), get("trap-tcp"), get("trap-udp"));
    let med = |v: &[Load], f: &dyn Fn(&Load) -> f64| median(v.iter().map(f).collect());
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let dns_rate = med(&dns, &|l| l.rate());
    let tcp_rate = med(&tcp, &|l| l.rate());
    let rss_peak = results
        .iter()
        .flat_map(|(_, v)| v.iter().map(|l| l.rss_peak))
        .fold(0.0, f64::max);
    let _ = writeln!(s, "## Targets\n");
    let _ = writeln!(
        s,
        "- {}: 20k DNS queries/s answered: {dns_rate:.0}/s",
        verdict(dns_rate >= 20_000.0)
    );
    let _ = writeln!(
        s,
        "- {}: 5k trapped connections/s classified and closed: {tcp_rate:.0}/s",
        verdict(tcp_rate >= 5_000.0)
    );
    let counted_ok = tcp.iter().all(|l| l.counted >= l.done);
    let _ = writeln!(
        s,
        "- {}: every trapped connection counted: {}",
        verdict(counted_ok),
        tcp.iter()
            .map(|l| format!("{} made / {} counted", l.done, l.counted))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = writeln!(
        s,
        "- {}: bounded memory: camgate peak RSS {rss_peak:.1} MiB",
        verdict(rss_peak < 64.0)
    );
    let _ = writeln!(
        s,
        "\n## Results\n\n| figure | dns | trap-tcp | trap-udp |\n|---|---|---|---|"
    );
    let row = |name: &str, f: &dyn Fn(&Load) -> f64, digits: usize| {
        format!(
            "| {name} | {:.*} | {:.*} | {:.*} |",
            digits,
            med(&dns, f),
            digits,
            med(&tcp, f),
            digits,
            med(&udp, f)
        )
    };
    let lines = [
        row(
            "completed per second (answers / closed connections / datagrams sent)",
            &|l| l.rate(),
            0,
        ),
        row("failed or unanswered", &|l| l.failed as f64, 0),
        row("counted by camgate (attempts)", &|l| l.counted as f64, 0),
        row("latency p50 ms", &|l| l.pct(0.5), 3),
        row("latency p99 ms", &|l| l.pct(0.99), 3),
        row("camgate CPU (cores)", &|l| l.camgate_cores, 3),
        row(
            "machine CPU, all processes (cores)",
            &|l| l.machine_cores,
            3,
        ),
        row("camgate RSS before MiB", &|l| l.rss_before, 1),
        row("camgate RSS peak MiB", &|l| l.rss_peak, 1),
        row("camgate RSS 1.5 s after MiB", &|l| l.rss_after, 1),
    ];
    for l in lines {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(
        s,
        "\nThe DNS names cycle through sinkholed vendor names, a static name and a refused name; the \
         trap-tcp connections each send a ClientHello naming a vendor host (counted as direct_ip) and \
         wait for the reset; trap-udp sends the Dahua P2P greeting at 20 000 datagrams/s (datagrams \
         the kernel drops when camgate falls behind are neither answered nor counted: compare the rows)."
    );
    s
}
