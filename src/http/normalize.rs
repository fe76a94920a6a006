//! Canonical form of a request target, so a policy rule cannot be dodged by
//! encoding: percent-decoding, dot segments, repeated slashes, `;`
//! parameters and case. Targets that stay ambiguous are refused, not
//! guessed at: the camera must see exactly what the policy judged.

/// A request target in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Decoded path: `/`-separated, no empty, `.` or `..` segments, no `;`
    /// parameters, no trailing slash (except `/` itself).
    pub path: String,
    /// Lower-cased `path`, for matching (camera web servers differ on case;
    /// matching case-insensitively is safe both ways).
    pub path_lower: String,
    /// Decoded query pairs in order; keys unique (case-insensitively).
    pub query: Vec<(String, String)>,
}

/// Why a target was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotOriginForm,
    BadPercentEncoding,
    /// `%2F`, `%5C`, NUL or a backslash: a path that parsers split differently.
    AmbiguousSeparator,
    /// A `..` segment (the Dahua credential-file traversal and its kin).
    DotDot,
    DuplicateQueryKey,
    TooLong,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotOriginForm => "not an origin-form request target",
            Refusal::BadPercentEncoding => "bad percent-encoding",
            Refusal::AmbiguousSeparator => "encoded separator, NUL or backslash in the path",
            Refusal::DotDot => "'..' in the path",
            Refusal::DuplicateQueryKey => "duplicate query parameter",
            Refusal::TooLong => "request target too long",
        }
    }
}

/// Longest request target accepted.
pub const MAX_TARGET: usize = 4096;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decodes `s` (and `+` as space when `plus`). Invalid UTF-8 is
/// replaced, which cannot widen a match.
fn decode(s: &str, plus: bool) -> Result<String, Refusal> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).and_then(|x| hex(*x)),
                    b.get(i + 2).and_then(|x| hex(*x)),
                ) else {
                    return Err(Refusal::BadPercentEncoding);
                };
                out.push(h << 4 | l);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Parses and canonicalizes a request target (`/path?query`, or the
/// absolute form some clients send to proxies).
pub fn target(raw: &str) -> Result<Target, Refusal> {
    if raw.len() > MAX_TARGET {
        return Err(Refusal::TooLong);
    }
    let origin = match raw.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        _ => raw,
    };
    if !origin.starts_with('/') {
        return Err(Refusal::NotOriginForm);
    }
    let origin = origin.split('#').next().unwrap_or("");
    let (raw_path, raw_query) = origin.split_once('?').unwrap_or((origin, ""));
    let lower = raw_path.to_ascii_lowercase();
    if lower.contains("%2f")
        || lower.contains("%5c")
        || lower.contains("%00")
        || raw_path.contains('\\')
    {
        return Err(Refusal::AmbiguousSeparator);
    }
    let mut segments: Vec<String> = Vec::new();
    for seg in raw_path.split('/') {
        // `;` parameters (matrix params, Tomcat-style) are dropped.
        let seg = seg.split(';').next().unwrap_or("");
        let seg = decode(seg, false)?;
        if seg.contains('\0') || seg.contains('/') || seg.contains('\\') {
            return Err(Refusal::AmbiguousSeparator);
        }
        match seg.as_str() {
            "" | "." => {}
            ".." => return Err(Refusal::DotDot),
            _ => segments.push(seg),
        }
    }
    let path = format!("/{}", segments.join("/"));
    let mut query: Vec<(String, String)> = Vec::new();
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(k, true)?, decode(v, true)?);
        if k.contains('\0') || v.contains('\0') {
            return Err(Refusal::AmbiguousSeparator);
        }
        if query.iter().any(|(q, _)| q.eq_ignore_ascii_case(&k)) {
            return Err(Refusal::DuplicateQueryKey);
        }
        query.push((k, v));
    }
    Ok(Target {
        path_lower: path.to_lowercase(),
        path,
        query,
    })
}

/// Characters left unencoded in a path segment (RFC 3986 unreserved and
/// sub-delims that camera servers accept, plus `:` and `@`).
fn path_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$'()*,:@".contains(&c)
}

/// Characters left unencoded in query keys and values (`[]` for Dahua's
/// `names[0]`).
fn query_safe(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$'()*,:@/[]".contains(&c)
}

