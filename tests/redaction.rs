//! Part 8 of issue 12: no password camgate knows ever leaves it. Recorders
//! and devices get distinctive passwords (literal, environment, file); every
//! command runs (`check`, `nft`, `inventory` in each format, `run` logging
//! at trace for every module) while recorders play with credentials in the
//! URL, fail authentication and use the camera API; then stdout, stderr,
//! metrics, every admin API answer and the status page are searched for
//! the passwords, their `user:pass` base64 and their URL-encoded forms.

mod support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use support::fake_camera::{self, FakeCamera};
use support::scripted_camera::{Options, ScriptedCamera};
use support::{
    copy_shipped_policy, free_port, http, http_body, raw_request, require, retina_frames,
    retina_play,
};

const BIN: &str = env!("CARGO_BIN_EXE_camgate");

/// (user, password): every password has characters URL encoding changes.
const REC_LIT: (&str, &str) = ("nvr-lit", "Rl+7qX!mZ2");
const REC_ENV: (&str, &str) = ("nvr-env", "Re+4kW!pN8");
const REC_FILE: (&str, &str) = ("nvr-file", "Rf+9tY!cB5");
const DEV_LIT: (&str, &str) = ("admin", "Dl+3vH!sQ6");
const DEV_FILE: (&str, &str) = ("root", "Df+8jM!rT1");
/// The fake camera's own account (given to camgate through the environment).
const DEV_ENV: (&str, &str) = (fake_camera::CAM_USER, fake_camera::CAM_PASS);

const ALL: [(&str, &str); 6] = [REC_LIT, REC_ENV, REC_FILE, DEV_LIT, DEV_FILE, DEV_ENV];

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn pct(s: &str, lower: bool) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Every form of every password that must not appear.
fn needles() -> Vec<String> {
    let mut n = Vec::new();
    for (user, pass) in ALL {
        let pair = format!("{user}:{pass}");
        n.push(pass.to_string());
        n.push(pct(pass, false));
        n.push(pct(pass, true));
        // Form encoding: `+` as `%2B`, and a decoded `+` read as a space.
        n.push(pass.replace('+', " "));
        for b64 in [&STANDARD, &URL_SAFE] {
            n.push(b64.encode(&pair));
            n.push(b64.encode(pass));
        }
    }
    n
}

fn assert_clean(what: &str, text: &str) {
    for n in needles() {
        if let Some(i) = text.find(&n) {
            let from = text[..i]
                .char_indices()
                .rev()
                .nth(300)
                .map_or(0, |(j, _)| j);
            let to = (i + n.len() + 200).min(text.len());
            panic!(
                "{what} leaks {n:?}:\n...{}...",
                text.get(from..to).unwrap_or(&text[i..i + n.len()])
            );
        }
    }
}

fn basic((user, pass): (&str, &str)) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pass}")))
}

struct Site {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    rtsp: SocketAddr,
    admin: SocketAddr,
    api: SocketAddr,
}

