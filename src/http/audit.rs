//! The last look at a rewritten camera answer before a recorder gets it.
//!
//! Two checks, both pure:
//!
//! - [`text`]: the answer is text camgate reads the way a recorder will:
//!   strict UTF-8, no control characters (a body of `r\0t\0s\0p\0...` is
//!   valid UTF-8 that an XML parser autodetects as UTF-16, XML 1.0
//!   Appendix F), and no XML declaration naming another encoding.
//! - [`urls`]: every absolute URL in it names camgate. The rewriter turns
//!   URLs naming the camera into camgate's; whatever is left naming any
//!   other host (`rtsp://10.9.9.9/`, `http://evil.example/`) is refused,
//!   not stripped: a camera that names another host is not relayed at all.
//!   The body is looked at the ways a recorder may decode it: as sent, with
//!   XML character references decoded (`rtsp://&#49;0.9.9.9/`), with JSON
//!   escapes decoded (`rtsp:\/\/10.9.9.9`, `\u0072tsp://`), and both. A
//!   URL's authority runs to the first `/`, `\`, `?` or `#` (quotes, spaces,
//!   newlines and `<` do not end it: lenient URL parsers read
//!   `http://camgate:8080"@evil/` as naming `evil`), and must equal one of
//!   camgate's authorities exactly: userinfo, percent-encoding, another
//!   port, an IPv6 spelling of camgate's address all fail it. Schemes
//!   WHATWG parses leniently (`http:evil`, `http:\\evil`) and
//!   network-path references (`//evil/x`, resolved against camgate's own
//!   URL) count as URLs too.
//!
//! Identifiers that look like URLs but name no place to connect to pass:
//! `xmlns` attribute values, and `http`/`https`/`onvif` URLs on the
//! standards bodies' hosts SOAP and ONVIF answers name in text
//! (`http://www.w3.org/2005/08/addressing/anonymous`, GetServices
//! namespaces, `onvif://www.onvif.org/name/...` scopes).
//!
//! Not here: rewriting (`rewrite`), choosing which answers are rewritten
//! (`answer`).

use std::borrow::Cow;

/// Why an answer's text cannot be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unreadable(pub &'static str);

/// A URL naming a host other than camgate: the scheme and the authority as
/// found (bounded, escaped for logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignUrl(pub String);

/// Encodings whose ASCII bytes mean ASCII characters, so a UTF-8 body
/// reads the same where URLs are concerned.
const ENCODINGS: [&str; 7] = [
    "utf-8",
    "utf8",
    "us-ascii",
    "ascii",
    "iso-8859-1",
    "latin1",
    "iso8859-1",
];

/// Whether a declared charset or XML encoding reads a UTF-8 body's URLs
/// as camgate does.
pub fn encoding_ok(name: &str) -> bool {
    let n = name.trim().trim_matches(['"', '\'']).to_ascii_lowercase();
    ENCODINGS.contains(&n.as_str())
}

/// The answer as text, if it is text camgate and a recorder read alike.
pub fn text(body: &[u8]) -> Result<&str, Unreadable> {
    let s = std::str::from_utf8(body).map_err(|_| Unreadable("not UTF-8 text"))?;
    if s.chars()
        .any(|c| c.is_ascii_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(Unreadable("a control character in text"));
    }
    let head = s.trim_start_matches('\u{feff}').trim_start();
    if let Some(decl) = head.strip_prefix("<?xml") {
        let decl = decl.split("?>").next().unwrap_or(decl);
        if let Some(i) = decl.find("encoding") {
            let v = decl[i + "encoding".len()..].trim_start();
            let v = v.strip_prefix('=').unwrap_or("").trim_start();
            let q = v.chars().next().unwrap_or(' ');
            let name = v
                .get(1..)
                .filter(|_| q == '"' || q == '\'')
                .and_then(|rest| rest.split(q).next())
                .ok_or(Unreadable("a malformed XML declaration"))?;
            if !encoding_ok(name) {
                return Err(Unreadable("an XML encoding other than UTF-8"));
            }
        }
    }
    Ok(s)
}

