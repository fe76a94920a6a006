//! RTSP/1.0 request parsing (RFC 2326 §6) from a connection's read buffer:
//! pure, bounded, and never panicking on hostile input.
//!
//! The buffer may also hold interleaved binary frames (`$`, channel, length;
//! §10.12), which recorders use for RTCP receiver reports over TCP.

/// A parsed request. Header names keep their case; lookups ignore it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// Every value of a header, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The CSeq, if present and numeric.
    pub fn cseq(&self) -> Option<&str> {
        self.header("CSeq")
            .map(str::trim)
            .filter(|v| !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()))
    }

    /// The session id from the `Session` header, without parameters.
    pub fn session_id(&self) -> Option<&str> {
        self.header("Session")
            .map(|s| s.split(';').next().unwrap_or("").trim())
            .filter(|s| !s.is_empty())
    }
}

/// What the start of the buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Need more bytes.
    Incomplete,
    /// A complete request that occupied `consumed` bytes.
    Request { request: Request, consumed: usize },
    /// An interleaved binary frame on `channel` of `consumed` bytes in all.
    Interleaved { channel: u8, consumed: usize },
    /// Bytes that are not RTSP, or a request over the size limit.
    Invalid(&'static str),
}

/// Parses the first message in `buf`, refusing requests larger than `max`.
pub fn parse(buf: &[u8], max: usize) -> Parsed {
    // Tolerate blank lines between requests (RFC 2326 §4 follows HTTP here).
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if skip > max {
        // Blank lines count against the request size like any other byte.
        return Parsed::Invalid("too many blank lines");
    }
    let b = &buf[skip..];
    if b.is_empty() {
        return Parsed::Incomplete;
    }
    if b[0] == b'$' {
        if b.len() < 4 {
            return Parsed::Incomplete;
        }
        let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if b.len() < 4 + len {
            return Parsed::Incomplete;
        }
        return Parsed::Interleaved {
            channel: b[1],
            consumed: skip + 4 + len,
        };
    }
    let Some(head_end) = find_head_end(b) else {
        if b.len() > max {
            return Parsed::Invalid("request headers too large");
        }
        // Reject non-text early instead of waiting for the size limit.
        if b.iter()
            .take(64)
            .any(|c| *c == 0 || (*c < 0x20 && !matches!(c, b'\r' | b'\n' | b'\t')))
        {
            return Parsed::Invalid("not an RTSP request");
        }
        return Parsed::Incomplete;
    };
    let (head, sep_len) = head_end;
    if head + sep_len > max {
        return Parsed::Invalid("request headers too large");
    }
    let Ok(text) = std::str::from_utf8(&b[..head]) else {
        return Parsed::Invalid("request is not UTF-8 text");
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let Some(request_line) = lines.next() else {
        return Parsed::Invalid("empty request");
    };
    let mut parts = request_line.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Invalid("malformed request line");
    };
    if version != "RTSP/1.0" {
        return Parsed::Invalid("unsupported protocol version");
    }
    if method.len() > 32 || !method.bytes().all(|c| c.is_ascii_uppercase() || c == b'_') {
        return Parsed::Invalid("malformed method");
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            // Obsolete line folding: append to the previous header.
            match headers.last_mut() {
                Some((_, v)) => {
                    v.push(' ');
                    v.push_str(line.trim());
                    continue;
                }
                None => return Parsed::Invalid("malformed header"),
            }
        }
        let Some((name, value)) = line.split_once(':') else {
            return Parsed::Invalid("malformed header");
        };
        if name.is_empty() || name.bytes().any(|c| c <= b' ' || c == 0x7f) {
            return Parsed::Invalid("malformed header name");
        }
        if headers.len() >= 64 {
            return Parsed::Invalid("too many headers");
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut content_length = None;
    for (k, v) in &headers {
        if k.eq_ignore_ascii_case("Content-Length") {
            // Digits only (`usize::from_str` would take a `+`); a value too
            // large for usize fails the parse.
            let Some(n) = v
                .bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| v.parse::<usize>().ok())
                .flatten()
            else {
                return Parsed::Invalid("bad Content-Length");
            };
            if content_length.is_some_and(|c| c != n) {
                return Parsed::Invalid("conflicting Content-Length");
            }
            content_length = Some(n);
        }
    }
    let body_len = content_length.unwrap_or(0);
    // Checked: a Content-Length near usize::MAX must not wrap.
    let Some(total) = (head + sep_len).checked_add(body_len) else {
        return Parsed::Invalid("request too large");
    };
    if total > max {
        return Parsed::Invalid("request too large");
    }
    if b.len() < total {
        return Parsed::Incomplete;
    }
    Parsed::Request {
        request: Request {
            method: method.to_string(),
            uri: uri.to_string(),
            headers,
            body: b[head + sep_len..total].to_vec(),
        },
        consumed: skip + total,
    }
}

/// Finds the end of the header block: (offset, separator length).
fn find_head_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some((i, 2));
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some((i, 3));
            }
        }
        i += 1;
    }
    None
}

