//! Recorder authentication, shared by RTSP and HTTP: Basic and Digest
//! (RFC 2617; MD5, with or without `qop=auth`) with stateless nonces, ONVIF
//! WS-Security UsernameTokens with a replay cache, constant-time
//! comparisons, and a per-address slow-down after repeated failures.
//!
//! No crate implements the server side of Digest; this one is small enough to
//! read in one sitting. Passwords are only ever touched through
//! [`Secret::expose`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use md5::{Digest, Md5};

use crate::config::{Recorder, Secret, constant_time_eq};
use crate::metrics::AuthFailure;

/// The realm in challenges.
pub const REALM: &str = "camgate";
/// How long a nonce stays valid; older ones get `stale=TRUE`.
const NONCE_TTL: Duration = Duration::from_secs(12 * 3600);

/// The outcome of checking a request's credentials.
#[derive(Debug)]
pub enum Outcome {
    Ok(Arc<Recorder>),
    /// No `Authorization` header.
    Missing,
    /// Credentials were given and are wrong (or malformed).
    Invalid(AuthFailure),
    /// A Digest response for an expired nonce: the client should retry.
    Stale,
}

/// See the module docs.
pub struct Authenticator {
    by_user: HashMap<String, Arc<Recorder>>,
    key: [u8; 16],
    throttle: Throttle,
    nonces: NonceCache,
}

impl Authenticator {
    pub fn new(recorders: &[Recorder]) -> Self {
        Authenticator {
            by_user: recorders
                .iter()
                .map(|r| (r.username.clone(), Arc::new(r.clone())))
                .collect(),
            key: rand::random(),
            throttle: Throttle::default(),
            nonces: NonceCache::default(),
        }
    }

    /// Values for `WWW-Authenticate` headers (Digest preferred, Basic too).
    pub fn challenges(&self, stale: bool) -> [String; 2] {
        let nonce = self.nonce(unix_now());
        let stale = if stale { ", stale=TRUE" } else { "" };
        [
            format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5{stale}"),
            format!("Basic realm=\"{REALM}\""),
        ]
    }

    fn nonce(&self, ts: u64) -> String {
        let mut h = Md5::new();
        h.update(self.key);
        h.update(ts.to_be_bytes());
        h.update(self.key);
        format!("{ts:016x}{}", &hex(&h.finalize())[..16])
    }

    /// Checks a nonce camgate issued: Ok(fresh) or Err(forged).
    fn check_nonce(&self, nonce: &str) -> Result<bool, ()> {
        if nonce.len() != 32 {
            return Err(());
        }
        let ts = u64::from_str_radix(&nonce[..16], 16).map_err(|_| ())?;
        if !constant_time_eq(self.nonce(ts).as_bytes(), nonce.as_bytes()) {
            return Err(());
        }
        let age = unix_now().saturating_sub(ts);
        Ok(age <= NONCE_TTL.as_secs())
    }

