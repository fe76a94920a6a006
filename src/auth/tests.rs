use super::*;
use crate::config::DeviceSet;
use crate::http::soap::UsernameToken;
use base64::engine::general_purpose::STANDARD as B64;

const PEER: &str = "192.0.2.10";

fn recorder(user: &str, pw: &str, cleartext: bool, allow: &[&str]) -> Recorder {
    Recorder {
        name: user.into(),
        username: user.into(),
        password: Secret::new(pw),
        allow_from: allow.iter().map(|a| a.parse().unwrap()).collect(),
        devices: DeviceSet::All,
        cleartext_auth: cleartext,
    }
}

fn auth() -> Authenticator {
    Authenticator::new(
        &[
            recorder("nvr", "pw", false, &[]),
            recorder("old", "pw2", true, &[]),
            recorder("lan", "pw3", false, &["10.30.0.0/24"]),
        ],
        Settings::default(),
    )
}

fn peer() -> IpAddr {
    PEER.parse().unwrap()
}

fn check(a: &Authenticator, method: &str, h: Option<&str>) -> Outcome {
    check_from(a, method, h, peer(), "/x")
}

fn check_from(a: &Authenticator, method: &str, h: Option<&str>, ip: IpAddr, uri: &str) -> Outcome {
    let uri_matches = |u: &str| u == uri;
    a.check(&Presented {
        method,
        authorization: h,
        peer: ip,
        tls: false,
        uri_matches: &uri_matches,
    })
}

fn nonce_of(a: &Authenticator, ip: IpAddr) -> String {
    let c = a.challenges(ip, false, false, false);
    let p = parse_params(c[0].strip_prefix("Digest ").unwrap());
    p.into_iter().find(|(k, _)| k == "nonce").unwrap().1
}

fn digest_header(user: &str, pw: &str, method: &str, uri: &str, nonce: &str) -> String {
    let resp = digest_response(user, &Secret::new(pw), method, uri, nonce, None);
    format!(
        "Digest username=\"{user}\", realm=\"camgate\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\""
    )
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", B64.encode(user_pass))
}

#[test]
fn basic_only_where_opted_in_or_tls() {
    let a = auth();
    // Off by default on plaintext listeners, even with the right password.
    assert!(matches!(
        check(&a, "DESCRIBE", Some(&basic("nvr:pw"))),
        Outcome::Invalid(AuthFailure::CleartextRefused)
    ));
    assert!(matches!(
        check(&a, "DESCRIBE", Some(&basic("old:pw2"))),
        Outcome::Ok(_)
    ));
    let tls = |h: &str| {
        a.check(&Presented {
            method: "GET",
            authorization: Some(h),
            peer: peer(),
            tls: true,
            uri_matches: &|_| true,
        })
    };
    assert!(matches!(tls(&basic("nvr:pw")), Outcome::Ok(_)));
    assert!(matches!(
        tls(&basic("nvr:px")),
        Outcome::Invalid(AuthFailure::BadCredentials)
    ));
    for bad in ["Basic !!!", "Basic", "Bearer x", "Basic bnZy"] {
        assert!(
            matches!(check(&a, "DESCRIBE", Some(bad)), Outcome::Invalid(_)),
            "{bad}"
        );
    }
    assert!(matches!(check(&a, "DESCRIBE", None), Outcome::Missing));
    // Basic is only offered where it would be accepted.
    let only_digest = Authenticator::new(&[recorder("nvr", "pw", false, &[])], Settings::default());
    assert_eq!(only_digest.challenges(peer(), false, false, false).len(), 1);
    assert_eq!(only_digest.challenges(peer(), false, true, false).len(), 2);
    assert_eq!(a.challenges(peer(), false, false, false).len(), 2);
}

