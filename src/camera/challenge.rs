//! The camera's RTSP challenge, learnt before retina is given the password.
//!
//! Retina answers whatever scheme a camera challenges with, Basic included
//! (the password in clear), and has no option to refuse one. So before each
//! session camgate sends the camera one `DESCRIBE` of its own, without
//! credentials, reads the answer's head (at most [`MAX_HEAD`] bytes, within
//! the camera's connect timeout) and decides what retina gets:
//!
//! | the camera answers | retina gets |
//! |---|---|
//! | 401 with a Digest challenge retina would pick | the credentials |
//! | 401 with only Basic | nothing: the session fails as [`ErrorKind::Auth`], unless the device has `auth = "basic"` |
//! | 401 with nothing usable | nothing: fails as [`ErrorKind::Auth`] (with `auth = "basic"`: the credentials, retina reports) |
//! | 2xx (no authentication) | no credentials, so a later challenge cannot get them |
//! | anything else, or an unreadable answer | no credentials (retina reports the error), unless `auth = "basic"` |
//! | no connection, or silence | the session fails (`refused`, `timeout`) without starting retina |
//!
//! "Retina would pick" is computed the way retina does it: every
//! `WWW-Authenticate` value joined with `", "` and handed to `http-auth`,
//! which prefers a well-formed Digest challenge over Basic. Parsing is pure
//! ([`parse_head`]), bounded and never panics on what a camera sends.
//!
//! What this cannot see: a camera that answers this request with Digest and
//! retina's own requests (on its own connection) with Basic. Closing that
//! needs retina to restrict the schemes it answers (`docs/security.md`).
//!
//! Not here: the session itself (`camera`), HTTP toward cameras
//! (`http::upstream`, which refuses Basic on its own).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::{ErrorKind, SourceError};
use crate::config::{CameraAuth, CameraConfig, Secret};

/// Largest response head read from the camera.
pub const MAX_HEAD: usize = 16 * 1024;
/// Schemes kept for messages (a hostile camera may list thousands).
const MAX_SCHEMES: usize = 16;
/// Longest scheme name kept; longer tokens are not schemes anyone uses.
const MAX_SCHEME_LEN: usize = 32;

/// The scheme retina would answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Digest,
    Basic,
}

/// What a camera's answer to an unauthenticated `DESCRIBE` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The RTSP status code.
    pub status: u16,
    /// Scheme names in the `WWW-Authenticate` headers, lower case, in
    /// order, without repeats, at most `MAX_SCHEMES` (16); only token
    /// characters, so they are safe in messages.
    pub schemes: Vec<String>,
    /// What retina would answer, given these headers; `None` when nothing
    /// is usable (or a header holds bytes outside printable ASCII, which
    /// camgate does not try to read the way retina would).
    pub chosen: Option<Scheme>,
}

/// Why the camera's answer could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// No TCP connection (the I/O error's kind).
    Connect(std::io::ErrorKind),
    /// Connecting, or the answer, took longer than the timeout.
    Timeout,
    /// An answer camgate cannot read (closed early, oversized, not RTSP).
    Unreadable(&'static str),
}

/// Parses an RTSP response head (status line and headers, with or without
/// the blank line that ends it). Lines end in CRLF or LF; a line starting
/// with a space or tab continues the previous header (RFC 2326 section 4.2
/// allows folding; retina refuses it, which only fails that session).
pub fn parse_head(head: &[u8]) -> Result<Answer, &'static str> {
    let mut lines = head.split(|&b| b == b'\n').map(trim_cr);
    let status = lines
        .next()
        .and_then(status_code)
        .ok_or("not an RTSP/1.0 status line")?;
    // Values of WWW-Authenticate, continuation lines appended.
    let mut values: Vec<Vec<u8>> = Vec::new();
    let mut in_www = false;
    for line in lines {
        if line.is_empty() {
            break;
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            if in_www && let Some(v) = values.last_mut() {
                v.push(b' ');
                v.extend_from_slice(trim(line));
            }
            continue;
        }
        in_www = false;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = line.split_at(colon);
        if trim(name).eq_ignore_ascii_case(b"www-authenticate") {
            // `value` starts with the colon.
            values.push(trim(value.get(1..).unwrap_or_default()).to_vec());
            in_www = true;
        }
    }
    let mut schemes = Vec::new();
    for v in &values {
        for s in scheme_names(v) {
            if schemes.len() < MAX_SCHEMES && !schemes.contains(&s) {
                schemes.push(s);
            }
        }
    }
    Ok(Answer {
        status,
        schemes,
        chosen: chosen(&values),
    })
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn trim(b: &[u8]) -> &[u8] {
    let is_space = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !is_space(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !is_space(c))
        .map_or(start, |i| i + 1);
    b.get(start..end).unwrap_or_default()
}