/// The config: three recorders and four devices, one password source each.
fn site(rtsp_cam: SocketAddr, api_cam: SocketAddr) -> Site {
    let dir = tempfile::tempdir().unwrap();
    copy_shipped_policy(dir.path());
    std::fs::write(dir.path().join("rec.pw"), format!("{}\n", REC_FILE.1)).unwrap();
    std::fs::write(dir.path().join("dev.pw"), format!("{}\n", DEV_FILE.1)).unwrap();
    let port = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    let (rtsp, admin, api) = (port(free_port()), port(free_port()), port(free_port()));
    // Nothing listens there: the cameras behind it fail, and say so.
    let closed = free_port();
    let text = format!(
        r#"
[rtsp]
listen = "{rtsp}"
udp_rtp_port = 0
[admin]
listen = "{admin}"
[camera]
connect_timeout_secs = 2
read_timeout_secs = 2
[http]
listen = "{api}"
[egress]
camera_interface = "cams0"

[[recorder]]
name = "nvr-lit"
username = "{}"
password = "{}"
devices = ["*"]

[[recorder]]
name = "nvr-env"
username = "{}"
password_env = "REDACT_REC_PW"
# Basic on the plaintext listener, so base64 of its password is exercised.
cleartext_auth = true
devices = ["*"]

[[recorder]]
name = "nvr-file"
username = "{}"
password_file = "rec.pw"
devices = ["*"]

[[device]]
id = "demo"
simulated = true

[[device]]
id = "cam-http"
vendor = "hikvision"
host = "{}"
rtsp_port = {}
http_port = {}
username = "{}"
password_env = "REDACT_CAM_PW"
[device.streams]
main = "/Streaming/Channels/101"

[[device]]
id = "cam-lit"
vendor = "dahua"
host = "127.0.0.4"
rtsp_port = {closed}
username = "{}"
password = "{}"
[device.streams]
main = "/cam/realmonitor?channel=1&subtype=0"

[[device]]
id = "cam-file"
host = "127.0.0.5"
rtsp_port = {closed}
http_port = {closed}
username = "{}"
password_file = "dev.pw"
[device.streams]
main = "/live"
"#,
        REC_LIT.0,
        REC_LIT.1,
        REC_ENV.0,
        REC_FILE.0,
        rtsp_cam.ip(),
        rtsp_cam.port(),
        api_cam.port(),
        DEV_ENV.0,
        DEV_LIT.0,
        DEV_LIT.1,
        DEV_FILE.0,
    );
    let config = dir.path().join("camgate.toml");
    std::fs::write(&config, text).unwrap();
    Site {
        dir,
        config,
        rtsp,
        admin,
        api,
    }
}

fn camgate(site: &Site, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["--log", "trace"])
        .args(args)
        .arg("--config")
        .arg(&site.config)
        .env("REDACT_REC_PW", REC_ENV.1)
        .env("REDACT_CAM_PW", DEV_ENV.1)
        .env_remove("RUST_LOG")
        .env_remove("CAMGATE_LOG");
    c
}

/// `check`, `nft` and `inventory` in every format: output without secrets.
fn one_shot_commands(site: &Site) {
    for args in [
        &["check"][..],
        &["nft"],
        &["inventory", "--format", "table"],
        &["inventory", "--format", "csv"],
        &["inventory", "--format", "json"],
    ] {
        let out = camgate(site, args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stdout}\n{stderr}");
        assert!(!stdout.trim().is_empty(), "{args:?} printed nothing");
        assert_clean(&format!("camgate {args:?} stdout"), &stdout);
        assert_clean(&format!("camgate {args:?} stderr"), &stderr);
    }
}

/// The `camgate run` child, killed if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

