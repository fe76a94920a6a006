//! The camera API proxy end to end: a fake camera (ISAPI, Dahua CGI/RPC2,
//! ONVIF, Digest) on 127.0.0.3 behind camgate; recorders' requests allowed
//! and rewritten, exploit and maintenance requests denied without reaching
//! the camera, an ONVIF flow ending in ffprobe playing the returned URI.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use support::fake_camera::{self, FakeCamera};
use support::scripted_camera::{Options, ScriptedCamera};
use support::*;

const CAM_IP: &str = "127.0.0.3";

fn basic() -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{NVR_USER}:{NVR_PASS}"))
    )
}

struct Setup {
    app: TestApp,
    cam: FakeCamera,
    _rtsp: ScriptedCamera,
    api: SocketAddr,
}

async fn setup(vendor: &str, extra: &str) -> Setup {
    let rtsp = ScriptedCamera::start_on(CAM_IP.parse().unwrap(), Options::default()).await;
    let cam = FakeCamera::start(CAM_IP.parse().unwrap(), rtsp.addr.port()).await;
    let config = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n[[device]]\nid = \"cam\"\nvendor = \"{vendor}\"\nhost = \"{CAM_IP}\"\n\
         rtsp_port = {}\nhttp_port = {}\nusername = \"{}\"\npassword_env = \"CAM_PW\"\npull = \"on-demand\"\n\
         [device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config(""),
        rtsp.addr.port(),
        cam.addr.port(),
        fake_camera::CAM_USER
    );
    // The shipped policy files, next to the test config.
    let app = spawn_app_with_policy(&config, &[("CAM_PW", fake_camera::CAM_PASS)]).await;
    let api = app.http[0];
    Setup {
        app,
        cam,
        _rtsp: rtsp,
        api,
    }
}