#[test]
fn digest_without_and_with_qop() {
    let a = auth();
    let nonce = nonce_of(&a, peer());
    let uri = "/x";
    let h = digest_header("nvr", "pw", "DESCRIBE", uri, &nonce);
    assert!(matches!(check(&a, "DESCRIBE", Some(&h)), Outcome::Ok(_)));
    // The method is part of the hash.
    assert!(matches!(check(&a, "SETUP", Some(&h)), Outcome::Invalid(_)));
    let qop_header = |nc: &str| {
        let resp = digest_response(
            "nvr",
            &Secret::new("pw"),
            "PLAY",
            uri,
            &nonce,
            Some(("auth", nc, "abc")),
        );
        format!(
            "Digest username=\"nvr\", realm=\"camgate\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc={nc}, cnonce=\"abc\", response=\"{resp}\""
        )
    };
    assert!(matches!(
        check(&a, "PLAY", Some(&qop_header("00000001"))),
        Outcome::Ok(_)
    ));
    // nc must count up: the same (a replayed header) or a lower one fails.
    assert!(matches!(
        check(&a, "PLAY", Some(&qop_header("00000001"))),
        Outcome::Invalid(AuthFailure::Replay)
    ));
    assert!(matches!(
        check(&a, "PLAY", Some(&qop_header("00000003"))),
        Outcome::Ok(_)
    ));
    assert!(matches!(
        check(&a, "PLAY", Some(&qop_header("00000002"))),
        Outcome::Invalid(AuthFailure::Replay)
    ));
    for bad_nc in ["1", "0000000g", "000000001", "+0000001", "é0000000"] {
        assert!(
            matches!(
                check(&a, "PLAY", Some(&qop_header(bad_nc))),
                Outcome::Invalid(AuthFailure::Malformed)
            ),
            "{bad_nc}"
        );
    }
}

#[test]
fn digest_uri_must_name_the_request() {
    let a = auth();
    let nonce = nonce_of(&a, peer());
    let h = digest_header("nvr", "pw", "DESCRIBE", "/cam-a/main", &nonce);
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&h), peer(), "/cam-a/main"),
        Outcome::Ok(_)
    ));
    // The same header on a request for another device.
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&h), peer(), "/cam-b/main"),
        Outcome::Invalid(AuthFailure::UriMismatch)
    ));
}

#[test]
fn nonces_are_bound_to_the_client_and_expire() {
    let a = Authenticator::new(
        &[recorder("nvr", "pw", false, &[])],
        Settings {
            nonce_lifetime: Duration::from_secs(60),
            ..Settings::default()
        },
    );
    // Issued to another address: not ours to accept from this one.
    let other: IpAddr = "192.0.2.99".parse().unwrap();
    let n = nonce_of(&a, other);
    let h = digest_header("nvr", "pw", "DESCRIBE", "/x", &n);
    assert!(matches!(
        check(&a, "DESCRIBE", Some(&h)),
        Outcome::Invalid(AuthFailure::Malformed)
    ));
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&h), other, "/x"),
        Outcome::Ok(_)
    ));
    // IPv4-mapped IPv6 is the same client.
    let mapped: IpAddr = "::ffff:192.0.2.99".parse().unwrap();
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&h), mapped, "/x"),
        Outcome::Ok(_)
    ));
    // An old nonce camgate did issue: stale (the password was right).
    let old = a.nonce(unix_now() - 61, peer());
    let h = digest_header("nvr", "pw", "DESCRIBE", "/x", &old);
    assert!(matches!(check(&a, "DESCRIBE", Some(&h)), Outcome::Stale(_)));
    // ... and with a wrong password, no hint that it was stale.
    let h = digest_header("nvr", "px", "DESCRIBE", "/x", &old);
    assert!(matches!(
        check(&a, "DESCRIBE", Some(&h)),
        Outcome::Invalid(AuthFailure::BadCredentials)
    ));
    // From the future, forged, another camgate's, or not ASCII: refused.
    let future = a.nonce(unix_now() + 3600, peer());
    let other_key = Authenticator::new(&[], Settings::default()).nonce(unix_now(), peer());
    for n in [
        future.as_str(),
        other_key.as_str(),
        "0000000000000001ffffffffffffffffffffffffffffffff",
        "ééééééééééééééééééééééééé",
        "é000000000000000ffffffffffffffffffffffffffffff",
        "",
    ] {
        let h = digest_header("nvr", "pw", "DESCRIBE", "/x", n);
        assert!(
            matches!(check(&a, "DESCRIBE", Some(&h)), Outcome::Invalid(_)),
            "{n}"
        );
    }
}

