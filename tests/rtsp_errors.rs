//! What camgate answers to wrong, forbidden, unknown and hostile requests,
//! and that other sessions carry on meanwhile.

mod support;

use std::time::Duration;

use base64::Engine;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(extra_rtsp: &str) -> String {
    format!(
        r#"{}
[[recorder]]
name = "limited"
username = "limited"
password = "limited-pw"
devices = ["other"]
[[recorder]]
name = "elsewhere"
username = "elsewhere"
password = "elsewhere-pw"
allow_from = ["192.0.2.0/24"]
devices = ["*"]
[[recorder]]
name = "legacy"
username = "legacy"
password = "legacy-pw"
cleartext_auth = true
devices = ["*"]
[[device]]
id = "demo"
simulated = true
[[device]]
id = "other"
simulated = true
[[device]]
id = "lazy"
simulated = true
pull = "on-demand"
[[device]]
id = "dead"
host = "127.0.0.1"
rtsp_port = 9
[device.streams]
main = "/x"
"#,
        base_config(extra_rtsp)
    )
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// DESCRIBE with Digest credentials, on one connection from `from` (the
/// nonce comes from a first, unauthenticated DESCRIBE).
async fn describe_digest(app: &TestApp, path: &str, user: &str, pass: &str) -> String {
    let mut s = TcpStream::connect(app.rtsp).await.unwrap();
    let url = app.bare_url(path);
    let nonce = rtsp_nonce(&mut s, &url).await;
    let auth = digest_auth(user, pass, &nonce, "DESCRIBE", &url);
    let req = format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {auth}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut s).await.expect("a response")
}

