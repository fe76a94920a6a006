//! What an unauthenticated peer can hold (`src/listener.rs`): floods of
//! connections from one loopback address (127.0.0.2) against recorders on
//! others (127.0.0.3), the unauthenticated deadline that requests do not
//! extend, the DNS-over-TCP caps, and the camera API listener's caps.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::ResponseCode;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A TCP connection from `src` (a 127.0.0.0/8 address) to `to`.
async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(src.parse().unwrap(), 0)).unwrap();
    sock.connect(to).await.unwrap()
}

fn basic() -> String {
    legacy_basic()
}

fn config(rtsp: &str) -> String {
    format!(
        "{}\n[[device]]\nid = \"demo\"\nsimulated = true\n",
        base_config(rtsp) + LEGACY_RECORDER
    )
}

/// What a connection got within `wait`: `Some(bytes)` if it was closed
/// (with whatever was sent first), `None` if it is still open and silent.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sorts connections into (closed with what they got, still open).
async fn sort(conns: Vec<TcpStream>, wait: Duration) -> (Vec<Vec<u8>>, Vec<TcpStream>) {
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut s| {
            tokio::spawn(async move {
                let r = closed_within(&mut s, wait).await;
                (r, s)
            })
        })
        .collect();
    let (mut closed, mut open) = (Vec::new(), Vec::new());
    for t in tasks {
        match t.await.unwrap() {
            (Some(got), _) => closed.push(got),
            (None, s) => open.push(s),
        }
    }
    (closed, open)
}