#[test]
fn hostile_digest_headers_never_panic() {
    let a = auth();
    let n = nonce_of(&a, peer());
    let multibyte = format!("{}é{}", &n[..15], &n[16..]);
    for h in [
        "Digest garbage".to_string(),
        "Digest".to_string(),
        "Digest username=\"nvr\", nonce=\"éééééééééééééééééééééééé\", uri=\"/x\", response=\"x\""
            .to_string(),
        format!("Digest username=\"nvr\", nonce=\"{multibyte}\", uri=\"/x\", response=\"x\""),
        "Digest username=\"nvr\", nonce=\"\u{2003}\", uri=\"/x\", response=\"\"".to_string(),
        format!(
            "Digest username=\"nvr\", username=\"lan\", nonce=\"{n}\", uri=\"/x\", response=\"x\""
        ),
        "Digest =,,=\"".to_string(),
        format!("Digest {}", "a=b,".repeat(10_000)),
    ] {
        assert!(
            matches!(check(&a, "DESCRIBE", Some(&h)), Outcome::Invalid(_)),
            "{h}"
        );
    }
}

#[test]
fn allow_from_fails_like_a_wrong_password() {
    let a = auth();
    let outside: IpAddr = "192.0.2.1".parse().unwrap();
    let inside: IpAddr = "10.30.0.5".parse().unwrap();
    let n = nonce_of(&a, outside);
    let right = digest_header("lan", "pw3", "DESCRIBE", "/x", &n);
    let wrong = digest_header("lan", "nope", "DESCRIBE", "/x", &n);
    let r = check_from(&a, "DESCRIBE", Some(&right), outside, "/x");
    assert!(matches!(
        r,
        Outcome::Invalid(AuthFailure::AddressNotAllowed)
    ));
    let w = check_from(&a, "DESCRIBE", Some(&wrong), outside, "/x");
    assert!(matches!(w, Outcome::Invalid(AuthFailure::BadCredentials)));
    let n = nonce_of(&a, inside);
    let right = digest_header("lan", "pw3", "DESCRIBE", "/x", &n);
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&right), inside, "/x"),
        Outcome::Ok(_)
    ));
}

fn ws_token(user: &str, pw: &str, nonce: &[u8], created: &str, digest: bool) -> UsernameToken {
    let n = B64.encode(nonce);
    UsernameToken {
        username: user.into(),
        password: if digest {
            // Computed here, not by `password_digest`, which refuses
            // nonces camgate would refuse.
            use sha1::Digest as _;
            let mut h = sha1::Sha1::new();
            h.update(nonce);
            h.update(created.as_bytes());
            h.update(pw.as_bytes());
            B64.encode(h.finalize())
        } else {
            pw.into()
        },
        digest,
        nonce: Some(n),
        created: Some(created.into()),
    }
}

fn now_rfc3339(offset_secs: i64) -> String {
    jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(offset_secs))
        .unwrap()
        .round(jiff::Unit::Second)
        .unwrap()
        .to_string()
}