async fn wait_ready(admin: SocketAddr, child: &mut Child) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("camgate run exited early: {st}");
        }
        if tokio::net::TcpStream::connect(admin).await.is_ok() {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "camgate not up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_in_any_output() {
    require("ffmpeg");
    let cam_ip = "127.0.0.3".parse().unwrap();
    let rtsp_cam = ScriptedCamera::start_on(cam_ip, Options::default()).await;
    let api_cam = FakeCamera::start(cam_ip, rtsp_cam.addr.port()).await;
    let site = site(rtsp_cam.addr, api_cam.addr);

    one_shot_commands(&site);

    let log = site.dir.path().join("stderr.log");
    let out = site.dir.path().join("stdout.log");
    let mut running = Running(
        camgate(&site, &["run"])
            .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap(),
    );
    let child = &mut running.0;
    wait_ready(site.admin, child).await;
    let rtsp = site.rtsp;

    // A recorder that plays with its credentials in the URL (ffmpeg sends
    // the URL, then authenticates with what it carries).
    let url = format!(
        "rtsp://{}:{}@{rtsp}/demo/main",
        REC_LIT.0,
        pct(REC_LIT.1, false)
    );
    let ffmpeg = tokio::process::Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
        .arg(&url)
        .args(["-t", "2", "-f", "null", "-"])
        .output()
        .await
        .unwrap();
    assert!(
        ffmpeg.status.success(),
        "ffmpeg with credentials in the URL: {}",
        String::from_utf8_lossy(&ffmpeg.stderr)
    );

    // Credentials in the request URI itself, encoded and raw, with Basic.
    for user_info in [
        format!("{}:{}", REC_ENV.0, pct(REC_ENV.1, false)),
        format!("{}:{}", REC_ENV.0, REC_ENV.1),
    ] {
        for method in ["OPTIONS", "DESCRIBE"] {
            let req = format!(
                "{method} rtsp://{user_info}@{rtsp}/demo/main RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {}\r\n\r\n",
                basic(REC_ENV)
            );
            let head = raw_request(rtsp, &req).await.expect("an RTSP answer");
            assert!(head.starts_with("RTSP/1.0 "), "{head}");
        }
    }

    // Recorders that fail authentication, with another account's password.
    let head = raw_request(
        rtsp,
        &format!(
            "DESCRIBE rtsp://{rtsp}/demo/main RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {}\r\n\r\n",
            basic((REC_LIT.0, REC_ENV.1))
        ),
    )
    .await
    .expect("an RTSP answer");
    assert!(head.starts_with("RTSP/1.0 401"), "{head}");
    let refused = retina_play(
        &format!("rtsp://{rtsp}/demo/main"),
        REC_FILE.0,
        DEV_LIT.1,
        false,
    )
    .await;
    assert!(refused.is_err(), "a wrong password played");

    // Digest recorders playing the simulated and the real camera.
    for path in ["demo/main", "cam-http/main"] {
        let s = retina_play(
            &format!("rtsp://{rtsp}/{path}"),
            REC_FILE.0,
            REC_FILE.1,
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{path}: {e}"));
        let seen = retina_frames(s, Duration::from_secs(4), 5).await;
        assert!(seen.video_frames >= 1, "{path}: {seen:?}");
    }

    // The camera API: allowed (camgate signs with the device's password),
    // denied, and with a wrong password.
    let (status, _, body) = http(
        site.api,
        "GET",
        "/cam-http/ISAPI/System/deviceInfo",
        &[("Authorization", &basic(REC_ENV))],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("DS-2CD2043G0-I"), "{body}");
    assert_clean("camera API answer", &body);
    for (path, auth, want) in [
        ("/cam-http/ISAPI/System/Network/EZVIZ", basic(REC_ENV), 403),
        (
            "/cam-http/ISAPI/System/deviceInfo",
            basic((REC_ENV.0, REC_LIT.1)),
            401,
        ),
    ] {
        let (status, head, body) = http(site.api, "GET", path, &[("Authorization", &auth)]).await;
        assert_eq!(status, want, "{path}: {head}\n{body}");
        assert_clean(&format!("camera API {path} head"), &head);
        assert_clean(&format!("camera API {path} body"), &body);
    }
    let soap = "<s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body><tds:GetDeviceInformation xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"/></s:Body></s:Envelope>";
    let (status, _, body) = http_body(
        site.api,
        "POST",
        "/cam-http/onvif/device_service",
        &[
            ("Authorization", &basic(REC_ENV)),
            ("Content-Type", "application/soap+xml"),
        ],
        soap,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_clean("ONVIF answer", &body);

    // The failing cameras have had time to fail and be logged.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Every admin route.
    let mut pages = Vec::new();
    for path in [
        "/",
        "/metrics",
        "/healthz",
        "/readyz",
        "/api/v1/devices",
        "/api/v1/devices/demo",
        "/api/v1/devices/cam-http",
        "/api/v1/devices/cam-lit",
        "/api/v1/devices/cam-file",
        "/api/v1/devices/nonexistent",
    ] {
        let (status, head, body) = http(site.admin, "GET", path, &[]).await;
        assert!(
            status == 200 || path.ends_with("nonexistent"),
            "{path}: {status}"
        );
        assert_clean(&format!("admin {path} head"), &head);
        assert_clean(&format!("admin {path} body"), &body);
        pages.push((path, body));
    }
    let metrics = &pages[1].1;
    assert!(
        metrics.contains("camgate_auth_failures_total{"),
        "the failed logins were counted: {metrics}"
    );
    assert!(pages[4].1.contains("cam-file"), "{}", pages[4].1);
    assert!(pages[0].1.contains("cam-lit"), "status page lists devices");

    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "camgate did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stderr = std::fs::read_to_string(&log).unwrap();
    let stdout = std::fs::read_to_string(&out).unwrap();
    // The log is the trace-level one, and it saw what the test did.
    for expect in ["DESCRIBE", "cam-lit", "camera API request judged"] {
        assert!(stderr.contains(expect), "no {expect:?} in the log");
    }
    assert_clean("camgate run stdout", &stdout);
    assert_clean("camgate run stderr", &stderr);
}