/// spawn_app, with the shipped config/policy/ copied beside the config.
async fn spawn_app_with_policy(config: &str, env: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir_all(&policy).unwrap();
    for f in ["common.toml", "onvif.toml", "hikvision.toml", "dahua.toml"] {
        std::fs::copy(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("config/policy")
                .join(f),
            policy.join(f),
        )
        .unwrap();
    }
    spawn_app_in(dir, config, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorder_requests_pass_and_are_rewritten() {
    let s = setup("hikvision", "").await;
    let auth = basic();
    let (st, head, body) = http(
        s.api,
        "GET",
        "/cam/ISAPI/System/deviceInfo",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(st, 200, "{head}{body}");
    assert!(body.contains("DS-2CD2043G0-I"));
    assert!(!body.contains(CAM_IP), "camera address leaked: {body}");
    assert!(
        body.contains(&format!("http://{}/cam/doc/page/login.asp", s.api)),
        "{body}"
    );
    assert!(
        !head.to_ascii_lowercase().contains("app-webs"),
        "camera Server header leaked: {head}"
    );

    let (st, head, body) = http(
        s.api,
        "GET",
        "/cam/ISAPI/Streaming/channels/101/picture",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(st, 200, "{head}");
    assert!(head.contains("image/jpeg"));
    assert_eq!(body, String::from_utf8_lossy(&fake_camera::snapshot()));

    let (st, _, _) = http(
        s.api,
        "PUT",
        "/cam/ISAPI/PTZCtrl/channels/1/continuous",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(st, 200);

    // What the camera saw: camgate's Digest for the camera's account, never
    // the recorder's credentials.
    let seen = s.cam.requests();
    let ok: Vec<_> = seen
        .iter()
        .filter(|r| r.header("authorization").is_some())
        .collect();
    assert!(ok.len() >= 3);
    for r in &seen {
        let a = r.header("authorization").unwrap_or("");
        assert!(!a.contains("Basic"), "recorder credentials forwarded: {a}");
        if !a.is_empty() {
            assert!(a.contains("username=\"admin\""), "{a}");
        }
    }

    // A long-lived event stream, streamed, with the camera address replaced.
    let mut stream = tokio::net::TcpStream::connect(s.api).await.unwrap();
    let req = format!(
        "GET /cam/ISAPI/Event/notification/alertStream HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\n\r\n",
        s.api
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, req.as_bytes())
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while String::from_utf8_lossy(&got)
        .matches("</EventNotificationAlert>")
        .count()
        < 3
    {
        let n = tokio::time::timeout_at(
            deadline,
            tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
        )
        .await
        .unwrap()
        .unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains(CAM_IP), "{text}");
    assert!(text.contains("<ipAddress>127.0.0.1</ipAddress>"), "{text}");

    let metrics = http(s.app.admin, "GET", "/metrics", &[]).await.2;
    assert!(
        sample(
            &metrics,
            "camgate_http_requests_total{device=\"cam\",verdict=\"allow\",rule=\"hik-getters\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert!(
        sample(
            &metrics,
            "camgate_http_response_bytes_total{device=\"cam\"}"
        )
        .unwrap()
            > 200_000.0
    );
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exploits_maintenance_and_cloud_requests_never_reach_the_camera() {
    let s = setup("hikvision", "").await;
    let auth = basic();
    let before = s.cam.requests().len();
    for (method, path) in [
        ("GET", "/cam/Security/users?auth=YWRtaW46MTEK"),
        ("GET", "/cam/onvif-http/snapshot?auth=YWRtaW46MTEK"),
        ("PUT", "/cam/SDK/webLanguage"),
        ("PUT", "/cam/sdk/WebLanguage"),
        ("GET", "/cam/System/configurationFile?auth=YWRtaW46MTEK"),
        ("GET", "/cam/current_config/passwd"),
        ("PUT", "/cam/ISAPI/System/updateFirmware"),
        ("PUT", "/cam/ISAPI/System/factoryReset?mode=full"),
        ("PUT", "/cam/ISAPI/System/reboot"),
        ("GET", "/cam/ISAPI/System/configurationData"),
        ("PUT", "/cam/ISAPI/Security/users/1"),
        ("PUT", "/cam/ISAPI/System/Network/EZVIZ"),
        ("PUT", "/cam/ISAPI/System/Network/DDNS"),
        ("PUT", "/cam/ISAPI/System/Network/UPnP"),
        ("PUT", "/cam/ISAPI/System/time/ntpServers/1"),
        ("POST", "/cam/ISAPI/Event/notification/httpHosts"),
        ("GET", "/cam/ISAPI/Not/Listed"),
    ] {
        let (st, _, body) =
            http_body(s.api, method, path, &[("Authorization", &auth)], "<x/>").await;
        assert_eq!(st, 403, "{method} {path}: {body}");
        assert!(body.contains("denied by camgate"), "{body}");
    }
    // ONVIF management calls, signed correctly, still denied.
    for op in [
        "SetUser",
        "SystemReboot",
        "SetNTP",
        "SetSystemFactoryDefault",
        "UpgradeSystemFirmware",
        "SetDNS",
    ] {
        let body = onvif(op, true);
        let (st, _, text) = http_body(
            s.api,
            "POST",
            "/cam/onvif/device_service",
            &[("Content-Type", "application/soap+xml")],
            &body,
        )
        .await;
        assert_eq!(st, 403, "{op}: {text}");
    }
    assert_eq!(
        s.cam.requests().len(),
        before,
        "the camera saw a denied request: {:?}",
        &s.cam.requests()[before..]
    );
    let metrics = http(s.app.admin, "GET", "/metrics", &[]).await.2;
    assert!(
        sample(
            &metrics,
            "camgate_http_requests_total{device=\"cam\",verdict=\"deny\",rule=\"cve-2021-36260-weblanguage\"}"
        ) == Some(2.0),
        "{metrics}"
    );
    s.app.stop().await;
}

/// An ONVIF request for `op`, signed with the recorder's UsernameToken.
fn onvif(op: &str, signed: bool) -> String {
    let header = if signed {
        let created = "2026-11-28T00:00:00Z";
        let nonce: [u8; 16] = rand::random();
        let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
        let digest = camgate::http::soap::password_digest(&nonce, created, NVR_PASS).unwrap();
        format!(
            "<s:Header><wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"><wsse:UsernameToken><wsse:Username>{NVR_USER}</wsse:Username><wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest\">{digest}</wsse:Password><wsse:Nonce>{nonce}</wsse:Nonce><wsu:Created xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>"
        )
    } else {
        String::new()
    };
    format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">{header}<s:Body><tds:{op} xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"><trt:ProfileToken xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\">Profile_1</trt:ProfileToken></tds:{op}></s:Body></s:Envelope>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onvif_flow_ends_with_ffprobe_playing_through_camgate() {
    let s = setup("hikvision", "").await;
    let soap = [("Content-Type", "application/soap+xml; charset=utf-8")];
    // GetSystemDateAndTime: no authentication, as ONVIF requires.
    let (st, _, body) = http_body(
        s.api,
        "POST",
        "/cam/onvif/device_service",
        &soap,
        &onvif("GetSystemDateAndTime", false),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    // Anything else unsigned: 401.
    let (st, head, _) = http_body(
        s.api,
        "POST",
        "/cam/onvif/device_service",
        &soap,
        &onvif("GetCapabilities", false),
    )
    .await;
    assert_eq!(st, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: digest"),
        "{head}"
    );
    // Signed with the recorder's account (WS-Security digest): allowed, XAddrs rewritten.
    let (st, _, body) = http_body(
        s.api,
        "POST",
        "/cam/onvif/device_service",
        &soap,
        &onvif("GetCapabilities", true),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(!body.contains(CAM_IP), "{body}");
    assert!(
        body.contains(&format!(
            "<tt:XAddr>http://{}/cam/onvif/device_service</tt:XAddr>",
            s.api
        )),
        "{body}"
    );
    // A replayed token is refused.
    let once = onvif("GetProfiles", true);
    assert_eq!(
        http_body(s.api, "POST", "/cam/onvif/Media", &soap, &once)
            .await
            .0,
        200
    );
    assert_eq!(
        http_body(s.api, "POST", "/cam/onvif/Media", &soap, &once)
            .await
            .0,
        401
    );
    // The stream URI names camgate; ffprobe plays it.
    let (st, _, body) = http_body(
        s.api,
        "POST",
        "/cam/onvif/Media",
        &soap,
        &onvif("GetStreamUri", true),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let uri = body
        .split("<tt:Uri>")
        .nth(1)
        .and_then(|r| r.split("</tt:Uri>").next())
        .unwrap();
    assert_eq!(
        uri,
        format!("rtsp://127.0.0.1:{}/cam/main", s.app.rtsp.port())
    );
    let with_creds = uri.replace("rtsp://", &format!("rtsp://{NVR_USER}:{NVR_PASS}@"));
    assert_eq!(ffprobe_streams(&with_creds).await, ["video=h264"]);
    // The camera got camgate's token (its own account), never the recorder's.
    for r in s
        .cam
        .requests()
        .iter()
        .filter(|r| r.target.starts_with("/onvif/"))
    {
        assert!(
            !r.body.contains(&format!(">{NVR_USER}<")),
            "recorder token forwarded: {}",
            r.body
        );
        if !r.body.contains("GetSystemDateAndTime") {
            assert!(r.body.contains(">admin<"), "{}", r.body);
        }
    }
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dahua_rpc_and_cgi() {
    let s = setup("dahua", "").await;
    let auth = basic();
    let ok = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let (st, _, body) = http_body(
        s.api,
        "POST",
        "/cam/RPC2",
        &ok,
        r#"{"method":"magicBox.getSerialNo","params":null,"id":1}"#,
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let before = s.cam.requests().len();
    for body in [
        r#"{"method":"system.multicall","params":[{"method":"magicBox.getSerialNo"},{"method":"userManager.addUser","params":{"user":{"Name":"x"}}}],"id":2}"#,
        r#"{"method":"configManager.setConfig","params":{"name":"T2UServer","table":{"Enable":true}}}"#,
        "not json",
    ] {
        let (st, _, text) = http_body(s.api, "POST", "/cam/RPC2", &ok, body).await;
        assert_eq!(st, 403, "{body}: {text}");
    }
    let (st, _, _) = http_body(
        s.api,
        "POST",
        "/cam/RPC2_Login",
        &ok,
        r#"{"method":"global.login","params":{"userName":"admin","password":"Not Used","clientType":"NetKeyboard","loginType":"Direct"},"id":1}"#,
    )
    .await;
    assert_eq!(st, 403);
    for path in [
        "/cam/cgi-bin/configManager.cgi?action=setConfig&T2UServer.Enable=true",
        "/cam/cgi-bin/userManager.cgi?action=addUser",
        "/cam/cgi-bin/magicBox.cgi?action=reboot",
        "/cam/cgi-bin/upgrader.cgi?action=uploadFirmware",
    ] {
        assert_eq!(http(s.api, "GET", path, &ok).await.0, 403, "{path}");
    }
    assert_eq!(
        s.cam.requests().len(),
        before,
        "{:?}",
        &s.cam.requests()[before..]
    );
    assert_eq!(
        http(s.api, "GET", "/cam/cgi-bin/snapshot.cgi?channel=1", &ok)
            .await
            .0,
        200
    );
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_smuggling_attempts_are_rejected() {
    let s = setup("hikvision", "max_body_bytes = 2048").await;
    let auth = basic();
    let before = s.cam.requests().len();
    let raw = |req: String| async move {
        let mut st = tokio::net::TcpStream::connect(s.api).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut st, req.as_bytes())
            .await
            .unwrap();
        let mut out = Vec::new();
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::AsyncReadExt::read_to_end(&mut st, &mut out),
        )
        .await;
        String::from_utf8_lossy(&out).into_owned()
    };
    let a = &auth;
    let cases = [
        format!(
            "POST /cam/ISAPI/ContentMgmt/search HTTP/1.1\r\nHost: x\r\nAuthorization: {a}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        ),
        format!(
            "POST /cam/ISAPI/ContentMgmt/search HTTP/1.1\r\nHost: x\r\nAuthorization: {a}\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
        ),
        format!(
            "GET /cam/ISAPI/../current_config/passwd HTTP/1.1\r\nHost: x\r\nAuthorization: {a}\r\n\r\n"
        ),
        format!(
            "GET /cam/ISAPI%2fSystem%2fdeviceInfo HTTP/1.1\r\nHost: x\r\nAuthorization: {a}\r\n\r\n"
        ),
        format!(
            "GET /cam/ISAPI/System/deviceInfo?a=1&A=2 HTTP/1.1\r\nHost: x\r\nAuthorization: {a}\r\n\r\n"
        ),
        format!(
            "POST /cam/ISAPI/ContentMgmt/search HTTP/1.1\r\nHost: x\r\nAuthorization: {a}\r\nContent-Length: 5000\r\n\r\n{}",
            "x".repeat(5000)
        ),
        format!(
            "GET /cam/ISAPI/System/deviceInfo HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(40_000)
        ),
        "GET /nope/ISAPI/System/deviceInfo HTTP/1.1\r\nHost: x\r\n\r\n".to_string(),
        "GARBAGE\x00\x01\r\n\r\n".to_string(),
    ];
    let expect = [400, 400, 400, 400, 400, 413, 431, 404, 400];
    for (req, want) in cases.into_iter().zip(expect) {
        let resp = raw(req.clone()).await;
        let status: u16 = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert_eq!(
            status,
            want,
            "{}\n=> {resp}",
            req.chars().take(120).collect::<String>()
        );
    }
    // No credentials: 401 with a challenge; wrong ones too.
    let (st, head, _) = http(s.api, "GET", "/cam/ISAPI/System/deviceInfo", &[]).await;
    assert_eq!(st, 401);
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: digest realm=\"camgate\""),
        "{head}"
    );
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("nvr:wrong")
    );
    assert_eq!(
        http(
            s.api,
            "GET",
            "/cam/ISAPI/System/deviceInfo",
            &[("Authorization", &wrong)]
        )
        .await
        .0,
        401
    );
    assert_eq!(
        s.cam.requests().len(),
        before,
        "{:?}",
        &s.cam.requests()[before..]
    );
    s.app.stop().await;
}
