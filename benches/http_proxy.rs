//! The camera API proxy's cost: an allowed GET of a 200 KB snapshot
//! through camgate against the same GET straight to the camera, measured
//! with `wrk` on loopback.
//!
//! Three processes share the machine: a fake camera (this binary re-run
//! with `--camera-role`; Digest like a Hikvision, Basic accepted so `wrk`
//! can ask it directly), camgate (release build, shipped policy, the
//! recorder authenticating with Basic (the bench recorder has
//! `cleartext_auth = true`: wrk cannot do Digest), camgate answering the camera's
//! Digest challenge) and `wrk`. Runs alternate direct / camgate so drift
//! hits both. Two loads:
//!
//! - `c1`: one connection, requests back to back: the latency camgate adds
//!   to each request (p50, p99 of each run; the median run is reported).
//! - `c16`: sixteen connections: throughput when the machine is saturated.
//!
//! ```sh
//! cargo bench --bench http_proxy                               # 3 runs x 10 s per load and target
//! cargo bench --bench http_proxy -- --out docs/http-benchmarks.md
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke
//! test: one 1 s run per target at c1, failing if any request failed.
//! Needs `wrk` (`apt-get install wrk`; `scripts/test.sh` installs it).

#[path = "common/sys.rs"]
mod sys;

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use base64::Engine as _;
use sys::Proc;

const BIN: &str = env!("CARGO_BIN_EXE_camgate");
const CAM_USER: &str = "admin";
const CAM_PASS: &str = "cam-secret";
const NVR_USER: &str = "bench";
const NVR_PASS: &str = "bench-pass";
const SNAPSHOT: &str = "/ISAPI/Streaming/channels/101/picture";
const SNAPSHOT_BYTES: usize = 200 * 1024;

struct Opts {
    smoke: bool,
    runs: usize,
    secs: u64,
    loads: Vec<usize>,
    out: Option<PathBuf>,
}

fn opts() -> Opts {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = !args.iter().any(|a| a == "--bench");
    let mut o = Opts {
        smoke,
        runs: if smoke { 1 } else { 3 },
        secs: if smoke { 1 } else { 10 },
        loads: if smoke { vec![1] } else { vec![1, 16] },
        out: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--runs" => o.runs = val().parse().expect("--runs N"),
            "--secs" => o.secs = val().parse().expect("--secs N"),
            "--connections" => {
                o.loads = val()
                    .split(',')
                    .map(|c| c.parse().expect("--connections 1,16"))
                    .collect()
            }
            "--out" => o.out = Some(PathBuf::from(val())),
            _ => {}
        }
    }
    o
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("--camera-role") {
        camera::run();
        return;
    }
    let o = opts();
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("http_proxy bench: `wrk` is not installed (apt-get install wrk)");
        std::process::exit(1);
    }
    let cam = start_camera();
    let gate = start_camgate(cam.addr);
    let direct_url = format!("http://{}{SNAPSHOT}", cam.addr);
    let gate_url = format!("http://{}/cam{SNAPSHOT}", gate.addr);
    let direct_auth = basic(CAM_USER, CAM_PASS);
    let gate_auth = basic(NVR_USER, NVR_PASS);

    // Both answer the same bytes before anything is measured.
    for (url, auth) in [(&direct_url, &direct_auth), (&gate_url, &gate_auth)] {
        let r = wrk(url, auth, 1, 1);
        assert!(
            r.requests > 0 && r.errors == 0,
            "warm-up against {url} failed: {r:?}"
        );
    }

    let mut results: Vec<(usize, Vec<Run>, Vec<Run>)> = Vec::new();
    for &c in &o.loads {
        let (mut direct, mut via) = (Vec::new(), Vec::new());
        for i in 0..o.runs {
            println!("c{c} run {}/{}", i + 1, o.runs);
            direct.push(measure(&direct_url, &direct_auth, c, o.secs, &cam, None));
            via.push(measure(&gate_url, &gate_auth, c, o.secs, &cam, Some(&gate)));
        }
        results.push((c, direct, via));
    }

    let report = report(&o, &results);
    println!("{report}");
    if let Some(path) = &o.out {
        std::fs::write(path, &report).expect("write the report");
        println!("written to {}", path.display());
    }
    let failed = results
        .iter()
        .flat_map(|(_, d, v)| d.iter().chain(v))
        .any(|r| r.wrk.requests == 0 || r.wrk.errors > 0);
    if o.smoke {
        if failed {
            println!("http_proxy smoke: 0 passed, 1 failed");
            std::process::exit(1);
        }
        println!("http_proxy smoke: 1 passed, 0 failed");
    }
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn start_camera() -> Proc {
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .arg("--camera-role")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the fake camera");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("camera address");
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("fake camera did not start: {line:?}"));
    Proc {
        child,
        addr,
        _dir: None,
    }
}

