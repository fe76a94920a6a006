//! Shared test harness: camgate on loopback ports, third-party clients
//! (ffmpeg, GStreamer's RTSP server as a camera) and retina as a recorder.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use camgate::app::{self, Running};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub mod fake_camera;
pub mod scripted_camera;

/// The recorder account every test config has.
pub const NVR_USER: &str = "nvr";
pub const NVR_PASS: &str = "nvr-secret";

/// A running camgate with its temp dir.
pub struct TestApp {
    pub running: Option<Running>,
    pub rtsp: SocketAddr,
    pub admin: SocketAddr,
    /// Camera API listeners (path-based first, then fronts).
    pub http: Vec<SocketAddr>,
    /// DNS sinkhole and egress trap listeners, when configured.
    pub dns: Option<SocketAddr>,
    pub trap_tcp: Option<SocketAddr>,
    pub trap_udp: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    /// `rtsp://nvr:nvr-secret@127.0.0.1:PORT/<path>`
    pub fn url(&self, path: &str) -> String {
        format!("rtsp://{NVR_USER}:{NVR_PASS}@{}/{path}", self.rtsp)
    }

    /// The same URL without credentials.
    pub fn bare_url(&self, path: &str) -> String {
        format!("rtsp://{}/{path}", self.rtsp)
    }

    pub async fn stop(mut self) -> bool {
        match self.running.take() {
            Some(r) => r.shutdown(Duration::from_secs(5)).await,
            None => true,
        }
    }
}

/// The config prefix every test uses: loopback, ephemeral ports, one recorder.
/// Fingerprint probes are off: they would add their own connections and
/// requests to cameras whose traffic tests count (`tests/inspection.rs`
/// turns them on).
pub fn base_config(extra_rtsp: &str) -> String {
    format!(
        r#"
[rtsp]
listen = "127.0.0.1:0"
udp_rtp_port = 0
{extra_rtsp}
[inspect]
fingerprint = false
[admin]
listen = "127.0.0.1:0"
[camera]
connect_timeout_secs = 5
read_timeout_secs = 5
[[recorder]]
name = "nvr"
username = "{NVR_USER}"
password = "{NVR_PASS}"
devices = ["*"]
"#
    )
}

/// Starts camgate on `config` (TOML text); `env` supplies password_env values.
pub async fn spawn_app(config: &str, env: &[(&str, &str)]) -> TestApp {
    spawn_app_in(tempfile::tempdir().unwrap(), config, env).await
}

/// The same, with the config written into `dir` (which may hold files it names).
pub async fn spawn_app_in(dir: tempfile::TempDir, config: &str, env: &[(&str, &str)]) -> TestApp {
    init_logging();
    let file = dir.path().join("camgate.toml");
    std::fs::write(&file, config).unwrap();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let loaded = camgate::config::load_with_env(&file, Default::default(), &lookup)
        .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
    let running = app::start(loaded.config).await.unwrap();
    TestApp {
        rtsp: running.rtsp_addr,
        admin: running.admin_addr,
        http: running.http_addrs.clone(),
        dns: running.dns_addr,
        trap_tcp: running.trap_tcp_addr,
        trap_udp: running.trap_udp_addr,
        running: Some(running),
        dir,
    }
}

pub fn init_logging() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "camgate=info".into()),
            )
            .with_test_writer()
            .try_init();
    });
}

/// Installs the test tools if missing is not this harness's job: the README's
/// test command does. Fail loudly instead of skipping.
pub fn require(tool: &str) {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{tool} is not installed: run the test command from README.md (it installs it)"
    );
}

