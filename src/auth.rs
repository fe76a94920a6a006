//! Recorder authentication, shared by RTSP and HTTP: Digest (RFC 2617, MD5,
//! with or without `qop=auth`), Basic where a recorder opts in or the
//! listener is TLS, and ONVIF WS-Security UsernameTokens.
//!
//! What an attacker on the recorder network meets here:
//! - Digest nonces are MACed by a random per-process key over the issue
//!   time *and the client's address*, expire after `[auth]
//!   nonce_lifetime_secs` (answered with `stale=true`, so clients retry
//!   silently), and with `qop=auth` each nonce's `nc` must grow. The digest
//!   `uri` must be the request's own URI (the caller says what counts as
//!   the same), so a header sniffed for one request opens nothing else.
//! - WS-Security tokens need a `Created` within `[auth] ws_created_skew_secs`
//!   and a strictly decoded nonce of at most [`MAX_WS_NONCE`] bytes, and
//!   each nonce is accepted once (a bounded cache keyed on the decoded
//!   bytes). A `PasswordText` token, like Basic, is a password in clear:
//!   refused on plaintext listeners unless the recorder has
//!   `cleartext_auth = true`.
//! - `allow_from` is checked together with the password and fails the same
//!   way (401), so an address outside it learns nothing about the password.
//!   Unknown users cost the same hashing as known ones. Every secret
//!   comparison is over fixed-length digests ([`constant_time_eq`]).
//! - After a few failures an address (an IPv6 /64) is locked out for a
//!   growing time: every attempt from it, on any connection, is refused
//!   unchecked until then, so parallel connections cannot guess faster.
//!
//! No crate implements the server side of Digest; this one is small enough to
//! read in one sitting. Passwords are only ever touched through
//! [`Secret::expose`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use base64::Engine;
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::config::{DeviceSet, Recorder, Secret, canonical_ip, constant_time_eq};
use crate::metrics::AuthFailure;

/// The realm in challenges.
pub const REALM: &str = "camgate";
/// Largest decoded WS-Security nonce accepted, in bytes (WSS recommends 16).
pub const MAX_WS_NONCE: usize = 64;

/// Lifetimes and tolerances (`[auth]` in the config file).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A Digest nonce older than this is stale.
    pub nonce_lifetime: Duration,
    /// How far a WS-Security `Created` may be from camgate's clock.
    pub ws_created_skew: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            nonce_lifetime: Duration::from_secs(300),
            ws_created_skew: Duration::from_secs(300),
        }
    }
}

/// The outcome of checking a request's credentials.
#[derive(Debug)]
pub enum Outcome {
    Ok(Arc<Recorder>),
    /// No credentials.
    Missing,
    /// Credentials were given and are refused (wrong, malformed, replayed,
    /// from outside `allow_from`, or the address is locked out).
    Invalid(AuthFailure),
    /// A correct Digest response for an expired nonce: the client should
    /// retry with a fresh one. The recorder is named so that a request
    /// inside a session it already holds can be let through.
    Stale(Arc<Recorder>),
}

/// What one request presents, and where it came from.
pub struct Presented<'a> {
    pub method: &'a str,
    /// The `Authorization` header, if any.
    pub authorization: Option<&'a str>,
    pub peer: IpAddr,
    /// The listener is TLS (Basic and PasswordText are then allowed).
    pub tls: bool,
    /// Whether a Digest `uri` parameter names this request: exactly its
    /// URI, or what the protocol treats as the same resource.
    pub uri_matches: &'a dyn Fn(&str) -> bool,
}

/// See the module docs.
pub struct Authenticator {
    by_user: HashMap<String, Arc<Recorder>>,
    /// Stands in for unknown users so they cost the same work.
    nobody: Arc<Recorder>,
    /// Some recorder accepts Basic on plaintext listeners.
    any_cleartext: bool,
    key: [u8; 32],
    settings: Settings,
    throttle: Throttle,
    ws_nonces: ReplayCache,
    nc: NcTracker,
}

