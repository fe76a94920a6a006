//! The processes under test: the camera, camgate, the GStreamer relay.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::reader::{PASS, USER};
pub use crate::sys::*;

pub const BIN: &str = env!("CARGO_BIN_EXE_camgate");

fn config(device_block: &str) -> String {
    format!(
        "[rtsp]\nlisten = \"127.0.0.1:0\"\nudp_rtp_port = 0\nmax_connections = 8192\n[admin]\nlisten = \"127.0.0.1:0\"\n\
         [[recorder]]\nname = \"bench\"\nusername = \"{USER}\"\npassword = \"{PASS}\"\ncleartext_auth = true\ndevices = [\"*\"]\n{device_block}"
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