/// ffmpeg as a recorder: plays `url` for `secs` over `transport`, decoding
/// every frame with `-xerror`. Returns (success, stderr).
pub async fn ffmpeg_decode(url: &str, transport: &str, secs: u32) -> (bool, String) {
    require("ffmpeg");
    let out = tokio::process::Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-v",
            "error",
            "-xerror",
            "-rtsp_transport",
            transport,
            "-i",
            url,
        ])
        .args(["-t", &secs.to_string(), "-f", "null", "-"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(u64::from(secs) + 30), out)
        .await
        .expect("ffmpeg finished in time")
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// ffprobe's view of a stream: one `codec_type=codec_name` per stream.
pub async fn ffprobe_streams(url: &str) -> Vec<String> {
    require("ffprobe");
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_type,codec_name",
        ])
        .args(["-of", "csv=p=0", url])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut p = l.split(',');
            let name = p.next().unwrap_or("").to_string();
            let ty = p.next().unwrap_or("").to_string();
            format!("{ty}={name}")
        })
        .collect()
}

/// An H.264 (or H.265) + AAC MP4 (640x360, 25 fps, 2 s GOP, no B-frames)
/// for the GStreamer camera, made once per test binary.
pub fn camera_file(video: &str) -> PathBuf {
    static H264: OnceLock<PathBuf> = OnceLock::new();
    static H265: OnceLock<PathBuf> = OnceLock::new();
    let cell = if video == "h265" { &H265 } else { &H264 };
    cell.get_or_init(|| {
        require("ffmpeg");
        let dir = std::env::temp_dir().join(format!("camgate-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("camera-{video}.mp4"));
        let mut cmd = Command::new("ffmpeg");
        cmd.args(["-nostdin", "-v", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
        if video == "h265" {
            cmd.args([
                "-t",
                "40",
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-tag:v",
                "hvc1",
            ])
            .args(["-x265-params", "log-level=error:keyint=50:bframes=0"]);
        } else {
            cmd.args([
                "-t",
                "90",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-g",
                "50",
                "-bf",
                "0",
            ]);
        }
        let st = cmd
            .args([
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "64k", "-ac", "1",
            ])
            .arg(&path)
            .status()
            .unwrap();
        assert!(st.success(), "ffmpeg could not make the camera file");
        path
    })
    .clone()
}

/// GStreamer's RTSP server as a camera (tests/support/gst_camera.py).
pub struct GstCamera {
    child: Child,
    pub port: u16,
    pub path: String,
}

pub const CAM_USER: &str = "admin";
pub const CAM_PASS: &str = "cam-secret";

impl GstCamera {
    /// An H.264 + AAC camera.
    pub fn start(port: u16) -> GstCamera {
        GstCamera::start_with(port, "h264", "aac")
    }

    /// `video`: h264 | h265; `audio`: aac | pcmu | pcma | opus | none
    /// (Opus comes with Basic authentication, the others with Digest).
    pub fn start_with(port: u16, video: &str, audio: &str) -> GstCamera {
        let auth = if audio == "opus" { "basic" } else { "digest" };
        assert!(
            Path::new("/usr/bin/python3").exists(),
            "/usr/bin/python3 missing: run the README's test command"
        );
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/gst_camera.py");
        let path = "/Streaming/Channels/101".to_string();
        let mut child = Command::new("/usr/bin/python3")
            .arg(script)
            .args(["--port", &port.to_string(), "--path", &path])
            .args(["--user", CAM_USER, "--password", CAM_PASS])
            .args(["--video", video, "--audio", audio, "--auth", auth])
            .arg("--file")
            .arg(camera_file(video))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the GStreamer camera");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert!(
            line.starts_with("READY"),
            "GStreamer camera did not start: {line:?}"
        );
        GstCamera { child, port, path }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GstCamera {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free TCP port on loopback (for servers that cannot bind port 0).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends a raw request and returns the status line and the whole response
/// head, or None if the connection closed without a response.
pub async fn raw_request(addr: SocketAddr, req: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut s).await
}

/// Reads one response head from `s` (up to the blank line).
pub async fn read_response(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    let fut = async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => buf.push(b[0]),
            }
            if buf.ends_with(b"\r\n\r\n") {
                return Some(String::from_utf8_lossy(&buf).into_owned());
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), fut)
        .await
        .ok()
        .flatten()
}

/// Retina as a recorder: DESCRIBE, SETUP every stream, PLAY.
pub async fn retina_play(
    url: &str,
    user: &str,
    pass: &str,
    udp: bool,
) -> Result<retina::client::Session<retina::client::Playing>, retina::Error> {
    let url = url::Url::parse(url).unwrap();
    let opts = retina::client::SessionOptions::default().creds(Some(retina::client::Credentials {
        username: user.into(),
        password: pass.into(),
    }));
    let mut s = retina::client::Session::describe(url, opts).await?;
    for i in 0..s.streams().len() {
        let t = if udp {
            retina::client::Transport::Udp(Default::default())
        } else {
            retina::client::Transport::Tcp(Default::default())
        };
        s.setup(i, retina::client::SetupOptions::default().transport(t))
            .await?;
    }
    s.play(retina::client::PlayOptions::default()).await
}

/// What a retina recorder saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub video_frames: usize,
    pub key_frames: usize,
    pub audio_frames: usize,
    /// ONVIF metadata documents, and whether the last one was whole XML.
    pub metadata_frames: usize,
    pub last_metadata: Option<String>,
    pub first_was_key: Option<bool>,
    pub loss: u64,
}

/// Reads demuxed frames for `dur` (or until `n_video` video frames).
pub async fn retina_frames(
    session: retina::client::Session<retina::client::Playing>,
    dur: Duration,
    n_video: usize,
) -> Seen {
    let mut d = session.demuxed().unwrap();
    let mut seen = Seen::default();
    let deadline = tokio::time::Instant::now() + dur;
    while seen.video_frames < n_video {
        let item = match tokio::time::timeout_at(deadline, d.next()).await {
            Err(_) | Ok(None) => break,
            Ok(Some(Err(e))) => panic!("retina recorder error: {e}"),
            Ok(Some(Ok(i))) => i,
        };
        match item {
            retina::codec::CodecItem::VideoFrame(f) => {
                seen.first_was_key.get_or_insert(f.is_random_access_point());
                seen.video_frames += 1;
                seen.key_frames += usize::from(f.is_random_access_point());
                seen.loss += u64::from(f.loss());
            }
            retina::codec::CodecItem::AudioFrame(f) => {
                seen.audio_frames += 1;
                seen.loss += u64::from(f.loss());
            }
            retina::codec::CodecItem::MessageFrame(f) => {
                seen.metadata_frames += 1;
                seen.last_metadata = Some(String::from_utf8_lossy(f.data()).into_owned());
            }
            _ => {}
        }
    }
    seen
}

/// Copies the shipped `config/policy/*.toml` into `dir/policy/`, where a
/// config written in `dir` finds them by default.
pub fn copy_shipped_policy(dir: &Path) {
    let policy = dir.join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    for f in ["common.toml", "onvif.toml", "hikvision.toml", "dahua.toml"] {
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/policy")
                .join(f),
            policy.join(f),
        )
        .unwrap();
    }
}

/// A recorder that opted into Basic (`cleartext_auth`), for tests whose
/// subject is not authentication: the shared test recorder does Digest only.
pub const LEGACY_RECORDER: &str = "[[recorder]]\nname = \"legacy\"\nusername = \"legacy\"\npassword = \"legacy-pw\"\ncleartext_auth = true\ndevices = [\"*\"]\n";

/// `Authorization: Basic` for [`LEGACY_RECORDER`].
pub fn legacy_basic() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("legacy:legacy-pw")
    )
}