impl Authenticator {
    pub fn new(recorders: &[Recorder], settings: Settings) -> Self {
        let nobody_password: [u8; 16] = rand::random();
        Authenticator {
            by_user: recorders
                .iter()
                .map(|r| (r.username.clone(), Arc::new(r.clone())))
                .collect(),
            nobody: Arc::new(Recorder {
                name: "".into(),
                username: String::new(),
                password: Secret::new(hex(&nobody_password)),
                allow_from: Vec::new(),
                devices: DeviceSet::Only(Default::default()),
                cleartext_auth: false,
            }),
            any_cleartext: recorders.iter().any(|r| r.cleartext_auth),
            key: rand::random(),
            settings,
            throttle: Throttle::default(),
            ws_nonces: ReplayCache::default(),
            nc: NcTracker::default(),
        }
    }

    /// Values for `WWW-Authenticate` headers: Digest (with `qop="auth"` when
    /// `qop`), and Basic where it would be accepted (TLS, or a recorder that
    /// opted in).
    pub fn challenges(&self, peer: IpAddr, stale: bool, tls: bool, qop: bool) -> Vec<String> {
        let nonce = self.nonce(unix_now(), peer);
        let stale = if stale { ", stale=true" } else { "" };
        let qop = if qop { ", qop=\"auth\"" } else { "" };
        let mut v = vec![format!(
            "Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=MD5{qop}{stale}"
        )];
        if tls || self.any_cleartext {
            v.push(format!("Basic realm=\"{REALM}\""));
        }
        v
    }

