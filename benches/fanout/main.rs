//! Fan-out benchmark: camgate against the GStreamer relay people build
//! today, side by side in one run on one machine.
//!
//! A camera process (camgate serving its simulated camera: ~4 Mbit/s H.264
//! 720p25, 2 s GOP) feeds both proxies: camgate, and GStreamer's RTSP server
//! with one shared `rtspsrc ! rtph264depay ! rtph264pay` media per camera
//! (`benches/gst_relay.py`). For each scenario, readers in this process
//! play from one proxy, then the other, alternating several times. Readers
//! count bytes, RTP sequence gaps, frames, intact key frames and the first
//! complete key frame; a reference reader on the camera itself gives each
//! frame's arrival time, so a relay's added latency is measured on the same
//! clock.
//!
//! ```text
//! cargo bench --bench fanout                                 # every scenario
//! cargo bench --bench fanout -- --scenario tcp-200,churn     # some
//! cargo bench --bench fanout -- --out docs/benchmarks.md     # and write the report
//! ```
//! Options: `--repeats N` (3), `--secs N` (10), `--warmup N` (3),
//! `--no-gstreamer`. Without `--bench` (as `cargo test --all-targets` runs
//! it) it is a smoke test: K = 5 for 2 s against both proxies, failing if a
//! camgate reader lost a packet or got nothing.

mod procs;
mod reader;
#[path = "../common/sys.rs"]
mod sys;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reader::{Stats, Transport};
use tokio_util::sync::CancellationToken;

struct Opts {
    smoke: bool,
    scenarios: Vec<String>,
    repeats: usize,
    secs: u64,
    warmup: u64,
    gstreamer: bool,
    out: Option<PathBuf>,
}

const ALL: &[&str] = &[
    "tcp-1",
    "tcp-50",
    "tcp-200",
    "tcp-1000",
    "udp-50",
    "udp-200",
    "cams-100",
    "cams-300",
    "ingest-300",
    "churn",
    "bigkey-50",
];

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut o = Opts {
        smoke,
        scenarios: if smoke {
            vec!["tcp-5".into()]
        } else {
            ALL.iter().map(|s| s.to_string()).collect()
        },
        repeats: if smoke { 1 } else { 3 },
        secs: if smoke { 2 } else { 10 },
        warmup: if smoke { 1 } else { 3 },
        gstreamer: true,
        out: None,
    };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let mut val = || {
            it.next()
                .cloned()
                .unwrap_or_else(|| panic!("{a} needs a value"))
        };
        match a.as_str() {
            "--scenario" => o.scenarios = val().split(',').map(str::to_string).collect(),
            "--repeats" => o.repeats = val().parse().expect("--repeats N"),
            "--secs" => o.secs = val().parse().expect("--secs N"),
            "--warmup" => o.warmup = val().parse().expect("--warmup N"),
            "--out" => o.out = Some(PathBuf::from(val())),
            "--no-gstreamer" => o.gstreamer = false,
            _ => {}
        }
    }
    o
}

/// What one scenario runs.
#[derive(Clone, Debug)]
struct Scenario {
    name: String,
    cameras: usize,
    readers_per_camera: usize,
    transport: Transport,
    churn: bool,
    big_keys: bool,
}

fn scenario(name: &str) -> Scenario {
    let (kind, n) = name.split_once('-').unwrap_or((name, "0"));
    let n: usize = n.parse().unwrap_or(0);
    let base = Scenario {
        name: name.to_string(),
        cameras: 1,
        readers_per_camera: n,
        transport: Transport::Tcp,
        churn: false,
        big_keys: false,
    };
    match kind {
        "tcp" => base,
        "udp" => Scenario {
            transport: Transport::Udp,
            ..base
        },
        "cams" => Scenario {
            cameras: n,
            readers_per_camera: 2,
            ..base
        },
        "ingest" => Scenario {
            cameras: n,
            readers_per_camera: 0,
            ..base
        },
        "churn" => Scenario {
            readers_per_camera: 50,
            churn: true,
            ..base
        },
        "bigkey" => Scenario {
            big_keys: true,
            ..base
        },
        _ => panic!("unknown scenario {name} (known: {ALL:?})"),
    }
}

