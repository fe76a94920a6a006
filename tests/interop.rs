//! Interoperability with sources no one here wrote: GStreamer's RTSP server
//! encoding live with x265 (open GOP, its default) and x264 (open GOP and
//! its closed default), and VLC's own RTSP server output, each relayed to
//! ffmpeg and GStreamer recorders over TCP and UDP, joining at several
//! points of the GOP long after the stream's only IDR. Every recorder must
//! decode with nothing on stderr at `-v error` and no frame missing.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::*;

/// One camera at a time: live encoders and five decoders each would
/// otherwise compete for the CPU and drop frames for reasons not camgate's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd`, waits for its `READY` line.
fn ready(mut cmd: Command, what: &str) -> Proc {
    use std::io::{BufRead, BufReader};
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(line.starts_with("READY"), "{what} did not start: {line:?}");
    Proc(child)
}

/// GStreamer's RTSP server encoding live (tests/support/live_camera.py).
fn live_camera(codec: &str) -> (Proc, u16) {
    require("gst-launch-1.0");
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/live_camera.py");
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.arg(script)
        .args(["--port", &port.to_string(), "--codec", codec]);
    (ready(cmd, &format!("the {codec} GStreamer camera")), port)
}

/// VLC's RTSP server output streaming an H.264 file with B-frames in a
/// loop. VLC refuses to run as root: it runs as `nobody`. Its RTSP output
/// serves RTP over UDP only, so camgate pulls it over UDP.
fn vlc_camera(dir: &Path) -> (Proc, u16) {
    require("cvlc");
    require("setpriv");
    let file = dir.join("vlc.mp4");
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc=size=320x240:rate=25", "-t", "20"])
        .args([
            "-c:v", "libx264", "-g", "25", "-bf", "2", "-pix_fmt", "yuv420p",
        ])
        .arg(&file)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not make VLC's file");
    // nobody must reach the file.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let port = free_port();
    let child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .args(["cvlc", "-I", "dummy", "--no-audio", "--loop", "--sout-keep"])
        .arg(&file)
        .arg("--sout")
        .arg(format!("#rtp{{sdp=rtsp://127.0.0.1:{port}/stream}}"))
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start VLC");
    let proc = Proc(child);
    // VLC prints nothing when it serves: wait for its port.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "VLC did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
    (proc, port)
}

fn device(port: u16, path: &str, extra: &str) -> String {
    format!(
        "[[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\nrtsp_port = {port}\n{extra}\n[device.streams]\nmain = \"{path}\"\n"
    )
}

/// What a recorder decoded.
#[derive(Debug)]
struct Decoded {
    who: String,
    frames: usize,
    /// Frames missing between the first and the last decoded one.
    missing: usize,
    stderr: String,
}