#[test]
fn ws_security_tokens_replays_and_age() {
    let a = auth();
    let t = ws_token("nvr", "pw", b"nonce-0001", &now_rfc3339(0), true);
    assert!(matches!(
        a.check_ws_token(&t, peer(), false),
        Outcome::Ok(_)
    ));
    assert!(
        matches!(
            a.check_ws_token(&t, peer(), false),
            Outcome::Invalid(AuthFailure::Replay)
        ),
        "replay refused"
    );
    // The same nonce in another spelling is the same nonce: a Unicode space
    // is not Base64, and surrounding ASCII space decodes to the same bytes.
    for spelled in [
        format!("{}\u{2003}", t.nonce.as_deref().unwrap()),
        format!("\u{00a0}{}", t.nonce.as_deref().unwrap()),
        format!(" {}\n", t.nonce.as_deref().unwrap()),
    ] {
        let mut r = t.clone();
        r.nonce = Some(spelled.clone());
        assert!(
            matches!(a.check_ws_token(&r, peer(), false), Outcome::Invalid(_)),
            "{spelled:?}"
        );
    }
    // Two hours old, or from the future: expired.
    for off in [-7200i64, 7200, -310, 310] {
        let old = ws_token("nvr", "pw", &off.to_be_bytes(), &now_rfc3339(off), true);
        assert!(
            matches!(
                a.check_ws_token(&old, peer(), false),
                Outcome::Invalid(AuthFailure::Expired)
            ),
            "{off}"
        );
    }
    // Digest without Created or nonce; nonce too long, empty or not Base64.
    let mut no_created = ws_token("nvr", "pw", b"n-2", &now_rfc3339(0), true);
    no_created.created = None;
    let mut no_nonce = ws_token("nvr", "pw", b"n-3", &now_rfc3339(0), true);
    no_nonce.nonce = None;
    let long = ws_token("nvr", "pw", &[7u8; MAX_WS_NONCE + 1], &now_rfc3339(0), true);
    let mut empty = ws_token("nvr", "pw", b"x", &now_rfc3339(0), true);
    empty.nonce = Some(String::new());
    let mut junk = ws_token("nvr", "pw", b"x", &now_rfc3339(0), true);
    junk.nonce = Some("!!!!".into());
    for t in [no_created, no_nonce, long, empty, junk] {
        assert!(
            matches!(
                a.check_ws_token(&t, peer(), false),
                Outcome::Invalid(AuthFailure::Malformed)
            ),
            "{t:?}"
        );
    }
    let wrong = ws_token("nvr", "px", b"n-4", &now_rfc3339(0), true);
    assert!(matches!(
        a.check_ws_token(&wrong, peer(), false),
        Outcome::Invalid(AuthFailure::BadCredentials)
    ));
    let nobody = ws_token("x", "pw", b"n-5", &now_rfc3339(0), true);
    assert!(matches!(
        a.check_ws_token(&nobody, peer(), false),
        Outcome::Invalid(AuthFailure::UnknownUser)
    ));
}

#[test]
fn ws_password_text_is_cleartext() {
    let a = auth();
    let t = ws_token("nvr", "pw", b"pt-1", &now_rfc3339(0), false);
    assert!(matches!(
        a.check_ws_token(&t, peer(), false),
        Outcome::Invalid(AuthFailure::CleartextRefused)
    ));
    assert!(matches!(a.check_ws_token(&t, peer(), true), Outcome::Ok(_)));
    // Through the replay cache like digests.
    assert!(matches!(
        a.check_ws_token(&t, peer(), true),
        Outcome::Invalid(AuthFailure::Replay)
    ));
    let opted = ws_token("old", "pw2", b"pt-2", &now_rfc3339(0), false);
    assert!(matches!(
        a.check_ws_token(&opted, peer(), false),
        Outcome::Ok(_)
    ));
}

#[test]
fn replay_cache_is_bounded_and_forgets_old_entries() {
    let c = ReplayCache::default();
    assert!(c.fresh("u", b"a", Duration::from_secs(60)));
    assert!(!c.fresh("u", b"a", Duration::from_secs(60)));
    // Another user's identical nonce is another token.
    assert!(c.fresh("v", b"a", Duration::from_secs(60)));
    // Past the window an entry is forgotten.
    std::thread::sleep(Duration::from_millis(5));
    assert!(c.fresh("u", b"a", Duration::from_millis(1)));
    for i in 0..(REPLAY_CACHE_ENTRIES + 10) as u32 {
        c.fresh("u", &i.to_be_bytes(), Duration::from_secs(600));
    }
    let g = c.seen.lock().unwrap();
    assert!(g.map.len() <= REPLAY_CACHE_ENTRIES && g.order.len() <= REPLAY_CACHE_ENTRIES);
}

