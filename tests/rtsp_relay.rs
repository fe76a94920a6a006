//! End-to-end relay tests on loopback: camgate in front of its simulated
//! camera, a GStreamer RTSP server and a scripted quirky camera, with ffmpeg
//! and retina as recorders.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use support::*;

fn simulated(extra_rtsp: &str, audio: &str) -> String {
    format!(
        "{}\n[[device]]\nid = \"demo\"\nsimulated = true\naudio = \"{audio}\"\n",
        base_config(extra_rtsp)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_camera_decodes_cleanly_over_tcp_and_udp() {
    let app = spawn_app(&simulated("", "pass"), &[]).await;
    let url = app.url("demo/main");
    assert_eq!(ffprobe_streams(&url).await, ["video=h264", "audio=aac"]);
    for transport in ["tcp", "udp"] {
        let (ok, stderr) = ffmpeg_decode(&url, transport, 4).await;
        assert!(
            ok && stderr.trim().is_empty(),
            "ffmpeg over {transport}: {stderr}"
        );
    }
    assert!(app.stop().await, "clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_is_stripped_by_default() {
    let app = spawn_app(&simulated("", "strip"), &[]).await;
    assert_eq!(ffprobe_streams(&app.url("demo/main")).await, ["video=h264"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_recorders_on_one_stream_start_at_a_key_frame() {
    let app = spawn_app(&simulated("", "pass"), &[]).await;
    let url = app.bare_url("demo/main");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let s = retina_play(&url, NVR_USER, NVR_PASS, i % 4 == 3)
                .await
                .unwrap();
            (i, retina_frames(s, Duration::from_secs(15), 50).await)
        }));
    }
    for t in tasks {
        let (i, seen) = t.await.unwrap();
        eprintln!("recorder {i}: {seen:?}");
        assert_eq!(seen.video_frames, 50, "{seen:?}");
        assert_eq!(
            seen.first_was_key,
            Some(true),
            "GOP cache: first frame is a key frame"
        );
        assert!(seen.audio_frames > 20, "{seen:?}");
        assert_eq!(seen.loss, 0, "{seen:?}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_camera_with_digest_and_hikvision_path() {
    let port = free_port();
    let _cam = GstCamera::start(port);
    let config = format!(
        "{}\n[[device]]\nid = \"gate-cam-01\"\nvendor = \"hikvision\"\nhost = \"127.0.0.1\"\nrtsp_port = {port}\n\
         username = \"{CAM_USER}\"\npassword_env = \"CAM_PW\"\naudio = \"pass\"\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config("")
    );
    let app = spawn_app(&config, &[("CAM_PW", CAM_PASS)]).await;
    let url = app.url("gate-cam-01/main");
    assert_eq!(ffprobe_streams(&url).await, ["video=h264", "audio=aac"]);
    for transport in ["tcp", "udp"] {
        let (ok, stderr) = ffmpeg_decode(&url, transport, 4).await;
        assert!(
            ok && stderr.trim().is_empty(),
            "ffmpeg over {transport}: {stderr}"
        );
    }
    // Retina as a strict recorder too.
    let s = retina_play(&app.bare_url("gate-cam-01/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    let seen = retina_frames(s, Duration::from_secs(10), 30).await;
    assert_eq!(seen.video_frames, 30);
    assert_eq!(seen.first_was_key, Some(true));
    app.stop().await;
}

/// H.265, both G.711 laws, and a codec camgate does not relay (Opus: left
/// out with a warning, the rest still works; that camera uses Basic auth,
/// allowed with `auth = "basic"`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codecs_relayed_and_left_out() {
    for (video, audio, expect) in [
        ("h265", "aac", vec!["video=hevc", "audio=aac"]),
        ("h264", "pcmu", vec!["video=h264", "audio=pcm_mulaw"]),
        ("h264", "pcma", vec!["video=h264", "audio=pcm_alaw"]),
        ("h264", "opus", vec!["video=h264"]),
    ] {
        let port = free_port();
        let _cam = GstCamera::start_with(port, video, audio);
        // The Basic camera needs the device's opt-in (tests/camera_credentials.rs).
        let auth = if audio == "opus" {
            "auth = \"basic\"\n"
        } else {
            ""
        };
        let config = format!(
            "{}\n[[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\nrtsp_port = {port}\nusername = \"{CAM_USER}\"\n\
             password_env = \"CAM_PW\"\naudio = \"pass\"\n{auth}[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
            base_config("")
        );
        let app = spawn_app(&config, &[("CAM_PW", CAM_PASS)]).await;
        let url = app.url("cam/main");
        assert_eq!(ffprobe_streams(&url).await, expect, "{video} + {audio}");
        let (ok, stderr) = ffmpeg_decode(&url, "tcp", 3).await;
        assert!(
            ok && stderr.trim().is_empty(),
            "{video} + {audio}: {stderr}"
        );
        app.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_survives_a_camera_restart_without_reconnecting() {
    let port = free_port();
    let mut cam = GstCamera::start(port);
    let config = format!(
        "{}\n[[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\nrtsp_port = {port}\nusername = \"{CAM_USER}\"\n\
         password_env = \"CAM_PW\"\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config("")
    );
    let app = spawn_app(&config, &[("CAM_PW", CAM_PASS)]).await;
    let session = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    // Raw packets: SSRC and sequence must continue across the restart.
    let mut session = Box::pin(session);
    let mut ssrc = None;
    let mut last_seq: Option<u16> = None;
    let mut before = 0;
    let mut after = 0;
    let mut restarted = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while after < 100 {
        let item = tokio::time::timeout_at(deadline, session.next())
            .await
            .expect("recorder kept receiving")
            .expect("session still open")
            .expect("no session error");
        let retina::client::PacketItem::Rtp(p) = item else {
            continue;
        };
        if p.stream_id() != 0 {
            continue;
        }
        assert_eq!(*ssrc.get_or_insert(p.ssrc()), p.ssrc(), "SSRC changed");
        if let Some(l) = last_seq {
            assert_eq!(p.sequence_number(), l.wrapping_add(1), "sequence continues");
        }
        last_seq = Some(p.sequence_number());
        if restarted {
            after += 1;
        } else {
            before += 1;
            if before == 200 {
                cam.stop();
                tokio::time::sleep(Duration::from_secs(2)).await;
                cam = GstCamera::start(port);
                restarted = true;
            }
        }
    }
    drop(cam);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_the_camera_reaches_the_recorder() {
    use support::scripted_camera::*;
    let cam = ScriptedCamera::start().await;
    let config = format!(
        "{}\n[[device]]\nid = \"quirky\"\nvendor = \"hikvision\"\nhost = \"127.0.0.1\"\nrtsp_port = {}\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config(""),
        cam.addr.port()
    );
    let app = spawn_app(&config, &[]).await;

    let sdp = describe_sdp(&app, "quirky/main").await;
    for attr in VENDOR_ATTRS {
        assert!(
            !sdp.contains(attr),
            "vendor attribute {attr} leaked into:\n{sdp}"
        );
    }
    assert!(sdp.contains("a=tool:camgate"));
    assert!(!sdp.contains("10.20.0.11"), "camera address leaked");

    let mut session = Box::pin(
        retina_play(&app.bare_url("quirky/main"), NVR_USER, NVR_PASS, false)
            .await
            .unwrap(),
    );
    let mut n = 0;
    let mut first_seq = None;
    while n < 300 {
        let item = tokio::time::timeout(Duration::from_secs(10), session.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let retina::client::PacketItem::Rtp(p) = item else {
            continue;
        };
        let raw = p.raw();
        assert_eq!(
            raw[0] & 0x30,
            0,
            "padding or header extension reached the recorder"
        );
        assert_ne!(p.ssrc(), CAMERA_SSRC, "camera SSRC reached the recorder");
        first_seq.get_or_insert(p.sequence_number());
        let nal_type = p.payload()[0] & 0x1f;
        assert!(
            nal_type != 24 && nal_type != 25,
            "aggregation packet reached the recorder"
        );
        assert!(p.payload().len() <= 1400);
        n += 1;
    }
    assert_ne!(
        first_seq,
        Some(CAMERA_SEQ0),
        "camera sequence numbers reached the recorder"
    );
    drop(session);

    let (ok, stderr) = ffmpeg_decode(&app.url("quirky/main"), "tcp", 3).await;
    assert!(ok && stderr.trim().is_empty(), "ffmpeg: {stderr}");
    // However many recorders came, the camera was pulled once.
    assert_eq!(cam.connections.load(Ordering::SeqCst), 1);
    app.stop().await;
}

/// GStreamer's `rtspsrc` as a recorder (Digest: camgate offers no Basic to
/// this recorder), playing across several nonce lifetimes: its keepalives
/// inside the session carry the first nonce and must never be refused.
const GST_RECORDER: &str = r#"
import sys, gi
gi.require_version("Gst", "1.0")
from gi.repository import Gst, GLib
Gst.init(None)
url, user, pw, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
p = Gst.parse_launch(
    "rtspsrc name=src protocols=tcp latency=0 ! rtph264depay ! h264parse ! fakesink name=sink signal-handoffs=true sync=false")
src = p.get_by_name("src")
src.set_property("location", url)
src.set_property("user-id", user)
src.set_property("user-pw", pw)
src.set_property("do-rtsp-keep-alive", True)
count = [0]
loop = GLib.MainLoop()
def handoff(sink, buf, pad):
    count[0] += 1
    if count[0] >= want:
        GLib.idle_add(loop.quit)
p.get_by_name("sink").connect("handoff", handoff)
bus = p.get_bus()
bus.add_signal_watch()
def on_msg(bus, msg):
    if msg.type == Gst.MessageType.ERROR:
        err, dbg = msg.parse_error()
        print("ERROR", err.message, dbg, flush=True)
        loop.quit()
bus.connect("message", on_msg)
GLib.timeout_add_seconds(40, loop.quit)
p.set_state(Gst.State.PLAYING)
loop.run()
p.set_state(Gst.State.NULL)
print("FRAMES", count[0], flush=True)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_recorder_plays_with_digest_across_nonce_expiry() {
    let config = format!(
        "{}\n[[device]]\nid = \"demo\"\nsimulated = true\n[auth]\nnonce_lifetime_secs = 1\n",
        base_config("")
    );
    let app = spawn_app(&config, &[]).await;
    let url = app.bare_url("demo/main");
    // 25 fps: 150 frames take 6 s, several nonce lifetimes.
    let out = tokio::process::Command::new("/usr/bin/python3")
        .args(["-c", GST_RECORDER, &url, NVR_USER, NVR_PASS, "150"])
        .output()
        .await
        .expect("/usr/bin/python3 with python3-gi: run the README's test command");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let frames: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("FRAMES "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(frames >= 150, "{stdout}\n{stderr}");
    assert!(!stdout.contains("ERROR"), "{stdout}\n{stderr}");
    let metrics = http(app.admin, "GET", "/metrics", &[]).await.2;
    for reason in ["bad_credentials", "uri_mismatch", "replay", "malformed"] {
        assert!(
            sample(
                &metrics,
                &format!("camgate_auth_failures_total{{protocol=\"rtsp\",reason=\"{reason}\"}}")
            )
            .is_none_or(|v| v == 0.0),
            "{reason}: {metrics}"
        );
    }
    app.stop().await;
}