async fn describe(app: &TestApp, path: &str, auth: Option<String>) -> String {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "DESCRIBE {} RTSP/1.0\r\nCSeq: 2\r\n{auth}\r\n",
        app.bare_url(path)
    );
    raw_request(app.rtsp, &req).await.expect("a response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_codes_for_auth_permissions_and_paths() {
    let app = spawn_app(&config("describe_timeout_secs = 1"), &[]).await;

    let r = describe(&app, "demo/main", None).await;
    assert_eq!(status(&r), 401, "{r}");
    assert!(
        r.contains("WWW-Authenticate: Digest realm=\"camgate\""),
        "{r}"
    );
    // Basic is offered because one recorder (legacy) opted in.
    assert!(
        r.contains("WWW-Authenticate: Basic realm=\"camgate\""),
        "{r}"
    );
    assert!(r.contains("CSeq: 2"));

    assert_eq!(
        status(&describe_digest(&app, "demo/main", NVR_USER, "wrong").await),
        401
    );
    assert_eq!(
        status(&describe_digest(&app, "demo/main", "nobody", "x").await),
        401
    );
    // Basic from a recorder that did not opt in: refused, right password
    // or not; from the one that did: accepted.
    assert_eq!(
        status(&describe(&app, "demo/main", Some(basic(NVR_USER, NVR_PASS))).await),
        401
    );
    assert_eq!(
        status(&describe(&app, "demo/main", Some(basic("legacy", "legacy-pw"))).await),
        200
    );
    assert_eq!(
        status(&describe_digest(&app, "demo/main", NVR_USER, NVR_PASS).await),
        200
    );
    // Valid recorder, device not in its list.
    assert_eq!(
        status(&describe_digest(&app, "demo/main", "limited", "limited-pw").await),
        403
    );
    assert_eq!(
        status(&describe_digest(&app, "other/main", "limited", "limited-pw").await),
        200
    );
    // Valid recorder, connecting from outside its allow_from: the same 401
    // as a wrong password, so the address check is no password oracle.
    let outside = describe_digest(&app, "demo/main", "elsewhere", "elsewhere-pw").await;
    let wrong = describe_digest(&app, "demo/main", "elsewhere", "not-it").await;
    assert_eq!(status(&outside), 401);
    assert_eq!(status(&wrong), 401);
    let ok = Some(basic("legacy", "legacy-pw"));
    // Unknown device, unknown stream, no path.
    for p in ["nope/main", "demo/nope", "demo", ""] {
        assert_eq!(
            status(&describe(&app, p, ok.clone()).await),
            404,
            "path {p:?}"
        );
    }
    // A camera that never answers: DESCRIBE waits, bounded, then 503.
    let t = std::time::Instant::now();
    assert_eq!(status(&describe(&app, "dead/main", ok.clone()).await), 503);
    assert!(t.elapsed() < Duration::from_secs(5));
    // On-demand: the first DESCRIBE connects the (simulated) camera.
    assert_eq!(status(&describe(&app, "lazy/main", ok.clone()).await), 200);

    // OPTIONS needs no credentials; unknown methods get 405.
    let r = raw_request(app.rtsp, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status(&r), 200);
    assert!(r.contains(
        "Public: OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
    ));
    let r = raw_request(
        app.rtsp,
        &format!(
            "ANNOUNCE {} RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            app.bare_url("demo/main")
        ),
    )
    .await
    .unwrap();
    assert_eq!(status(&r), 405);
    // Missing CSeq: 400.
    let r = raw_request(app.rtsp, "OPTIONS * RTSP/1.0\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status(&r), 400);
    // PLAY of an unknown session: 454.
    let r = raw_request(
        app.rtsp,
        &format!(
            "PLAY {} RTSP/1.0\r\nCSeq: 3\r\nSession: DEADBEEF\r\nAuthorization: {}\r\n\r\n",
            app.bare_url("demo/main"),
            basic("legacy", "legacy-pw")
        ),
    )
    .await
    .unwrap();
    assert_eq!(status(&r), 454);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retina_and_ffmpeg_see_auth_failures() {
    let app = spawn_app(&config(""), &[]).await;
    let Err(err) = retina_play(&app.bare_url("demo/main"), NVR_USER, "wrong", false).await else {
        panic!("wrong password accepted");
    };
    assert_eq!(err.status_code(), Some(401), "{err}");
    let (ok, stderr) = ffmpeg_decode(
        &format!("rtsp://{NVR_USER}:wrong@{}/demo/main", app.rtsp),
        "tcp",
        1,
    )
    .await;
    assert!(!ok && stderr.contains("401"), "{stderr}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_are_closed_while_others_keep_receiving() {
    let app = spawn_app(&config(""), &[]).await;
    let url = app.bare_url("demo/main");
    let watcher = tokio::spawn(async move {
        let s = retina_play(&url, NVR_USER, NVR_PASS, false).await.unwrap();
        retina_frames(s, Duration::from_secs(20), 150).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Garbage bytes: 400 or a clean close, never a hang.
    let mut s = TcpStream::connect(app.rtsp).await.unwrap();
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x42, 0x99, 0x10, 0x13])
        .await
        .unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        n == 0 || String::from_utf8_lossy(&buf).starts_with("RTSP/1.0 400"),
        "{buf:?}"
    );

    // An oversized request (headers beyond the 8 KiB limit).
    let mut s = TcpStream::connect(app.rtsp).await.unwrap();
    let big = format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("RTSP/1.0 400"));

    // A huge Content-Length.
    let r = raw_request(
        app.rtsp,
        "SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\n",
    )
    .await;
    assert!(r.is_none() || status(&r.unwrap()) == 400);

    // An HTTP request on the RTSP port.
    let r = raw_request(app.rtsp, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(r.is_none() || status(&r.unwrap()) == 400);

    // Many garbage connections at once.
    let mut conns = Vec::new();
    for i in 0..50u8 {
        let mut s = TcpStream::connect(app.rtsp).await.unwrap();
        let _ = s.write_all(&[i, 0, 0xff, b'\n', b'\n']).await;
        conns.push(s);
    }
    drop(conns);

    let seen = watcher.await.unwrap();
    assert_eq!(
        seen.video_frames, 150,
        "the playing recorder kept receiving: {seen:?}"
    );
    assert_eq!(seen.loss, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_lock_the_address_out_across_connections() {
    let app = spawn_app(&config(""), &[]).await;
    for _ in 0..6 {
        assert_eq!(
            status(&describe_digest(&app, "demo/main", NVR_USER, "wrong").await),
            401
        );
    }
    // Locked out: the right password, on a new connection, is refused
    // unchecked ...
    assert_eq!(
        status(&describe_digest(&app, "demo/main", NVR_USER, NVR_PASS).await),
        401
    );
    // ... while another address is not affected.
    let mut s = connect_from("127.0.0.2", app.rtsp).await;
    let url = app.bare_url("demo/main");
    let nonce = rtsp_nonce(&mut s, &url).await;
    let auth = digest_auth(NVR_USER, NVR_PASS, &nonce, "DESCRIBE", &url);
    s.write_all(
        format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {auth}\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status(&read_response(&mut s).await.unwrap()), 200);
    // The lockout ends (0.5 s after the sixth failure).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        status(&describe_digest(&app, "demo/main", NVR_USER, NVR_PASS).await),
        200
    );
    let metrics = http(app.admin, "GET", "/metrics", &[]).await.2;
    assert!(
        sample(
            &metrics,
            "camgate_auth_failures_total{protocol=\"rtsp\",reason=\"throttled\"}"
        )
        .is_some_and(|v| v >= 1.0),
        "{metrics}"
    );
    app.stop().await;
}

/// A TCP connection from a chosen loopback address.
async fn connect_from(ip: &str, to: std::net::SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_expire_but_sessions_held_are_never_cut() {
    let cfg = format!("{}[auth]\nnonce_lifetime_secs = 1\n", config(""));
    let app = spawn_app(&cfg, &[]).await;
    let base = app.bare_url("demo/main");
    let mut s = TcpStream::connect(app.rtsp).await.unwrap();
    let nonce = rtsp_nonce(&mut s, &base).await;
    let auth = |m: &str, u: &str| digest_auth(NVR_USER, NVR_PASS, &nonce, m, u);
    let setup_uri = format!("{base}/trackID=0");
    s.write_all(format!(
        "SETUP {setup_uri} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n",
        auth("SETUP", &setup_uri)
    ).as_bytes()).await.unwrap();
    let r = read_response(&mut s).await.unwrap();
    assert_eq!(status(&r), 200, "{r}");
    let session = session_header(&r);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The nonce is stale now; a keepalive inside the session still passes.
    s.write_all(format!(
        "GET_PARAMETER {base} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {}\r\nSession: {session}\r\n\r\n",
        auth("GET_PARAMETER", &base)
    ).as_bytes()).await.unwrap();
    let r = read_response(&mut s).await.unwrap();
    assert_eq!(status(&r), 200, "{r}");
    // A new connection with the stale nonce: 401 with stale=true, and the
    // same header replayed for another device: refused outright.
    let mut t = TcpStream::connect(app.rtsp).await.unwrap();
    t.write_all(
        format!(
            "DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {}\r\n\r\n",
            auth("DESCRIBE", &base)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let r = read_response(&mut t).await.unwrap();
    assert_eq!(status(&r), 401, "{r}");
    assert!(r.contains("stale=true"), "{r}");
    // ffmpeg and retina reconnect with a fresh nonce after expiry.
    let (ok, stderr) = ffmpeg_decode(
        &format!("rtsp://{NVR_USER}:{NVR_PASS}@{}/demo/main", app.rtsp),
        "tcp",
        1,
    )
    .await;
    assert!(ok, "{stderr}");
    let sess = retina_play(&base, NVR_USER, NVR_PASS, false).await.unwrap();
    assert!(
        retina_frames(sess, Duration::from_secs(5), 3)
            .await
            .video_frames
            >= 3
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sniffed_digest_header_opens_no_other_device() {
    let app = spawn_app(&config(""), &[]).await;
    let mut s = TcpStream::connect(app.rtsp).await.unwrap();
    let demo = app.bare_url("demo/main");
    let other = app.bare_url("other/main");
    let nonce = rtsp_nonce(&mut s, &demo).await;
    let sniffed = digest_auth(NVR_USER, NVR_PASS, &nonce, "DESCRIBE", &demo);
    for (uri, want) in [(&demo, 200), (&other, 401)] {
        let mut t = TcpStream::connect(app.rtsp).await.unwrap();
        t.write_all(
            format!("DESCRIBE {uri} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {sniffed}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        assert_eq!(status(&read_response(&mut t).await.unwrap()), want, "{uri}");
    }
    // From another address, the nonce is not ours at all.
    let mut t = connect_from("127.0.0.2", app.rtsp).await;
    t.write_all(
        format!("DESCRIBE {demo} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {sniffed}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status(&read_response(&mut t).await.unwrap()), 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_lengths_and_nonces_before_authentication_never_kill_camgate() {
    let app = spawn_app(&config(""), &[]).await;
    let url = app.bare_url("demo/main");
    let watcher = tokio::spawn({
        let url = url.clone();
        async move {
            let s = retina_play(&url, NVR_USER, NVR_PASS, false).await.unwrap();
            retina_frames(s, Duration::from_secs(20), 100).await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    for len in [
        "18446744073709551615",
        "18446744073709551609",
        "99999999999999999999",
        "+1",
        "-1",
    ] {
        let r = raw_request(
            app.rtsp,
            &format!("DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nContent-Length: {len}\r\n\r\nabc"),
        )
        .await;
        assert!(
            r.is_none() || status(&r.clone().unwrap()) == 400,
            "{len}: {r:?}"
        );
    }
    for nonce in [
        "éééééééééééééééééééééééé",
        "0000000000000000é",
        "\u{2003}",
        "ﬀﬀﬀﬀﬀﬀﬀﬀﬀﬀﬀﬀﬀﬀﬀﬀ",
    ] {
        let h = format!(
            "Digest username=\"{NVR_USER}\", realm=\"camgate\", nonce=\"{nonce}\", uri=\"{url}\", response=\"00\""
        );
        let r = describe(&app, "demo/main", Some(h)).await;
        assert_eq!(status(&r), 401, "{r}");
    }
    let seen = watcher.await.unwrap();
    assert_eq!(seen.video_frames, 100, "{seen:?}");
    // Still serving new recorders.
    assert_eq!(
        status(&describe_digest(&app, "demo/main", "limited", "limited-pw").await),
        403
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_cap_refuses_extra_connections() {
    let app = spawn_app(&config("max_connections = 2"), &[]).await;
    let _a = TcpStream::connect(app.rtsp).await.unwrap();
    let _b = TcpStream::connect(app.rtsp).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = raw_request(app.rtsp, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n").await;
    assert!(r.is_none() || status(&r.clone().unwrap()) == 503, "{r:?}");
    drop(_a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = raw_request(app.rtsp, "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(status(&r), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_lifecycle_over_raw_rtsp() {
    let app = spawn_app(&config(""), &[]).await;
    let base = app.bare_url("demo/main");
    let mut s = TcpStream::connect(app.rtsp).await.unwrap();
    let nonce = rtsp_nonce(&mut s, &base).await;
    let auth = digest_auth(
        NVR_USER,
        NVR_PASS,
        &nonce,
        "SETUP",
        &format!("{base}/trackID=0"),
    );
    let mut send = async |req: String| -> String {
        s.write_all(req.as_bytes()).await.unwrap();
        read_response(&mut s).await.unwrap()
    };
    let r = send(format!(
        "SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {auth}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n\r\n"
    ))
    .await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        r.contains("Transport: RTP/AVP/TCP;unicast;interleaved=4-5"),
        "{r}"
    );
    let session = session_header(&r);
    assert!(r.contains(";timeout=60"));
    // Unsupported transport.
    let r = send(format!(
        "SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 2\r\nTransport: RTP/AVP;multicast\r\nSession: {session}\r\n\r\n"
    ))
    .await;
    assert_eq!(status(&r), 461, "{r}");
    // A track that does not exist.
    let r = send(format!(
        "SETUP {base}/trackID=7 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;interleaved=8-9\r\nSession: {session}\r\n\r\n"
    ))
    .await;
    assert_eq!(status(&r), 404, "{r}");
    // Keepalives with the session.
    let r = send(format!(
        "GET_PARAMETER {base} RTSP/1.0\r\nCSeq: 4\r\nSession: {session}\r\n\r\n"
    ))
    .await;
    assert_eq!(status(&r), 200, "{r}");
    let r = send(format!(
        "PLAY {base} RTSP/1.0\r\nCSeq: 5\r\nSession: {session}\r\nRange: npt=0.000-\r\n\r\n"
    ))
    .await;
    assert_eq!(status(&r), 200, "{r}");
    assert!(
        r.contains("RTP-Info: url=") && r.contains("trackID=0;seq="),
        "{r}"
    );
    // Media arrives on channel 4, starting at a key frame (with SPS first).
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).await.unwrap();
    assert_eq!(hdr[0], b'$');
    assert_eq!(hdr[1], 4);
    let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
    let mut pkt = vec![0; len];
    s.read_exact(&mut pkt).await.unwrap();
    assert_eq!(pkt[12] & 0x1f, 7, "first NAL is the SPS");
    app.stop().await;
}