fn start_camgate(camera: SocketAddr) -> Proc {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy");
    let config = format!(
        "[rtsp]\nlisten = \"127.0.0.1:0\"\nudp_rtp_port = 0\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [http]\nlisten = \"127.0.0.1:0\"\npolicy = [\"{policy}/common.toml\", \"{policy}/onvif.toml\", \
         \"{policy}/hikvision.toml\", \"{policy}/dahua.toml\"]\n\
         [[recorder]]\nname = \"bench\"\nusername = \"{NVR_USER}\"\npassword_env = \"BENCH_NVR_PW\"\ncleartext_auth = true\ndevices = [\"*\"]\n\
         [[device]]\nid = \"cam\"\nvendor = \"hikvision\"\nhost = \"{}\"\nhttp_port = {}\nusername = \"{CAM_USER}\"\n\
         password_env = \"BENCH_CAM_PW\"\npull = \"on-demand\"\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        camera.ip(),
        camera.port()
    );
    let file = dir.path().join("camgate.toml");
    std::fs::write(&file, config).expect("write the config");
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
        .env("BENCH_NVR_PW", NVR_PASS)
        .env("BENCH_CAM_PW", CAM_PASS)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start camgate");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("camgate exited before its API proxy ran")
            .expect("camgate log");
        if line.contains("camera API proxy running") {
            // listeners = "[127.0.0.1:PORT]"
            let i = line.find("\"listeners\":\"[").expect("listeners field") + 14;
            let rest = &line[i..];
            break rest[..rest.find([']', ',']).expect("end")]
                .parse()
                .expect("listener address");
        }
    };
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            if l.contains("\"WARN\"") || l.contains("\"ERROR\"") {
                eprintln!("camgate: {l}");
            }
        }
    });
    Proc {
        child,
        addr,
        _dir: Some(dir),
    }
}

/// What `wrk --latency` printed.
#[derive(Debug, Default, Clone)]
struct Wrk {
    requests: u64,
    errors: u64,
    rps: f64,
    /// Transfer rate, MB/s (wrk's unit, MiB).
    mib_per_sec: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
}

fn wrk(url: &str, auth: &str, connections: usize, secs: u64) -> Wrk {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{secs}s"),
            "--timeout",
            "5s",
            "--latency",
            "-H",
            &format!("Authorization: {auth}"),
            url,
        ])
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    parse_wrk(&text)
}

