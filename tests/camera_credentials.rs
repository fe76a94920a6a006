//! Credentials toward cameras: a camera (or whoever answers at its address)
//! that offers only Basic authentication never receives the device
//! password, over RTSP (camgate's challenge check before retina), the
//! camera API proxy and the fingerprint probe, unless the device says
//! `auth = "basic"`; Digest cameras work as before.

mod support;

use std::time::Duration;

use support::fake_camera::{self, FakeCamera};
use support::scripted_camera::{AUTH_PASS, AUTH_USER, AuthCamera, AuthMode};
use support::*;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A camera device on 127.0.0.1 with the camera account; `extra` lines
/// go into the `[[device]]` table.
fn device(rtsp_port: u16, http_port: u16, extra: &str) -> String {
    format!(
        "[[device]]\nid = \"cam\"\nvendor = \"hikvision\"\nhost = \"127.0.0.1\"\nrtsp_port = {rtsp_port}\n\
         http_port = {http_port}\nusername = \"{AUTH_USER}\"\npassword_env = \"CAM_PW\"\n{extra}\n\
         [device.streams]\nmain = \"/Streaming/Channels/101\"\n"
    )
}

const ENV: &[(&str, &str)] = &[("CAM_PW", AUTH_PASS)];

/// Polls `cond` every 100 ms for up to `secs` seconds.
async fn wait_for(secs: u64, mut cond: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if cond().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The stream's last error as the admin API reports it.
async fn last_error(app: &TestApp) -> String {
    let (_, _, body) = http(app.admin, "GET", "/api/v1/devices/cam", &[]).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["streams"][0]["last_error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn scrape(app: &TestApp) -> String {
    http(app.admin, "GET", "/metrics", &[]).await.2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_camera_offering_only_basic_never_gets_the_password() {
    let cam = AuthCamera::start(AuthMode::BasicOnly).await;
    let config = format!("{}\n{}", base_config(""), device(cam.addr.port(), 1, ""));
    let app = spawn_app(&config, ENV).await;
    // Refused, then retried with backoff (1 s, then 2 s): each attempt is
    // one credential-less DESCRIBE.
    assert!(
        wait_for(15, async || cam.heads().len() >= 2).await,
        "{:?}",
        cam.heads()
    );
    assert!(
        wait_for(5, async || last_error(&app).await.contains("only Basic")).await,
        "{}",
        last_error(&app).await
    );
    let err = last_error(&app).await;
    assert!(
        err.contains("set auth = \"basic\" to allow cleartext"),
        "{err}"
    );
    assert!(!err.contains(AUTH_PASS));
    cam.assert_never_got_the_password();
    for h in cam.heads() {
        assert!(h.starts_with("DESCRIBE rtsp://127.0.0.1:"), "{h}");
        assert!(!h.to_ascii_lowercase().contains("authorization"), "{h}");
    }
    // Retina was never started: nothing reached the camera behind the gate.
    assert_eq!(
        cam.inner
            .connections
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let text = scrape(&app).await;
    let refused = sample(
        &text,
        "camgate_stream_reconnects_total{device=\"cam\",stream=\"main\",reason=\"auth\"}",
    );
    assert!(refused.is_some_and(|n| n >= 1.0), "{text}");

    // The inventory's DESCRIBE (no camgate running) refuses the same way.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, &config).unwrap();
    let lookup = |k: &str| (k == "CAM_PW").then(|| AUTH_PASS.to_string());
    let loaded = camgate::config::load_with_env(&file, Default::default(), &lookup).unwrap();
    let d = &loaded.config.devices[0];
    let camgate::config::DeviceSource::Camera(c) = &d.source else {
        panic!("a camera")
    };
    let e = camgate::camera::session::describe_only(
        d,
        c,
        "/Streaming/Channels/101",
        Duration::from_secs(5),
    )
    .await
    .unwrap_err();
    assert!(e.contains("only Basic"), "{e}");
    cam.assert_never_got_the_password();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_basic_works_when_the_device_opts_in() {
    let cam = AuthCamera::start(AuthMode::BasicOnly).await;
    let config = format!(
        "{}\n{}",
        base_config(""),
        device(cam.addr.port(), 1, "auth = \"basic\"")
    );
    let app = spawn_app(&config, ENV).await;
    let s = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    assert_eq!(
        retina_frames(s, Duration::from_secs(10), 10)
            .await
            .video_frames,
        10
    );
    let b64 = fake_camera::basic_credentials();
    assert!(
        cam.heads().iter().any(|h| h.contains(&b64)),
        "{:?}",
        cam.heads()
    );
    app.stop().await;
}

/// Digest cameras play as before, including one that lists Basic first
/// (two headers, as Hikvision sends them): retina answers Digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_digest_cameras_still_work() {
    for mode in [AuthMode::Digest, AuthMode::BasicAndDigest] {
        let cam = AuthCamera::start(mode).await;
        let config = format!("{}\n{}", base_config(""), device(cam.addr.port(), 1, ""));
        let app = spawn_app(&config, ENV).await;
        let s = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
            .await
            .unwrap();
        assert_eq!(
            retina_frames(s, Duration::from_secs(10), 10)
                .await
                .video_frames,
            10,
            "{mode:?}"
        );
        cam.assert_never_got_the_password();
        assert!(
            cam.heads()
                .iter()
                .any(|h| h.to_ascii_lowercase().contains("authorization: digest ")),
            "{mode:?}: {:?}",
            cam.heads()
        );
        app.stop().await;
    }
}

/// A camera that lets DESCRIBE through without authentication and then
/// asks for Basic on SETUP: retina was given no credentials, so there is
/// nothing to answer with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_camera_asking_no_auth_then_basic_gets_nothing() {
    let cam = AuthCamera::start(AuthMode::BasicAfterDescribe).await;
    let config = format!("{}\n{}", base_config(""), device(cam.addr.port(), 1, ""));
    let app = spawn_app(&config, ENV).await;
    assert!(
        wait_for(15, async || cam
            .heads()
            .iter()
            .any(|h| h.starts_with("SETUP ")))
        .await,
        "{:?}",
        cam.heads()
    );
    assert!(
        wait_for(5, async || !last_error(&app).await.is_empty()).await,
        "no error reported"
    );
    cam.assert_never_got_the_password();
    assert!(
        !cam.heads()
            .iter()
            .any(|h| h.to_ascii_lowercase().contains("authorization")),
        "{:?}",
        cam.heads()
    );
    app.stop().await;
}

/// The camera API proxy with a camera that knows only Basic.
async fn proxy_app(http_port: u16, extra: &str) -> TestApp {
    let config = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n{}\n{LEGACY_RECORDER}",
        base_config(""),
        // on-demand: no RTSP session unless a recorder plays.
        device(
            free_port(),
            http_port,
            &format!("pull = \"on-demand\"\n{extra}")
        )
    );
    let dir = tempfile::tempdir().unwrap();
    copy_shipped_policy(dir.path());
    spawn_app_in(dir, &config, &[("CAM_PW", fake_camera::CAM_PASS)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_proxy_refuses_basic_unless_the_device_opts_in() {
    let auth = legacy_basic();
    let cam = FakeCamera::start_basic_only("127.0.0.1".parse().unwrap()).await;
    let app = proxy_app(cam.addr.port(), "").await;
    let api = app.http[0];
    for _ in 0..2 {
        let (st, head, body) = http(
            api,
            "GET",
            "/cam/ISAPI/System/deviceInfo",
            &[("Authorization", &auth)],
        )
        .await;
        assert_eq!(st, 502, "{head}{body}");
        assert!(body.contains("basic_refused"), "{body}");
        assert!(!body.contains(fake_camera::CAM_PASS));
    }
    cam.assert_never_got_the_password();
    // Each request reached the camera once, without credentials.
    let seen = cam.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.iter().all(|r| r.header("authorization").is_none()));
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            "camgate_http_upstream_errors_total{device=\"cam\",reason=\"basic_refused\"}"
        ),
        Some(2.0),
        "{text}"
    );
    app.stop().await;

    // Opted in: answered with Basic.
    let cam = FakeCamera::start_basic_only("127.0.0.1".parse().unwrap()).await;
    let app = proxy_app(cam.addr.port(), "auth = \"basic\"").await;
    let (st, head, body) = http(
        app.http[0],
        "GET",
        "/cam/ISAPI/System/deviceInfo",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(st, 200, "{head}{body}");
    assert_eq!(body, "ok /ISAPI/System/deviceInfo");
    let basic = fake_camera::basic_credentials();
    assert!(
        cam.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(basic.as_str()))
    );
    app.stop().await;

    // A Digest camera works without opting in.
    let cam = FakeCamera::start("127.0.0.1".parse().unwrap(), 1).await;
    let app = proxy_app(cam.addr.port(), "").await;
    let (st, head, body) = http(
        app.http[0],
        "GET",
        "/cam/ISAPI/System/deviceInfo",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(st, 200, "{head}{body}");
    assert!(body.contains("DS-2CD2043G0-I"), "{body}");
    cam.assert_never_got_the_password();
    app.stop().await;
}

/// Loads a one-device config and runs the fingerprint probe on it.
async fn probe(
    rtsp_port: u16,
    http_port: u16,
    extra: &str,
) -> camgate::fingerprint::identity::ProbeReport {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        format!(
            "{}\n{}",
            base_config(""),
            device(rtsp_port, http_port, extra)
        ),
    )
    .unwrap();
    let lookup = |k: &str| (k == "CAM_PW").then(|| fake_camera::CAM_PASS.to_string());
    let loaded = camgate::config::load_with_env(&file, Default::default(), &lookup).unwrap();
    camgate::fingerprint::probe::probe(
        &loaded.config.devices[0],
        Duration::from_secs(5),
        &TaskTracker::new(),
        &CancellationToken::new(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fingerprint_probe_refuses_basic_unless_the_device_opts_in() {
    let rtsp = AuthCamera::start(AuthMode::BasicOnly).await;
    let cam = FakeCamera::start_basic_only("127.0.0.1".parse().unwrap()).await;
    let r = probe(rtsp.addr.port(), cam.addr.port(), "").await;
    assert!(
        r.errors.iter().any(|e| e == "onvif: basic_refused"),
        "{:?}",
        r.errors
    );
    assert!(r.info.is_none());
    cam.assert_never_got_the_password();
    rtsp.assert_never_got_the_password();
    // The ONVIF call was made (signed with a WS-Security digest, never the
    // password itself), then not answered with Basic.
    let onvif: Vec<_> = cam
        .requests()
        .into_iter()
        .filter(|r| r.target == "/onvif/device_service")
        .collect();
    assert_eq!(onvif.len(), 1, "{onvif:?}");
    assert!(
        onvif[0].body.contains("PasswordDigest"),
        "{}",
        onvif[0].body
    );

    let r = probe(rtsp.addr.port(), cam.addr.port(), "auth = \"basic\"").await;
    let info = r.info.expect("answered once Basic is allowed");
    assert_eq!(info.manufacturer, "HIKVISION");
    let basic = fake_camera::basic_credentials();
    assert!(
        cam.requests()
            .iter()
            .any(|r| r.header("authorization") == Some(basic.as_str()))
    );
    // The RTSP probe never sends credentials, opted in or not.
    rtsp.assert_never_got_the_password();
}

/// A real RTSP server's challenges (GStreamer's, as in
/// `tests/rtsp_relay.rs`): its Basic-only camera is refused before retina
/// starts; with the opt-in it is pulled (the camera's other tests show
/// Digest working).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_basic_camera_is_refused_unless_opted_in() {
    let port = free_port();
    // Opus audio is the harness's Basic-authentication camera.
    let _cam = GstCamera::start_with(port, "h264", "opus");
    assert_eq!(CAM_PASS, AUTH_PASS);
    let config = format!("{}\n{}", base_config(""), device(port, 1, ""));
    let app = spawn_app(&config, ENV).await;
    assert!(
        wait_for(15, async || last_error(&app).await.contains("only Basic")).await,
        "{}",
        last_error(&app).await
    );
    app.stop().await;

    let config = format!(
        "{}\n{}",
        base_config(""),
        device(port, 1, "auth = \"basic\"")
    );
    let app = spawn_app(&config, ENV).await;
    let s = retina_play(&app.bare_url("cam/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    assert_eq!(
        retina_frames(s, Duration::from_secs(10), 10)
            .await
            .video_frames,
        10
    );
    app.stop().await;
}
