//! Camera-side behaviour seen from a recorder: cameras without parameter
//! sets in their SDP, tracks camgate does not relay, on-demand pulling, slow
//! recorders, and RTCP sender reports.

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use support::scripted_camera::{Options, ScriptedCamera};
use support::*;
use tokio::io::AsyncReadExt;

/// A scripted camera with `opts` and camgate pulling it as device `cam`
/// (`extra_rtsp` goes into `[rtsp]`).
async fn relayed(opts: Options, extra_rtsp: &str) -> (ScriptedCamera, TestApp) {
    let cam = ScriptedCamera::start_with(opts).await;
    let config = format!(
        "{}\n{}",
        base_config(extra_rtsp),
        camera_device(cam.addr.port(), "")
    );
    let app = spawn_app(&config, &[]).await;
    (cam, app)
}

fn camera_device(port: u16, extra: &str) -> String {
    format!(
        "[[device]]\nid = \"cam\"\nhost = \"127.0.0.1\"\nrtsp_port = {port}\n{extra}\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_sets_only_in_band_and_unrelayed_tracks() {
    let cam = ScriptedCamera::start_with(Options {
        sprop: false,
        extra_tracks: true,
        metadata: true,
        ..Options::default()
    })
    .await;
    let config = format!(
        "{}\n{}",
        base_config(""),
        camera_device(cam.addr.port(), "audio = \"pass\"")
    );
    let app = spawn_app(&config, &[]).await;
    // DESCRIBE waits for the first in-band SPS/PPS, then announces them.
    let sdp = describe_sdp(&app, "cam/main").await;
    assert!(sdp.contains("sprop-parameter-sets="), "{sdp}");
    assert_eq!(
        sdp.matches("m=").count(),
        1,
        "G.726 and ONVIF metadata left out:\n{sdp}"
    );
    assert_eq!(ffprobe_streams(&app.url("cam/main")).await, ["video=h264"]);
    let (ok, stderr) = ffmpeg_decode(&app.url("cam/main"), "tcp", 2).await;
    assert!(ok && stderr.trim().is_empty(), "{stderr}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onvif_metadata_relayed_when_passed() {
    let cam = ScriptedCamera::start_with(Options {
        sprop: true,
        extra_tracks: true,
        metadata: true,
        ..Options::default()
    })
    .await;
    let config = format!(
        "{}\n{}",
        base_config(""),
        camera_device(cam.addr.port(), "metadata = \"pass\"")
    );
    let app = spawn_app(&config, &[]).await;
    let sdp = describe_sdp(&app, "cam/main").await;
    assert_eq!(sdp.matches("m=").count(), 2, "{sdp}");
    assert!(
        sdp.contains("m=application 0 RTP/AVP 97\r\na=rtpmap:97 vnd.onvif.metadata/90000"),
        "{sdp}"
    );
    assert!(!sdp.contains("107"), "camera payload type leaked: {sdp}");
    // Once video flows, a recorder gets the camera's events, re-packetized.
    // (retina requires every track's rtptime in RTP-Info, so this also
    // shows camgate gives one for a track with nothing queued.)
    for _ in 0..100 {
        let (_, _, m) = http(app.admin, "GET", "/metrics", &[]).await;
        let n = |kind: &str| {
            sample(
                &m,
                &format!(
                    "camgate_stream_frames_total{{device=\"cam\",stream=\"main\",kind=\"{kind}\"}}"
                ),
            )
            .unwrap_or(0.0)
        };
        if n("key") >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    let mut d = s.demuxed().unwrap();
    let mut docs = 0;
    let mut video = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while docs < 2 {
        let item = tokio::time::timeout_at(deadline, futures::StreamExt::next(&mut d))
            .await
            .expect("metadata arrives")
            .unwrap()
            .unwrap();
        match item {
            retina::codec::CodecItem::MessageFrame(f) => {
                let doc = String::from_utf8_lossy(f.data()).into_owned();
                assert!(
                    doc.starts_with("<?xml") && doc.ends_with("</tt:MetadataStream>"),
                    "{doc}"
                );
                assert!(doc.contains("CellMotionDetector/Motion"));
                docs += 1;
            }
            retina::codec::CodecItem::VideoFrame(_) => video += 1,
            _ => {}
        }
    }
    assert!(video > 0);
    let (_, _, m) = http(app.admin, "GET", "/metrics", &[]).await;
    assert!(
        sample(
            &m,
            "camgate_stream_frames_total{device=\"cam\",stream=\"main\",kind=\"metadata\"}"
        )
        .is_some_and(|n| n >= 2.0),
        "{m}"
    );
    let (_, _, api) = http(app.admin, "GET", "/api/v1/devices/cam", &[]).await;
    let v: serde_json::Value = serde_json::from_str(&api).unwrap();
    assert_eq!(v["metadata"], "pass");
    assert_eq!(v["streams"][0]["tracks"][1]["kind"], "metadata", "{api}");
    assert_eq!(v["streams"][0]["tracks"][1]["codec"], "vnd.onvif.metadata");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_connects_at_the_first_recorder_and_leaves_after_the_last() {
    let cam = ScriptedCamera::start().await;
    let config = format!(
        "{}\n{}",
        base_config("").replace("[camera]\n", "[camera]\non_demand_close_secs = 1\n"),
        camera_device(cam.addr.port(), "pull = \"on-demand\"")
    );
    let app = spawn_app(&config, &[]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        cam.connections.load(Ordering::SeqCst),
        0,
        "not pulled before a recorder comes"
    );

    let s = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    let seen = retina_frames(s, Duration::from_secs(10), 25).await;
    assert_eq!(seen.video_frames, 25);
    assert_eq!(cam.active.load(Ordering::SeqCst), 1);
    // The recorder left (its session was dropped): the camera goes after 1 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cam.active.load(Ordering::SeqCst) > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "camera still connected"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // And comes back for the next one.
    let s = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    assert_eq!(
        retina_frames(s, Duration::from_secs(10), 10)
            .await
            .video_frames,
        10
    );
    assert_eq!(cam.connections.load(Ordering::SeqCst), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_recorder_is_disconnected_and_others_play_on() {
    let config = format!(
        "{}\n[[device]]\nid = \"demo\"\nsimulated = true\n",
        base_config("recorder_max_lag_secs = 2\nrecorder_queue_bytes = 1048576")
    );
    let app = spawn_app(&config, &[]).await;
    let url = app.bare_url("demo/main");
    let good = tokio::spawn(async move {
        let s = retina_play(&url, NVR_USER, NVR_PASS, false).await.unwrap();
        retina_frames(s, Duration::from_secs(60), 500).await
    });
    // A recorder that plays and then never reads.
    let mut stalled = raw_play(&app, "demo/main", 1, Some(4096)).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    // camgate gave up on it: draining its socket ends in EOF.
    let mut sink = vec![0u8; 1 << 16];
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stalled.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the stalled recorder's connection was not closed"
    );
    let seen = good.await.unwrap();
    assert_eq!(
        seen.video_frames, 500,
        "the other recorder was not slowed: {seen:?}"
    );
    assert_eq!(seen.loss, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sender_reports_map_wall_clock_to_rtp_time() {
    let config = format!(
        "{}\n[[device]]\nid = \"demo\"\nsimulated = true\n",
        base_config("")
    );
    let app = spawn_app(&config, &[]).await;
    let mut s = raw_play(&app, "demo/main", 1, None).await;
    let mut last_rtp: Option<(u32, SystemTime)> = None;
    let mut reports = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(12);
    while reports < 2 {
        let (ch, p) = tokio::time::timeout_at(deadline, read_interleaved(&mut s))
            .await
            .expect("two sender reports within 12 s")
            .unwrap();
        let now = SystemTime::now();
        if ch == 0 {
            let ts = u32::from_be_bytes(p[4..8].try_into().unwrap());
            // Key frames arrive in bursts from the GOP cache; use live frames.
            last_rtp = Some((ts, now));
            continue;
        }
        assert_eq!(ch, 1);
        assert_eq!(p[1], 200, "a sender report");
        let ntp_secs = u32::from_be_bytes(p[8..12].try_into().unwrap()) as u64;
        let ntp_frac = u32::from_be_bytes(p[12..16].try_into().unwrap()) as u64;
        let unix = (ntp_secs - 2_208_988_800) as f64 + ntp_frac as f64 / 4_294_967_296.0;
        let now_unix = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (unix - now_unix).abs() < 1.0,
            "SR wall clock {unix} vs now {now_unix}"
        );
        let sr_rtp = u32::from_be_bytes(p[16..20].try_into().unwrap());
        let (ts, at) = last_rtp.expect("media before the report");
        let since = SystemTime::UNIX_EPOCH + Duration::from_secs_f64(unix);
        let elapsed = since
            .duration_since(at)
            .map(|d| d.as_secs_f64())
            .unwrap_or_else(|e| -e.duration().as_secs_f64());
        let expected = ts.wrapping_add((elapsed * 90_000.0) as i64 as u32);
        let diff = sr_rtp.wrapping_sub(expected) as i32;
        assert!(diff.abs() < 90_000 / 5, "SR RTP time off by {diff} ticks");
        reports += 1;
    }
    app.stop().await;
}

/// A camera whose video stops while its RTCP goes on (a hung encoder, or a
/// hostile camera feeding one access unit that never ends): only video
/// progress keeps the session, so camgate ends it, reconnects with
/// backoff, counts it, and a recorder that was playing is not left with a
/// live-looking stream that sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_whose_video_stops_is_reconnected_though_rtcp_goes_on() {
    // base_config sets [camera] read_timeout_secs = 5.
    let (_cam, app) = relayed(
        Options {
            stall_after: Some(25),
            ..Options::default()
        },
        "",
    )
    .await;
    await_reconnects(&app, "cam", "timeout", 1.0, Duration::from_secs(25)).await;
    app.stop().await;
}

/// A camera that ends its stream with RTCP BYE and then keeps the
/// connection open sending nothing: camgate takes the BYE as the end of
/// the session and reconnects at once, without waiting for the read
/// timeout, counted as `reason="closed"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtcp_bye_ends_the_camera_session() {
    // base_config sets [camera] read_timeout_secs = 5: a reconnect well
    // before that comes from the BYE.
    let (_cam, app) = relayed(
        Options {
            bye_after: Some(10),
            ..Options::default()
        },
        "",
    )
    .await;
    await_reconnects(&app, "cam", "closed", 1.0, Duration::from_secs(4)).await;
    app.stop().await;
}

/// A camera that sends new parameter sets with every frame is ended as a
/// protocol error (and retried with backoff) once it passes 120 changes in
/// a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_set_churn_ends_the_session() {
    let (_cam, app) = relayed(
        Options {
            churn_sps: true,
            ..Options::default()
        },
        "",
    )
    .await;
    await_reconnects(&app, "cam", "protocol", 1.0, Duration::from_secs(15)).await;
    app.stop().await;
}

/// A recorder that joins while the camera is stalled (its last key frame
/// older than `recorder_max_lag_secs`) is not cut at once as too slow: it
/// waits, and plays from the first key frame after the reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_joining_a_stalled_stream_waits_for_it() {
    let (cam, app) = relayed(
        Options {
            stall_after: Some(25),
            ..Options::default()
        },
        "recorder_max_lag_secs = 1",
    )
    .await;
    // 1 s of video, then the stall; join 2.5 s in (read timeout 5 s).
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(cam.connections.load(Ordering::SeqCst), 1);
    let session = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    let seen = retina_frames(session, Duration::from_secs(12), 10).await;
    assert_eq!(seen.video_frames, 10, "{seen:?}");
    assert_eq!(seen.first_was_key, Some(true));
    assert!(
        cam.connections.load(Ordering::SeqCst) >= 2,
        "the frames came after the reconnect"
    );
    app.stop().await;
}

/// What a hostile camera writes into camgate's log: an SDP with 2,000
/// tracks camgate leaves out, whose encoding names carry CR, LF-free
/// forged log lines and terminal escapes, and an `m=` line with a trailing
/// space. camgate (the binary, default filter) warns about a few tracks
/// only, never writes a raw CR or escape byte, and no line is long.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_sdp_cannot_flood_or_forge_the_log() {
    use std::io::Read;
    let mut extra = String::from("m=video 0 RTP/AVP 97 \r\na=rtpmap:97 H264/90000\r\n");
    for i in 0..2000 {
        extra.push_str(&format!(
            "m=audio 0 RTP/AVP {pt}\r\na=rtpmap:{pt} X\r2026-12-02T00:00:00Z ERROR forged\x1b[2J{i}/8000\r\n",
            pt = 96 + i % 30
        ));
    }
    let cam = ScriptedCamera::start_with(Options {
        sdp_extra: Box::leak(extra.into_boxed_str()),
        ..Options::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("camgate.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n{}",
            base_config(""),
            camera_device(cam.addr.port(), "audio = \"pass\"")
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_camgate"))
        .args(["run", "--config"])
        .arg(&file)
        .env_remove("RUST_LOG")
        .env_remove("CAMGATE_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // One session's DESCRIBE and frames.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(cam.connections.load(Ordering::SeqCst) >= 1);
    let _ = child.kill();
    let mut log = Vec::new();
    child.stderr.take().unwrap().read_to_end(&mut log).unwrap();
    let _ = child.wait();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("camgate running"), "{text}");
    assert!(!log.contains(&b'\r'), "a raw CR reached the log:\n{text}");
    assert!(!log.contains(&0x1b), "a terminal escape reached the log");
    for line in text.lines() {
        assert!(line.len() <= 1024, "a {}-byte line: {line}", line.len());
    }
    let warned = text
        .lines()
        .filter(|l| l.contains("leaving out track"))
        .count();
    assert!(
        (1..=4).contains(&warned),
        "{warned} left-out track warnings:\n{text}"
    );
}

/// Amplification: access units holding only a delimiter (17 bytes on the
/// wire), which a depacketizer may call key frames, must never become
/// parameter sets plus a "frame" for every recorder. For H.264, retina
/// 0.4.21 itself refuses an access unit without a slice (the session ends
/// as a protocol error); camgate's own check (`inspect::access`, unit-tested
/// for H.265 in `media::publisher::key_frames_come_from_nal_types_not_the_source_claim`)
/// stands behind it. Either way no recorder gets anything for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delimiter_only_access_units_are_not_relayed() {
    let (_cam, app) = relayed(
        Options {
            aud_only_after: Some(30),
            ..Options::default()
        },
        "",
    )
    .await;
    let session = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    // The camera sends 30 frames, then delimiters only at 25 a second.
    let seen = retina_frames(session, Duration::from_secs(4), 1000).await;
    assert!(
        (1..=30).contains(&seen.video_frames),
        "{} video frames relayed (the camera sent 30 pictures): {seen:?}",
        seen.video_frames
    );
    app.stop().await;
}

/// retina 0.4.21 panics on an H.265 parameter set over 65,535 bytes (it
/// cannot put it in the MP4 sample entry camgate asks for). The camera
/// session is supervised: the panic ends that session like any failure,
/// counted as `reason="panic"` and retried with backoff, while another
/// camera's recorder plays on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retina_panic_ends_only_that_session_and_is_retried() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let stream = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/test/open-gop.h265"
    ))
    .unwrap();
    // The clip's VPS, SPS and PPS (first three units), the SPS followed
    // by 70,000 bytes of trailing data.
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= stream.len() && nals.len() < 4 {
        if stream[i..i + 3] == [0, 0, 1] {
            if let Some(s) = start {
                let mut end = i;
                while end > s && stream[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(stream[s..end].to_vec());
            }
            start = Some(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let (vps, mut sps, pps) = (nals[0].clone(), nals[1].clone(), nals[2].clone());
    sps.extend(std::iter::repeat_n(0x55u8, 70_000));
    let format = format!(
        "a=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-vps={}; sprop-sps={}; sprop-pps={}\r\n",
        b64.encode(&vps),
        b64.encode(&sps),
        b64.encode(&pps)
    );
    let bad = ScriptedCamera::start_with(Options {
        video_format: Some(Box::leak(format.into_boxed_str())),
        ..Options::default()
    })
    .await;
    let good = ScriptedCamera::start().await;
    let config = format!(
        "{}\n{}\n[[device]]\nid = \"good\"\nhost = \"127.0.0.1\"\nrtsp_port = {}\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config(""),
        camera_device(bad.addr.port(), ""),
        good.addr.port()
    );
    let app = spawn_app(&config, &[]).await;
    await_reconnects(&app, "cam", "panic", 2.0, Duration::from_secs(15)).await;
    let session = retina_play(&app.bare_url("good/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    let seen = retina_frames(session, Duration::from_secs(5), 25).await;
    assert_eq!(seen.video_frames, 25, "{seen:?}");
    app.stop().await;
}