    /// `{issue time:016x}{MAC:32 hex}`, the MAC over the time and the
    /// client's address.
    fn nonce(&self, ts: u64, peer: IpAddr) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(ts.to_be_bytes());
        match canonical_ip(peer) {
            IpAddr::V4(a) => h.update(a.octets()),
            IpAddr::V6(a) => h.update(a.octets()),
        }
        h.update(self.key);
        let mac = h.finalize();
        format!("{ts:016x}{}", hex(&mac[..16]))
    }

    /// Checks a nonce camgate issued to `peer`: Ok(fresh) or Err(forged, or
    /// issued to another address).
    fn check_nonce(&self, nonce: &str, peer: IpAddr) -> Result<bool, ()> {
        if nonce.len() != 48 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(());
        }
        // All ASCII from here, so byte slicing is on character boundaries.
        let ts = u64::from_str_radix(&nonce[..16], 16).map_err(|_| ())?;
        if !constant_time_eq(
            self.nonce(ts, peer).as_bytes(),
            nonce.to_ascii_lowercase().as_bytes(),
        ) {
            return Err(());
        }
        let now = unix_now();
        if ts > now + 5 {
            return Err(());
        }
        Ok(now - ts.min(now) <= self.settings.nonce_lifetime.as_secs())
    }

    fn lookup(&self, user: &str) -> (&Arc<Recorder>, bool) {
        match self.by_user.get(user) {
            Some(r) => (r, true),
            None => (&self.nobody, false),
        }
    }

    /// Checks the `Authorization` header of a request.
    pub fn check(&self, p: &Presented<'_>) -> Outcome {
        let Some(auth) = p.authorization.map(str::trim) else {
            return Outcome::Missing;
        };
        if self.throttle.blocked(p.peer) {
            return Outcome::Invalid(AuthFailure::Throttled);
        }
        let (scheme, rest) = auth.split_once(' ').unwrap_or((auth, ""));
        let outcome = if scheme.eq_ignore_ascii_case("basic") {
            self.check_basic(rest.trim(), p)
        } else if scheme.eq_ignore_ascii_case("digest") {
            self.check_digest(rest, p)
        } else {
            Outcome::Invalid(AuthFailure::Malformed)
        };
        if let Outcome::Ok(_) = outcome {
            self.throttle.succeeded(p.peer);
        }
        outcome
    }

    fn check_basic(&self, b64: &str, p: &Presented<'_>) -> Outcome {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64) else {
            return Outcome::Invalid(AuthFailure::Malformed);
        };
        let Ok(text) = String::from_utf8(raw) else {
            return Outcome::Invalid(AuthFailure::Malformed);
        };
        let Some((user, pass)) = text.split_once(':') else {
            return Outcome::Invalid(AuthFailure::Malformed);
        };
        let (r, known) = self.lookup(user);
        let password_ok = constant_time_eq(r.password.expose().as_bytes(), pass.as_bytes());
        if !known {
            return Outcome::Invalid(AuthFailure::UnknownUser);
        }
        if !password_ok {
            return Outcome::Invalid(AuthFailure::BadCredentials);
        }
        if !r.allowed_from(p.peer) {
            return Outcome::Invalid(AuthFailure::AddressNotAllowed);
        }
        if !(p.tls || r.cleartext_auth) {
            return Outcome::Invalid(AuthFailure::CleartextRefused);
        }
        Outcome::Ok(r.clone())
    }

    fn check_digest(&self, params: &str, p: &Presented<'_>) -> Outcome {
        let params = parse_params(params);
        let get = |k: &str| {
            let mut found = params.iter().filter(|(n, _)| n.eq_ignore_ascii_case(k));
            match (found.next(), found.next()) {
                (Some((_, v)), None) => Some(v.as_str()),
                // A parameter given twice is ambiguous: not ours to pick.
                _ => None,
            }
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
        let qop = match get("qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else {
                    return Outcome::Invalid(AuthFailure::Malformed);
                };
                let Some(n) = parse_nc(nc) else {
                    return Outcome::Invalid(AuthFailure::Malformed);
                };
                Some((q, nc, cnonce, n))
            }
            Some(_) => return Outcome::Invalid(AuthFailure::Malformed),
        };
        let fresh = match self.check_nonce(nonce, p.peer) {
            Err(()) => return Outcome::Invalid(AuthFailure::Malformed),
            Ok(f) => f,
        };
        let (r, known) = self.lookup(user);
        let expected = digest_response(
            user,
            &r.password,
            p.method,
            uri,
            nonce,
            qop.map(|(q, nc, cnonce, _)| (q, nc, cnonce)),
        );
        let response_ok = constant_time_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        );
        if !known {
            return Outcome::Invalid(AuthFailure::UnknownUser);
        }
        if !response_ok {
            return Outcome::Invalid(AuthFailure::BadCredentials);
        }
        if !r.allowed_from(p.peer) {
            return Outcome::Invalid(AuthFailure::AddressNotAllowed);
        }
        if !(p.uri_matches)(uri) {
            return Outcome::Invalid(AuthFailure::UriMismatch);
        }
        if !fresh {
            return Outcome::Stale(r.clone());
        }
        if let Some((.., n)) = qop {
            match self.nc.advance(nonce, n, self.settings.nonce_lifetime) {
                NcCheck::Ok => {}
                NcCheck::Replay => return Outcome::Invalid(AuthFailure::Replay),
            }
        }
        Outcome::Ok(r.clone())
    }

    /// Checks an ONVIF WS-Security UsernameToken from `peer` (`tls`: the
    /// listener is TLS).
    pub fn check_ws_token(
        &self,
        token: &crate::http::soap::UsernameToken,
        peer: IpAddr,
        tls: bool,
    ) -> Outcome {
        if self.throttle.blocked(peer) {
            return Outcome::Invalid(AuthFailure::Throttled);
        }
        let outcome = self.ws_token(token, peer, tls);
        if let Outcome::Ok(_) = outcome {
            self.throttle.succeeded(peer);
        }
        outcome
    }

    fn ws_token(
        &self,
        token: &crate::http::soap::UsernameToken,
        peer: IpAddr,
        tls: bool,
    ) -> Outcome {
        use crate::http::soap;
        let nonce = match token.nonce.as_deref().map(soap::decode_nonce) {
            None => None,
            Some(Some(n)) => Some(n),
            Some(None) => return Outcome::Invalid(AuthFailure::Malformed),
        };
        let created = match token.created.as_deref() {
            None => None,
            Some(c) => match c.trim_ascii().parse::<jiff::Timestamp>() {
                Ok(t) => Some(t),
                Err(_) => return Outcome::Invalid(AuthFailure::Malformed),
            },
        };
        if token.digest && (nonce.is_none() || created.is_none()) {
            return Outcome::Invalid(AuthFailure::Malformed);
        }
        let (r, known) = self.lookup(&token.username);
        let password_ok = soap::verify(token, nonce.as_deref(), r.password.expose());
        if !known {
            return Outcome::Invalid(AuthFailure::UnknownUser);
        }
        if !password_ok {
            return Outcome::Invalid(AuthFailure::BadCredentials);
        }
        if !r.allowed_from(peer) {
            return Outcome::Invalid(AuthFailure::AddressNotAllowed);
        }
        if !(token.digest || tls || r.cleartext_auth) {
            return Outcome::Invalid(AuthFailure::CleartextRefused);
        }
        if let Some(t) = created {
            let skew = self.settings.ws_created_skew.as_secs() as i64;
            let off = jiff::Timestamp::now().as_second() - t.as_second();
            if off.abs() > skew {
                return Outcome::Invalid(AuthFailure::Expired);
            }
        }
        if let Some(n) = &nonce
            && !self
                .ws_nonces
                .fresh(&token.username, n, 2 * self.settings.ws_created_skew)
        {
            return Outcome::Invalid(AuthFailure::Replay);
        }
        Outcome::Ok(r.clone())
    }

    /// Records a failed attempt from `ip`; returns how long to hold this
    /// answer back. Past a few failures the address is locked out (see
    /// [`Authenticator::check`]) for twice that: the lockout outlasts the
    /// held-back answer, so the next attempt finds it still in force.
    pub fn failure_delay(&self, ip: IpAddr) -> Duration {
        self.throttle.fail(ip) / 2
    }

    /// The configured lifetimes.
    pub fn settings(&self) -> Settings {
        self.settings
    }
}