/// One run of one proxy.
#[derive(Clone, Debug, Default)]
struct Run {
    cores: f64,
    machine_cores: f64,
    s_per_gbit: f64,
    gbps: f64,
    min_mbps: f64,
    med_mbps: f64,
    lost: u64,
    ttff_p50: f64,
    ttff_p99: f64,
    lat_p50: f64,
    lat_p99: f64,
    rss_peak: f64,
    max_key_kb: f64,
    damaged_keys: u64,
    failed: u64,
    starved: usize,
    // churn only
    rss_before: f64,
    rss_after: f64,
    fds_before: usize,
    fds_after: usize,
    churned: usize,
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Added latency: each sampled reader's frame arrival minus the reference
/// reader's arrival of the same frame (matched by slice bytes, nearest in
/// time since the clip loops).
fn latencies(reference: &Stats, sampled: &[Arc<Stats>], since: Instant) -> Vec<f64> {
    let refs = reference.arrivals.as_ref().unwrap().lock().unwrap();
    let mut by_key: HashMap<[u8; 8], Vec<Instant>> = HashMap::new();
    for (k, t) in refs.iter() {
        by_key.entry(*k).or_default().push(*t);
    }
    let mut out = Vec::new();
    for s in sampled {
        let arrivals = s.arrivals.as_ref().unwrap().lock().unwrap();
        // Frames from the GOP cache at connect are old by design: only live
        // frames of the measurement window count.
        for (k, t) in arrivals.iter().filter(|(_, t)| *t >= since) {
            let Some(cands) = by_key.get(k) else { continue };
            let best = cands
                .iter()
                .map(|r| if t >= r { ms(*t - *r) } else { -ms(*r - *t) })
                .min_by(|a, b| a.abs().total_cmp(&b.abs()));
            if let Some(d) = best
                && d.abs() < 1000.0
            {
                out.push(d);
            }
        }
    }
    out
}

async fn measure(proxy: &procs::Proc, camera: &procs::Proc, sc: &Scenario, o: &Opts) -> Run {
    let pid = proxy.pid();
    let stop = CancellationToken::new();
    let mut stats = Vec::new();
    let total = sc.cameras * sc.readers_per_camera;
    // Latency: up to 10 readers of cam0 sample arrivals, against a
    // reference reader on the camera itself.
    let sample_every = (sc.readers_per_camera / 10).max(1);
    let reference = Arc::new(Stats::new(true));
    // The reference and the sampled readers run on their own thread, so the
    // bulk readers' work in this process does not delay their clocks.
    let (probe_tx, mut probe_rx) =
        tokio::sync::mpsc::unbounded_channel::<(SocketAddr, String, Arc<Stats>)>();
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                while let Some((addr, path, st)) = probe_rx.recv().await {
                    tokio::spawn(reader::run(addr, path, Transport::Tcp, st, stop.clone()));
                }
                stop.cancelled().await;
            });
        });
    }
    probe_tx
        .send((camera.addr, "cam0/main".into(), reference.clone()))
        .unwrap();
    let mut sampled = Vec::new();
    for cam in 0..sc.cameras {
        for j in 0..sc.readers_per_camera {
            let sample = cam == 0 && j % sample_every == 0 && sampled.len() < 10;
            let s = Arc::new(Stats::new(sample));
            if sample && sc.transport == Transport::Tcp {
                sampled.push(s.clone());
                probe_tx
                    .send((proxy.addr, format!("cam{cam}/main"), s.clone()))
                    .unwrap();
            } else {
                tokio::spawn(reader::run(
                    proxy.addr,
                    format!("cam{cam}/main"),
                    sc.transport,
                    s.clone(),
                    stop.clone(),
                ));
            }
            stats.push(s);
            // Recorders arrive over a moment, not in one instant.
            if total > 50 {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(o.warmup)).await;
    let mut run = Run::default();
    if sc.churn {
        tokio::time::sleep(Duration::from_secs(1)).await;
        run.rss_before = procs::rss_mib(pid);
        run.fds_before = procs::fd_count(pid);
    }
    let b0: Vec<u64> = stats
        .iter()
        .map(|s| s.bytes.load(Ordering::Relaxed))
        .collect();
    let l0: u64 = stats.iter().map(|s| s.lost.load(Ordering::Relaxed)).sum();
    let d0: u64 = stats
        .iter()
        .map(|s| s.damaged_key_frames.load(Ordering::Relaxed))
        .sum();
    let (c0, m0, t0) = (procs::proc_cpu(pid), procs::machine_cpu(), Instant::now());
    // Churn: 100 readers per second come and go, each staying 500 ms.
    let churn_stop = CancellationToken::new();
    let churn_stats: Arc<std::sync::Mutex<Vec<Arc<Stats>>>> = Default::default();
    if sc.churn {
        let (addr, cs, cstop) = (proxy.addr, churn_stats.clone(), churn_stop.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            loop {
                tokio::select! {
                    _ = cstop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let s = Arc::new(Stats::new(false));
                cs.lock().unwrap().push(s.clone());
                let mine = cstop.child_token();
                tokio::spawn(reader::run(
                    addr,
                    "cam0/main".into(),
                    Transport::Tcp,
                    s,
                    mine.clone(),
                ));
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    mine.cancel();
                });
            }
        });
    }
    let mut rss_peak: f64 = 0.0;
    let end = Instant::now() + Duration::from_secs(o.secs);
    while Instant::now() < end {
        rss_peak = rss_peak.max(procs::rss_mib(pid));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (c1, m1, wall) = (
        procs::proc_cpu(pid),
        procs::machine_cpu(),
        t0.elapsed().as_secs_f64(),
    );
    let b1: Vec<u64> = stats
        .iter()
        .map(|s| s.bytes.load(Ordering::Relaxed))
        .collect();
    let l1: u64 = stats.iter().map(|s| s.lost.load(Ordering::Relaxed)).sum();
    let d1: u64 = stats
        .iter()
        .map(|s| s.damaged_key_frames.load(Ordering::Relaxed))
        .sum();
    churn_stop.cancel();
    drop(probe_tx);
    let lat = latencies(&reference, &sampled, t0);
    if sc.churn {
        // The steady readers are still there: back to the baseline?
        tokio::time::sleep(Duration::from_secs(3)).await;
        run.rss_after = procs::rss_mib(pid);
        run.fds_after = procs::fd_count(pid);
    }
    stop.cancel();

    let mbps: Vec<f64> = b0
        .iter()
        .zip(&b1)
        .map(|(a, b)| (b - a) as f64 * 8.0 / wall / 1e6)
        .collect();
    let bits: f64 = b0.iter().zip(&b1).map(|(a, b)| (b - a) as f64 * 8.0).sum();
    let mut all = stats.clone();
    all.extend(churn_stats.lock().unwrap().iter().cloned());
    let ttff: Vec<f64> = all
        .iter()
        .map(|s| s.first_key_us.load(Ordering::Relaxed))
        .filter(|v| *v > 0)
        .map(|v| v as f64 / 1000.0)
        .collect();
    run.cores = (c1 - c0) / wall;
    run.machine_cores = (m1.0 - m0.0) / wall;
    run.gbps = bits / wall / 1e9;
    run.s_per_gbit = if bits > 0.0 {
        (c1 - c0) / (bits / 1e9)
    } else {
        f64::NAN
    };
    run.min_mbps = pct(&mbps, 0.0);
    run.med_mbps = pct(&mbps, 0.5);
    run.starved = mbps.iter().filter(|m| **m < 0.01).count();
    run.lost = l1 - l0;
    run.damaged_keys = d1 - d0;
    run.ttff_p50 = pct(&ttff, 0.5);
    run.ttff_p99 = pct(&ttff, 0.99);
    run.lat_p50 = pct(&lat, 0.5);
    run.lat_p99 = pct(&lat, 0.99);
    run.rss_peak = rss_peak;
    run.max_key_kb = stats
        .iter()
        .map(|s| s.max_key_bytes.load(Ordering::Relaxed))
        .max()
        .unwrap_or(0) as f64
        / 1000.0;
    run.failed = all
        .iter()
        .map(|s| s.setup_failed.load(Ordering::Relaxed))
        .sum();
    run.churned = churn_stats.lock().unwrap().len();
    // Let the proxy notice the readers left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    run
}