/// Schemes WHATWG URL parsers read with any number of slashes or
/// backslashes, none included: `http:evil` names `evil`.
const LENIENT: [&str; 5] = ["http", "https", "ws", "wss", "ftp"];
/// Schemes whose URLs on [`IDENTIFIER_HOSTS`] are identifiers.
const IDENTIFIER_SCHEMES: [&str; 3] = ["http", "https", "onvif"];
/// Hosts of the namespaces, actions, dialects and scopes SOAP, WS-* and
/// ONVIF answers name in text (not in `xmlns`, which is skipped).
const IDENTIFIER_HOSTS: [&str; 4] = [
    "www.w3.org",
    "www.onvif.org",
    "docs.oasis-open.org",
    "schemas.xmlsoap.org",
];

/// Checks that every URL in `text` names one of `camgate` (authorities,
/// `host[:port]` as camgate writes them), looking at it decoded each way a
/// recorder may decode it.
pub fn urls(text: &str, camgate: &[String]) -> Result<(), ForeignUrl> {
    let masked = mask_namespaces(text);
    check_view(&masked, camgate)?;
    if masked.contains("&#") {
        check_view(&xml_unescape(&masked), camgate)?;
    }
    if masked.contains('\\') {
        let json = json_unescape(&masked);
        check_view(&json, camgate)?;
        if json.contains("&#") {
            check_view(&xml_unescape(&json), camgate)?;
        }
    }
    Ok(())
}

fn is_scheme_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')
}

fn is_slash(b: u8) -> bool {
    b == b'/' || b == b'\\'
}

/// Where a network-path reference (`//host/...`) may start: a token's
/// beginning in XML, JSON or `key=value` text.
fn starts_token(b: u8) -> bool {
    b.is_ascii_whitespace() || b"<>\"'=(,;[{|".contains(&b)
}