fn parse_wrk(text: &str) -> Wrk {
    let mut w = Wrk::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["50%", v] => w.p50_ms = millis(v),
            ["90%", v] => w.p90_ms = millis(v),
            ["99%", v] => w.p99_ms = millis(v),
            ["Requests/sec:", v] => w.rps = v.parse().unwrap_or(0.0),
            ["Transfer/sec:", v] => w.mib_per_sec = mib(v),
            [n, "requests", "in", ..] => w.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.errors += n.parse().unwrap_or(0),
            ["Socket", "errors:", rest @ ..] => {
                // connect 0, read 0, write 0, timeout 0
                w.errors += rest
                    .iter()
                    .filter_map(|x| x.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    w
}

fn millis(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => f64::NAN,
    }
}

fn mib(v: &str) -> f64 {
    let split = v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().unwrap_or(f64::NAN);
    match unit {
        "B" => n / 1048576.0,
        "KB" => n / 1024.0,
        "MB" => n,
        "GB" => n * 1024.0,
        _ => f64::NAN,
    }
}

/// One wrk run with the CPU each process used.
#[derive(Debug, Clone)]
struct Run {
    wrk: Wrk,
    camera_cores: f64,
    camgate_cores: f64,
    machine_cores: f64,
    load1: f64,
}

fn measure(
    url: &str,
    auth: &str,
    connections: usize,
    secs: u64,
    cam: &Proc,
    gate: Option<&Proc>,
) -> Run {
    let load1 = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN);
    let cam0 = sys::proc_cpu(cam.pid());
    let gate0 = gate.map(|g| sys::proc_cpu(g.pid()));
    let (busy0, _) = sys::machine_cpu();
    let t0 = Instant::now();
    let w = wrk(url, auth, connections, secs);
    let dt = t0.elapsed().as_secs_f64();
    let (busy1, _) = sys::machine_cpu();
    Run {
        wrk: w,
        camera_cores: (sys::proc_cpu(cam.pid()) - cam0) / dt,
        camgate_cores: gate
            .zip(gate0)
            .map_or(0.0, |(g, c0)| (sys::proc_cpu(g.pid()) - c0) / dt),
        machine_cores: (busy1 - busy0) / dt,
        load1,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// A report row: its name and how to get it from a run.
type Row<'a> = (&'a str, &'a dyn Fn(&Run) -> f64);

fn report(o: &Opts, results: &[(usize, Vec<Run>, Vec<Run>)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HTTP proxy benchmark\n\nLatest results of `cargo bench --bench http_proxy -- --out docs/http-benchmarks.md` \
         (method: `benches/http_proxy.rs`).\n\n- date: {}\n- machine: {}\n- GET of a {} KB snapshot \
         (`{SNAPSHOT}`), allowed by the shipped policy; camgate authenticates the recorder (Basic) and answers the \
         camera's Digest challenge; camera connections kept alive\n- {} runs x {} s per load and target, \
         alternating direct / camgate; wrk, camera and camgate share the machine; figures are medians of the runs\n",
        today(),
        sys::cpu_model(),
        SNAPSHOT_BYTES / 1024,
        o.runs,
        o.secs,
    );
    let mut targets = Vec::new();
    for (c, direct, via) in results {
        let col = |runs: &[Run], f: &dyn Fn(&Run) -> f64| median(runs.iter().map(f).collect());
        let rows: [Row; 12] = [
            ("requests/s", &|r| r.wrk.rps),
            ("MiB/s", &|r| r.wrk.mib_per_sec),
            ("latency p50 ms", &|r| r.wrk.p50_ms),
            ("latency p90 ms", &|r| r.wrk.p90_ms),
            ("latency p99 ms", &|r| r.wrk.p99_ms),
            ("failed requests", &|r| r.wrk.errors as f64),
            ("camera CPU (cores)", &|r| r.camera_cores),
            ("camgate CPU (cores)", &|r| r.camgate_cores),
            ("machine CPU, all processes (cores)", &|r| r.machine_cores),
            ("camgate CPU per request (us)", &|r| {
                1e6 * r.camgate_cores / r.wrk.rps
            }),
            ("machine CPU per request (us)", &|r| {
                1e6 * r.machine_cores / r.wrk.rps
            }),
            ("load average (1 min) before the run", &|r| r.load1),
        ];
        let _ = writeln!(
            s,
            "## {c} connection{}\n\n| figure | direct | via camgate | difference |\n|---|---|---|---|",
            if *c == 1 { "" } else { "s" }
        );
        for (name, f) in rows {
            let (d, v) = (col(direct, f), col(via, f));
            let diff = if name.starts_with("requests") || name.starts_with("MiB") {
                format!("{:.0}%", 100.0 * v / d)
            } else if name.starts_with("latency") {
                format!("+{:.3} ms", v - d)
            } else {
                "-".into()
            };
            let _ = writeln!(s, "| {name} | {d:.3} | {v:.3} | {diff} |");
        }
        s.push('\n');
        // Added latency per run pair, so a single noisy run is visible.
        let added: Vec<String> = direct
            .iter()
            .zip(via)
            .map(|(d, v)| format!("{:+.3}", v.wrk.p99_ms - d.wrk.p99_ms))
            .collect();
        let _ = writeln!(s, "p99 added per run pair (ms): {}\n", added.join(", "));
        let per_req = |runs: &[Run]| col(runs, &|r| 1e6 * r.machine_cores / r.wrk.rps);
        let _ = writeln!(
            s,
            "Machine CPU per request: {:.0} us direct, {:.0} us via camgate; on {} cores that caps \
             the proxied path at about {:.0} requests/s.\n",
            per_req(direct),
            per_req(via),
            cores(),
            cores() as f64 * 1e6 / per_req(via),
        );
        let added_p99 = col(via, &|r| r.wrk.p99_ms) - col(direct, &|r| r.wrk.p99_ms);
        let share = col(via, &|r| r.wrk.rps) / col(direct, &|r| r.wrk.rps);
        if *c == 1 {
            targets.push(format!(
                "{}: camgate adds under 1 ms at p99 (1 connection): {added_p99:+.3} ms",
                verdict(added_p99 < 1.0)
            ));
        }
        targets.push(format!(
            "{}: over 70% of direct throughput ({c} connection{}): {:.0}%",
            verdict(share > 0.7),
            if *c == 1 { "" } else { "s" },
            share * 100.0
        ));
    }
    let mut head = String::from("## Targets\n\n");
    for t in targets {
        let _ = writeln!(head, "- {t}");
    }
    let split = s.find("## ").unwrap_or(s.len());
    s.insert_str(split, &format!("{head}\n"));
    s
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

fn today() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The fake camera: one endpoint, a 200 KB snapshot, behind Digest (the
/// way Hikvision challenges) with Basic also accepted.
mod camera {
    use std::convert::Infallible;

    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper::{Request, Response, StatusCode};
    use hyper_util::rt::TokioIo;

    use super::{CAM_PASS, CAM_USER, SNAPSHOT, SNAPSHOT_BYTES};

    const NONCE: &str = "benchcameranonce0123456789";

    pub fn run() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            println!("listening {}", l.local_addr().expect("address"));
            let body = Bytes::from(
                (0..SNAPSHOT_BYTES)
                    .map(|i| (i * 7 % 251) as u8)
                    .collect::<Vec<u8>>(),
            );
            loop {
                let Ok((s, _)) = l.accept().await else {
                    continue;
                };
                let _ = s.set_nodelay(true);
                let body = body.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let body = body.clone();
                        async move { Ok::<_, Infallible>(answer(&req, body)) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(s), svc)
                        .await;
                });
            }
        });
    }

    fn answer(req: &Request<hyper::body::Incoming>, body: Bytes) -> Response<Full<Bytes>> {
        let auth = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let ok = auth == super::basic(CAM_USER, CAM_PASS) || digest_ok(auth, req.method().as_str());
        let mut r = Response::builder();
        if !ok {
            return r
                .status(StatusCode::UNAUTHORIZED)
                .header(
                    "WWW-Authenticate",
                    format!("Digest realm=\"camgate\", qop=\"auth\", nonce=\"{NONCE}\""),
                )
                .body(Full::new(Bytes::new()))
                .expect("response");
        }
        if req.uri().path() != SNAPSHOT {
            r = r.status(StatusCode::NOT_FOUND);
            return r.body(Full::new(Bytes::new())).expect("response");
        }
        r.header("Content-Type", "image/jpeg")
            .body(Full::new(body))
            .expect("response")
    }

    fn digest_ok(auth: &str, method: &str) -> bool {
        let Some(rest) = auth.strip_prefix("Digest ") else {
            return false;
        };
        let get = |k: &str| {
            rest.split(',')
                .find_map(|p| p.trim().strip_prefix(&format!("{k}=")))
                .map(|v| v.trim_matches('"').to_string())
        };
        let (Some(user), Some(uri), Some(resp)) = (get("username"), get("uri"), get("response"))
        else {
            return false;
        };
        let qop = get("qop");
        let (nc, cnonce) = (
            get("nc").unwrap_or_default(),
            get("cnonce").unwrap_or_default(),
        );
        let expected = camgate::auth::digest_response(
            &user,
            &camgate::config::Secret::new(CAM_PASS),
            method,
            &uri,
            NONCE,
            qop.as_deref().map(|q| (q, nc.as_str(), cnonce.as_str())),
        );
        user == CAM_USER && expected == resp
    }
}