/// The median of a figure over repeated runs.
fn median(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    pct(&runs.iter().map(f).collect::<Vec<_>>(), 0.5)
}

fn fmt(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.digits$}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "-".into()
    } else {
        format!("{:.2}", a / b)
    }
}

type Figure = (&'static str, usize, fn(&Run) -> f64);

const FIGURES: &[Figure] = &[
    ("proxy CPU (cores)", 3, |r| r.cores),
    ("machine CPU, all processes (cores)", 2, |r| r.machine_cores),
    ("proxy CPU s per delivered Gbit", 3, |r| r.s_per_gbit),
    ("delivered Gbit/s", 3, |r| r.gbps),
    ("per reader Mbit/s, min", 2, |r| r.min_mbps),
    ("per reader Mbit/s, median", 2, |r| r.med_mbps),
    ("readers with no data", 0, |r| r.starved as f64),
    ("lost packets", 0, |r| r.lost as f64),
    ("first decodable frame ms, p50", 1, |r| r.ttff_p50),
    ("first decodable frame ms, p99", 1, |r| r.ttff_p99),
    ("added latency ms, p50", 2, |r| r.lat_p50),
    ("added latency ms, p99", 2, |r| r.lat_p99),
    ("peak RSS MiB", 1, |r| r.rss_peak),
    ("largest intact key frame KB", 0, |r| r.max_key_kb),
    ("damaged key frames", 0, |r| r.damaged_keys as f64),
    ("failed setups", 0, |r| r.failed as f64),
];

const CHURN_FIGURES: &[Figure] = &[
    ("readers churned", 0, |r| r.churned as f64),
    ("RSS MiB before churn (50 steady readers)", 1, |r| {
        r.rss_before
    }),
    ("RSS MiB 3 s after churn (50 steady readers)", 1, |r| {
        r.rss_after
    }),
    ("open fds before churn", 0, |r| r.fds_before as f64),
    ("open fds 3 s after churn", 0, |r| r.fds_after as f64),
];

fn table(sc: &Scenario, cg: &[Run], gst: &[Run]) -> String {
    let mut s = String::new();
    let readers = sc.cameras * sc.readers_per_camera;
    let _ = writeln!(
        s,
        "### {} — {} camera(s) x {} reader(s) = {} {:?} readers{}{}\n",
        sc.name,
        sc.cameras,
        sc.readers_per_camera,
        readers,
        sc.transport,
        if sc.churn {
            ", plus 100 readers/s connecting and leaving"
        } else {
            ""
        },
        if sc.big_keys {
            ", 1080p clip with 400-800 KB key frames"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "| figure (median of {} runs) | camgate | GStreamer relay | camgate / GStreamer |",
        cg.len()
    );
    let _ = writeln!(s, "|---|---|---|---|");
    if readers == 0 {
        let per = median(cg, |r| r.cores) * 1000.0 / sc.cameras as f64;
        let _ = writeln!(
            s,
            "| proxy CPU (cores) | {} | - | - |",
            fmt(median(cg, |r| r.cores), 3)
        );
        let _ = writeln!(
            s,
            "| ingest CPU ms per second per camera | {} | - | - |",
            fmt(per, 2)
        );
        let _ = writeln!(
            s,
            "| peak RSS MiB | {} | - | - |",
            fmt(median(cg, |r| r.rss_peak), 1)
        );
        return s;
    }
    let figs = FIGURES
        .iter()
        .chain(if sc.churn { CHURN_FIGURES } else { &[] });
    for (name, digits, f) in figs {
        let a = median(cg, f);
        let b = if gst.is_empty() {
            f64::NAN
        } else {
            median(gst, f)
        };
        let _ = writeln!(
            s,
            "| {name} | {} | {} | {} |",
            fmt(a, *digits),
            fmt(b, *digits),
            ratio(a, b)
        );
    }
    s
}

/// Checks the issue's targets; returns lines of "met"/"MISSED".
fn targets(results: &[(Scenario, Vec<Run>, Vec<Run>)]) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |ok: bool, what: String| {
        out.push(format!("- {} {what}", if ok { "met:" } else { "MISSED:" }))
    };
    for (sc, cg, gst) in results {
        let m = |f: fn(&Run) -> f64| median(cg, f);
        match sc.name.as_str() {
            "tcp-200" => {
                let a = m(|r| r.s_per_gbit);
                let b = if gst.is_empty() {
                    f64::NAN
                } else {
                    median(gst, |r| r.s_per_gbit)
                };
                check(
                    a * 4.0 <= b,
                    format!(
                        "K=200 TCP CPU per Gbit at most 1/4 of GStreamer's: {} vs {} ({})",
                        fmt(a, 3),
                        fmt(b, 3),
                        ratio(a, b)
                    ),
                );
                check(
                    m(|r| r.rss_peak) < 150.0,
                    format!("K=200 RSS under 150 MiB: {}", fmt(m(|r| r.rss_peak), 1)),
                );
            }
            "tcp-1000" => {
                check(
                    m(|r| r.min_mbps) > 0.95 * m(|r| r.med_mbps)
                        && m(|r| r.lost as f64) == 0.0
                        && m(|r| r.starved as f64) == 0.0,
                    format!(
                        "K=1000 every reader at full bitrate, no loss: min {} / median {} Mbit/s, {} lost",
                        fmt(m(|r| r.min_mbps), 2),
                        fmt(m(|r| r.med_mbps), 2),
                        m(|r| r.lost as f64)
                    ),
                );
                check(
                    m(|r| r.cores) < 0.5,
                    format!("K=1000 under 0.5 core: {}", fmt(m(|r| r.cores), 3)),
                );
                check(
                    m(|r| r.rss_peak) < 400.0,
                    format!("K=1000 RSS under 400 MiB: {}", fmt(m(|r| r.rss_peak), 1)),
                );
                check(
                    m(|r| r.lat_p99) < 5.0,
                    format!(
                        "K=1000 added latency p99 under 5 ms: {}",
                        fmt(m(|r| r.lat_p99), 2)
                    ),
                );
            }
            "cams-300" => check(
                m(|r| r.cores) < 1.5,
                format!(
                    "300 cameras x 2 readers under 1.5 cores: {}",
                    fmt(m(|r| r.cores), 3)
                ),
            ),
            "ingest-300" => {
                let per = m(|r| r.cores) * 1000.0 / sc.cameras as f64;
                check(
                    per <= 3.0,
                    format!(
                        "ingest at most 3 ms CPU per second per 4 Mbit/s camera: {} ms",
                        fmt(per, 2)
                    ),
                );
            }
            "bigkey-50" => check(
                m(|r| r.damaged_keys as f64) == 0.0
                    && m(|r| r.lost as f64) == 0.0
                    && m(|r| r.max_key_kb) >= 400.0,
                format!(
                    "key frames of {} KB intact at every reader ({} damaged, {} lost)",
                    fmt(m(|r| r.max_key_kb), 0),
                    m(|r| r.damaged_keys as f64),
                    m(|r| r.lost as f64)
                ),
            ),
            "churn" => check(
                m(|r| r.rss_after) <= m(|r| r.rss_before) * 1.1 + 2.0
                    && m(|r| r.fds_after as f64) <= m(|r| r.fds_before as f64),
                format!(
                    "churn leaves no leak: RSS {} -> {} MiB, fds {} -> {}",
                    fmt(m(|r| r.rss_before), 1),
                    fmt(m(|r| r.rss_after), 1),
                    m(|r| r.fds_before as f64),
                    m(|r| r.fds_after as f64)
                ),
            ),
            _ => {}
        }
        if sc.transport == Transport::Tcp
            && !sc.churn
            && !sc.big_keys
            && sc.cameras == 1
            && sc.readers_per_camera >= 50
        {
            check(
                m(|r| r.ttff_p50) < 50.0,
                format!(
                    "{} first decodable frame p50 under 50 ms: {}",
                    sc.name,
                    fmt(m(|r| r.ttff_p50), 1)
                ),
            );
            check(
                m(|r| r.lat_p99) < 5.0,
                format!(
                    "{} added latency p99 under 5 ms: {}",
                    sc.name,
                    fmt(m(|r| r.lat_p99), 2)
                ),
            );
        }
    }
    out
}

fn main() {
    let o = opts();
    let _ = camgate::sys::raise_nofile_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let workdir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    let mut report = String::new();
    rt.block_on(async {
        for name in &o.scenarios {
            let sc = scenario(name);
            eprintln!("scenario {}...", sc.name);
            let clip = sc
                .big_keys
                .then(|| procs::big_keyframe_clip(workdir.path()));
            let camera = procs::camera(sc.cameras, clip.as_deref());
            let cg = procs::camgate(camera.addr, sc.cameras);
            // The GStreamer relay pulls a camera only while someone watches:
            // an ingest-only run would measure nothing of it.
            let gst = (o.gstreamer && sc.readers_per_camera > 0)
                .then(|| procs::gstreamer(camera.addr, sc.cameras));
            eprintln!(
                "  pids: camera {} camgate {} gstreamer {:?}",
                camera.pid(),
                cg.pid(),
                gst.as_ref().map(|g| g.pid())
            );
            // Let camgate connect and fill its GOP caches.
            tokio::time::sleep(Duration::from_secs(if sc.cameras > 10 { 5 } else { 2 })).await;
            let (mut cg_runs, mut gst_runs) = (Vec::new(), Vec::new());
            for r in 0..o.repeats {
                cg_runs.push(measure(&cg, &camera, &sc, &o).await);
                eprintln!(
                    "  run {r} camgate: {:?}",
                    cg_runs
                        .last()
                        .map(|x| (x.cores, x.gbps, x.min_mbps, x.lost))
                );
                if let Some(g) = &gst {
                    gst_runs.push(measure(g, &camera, &sc, &o).await);
                    eprintln!(
                        "  run {r} gstreamer: {:?}",
                        gst_runs
                            .last()
                            .map(|x| (x.cores, x.gbps, x.min_mbps, x.lost))
                    );
                }
            }
            let t = table(&sc, &cg_runs, &gst_runs);
            println!("{t}");
            report.push_str(&t);
            report.push('\n');
            results.push((sc, cg_runs, gst_runs));
        }
    });
    let checks = targets(&results);
    if !checks.is_empty() {
        println!("Targets:\n{}", checks.join("\n"));
    }
    if let Some(out) = &o.out {
        let date = std::process::Command::new("date")
            .arg("-u")
            .arg("+%Y-%m-%d")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let doc = format!(
            "# Benchmarks\n\nLatest results of `cargo bench --bench fanout -- --out docs/benchmarks.md` \
             (see `benches/fanout/main.rs` for the method).\n\n- date: {date}\n- machine: {}, kernel {}\n- {} runs per proxy per scenario, \
             alternating camgate / GStreamer; {} s measured after {} s warm-up\n- camera: camgate's simulated camera in its own process \
             (bundled clip: H.264 Main 1280x720 25 fps, 2 s GOP, ~4.1 Mbit/s, audio stripped), pulled over RTSP/TCP by each proxy\n\
             - GStreamer relay: `benches/gst_relay.py` (gst-rtsp-server, shared media, `rtspsrc ! rtph264depay ! rtph264pay`)\n\
             - CPU from /proc/<pid>/stat (utime + stime) of the proxy, and /proc/stat for the whole machine (readers and camera included);\n  \
             on loopback the receivers' TCP work is partly charged to the sending proxy\n\n## Targets\n\n{}\n\n## Results\n\n{report}",
            procs::cpu_model(),
            kernel.trim(),
            o.repeats,
            o.secs,
            o.warmup,
            checks.join("\n"),
        );
        std::fs::write(out, doc).expect("write the report");
        eprintln!("wrote {}", out.display());
    }
    if o.smoke {
        let (_, cg, _) = &results[0];
        let bad = cg
            .iter()
            .any(|r| r.lost > 0 || r.starved > 0 || r.failed > 0 || r.min_mbps < 1.0);
        if bad {
            eprintln!("fanout smoke: camgate readers lost packets or got nothing");
            println!("fanout smoke: 0 passed, 1 failed");
            std::process::exit(1);
        }
        println!("fanout smoke: 1 passed, 0 failed");
    }
}
