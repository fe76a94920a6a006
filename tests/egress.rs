//! The DNS sinkhole and the egress trap on loopback: a camera device whose
//! address is 127.0.0.1 asks camgate's resolver for vendor, allowed, static
//! and unknown names (UDP and TCP, well-formed and malformed), and connects
//! or sends straight to the trap listeners (the firewall redirect and
//! tproxy are exercised by the namespace test, `tests/netns_egress.rs`).

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{Name, RData, Record, RecordType};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// A device whose camera is 127.0.0.1 (never pulled: on-demand).
const CAMERA: &str = "[[device]]\nid = \"cam\"\nvendor = \"dahua\"\nhost = \"127.0.0.1\"\nrtsp_port = 9\npull = \"on-demand\"\n[device.streams]\nmain = \"/cam/realmonitor?channel=1&subtype=0\"\n";

/// A site resolver: answers `files.site.example` A 192.0.2.77, NXDOMAIN
/// otherwise; counts queries.
async fn upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let s2 = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            s2.fetch_add(1, Ordering::SeqCst);
            let Ok(q) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
            r.metadata.recursion_desired = q.metadata.recursion_desired;
            r.metadata.recursion_available = true;
            r.add_queries(q.queries.clone());
            let name = q.queries[0].name().to_ascii().to_ascii_lowercase();
            if name == "files.site.example." && q.queries[0].query_type() == RecordType::A {
                r.add_answer(Record::from_rdata(
                    q.queries[0].name().clone(),
                    30,
                    RData::A(A("192.0.2.77".parse().unwrap())),
                ));
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
            let _ = sock.send_to(&r.to_vec().unwrap(), from).await;
        }
    });
    (addr, seen)
}

fn query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    m.to_vec().unwrap()
}

/// One UDP exchange with the sinkhole.
async fn ask_udp(dns: SocketAddr, packet: &[u8]) -> Option<Message> {
    ask_udp_within(dns, packet, Duration::from_secs(5)).await
}