#[test]
fn params_with_quoted_commas() {
    let p = parse_params(r#"username="a", uri="rtsp://h/x?a=1,2", response=abc"#);
    assert_eq!(p[1], ("uri".to_string(), "rtsp://h/x?a=1,2".to_string()));
    assert_eq!(p[2], ("response".to_string(), "abc".to_string()));
    let _ = parse_params("=,,=\"");
    let _ = parse_params("a=\"é");
    let p = parse_params("a=\"\\é\", b=é");
    assert_eq!(p[0].1, "é");
    assert_eq!(p[1].1, "é");
}

#[test]
fn throttle_locks_the_address_out_across_connections() {
    let a = auth();
    let ip: IpAddr = "192.0.2.50".parse().unwrap();
    let n = nonce_of(&a, ip);
    let wrong = digest_header("nvr", "nope", "DESCRIBE", "/x", &n);
    let right = digest_header("nvr", "pw", "DESCRIBE", "/x", &n);
    for _ in 0..THROTTLE_FREE {
        assert!(matches!(
            check_from(&a, "DESCRIBE", Some(&wrong), ip, "/x"),
            Outcome::Invalid(AuthFailure::BadCredentials)
        ));
        assert!(a.failure_delay(ip).is_zero());
    }
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&wrong), ip, "/x"),
        Outcome::Invalid(AuthFailure::BadCredentials)
    ));
    let d = a.failure_delay(ip);
    assert!(d > Duration::ZERO);
    // Locked out: even the right password is not checked, from any
    // connection, and refused attempts do not extend the lockout.
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&right), ip, "/x"),
        Outcome::Invalid(AuthFailure::Throttled)
    ));
    assert!(a.failure_delay(ip) <= d);
    assert!(a.throttle.blocked(ip));
    // Another address is not affected; an IPv6 /64 counts as one address.
    let other: IpAddr = "192.0.2.51".parse().unwrap();
    let n2 = nonce_of(&a, other);
    let right2 = digest_header("nvr", "pw", "DESCRIBE", "/x", &n2);
    assert!(matches!(
        check_from(&a, "DESCRIBE", Some(&right2), other, "/x"),
        Outcome::Ok(_)
    ));
    let t = Throttle::default();
    for i in 0..=THROTTLE_FREE {
        t.fail(format!("2001:db8::{i}").parse().unwrap());
    }
    assert!(t.blocked("2001:db8::ffff".parse().unwrap()));
    assert!(!t.blocked("2001:db8:0:1::1".parse().unwrap()));
}

#[test]
fn throttle_delay_grows_then_caps() {
    let t = Throttle::default();
    let ip: IpAddr = "192.0.2.1".parse().unwrap();
    let first: Vec<_> = (0..THROTTLE_FREE).map(|_| t.fail(ip)).collect();
    assert!(first.iter().all(|d| d.is_zero()));
    let d = t.fail(ip);
    assert!(d > Duration::ZERO && d <= THROTTLE_MAX_DELAY);
    assert!(t.fail("192.0.2.2".parse().unwrap()).is_zero());
}

#[test]
fn a_spray_of_addresses_does_not_wipe_lockouts() {
    let t = Throttle::default();
    let locked: IpAddr = "192.0.2.77".parse().unwrap();
    for _ in 0..=THROTTLE_FREE {
        t.fail(locked);
    }
    assert!(t.blocked(locked));
    for i in 0..(THROTTLE_MAX_ENTRIES as u32 + 50) {
        t.fail(IpAddr::from((0x0a00_0000u32 + i).to_be_bytes()));
    }
    assert!(t.blocked(locked), "the lockout survived the spray");
    assert!(t.failures.lock().unwrap().len() <= THROTTLE_MAX_ENTRIES);
}