/// `RTSP/1.0 401 Unauthorized` -> 401 (retina accepts only RTSP/1.0).
fn status_code(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"RTSP/1.0 ")?;
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || !matches!(rest.get(3), None | Some(b' ')) {
        return None;
    }
    digits
        .iter()
        .try_fold(0u16, |n, d| Some(n * 10 + u16::from(*d - b'0')))
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Scheme names in one `WWW-Authenticate` value: the first token of each
/// comma-separated element (commas inside quoted strings do not count)
/// that is not itself a `name=value` parameter.
fn scheme_names(value: &[u8]) -> Vec<String> {
    let mut elements: Vec<&[u8]> = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, &b) in value.iter().enumerate() {
        if quoted {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => quoted = false,
                _ => {}
            }
        } else if b == b'"' {
            quoted = true;
        } else if b == b',' {
            elements.push(value.get(start..i).unwrap_or_default());
            start = i + 1;
        }
    }
    elements.push(value.get(start..).unwrap_or_default());
    elements
        .into_iter()
        .filter_map(|e| {
            let e = trim(e);
            let end = e
                .iter()
                .position(|&b| b == b' ' || b == b'\t')
                .unwrap_or(e.len());
            let token = e.get(..end)?;
            let is_scheme = !token.is_empty()
                && token.len() <= MAX_SCHEME_LEN
                && token.iter().all(|&b| is_tchar(b))
                // `realm="x"` has '=' after its name: a parameter.
                && e.get(end..).is_some_and(|rest| !trim(rest).starts_with(b"="));
            is_scheme.then(|| String::from_utf8_lossy(token).to_ascii_lowercase())
        })
        .collect()
}

/// The scheme retina would answer: it joins every value with `", "` and
/// asks `http-auth`, which takes the first well-formed Digest challenge,
/// else the first Basic one.
fn chosen(values: &[Vec<u8>]) -> Option<Scheme> {
    if values.is_empty() {
        return None;
    }
    let mut joined = String::new();
    for v in values {
        // Outside printable ASCII, retina's reading and ours could differ:
        // nothing counts as offered.
        if !v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            return None;
        }
        if !joined.is_empty() {
            joined.push_str(", ");
        }
        joined.push_str(&String::from_utf8_lossy(v));
    }
    match http_auth::PasswordClient::try_from(joined.as_str()) {
        Ok(http_auth::PasswordClient::Digest(_)) => Some(Scheme::Digest),
        Ok(http_auth::PasswordClient::Basic(_)) => Some(Scheme::Basic),
        _ => None,
    }
}