/// Parses a Digest `nc` (eight hex digits).
fn parse_nc(nc: &str) -> Option<u32> {
    (nc.len() == 8 && nc.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| u32::from_str_radix(nc, 16).ok())
        .flatten()
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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(DIGITS[usize::from(x >> 4)] as char);
        s.push(DIGITS[usize::from(x & 15)] as char);
    }
    s
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Parses `k=v, k="quoted, value", ...` (auth-param list). Every index it
/// slices at is the position of an ASCII byte or the end, so multi-byte
/// characters anywhere cannot split.
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
        let key = s.get(k0..i).unwrap_or("").trim().to_string();
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
                let ch = s.get(i..).and_then(|t| t.chars().next());
                let ch_len = ch.map_or(1, char::len_utf8);
                if let Some(c) = ch {
                    v.push(c);
                }
                i += ch_len;
            }
            i += 1;
            v
        } else {
            let v0 = i;
            while i < b.len() && b[i] != b',' {
                i += 1;
            }
            s.get(v0..i).unwrap_or("").trim().to_string()
        };
        out.push((key, value));
    }
    out
}

/// Key of a WS-Security nonce in the replay cache: a digest of the user and
/// the decoded nonce bytes, so every encoding of one nonce is one key and
/// every entry has the same size.
fn replay_key(user: &str, nonce: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new();
    h.update((user.len() as u64).to_be_bytes());
    h.update(user.as_bytes());
    h.update(nonce);
    let d = h.finalize();
    let mut k = [0u8; 16];
    k.copy_from_slice(&d[..16]);
    k
}

/// A map whose entries are forgotten, oldest first, once older than a
/// window or past a cap: the shape of both nonce caches below.
struct Expiring<K, V> {
    map: HashMap<K, V>,
    order: VecDeque<(K, SystemTime)>,
}