/// The nonce of the Digest challenge in a 401 response head.
pub fn challenge_nonce(head: &str) -> String {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .find_map(|(_, v)| v.trim().strip_prefix("Digest "))
        .and_then(|p| {
            p.split(',')
                .find_map(|kv| kv.trim().strip_prefix("nonce=\""))
                .map(|n| n.trim_end_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no Digest challenge in {head}"))
}

/// An `Authorization` header answering camgate's Digest challenge for one
/// request, as a recorder computes it (RFC 2617 without qop).
pub fn digest_auth(user: &str, pass: &str, nonce: &str, method: &str, uri: &str) -> String {
    let resp = camgate::auth::digest_response(
        user,
        &camgate::config::Secret::new(pass),
        method,
        uri,
        nonce,
        None,
    );
    format!(
        "Digest username=\"{user}\", realm=\"camgate\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\""
    )
}

/// Sends an unauthenticated request and returns the nonce camgate's 401
/// challenges with.
pub async fn rtsp_nonce(s: &mut TcpStream, url: &str) -> String {
    let req = format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 100\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_response(s).await.unwrap();
    assert!(head.starts_with("RTSP/1.0 401"), "{head}");
    challenge_nonce(&head)
}

/// Reads the SDP camgate serves for `path`, with Digest credentials.
pub async fn describe_sdp(app: &TestApp, path: &str) -> String {
    let url = app.bare_url(path);
    let mut s = TcpStream::connect(app.rtsp).await.unwrap();
    let nonce = rtsp_nonce(&mut s, &url).await;
    let auth = digest_auth(NVR_USER, NVR_PASS, &nonce, "DESCRIBE", &url);
    let req = format!(
        "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {auth}\r\nAccept: application/sdp\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_response(&mut s).await.unwrap();
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

/// A raw RTSP/TCP recorder: SETUP every track (interleaved 2i/2i+1) and PLAY,
/// authenticating by Digest. Returns the socket positioned at the first
/// media byte.
pub async fn raw_play(
    app: &TestApp,
    path: &str,
    tracks: usize,
    recv_buffer: Option<u32>,
) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(b) = recv_buffer {
        sock.set_recv_buffer_size(b).unwrap();
    }
    let mut s = sock.connect(app.rtsp).await.unwrap();
    let base = app.bare_url(path);
    let nonce = rtsp_nonce(&mut s, &base).await;
    let mut session = String::new();
    for t in 0..tracks {
        let sess = if session.is_empty() {
            String::new()
        } else {
            format!("Session: {session}\r\n")
        };
        let uri = format!("{base}/trackID={t}");
        let auth = digest_auth(NVR_USER, NVR_PASS, &nonce, "SETUP", &uri);
        let req = format!(
            "SETUP {uri} RTSP/1.0\r\nCSeq: {}\r\nAuthorization: {auth}\r\n{sess}Transport: RTP/AVP/TCP;unicast;interleaved={}-{}\r\n\r\n",
            t + 1,
            2 * t,
            2 * t + 1
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let head = read_response(&mut s).await.unwrap();
        assert!(head.starts_with("RTSP/1.0 200"), "{head}");
        session = session_header(&head);
    }
    let auth = digest_auth(NVR_USER, NVR_PASS, &nonce, "PLAY", &base);
    let req = format!(
        "PLAY {base} RTSP/1.0\r\nCSeq: 9\r\nAuthorization: {auth}\r\nSession: {session}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_response(&mut s).await.unwrap();
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    s
}

/// The session id in a response head's `Session` header.
pub fn session_header(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("Session: "))
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Reads one interleaved frame: (channel, packet).
pub async fn read_interleaved(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).await.ok()?;
    assert_eq!(hdr[0], b'$', "interleaved framing");
    let mut p = vec![0; usize::from(u16::from_be_bytes([hdr[2], hdr[3]]))];
    s.read_exact(&mut p).await.ok()?;
    Some((hdr[1], p))
}

/// A minimal HTTP/1.1 client for the admin listener: (status, head, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    http_body(addr, method, path, headers, "").await
}

/// The same with a request body.
pub async fn http_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(raw.len(), |i| i + 4);
    let head = String::from_utf8_lossy(&raw[..split])
        .trim_end()
        .to_string();
    let body = &raw[split.min(raw.len())..];
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, head, String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut s: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = s.windows(2).position(|w| w == b"\r\n") {
        let n = usize::from_str_radix(String::from_utf8_lossy(&s[..i]).trim(), 16).unwrap_or(0);
        if n == 0 || s.len() < i + 2 + n {
            break;
        }
        out.extend_from_slice(&s[i + 2..i + 2 + n]);
        s = &s[(i + 4 + n).min(s.len())..];
    }
    out
}

/// One sample's value from a Prometheus text scrape.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// What a [`ScriptedApi`] answers: a status line and headers (without the
/// blank line), the body, and optionally how many body bytes it sends
/// before it stalls (keeping the connection open, sending nothing more).
#[derive(Debug, Clone)]
pub struct ApiReply {
    pub head: String,
    pub body: Vec<u8>,
    pub stall_after: Option<usize>,
}

impl ApiReply {
    /// `200 OK` with this `Content-Type` (none when empty) and a
    /// `Content-Length` for the whole body.
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> ApiReply {
        let body = body.into();
        let ct = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        ApiReply {
            head: format!(
                "HTTP/1.1 200 OK\r\n{ct}Content-Length: {}\r\nServer: App-webs/\r\n",
                body.len()
            ),
            body,
            stall_after: None,
        }
    }

    /// The same with one more header line (`Name: value`).
    pub fn with_header(mut self, line: &str) -> ApiReply {
        self.head.push_str(line);
        self.head.push_str("\r\n");
        self
    }
}

/// A camera HTTP API answering every request, whatever it asks, with the
/// reply a test set last, byte for byte: any headers, any body, a stall
/// mid-body. No authentication. Records each request's head and body.
pub struct ScriptedApi {
    pub addr: SocketAddr,
    reply: std::sync::Arc<std::sync::Mutex<ApiReply>>,
    pub seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedApi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedApi {
    /// Serves on `ip:0`, answering `reply` until [`ScriptedApi::set`].
    pub async fn start(ip: std::net::IpAddr, reply: ApiReply) -> ScriptedApi {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reply = std::sync::Arc::new(std::sync::Mutex::new(reply));
        let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
        let (r, s) = (reply.clone(), seen.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(Self::serve(stream, r.clone(), s.clone()));
            }
        });
        ScriptedApi {
            addr,
            reply,
            seen,
            task,
        }
    }

    /// Answers `reply` from now on.
    pub fn set(&self, reply: ApiReply) {
        *self.reply.lock().unwrap() = reply;
    }

    /// The requests seen so far (head and body as text).
    pub fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    async fn serve(
        mut s: TcpStream,
        reply: std::sync::Arc<std::sync::Mutex<ApiReply>>,
        seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        let mut buf = Vec::new();
        loop {
            // One request: its head, then a Content-Length body.
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                let mut chunk = [0u8; 4096];
                match tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.split_once(':')
                        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                        .and_then(|(_, v)| v.trim().parse().ok())
                })
                .unwrap_or(0);
            while buf.len() < head_end + len {
                let mut chunk = [0u8; 4096];
                match tokio::time::timeout(Duration::from_secs(30), s.read(&mut chunk)).await {
                    Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                    _ => return,
                }
            }
            let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
            buf.drain(..head_end + len);
            seen.lock().unwrap().push(format!("{head}{body}"));
            let r = reply.lock().unwrap().clone();
            let mut out = format!("{}\r\n", r.head).into_bytes();
            let sent = r.stall_after.unwrap_or(r.body.len()).min(r.body.len());
            out.extend_from_slice(&r.body[..sent]);
            if s.write_all(&out).await.is_err() {
                return;
            }
            if r.stall_after.is_some() {
                // Stalled: the connection stays open, silent, a while.
                tokio::time::sleep(Duration::from_secs(60)).await;
                return;
            }
        }
    }
}

/// `camgate_stream_reconnects_total` of a device's `main` stream for one
/// `reason` (0 when the series does not exist).
pub async fn reconnects(app: &TestApp, device: &str, reason: &str) -> f64 {
    let metrics = http(app.admin, "GET", "/metrics", &[]).await.2;
    sample(
        &metrics,
        &format!(
            "camgate_stream_reconnects_total{{device=\"{device}\",stream=\"main\",reason=\"{reason}\"}}"
        ),
    )
    .unwrap_or(0.0)
}

/// Waits until [`reconnects`] reaches `n`, failing after `within`.
pub async fn await_reconnects(app: &TestApp, device: &str, reason: &str, n: f64, within: Duration) {
    let started = std::time::Instant::now();
    loop {
        let seen = reconnects(app, device, reason).await;
        if seen >= n {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{device}: {seen} reconnects for reason {reason} after {within:?}, wanted {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
