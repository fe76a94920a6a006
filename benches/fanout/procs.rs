//! The processes under test (camera, camgate, the GStreamer relay) and what
//! /proc says about them.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::reader::{PASS, USER};

pub const BIN: &str = env!("CARGO_BIN_EXE_camgate");

/// A child process, stopped (SIGTERM, then SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: Option<tempfile::TempDir>,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(device_block: &str) -> String {
    format!(
        "[rtsp]\nlisten = \"127.0.0.1:0\"\nudp_rtp_port = 0\nmax_connections = 8192\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[recorder]]\nname = \"bench\"\nusername = \"{USER}\"\npassword = \"{PASS}\"\ndevices = [\"*\"]\n{device_block}"
    )
}

fn start_camgate(config: &str) -> Proc {
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
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("camgate exited early").unwrap();
        if let Some(i) = line.find("\"rtsp\":\"") {
            let rest = &line[i + 8..];
            break rest[..rest.find('"').unwrap()].parse().unwrap();
        }
    };
    // Keep draining stderr so the child never blocks on a full pipe; show
    // its warnings.
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

/// The camera: a camgate serving `n` simulated devices `cam0..` looping
/// `clip` (or the bundled ~4 Mbit/s clip), video only.
pub fn camera(n: usize, clip: Option<&Path>) -> Proc {
    let mut devices = String::new();
    for i in 0..n {
        devices.push_str(&format!("[[device]]\nid = \"cam{i}\"\nsimulated = true\n"));
        if let Some(c) = clip {
            devices.push_str(&format!("clip = \"{}\"\n", c.display()));
        }
    }
    start_camgate(&config(&devices))
}

/// camgate under test, pulling each of the camera's `n` devices.
pub fn camgate(camera: SocketAddr, n: usize) -> Proc {
    let mut devices = String::new();
    for i in 0..n {
        devices.push_str(&format!(
            "[[device]]\nid = \"cam{i}\"\nhost = \"127.0.0.1\"\nrtsp_port = {}\nusername = \"{USER}\"\npassword = \"{PASS}\"\n[device.streams]\nmain = \"/cam{i}/main\"\n",
            camera.port()
        ));
    }
    start_camgate(&config(&devices))
}

/// GStreamer's RTSP server relaying each of the camera's `n` devices.
pub fn gstreamer(camera: SocketAddr, n: usize) -> Proc {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/gst_relay.py");
    let mut child = Command::new("/usr/bin/python3")
        .arg(script)
        .args(["--port", &port.to_string(), "--count", &n.to_string()])
        .arg("--camera")
        .arg(format!("rtsp://{USER}:{PASS}@{camera}/cam{{i}}/main"))
        .stdout(Stdio::piped())
        .spawn()
        .expect(
            "start the GStreamer relay (apt-get install python3-gi gir1.2-gst-rtsp-server-1.0)",
        );
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("READY"),
        "GStreamer relay did not start: {line:?}"
    );
    Proc {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: None,
    }
}

/// utime + stime of a process, in seconds.
pub fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (busy, total) seconds of the whole machine, all cores, from /proc/stat.
pub fn machine_cpu() -> (f64, f64) {
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
    ((total - idle) / clk_tck(), total / clk_tck())
}

/// Resident memory in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

/// Open file descriptors.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// "N x MODEL" from /proc/cpuinfo.
pub fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let n = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{n} x {model}")
}

/// Makes an H.264 clip whose key frames are 400 to 800 KB (1920x1080 25 fps,
/// 2 s GOP, ~5 Mbit/s), for the key-frame integrity scenario.
pub fn big_keyframe_clip(dir: &Path) -> PathBuf {
    let path = dir.join("bigkey.h264");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1920x1080:rate=25,noise=alls=25:allf=t+u")
        .args([
            "-t", "8", "-c:v", "libx264", "-preset", "veryfast", "-bf", "0", "-g", "50",
        ])
        .args(["-keyint_min", "50", "-x264-params", "scenecut=0:ipratio=6"])
        .args([
            "-b:v", "4M", "-maxrate", "8M", "-bufsize", "8M", "-pix_fmt", "yuv420p", "-f", "h264",
        ])
        .arg(&path)
        .status()
        .expect("ffmpeg");
    assert!(st.success(), "ffmpeg could not make the key-frame clip");
    path
}