    /// Checks the `Authorization` header of a request with `method`.
    pub fn check(&self, method: &str, authorization: Option<&str>) -> Outcome {
        let Some(auth) = authorization.map(str::trim) else {
            return Outcome::Missing;
        };
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            self.check_basic(rest.trim())
        } else if scheme.eq_ignore_ascii_case("digest") {
            self.check_digest(method, rest)
        } else {
            Outcome::Invalid(AuthFailure::Malformed)
        }
    }

    fn check_basic(&self, b64: &str) -> Outcome {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return Outcome::Invalid(AuthFailure::Malformed);
        };
        let Ok(text) = String::from_utf8(raw) else {
            return Outcome::Invalid(AuthFailure::Malformed);
        };
        let Some((user, pass)) = text.split_once(':') else {
            return Outcome::Invalid(AuthFailure::Malformed);
        };
        match self.by_user.get(user) {
            Some(r) if constant_time_eq(r.password.expose().as_bytes(), pass.as_bytes()) => {
                Outcome::Ok(r.clone())
            }
            Some(_) => Outcome::Invalid(AuthFailure::BadCredentials),
            None => {
                // Spend the same work on unknown users.
                let _ = constant_time_eq(pass.as_bytes(), pass.as_bytes());
                Outcome::Invalid(AuthFailure::UnknownUser)
            }
        }
    }

    fn check_digest(&self, method: &str, params: &str) -> Outcome {
        let p = parse_params(params);
        let get = |k: &str| {
            p.iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        let (Some(user), Some(nonce), Some(uri), Some(response)) =
            (get("username"), get("nonce"), get("uri"), get("response"))
        else {
            return Outcome::Invalid(AuthFailure::Malformed);
        };
        if get("realm").is_some_and(|r| r != REALM) {
            return Outcome::Invalid(AuthFailure::Malformed);
        }
        if let Some(alg) = get("algorithm")
            && !alg.eq_ignore_ascii_case("MD5")
        {
            return Outcome::Invalid(AuthFailure::Malformed);
        }
        let fresh = match self.check_nonce(nonce) {
            Err(()) => return Outcome::Invalid(AuthFailure::Malformed),
            Ok(f) => f,
        };
        let Some(r) = self.by_user.get(user) else {
            return Outcome::Invalid(AuthFailure::UnknownUser);
        };
        let expected = digest_response(
            user,
            &r.password,
            method,
            uri,
            nonce,
            get("qop").map(|q| (q, get("nc").unwrap_or(""), get("cnonce").unwrap_or(""))),
        );
        if !constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Outcome::Invalid(AuthFailure::BadCredentials);
        }
        if !fresh {
            return Outcome::Stale;
        }
        Outcome::Ok(r.clone())
    }

    /// Checks an ONVIF WS-Security UsernameToken; a nonce seen before (a
    /// replayed request) is refused.
    pub fn check_ws_token(&self, token: &crate::http::soap::UsernameToken) -> Outcome {
        let Some(r) = self.by_user.get(&token.username) else {
            return Outcome::Invalid(AuthFailure::UnknownUser);
        };
        if !crate::http::soap::verify(token, r.password.expose()) {
            return Outcome::Invalid(AuthFailure::BadCredentials);
        }
        if token.digest && !self.nonces.fresh(&token.nonce) {
            return Outcome::Invalid(AuthFailure::Malformed);
        }
        Outcome::Ok(r.clone())
    }

    /// Records a failed attempt from `ip`; returns how long to hold the
    /// answer back (zero for the first few failures).
    pub fn failure_delay(&self, ip: IpAddr) -> Duration {
        self.throttle.fail(ip)
    }
}

