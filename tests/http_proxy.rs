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
    legacy_basic()
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
         [device.streams]\nmain = \"/Streaming/Channels/101\"\n{LEGACY_RECORDER}",
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
    copy_shipped_policy(dir.path());
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
        // Reads of stored secrets (site passwords, cloud verification codes).
        ("GET", "/cam/ISAPI/System/Network/PPPoE"),
        ("GET", "/cam/ISAPI/System/Network/EZVIZ"),
        ("GET", "/cam/ISAPI/System/Network/DDNS"),
        ("GET", "/cam/isapi/system/network/Mailing"),
        ("GET", "/cam/ISAPI/System/Network/interfaces/2/wireless"),
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
    if !signed {
        return onvif_with(op, "");
    }
    let created = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string();
    let nonce: [u8; 16] = rand::random();
    let nonce = base64::engine::general_purpose::STANDARD.encode(nonce);
    let digest = camgate::http::soap::password_digest(&nonce, &created, NVR_PASS).unwrap();
    onvif_with(op, &ws_header(&nonce, &created, &digest, true))
}

/// A WS-Security header with the recorder's name and the given parts, as
/// sent (so a test can spell the nonce or the time as an attacker would).
fn ws_header(nonce: &str, created: &str, password: &str, digest: bool) -> String {
    let kind = if digest {
        "PasswordDigest"
    } else {
        "PasswordText"
    };
    format!(
        "<s:Header><wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"><wsse:UsernameToken><wsse:Username>{NVR_USER}</wsse:Username><wsse:Password Type=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#{kind}\">{password}</wsse:Password><wsse:Nonce>{nonce}</wsse:Nonce><wsu:Created xmlns:wsu=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd\">{created}</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header>"
    )
}