fn check_view(view: &str, camgate: &[String]) -> Result<(), ForeignUrl> {
    let b = view.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b':' => {
                let mut s = i;
                while s > 0 && is_scheme_char(b[s - 1]) {
                    s -= 1;
                }
                // A scheme starts with a letter: `1http:` is read from `h`.
                while s < i && !b[s].is_ascii_alphabetic() {
                    s += 1;
                }
                let mut j = i + 1;
                while j < b.len() && is_slash(b[j]) {
                    j += 1;
                }
                if s < i {
                    let scheme = view[s..i].to_ascii_lowercase();
                    if j - i > 2 || LENIENT.contains(&scheme.as_str()) {
                        check_authority(view, Some(&scheme), j, camgate)?;
                    }
                }
                i = j.max(i + 1);
            }
            c if is_slash(c)
                && b.get(i + 1).copied().is_some_and(is_slash)
                && (i == 0 || starts_token(b[i - 1])) =>
            {
                let mut j = i;
                while j < b.len() && is_slash(b[j]) {
                    j += 1;
                }
                check_authority(view, None, j, camgate)?;
                i = j;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

/// Checks the authority starting at `from`: it runs to the first `/`, `\`,
/// `?`, `#` or the end, whatever else it holds.
fn check_authority(
    view: &str,
    scheme: Option<&str>,
    from: usize,
    camgate: &[String],
) -> Result<(), ForeignUrl> {
    let rest = &view[from..];
    let end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
    let auth = &rest[..end];
    if auth.is_empty() || camgate.iter().any(|a| a.eq_ignore_ascii_case(auth)) {
        return Ok(());
    }
    if scheme.is_some_and(|s| IDENTIFIER_SCHEMES.contains(&s))
        && IDENTIFIER_HOSTS
            .iter()
            .any(|h| h.eq_ignore_ascii_case(auth))
    {
        return Ok(());
    }
    let shown: String = auth.chars().take(64).collect();
    Err(ForeignUrl(format!(
        "{}//{}",
        scheme.map(|s| format!("{s}:")).unwrap_or_default(),
        shown.escape_debug()
    )))
}

/// The text with the values of `xmlns` and `xmlns:prefix` attributes
/// blanked (namespace names are identifiers, never fetched). Only inside
/// a tag; anything the scan cannot follow stays as it is, to be checked.
fn mask_namespaces(text: &str) -> Cow<'_, str> {
    if !text.contains("xmlns") {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let mut in_tag = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'<' => in_tag = true,
            b'>' => in_tag = false,
            q @ (b'"' | b'\'') if in_tag => {
                // Another attribute's value: skipped whole (it may hold `>`).
                match b[i + 1..].iter().position(|c| *c == q) {
                    Some(k) => i += k + 1,
                    None => break,
                }
            }
            c if in_tag && c.is_ascii_whitespace() && b[i + 1..].starts_with(b"xmlns") => {
                let mut j = i + 1 + "xmlns".len();
                if b.get(j) == Some(&b':') {
                    j += 1;
                    while j < b.len() && (is_scheme_char(b[j]) || b[j] == b'_') {
                        j += 1;
                    }
                }
                while j < b.len() && b[j].is_ascii_whitespace() {
                    j += 1;
                }
                if b.get(j) == Some(&b'=') {
                    j += 1;
                    while j < b.len() && b[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    if let Some(&q) = b.get(j).filter(|q| **q == b'"' || **q == b'\'')
                        && let Some(k) = b[j + 1..].iter().position(|c| *c == q)
                    {
                        out[j + 1..j + 1 + k].fill(b' ');
                        i = j + 1 + k;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    // Only ASCII bytes were written over whole values: still UTF-8.
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(_) => Cow::Borrowed(text),
    }
}

/// Decodes XML character references (also without their `;`, as HTML
/// parsers do) and the predefined entities, once.
fn xml_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let (decoded, used) = entity(rest);
        match decoded {
            Some(c) => out.push(c),
            None => out.push('&'),
        }
        rest = &rest[used.max(1)..];
    }
    out.push_str(rest);
    out
}

/// One entity at the start of `s` (which starts with `&`): the character
/// and the bytes it used, or `None` and 1.
fn entity(s: &str) -> (Option<char>, usize) {
    for (name, c) in [
        ("&lt;", '<'),
        ("&gt;", '>'),
        ("&amp;", '&'),
        ("&quot;", '"'),
        ("&apos;", '\''),
    ] {
        if s.starts_with(name) {
            return (Some(c), name.len());
        }
    }
    let Some(num) = s.strip_prefix("&#") else {
        return (None, 1);
    };
    let (radix, digits, skip) = match num.strip_prefix(['x', 'X']) {
        Some(hex) => (16, hex, 3),
        None => (10, num, 2),
    };
    let n = digits
        .bytes()
        .take_while(|b| (*b as char).is_digit(radix))
        .count();
    let significant = digits[..n].trim_start_matches('0');
    if n == 0 || significant.len() > 8 {
        return (None, 1);
    }
    let v = if significant.is_empty() {
        0
    } else {
        match u32::from_str_radix(significant, radix) {
            Ok(v) => v,
            Err(_) => return (None, 1),
        }
    };
    let semi = usize::from(digits[n..].starts_with(';'));
    match char::from_u32(v) {
        Some(c) => (Some(c), skip + n + semi),
        None => (None, 1),
    }
}

/// Decodes JSON string escapes (`\/`, `\uXXXX` with surrogate pairs, ...)
/// wherever they are, once.
fn json_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some(e @ ('/' | '\\' | '"')) => {
                chars.next();
                out.push(e);
            }
            Some(e @ ('b' | 'f' | 'n' | 'r' | 't')) => {
                chars.next();
                out.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'b' => '\u{8}',
                    _ => '\u{c}',
                });
            }
            Some('u') => {
                let hex: String = chars.clone().skip(1).take(4).collect();
                match u32::from_str_radix(&hex, 16) {
                    Ok(hi) if hex.len() == 4 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                        for _ in 0..5 {
                            chars.next();
                        }
                        let mut code = hi;
                        if (0xD800..0xDC00).contains(&hi) {
                            let ahead: String = chars.clone().take(6).collect();
                            if let Some(lo) = ahead
                                .strip_prefix("\\u")
                                .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
                                .and_then(|h| u32::from_str_radix(h, 16).ok())
                                .filter(|lo| (0xDC00..0xE000).contains(lo))
                            {
                                for _ in 0..6 {
                                    chars.next();
                                }
                                code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            }
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    _ => out.push('\\'),
                }
            }
            _ => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camgate() -> Vec<String> {
        vec!["10.30.0.1:8080".into(), "10.30.0.1:8554".into()]
    }

    fn ok(text: &str) -> bool {
        urls(text, &camgate()).is_ok()
    }

    #[test]
    fn camgate_and_identifiers_pass() {
        for t in [
            "<tt:Uri>rtsp://10.30.0.1:8554/cam/main</tt:Uri>",
            "<a>http://10.30.0.1:8080/cam/onvif/device_service</a>",
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:hik="http://www.hikvision.com/ver20/XMLSchema"><wsa:To>http://www.w3.org/2005/08/addressing/anonymous</wsa:To>"#,
            "<DeviceInfo version=\"2.0\" xmlns=\"http://www.hikvision.com/ver20/XMLSchema\">",
            "<tds:Namespace>http://www.onvif.org/ver10/media/wsdl</tds:Namespace>",
            "<tt:Scopes>onvif://www.onvif.org/name/IPCAM</tt:Scopes>",
            "<wsnt:Topic Dialect=\"http://docs.oasis-open.org/wsn/t-1/TopicExpression/Concrete\">",
            "time 12:30:00 mac aa:bb:cc:dd:ee:ff ipv6 fe80::1 <tt:Uri/> PT60S",
            r#"{"url":"http:\/\/10.30.0.1:8080\/cam\/x","a":"b"}"#,
            "table.Encode[0].Name=main\r\ntable.Path=/mnt/sd\r\n",
            "file:///",
            "<a>rtsp://10.30.0.1:8554/cam/main?a=1&amp;b=2</a>",
        ] {
            assert!(ok(t), "{t}: {:?}", urls(t, &camgate()));
        }
    }

    #[test]
    fn other_hosts_fail_however_spelled() {
        for t in [
            "<tt:Uri>rtsp://10.9.9.9/Streaming/Channels/101</tt:Uri>",
            "<tt:Uri>http://evil.example/x</tt:Uri>",
            "<tt:Uri>rtsp://&#49;0.9.9.9/</tt:Uri>",
            "<tt:Uri>rtsp:&#47;&#47;10.9.9.9/</tt:Uri>",
            "<tt:Uri>&#x72;tsp://10.9.9.9/</tt:Uri>",
            "<tt:Uri>rtsp://10.30.0.1:8554&#64;10.9.9.9/</tt:Uri>",
            "<tt:Uri>rtsp://%31%30.9.9.9/</tt:Uri>",
            "<tt:Uri>rtsp://camgate@10.9.9.9/</tt:Uri>",
            "<tt:Uri>rtsp://10.30.0.1:8554@10.9.9.9/</tt:Uri>",
            "<tt:Uri>rtsp://[::ffff:10.9.9.9]:554/</tt:Uri>",
            "<tt:Uri>rtsp://[fe80::1%25eth0]/</tt:Uri>",
            "<tt:Uri>http://10.30.0.1:8080\"@evil/</tt:Uri>",
            "<tt:Uri>http://10.30.0.1:8080 @evil/</tt:Uri>",
            "<tt:Uri>http://10.30.0.1:8080\n@evil/</tt:Uri>",
            "<tt:Uri>http://10.30.0.1:8080<@evil/</tt:Uri>",
            "<tt:Uri>http:evil.example/x</tt:Uri>",
            "<tt:Uri>http:\\\\evil.example/x</tt:Uri>",
            "<tt:Uri>HTTPS:///evil.example/x</tt:Uri>",
            "<tt:Uri>//evil.example/x</tt:Uri>",
            "<tt:Uri>\\\\evil.example\\x</tt:Uri>",
            r#"{"url":"rtsp:\/\/10.9.9.9\/x"}"#,
            r#"{"url":"\u0072tsp://10.9.9.9/x"}"#,
            r#"{"url":"rtsp:\u002f\u002f10.9.9.9/x"}"#,
            r#"{"url":"\/\/evil\/x"}"#,
            "table.Url=rtsp://10.9.9.9/x\r\n",
            "<tt:Uri>rtsps://10.9.9.9/</tt:Uri>",
            "<tt:Uri>ws://10.9.9.9/</tt:Uri>",
            "<tt:Uri>rtsp://10.30.0.1:9999/</tt:Uri>",
            "<tt:Uri>rtsp://10.30.0.1/</tt:Uri>",
            "<tt:Uri>rtsp://www.onvif.org/x</tt:Uri>",
            "<tt:Uri>http://www.onvif.org@evil/x</tt:Uri>",
            "<!-- http://evil.example/ -->",
            "<![CDATA[rtsp://10.9.9.9/]]>",
            "<a b=\">\" xmlns:x=\"http://ns\">http://evil/</a>",
            "<a x=\"http://evil.example/\"/>",
            // An xmlns look-alike in text is not an attribute.
            "<a> xmlns=\"http://evil.example/\"</a>",
        ] {
            assert!(!ok(t), "{t} passed");
        }
    }

    #[test]
    fn text_is_utf8_without_controls_or_other_encodings() {
        assert!(text(b"<a>ok</a>\r\n\t").is_ok());
        assert!(text("\u{feff}<?xml version=\"1.0\" encoding='UTF-8'?><a/>".as_bytes()).is_ok());
        assert!(text(b"<?xml version=\"1.0\"?><a/>").is_ok());
        for bad in [
            &b"<\0?\0x\0m\0l\0"[..],
            b"\xff\xfe<\0a\0>\0",
            b"<a>\x1b[31m</a>",
            b"<?xml version=\"1.0\" encoding=\"UTF-16\"?><a/>",
            b"<?xml version=\"1.0\" encoding=\"UTF-7\"?><a>+AHI-tsp</a>",
            b"<?xml version=\"1.0\" encoding=UTF-8?><a/>",
            b"<a>\xc0\xaf</a>",
        ] {
            assert!(text(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn never_panics_on_token_soup() {
        use rand::{Rng, SeedableRng};
        const TOKENS: [&str; 32] = [
            "rtsp",
            "http",
            "onvif",
            ":",
            "/",
            "\\",
            "//",
            "&#",
            "&#x",
            "4",
            "9",
            ";",
            "@",
            "é",
            "中",
            "<",
            ">",
            "\"",
            "'",
            "xmlns",
            "xmlns:a",
            "=",
            " ",
            "\\u00",
            "\\ud83d",
            "\\udc00",
            "&amp;",
            "?",
            "#",
            "[::1]",
            "10.30.0.1:8080",
            "\n",
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        for _ in 0..20_000 {
            let n = rng.gen_range(0..24);
            let s: String = (0..n)
                .map(|_| TOKENS[rng.gen_range(0..TOKENS.len())])
                .collect();
            let _ = urls(&s, &camgate());
            let _ = text(s.as_bytes());
            let _ = xml_unescape(&s);
            let _ = json_unescape(&s);
            let _ = mask_namespaces(&s);
        }
    }

    #[test]
    fn decoders() {
        assert_eq!(
            xml_unescape("&#49;0&#x2e;9&#X2E;9.9 &lt;&amp;amp; &#49 &#; &#x110000; &bogus;"),
            "10.9.9.9 <&amp; 1 &#; &#x110000; &bogus;"
        );
        assert_eq!(
            json_unescape(r#"a\/b\\c\"d\u0041\ud83d\ude00\u12 \q"#),
            "a/b\\c\"dA\u{1f600}\\u12 \\q"
        );
    }
}
