//! Inspection end to end: SEI user data (x264's settings) and filler never
//! leave camgate, HRD timing does, and the stream still decodes; a
//! resolution change mid-stream is an event while recorders keep playing;
//! fingerprinting through camgate's own probes flags a vendor mismatch;
//! `camgate inventory` in each format, from a running camgate and from its
//! own probes.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::fake_camera::FakeCamera;
use support::*;

/// An H.264 Annex B clip from x264 (which writes its settings as an SEI
/// user-data-unregistered message into the first frame).
fn x264_clip(dir: &Path, name: &str, size: &str, secs: u32) -> PathBuf {
    require("ffmpeg");
    let path = dir.join(name);
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={size}:rate=25"))
        .args([
            "-t",
            &secs.to_string(),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
        ])
        .args(["-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "h264"])
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not make {name}");
    path
}

/// ffmpeg's `trace_headers` output for `input` (a file or RTSP URL), `secs` long.
async fn trace_headers(input: &str, secs: u32) -> String {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-rtsp_transport", "tcp"])
        .args(["-i", input, "-t", &secs.to_string()])
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(u64::from(secs) + 30), out)
        .await
        .expect("ffmpeg finished")
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn trace_file(path: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(path)
        .args(["-c", "copy", "-bsf:v", "trace_headers", "-f", "null", "-"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn scrape(app: &TestApp) -> String {
    http(app.admin, "GET", "/metrics", &[]).await.2
}

#[tokio::test]
async fn sei_user_data_is_stripped_and_the_stream_still_decodes() {
    let dir = tempfile::tempdir().unwrap();
    // 2 s loop: the first frame, with x264's SEI, comes round every 2 s.
    let clip = x264_clip(dir.path(), "x264.h264", "320x180", 2);
    let input = trace_file(&clip);
    assert!(
        input.contains("User Data Unregistered"),
        "the source clip carries x264's SEI user data"
    );
    let cfg = format!(
        "{}\n[[device]]\nid = \"cam\"\nsimulated = true\nclip = \"x264.h264\"\n[device.streams]\nmain = \"/x\"\n",
        base_config("")
    );
    let app = spawn_app_in(dir, &cfg, &[]).await;
    let url = app.url("cam/main");
    let relayed = trace_headers(&url, 5).await;
    assert!(
        relayed.contains("Sequence Parameter Set"),
        "ffmpeg traced the relayed stream: {relayed}"
    );
    assert!(
        !relayed.contains("User Data Unregistered")
            && !relayed.contains("last_payload_type_byte                               00000101"),
        "no SEI user data leaves camgate"
    );
    let (ok, err) = ffmpeg_decode(&url, "tcp", 4).await;
    assert!(ok && err.trim().is_empty(), "decodes cleanly: {err}");
    let m = scrape(&app).await;
    let stripped = sample(
        &m,
        "camgate_inspect_stripped_bytes_total{device=\"cam\",stream=\"main\",kind=\"sei_user_data\"}",
    )
    .unwrap();
    assert!(stripped > 0.0, "stripped bytes counted");
    // And with sei_user_data = "pass", it goes through.
    assert!(app.stop().await);
    let dir = tempfile::tempdir().unwrap();
    x264_clip(dir.path(), "x264.h264", "320x180", 2);
    let cfg = cfg.replace(
        "simulated = true\n",
        "simulated = true\nsei_user_data = \"pass\"\n",
    );
    let app = spawn_app_in(dir, &cfg, &[]).await;
    let relayed = trace_headers(&app.url("cam/main"), 5).await;
    assert!(
        relayed.contains("User Data Unregistered"),
        "passed when configured"
    );
    assert!(app.stop().await);
}

/// A constant-bit-rate x264 stream pads with filler NAL units (type 12)
/// and carries HRD timing SEI: the filler goes (counted), the timing stays,
/// and the stream still decodes.
#[tokio::test]
async fn filler_is_stripped_and_hrd_timing_kept() {
    require("ffmpeg");
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x180:rate=25")
        .args(["-t", "2", "-c:v", "libx264", "-preset", "ultrafast"])
        .args([
            "-b:v", "2M", "-minrate", "2M", "-maxrate", "2M", "-bufsize", "1M",
        ])
        .args(["-x264-params", "nal-hrd=cbr:filler=1"])
        .args(["-g", "25", "-bf", "0", "-pix_fmt", "yuv420p", "-f", "h264"])
        .arg(dir.path().join("cbr.h264"))
        .status()
        .unwrap();
    assert!(st.success(), "ffmpeg could not make the CBR clip");
    let input = trace_file(&dir.path().join("cbr.h264"));
    for what in ["Filler Data", "Buffering Period", "Picture Timing"] {
        assert!(input.contains(what), "the source clip carries {what}");
    }
    let cfg = format!(
        "{}\n[[device]]\nid = \"cam\"\nsimulated = true\nclip = \"cbr.h264\"\n[device.streams]\nmain = \"/x\"\n",
        base_config("")
    );
    let app = spawn_app_in(dir, &cfg, &[]).await;
    let url = app.url("cam/main");
    let relayed = trace_headers(&url, 4).await;
    assert!(
        relayed.contains("Picture Timing") && relayed.contains("Buffering Period"),
        "HRD timing SEI kept: {relayed}"
    );
    assert!(
        !relayed.contains("Filler Data") && !relayed.contains("User Data Unregistered"),
        "no filler or user data leaves camgate"
    );
    let (ok, err) = ffmpeg_decode(&url, "tcp", 3).await;
    assert!(ok && err.trim().is_empty(), "decodes cleanly: {err}");
    let m = scrape(&app).await;
    let filler = sample(
        &m,
        "camgate_inspect_stripped_bytes_total{device=\"cam\",stream=\"main\",kind=\"filler\"}",
    )
    .unwrap();
    assert!(filler > 0.0, "filler bytes counted");
    assert!(app.stop().await);
}

#[tokio::test]
async fn resolution_change_is_an_event_and_recorders_keep_playing() {
    let dir = tempfile::tempdir().unwrap();
    let a = x264_clip(dir.path(), "small.h264", "320x180", 2);
    let b = x264_clip(dir.path(), "large.h264", "640x360", 2);
    // One clip that switches source mid-loop: 2 s small, 2 s large.
    let mut both = std::fs::read(&a).unwrap();
    both.extend(std::fs::read(&b).unwrap());
    std::fs::write(dir.path().join("switch.h264"), both).unwrap();
    let cfg = format!(
        "{}\n[[device]]\nid = \"cam\"\nsimulated = true\nclip = \"switch.h264\"\n[device.streams]\nmain = \"/x\"\n",
        base_config("")
    );
    let app = spawn_app_in(dir, &cfg, &[]).await;
    // Seven seconds cross at least two switches.
    let (ok, err) = ffmpeg_decode(&app.url("cam/main"), "tcp", 7).await;
    assert!(ok, "recorder kept playing across the change: {err}");
    let m = scrape(&app).await;
    let n = sample(
        &m,
        "camgate_inspect_events_total{device=\"cam\",stream=\"main\",event=\"resolution_change\"}",
    )
    .unwrap();
    assert!(n >= 1.0, "resolution change counted: {n}");
    let (_, _, body) = http(app.admin, "GET", "/api/v1/devices/cam", &[]).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let events = v["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["event"] == "resolution_change"
            && (e["detail"] == "320x180 -> 640x360" || e["detail"] == "640x360 -> 320x180")),
        "{events:?}"
    );
    assert!(app.stop().await);
}

fn camera_config(admin: u16, http_port: u16, rtsp_port: u16) -> String {
    format!(
        r#"
[rtsp]
listen = "127.0.0.1:0"
udp_rtp_port = 0
[admin]
listen = "127.0.0.1:{admin}"
[inspect]
probe_timeout_secs = 2
[[recorder]]
name = "nvr"
username = "{NVR_USER}"
password = "{NVR_PASS}"
devices = ["*"]
[[device]]
id = "gate"
vendor = "dahua"
host = "127.0.0.1"
http_port = {http_port}
rtsp_port = {rtsp_port}
username = "{}"
password = "{}"
pull = "on-demand"
removal_deadline = "2027-03-31"
[device.streams]
main = "/Streaming/Channels/101"
"#,
        fake_camera::CAM_USER,
        fake_camera::CAM_PASS,
    )
}

async fn inventory(config: &Path, format: &str) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
        .args(["inventory", "--config"])
        .arg(config)
        .args(["--format", format])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_mismatch_and_inventory_from_probes_and_api() {
    let cam = FakeCamera::start("127.0.0.1".parse().unwrap(), 554).await;
    let closed_rtsp = free_port();
    let admin = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("camgate.toml");
    std::fs::write(&file, camera_config(admin, cam.addr.port(), closed_rtsp)).unwrap();

    // No camgate running: the inventory probes the camera itself.
    let json = inventory(&file, "json").await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["source"], "probe", "{json}");
    let d = &v["devices"][0];
    assert_eq!(d["id"], "gate");
    assert_eq!(d["vendor"], "dahua");
    assert_eq!(d["detected_vendor"], "hikvision", "{json}");
    assert_eq!(d["model"], "DS-2CD2043G0-I");
    assert_eq!(d["removal_deadline"], "2027-03-31");
    assert!(
        d["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with("onvif_manufacturer")),
        "{json}"
    );
    // The ONVIF request was signed with the camera's own credentials.
    assert!(
        cam.requests()
            .iter()
            .any(|r| r.target == "/onvif/device_service"
                && r.body.contains("GetDeviceInformation")
                && r.body.contains("UsernameToken"))
    );

    // A running camgate fingerprints the device, flags the mismatch, and
    // the inventory reads its API.
    let text = std::fs::read_to_string(&file).unwrap();
    let app = spawn_app(&text, &[]).await;
    let mut m = String::new();
    for _ in 0..100 {
        m = scrape(&app).await;
        if sample(&m, "camgate_device_vendor_mismatch{device=\"gate\"}") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sample(&m, "camgate_device_vendor_mismatch{device=\"gate\"}"),
        Some(1.0),
        "{m}"
    );
    assert!(
        m.contains("camgate_device_info{device=\"gate\",vendor=\"dahua\",detected_vendor=\"hikvision\",model=\"DS-2CD2043G0-I\",firmware=\"\"} 1"),
        "{m}"
    );
    assert_eq!(
        m.matches("camgate_device_info{device=\"gate\"").count(),
        1,
        "one series per device"
    );
    let table = inventory(&file, "table").await;
    let lines: Vec<_> = table.lines().collect();
    assert!(
        lines[0].starts_with("DEADLINE") && lines[0].contains("DETECTED"),
        "{table}"
    );
    assert!(
        lines[1].starts_with("2027-03-31")
            && lines[1].contains("gate")
            && lines[1].contains("hikvision")
            && lines[1].contains("DS-2CD2043G0-I"),
        "{table}"
    );
    assert!(table.contains("source: running camgate"), "{table}");
    let csv = inventory(&file, "csv").await;
    let rows: Vec<_> = csv.split("\r\n").collect();
    assert!(rows[0].starts_with("removal_deadline,days_left,device,vendor,detected_vendor"));
    assert!(
        rows[1].starts_with("2027-03-31,") && rows[1].contains(",gate,dahua,hikvision,"),
        "{csv}"
    );
    assert!(app.stop().await);
}
