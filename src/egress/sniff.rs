//! What the first bytes of a trapped connection or datagram say: a TLS
//! ClientHello and its SNI, an HTTP request and its Host and path, an NTP
//! client packet, a DNS query. Pure, bounded parsing of hostile input: every
//! length is checked, nothing panics, and a truncated message still tells
//! what it is (without the parts that did not arrive).

/// What the payload looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tls,
    Http,
    Ntp,
    Dns,
    /// Bytes that match none of the above.
    Other,
    /// Nothing arrived.
    Empty,
}

/// What was read from the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: Kind,
    /// TLS server name, or HTTP Host without its port; lower case.
    pub name: Option<String>,
    /// HTTP request path (no query).
    pub path: Option<String>,
}

/// Longest name or path kept (they end up in logs and the API).
const MAX_FIELD: usize = 253;

/// Does `bytes` hold a complete first message yet (TLS record or HTTP
/// head)? Used to stop reading early; `true` for anything else.
pub fn complete(bytes: &[u8]) -> bool {
    if looks_tls(bytes) {
        return bytes.len() >= 5
            && bytes.len() >= 5 + usize::from(u16::from_be_bytes([bytes[3], bytes[4]]));
    }
    if looks_http(bytes) {
        return bytes.windows(4).any(|w| w == b"\r\n\r\n");
    }
    !bytes.is_empty()
}

/// Parses the first bytes sent to `port` over `udp` or TCP.
pub fn sniff(bytes: &[u8], port: u16, udp: bool) -> Sniffed {
    let none = |kind| Sniffed {
        kind,
        name: None,
        path: None,
    };
    if bytes.is_empty() {
        return none(Kind::Empty);
    }
    if !udp && looks_tls(bytes) {
        return Sniffed {
            kind: Kind::Tls,
            name: sni(bytes),
            path: None,
        };
    }
    if looks_http(bytes) {
        let (name, path) = http_host_path(bytes);
        return Sniffed {
            kind: Kind::Http,
            name,
            path,
        };
    }
    if udp && looks_ntp(bytes, port) {
        return none(Kind::Ntp);
    }
    if port == 53 || looks_dns(bytes, udp) {
        return none(Kind::Dns);
    }
    none(Kind::Other)
}

/// A TLS handshake record (ClientHello), any version from SSL 3.0.
fn looks_tls(b: &[u8]) -> bool {
    b.len() >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04
}

fn looks_http(b: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"POST ",
        b"PUT ",
        b"HEAD ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"CONNECT ",
        b"TRACE ",
    ];
    METHODS.iter().any(|m| b.starts_with(m))
}

/// NTP client or symmetric packet: 48 bytes or more, version 1 to 4,
/// mode 1 or 3, on port 123 (other ports: the same shape is too common).
fn looks_ntp(b: &[u8], port: u16) -> bool {
    let version = (b[0] >> 3) & 0x07;
    let mode = b[0] & 0x07;
    port == 123 && b.len() >= 48 && (1..=4).contains(&version) && matches!(mode, 1 | 3)
}

/// A standard query with one question (over TCP, after the length).
fn looks_dns(b: &[u8], udp: bool) -> bool {
    let h = if udp { b } else { b.get(2..).unwrap_or(&[]) };
    if h.len() < 17 {
        return false;
    }
    let qr_opcode = h[2] & 0xf8;
    let qd = u16::from_be_bytes([h[4], h[5]]);
    let an = u16::from_be_bytes([h[6], h[7]]);
    qr_opcode == 0 && qd == 1 && an == 0
}

/// Reads big-endian lengths and slices without ever going out of bounds.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.b.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|s| usize::from(s[0]))
    }

    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|s| usize::from(u16::from_be_bytes([s[0], s[1]])))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|s| (usize::from(s[0]) << 16) | (usize::from(s[1]) << 8) | usize::from(s[2]))
    }
}

/// The server name of a ClientHello in the first record (RFC 8446 4.1.2,
/// RFC 6066 3), if it arrived whole.
fn sni(bytes: &[u8]) -> Option<String> {
    let mut r = Reader { b: bytes, at: 0 };
    r.take(3)?; // content type, version
    let record_len = r.u16()?;
    let record = r.take(record_len.min(bytes.len().saturating_sub(5)))?;
    let mut r = Reader { b: record, at: 0 };
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let _len = r.u24()?;
    r.take(2 + 32)?; // legacy version, random
    let sid = r.u8()?;
    r.take(sid)?;
    let suites = r.u16()?;
    r.take(suites)?;
    let comp = r.u8()?;
    r.take(comp)?;
    let ext_len = r.u16()?;
    let exts = r.take(ext_len)?;
    let mut e = Reader { b: exts, at: 0 };
    while let (Some(ty), Some(len)) = (e.u16(), e.u16()) {
        let body = e.take(len)?;
        if ty != 0 {
            continue;
        }
        let mut s = Reader { b: body, at: 0 };
        let list_len = s.u16()?;
        let list = s.take(list_len)?;
        let mut l = Reader { b: list, at: 0 };
        while let Some(name_type) = l.u8() {
            let n = l.u16()?;
            let name = l.take(n)?;
            if name_type == 0 {
                return clean_name(name);
            }
        }
        return None;
    }
    None
}

