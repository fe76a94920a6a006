//! Device fronts: a recorder pointed at 127.0.0.2 (the front) uses the
//! camera's own RTSP paths and HTTP API there, plain and over TLS; camgate
//! reaches an HTTPS camera only with its pinned certificate.

mod support;

use std::net::SocketAddr;

use support::fake_camera::{self, FakeCamera};
use support::scripted_camera::{Options, ScriptedCamera};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CAM_IP: &str = "127.0.0.3";
const FRONT: &str = "127.0.0.2";

fn basic() -> String {
    legacy_basic()
}

async fn app_in(dir: tempfile::TempDir, config: &str) -> TestApp {
    copy_shipped_policy(dir.path());
    spawn_app_in(dir, config, &[("CAM_PW", fake_camera::CAM_PASS)]).await
}

/// GET over TLS to `addr`, trusting only `fingerprint`.
async fn https_get(addr: SocketAddr, fingerprint: [u8; 32], path: &str) -> String {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(camgate::tls::pinned_client(fingerprint));
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        basic()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorder_uses_the_front_like_the_camera() {
    let rtsp = ScriptedCamera::start_on(CAM_IP.parse().unwrap(), Options::default()).await;
    let cam = FakeCamera::start(CAM_IP.parse().unwrap(), rtsp.addr.port()).await;
    let (rtsp_port, http_port, https_port) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, fp) = fake_camera::self_signed(FRONT.parse().unwrap());
    std::fs::write(dir.path().join("front.pem"), cert).unwrap();
    std::fs::write(dir.path().join("front.key"), key).unwrap();
    let config = format!(
        "{}\n[http]\ntls_cert = \"front.pem\"\ntls_key = \"front.key\"\n[fronts]\nrtsp_port = {rtsp_port}\nhttp_port = {http_port}\nhttps_port = {https_port}\n\
         [[device]]\nid = \"gate\"\nvendor = \"hikvision\"\nhost = \"{CAM_IP}\"\nfront = \"{FRONT}\"\nrtsp_port = {}\nhttp_port = {}\n\
         username = \"admin\"\npassword_env = \"CAM_PW\"\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config("") + LEGACY_RECORDER,
        rtsp.addr.port(),
        cam.addr.port()
    );
    let app = app_in(dir, &config).await;

    // RTSP at the front with the camera's own path.
    let url = format!("rtsp://{NVR_USER}:{NVR_PASS}@{FRONT}:{rtsp_port}/Streaming/Channels/101");
    assert_eq!(ffprobe_streams(&url).await, ["video=h264"]);
    let (ok, stderr) = ffmpeg_decode(&url, "tcp", 2).await;
    assert!(ok && stderr.trim().is_empty(), "{stderr}");
    let s = retina_play(
        &format!("rtsp://{FRONT}:{rtsp_port}/Streaming/Channels/101"),
        NVR_USER,
        NVR_PASS,
        false,
    )
    .await
    .unwrap();
    assert_eq!(
        retina_frames(s, std::time::Duration::from_secs(10), 20)
            .await
            .video_frames,
        20
    );
    // An unknown camera path is 404.
    let r = raw_request(
        format!("{FRONT}:{rtsp_port}").parse().unwrap(),
        &format!("DESCRIBE rtsp://{FRONT}:{rtsp_port}/Streaming/Channels/102 RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {}\r\n\r\n", basic()),
    )
    .await
    .unwrap();
    assert!(r.starts_with("RTSP/1.0 404"), "{r}");

    // The camera's HTTP API at the front, addresses rewritten to the front.
    let front_http: SocketAddr = format!("{FRONT}:{http_port}").parse().unwrap();
    let (st, _, body) = http(
        front_http,
        "GET",
        "/ISAPI/System/deviceInfo",
        &[("Authorization", &basic())],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(!body.contains(CAM_IP), "{body}");
    assert!(
        body.contains(&format!(
            "<webUrl>http://{FRONT}:{http_port}/doc/page/login.asp</webUrl>"
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!("<ipAddress>{FRONT}</ipAddress>")),
        "{body}"
    );
    assert_eq!(
        http(
            front_http,
            "PUT",
            "/SDK/webLanguage",
            &[("Authorization", &basic())]
        )
        .await
        .0,
        403
    );

    // ONVIF at the front: the stream URI is the front's RTSP (Nx-style
    // recorders use only its path, on the ONVIF host).
    let soap = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><trt:GetStreamUri xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\"/></s:Body></s:Envelope>";
    let (st, _, body) = http_body(
        front_http,
        "POST",
        "/onvif/Media",
        &[
            ("Authorization", &basic()),
            ("Content-Type", "application/soap+xml"),
        ],
        soap,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains(&format!(
            "<tt:Uri>rtsp://{FRONT}:{rtsp_port}/Streaming/Channels/101</tt:Uri>"
        )),
        "{body}"
    );

    // HTTPS at the front, with the configured certificate.
    let pin = camgate::config::validate::parse_fingerprint(&fp).unwrap();
    let resp = https_get(
        format!("{FRONT}:{https_port}").parse().unwrap(),
        pin,
        "/ISAPI/System/deviceInfo",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains(&format!("https://{FRONT}:{https_port}/doc/page/login.asp")),
        "{resp}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_camera_is_reached_only_with_its_pinned_certificate() {
    let (cam, fp) = FakeCamera::start_tls(CAM_IP.parse().unwrap(), 554).await;
    let wrong = "00".repeat(32);
    let config = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n\
         [[device]]\nid = \"good\"\nvendor = \"hikvision\"\nhost = \"{CAM_IP}\"\nhttp_scheme = \"https\"\nhttp_port = {p}\ntls_fingerprint = \"{fp}\"\n\
         username = \"admin\"\npassword_env = \"CAM_PW\"\npull = \"on-demand\"\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n\
         [[device]]\nid = \"spoofed\"\nvendor = \"hikvision\"\nhost = \"{CAM_IP}\"\nhttp_scheme = \"https\"\nhttp_port = {p}\ntls_fingerprint = \"{wrong}\"\n\
         username = \"admin\"\npassword_env = \"CAM_PW\"\npull = \"on-demand\"\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config("") + LEGACY_RECORDER,
        p = cam.addr.port()
    );
    let app = app_in(tempfile::tempdir().unwrap(), &config).await;
    let api = app.http[0];
    let (st, _, body) = http(
        api,
        "GET",
        "/good/ISAPI/System/deviceInfo",
        &[("Authorization", &basic())],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("DS-2CD2043G0-I"));
    let before = cam.requests().len();
    let (st, _, body) = http(
        api,
        "GET",
        "/spoofed/ISAPI/System/deviceInfo",
        &[("Authorization", &basic())],
    )
    .await;
    assert_eq!(st, 502, "{body}");
    assert_eq!(
        cam.requests().len(),
        before,
        "nothing sent past a wrong certificate"
    );
    let m = http(app.admin, "GET", "/metrics", &[]).await.2;
    assert_eq!(
        sample(
            &m,
            "camgate_http_upstream_errors_total{device=\"spoofed\",reason=\"tls\"}"
        ),
        Some(1.0),
        "{m}"
    );
    app.stop().await;
}