fn onvif_with(op: &str, header: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\">{header}<s:Body><tds:{op} xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"><trt:ProfileToken xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\">Profile_1</trt:ProfileToken></tds:{op}></s:Body></s:Envelope>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_security_tokens_old_replayed_or_in_clear_never_reach_the_camera() {
    let s = setup("hikvision", "").await;
    let soap = [("Content-Type", "application/soap+xml; charset=utf-8")];
    let before = s.cam.requests().len();
    let b64 = base64::engine::general_purpose::STANDARD;
    let at = |off: i64| {
        jiff::Timestamp::now()
            .checked_add(jiff::SignedDuration::from_secs(off))
            .unwrap()
            .round(jiff::Unit::Second)
            .unwrap()
            .to_string()
    };
    let signed = |nonce: &str, created: &str| {
        let digest = camgate::http::soap::password_digest(nonce.trim(), created, NVR_PASS)
            .unwrap_or_else(|| "AAAA".into());
        onvif_with("GetCapabilities", &ws_header(nonce, created, &digest, true))
    };
    // Two hours old, and from the future.
    for off in [-7200, 7200] {
        let body = signed(&b64.encode(rand::random::<[u8; 16]>()), &at(off));
        let (st, _, _) = http_body(s.api, "POST", "/cam/onvif/device_service", &soap, &body).await;
        assert_eq!(st, 401, "{off}");
    }
    // A fresh token passes once; replayed as sent, or with a Unicode space
    // added to its nonce, it is refused.
    let nonce = b64.encode(rand::random::<[u8; 16]>());
    let created = at(0);
    let digest = camgate::http::soap::password_digest(&nonce, &created, NVR_PASS).unwrap();
    let once = onvif_with(
        "GetCapabilities",
        &ws_header(&nonce, &created, &digest, true),
    );
    let (st, _, _) = http_body(s.api, "POST", "/cam/onvif/device_service", &soap, &once).await;
    assert_eq!(st, 200);
    let camera_saw = s.cam.requests().len();
    for spelled in [
        nonce.clone(),
        format!("{nonce}\u{2003}"),
        format!("\u{00a0}{nonce}"),
        format!(" {nonce}\n"),
    ] {
        let replay = onvif_with(
            "GetCapabilities",
            &ws_header(&spelled, &created, &digest, true),
        );
        let (st, _, _) =
            http_body(s.api, "POST", "/cam/onvif/device_service", &soap, &replay).await;
        assert_eq!(st, 401, "{spelled:?}");
    }
    // The password in clear, on a plaintext listener, from a recorder that
    // did not opt in.
    let clear = onvif_with(
        "GetCapabilities",
        &ws_header(
            &b64.encode(rand::random::<[u8; 16]>()),
            &at(0),
            NVR_PASS,
            false,
        ),
    );
    let (st, _, _) = http_body(s.api, "POST", "/cam/onvif/device_service", &soap, &clear).await;
    assert_eq!(st, 401);
    // A nonce far over the size a nonce can be.
    let huge = signed(&b64.encode(vec![7u8; 4096]), &at(0));
    let (st, _, _) = http_body(s.api, "POST", "/cam/onvif/device_service", &soap, &huge).await;
    assert_eq!(st, 401);
    assert_eq!(s.cam.requests().len(), camera_saw);
    assert_eq!(camera_saw, before + 1);
    let metrics = http(s.app.admin, "GET", "/metrics", &[]).await.2;
    for reason in ["expired", "replay", "cleartext_refused"] {
        assert!(
            sample(
                &metrics,
                &format!("camgate_auth_failures_total{{protocol=\"http\",reason=\"{reason}\"}}")
            )
            .is_some_and(|v| v >= 1.0),
            "{reason}: {metrics}"
        );
    }
    s.app.stop().await;
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
        r#"{"method":"configManager.getConfig","params":{"name":"Email"},"id":3}"#,
        r#"{"method":"system.multicall","params":[{"method":"magicBox.getSerialNo"},{"method":"configManager.getConfig","params":{"name":"WLan"}}],"id":4}"#,
    ] {
        let (st, _, text) = http_body(s.api, "POST", "/cam/RPC2", &ok, body).await;
        assert_eq!(st, 403, "{body}: {text}");
    }
    // Bodies that cannot be judged, or that two parsers would read
    // differently (a duplicate key: serde keeps the last, a camera may keep
    // the first), are refused as malformed.
    for body in [
        "not json",
        r#"{"method":"userManager.addUser","method":"magicBox.getSerialNo","id":1}"#,
        r#"{"method":"magicBox.getSerialNo","\u006dethod":"userManager.deleteUser","id":1}"#,
        r#"{"method":"system.multicall","params":[{"method":"magicBox.getSerialNo","params":{"a":1,"a":2}}],"id":1}"#,
    ] {
        let (st, _, text) = http_body(s.api, "POST", "/cam/RPC2", &ok, body).await;
        assert_eq!(st, 400, "{body}: {text}");
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
        "/cam/cgi-bin/configManager.cgi?action=getConfig&name=Email",
        "/cam/cgi-bin/configManager.cgi?action=getConfig&name=WLan",
        "/cam/cgi-bin/configManager.cgi?action=getConfig&name=PPPoE",
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
    // An unknown device: 401 to a stranger (device ids are not listed to
    // anyone), 404 once authenticated (below).
    let expect = [400, 400, 400, 400, 400, 413, 431, 401, 400];
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
    assert_eq!(
        http(
            s.api,
            "GET",
            "/nope/ISAPI/System/deviceInfo",
            &[("Authorization", &auth)]
        )
        .await
        .0,
        404
    );
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

/// Digest `Authorization` for one HTTP request, from a fresh 401 challenge
/// (as a recorder computes it; the nonce is bound to this client's address).
async fn http_digest(api: SocketAddr, user: &str, pass: &str, method: &str, path: &str) -> String {
    let (st, head, _) = http(api, "GET", "/cam/ISAPI/System/deviceInfo", &[]).await;
    assert_eq!(st, 401, "{head}");
    let nonce = challenge_nonce(&head);
    digest_auth(user, pass, &nonce, method, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_never_name_an_operation_and_bypasses_never_reach_the_camera() {
    let s = setup("hikvision", "").await;
    let before = s.cam.requests().len();
    let gsdt = "\"http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime\"";
    let gsdt_body = onvif("GetSystemDateAndTime", false);
    // The reported bypass: an ISAPI user change dressed as the exempt ONVIF
    // call, without credentials, in every way a header can name it.
    let ct_action = format!("application/soap+xml; action={gsdt}");
    let reboot = onvif("SystemReboot", false);
    let two_ops = gsdt_body.replace(
        "</s:Body>",
        "<tds:SystemReboot xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"/></s:Body>",
    );
    let other_case = gsdt_body.replace("GetSystemDateAndTime", "getSystemDateAndTime");
    type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let unauthenticated: Vec<Case> = vec![
        (
            "PUT",
            "/cam/ISAPI/Security/users/1",
            vec![("SOAPAction", gsdt)],
            "<User/>",
        ),
        (
            "PUT",
            "/cam/ISAPI/Security/users/1",
            vec![("soapaction", " GetSystemDateAndTime ")],
            "",
        ),
        (
            "PUT",
            "/cam/ISAPI/Security/users/1",
            vec![("Content-Type", ct_action.as_str())],
            &gsdt_body,
        ),
        (
            "PUT",
            "/cam/ISAPI/Security/users/1",
            vec![("Content-Type", "application/soap+xml")],
            &gsdt_body,
        ),
        (
            "POST",
            "/cam/ISAPI/System/factoryReset",
            vec![("SOAPAction", gsdt)],
            &gsdt_body,
        ),
        (
            "GET",
            "/cam/ISAPI/System/configurationData",
            vec![("SOAPAction", gsdt)],
            "",
        ),
        (
            "GET",
            "/cam/cgi-bin/userManager.cgi?action=addUser",
            vec![("SOAPAction", gsdt)],
            "",
        ),
        // ONVIF paths, but not the exempt call exactly.
        (
            "GET",
            "/cam/onvif/device_service",
            vec![("SOAPAction", gsdt)],
            "",
        ),
        ("POST", "/cam/onvif/Media", vec![], &gsdt_body),
        (
            "POST",
            "/cam/onvif/device_service/../../ISAPI/Security/users/1",
            vec![],
            &gsdt_body,
        ),
        (
            "POST",
            "/cam/onvif/device_service",
            vec![("SOAPAction", gsdt)],
            &reboot,
        ),
        ("POST", "/cam/onvif/device_service", vec![], &two_ops),
        ("POST", "/cam/onvif/device_service", vec![], &other_case),
    ];
    for (method, path, headers, body) in &unauthenticated {
        let (st, _, text) = http_body(s.api, method, path, headers, body).await;
        assert!(
            st == 401 || st == 400,
            "{method} {path} {headers:?}: {st} {text}"
        );
    }
    // With valid credentials, a header still cannot open an ISAPI path.
    for (method, path, action) in [
        ("PUT", "/cam/ISAPI/Security/users/1", "GetCapabilities"),
        (
            "GET",
            "/cam/ISAPI/System/configurationData",
            "http://www.onvif.org/ver10/device/wsdl/GetCapabilities",
        ),
        ("PUT", "/cam/ISAPI/System/factoryReset", "GetStreamUri"),
    ] {
        let auth = http_digest(s.api, NVR_USER, NVR_PASS, method, path).await;
        let (st, _, text) = http_body(
            s.api,
            method,
            path,
            &[("Authorization", &auth), ("SOAPAction", action)],
            "<x/>",
        )
        .await;
        assert_eq!(st, 400, "{method} {path}: {text}");
    }
    // A body over the small pre-authentication cap is refused unread.
    let big = format!(
        "{}{}",
        &gsdt_body[..gsdt_body.len() - 11],
        " ".repeat(70_000)
    );
    let (st, _, _) = http_body(s.api, "POST", "/cam/onvif/device_service", &[], &big).await;
    assert_eq!(st, 413);
    assert_eq!(
        s.cam.requests().len(),
        before,
        "the camera saw: {:?}",
        &s.cam.requests()[before..]
    );
    // The exempt call itself still works, without credentials.
    let (st, _, _) = http_body(s.api, "POST", "/cam/onvif/device_service", &[], &gsdt_body).await;
    assert_eq!(st, 200);
    s.app.stop().await;
}

/// Sends raw bytes on a new connection and returns the first answer read
/// (without sending anything more, as a client waiting for a 100 would).
async fn first_answer(api: SocketAddr, raw: &[u8]) -> String {
    let mut st = tokio::net::TcpStream::connect(api).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut st, raw)
        .await
        .unwrap();
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut st, &mut out),
    )
    .await
    .unwrap()
    .unwrap();
    String::from_utf8_lossy(&out[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_body_is_read_before_authentication() {
    let s = setup("hikvision", "").await;
    // Expect: 100-continue without credentials: a 401 from the head, and
    // never a 100 (the client must not send its body).
    let head = first_answer(
        s.api,
        b"POST /cam/ISAPI/ContentMgmt/search HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(!head.contains("100 Continue"), "{head}");
    // A huge declared body with no credentials: 401 at once, nothing read.
    let t = std::time::Instant::now();
    let head = first_answer(
        s.api,
        b"PUT /cam/ISAPI/System/time HTTP/1.1\r\nHost: x\r\nContent-Length: 900000000\r\n\r\n<x>",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(s.cam.requests().is_empty());
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_over_http_and_what_a_sniffed_header_opens() {
    let s = setup("hikvision", "").await;
    let path = "/cam/ISAPI/System/deviceInfo";
    let auth = http_digest(s.api, NVR_USER, NVR_PASS, "GET", path).await;
    let (st, _, body) = http(s.api, "GET", path, &[("Authorization", &auth)]).await;
    assert_eq!(st, 200, "{body}");
    // The same header on another path, or another method: refused.
    for (method, p) in [
        ("GET", "/cam/ISAPI/Streaming/channels/101/picture"),
        ("GET", "/cam/ISAPI/System/deviceInfo?x=1"),
        ("PUT", path),
    ] {
        let (st, _, _) = http(s.api, method, p, &[("Authorization", &auth)]).await;
        assert_eq!(st, 401, "{method} {p}");
    }
    // Basic is not accepted from a recorder that did not opt in, and is
    // not offered while one did (the shared test app has `legacy`).
    let nvr_basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{NVR_USER}:{NVR_PASS}"))
    );
    let (st, _, _) = http(s.api, "GET", path, &[("Authorization", &nvr_basic)]).await;
    assert_eq!(st, 401);
    // Two Authorization headers: which one a proxy in between checked is
    // unknowable, so neither.
    let (st, _, _) = http(
        s.api,
        "GET",
        path,
        &[("Authorization", &auth), ("Authorization", &basic())],
    )
    .await;
    assert_eq!(st, 400);
    s.app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_allow_lists_both_ways() {
    let s = setup("hikvision", "").await;
    let auth = basic();
    let path = "/cam/ISAPI/System/deviceInfo";
    let (st, head, body) = http(
        s.api,
        "GET",
        path,
        &[
            ("Authorization", &auth),
            ("Cookie", "recorder=1"),
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-Method-Override", "PUT"),
            ("User-Agent", "vms/1.0"),
            ("Accept", "application/xml"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let lower = head.to_ascii_lowercase();
    assert!(!lower.contains("set-cookie"), "{head}");
    assert!(!lower.contains("x-camera-private"), "{head}");
    assert!(!head.contains(CAM_IP), "{head}");
    assert!(
        lower.contains(
            &format!("location: http://{}/cam/isapi/system/deviceinfo", s.api).to_ascii_lowercase()
        ),
        "{head}"
    );
    // Again: the camera gets its own cookie back, never the recorder's
    // headers.
    let (st, _, _) = http(s.api, "GET", path, &[("Authorization", &auth)]).await;
    assert_eq!(st, 200);
    let seen: Vec<_> = s
        .cam
        .requests()
        .into_iter()
        .filter(|r| r.target == "/ISAPI/System/deviceInfo" && r.header("authorization").is_some())
        .collect();
    assert!(seen.len() >= 2, "{seen:?}");
    for r in &seen {
        for h in ["x-http-method-override", "x-method-override", "user-agent"] {
            assert!(r.header(h).is_none(), "{h} reached the camera: {r:?}");
        }
        assert!(
            r.header("cookie").is_none_or(|c| !c.contains("recorder")),
            "{r:?}"
        );
    }
    assert_eq!(seen[0].header("accept"), Some("application/xml"));
    assert_eq!(
        seen.last().unwrap().header("cookie"),
        Some("WebSession=cam-cookie-1")
    );
    s.app.stop().await;
}

/// camgate in front of a [`ScriptedApi`] camera on 127.0.0.3 (whose
/// answers a test sets), with `extra` in `[http]`. Returns the app, the
/// camera and the path-based API address.
async fn scripted_setup(
    vendor: &str,
    stream: &str,
    extra: &str,
) -> (TestApp, ScriptedApi, SocketAddr) {
    let cam = ScriptedApi::start(CAM_IP.parse().unwrap(), ApiReply::ok("text/plain", "ok")).await;
    let config = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n{extra}\n[[device]]\nid = \"cam\"\nvendor = \"{vendor}\"\nhost = \"{CAM_IP}\"\n\
         rtsp_port = 9\nhttp_port = {}\nusername = \"{}\"\npassword_env = \"CAM_PW\"\npull = \"on-demand\"\n\
         [device.streams]\nmain = \"{stream}\"\n{LEGACY_RECORDER}",
        base_config(""),
        cam.addr.port(),
        fake_camera::CAM_USER
    );
    let app = spawn_app_with_policy(&config, &[("CAM_PW", fake_camera::CAM_PASS)]).await;
    let api = app.http[0];
    (app, cam, api)
}

/// A GetStreamUri answer naming `uri` (written as the camera writes it).
fn stream_uri_answer(uri: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:trt=\"http://www.onvif.org/ver10/media/wsdl\" xmlns:tt=\"http://www.onvif.org/ver10/schema\"><s:Body><trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>{uri}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect></trt:MediaUri></trt:GetStreamUriResponse></s:Body></s:Envelope>"
    )
}

/// A signed GetStreamUri through camgate: (status, body).
async fn get_stream_uri(api: SocketAddr) -> (u16, String) {
    let soap = [("Content-Type", "application/soap+xml; charset=utf-8")];
    let (st, _, body) = http_body(
        api,
        "POST",
        "/cam/onvif/Media",
        &soap,
        &onvif("GetStreamUri", true),
    )
    .await;
    (st, body)
}

fn upstream_errors(metrics: &str, reason: &str) -> f64 {
    sample(
        metrics,
        &format!("camgate_http_upstream_errors_total{{device=\"cam\",reason=\"{reason}\"}}"),
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_uris_are_rewritten_whatever_content_type_the_camera_claims() {
    let (app, cam, api) = scripted_setup("hikvision", "/Streaming/Channels/101", "").await;
    let camera_uri = format!(
        "rtsp://{CAM_IP}:554/Streaming/Channels/101?transportmode=unicast&amp;profile=Profile_1"
    );
    let want = format!(
        "<tt:Uri>rtsp://127.0.0.1:{}/cam/main</tt:Uri>",
        app.rtsp.port()
    );
    let envelope = stream_uri_answer(&camera_uri);
    let multipart =
        format!("--b\r\nContent-Type: application/soap+xml\r\n\r\n{envelope}\r\n--b--\r\n");
    for (ct, body) in [
        ("application/soap+xml; charset=utf-8", envelope.clone()),
        ("application/octet-stream", envelope.clone()),
        ("multipart/mixed; boundary=b", multipart),
        ("text/plain", envelope.clone()),
        ("image/jpeg", envelope.clone()),
        ("", envelope.clone()),
    ] {
        cam.set(ApiReply::ok(ct, body));
        let (st, body) = get_stream_uri(api).await;
        assert_eq!(st, 200, "{ct}: {body}");
        assert!(body.contains(&want), "{ct}: {body}");
        assert!(!body.contains(CAM_IP), "{ct}: {body}");
    }
    // ISAPI streaming channels and playback search, as octet-stream.
    let auth = basic();
    cam.set(ApiReply::ok(
        "application/octet-stream",
        format!("<StreamingChannel><Transport><rtspPortNo>554</rtspPortNo></Transport><url>rtsp://{CAM_IP}/Streaming/Channels/101</url></StreamingChannel>"),
    ));
    let (st, _, body) = http(
        api,
        "GET",
        "/cam/ISAPI/Streaming/channels/101",
        &[("Authorization", &auth)],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains(&format!("rtsp://127.0.0.1:{}/cam/main", app.rtsp.port())),
        "{body}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_naming_other_hosts_never_reach_the_recorder() {
    let (app, cam, api) = scripted_setup("hikvision", "/Streaming/Channels/101", "").await;
    let camgate_rtsp = format!("127.0.0.1:{}", app.rtsp.port());
    let foreign = [
        "rtsp://10.9.9.9/Streaming/Channels/101".to_string(),
        "rtsp://10.9.9.9:554/Streaming/Channels/101?transportmode=unicast".into(),
        "http://evil.example/onvif/Media".into(),
        "rtsps://10.9.9.9/x".into(),
        // Entity- and percent-encoded hosts, and encoded separators.
        "rtsp://&#49;0.9.9.9/Streaming/Channels/101".into(),
        "rtsp://&#x31;&#x30;.9.9.9/Streaming/Channels/101".into(),
        "rtsp:&#47;&#47;10.9.9.9/Streaming/Channels/101".into(),
        "&#114;tsp://10.9.9.9/Streaming/Channels/101".into(),
        "rtsp://%31%30.9.9.9/Streaming/Channels/101".into(),
        "http://%65vil.example/x".into(),
        // IPv6 literals, the camera's own address among them.
        "rtsp://[::ffff:10.9.9.9]:554/Streaming/Channels/101".into(),
        "rtsp://[2001:db8::9]/Streaming/Channels/101".into(),
        format!("rtsp://[::ffff:{CAM_IP}]/Streaming/Channels/101"),
        // Userinfo tricks, camgate's own address as the bait.
        "rtsp://camgate@10.9.9.9/Streaming/Channels/101".into(),
        format!("rtsp://{camgate_rtsp}@10.9.9.9/Streaming/Channels/101"),
        format!("rtsp://{camgate_rtsp}&#64;10.9.9.9/Streaming/Channels/101"),
        format!("http://{camgate_rtsp}\"@evil.example/x"),
        format!("http://{camgate_rtsp} @evil.example/x"),
        format!("rtsp://evil.example\\@{CAM_IP}/Streaming/Channels/101"),
        // Lenient parsers' forms.
        "http:evil.example/x".into(),
        "http:\\\\evil.example\\x".into(),
        "//evil.example/x".into(),
    ];
    for content_type in ["application/soap+xml", "application/octet-stream"] {
        for uri in &foreign {
            cam.set(ApiReply::ok(content_type, stream_uri_answer(uri)));
            let (st, body) = get_stream_uri(api).await;
            assert_eq!(st, 502, "{content_type} {uri}: {body}");
            assert!(
                !body.contains("10.9.9.9") && !body.contains("evil") && !body.contains(CAM_IP),
                "{body}"
            );
        }
    }
    let metrics = http(app.admin, "GET", "/metrics", &[]).await.2;
    assert!(
        upstream_errors(&metrics, "foreign_url") >= 2.0 * (foreign.len() as f64 - 2.0),
        "{metrics}"
    );

    // A stream of the camera's that camgate does not serve: refused too,
    // as octet-stream or not.
    cam.set(ApiReply::ok(
        "application/octet-stream",
        stream_uri_answer(&format!("rtsp://{CAM_IP}/Streaming/Channels/102")),
    ));
    assert_eq!(get_stream_uri(api).await.0, 502);
    // Bodies camgate cannot read as a recorder would: UTF-16 (declared,
    // or autodetected from NULs), a compressed body, a foreign charset.
    let utf16: Vec<u8> = stream_uri_answer("rtsp://10.9.9.9/x")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let declared = stream_uri_answer("rtsp://10.9.9.9/x").replace("UTF-8", "UTF-16");
    for reply in [
        ApiReply::ok("application/octet-stream", utf16),
        ApiReply::ok("application/soap+xml", declared),
        ApiReply::ok("application/soap+xml", stream_uri_answer("x"))
            .with_header("Content-Encoding: gzip"),
        ApiReply::ok(
            "application/soap+xml; charset=utf-7",
            stream_uri_answer("+AHI-tsp://10.9.9.9/x"),
        ),
    ] {
        cam.set(reply.clone());
        let (st, body) = get_stream_uri(api).await;
        assert_eq!(st, 502, "{reply:?}: {body}");
    }
    let metrics = http(app.admin, "GET", "/metrics", &[]).await.2;
    assert!(
        upstream_errors(&metrics, "unknown_stream") >= 1.0,
        "{metrics}"
    );
    assert!(
        upstream_errors(&metrics, "unrewritable") >= 4.0,
        "{metrics}"
    );

    // ISAPI playback search answered as octet-stream with a foreign URI.
    let auth = basic();
    cam.set(ApiReply::ok(
        "application/octet-stream",
        "<CMSearchResult><matchList><searchMatchItem><mediaSegmentDescriptor><playbackURI>rtsp://10.9.9.9/Streaming/tracks/101?starttime=20240101T000000Z</playbackURI></mediaSegmentDescriptor></searchMatchItem></matchList></CMSearchResult>",
    ));
    let (st, _, body) = http_body(
        api,
        "POST",
        "/cam/ISAPI/ContentMgmt/search",
        &[("Authorization", &auth)],
        "<CMSearchDescription/>",
    )
    .await;
    assert_eq!(st, 502, "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dahua_answers_naming_rtsp_urls_are_rewritten_or_refused() {
    let (app, cam, api) = scripted_setup("dahua", "/cam/realmonitor?channel=1&subtype=0", "").await;
    let auth = basic();
    let rtsp = format!("rtsp://127.0.0.1:{}/cam/main", app.rtsp.port());
    let json = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let rpc = r#"{"method":"magicBox.getSerialNo","params":null,"id":1}"#;
    // JSON with escaped slashes, named octet-stream: rewritten.
    cam.set(ApiReply::ok(
        "application/octet-stream",
        format!(r#"{{"result":true,"params":{{"url":"rtsp:\/\/{CAM_IP}:554\/cam\/realmonitor?channel=1&subtype=0"}},"id":1}}"#),
    ));
    let (st, _, body) = http_body(api, "POST", "/cam/RPC2", &json, rpc).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains(&rtsp), "{body}");
    assert!(!body.contains(CAM_IP), "{body}");
    // Naming another host, JSON-escaped every way: refused.
    for url in [
        r"rtsp:\/\/10.9.9.9\/cam\/realmonitor?channel=1&subtype=0",
        r"\u0072tsp://10.9.9.9/cam/realmonitor",
        r"rtsp:\u002f\u002f10.9.9.9/cam/realmonitor",
    ] {
        cam.set(ApiReply::ok(
            "application/octet-stream",
            format!(r#"{{"result":true,"params":{{"url":"{url}"}},"id":1}}"#),
        ));
        let (st, _, body) = http_body(api, "POST", "/cam/RPC2", &json, rpc).await;
        assert_eq!(st, 502, "{url}: {body}");
    }
    // A CGI's key=value text, as text/plain and as octet-stream.
    let path = "/cam/cgi-bin/configManager.cgi?action=getConfig&name=Encode";
    for ct in ["text/plain", "application/octet-stream"] {
        cam.set(ApiReply::ok(
            ct,
            format!("table.Encode[0].Url=rtsp://{CAM_IP}/cam/realmonitor?channel=1&subtype=0\r\n"),
        ));
        let (st, _, body) = http(api, "GET", path, &[("Authorization", &auth)]).await;
        assert_eq!(st, 200, "{ct}: {body}");
        assert!(body.contains(&rtsp), "{body}");
        cam.set(ApiReply::ok(
            ct,
            "table.Encode[0].Url=rtsp://10.9.9.9/cam/realmonitor?channel=1&subtype=0\r\n",
        ));
        let (st, _, body) = http(api, "GET", path, &[("Authorization", &auth)]).await;
        assert_eq!(st, 502, "{ct}: {body}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_stalling_mid_binary_answer_closes_the_recorders_connection() {
    let (app, cam, api) =
        scripted_setup("hikvision", "/Streaming/Channels/101", "timeout_secs = 2").await;
    let mut reply = ApiReply::ok("image/jpeg", vec![0xffu8; 100_000]);
    reply.stall_after = Some(1000);
    cam.set(reply);
    let mut s = tokio::net::TcpStream::connect(api).await.unwrap();
    let req = format!(
        "GET /cam/ISAPI/Streaming/channels/101/picture HTTP/1.1\r\nHost: {api}\r\nAuthorization: {}\r\n\r\n",
        basic()
    );
    tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .unwrap();
    let t = std::time::Instant::now();
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read_to_end(&mut s, &mut got),
    )
    .await;
    assert!(read.is_ok(), "the recorder's connection hung");
    let elapsed = t.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500) && elapsed < Duration::from_secs(10),
        "{elapsed:?}"
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("content-length: 100000"), "{text}");
    assert!(got.len() < 100_000, "a truncated answer taken as whole");
    let metrics = http(app.admin, "GET", "/metrics", &[]).await.2;
    assert!(upstream_errors(&metrics, "timeout") >= 1.0, "{metrics}");
    // A binary answer that completes passes untouched.
    cam.set(ApiReply::ok("image/jpeg", fake_camera::snapshot().to_vec()));
    let (st, _, body) = http(
        api,
        "GET",
        "/cam/ISAPI/Streaming/channels/101/picture",
        &[("Authorization", &basic())],
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(body, String::from_utf8_lossy(&fake_camera::snapshot()));
    app.stop().await;
}

/// On an endpoint not known to name URIs, an answer the camera calls
/// binary is sniffed: markup or JSON is read and checked like text (a
/// foreign URL refused, the camera's address rewritten), while a real
/// image passes untouched even with URL-like bytes inside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_a_camera_calls_binary_is_checked_like_text() {
    let (app, cam, api) = scripted_setup("hikvision", "/Streaming/Channels/101", "").await;
    let path = "/cam/ISAPI/Streaming/channels/101/picture";
    let auth = [("Authorization", basic())];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for ct in ["image/jpeg", "application/octet-stream"] {
        for body in [
            "<?xml version=\"1.0\"?><Event><url>rtsp://10.9.9.9/x</url></Event>".to_string(),
            " \r\n{\"url\":\"http://evil.example/x\"}".to_string(),
        ] {
            cam.set(ApiReply::ok(ct, body.clone()));
            let (st, _, got) = http(api, "GET", path, &auth).await;
            assert_eq!(st, 502, "{ct} {body}: {got}");
        }
        cam.set(ApiReply::ok(
            ct,
            format!("<Event><url>http://{CAM_IP}/ISAPI/x</url></Event>"),
        ));
        let (st, _, got) = http(api, "GET", path, &auth).await;
        assert_eq!(st, 200, "{got}");
        assert!(!got.contains(CAM_IP), "{got}");
    }
    // The same markup in UTF-16 (a byte order mark, or none): read, and
    // refused as not UTF-8 rather than passed unchecked.
    for bom in [&b"\xFF\xFE"[..], b""] {
        let mut utf16 = bom.to_vec();
        for u in "<Event><url>rtsp://10.9.9.9/x</url></Event>".encode_utf16() {
            utf16.extend_from_slice(&u.to_le_bytes());
        }
        cam.set(ApiReply::ok("application/octet-stream", utf16));
        let (st, _, got) = http(api, "GET", path, &auth).await;
        assert_eq!(st, 502, "{got}");
    }
    let mut jpeg = fake_camera::snapshot().to_vec();
    jpeg.extend_from_slice(b"http://evil.example/exif");
    cam.set(ApiReply::ok("image/jpeg", jpeg.clone()));
    let (st, _, got) = http(api, "GET", path, &auth).await;
    assert_eq!(st, 200);
    assert_eq!(got, String::from_utf8_lossy(&jpeg));
    let metrics = http(app.admin, "GET", "/metrics", &[]).await.2;
    assert!(upstream_errors(&metrics, "foreign_url") >= 4.0, "{metrics}");
    app.stop().await;
}