/// A host name as it may be shown: printable, at most 253 bytes, lower
/// case, no port.
fn clean_name(raw: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(raw).ok()?.trim();
    let s = match s.rsplit_once(':') {
        // host:port, but not a bare IPv6 literal
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => s,
    };
    let s = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if s.is_empty()
        || s.len() > MAX_FIELD
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b))
    {
        return None;
    }
    Some(s.to_ascii_lowercase())
}

/// Host and path of an HTTP request head (as much as arrived).
fn http_host_path(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let head = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => &bytes[..i],
        None => bytes,
    };
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or("");
    let target = request_line.split(' ').nth(1).unwrap_or("");
    let (mut host, path) = match target.split_once("://") {
        // absolute-form: http://host/path
        Some((_, rest)) => {
            let (h, p) = rest.split_once('/').unwrap_or((rest, ""));
            (clean_name(h.as_bytes()), format!("/{p}"))
        }
        None => (None, target.to_string()),
    };
    let path = path.split(['?', '#']).next().unwrap_or("").to_string();
    if host.is_none() {
        host = lines.find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("host")
                .then(|| clean_name(v.as_bytes()))
                .flatten()
        });
    }
    let path = (!path.is_empty() && path.starts_with('/'))
        .then(|| path.chars().take(MAX_FIELD).collect::<String>());
    (host, path)
}

/// Test helpers shared with the trap's tests.
#[cfg(test)]
pub(crate) mod test_support {
    /// A ClientHello as rustls would send it, with `name` as SNI.
    pub fn client_hello(name: &str) -> Vec<u8> {
        let mut sni = Vec::new();
        let n = name.as_bytes();
        sni.extend(((n.len() + 3) as u16).to_be_bytes());
        sni.push(0);
        sni.extend((n.len() as u16).to_be_bytes());
        sni.extend(n);
        let mut exts = Vec::new();
        exts.extend(0x000au16.to_be_bytes()); // supported_groups first
        exts.extend(4u16.to_be_bytes());
        exts.extend([0, 2, 0, 0x1d]);
        exts.extend(0u16.to_be_bytes());
        exts.extend((sni.len() as u16).to_be_bytes());
        exts.extend(&sni);
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(0);
        body.extend(2u16.to_be_bytes());
        body.extend([0x13, 0x01]);
        body.extend([1, 0]);
        body.extend((exts.len() as u16).to_be_bytes());
        body.extend(&exts);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(&body);
        let mut rec = vec![0x16, 0x03, 0x01];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(&hs);
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::client_hello;
    use super::*;

    #[test]
    fn tls_sni() {
        let ch = client_hello("Api.Hik-Connect.com");
        let s = sniff(&ch, 443, false);
        assert_eq!(s.kind, Kind::Tls);
        assert_eq!(s.name.as_deref(), Some("api.hik-connect.com"));
        assert!(complete(&ch));
        // Every truncation is still TLS, never a panic, and never a name
        // from bytes that did not arrive.
        for cut in 0..ch.len() {
            let s = sniff(&ch[..cut], 443, false);
            assert!(matches!(s.kind, Kind::Tls | Kind::Other | Kind::Empty));
            assert!(!complete(&ch[..cut]) || cut == 0 || cut < 3);
            if let Some(n) = s.name {
                assert_eq!(n, "api.hik-connect.com");
            }
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x12345678u32;
        for len in 0..600 {
            let mut b: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    seed as u8
                })
                .collect();
            if len > 3 {
                b[0] = 0x16;
                b[1] = 0x03;
                b[2] = 0x01;
            }
            let _ = sniff(&b, 443, false);
            let _ = sniff(&b, 53, true);
            let _ = complete(&b);
        }
        // Lengths pointing far past the end.
        let mut ch = client_hello("x.example");
        ch[3] = 0xff;
        ch[4] = 0xff;
        assert_eq!(sniff(&ch, 443, false).kind, Kind::Tls);
        assert!(!complete(&ch));
    }

    #[test]
    fn http_host_and_path() {
        let s = sniff(
            b"GET /update/regist?id=1 HTTP/1.1\r\nUser-Agent: x\r\nHOST: www.dahuaddns.com:80\r\n\r\n",
            80,
            false,
        );
        assert_eq!(s.kind, Kind::Http);
        assert_eq!(s.name.as_deref(), Some("www.dahuaddns.com"));
        assert_eq!(s.path.as_deref(), Some("/update/regist"));
        let s = sniff(b"POST http://dev.hik-connect.com/x HTTP/1.0\r\n", 80, false);
        assert_eq!(s.name.as_deref(), Some("dev.hik-connect.com"));
        assert_eq!(s.path.as_deref(), Some("/x"));
        let s = sniff(b"GET / HTTP/1.1\r\nHost: <script>\r\n\r\n", 80, false);
        assert_eq!(s.name, None);
    }

    #[test]
    fn ntp_dns_other_empty() {
        let mut ntp = vec![0u8; 48];
        ntp[0] = 0x23; // v4, client
        assert_eq!(sniff(&ntp, 123, true).kind, Kind::Ntp);
        assert_eq!(sniff(&ntp, 9999, true).kind, Kind::Other);
        let q = [
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'c', b'o', b'm', 0, 0, 1, 0, 1,
        ];
        assert_eq!(sniff(&q, 5353, true).kind, Kind::Dns);
        assert_eq!(sniff(b"\x00\x01", 53, true).kind, Kind::Dns);
        assert_eq!(sniff(b"\x10\x20MQTT", 31006, false).kind, Kind::Other);
        assert_eq!(sniff(b"", 443, false).kind, Kind::Empty);
    }
}