/// MD5 Digest response (RFC 2617 §3.2.2.1).
pub fn digest_response(
    user: &str,
    password: &Secret,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(&str, &str, &str)>,
) -> String {
    let ha1 = md5_hex(&format!("{user}:{REALM}:{}", password.expose()));
    let ha2 = md5_hex(&format!("{method}:{uri}"));
    match qop {
        Some((qop, nc, cnonce)) => md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")),
        None => md5_hex(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

fn md5_hex(s: &str) -> String {
    hex(&Md5::digest(s.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push_str(&format!("{x:02x}"));
    }
    s
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses `k=v, k="quoted, value", ...` (auth-param list).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() && out.len() < 32 {
        while i < b.len() && (b[i] == b',' || b[i].is_ascii_whitespace()) {
            i += 1;
        }
        let k0 = i;
        while i < b.len() && b[i] != b'=' && b[i] != b',' {
            i += 1;
        }
        let key = s[k0..i].trim().to_string();
        if i >= b.len() || b[i] != b'=' {
            continue;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                // Byte-wise copy keeps multi-byte characters intact.
                let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
                v.push_str(&s[i..i + ch_len]);
                i += ch_len;
            }
            i += 1;
            v
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            s[v0..i].trim().to_string()
        };
        out.push((key, value));
    }
    out
}

/// WS-Security nonces seen recently (a bounded FIFO): a token whose nonce
/// is in it is a replay (CVE-2022-30563 class).
#[derive(Default)]
struct NonceCache {
    // A std mutex: one insert per request, never across an await.
    seen: Mutex<(
        std::collections::HashSet<String>,
        std::collections::VecDeque<String>,
    )>,
}

const NONCE_CACHE: usize = 16_384;

impl NonceCache {
    /// True the first time a nonce is seen.
    fn fresh(&self, nonce: &str) -> bool {
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let (set, order) = &mut *g;
        if set.contains(nonce) {
            return false;
        }
        if order.len() >= NONCE_CACHE
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        set.insert(nonce.to_string());
        order.push_back(nonce.to_string());
        true
    }
}

/// Per-address failure counts over a window; bounded in size.
#[derive(Default)]
struct Throttle {
    // A std mutex: held only for a map update, never across an await.
    failures: Mutex<HashMap<IpAddr, (u32, SystemTime)>>,
}

const THROTTLE_WINDOW: Duration = Duration::from_secs(300);
const THROTTLE_FREE: u32 = 5;
const THROTTLE_MAX_DELAY: Duration = Duration::from_secs(10);
const THROTTLE_MAX_ENTRIES: usize = 10_000;

impl Throttle {
    fn fail(&self, ip: IpAddr) -> Duration {
        let now = SystemTime::now();
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= THROTTLE_MAX_ENTRIES {
            m.retain(|_, (_, t)| now.duration_since(*t).unwrap_or_default() < THROTTLE_WINDOW);
            if m.len() >= THROTTLE_MAX_ENTRIES {
                // Under a spray from many addresses, treat all as suspect:
                // keep the table bounded and delay everyone.
                m.clear();
                return THROTTLE_MAX_DELAY;
            }
        }
        let e = m.entry(ip).or_insert((0, now));
        if now.duration_since(e.1).unwrap_or_default() > THROTTLE_WINDOW {
            *e = (0, now);
        }
        e.0 += 1;
        e.1 = now;
        if e.0 <= THROTTLE_FREE {
            return Duration::ZERO;
        }
        let exp = (e.0 - THROTTLE_FREE).min(8);
        Duration::from_millis(250u64 << exp).min(THROTTLE_MAX_DELAY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceSet;

    fn auth() -> Authenticator {
        Authenticator::new(&[Recorder {
            name: "nvr".into(),
            username: "nvr".into(),
            password: Secret::new("pw"),
            allow_from: vec![],
            devices: DeviceSet::All,
        }])
    }

    fn nonce_of(a: &Authenticator) -> String {
        let c = a.challenges(false);
        let p = parse_params(c[0].strip_prefix("Digest ").unwrap());
        p.into_iter().find(|(k, _)| k == "nonce").unwrap().1
    }

    #[test]
    fn basic() {
        let a = auth();
        let ok = base64::engine::general_purpose::STANDARD.encode("nvr:pw");
        assert!(matches!(
            a.check("DESCRIBE", Some(&format!("Basic {ok}"))),
            Outcome::Ok(_)
        ));
        let bad = base64::engine::general_purpose::STANDARD.encode("nvr:px");
        assert!(matches!(
            a.check("DESCRIBE", Some(&format!("Basic {bad}"))),
            Outcome::Invalid(_)
        ));
        assert!(matches!(
            a.check("DESCRIBE", Some("Basic !!!")),
            Outcome::Invalid(_)
        ));
        assert!(matches!(a.check("DESCRIBE", None), Outcome::Missing));
        assert!(matches!(
            a.check("DESCRIBE", Some("Bearer x")),
            Outcome::Invalid(_)
        ));
    }

    #[test]
    fn digest_without_and_with_qop() {
        let a = auth();
        let nonce = nonce_of(&a);
        let uri = "rtsp://127.0.0.1:8554/demo/main";
        let resp = digest_response("nvr", &Secret::new("pw"), "DESCRIBE", uri, &nonce, None);
        let h = format!(
            "Digest username=\"nvr\", realm=\"camgate\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{resp}\""
        );
        assert!(matches!(a.check("DESCRIBE", Some(&h)), Outcome::Ok(_)));
        // The method is part of the hash.
        assert!(matches!(a.check("SETUP", Some(&h)), Outcome::Invalid(_)));
        let resp = digest_response(
            "nvr",
            &Secret::new("pw"),
            "PLAY",
            uri,
            &nonce,
            Some(("auth", "00000001", "abc")),
        );
        let h = format!(
            "Digest username=\"nvr\", realm=\"camgate\", nonce=\"{nonce}\", uri=\"{uri}\", qop=auth, nc=00000001, cnonce=\"abc\", response=\"{resp}\""
        );
        assert!(matches!(a.check("PLAY", Some(&h)), Outcome::Ok(_)));
    }

    #[test]
    fn digest_rejects_forged_and_flags_stale() {
        let a = auth();
        let uri = "/x";
        let forged = "0000000000000001ffffffffffffffff";
        let resp = digest_response("nvr", &Secret::new("pw"), "DESCRIBE", uri, forged, None);
        let h = format!(
            "Digest username=\"nvr\", nonce=\"{forged}\", uri=\"{uri}\", response=\"{resp}\""
        );
        assert!(matches!(a.check("DESCRIBE", Some(&h)), Outcome::Invalid(_)));
        // An old nonce camgate did issue: stale, so the client retries.
        let old = a.nonce(unix_now() - NONCE_TTL.as_secs() - 10);
        let resp = digest_response("nvr", &Secret::new("pw"), "DESCRIBE", uri, &old, None);
        let h =
            format!("Digest username=\"nvr\", nonce=\"{old}\", uri=\"{uri}\", response=\"{resp}\"");
        assert!(matches!(a.check("DESCRIBE", Some(&h)), Outcome::Stale));
        // Another camgate's nonce (different key) is not ours.
        let other = auth().nonce(unix_now());
        let resp = digest_response("nvr", &Secret::new("pw"), "DESCRIBE", uri, &other, None);
        let h = format!(
            "Digest username=\"nvr\", nonce=\"{other}\", uri=\"{uri}\", response=\"{resp}\""
        );
        assert!(matches!(a.check("DESCRIBE", Some(&h)), Outcome::Invalid(_)));
        assert!(matches!(
            a.check("DESCRIBE", Some("Digest garbage")),
            Outcome::Invalid(_)
        ));
        assert!(matches!(
            a.check("DESCRIBE", Some("Digest")),
            Outcome::Invalid(_)
        ));
    }

    #[test]
    fn params_with_quoted_commas() {
        let p = parse_params(r#"username="a", uri="rtsp://h/x?a=1,2", response=abc"#);
        assert_eq!(p[1], ("uri".to_string(), "rtsp://h/x?a=1,2".to_string()));
        assert_eq!(p[2], ("response".to_string(), "abc".to_string()));
        let _ = parse_params("=,,=\"");
        let _ = parse_params("a=\"é");
    }

    #[test]
    fn ws_security_tokens_and_replays() {
        use base64::Engine;
        let a = auth();
        let nonce = base64::engine::general_purpose::STANDARD.encode(b"nonce-1");
        let created = "2026-11-28T00:00:00Z";
        let token = crate::http::soap::UsernameToken {
            username: "nvr".into(),
            password: crate::http::soap::password_digest(&nonce, created, "pw").unwrap(),
            digest: true,
            nonce,
            created: created.into(),
        };
        assert!(matches!(a.check_ws_token(&token), Outcome::Ok(_)));
        assert!(
            matches!(a.check_ws_token(&token), Outcome::Invalid(_)),
            "replay refused"
        );
        let wrong = crate::http::soap::UsernameToken {
            password: "x".into(),
            ..token.clone()
        };
        assert!(matches!(
            a.check_ws_token(&wrong),
            Outcome::Invalid(AuthFailure::BadCredentials)
        ));
        let nobody = crate::http::soap::UsernameToken {
            username: "x".into(),
            ..token
        };
        assert!(matches!(
            a.check_ws_token(&nobody),
            Outcome::Invalid(AuthFailure::UnknownUser)
        ));
    }

    #[test]
    fn throttle_grows_then_caps() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let delays: Vec<_> = (0..15).map(|_| t.fail(ip)).collect();
        assert!(delays[..5].iter().all(|d| d.is_zero()));
        assert!(delays[5] > Duration::ZERO);
        assert_eq!(*delays.last().unwrap(), THROTTLE_MAX_DELAY);
        assert!(t.fail("192.0.2.2".parse().unwrap()).is_zero());
    }
}