fn encode(s: &str, safe: fn(u8) -> bool, out: &mut String) {
    for &b in s.as_bytes() {
        if safe(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

impl Target {
    /// The canonical target re-encoded: what camgate forwards, so the
    /// camera parses exactly what the policy judged.
    pub fn encode(&self) -> String {
        let mut s = String::with_capacity(self.path.len() + 16);
        for seg in self.path.split('/').filter(|x| !x.is_empty()) {
            s.push('/');
            encode(seg, path_safe, &mut s);
        }
        if s.is_empty() {
            s.push('/');
        }
        for (i, (k, v)) in self.query.iter().enumerate() {
            s.push(if i == 0 { '?' } else { '&' });
            encode(k, query_safe, &mut s);
            s.push('=');
            encode(v, query_safe, &mut s);
        }
        s
    }

    /// The value of query key `k` (case-insensitive key).
    pub fn query_value(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(q, _)| q.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        let t = target("//ISAPI//System/./deviceInfo;jsessionid=1/?format=json").unwrap();
        assert_eq!(t.path, "/ISAPI/System/deviceInfo");
        assert_eq!(t.path_lower, "/isapi/system/deviceinfo");
        assert_eq!(t.query, vec![("format".into(), "json".into())]);
        let t = target("/%49SAPI/Streaming/channels/101/picture").unwrap();
        assert_eq!(t.path, "/ISAPI/Streaming/channels/101/picture");
        let t = target("http://10.0.0.1:80/cgi-bin/snapshot.cgi?channel=1").unwrap();
        assert_eq!(t.path, "/cgi-bin/snapshot.cgi");
        assert_eq!(t.query_value("CHANNEL"), Some("1"));
        assert_eq!(target("/").unwrap().path, "/");
        let t =
            target("/cgi-bin/configManager.cgi?action=getConfig&name=Encode+Main&names%5B0%5D=x")
                .unwrap();
        assert_eq!(t.query_value("name"), Some("Encode Main"));
        assert_eq!(t.query_value("names[0]"), Some("x"));
    }

    #[test]
    fn refusals() {
        assert_eq!(
            target("/current_config/../../mnt/mtd/Config/Sha1Account1"),
            Err(Refusal::DotDot)
        );
        assert_eq!(target("/a/%2e%2e/b"), Err(Refusal::DotDot));
        assert_eq!(target("/a%2fb"), Err(Refusal::AmbiguousSeparator));
        assert_eq!(target("/a%5Cb"), Err(Refusal::AmbiguousSeparator));
        assert_eq!(target("/a\\b"), Err(Refusal::AmbiguousSeparator));
        assert_eq!(target("/a%00b"), Err(Refusal::AmbiguousSeparator));
        assert_eq!(target("/a%zz"), Err(Refusal::BadPercentEncoding));
        assert_eq!(target("/a?x=%"), Err(Refusal::BadPercentEncoding));
        assert_eq!(target("/a?auth=1&AUTH=2"), Err(Refusal::DuplicateQueryKey));
        assert_eq!(target("*"), Err(Refusal::NotOriginForm));
        assert_eq!(target("ISAPI/x"), Err(Refusal::NotOriginForm));
        assert_eq!(
            target(&format!("/{}", "a".repeat(MAX_TARGET))),
            Err(Refusal::TooLong)
        );
    }

    #[test]
    fn encode_roundtrips() {
        for raw in [
            "/ISAPI/System/deviceInfo",
            "/cgi-bin/eventManager.cgi?action=attach&codes=[All]&heartbeat=5",
            "/onvif-http/snapshot?Profile_1=",
            "/a%20b/c?x=a%26b&y=%C3%A9",
        ] {
            let t = target(raw).unwrap();
            assert_eq!(target(&t.encode()).unwrap(), t, "{raw} -> {}", t.encode());
        }
        assert_eq!(target("/a/b?x=1&y=2").unwrap().encode(), "/a/b?x=1&y=2");
    }

    #[test]
    fn never_panics() {
        let alphabet = [
            "%", "2", "e", "f", "/", ".", ";", "?", "&", "=", "+", "a", "\\", "%2", "é",
        ];
        let mut seed = 7u32;
        for _ in 0..5000 {
            let mut s = String::from("/");
            for _ in 0..(seed % 12) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                s.push_str(alphabet[(seed >> 16) as usize % alphabet.len()]);
            }
            if let Ok(t) = target(&s) {
                // Canonical targets are stable.
                assert_eq!(target(&t.encode()).as_ref(), Ok(&t), "{s}");
            }
        }
    }
}
