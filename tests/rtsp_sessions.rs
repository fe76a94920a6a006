//! Recorder sessions: a SETUP creates nothing until it is known good,
//! sessions are capped per connection and per account, and a TEARDOWN
//! racing a PLAY (on one connection or from another) never leaves media
//! flowing to a session that no longer exists.

mod support;

use std::time::Duration;

use support::*;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

fn config(extra_rtsp: &str) -> String {
    format!(
        "{}[[recorder]]\nname = \"other\"\nusername = \"other\"\npassword = \"other-pw\"\ndevices = [\"*\"]\n\
         [[device]]\nid = \"demo\"\nsimulated = true\n",
        base_config(extra_rtsp)
    )
}

fn status(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A raw recorder connection, authenticated by its first request (camgate
/// carries credentials over within a connection).
struct Rec {
    s: TcpStream,
    base: String,
    cseq: u32,
}

impl Rec {
    async fn connect(app: &TestApp, user: &str, pass: &str) -> Rec {
        let mut s = TcpStream::connect(app.rtsp).await.unwrap();
        let base = app.bare_url("demo/main");
        let nonce = rtsp_nonce(&mut s, &base).await;
        let auth = digest_auth(user, pass, &nonce, "DESCRIBE", &base);
        let req = format!("DESCRIBE {base} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {auth}\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let head = read_response(&mut s).await.unwrap();
        assert_eq!(status(&head), 200, "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        let mut body = vec![0; len];
        tokio::io::AsyncReadExt::read_exact(&mut s, &mut body)
            .await
            .unwrap();
        Rec { s, base, cseq: 10 }
    }

    /// One request line and headers, CSeq added.
    fn req(&mut self, method: &str, uri: &str, headers: &str) -> String {
        self.cseq += 1;
        format!(
            "{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n{headers}\r\n",
            self.cseq
        )
    }

    async fn send(&mut self, req: String) -> String {
        self.s.write_all(req.as_bytes()).await.unwrap();
        read_response(&mut self.s).await.expect("a response")
    }

    /// SETUP track 0 over UDP to `ports`, in `session` if given.
    async fn setup_udp(&mut self, ports: (u16, u16), session: Option<&str>) -> String {
        let uri = format!("{}/trackID=0", self.base);
        let sess = session.map_or(String::new(), |s| format!("Session: {s}\r\n"));
        let r = self.req(
            "SETUP",
            &uri,
            &format!(
                "Transport: RTP/AVP;unicast;client_port={}-{}\r\n{sess}",
                ports.0, ports.1
            ),
        );
        self.send(r).await
    }

    fn play(&mut self, session: &str) -> String {
        let base = self.base.clone();
        self.req(
            "PLAY",
            &base,
            &format!("Session: {session}\r\nRange: npt=0.000-\r\n"),
        )
    }

    fn teardown(&mut self, session: &str) -> String {
        let base = self.base.clone();
        self.req("TEARDOWN", &base, &format!("Session: {session}\r\n"))
    }
}

/// Sessions the admin API lists (every session, playing or not).
async fn api_sessions(app: &TestApp) -> usize {
    let (st, _, body) = http(app.admin, "GET", "/api/v1/devices", &[]).await;
    assert_eq!(st, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|d| d["streams"].as_array().cloned().unwrap_or_default())
        .map(|s| s["recorders"].as_array().map_or(0, Vec::len))
        .sum()
}

async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = http(app.admin, "GET", "/metrics", &[]).await.2;
    sample(&text, series).unwrap_or(0.0)
}

const TOO_MANY: &str =
    "camgate_auth_failures_total{protocol=\"rtsp\",reason=\"too_many_sessions\"}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_setup_leaves_nothing_and_a_connection_holds_sixteen() {
    let app = spawn_app(&config(""), &[]).await;
    let mut r = Rec::connect(&app, NVR_USER, NVR_PASS).await;
    let base = r.base.clone();
    // Refused SETUPs without a Session header: nothing is created.
    for (uri, transport, want) in [
        (
            format!("{base}/trackID=7"),
            "RTP/AVP;unicast;client_port=5000-5001",
            404,
        ),
        (format!("{base}/trackID=0"), "RTP/AVP;multicast", 461),
        (
            format!("{base}/trackID=0"),
            "RTP/AVP/TCP;unicast;interleaved=3-3",
            461,
        ),
        (
            app.bare_url("demo/nope/trackID=0"),
            "RTP/AVP;unicast;client_port=5000-5001",
            404,
        ),
        (
            app.bare_url("nope/main/trackID=0"),
            "RTP/AVP;unicast;client_port=5000-5001",
            404,
        ),
    ] {
        let req = r.req("SETUP", &uri, &format!("Transport: {transport}\r\n"));
        let head = r.send(req).await;
        assert_eq!(status(&head), want, "{uri} {transport}: {head}");
        assert!(!head.contains("Session:"), "{head}");
    }
    let req = r.req("SETUP", &format!("{base}/trackID=0"), "");
    assert_eq!(status(&r.send(req).await), 461);
    assert_eq!(api_sessions(&app).await, 0);

    // Sixteen sessions on one connection, not seventeen.
    let mut ids = Vec::new();
    for i in 0..16u16 {
        let head = r.setup_udp((6000 + 2 * i, 6001 + 2 * i), None).await;
        assert_eq!(status(&head), 200, "{i}: {head}");
        ids.push(session_header(&head));
    }
    let head = r.setup_udp((7000, 7001), None).await;
    assert_eq!(status(&head), 453, "{head}");
    assert!(head.contains("Not Enough Bandwidth"), "{head}");
    assert_eq!(api_sessions(&app).await, 16);
    assert!(metric(&app, TOO_MANY).await >= 1.0);
    // A SETUP within an existing session is no new session: still fine.
    let head = r.setup_udp((6000, 6001), Some(&ids[0])).await;
    assert_eq!(status(&head), 200, "{head}");
    // A TEARDOWN frees a place.
    let td = r.teardown(&ids.remove(0));
    assert_eq!(status(&r.send(td).await), 200);
    let head = r.setup_udp((7000, 7001), None).await;
    assert_eq!(status(&head), 200, "{head}");
    ids.push(session_header(&head));
    for id in &ids {
        let td = r.teardown(id);
        assert_eq!(status(&r.send(td).await), 200);
    }
    assert_eq!(api_sessions(&app).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_accounts_sessions_are_capped_across_its_connections() {
    let app = spawn_app(
        &config("max_sessions_per_recorder = 6\nsession_timeout_secs = 5"),
        &[],
    )
    .await;
    let refused_before = metric(&app, TOO_MANY).await;
    let mut conns = Vec::new();
    let (mut ok, mut refused) = (0, 0);
    for c in 0..4u16 {
        let mut r = Rec::connect(&app, NVR_USER, NVR_PASS).await;
        for i in 0..2u16 {
            let port = 20_000 + 4 * c + 2 * i;
            let head = r.setup_udp((port, port + 1), None).await;
            match status(&head) {
                200 => ok += 1,
                453 => refused += 1,
                _ => panic!("{head}"),
            }
        }
        conns.push(r);
    }
    assert_eq!((ok, refused), (6, 2));
    // TCP sessions count too.
    let mut t = Rec::connect(&app, NVR_USER, NVR_PASS).await;
    let uri = format!("{}/trackID=0", t.base);
    let req = t.req(
        "SETUP",
        &uri,
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
    );
    assert_eq!(status(&t.send(req).await), 453);
    assert_eq!(metric(&app, TOO_MANY).await - refused_before, 3.0);
    // Another account is not held back by this one.
    let mut o = Rec::connect(&app, "other", "other-pw").await;
    let head = o.setup_udp((21_000, 21_001), None).await;
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(api_sessions(&app).await, 7);
    // The connections go; their UDP sessions time out (RFC 2326 §3.4), and
    // the account may set up again.
    drop((conns, t, o));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(25);
    while api_sessions(&app).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sessions never timed out"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut r = Rec::connect(&app, NVR_USER, NVR_PASS).await;
    for i in 0..6u16 {
        let head = r.setup_udp((22_000 + 2 * i, 22_001 + 2 * i), None).await;
        assert_eq!(status(&head), 200, "{i}: {head}");
    }
    app.stop().await;
}

/// Datagrams that arrive on either socket within `dur`.
async fn datagrams(socks: &[&UdpSocket], dur: Duration) -> usize {
    let mut n = 0;
    let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
    let deadline = tokio::time::Instant::now() + dur;
    loop {
        let got = tokio::time::timeout_at(deadline, async {
            tokio::select! {
                r = socks[0].recv(&mut a) => r,
                r = socks[1].recv(&mut b) => r,
            }
        })
        .await;
        match got {
            Ok(Ok(_)) => n += 1,
            _ => return n,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_racing_play_leaves_nothing_streaming() {
    let app = spawn_app(&config(""), &[]).await;
    let rtp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let rtcp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ports = (
        rtp.local_addr().unwrap().port(),
        rtcp.local_addr().unwrap().port(),
    );
    let mut a = Rec::connect(&app, NVR_USER, NVR_PASS).await;
    let mut b = Rec::connect(&app, NVR_USER, NVR_PASS).await;

    // Unraced, media flows to the ports: the race below is a real one.
    let id = session_header(&a.setup_udp(ports, None).await);
    let play = a.play(&id);
    assert_eq!(status(&a.send(play).await), 200);
    assert!(datagrams(&[&rtp, &rtcp], Duration::from_secs(2)).await > 0);
    let td = a.teardown(&id);
    assert_eq!(status(&a.send(td).await), 200);

    for i in 0..150 {
        let head = a.setup_udp(ports, None).await;
        assert_eq!(status(&head), 200, "{i}: {head}");
        let id = session_header(&head);
        match i % 3 {
            // PLAY and TEARDOWN pipelined in one write.
            0 => {
                let both = a.play(&id) + &a.teardown(&id);
                a.s.write_all(both.as_bytes()).await.unwrap();
                let p = read_response(&mut a.s).await.unwrap();
                let t = read_response(&mut a.s).await.unwrap();
                assert_eq!((status(&p), status(&t)), (200, 200), "{p}{t}");
            }
            // PLAY on one connection, TEARDOWN on another, at once.
            1 => {
                let (play, td) = (a.play(&id), b.teardown(&id));
                let (p, t) = tokio::join!(a.send(play), b.send(td));
                assert!(matches!(status(&p), 200 | 454), "{p}");
                assert_eq!(status(&t), 200, "{t}");
            }
            // Two PLAYs at once, one pipelined with the TEARDOWN.
            _ => {
                let play_a = a.play(&id);
                let both = b.play(&id) + &b.teardown(&id);
                let (p, (q, t)) = tokio::join!(a.send(play_a), async {
                    b.s.write_all(both.as_bytes()).await.unwrap();
                    let q = read_response(&mut b.s).await.unwrap();
                    let t = read_response(&mut b.s).await.unwrap();
                    (q, t)
                });
                assert!(matches!(status(&p), 200 | 454), "{p}");
                assert!(matches!(status(&q), 200 | 454), "{q}");
                assert_eq!(status(&t), 200, "{t}");
            }
        }
    }
    // What was in flight drains; then nothing more, ever.
    datagrams(&[&rtp, &rtcp], Duration::from_millis(500)).await;
    let late = datagrams(&[&rtp, &rtcp], Duration::from_secs(3)).await;
    assert_eq!(late, 0, "datagrams kept arriving after every TEARDOWN");
    assert_eq!(api_sessions(&app).await, 0);
    assert_eq!(
        metric(
            &app,
            "camgate_recorder_sessions{device=\"demo\",stream=\"main\",recorder=\"nvr\",transport=\"udp\"}"
        )
        .await,
        0.0
    );
    // PAUSE then PLAY: the new PLAY's media flows (a stale stop does not
    // end it), and its TEARDOWN ends it.
    let id = session_header(&a.setup_udp(ports, None).await);
    let play = a.play(&id);
    assert_eq!(status(&a.send(play).await), 200);
    let pause = a.req("PAUSE", &a.base.clone(), &format!("Session: {id}\r\n"));
    let play = a.play(&id);
    a.s.write_all((pause + &play).as_bytes()).await.unwrap();
    let (p, q) = (
        read_response(&mut a.s).await.unwrap(),
        read_response(&mut a.s).await.unwrap(),
    );
    assert_eq!((status(&p), status(&q)), (200, 200), "{p}{q}");
    datagrams(&[&rtp, &rtcp], Duration::from_millis(300)).await;
    assert!(datagrams(&[&rtp, &rtcp], Duration::from_secs(2)).await > 0);
    let td = a.teardown(&id);
    assert_eq!(status(&a.send(td).await), 200);
    datagrams(&[&rtp, &rtcp], Duration::from_millis(500)).await;
    assert_eq!(datagrams(&[&rtp, &rtcp], Duration::from_secs(2)).await, 0);
    assert_eq!(api_sessions(&app).await, 0);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_sessions_end_with_their_connection() {
    let app = spawn_app(&config(""), &[]).await;
    let mut a = Rec::connect(&app, NVR_USER, NVR_PASS).await;
    let uri = format!("{}/trackID=0", a.base);
    let req = a.req(
        "SETUP",
        &uri,
        "Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n",
    );
    let head = a.send(req).await;
    assert_eq!(status(&head), 200, "{head}");
    let id = session_header(&head);
    let play = a.play(&id);
    assert_eq!(status(&a.send(play).await), 200);
    let gauge = "camgate_recorder_sessions{device=\"demo\",stream=\"main\",recorder=\"nvr\",transport=\"tcp\"}";
    assert_eq!(metric(&app, gauge).await, 1.0);
    assert_eq!(api_sessions(&app).await, 1);
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while api_sessions(&app).await > 0 || metric(&app, gauge).await > 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the session outlived its connection"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