impl<K, V> Default for Expiring<K, V> {
    fn default() -> Self {
        Expiring {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone, V> Expiring<K, V> {
    /// Forgets entries older than `window`, and the oldest while at `cap`.
    fn prune(&mut self, now: SystemTime, window: Duration, cap: usize) {
        while let Some((k, t)) = self.order.front()
            && (now.duration_since(*t).unwrap_or_default() > window || self.order.len() >= cap)
        {
            self.map.remove(k);
            self.order.pop_front();
        }
    }

    fn insert(&mut self, k: K, v: V, now: SystemTime) {
        self.map.insert(k.clone(), v);
        self.order.push_back((k, now));
    }
}

/// WS-Security nonces seen recently: a token whose nonce is in it is a
/// replay (CVE-2022-30563 class). Bounded by entries, each a fixed 16-byte
/// key (about 5 MiB at the cap); entries older than the window tokens can
/// be accepted in are forgotten first.
#[derive(Default)]
struct ReplayCache {
    // A std mutex: one insert per request, never across an await.
    seen: Mutex<Expiring<[u8; 16], ()>>,
}

/// Most nonces remembered. At the default skew (a 10-minute window) the
/// cap only evicts a live nonce above ~330 tokens per second.
const REPLAY_CACHE_ENTRIES: usize = 200_000;

impl ReplayCache {
    /// True the first time a nonce is seen.
    fn fresh(&self, user: &str, nonce: &[u8], window: Duration) -> bool {
        let key = replay_key(user, nonce);
        let now = SystemTime::now();
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        g.prune(now, window, REPLAY_CACHE_ENTRIES);
        if g.map.contains_key(&key) {
            return false;
        }
        g.insert(key, (), now);
        true
    }
}

/// With `qop=auth`, the highest `nc` seen per nonce: a request must count up.
#[derive(Default)]
struct NcTracker {
    // A std mutex: one update per request, never across an await.
    seen: Mutex<Expiring<String, u32>>,
}

enum NcCheck {
    Ok,
    Replay,
}

/// Most nonces tracked; past it the oldest is forgotten.
const NC_TRACKED: usize = 65_536;

impl NcTracker {
    fn advance(&self, nonce: &str, nc: u32, lifetime: Duration) -> NcCheck {
        let now = SystemTime::now();
        let mut g = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        g.prune(now, lifetime, NC_TRACKED);
        match g.map.get_mut(nonce) {
            Some(last) if nc <= *last => NcCheck::Replay,
            Some(last) => {
                *last = nc;
                NcCheck::Ok
            }
            None => {
                g.insert(nonce.to_string(), nc, now);
                NcCheck::Ok
            }
        }
    }
}

/// The unit addresses are throttled by: the IPv4 address, or the IPv6 /64.
fn throttle_key(ip: IpAddr) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(a) => {
            let s = a.segments();
            IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
        }
        v4 => v4,
    }
}

/// Per-address failure counts over a window; bounded in size. Past
/// [`THROTTLE_FREE`] failures the address is locked out for a delay that
/// doubles with each further failure.
#[derive(Default)]
struct Throttle {
    // A std mutex: held only for a map update, never across an await.
    failures: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Clone, Copy)]
struct Failures {
    count: u32,
    last: SystemTime,
    blocked_until: SystemTime,
}

const THROTTLE_WINDOW: Duration = Duration::from_secs(300);
const THROTTLE_FREE: u32 = 5;
const THROTTLE_MAX_DELAY: Duration = Duration::from_secs(10);
const THROTTLE_MAX_ENTRIES: usize = 10_000;

impl Throttle {
    /// Whether `ip` is locked out now.
    fn blocked(&self, ip: IpAddr) -> bool {
        let now = SystemTime::now();
        let m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&throttle_key(ip))
            .is_some_and(|f| f.blocked_until > now)
    }

    /// A success forgets the address's failures.
    fn succeeded(&self, ip: IpAddr) {
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(&throttle_key(ip));
    }

    fn fail(&self, ip: IpAddr) -> Duration {
        let now = SystemTime::now();
        let mut m = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let key = throttle_key(ip);
        if m.len() >= THROTTLE_MAX_ENTRIES && !m.contains_key(&key) {
            m.retain(|_, f| now.duration_since(f.last).unwrap_or_default() < THROTTLE_WINDOW);
            if m.len() >= THROTTLE_MAX_ENTRIES {
                // Make room from addresses not locked out; a spray from
                // many addresses must not wipe the lockouts in force.
                m.retain(|_, f| f.blocked_until > now);
            }
            if m.len() >= THROTTLE_MAX_ENTRIES {
                // Every entry is a lockout: this address is not tracked,
                // but its answer is held back as if it were locked out.
                return THROTTLE_MAX_DELAY;
            }
        }
        let e = m.entry(key).or_insert(Failures {
            count: 0,
            last: now,
            blocked_until: now,
        });
        if let Ok(left) = e.blocked_until.duration_since(now)
            && !left.is_zero()
        {
            // Attempts refused unchecked during a lockout do not extend it.
            return left;
        }
        if now.duration_since(e.last).unwrap_or_default() > THROTTLE_WINDOW {
            e.count = 0;
        }
        e.count = e.count.saturating_add(1);
        e.last = now;
        if e.count <= THROTTLE_FREE {
            return Duration::ZERO;
        }
        let exp = (e.count - THROTTLE_FREE).min(8);
        let delay = Duration::from_millis(250u64 << exp).min(THROTTLE_MAX_DELAY);
        e.blocked_until = now + delay;
        delay
    }
}

#[cfg(test)]
mod tests;