/// Sends `DESCRIBE <url>` without credentials to `addr` and reads the
/// answer's head. `timeout` bounds the connect, and then the request and
/// the answer together.
pub async fn ask(addr: SocketAddr, url: &url::Url, timeout: Duration) -> Result<Answer, AskError> {
    let mut s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| AskError::Timeout)?
        .map_err(|e| AskError::Connect(e.kind()))?;
    let req = format!(
        "DESCRIBE {url} RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: camgate/{}\r\nAccept: application/sdp\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let deadline = tokio::time::Instant::now() + timeout;
    tokio::time::timeout_at(deadline, s.write_all(req.as_bytes()))
        .await
        .map_err(|_| AskError::Timeout)?
        .map_err(|_| AskError::Unreadable("the camera closed the connection"))?;
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    loop {
        // The head ends at the first blank line; search only the new bytes
        // (and the three before them).
        let from = buf.len().saturating_sub(chunk.len() + 3);
        if let Some(end) = buf
            .get(from..)
            .and_then(|b| b.windows(4).position(|w| w == b"\r\n\r\n"))
        {
            let head = buf.get(..from + end).unwrap_or_default();
            return parse_head(head).map_err(AskError::Unreadable);
        }
        if buf.len() >= MAX_HEAD {
            return Err(AskError::Unreadable("response head over 16 KiB"));
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
            .await
            .map_err(|_| AskError::Timeout)?
            .map_err(|_| AskError::Unreadable("the camera closed the connection"))?;
        if n == 0 {
            return Err(AskError::Unreadable(
                "the camera closed the connection before answering",
            ));
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}

/// Whether retina may be given the credentials, from the camera's answer
/// (the table in the module doc). An error ends the session before retina
/// starts.
pub fn decide(answer: &Result<Answer, AskError>, auth: CameraAuth) -> Result<bool, SourceError> {
    let basic_ok = auth.allows_basic();
    match answer {
        Err(AskError::Connect(kind)) => Err(SourceError::new(
            ErrorKind::Refused,
            format!("authentication check: cannot connect ({kind})"),
        )),
        Err(AskError::Timeout) => Err(SourceError::new(
            ErrorKind::Timeout,
            "authentication check: no answer to DESCRIBE in time",
        )),
        Err(AskError::Unreadable(_)) => Ok(basic_ok),
        Ok(a) if (200..300).contains(&a.status) => Ok(false),
        Ok(a) if a.status == 401 => match a.chosen {
            Some(Scheme::Digest) => Ok(true),
            Some(Scheme::Basic) if basic_ok => Ok(true),
            Some(Scheme::Basic) => Err(SourceError::new(
                ErrorKind::Auth,
                "camera offers only Basic authentication; set auth = \"basic\" to allow cleartext",
            )),
            None if basic_ok => Ok(true),
            None => Err(SourceError::new(
                ErrorKind::Auth,
                format!(
                    "camera asks for authentication but offers no usable Digest challenge (schemes: {})",
                    if a.schemes.is_empty() {
                        "none".to_string()
                    } else {
                        a.schemes.join(", ")
                    }
                ),
            )),
        },
        Ok(_) => Ok(basic_ok),
    }
}

/// The camera's credentials, if retina may have them for a session on
/// `url`: asks the camera first (see the module doc). `None` without
/// credentials configured (nothing to protect, nothing asked).
pub async fn vetted_creds<'a>(
    cam: &'a CameraConfig,
    url: &url::Url,
    timeout: Duration,
) -> Result<Option<(&'a String, &'a Secret)>, SourceError> {
    let (Some(user), Some(pw)) = (&cam.username, &cam.password) else {
        return Ok(None);
    };
    // Only rtsp://: CameraConfig::url builds nothing else, and retina has
    // no RTSPS (retina #65). Should that change, this check must speak TLS
    // too rather than be skipped.
    if url.scheme() != "rtsp" {
        return Err(SourceError::new(
            ErrorKind::Protocol,
            format!("{url}: only rtsp:// camera URLs are supported"),
        ));
    }
    let answer = ask(SocketAddr::new(cam.host, cam.rtsp_port), url, timeout).await;
    let give = decide(&answer, cam.auth)
        .map_err(|e| SourceError::new(e.kind, format!("{url}: {}", e.message)))?;
    debug!(%url, ?answer, credentials = give, "camera authentication checked");
    Ok(give.then_some((user, pw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Answer {
        parse_head(s.as_bytes()).unwrap()
    }

    const DIGEST: &str =
        "Digest realm=\"IP Camera(C6231)\", nonce=\"a9c2e0a1bd7ad1f6\", stale=\"FALSE\"";

    #[test]
    fn one_digest_or_one_basic() {
        let a = parse(&format!(
            "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: {DIGEST}\r\n\r\n"
        ));
        assert_eq!(a.status, 401);
        assert_eq!(a.schemes, ["digest"]);
        assert_eq!(a.chosen, Some(Scheme::Digest));
        let a = parse("RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n");
        assert_eq!(a.schemes, ["basic"]);
        assert_eq!(a.chosen, Some(Scheme::Basic));
    }

    #[test]
    fn several_headers_and_lists_prefer_digest_in_any_order() {
        // Hikvision sends both, Basic first.
        let two = parse(&format!(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nWWW-Authenticate: {DIGEST}\r\n"
        ));
        assert_eq!(two.schemes, ["basic", "digest"]);
        assert_eq!(two.chosen, Some(Scheme::Digest));
        // One header listing both, Digest after Basic.
        let one = parse(&format!(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"a, Digest b\", {DIGEST}\r\n"
        ));
        assert_eq!(one.schemes, ["basic", "digest"]);
        assert_eq!(one.chosen, Some(Scheme::Digest));
        // A comma inside a quoted realm is not a new challenge.
        let quoted = parse(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"a, Digest nonce=\\\"x\\\"\"\r\n",
        );
        assert_eq!(quoted.schemes, ["basic"]);
        assert_eq!(quoted.chosen, Some(Scheme::Basic));
    }

    #[test]
    fn mixed_case_names_and_schemes() {
        let a = parse("RTSP/1.0 401 Unauthorized\r\nwww-AUTHENTICATE:bAsIc realm=\"x\"\r\n");
        assert_eq!(a.schemes, ["basic"]);
        assert_eq!(a.chosen, Some(Scheme::Basic));
        let a = parse(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: dIgEsT realm=\"x\", nonce=\"n\"\r\n",
        );
        assert_eq!(a.chosen, Some(Scheme::Digest));
    }

    /// A Digest challenge http-auth cannot use does not hide a Basic one:
    /// retina would fall back to Basic, and so does the verdict.
    #[test]
    fn an_unusable_digest_beside_basic_is_basic() {
        let a = parse(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\"\r\nWWW-Authenticate: Basic realm=\"x\"\r\n",
        );
        assert_eq!(a.schemes, ["digest", "basic"]);
        assert_eq!(a.chosen, Some(Scheme::Basic));
        let a = parse(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\", nonce=\"n\", algorithm=ROT13\r\nWWW-Authenticate: Basic realm=\"x\"\r\n",
        );
        assert_eq!(a.chosen, Some(Scheme::Basic));
    }

    #[test]
    fn no_header_other_schemes_and_other_statuses() {
        let a = parse("RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\n\r\n");
        assert!(a.schemes.is_empty());
        assert_eq!(a.chosen, None);
        let a = parse("RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Negotiate abc==\r\n");
        assert_eq!(a.schemes, ["negotiate"]);
        assert_eq!(a.chosen, None);
        let a = parse("RTSP/1.0 200 OK\r\nContent-Length: 0\r\n\r\nv=0\r\n");
        assert_eq!((a.status, a.chosen), (200, None));
        assert_eq!(parse("RTSP/1.0 404").status, 404);
    }

    #[test]
    fn continuation_lines_extend_the_header() {
        let a = parse(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\",\r\n Digest realm=\"y\",\r\n\tnonce=\"n\"\r\nCSeq: 1\r\n",
        );
        assert_eq!(a.schemes, ["basic", "digest"]);
        assert_eq!(a.chosen, Some(Scheme::Digest));
        // A continuation of another header adds nothing.
        let a = parse(
            "RTSP/1.0 401 Unauthorized\r\nX-Other: a\r\n Digest realm=\"y\", nonce=\"n\"\r\nWWW-Authenticate: Basic realm=\"x\"\r\n",
        );
        assert_eq!(a.chosen, Some(Scheme::Basic));
        // A leading continuation line (no header before it) is ignored.
        let a = parse("RTSP/1.0 401 Unauthorized\r\n Digest nonce=\"n\"\r\n");
        assert_eq!(a.chosen, None);
    }

    #[test]
    fn garbage_status_lines_are_refused() {
        for head in [
            "",
            "HTTP/1.1 401 Unauthorized\r\n",
            "RTSP/1.0 4O1 Unauthorized\r\n",
            "RTSP/1.0 40",
            "RTSP/1.0 4011 x",
            "RTSP/2.0 401 Unauthorized",
            "RTSP/1.0  401",
            "\u{feff}RTSP/1.0 401",
            "RTSP/1.0 ４０１ full-width",
        ] {
            assert!(parse_head(head.as_bytes()).is_err(), "{head:?}");
        }
    }

    #[test]
    fn nul_bytes_and_non_ascii_make_nothing_usable() {
        let mut head =
            b"RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"x\0\", nonce=\"n\"\r\n"
                .to_vec();
        let a = parse_head(&head).unwrap();
        assert_eq!(a.schemes, ["digest"]);
        assert_eq!(a.chosen, None, "a NUL in the value: not read as Digest");
        head = "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: Digest realm=\"caméra\", nonce=\"n\"\r\n"
            .as_bytes()
            .to_vec();
        assert_eq!(parse_head(&head).unwrap().chosen, None);
        // Invalid UTF-8 and NULs everywhere: no panic.
        let wild = b"RTSP/1.0 401 \xff\xfe\0\r\n\0WWW-Authenticate\0: \xc3\r\nWWW-Authenticate: \xe2\x82 Basic\r\n";
        let a = parse_head(wild).unwrap();
        assert_eq!(a.chosen, None);
        assert!(a.schemes.iter().all(|s| s.bytes().all(is_tchar)));
    }

    #[test]
    fn huge_headers_are_bounded() {
        let many = ", Basic realm=\"x\"".repeat(5000);
        let names: String = (0..100).map(|i| format!("S{i} a=b, ")).collect();
        let long = "A".repeat(100_000);
        let head = format!(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: {names}{long} x{many}\r\nWWW-Authenticate: {DIGEST}\r\n"
        );
        let a = parse(&head);
        assert_eq!(a.schemes.len(), MAX_SCHEMES);
        assert!(a.schemes.iter().all(|s| s.len() <= MAX_SCHEME_LEN));
        // http-auth gives up inside the first value, as it would in retina
        // (which joins the values the same way): nothing usable.
        assert_eq!(a.chosen, None);
        // Well-formed but long: the Digest at the end still counts.
        let head = format!(
            "RTSP/1.0 401 Unauthorized\r\nWWW-Authenticate: {}{DIGEST}\r\n",
            "Basic realm=\"x\", ".repeat(500)
        );
        let a = parse(&head);
        assert_eq!(a.schemes, ["basic", "digest"]);
        assert_eq!(a.chosen, Some(Scheme::Digest));
    }

    /// Arbitrary bytes never panic the parser (a cheap, deterministic
    /// stand-in for a fuzz target).
    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let alphabet: &[u8] =
            b"RTSP/1.0 401\r\n:,\"\\= \tWWW-Authenticate Basic Digest realm nonce\0\xff\xc3";
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..3000 {
            let len = (x % 300) as usize;
            let mut v = b"RTSP/1.0 401 x\r\nWWW-Authenticate: ".to_vec();
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                v.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            let _ = parse_head(&v);
            let _ = parse_head(&v[16..]);
        }
    }

    fn answer(status: u16, chosen: Option<Scheme>) -> Result<Answer, AskError> {
        Ok(Answer {
            status,
            schemes: vec!["basic".into()],
            chosen,
        })
    }

    #[test]
    fn decisions() {
        use CameraAuth::{Basic as B, Digest as D};
        let give = |a: Result<Answer, AskError>, auth| decide(&a, auth).ok();
        assert_eq!(give(answer(401, Some(Scheme::Digest)), D), Some(true));
        assert_eq!(give(answer(401, Some(Scheme::Basic)), B), Some(true));
        let e = decide(&answer(401, Some(Scheme::Basic)), D).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert_eq!(
            e.message,
            "camera offers only Basic authentication; set auth = \"basic\" to allow cleartext"
        );
        let e = decide(&answer(401, None), D).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.message.contains("(schemes: basic)"), "{}", e.message);
        assert_eq!(give(answer(401, None), B), Some(true));
        // No authentication asked: retina gets no credentials at all.
        assert_eq!(give(answer(200, None), D), Some(false));
        assert_eq!(give(answer(200, None), B), Some(false));
        // Anything else: retina reports it, with credentials only if Basic
        // could not matter.
        for other in [
            Err(AskError::Unreadable("x")),
            answer(404, None),
            answer(503, None),
        ] {
            assert_eq!(give(other.clone(), D), Some(false));
            assert_eq!(give(other, B), Some(true));
        }
        let refused = decide(
            &Err(AskError::Connect(std::io::ErrorKind::ConnectionRefused)),
            D,
        );
        assert_eq!(refused.unwrap_err().kind, ErrorKind::Refused);
        let late = decide(&Err(AskError::Timeout), B);
        assert_eq!(late.unwrap_err().kind, ErrorKind::Timeout);
    }

    async fn one_answer(reply: &'static [u8]) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut chunk = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&chunk[..n]);
            }
            // The client may stop reading an oversized answer.
            let _ = s.write_all(reply).await;
            got
        });
        (addr, task)
    }

    fn camera(addr: SocketAddr, auth: CameraAuth) -> CameraConfig {
        CameraConfig {
            host: addr.ip(),
            rtsp_port: addr.port(),
            username: Some("admin".into()),
            password: Some(Secret::new("cam-secret")),
            auth,
            transport: retina::client::Transport::Tcp(Default::default()),
            quirks: Default::default(),
        }
    }

    #[tokio::test]
    async fn asks_without_credentials_and_reads_the_challenge() {
        let (addr, task) =
            one_answer(b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"cam\"\r\n\r\n").await;
        let cam = camera(addr, CameraAuth::Digest);
        let url = cam.url("/Streaming/Channels/101").unwrap();
        let e = vetted_creds(&cam, &url, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        let sent = String::from_utf8(task.await.unwrap()).unwrap();
        assert!(
            sent.starts_with(&format!("DESCRIBE {url} RTSP/1.0\r\n")),
            "{sent}"
        );
        assert!(
            sent.contains("\r\nCSeq: 1\r\n") && sent.contains("\r\nAccept: application/sdp\r\n")
        );
        assert!(sent.contains("\r\nUser-Agent: camgate/"), "{sent}");
        assert!(
            !sent.to_ascii_lowercase().contains("authorization"),
            "{sent}"
        );
        assert!(!sent.contains("cam-secret"));

        let (addr, _t) = one_answer(
            b"RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Digest realm=\"cam\", nonce=\"abc\"\r\n\r\n",
        )
        .await;
        let cam = camera(addr, CameraAuth::Digest);
        let url = cam.url("/a").unwrap();
        let (user, pw) = vetted_creds(&cam, &url, Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((user.as_str(), pw.expose()), ("admin", "cam-secret"));

        let (addr, _t) =
            one_answer(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 4\r\n\r\nv=0\n").await;
        let cam = camera(addr, CameraAuth::Basic);
        let url = cam.url("/a").unwrap();
        assert!(
            vetted_creds(&cam, &url, Duration::from_secs(5))
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn silence_oversize_and_refusal() {
        // Accepts, never answers.
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let url = url::Url::parse("rtsp://127.0.0.1/a").unwrap();
        assert_eq!(
            ask(addr, &url, Duration::from_millis(200)).await,
            Err(AskError::Timeout)
        );
        // A head that never ends.
        static ENDLESS: std::sync::LazyLock<Vec<u8>> = std::sync::LazyLock::new(|| {
            let mut v = b"RTSP/1.0 401 Unauthorized\r\n".to_vec();
            v.extend(std::iter::repeat_n(b'a', 40_000));
            v
        });
        let (addr, _t) = one_answer(&ENDLESS).await;
        assert_eq!(
            ask(addr, &url, Duration::from_secs(5)).await,
            Err(AskError::Unreadable("response head over 16 KiB"))
        );
        // Closed before the end of the head.
        let (addr, _t) = one_answer(b"RTSP/1.0 401 Unauth").await;
        assert!(matches!(
            ask(addr, &url, Duration::from_secs(5)).await,
            Err(AskError::Unreadable(_))
        ));
        // Nobody listening.
        let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = free.local_addr().unwrap();
        drop(free);
        assert!(matches!(
            ask(gone, &url, Duration::from_secs(5)).await,
            Err(AskError::Connect(_))
        ));
        // Without configured credentials nothing is asked.
        let mut cam = camera(gone, CameraAuth::Digest);
        cam.password = None;
        assert!(
            vetted_creds(&cam, &url, Duration::from_secs(5))
                .await
                .unwrap()
                .is_none()
        );
    }
}
