use super::*;

fn key(s: &str) -> SourceKey {
    SourceKey::new(s.parse().unwrap(), 64)
}

fn limits(max: usize, unauth: usize, per: usize, timeout: Option<Duration>) -> Limits {
    Limits {
        max_connections: max,
        max_unauthenticated: unauth,
        max_unauthenticated_per_address: per,
        unauthenticated_timeout: timeout,
        ipv6_prefix: 64,
    }
}

fn peer(s: &str) -> SocketAddr {
    SocketAddr::new(s.parse().unwrap(), 40000)
}

fn scrape(m: &Metrics, series: &str) -> f64 {
    let text = m.encode(false);
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("{series} not in:\n{text}"))
}

#[test]
fn ipv6_sources_group_by_prefix_and_ipv4_mapped_is_ipv4() {
    assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
    assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
    assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    let exact = |s: &str| SourceKey::new(s.parse().unwrap(), 128);
    assert_ne!(exact("2001:db8::1"), exact("2001:db8::2"));
    assert_eq!(
        SourceKey::new("2001:db8::1".parse().unwrap(), 0),
        SourceKey::new("fe80::1".parse().unwrap(), 0)
    );
}

#[test]
fn per_source_cap_counts_a_whole_ipv6_64() {
    let mut t = Table::new(100, 3);
    for i in 0..3u64 {
        let a = key(&format!("2001:db8:0:1::{i:x}"));
        assert!(t.admit(a, i, CancellationToken::new()).is_ok());
    }
    assert_eq!(
        t.admit(key("2001:db8:0:1::ff"), 9, CancellationToken::new()),
        Err(Refusal::PerAddress)
    );
    // Another /64 is another source.
    assert!(
        t.admit(key("2001:db8:0:2::1"), 10, CancellationToken::new())
            .is_ok()
    );
    // Releasing one makes room again.
    assert!(t.release(key("2001:db8:0:1::"), 1));
    assert!(!t.release(key("2001:db8:0:1::"), 1), "released twice");
    assert!(
        t.admit(key("2001:db8:0:1::ff"), 11, CancellationToken::new())
            .is_ok()
    );
}

#[test]
fn a_spray_of_addresses_cannot_grow_the_table() {
    let mut t = Table::new(64, 4);
    let mut admitted = 0;
    for i in 0..100_000u32 {
        let ip = IpAddr::V6(Ipv6Addr::from(
            (0x2001_0db8_u128 << 96) | (u128::from(i) << 64) | 1,
        ));
        if t.admit(
            SourceKey::new(ip, 64),
            u64::from(i),
            CancellationToken::new(),
        )
        .is_ok()
        {
            admitted += 1;
        }
        assert!(t.sources() <= 64 && t.len() <= 64);
    }
    assert_eq!(admitted, 64, "one per source until the share is full");
    assert_eq!(t.sources(), 64);
}

#[test]
fn a_full_share_evicts_from_the_heaviest_source_only() {
    let mut t = Table::new(6, 4);
    let flood = key("10.0.0.2");
    let mut tokens = Vec::new();
    for i in 0..4 {
        let tok = CancellationToken::new();
        t.admit(flood, i, tok.clone()).unwrap();
        tokens.push(tok);
    }
    t.admit(key("10.0.0.4"), 10, CancellationToken::new())
        .unwrap();
    t.admit(key("10.0.0.5"), 11, CancellationToken::new())
        .unwrap();
    assert_eq!(t.len(), 6);
    // A newcomer: the flood (4) holds at least 0 + 2, so its oldest goes.
    let evicted = t
        .admit(key("10.0.0.3"), 20, CancellationToken::new())
        .unwrap()
        .expect("an eviction");
    evicted.cancel();
    assert!(tokens[0].is_cancelled());
    assert!(!tokens[1].is_cancelled());
    assert_eq!(t.held_by(flood), 3);
    assert_eq!(t.len(), 6);
    // Sources converge to equal shares; then newcomers are refused.
    t.admit(key("10.0.0.6"), 21, CancellationToken::new())
        .unwrap()
        .expect("an eviction");
    assert_eq!(t.held_by(flood), 2);
    // The flood itself asks: it holds 2, the heaviest other source 1.
    assert_eq!(
        t.admit(flood, 22, CancellationToken::new()),
        Err(Refusal::Unauthenticated)
    );
    // A source with one asks: the flood's 2 is not 1 + 2 either.
    assert_eq!(
        t.admit(key("10.0.0.4"), 23, CancellationToken::new()),
        Err(Refusal::Unauthenticated)
    );
    // A newcomer with none: 2 >= 0 + 2, one more eviction.
    assert!(
        t.admit(key("10.0.0.7"), 24, CancellationToken::new())
            .unwrap()
            .is_some()
    );
    assert_eq!(t.held_by(flood), 1);
    assert_eq!(t.len(), 6);
    assert!(t.sources() <= 6);
}