async fn ask_udp_within(dns: SocketAddr, packet: &[u8], wait: Duration) -> Option<Message> {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(packet, dns).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(wait, sock.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    Message::from_vec(&buf[..n]).ok()
}

async fn ask(dns: SocketAddr, name: &str, rtype: RecordType) -> Message {
    ask_udp(dns, &query(name, rtype))
        .await
        .unwrap_or_else(|| panic!("no answer for {name}"))
}

fn addrs(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

async fn scrape(app: &TestApp) -> String {
    http(app.admin, "GET", "/metrics", &[]).await.2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sinkhole_answers_allowed_names_and_nothing_else() {
    let (up, up_seen) = upstream().await;
    let config = format!(
        "{}\n[dns]\nlisten = \"127.0.0.1:0\"\nupstream = [\"{up}\"]\nallow = [\"*.site.example\"]\n\
         [[dns.static]]\nname = \"ntp.site.example\"\naddresses = [\"10.0.0.123\"]\n{CAMERA}",
        base_config("")
    );
    let app = spawn_app(&config, &[]).await;
    let dns = app.dns.expect("dns listener");

    // Vendor names: NXDOMAIN, counted for the device with their category.
    for (name, _) in [
        ("litedev.hik-connect.com.", "hik_connect"),
        ("www.easy4ipcloud.com.", "dahua_p2p"),
        ("WWW.EASY4IPCLOUD.COM.", "dahua_p2p"),
        ("time.ys7.com.", "ntp_vendor"),
    ] {
        let m = ask(dns, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{name}");
        assert!(m.answers.is_empty());
        assert_eq!(m.metadata.id, 0x4242);
    }
    // Static and allowed names resolve; the allowed one through upstream.
    let m = ask(dns, "ntp.site.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&m), ["10.0.0.123".parse::<IpAddr>().unwrap()]);
    let m = ask(dns, "files.site.example.", RecordType::A).await;
    assert_eq!(addrs(&m), ["192.0.2.77".parse::<IpAddr>().unwrap()]);
    assert!(up_seen.load(Ordering::SeqCst) >= 1);
    let m = ask(dns, "missing.site.example.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    // Everything else is refused and never reaches upstream.
    let before = up_seen.load(Ordering::SeqCst);
    for name in ["example.com.", "1.0.0.127.in-addr.arpa.", "site.example."] {
        let m = ask(dns, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::Refused, "{name}");
    }
    assert_eq!(up_seen.load(Ordering::SeqCst), before);

    // Over TCP as well.
    let mut s = TcpStream::connect(dns).await.unwrap();
    let q = query("api.ezvizlife.com.", RecordType::AAAA);
    s.write_all(&(q.len() as u16).to_be_bytes()).await.unwrap();
    s.write_all(&q).await.unwrap();
    let mut len = [0u8; 2];
    s.read_exact(&mut len).await.unwrap();
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut buf).await.unwrap();
    let m = Message::from_vec(&buf).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Malformed packets: no crash, the server keeps answering.
    for junk in [
        &b""[..],
        b"\x00",
        b"\x42\x42\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff",
        &[0xffu8; 600][..],
    ] {
        // Too short to have a header: no answer at all.
        let _ = ask_udp_within(dns, junk, Duration::from_millis(300)).await;
    }
    // Two questions in one query: FORMERR, counted as malformed.
    let mut two = Message::query();
    two.metadata.id = 7;
    two.add_query(Query::query(
        Name::from_ascii("a.example.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.example.").unwrap(),
        RecordType::A,
    ));
    let m = ask_udp(dns, &two.to_vec().unwrap()).await.unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    let m = ask(dns, "litedev.hik-connect.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    let text = scrape(&app).await;
    let q = |verdict: &str, category: &str| {
        sample(
            &text,
            &format!("camgate_dns_queries_total{{device=\"cam\",verdict=\"{verdict}\",category=\"{category}\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert_eq!(q("sinkholed", "hik_connect"), 2.0, "{text}");
    assert_eq!(q("sinkholed", "dahua_p2p"), 2.0);
    assert_eq!(q("sinkholed", "ntp_vendor"), 1.0);
    assert_eq!(q("sinkholed", "ezviz"), 1.0);
    assert_eq!(q("static", "site"), 1.0);
    assert_eq!(q("allowed", "site"), 2.0);
    assert_eq!(q("refused", "unknown"), 3.0);
    assert_eq!(q("malformed", "unknown"), 1.0);
    assert!(app.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trap_mode_answers_pool_addresses_that_the_trap_names() {
    let config = format!(
        "{}\n[dns]\nlisten = \"127.0.0.1:0\"\nsinkhole = \"trap\"\ntrap_pool = \"198.18.0.0/24\"\n{CAMERA}",
        base_config("")
    );
    let app = spawn_app(&config, &[]).await;
    let dns = app.dns.unwrap();
    let a = addrs(&ask(dns, "litedev.ezvizlife.com.", RecordType::A).await);
    assert_eq!(a.len(), 1);
    let IpAddr::V4(v4) = a[0] else { panic!() };
    assert_eq!(v4.octets()[..3], [198, 18, 0]);
    // The same name, the same address; AAAA gets no address (NODATA).
    assert_eq!(
        addrs(&ask(dns, "litedev.ezvizlife.com.", RecordType::A).await),
        a
    );
    let m = ask(dns, "litedev.ezvizlife.com.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    let running = app.running.as_ref().unwrap();
    assert_eq!(
        running
            .egress
            .looked_up("127.0.0.1".parse().unwrap(), a[0])
            .as_deref(),
        Some("litedev.ezvizlife.com")
    );
    assert!(app.stop().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trap_classifies_counts_and_drops_attempts() {
    let config = format!(
        "{}\n[egress]\ntrap_tcp = \"127.0.0.1:0\"\ntrap_udp = \"127.0.0.1:0\"\npeek_timeout_secs = 1\nmax_connections = 8\n{CAMERA}",
        base_config("")
    );
    let app = spawn_app(&config, &[]).await;
    let tcp = app.trap_tcp.unwrap();
    let udp = app.trap_udp.unwrap();

    // TLS to a vendor name at an address camgate never gave out: the
    // connection is reset without a byte back, counted as direct_ip.
    let mut s = TcpStream::connect(tcp).await.unwrap();
    s.write_all(&client_hello("api.hik-connect.com"))
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(r, Ok(0) | Err(_)), "the trap answered: {r:?}");

    // Plain HTTP to a DDNS name.
    let mut s = TcpStream::connect(tcp).await.unwrap();
    s.write_all(b"GET /update?host=x HTTP/1.1\r\nHost: www.dahuaddns.com\r\n\r\n")
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .unwrap();

    // A connection that sends nothing is closed after the peek timeout.
    let mut silent = TcpStream::connect(tcp).await.unwrap();
    let t = std::time::Instant::now();
    let _ = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(4));

    // A truncated ClientHello.
    let ch = client_hello("x.example");
    let mut s = TcpStream::connect(tcp).await.unwrap();
    s.write_all(&ch[..20]).await.unwrap();
    drop(s);

    // Wait until the four TCP attempts are counted (each is handled on its
    // own task), so the order below is known.
    for _ in 0..50 {
        let text = scrape(&app).await;
        let tcp_total: f64 = text
            .lines()
            .filter(|l| {
                l.starts_with("camgate_egress_attempts_total{") && l.contains("protocol=\"tcp\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if tcp_total >= 4.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Dahua P2P rendezvous over UDP.
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    u.send_to(b"DHGET /probe/p2psrv HTTP/1.1\r\nCSeq: 1\r\n\r\n", udp)
        .await
        .unwrap();
    u.send_to(b"\x01\x02", udp).await.unwrap();

    // The API shows the attempts by category and the latest ones, with the
    // vendor a direct_ip attempt points at.
    let mut body = String::new();
    for _ in 0..50 {
        body = http(app.admin, "GET", "/api/v1/devices/cam", &[]).await.2;
        if body.matches("\"protocol\"").count() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let recent = v["recent_attempts"].as_array().unwrap();
    assert_eq!(recent.len(), 6, "{body}");
    assert_eq!(recent[0]["protocol"], "udp", "newest first: {body}");
    assert!(
        recent.iter().any(|a| a["category"] == "direct_ip"
            && a["vendor_category"] == "dahua_p2p"
            && a["destination"] == udp.to_string()),
        "{body}"
    );
    assert!(
        recent
            .iter()
            .any(|a| a["name"] == "api.hik-connect.com" && a["vendor_category"] == "hik_connect"),
        "{body}"
    );
    assert!(
        recent.iter().any(|a| a["name"] == "www.dahuaddns.com"),
        "{body}"
    );

    // A burst far beyond max_connections: every attempt is still counted.
    let mut conns = Vec::new();
    for _ in 0..300 {
        if let Ok(c) = TcpStream::connect(tcp).await {
            conns.push(c);
        }
    }
    // A connect may fail when the trap's reset beats it: bounds, then.
    let burst = conns.len();
    drop(conns);

    let total = |text: &str| -> f64 {
        text.lines()
            .filter(|l| {
                l.starts_with("camgate_egress_attempts_total{") && l.contains("device=\"cam\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let (least, most) = ((4 + 2 + burst) as f64, (4 + 2 + 300) as f64);
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(&app).await;
        if total(&text) >= least {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = total(&text);
    assert!(
        t >= least && t <= most,
        "{t} attempts counted, {least}..={most} made:\n{text}"
    );
    let n = |proto: &str, cat: &str| {
        sample(
            &text,
            &format!("camgate_egress_attempts_total{{device=\"cam\",protocol=\"{proto}\",category=\"{cat}\",verdict=\"blocked\"}}"),
        )
        .unwrap_or(0.0)
    };
    assert!(n("tcp", "direct_ip") >= 2.0, "{text}"); // SNI + Host
    assert_eq!(n("udp", "direct_ip"), 1.0);
    assert!(n("udp", "unknown") >= 1.0);
    assert!(n("tcp", "tls") >= 1.0, "truncated hello: {text}");
    let bytes = sample(
        &text,
        "camgate_egress_attempt_bytes_total{device=\"cam\",protocol=\"udp\",category=\"direct_ip\"}",
    )
    .unwrap();
    assert!(bytes > 40.0);

    let (st, _, body) = http(app.admin, "GET", "/api/v1/devices/cam", &[]).await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["blocked_attempts"]["direct_ip"].as_u64().unwrap() >= 3,
        "{body}"
    );
    assert_eq!(v["recent_attempts"].as_array().unwrap().len(), 16);
    // The status page shows the breakdown.
    let (_, _, page) = http(app.admin, "GET", "/", &[]).await;
    assert!(page.contains("direct_ip"), "{page}");
    assert!(app.stop().await);
}

/// A minimal TLS 1.2/1.3 ClientHello naming `name`.
fn client_hello(name: &str) -> Vec<u8> {
    let n = name.as_bytes();
    let mut sni = Vec::new();
    sni.extend(((n.len() + 3) as u16).to_be_bytes());
    sni.push(0);
    sni.extend((n.len() as u16).to_be_bytes());
    sni.extend(n);
    let mut exts = vec![0, 0];
    exts.extend((sni.len() as u16).to_be_bytes());
    exts.extend(&sni);
    let mut body = vec![3, 3];
    body.extend([9u8; 32]);
    body.push(0);
    body.extend([0, 2, 0x13, 0x01, 1, 0]);
    body.extend((exts.len() as u16).to_be_bytes());
    body.extend(&exts);
    let mut hs = vec![1];
    hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(&body);
    let mut rec = vec![0x16, 3, 1];
    rec.extend((hs.len() as u16).to_be_bytes());
    rec.extend(&hs);
    rec
}