/// SETUP + PLAY of the demo's video over TCP from `src`; returns the
/// socket once a media packet arrived.
async fn play_from(app: &TestApp, src: &str) -> TcpStream {
    let mut s = connect_from(src, app.rtsp).await;
    let base = app.bare_url("demo/main");
    let auth = basic();
    s.write_all(format!(
        "SETUP {base}/trackID=0 RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {auth}\r\nTransport: RTP/AVP/TCP;unicast;interleaved=0-1\r\n\r\n"
    ).as_bytes()).await.unwrap();
    let head = read_response(&mut s).await.expect("a SETUP answer");
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    let session = session_header(&head);
    s.write_all(
        format!(
            "PLAY {base} RTSP/1.0\r\nCSeq: 2\r\nAuthorization: {auth}\r\nSession: {session}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let head = read_response(&mut s).await.expect("a PLAY answer");
    assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    let (channel, _) = tokio::time::timeout(Duration::from_secs(10), read_interleaved(&mut s))
        .await
        .expect("media in time")
        .expect("media");
    assert_eq!(channel, 0);
    s
}

async fn scrape(app: &TestApp) -> String {
    http(app.admin, "GET", "/metrics", &[]).await.2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_address_does_not_keep_a_recorder_out() {
    let app = spawn_app(
        &config(
            "max_connections = 64\nmax_unauthenticated_connections = 16\nmax_unauthenticated_per_address = 4\nunauthenticated_timeout_secs = 30",
        ),
        &[],
    )
    .await;
    let mut flood = Vec::new();
    for _ in 0..40 {
        flood.push(connect_from("127.0.0.2", app.rtsp).await);
    }
    let (refused, held) = sort(flood, Duration::from_secs(2)).await;
    assert_eq!(held.len(), 4, "the address holds its cap");
    assert_eq!(refused.len(), 36);
    for r in &refused {
        assert!(
            r.starts_with(b"RTSP/1.0 503"),
            "{:?}",
            String::from_utf8_lossy(r)
        );
    }
    // A recorder on another address plays meanwhile.
    let _playing = play_from(&app, "127.0.0.3").await;
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            "camgate_connections_refused_total{listener=\"rtsp\",reason=\"per_address\"}"
        ),
        Some(36.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "camgate_connections_unauthenticated{listener=\"rtsp\"}"
        ),
        Some(4.0),
        "the recorder's connection no longer counts: {text}"
    );
    drop(held);
    assert!(app.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_unauthenticated_share_makes_room_for_a_new_address() {
    let app = spawn_app(
        &config(
            "max_connections = 64\nmax_unauthenticated_connections = 8\nmax_unauthenticated_per_address = 4\nunauthenticated_timeout_secs = 30",
        ),
        &[],
    )
    .await;
    // Two flooding addresses fill the unauthenticated share.
    let mut flood = Vec::new();
    for src in ["127.0.0.2", "127.0.0.4"] {
        for _ in 0..4 {
            flood.push(connect_from(src, app.rtsp).await);
        }
    }
    let (closed, flood) = sort(flood, Duration::from_millis(500)).await;
    assert!(closed.is_empty(), "all eight held");
    // The recorder's connection evicts one of theirs and plays.
    let _playing = play_from(&app, "127.0.0.3").await;
    let (evicted, _held) = sort(flood, Duration::from_secs(2)).await;
    assert_eq!(evicted.len(), 1, "one flooding connection made room");
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            "camgate_connections_closed_total{listener=\"rtsp\",reason=\"evicted\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(app.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_recorder_may_open_more_than_the_unauthenticated_cap() {
    let app = spawn_app(
        &config("max_unauthenticated_per_address = 2\nunauthenticated_timeout_secs = 30"),
        &[],
    )
    .await;
    let auth = basic();
    let mut conns = Vec::new();
    // An NVR's connection per channel, each authenticated at its first
    // request, all kept open.
    for i in 0..8 {
        let mut s = connect_from("127.0.0.3", app.rtsp).await;
        s.write_all(
            format!(
                "DESCRIBE {} RTSP/1.0\r\nCSeq: {i}\r\nAuthorization: {auth}\r\n\r\n",
                app.bare_url("demo/main")
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let head = read_response(&mut s)
            .await
            .unwrap_or_else(|| panic!("connection {i} closed"));
        assert!(head.starts_with("RTSP/1.0 200"), "connection {i}: {head}");
        conns.push(s);
    }
    // Unauthenticated ones from the same address still meet the cap.
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect_from("127.0.0.3", app.rtsp).await);
    }
    let (refused, _held) = sort(idle, Duration::from_secs(1)).await;
    assert_eq!(refused.len(), 1, "two held, the third refused");
    // The authenticated ones are all still open.
    let (closed, _open) = sort(conns, Duration::from_millis(200)).await;
    assert!(closed.is_empty());
    assert!(app.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_do_not_extend_the_unauthenticated_deadline() {
    let app = spawn_app(&config("unauthenticated_timeout_secs = 2"), &[]).await;
    let options = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n";
    let t = std::time::Instant::now();
    let mut s = connect_from("127.0.0.2", app.rtsp).await;
    let mut answered = 0;
    let closed_after = loop {
        if s.write_all(options.as_bytes()).await.is_err() {
            break t.elapsed();
        }
        match read_response(&mut s).await {
            Some(head) => {
                assert!(head.starts_with("RTSP/1.0 200"), "{head}");
                answered += 1;
            }
            None => break t.elapsed(),
        }
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "still open after {answered} OPTIONS"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert!(
        closed_after >= Duration::from_millis(1500),
        "closed early: {closed_after:?}"
    );
    assert!(answered >= 2, "OPTIONS was answered meanwhile");

    // An authenticated connection outlives the deadline.
    let mut s = connect_from("127.0.0.2", app.rtsp).await;
    s.write_all(
        format!(
            "DESCRIBE {} RTSP/1.0\r\nCSeq: 1\r\nAuthorization: {}\r\n\r\n",
            app.bare_url("demo/main"),
            basic()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
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
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.write_all(options.as_bytes()).await.unwrap();
        let head = read_response(&mut s).await.expect("still open");
        assert!(head.starts_with("RTSP/1.0 200"), "{head}");
    }
    let text = scrape(&app).await;
    assert_eq!(
        sample(
            &text,
            "camgate_connections_closed_total{listener=\"rtsp\",reason=\"unauthenticated_timeout\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert!(app.stop().await);
}

/// A DNS query over TCP (length-prefixed) for `name`; the answer's id and
/// response code, or None if the connection closed.
async fn dns_tcp(s: &mut TcpStream, id: u16, name: &str) -> Option<(u16, ResponseCode)> {
    use hickory_server::proto::op::{Message, Query};
    use hickory_server::proto::rr::{Name, RecordType};
    let mut m = Message::query();
    m.metadata.id = id;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    let q = m.to_vec().unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).await.ok()?;
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.ok()?;
    let a = Message::from_vec(&buf).ok()?;
    Some((a.metadata.id, a.metadata.response_code))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_over_tcp_is_capped_per_address_and_in_total() {
    let config = format!(
        "{}\n[dns]\nlisten = \"127.0.0.1:0\"\ntcp_max_connections = 4\ntcp_max_connections_per_address = 2\ntcp_idle_timeout_secs = 30\n\
         [[device]]\nid = \"cam\"\nhost = \"127.0.0.2\"\nrtsp_port = 9\npull = \"on-demand\"\n[device.streams]\nmain = \"/x\"\n",
        base_config("")
    );
    let app = spawn_app(&config, &[]).await;
    let dns = app.dns.unwrap();
    // Two connections from one camera are served, several queries each.
    let mut a = connect_from("127.0.0.2", dns).await;
    let mut b = connect_from("127.0.0.2", dns).await;
    for id in 1..4 {
        // Not allowed, no category: REFUSED, but answered.
        assert_eq!(
            dns_tcp(&mut a, id, "example.com").await,
            Some((id, ResponseCode::Refused))
        );
        assert_eq!(
            dns_tcp(&mut b, id, "example.com").await,
            Some((id, ResponseCode::Refused))
        );
    }
    // A third from the same address is closed at once.
    let mut c = connect_from("127.0.0.2", dns).await;
    assert_eq!(
        closed_within(&mut c, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    // Another address gets the remaining two, then the pool is full.
    let mut d = connect_from("127.0.0.3", dns).await;
    let _e = connect_from("127.0.0.3", dns).await;
    assert_eq!(
        dns_tcp(&mut d, 9, "example.com").await,
        Some((9, ResponseCode::Refused))
    );
    let mut f = connect_from("127.0.0.4", dns).await;
    assert_eq!(
        closed_within(&mut f, Duration::from_secs(5)).await,
        Some(Vec::new())
    );
    // Closing one makes room again.
    drop(a);
    let mut g = None;
    for _ in 0..50 {
        let mut s = connect_from("127.0.0.4", dns).await;
        if dns_tcp(&mut s, 7, "example.com").await == Some((7, ResponseCode::Refused)) {
            g = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(g.is_some(), "a slot came back");
    let text = scrape(&app).await;
    let refused = |reason: &str| {
        sample(
            &text,
            &format!("camgate_connections_refused_total{{listener=\"dns\",reason=\"{reason}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(refused("per_address"), 1.0, "{text}");
    assert!(refused("capacity") >= 1.0, "{text}");
    assert!(app.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_dns_tcp_connections_are_closed() {
    let config = format!(
        "{}\n[dns]\nlisten = \"127.0.0.1:0\"\ntcp_idle_timeout_secs = 1\n",
        base_config("")
    );
    let app = spawn_app(&config, &[]).await;
    let mut s = connect_from("127.0.0.2", app.dns.unwrap()).await;
    assert_eq!(
        dns_tcp(&mut s, 1, "example.com").await,
        Some((1, ResponseCode::Refused))
    );
    let t = std::time::Instant::now();
    assert!(
        closed_within(&mut s, Duration::from_secs(10))
            .await
            .is_some()
    );
    assert!(t.elapsed() >= Duration::from_millis(500));
    assert!(app.stop().await);
}

/// One HTTP response's head, its body read and dropped (by Content-Length).
async fn read_http(s: &mut TcpStream) -> Option<String> {
    let head = read_response(s).await?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0);
    let mut body = vec![0; len];
    s.read_exact(&mut body).await.ok()?;
    Some(head)
}

/// camgate with the camera API proxy on a path-based listener (the
/// shipped policy files beside the config).
async fn spawn_http(http: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    copy_shipped_policy(dir.path());
    let config = format!(
        "{}\n[http]\nlisten = \"127.0.0.1:0\"\n{http}\n[[device]]\nid = \"demo\"\nsimulated = true\n",
        base_config("")
    );
    spawn_app_in(dir, &config, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_camera_api_listener_caps_unauthenticated_clients() {
    let app = spawn_http(
        "max_unauthenticated_connections = 8\nmax_unauthenticated_per_address = 3\nunauthenticated_timeout_secs = 2",
    )
    .await;
    let api = app.http[0];
    let mut flood = Vec::new();
    for _ in 0..10 {
        flood.push(connect_from("127.0.0.2", api).await);
    }
    let (refused, held) = sort(flood, Duration::from_millis(1000)).await;
    assert_eq!(held.len(), 3);
    assert_eq!(refused.len(), 7);
    for r in &refused {
        assert!(
            r.starts_with(b"HTTP/1.1 503"),
            "{:?}",
            String::from_utf8_lossy(r)
        );
    }
    // Another address is served meanwhile.
    let mut s = connect_from("127.0.0.3", api).await;
    s.write_all(b"GET /demo/ISAPI/System/deviceInfo HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let head = read_http(&mut s).await.expect("an answer");
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");
    // Unauthenticated requests on a kept-alive connection do not keep it
    // past the deadline (2 s from accept).
    let t = std::time::Instant::now();
    let closed_after = loop {
        tokio::time::sleep(Duration::from_millis(400)).await;
        if s.write_all(b"GET /demo/ISAPI/System/deviceInfo HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .is_err()
        {
            break t.elapsed();
        }
        match read_http(&mut s).await {
            Some(head) => assert!(head.starts_with("HTTP/1.1 401"), "{head}"),
            None => break t.elapsed(),
        }
        assert!(t.elapsed() < Duration::from_secs(15), "never closed");
    };
    assert!(closed_after < Duration::from_secs(10), "{closed_after:?}");
    // The flood's silent connections are gone too.
    let (closed, _) = sort(held, Duration::from_secs(5)).await;
    assert_eq!(closed.len(), 3);
    assert!(app.stop().await);
}