#[tokio::test]
async fn guards_release_on_drop_and_on_authenticated() {
    let m = Metrics::new();
    let pool = Pool::new("rtsp", limits(4, 3, 2, None), &m);
    let cancel = CancellationToken::new();
    let a = pool.admit(peer("10.0.0.2"), &cancel).unwrap();
    let b = pool.admit(peer("10.0.0.2"), &cancel).unwrap();
    assert_eq!(
        pool.admit(peer("10.0.0.2"), &cancel).unwrap_err(),
        Refusal::PerAddress
    );
    // Authenticated: out of the address's count, still holding a slot.
    a.authenticated();
    a.authenticated();
    assert!(a.is_authenticated());
    assert_eq!(pool.unauthenticated(), 1);
    let c = pool.admit(peer("10.0.0.2"), &cancel).unwrap();
    // Dropping an unauthenticated guard (every clone) releases it.
    let b2 = b.clone();
    drop(b);
    assert_eq!(pool.unauthenticated(), 2);
    drop(b2);
    assert_eq!(pool.unauthenticated(), 1);
    let d = pool.admit(peer("10.0.0.3"), &cancel).unwrap();
    let e = pool.admit(peer("10.0.0.4"), &cancel).unwrap();
    // Four connections held (one authenticated): the global cap.
    assert_eq!(
        pool.admit(peer("10.0.0.5"), &cancel).unwrap_err(),
        Refusal::Capacity
    );
    assert_eq!(scrape(&m, "camgate_connections{listener=\"rtsp\"}"), 4.0);
    assert_eq!(
        scrape(&m, "camgate_connections_unauthenticated{listener=\"rtsp\"}"),
        3.0
    );
    assert_eq!(
        scrape(
            &m,
            "camgate_connections_refused_total{listener=\"rtsp\",reason=\"capacity\"}"
        ),
        1.0
    );
    assert_eq!(
        scrape(
            &m,
            "camgate_connections_refused_total{listener=\"rtsp\",reason=\"per_address\"}"
        ),
        1.0
    );
    // The authenticated one's slot comes back when it closes.
    drop(a);
    let f = pool.admit(peer("10.0.0.5"), &cancel);
    // ... but the unauthenticated share (3) is full and nobody holds 2 more.
    assert_eq!(f.unwrap_err(), Refusal::Unauthenticated);
    // An auth handle does not keep the slot, and authenticates while alive.
    let h = c.auth_handle();
    h.authenticated();
    assert!(c.is_authenticated());
    drop(c);
    h.authenticated();
    drop((d, e));
    assert_eq!(pool.unauthenticated(), 0);
    assert_eq!(scrape(&m, "camgate_connections{listener=\"rtsp\"}"), 0.0);
}

#[tokio::test(start_paused = true)]
async fn closed_fires_at_the_deadline_unless_authenticated() {
    let m = Metrics::new();
    let t = Duration::from_secs(10);
    let pool = Pool::new("http", limits(8, 8, 8, Some(t)), &m);
    let cancel = CancellationToken::new();
    let start = Instant::now();
    let a = pool.admit(peer("10.0.0.2"), &cancel).unwrap();
    assert_eq!(a.closed().await, Ended::UnauthenticatedTimeout);
    assert_eq!(start.elapsed(), t);
    drop(a);
    assert_eq!(
        scrape(
            &m,
            "camgate_connections_closed_total{listener=\"http\",reason=\"unauthenticated_timeout\"}"
        ),
        1.0
    );
    // Authenticated while waiting: the deadline passes, shutdown ends it.
    let b = pool.admit(peer("10.0.0.2"), &cancel).unwrap();
    let b2 = b.clone();
    let waiter = tokio::spawn(async move { b2.closed().await });
    tokio::time::sleep(Duration::from_secs(5)).await;
    b.authenticated();
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(!waiter.is_finished());
    cancel.cancel();
    assert_eq!(waiter.await.unwrap(), Ended::Shutdown);
}

#[tokio::test]
async fn an_evicted_guard_sees_evicted() {
    let m = Metrics::new();
    let pool = Pool::new("rtsp", limits(8, 2, 2, None), &m);
    let cancel = CancellationToken::new();
    let a = pool.admit(peer("10.0.0.2"), &cancel).unwrap();
    let _b = pool.admit(peer("10.0.0.2"), &cancel).unwrap();
    let _c = pool.admit(peer("10.0.0.3"), &cancel).unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), a.closed())
            .await
            .unwrap(),
        Ended::Evicted
    );
    // Authenticating an evicted connection changes nothing in the table.
    a.authenticated();
    assert_eq!(pool.unauthenticated(), 2);
    assert_eq!(
        scrape(
            &m,
            "camgate_connections_closed_total{listener=\"rtsp\",reason=\"evicted\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn bind_error_names_the_address() {
    let m = Metrics::new();
    let pool = Pool::new("admin", limits(1, 1, 1, None), &m);
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Listener::bind(addr, pool).await.unwrap_err();
    assert_eq!(err.addr, addr);
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn the_loop_serves_refuses_and_stops() {
    use tokio::io::AsyncReadExt;
    let m = Metrics::new();
    let pool = Pool::new("admin", limits(1, 1, 1, None), &m);
    let l = Listener::bind("127.0.0.1:0".parse().unwrap(), pool)
        .await
        .unwrap();
    let addr = l.local_addr();
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::channel::<ConnGuard>(4);
    let run = tokio::spawn(l.run(
        cancel.clone(),
        tracker.clone(),
        move |_stream, guard| {
            let tx = held_tx.clone();
            async move {
                let _ = tx.send(guard).await;
            }
        },
        refuse_with(b"full\n"),
    ));
    let _first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let guard = held_rx.recv().await.unwrap();
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), second.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"full\n");
    drop(guard);
    let _third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _g = tokio::time::timeout(Duration::from_secs(5), held_rx.recv())
        .await
        .unwrap()
        .unwrap();
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .unwrap()
        .unwrap();
}