/// ffmpeg as a recorder: decodes `secs` seconds and lists every decoded
/// frame's timestamp (`framecrc`, no frame rate conversion).
async fn ffmpeg(url: String, transport: &'static str, secs: u32) -> Decoded {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-rtsp_transport", transport])
        .args(["-i", &url, "-t", &secs.to_string()])
        .args([
            "-map",
            "0:v",
            "-fps_mode",
            "passthrough",
            "-f",
            "framecrc",
            "-",
        ])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(u64::from(secs) + 30), out)
        .await
        .expect("ffmpeg finished in time")
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    // framecrc: `stream, dts, pts, duration, size, crc` per frame.
    let pts: Vec<i64> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(2)?.trim().parse().ok())
        .collect();
    Decoded {
        who: format!("ffmpeg/{transport}"),
        frames: pts.len(),
        missing: missing(&pts),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Frames missing from a list of timestamps, taking the most common step
/// as one frame.
fn missing(pts: &[i64]) -> usize {
    let mut sorted = pts.to_vec();
    sorted.sort_unstable();
    let steps: Vec<i64> = sorted.windows(2).map(|w| w[1] - w[0]).collect();
    let Some(step) = mode(&steps) else { return 0 };
    if step <= 0 {
        return 0;
    }
    steps
        .iter()
        .map(|s| ((s + step / 2) / step - 1).max(0) as usize)
        .sum()
}

fn mode(v: &[i64]) -> Option<i64> {
    let mut counts = std::collections::HashMap::new();
    for x in v {
        *counts.entry(*x).or_insert(0usize) += 1;
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(x, _)| x)
}

/// GStreamer's `rtspsrc` as a recorder: decodes for `secs` seconds;
/// `fpsdisplaysink` counts rendered and dropped frames.
async fn gstreamer(url: String, protocols: &'static str, secs: u64) -> Decoded {
    let child = tokio::process::Command::new("gst-launch-1.0")
        // `-e`: SIGINT sends end-of-stream, so rtspsrc tears its session
        // down in order instead of racing the pipeline's shutdown.
        .args(["-e", "-v", "rtspsrc"])
        .arg(format!("location={url}"))
        .arg(format!("protocols={protocols}"))
        .args(["latency=300", "!", "decodebin", "!"])
        .args([
            "fpsdisplaysink",
            "video-sink=fakesink",
            "text-overlay=false",
        ])
        .args(["signal-fps-measurements=true", "sync=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap_or(0) as i32;
    let waited = tokio::spawn(child.wait_with_output());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    // SIGINT: gst-launch stops the pipeline and exits.
    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let out = tokio::time::timeout(Duration::from_secs(20), waited)
        .await
        .expect("gst-launch ended")
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `last-message = rendered: 98, dropped: 0, current: 25.01, average: 24.99`
    let last = stdout
        .lines()
        .filter_map(|l| l.split("rendered: ").nth(1))
        .next_back()
        .unwrap_or_default();
    let number = |text: Option<&str>| -> usize {
        text.and_then(|v| v.split(',').next()?.trim().parse().ok())
            .unwrap_or(0)
    };
    let rendered = number(Some(last));
    let dropped = number(last.split("dropped: ").nth(1));
    let stderr: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(stdout.lines())
        .filter(|l| l.contains("ERROR") || l.contains("WARNING"))
        // gst-launch's own notice that SIGINT stopped it.
        .filter(|l| !l.contains("handling interrupt"))
        .collect::<Vec<_>>()
        .join("\n");
    Decoded {
        who: format!("gstreamer/{protocols}"),
        frames: rendered,
        missing: dropped,
        stderr,
    }
}

/// Relays the camera at `port` through camgate; recorders join 3 s into
/// the stream (long after its IDR with `recorder_max_lag_secs = 2`), at
/// several points of the 1 s GOP, over TCP and UDP, and each must decode
/// every frame cleanly.
async fn relay_to_every_recorder(port: u16, path: &str, camera_extra: &str) {
    require("ffmpeg");
    let config = format!(
        "{}\n{}",
        base_config("recorder_max_lag_secs = 2"),
        device(port, path, camera_extra)
    );
    let app = spawn_app(&config, &[]).await;
    // The camera is pulled always-on: let it run past the lag limit.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let url = app.url("cam/main");
    let mut runs = Vec::new();
    let joins = [
        (0, "ffmpeg", "tcp"),
        (330, "gstreamer", "tcp"),
        (570, "ffmpeg", "udp"),
        (810, "gstreamer", "udp"),
        (1290, "ffmpeg", "tcp"),
    ];
    for (delay_ms, who, transport) in joins {
        let url = url.clone();
        runs.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if who == "ffmpeg" {
                ffmpeg(url, transport, 5).await
            } else {
                gstreamer(url, transport, 6).await
            }
        }));
    }
    for r in runs {
        let d = r.await.unwrap();
        assert!(d.stderr.trim().is_empty(), "{} wrote: {}", d.who, d.stderr);
        assert!(d.frames >= 75, "{} decoded only {} frames", d.who, d.frames);
        assert_eq!(d.missing, 0, "{} is missing frames: {d:?}", d.who);
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_x265_open_gop_camera() {
    let _serial = SERIAL.lock().await;
    let (_cam, port) = live_camera("h265");
    relay_to_every_recorder(port, "/Streaming/Channels/101", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_x264_open_gop_camera() {
    let _serial = SERIAL.lock().await;
    let (_cam, port) = live_camera("h264-open");
    relay_to_every_recorder(port, "/Streaming/Channels/101", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_x264_closed_gop_camera() {
    let _serial = SERIAL.lock().await;
    let (_cam, port) = live_camera("h264");
    relay_to_every_recorder(port, "/Streaming/Channels/101", "").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vlc_rtsp_server_output() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (_cam, port) = vlc_camera(dir.path());
    relay_to_every_recorder(port, "/stream", "rtsp_transport = \"udp\"").await;
}