/// Splits a request URI into its path segments (after the authority,
/// without the query), e.g. `rtsp://h:1/cam/main/trackID=0?x` ->
/// `["cam", "main", "trackID=0"]`.
pub fn path_segments(uri: &str) -> Vec<&str> {
    let rest = match uri.split_once("://") {
        Some((_, after)) => after.find('/').map_or("", |i| &after[i..]),
        None => uri,
    };
    let path = rest.split(['?', '#']).next().unwrap_or("");
    path.split('/').filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 8192;

    #[test]
    fn parses_request_with_body_and_pipelining() {
        let raw = b"SET_PARAMETER rtsp://h/a/b RTSP/1.0\r\nCSeq: 7\r\ncontent-length: 4\r\nSession: abc;timeout=60\r\n\r\nx: yOPTIONS * RTSP/1.0\r\nCSeq: 8\r\n\r\n";
        let Parsed::Request { request, consumed } = parse(raw, MAX) else {
            panic!()
        };
        assert_eq!(request.method, "SET_PARAMETER");
        assert_eq!(request.cseq(), Some("7"));
        assert_eq!(request.session_id(), Some("abc"));
        assert_eq!(request.body, b"x: y");
        let Parsed::Request { request, .. } = parse(&raw[consumed..], MAX) else {
            panic!()
        };
        assert_eq!(request.method, "OPTIONS");
    }

    #[test]
    fn incomplete_until_whole() {
        let raw = b"DESCRIBE rtsp://h/a/b RTSP/1.0\r\nCSeq: 2\r\nContent-Length: 3\r\n\r\nabc";
        for n in 0..raw.len() {
            assert_eq!(parse(&raw[..n], MAX), Parsed::Incomplete, "at {n}");
        }
        assert!(matches!(parse(raw, MAX), Parsed::Request { .. }));
    }

    #[test]
    fn interleaved_frames() {
        assert_eq!(
            parse(b"$\x01\x00\x02ab", MAX),
            Parsed::Interleaved {
                channel: 1,
                consumed: 6
            }
        );
        assert_eq!(parse(b"$\x01\x00\x02a", MAX), Parsed::Incomplete);
        assert_eq!(
            parse(b"\r\n$\x01\x00\x00", MAX),
            Parsed::Interleaved {
                channel: 1,
                consumed: 6
            }
        );
    }

    #[test]
    fn rejects_garbage_and_oversize() {
        assert!(matches!(
            parse(b"\x00\x01\x02garbage", MAX),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n\r\n", MAX),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"OPTIONS *\r\n\r\n", MAX),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"OPTIONS * RTSP/1.0\r\nbad header\r\n\r\n", MAX),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"OPTIONS * RTSP/1.0\r\nContent-Length: x\r\n\r\n", MAX),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(
                b"OPTIONS * RTSP/1.0\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                MAX
            ),
            Parsed::Invalid(_)
        ));
        let big = format!("OPTIONS * RTSP/1.0\r\nX: {}\r\n", "a".repeat(MAX));
        assert!(matches!(parse(big.as_bytes(), MAX), Parsed::Invalid(_)));
        let body = b"OPTIONS * RTSP/1.0\r\nContent-Length: 99999\r\n\r\n";
        assert!(matches!(parse(body, MAX), Parsed::Invalid(_)));
        // Lengths that overflow the sum, or usize itself, or carry a sign.
        for len in [
            "18446744073709551615",
            "18446744073709551614",
            "18446744073709551616",
            "99999999999999999999999999",
            "+5",
            "-1",
            "5 5",
            "0x10",
        ] {
            let raw = format!(
                "DESCRIBE rtsp://h/a/b RTSP/1.0\r\nCSeq: 1\r\nContent-Length: {len}\r\n\r\nabcde"
            );
            assert!(
                matches!(parse(raw.as_bytes(), MAX), Parsed::Invalid(_)),
                "{len}"
            );
            assert!(
                matches!(parse(raw.as_bytes(), usize::MAX), Parsed::Invalid(_)),
                "{len}"
            );
        }
    }

    #[test]
    fn blank_lines_count_against_the_size_limit() {
        let flood = vec![b'\n'; MAX + 1];
        assert!(matches!(parse(&flood, MAX), Parsed::Invalid(_)));
        let some = b"\r\n\r\nOPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n";
        assert!(matches!(parse(some, MAX), Parsed::Request { .. }));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut seed = 0x1234_5678u32;
        for len in 0..400 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let b = (seed >> 24) as u8;
                    // Bias toward RTSP-ish bytes so the parser gets deep.
                    match b % 8 {
                        0 => b'\r',
                        1 => b'\n',
                        2 => b':',
                        3 => b' ',
                        _ => b,
                    }
                })
                .collect();
            let _ = parse(&bytes, 256);
            let mut prefixed = b"OPTIONS * RTSP/1.0\r\n".to_vec();
            prefixed.extend(&bytes);
            let _ = parse(&prefixed, 256);
        }
    }

    #[test]
    fn path_segments_forms() {
        assert_eq!(
            path_segments("rtsp://h:1/cam/main/trackID=0?x=1"),
            ["cam", "main", "trackID=0"]
        );
        assert_eq!(path_segments("rtsp://h/cam/main/"), ["cam", "main"]);
        assert_eq!(path_segments("/cam/main"), ["cam", "main"]);
        assert!(path_segments("rtsp://h").is_empty());
        assert!(path_segments("*").len() == 1);
    }
}
