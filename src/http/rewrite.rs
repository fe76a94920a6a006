//! Hides the camera's address in what recorders receive: every URL naming
//! the camera (ONVIF XAddrs, stream and snapshot URIs, subscription
//! addresses, ISAPI/CGI URLs) is rewritten to the device's camgate address,
//! and any other occurrence of the camera's IP is replaced too. An RTSP URI
//! whose path matches no configured stream is refused, not passed on.
//!
//! [`Rewriter::answer`] is what the proxy uses: the body checked as text
//! (`audit::text`), rewritten, then checked to name no host but camgate
//! (`audit::urls`); any failure refuses the whole answer.

use std::net::IpAddr;

use regex::Regex;

use super::audit;
use crate::devices::CameraPath;

/// A configured stream as the camera names it, and where camgate serves it.
#[derive(Debug, Clone)]
pub struct StreamRoute {
    /// The camera's path and identifying query parameters.
    pub camera: CameraPath,
    /// The RTSP URL recorders use instead.
    pub camgate_url: String,
}

impl StreamRoute {
    /// From a configured camera path (`/cam/realmonitor?channel=1&subtype=0`).
    pub fn new(camera_path: &str, camgate_url: String) -> StreamRoute {
        StreamRoute {
            camera: CameraPath::new(camera_path),
            camgate_url,
        }
    }

    /// Whether a camera URI's path and query name this stream
    /// ([`CameraPath::matches`]).
    pub fn matches(&self, path: &str, query: &str) -> bool {
        self.camera.matches(path, query)
    }
}

/// An RTSP URI that names no configured stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStream(pub String);

/// Why a camera's answer is refused rather than passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An RTSP URI naming the camera at a path that is no configured stream.
    UnknownStream(String),
    /// A URL naming a host other than camgate (as found, bounded).
    ForeignUrl(String),
    /// Not text camgate can rewrite (what is wrong with it).
    Unrewritable(&'static str),
}

impl Refused {
    /// The `camgate_http_upstream_errors_total` reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::UnknownStream(_) => "unknown_stream",
            Refused::ForeignUrl(_) => "foreign_url",
            Refused::Unrewritable(_) => "unrewritable",
        }
    }

    /// What the recorder is told (nothing the camera wrote).
    pub fn message(&self) -> String {
        match self {
            Refused::UnknownStream(_) => "the camera answered with a stream camgate does not serve (add it to [device.streams])".into(),
            Refused::ForeignUrl(_) => "the camera's answer names a host other than camgate".into(),
            Refused::Unrewritable(why) => format!("the camera's answer cannot be rewritten: {why}"),
        }
    }
}

/// Rewrites one device's camera addresses.
#[derive(Debug, Clone)]
pub struct Rewriter {
    camera_ip: String,
    /// Base for HTTP URLs: `http://front` or `http://camgate:8080/<device>`.
    http_base: String,
    /// What replaces bare occurrences of the camera's IP.
    public_host: String,
    streams: Vec<StreamRoute>,
    url: Regex,
    /// The authorities (`host[:port]`) of every URL camgate writes: the
    /// only ones a rewritten answer may name.
    camgate: Vec<String>,
}

/// A URL's authority: after `://`, up to the first `/`, `?` or `#`.
fn authority(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

impl Rewriter {
    pub fn new(
        camera_ip: IpAddr,
        http_base: String,
        public_host: String,
        streams: Vec<StreamRoute>,
    ) -> Rewriter {
        let ip = match camera_ip {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        // scheme://host[:port] (slashes also JSON-escaped, `:\/\/`) then
        // the rest up to a delimiter of XML, JSON or text. The authority
        // stops at a backslash: `rtsp://evil\@camera/` names no camera.
        let url = Regex::new(r#"(?i)\b(https?|rtsps?):(?:\\?/){2}([^/\\\s"'<>]+)([^\s"'<>]*)"#)
            .expect("constant regex should compile");
        let http_base = http_base.trim_end_matches('/').to_string();
        let mut camgate: Vec<String> = std::iter::once(http_base.as_str())
            .chain(streams.iter().map(|s| s.camgate_url.as_str()))
            .filter_map(authority)
            .map(str::to_string)
            .collect();
        camgate.sort();
        camgate.dedup();
        Rewriter {
            camera_ip: ip,
            http_base,
            public_host,
            streams,
            url,
            camgate,
        }
    }

    /// A camera's answer as the recorder gets it: read as text, rewritten,
    /// and checked to name no host but camgate.
    pub fn answer(&self, body: &[u8]) -> Result<String, Refused> {
        let text = audit::text(body).map_err(|e| Refused::Unrewritable(e.0))?;
        let out = self.text(text).map_err(|u| Refused::UnknownStream(u.0))?;
        audit::urls(&out, &self.camgate).map_err(|f| Refused::ForeignUrl(f.0))?;
        Ok(out)
    }

    fn is_camera(&self, authority: &str) -> bool {
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = if host.starts_with('[') {
            host.split(']')
                .next()
                .map(|h| format!("{h}]"))
                .unwrap_or_default()
        } else {
            host.split(':').next().unwrap_or("").to_string()
        };
        host.eq_ignore_ascii_case(&self.camera_ip)
    }

    /// Rewrites a text body (XML, JSON, plain). `&amp;` in URIs is handled as
    /// XML escapes it.
    pub fn text(&self, body: &str) -> Result<String, UnknownStream> {
        let mut out = String::with_capacity(body.len() + 64);
        let mut last = 0;
        for c in self.url.captures_iter(body) {
            let (Some(all), Some(scheme), Some(auth)) = (c.get(0), c.get(1), c.get(2)) else {
                continue;
            };
            if !self.is_camera(auth.as_str()) {
                continue;
            }
            let rest = c.get(3).map_or("", |m| m.as_str());
            out.push_str(&body[last..all.start()]);
            if scheme.as_str().to_ascii_lowercase().starts_with("rtsp") {
                let unescaped = rest.replace("&amp;", "&").replace("\\/", "/");
                let (path, query) = unescaped.split_once('?').unwrap_or((&unescaped, ""));
                let route = self
                    .streams
                    .iter()
                    .find(|s| s.matches(path, query))
                    .ok_or_else(|| UnknownStream(path.to_string()))?;
                out.push_str(&route.camgate_url.replace('&', "&amp;"));
            } else {
                out.push_str(&self.http_base);
                if rest.is_empty() {
                    // The authority ends here, whatever follows: a recorder's
                    // parser must not read on into it (`"@evil`).
                    out.push('/');
                }
                out.push_str(rest);
            }
            last = all.end();
        }
        out.push_str(&body[last..]);
        // Whatever still names the camera (e.g. <IPv4Address>) names camgate.
        Ok(replace_ip(&out, &self.camera_ip, &self.public_host))
    }
}

/// Replaces `ip` where it stands as a whole address (not inside a longer
/// one: `10.0.0.1` is not replaced in `10.0.0.12` or `110.0.0.1`).
fn replace_ip(text: &str, ip: &str, with: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut from = 0;
    while let Some(i) = text[from..].find(ip).map(|i| i + from) {
        let end = i + ip.len();
        let before_ok =
            i == 0 || !(b[i - 1].is_ascii_hexdigit() || b[i - 1] == b'.' || b[i - 1] == b':');
        let after_ok = end >= b.len()
            || !(b[end].is_ascii_digit()
                || (b[end] == b'.' && b.get(end + 1).is_some_and(u8::is_ascii_digit)));
        if before_ok && after_ok {
            out.push_str(&text[last..i]);
            out.push_str(with);
            last = end;
        }
        from = end;
    }
    out.push_str(&text[last..]);
    out
}

/// Replaces one byte string in a stream of chunks (long-lived event
/// streams), holding back a possible partial match at each chunk's end.
#[derive(Debug, Clone)]
pub struct StreamReplace {
    from: Vec<u8>,
    to: Vec<u8>,
    held: Vec<u8>,
}

impl StreamReplace {
    pub fn new(from: &str, to: &str) -> StreamReplace {
        StreamReplace {
            from: from.as_bytes().to_vec(),
            to: to.as_bytes().to_vec(),
            held: Vec::new(),
        }
    }

    /// Feeds a chunk; returns what can be sent now.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.held.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.held.len());
        let mut i = 0;
        let n = self.from.len();
        while i < self.held.len() {
            if n > 0 && self.held[i..].starts_with(&self.from) {
                out.extend_from_slice(&self.to);
                i += n;
            } else if n > 0 && self.held.len() - i < n && self.from.starts_with(&self.held[i..]) {
                break; // a possible match continues in the next chunk
            } else {
                out.push(self.held[i]);
                i += 1;
            }
        }
        self.held.drain(..i);
        out
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rw() -> Rewriter {
        Rewriter::new(
            "10.20.0.11".parse().unwrap(),
            "http://10.30.0.1:8080/gate-cam-01".into(),
            "10.30.0.1".into(),
            vec![
                StreamRoute::new(
                    "/Streaming/Channels/101",
                    "rtsp://10.30.0.1:8554/gate-cam-01/main".into(),
                ),
                StreamRoute::new(
                    "/cam/realmonitor?channel=1&subtype=1",
                    "rtsp://10.30.0.1:8554/gate-cam-01/sub".into(),
                ),
            ],
        )
    }

    #[test]
    fn onvif_answers() {
        let body = r#"<tds:XAddr>http://10.20.0.11/onvif/device_service</tds:XAddr><tt:XAddr>http://10.20.0.11:80/onvif/Media</tt:XAddr>
<tt:Uri>rtsp://10.20.0.11:554/Streaming/Channels/101?transportmode=unicast&amp;profile=Profile_1</tt:Uri>
<tt:Uri>http://10.20.0.11/onvif-http/snapshot?Profile_1</tt:Uri><tt:IPv4Address>10.20.0.11</tt:IPv4Address>
<wsa:Address>http://10.20.0.11/onvif/Subscription?Idx=3</wsa:Address><x>http://192.0.2.9/elsewhere</x>"#;
        let out = rw().text(body).unwrap();
        assert!(!out.contains("10.20.0.11"), "{out}");
        assert!(
            out.contains(
                "<tds:XAddr>http://10.30.0.1:8080/gate-cam-01/onvif/device_service</tds:XAddr>"
            ),
            "{out}"
        );
        assert!(
            out.contains("<tt:Uri>rtsp://10.30.0.1:8554/gate-cam-01/main</tt:Uri>"),
            "{out}"
        );
        assert!(out.contains("http://10.30.0.1:8080/gate-cam-01/onvif-http/snapshot?Profile_1"));
        assert!(out.contains("<tt:IPv4Address>10.30.0.1</tt:IPv4Address>"));
        assert!(out.contains("http://10.30.0.1:8080/gate-cam-01/onvif/Subscription?Idx=3"));
        assert!(
            out.contains("http://192.0.2.9/elsewhere"),
            "other hosts untouched"
        );
    }

    #[test]
    fn dahua_uris_and_unknown_streams() {
        let ok = "rtsp://admin:pw@10.20.0.11:554/cam/realmonitor?channel=1&amp;subtype=1&amp;unicast=true&amp;proto=Onvif";
        assert_eq!(
            rw().text(ok).unwrap(),
            "rtsp://10.30.0.1:8554/gate-cam-01/sub"
        );
        let unknown = "<tt:Uri>rtsp://10.20.0.11/cam/realmonitor?channel=1&amp;subtype=0</tt:Uri>";
        assert!(
            rw().text(unknown).is_err(),
            "main stream of channel 1 is not configured: refused"
        );
        assert!(
            rw().text("rtsp://10.20.0.11/Streaming/Channels/102")
                .is_err()
        );
    }

    #[test]
    fn answers_name_only_camgate() {
        let r = rw();
        // Camera URLs, XML- or JSON-escaped, become camgate's.
        let ok = r
            .answer(br#"{"u":"rtsp:\/\/10.20.0.11:554\/Streaming\/Channels\/101","w":"http:\/\/10.20.0.11\/x","v":"http://10.20.0.11"}"#)
            .unwrap();
        assert_eq!(
            ok,
            r#"{"u":"rtsp://10.30.0.1:8554/gate-cam-01/main","w":"http://10.30.0.1:8080/gate-cam-01\/x","v":"http://10.30.0.1:8080/gate-cam-01/"}"#
        );
        // Whatever else a URL names is refused, however it is spelled
        // (as naming another host, or an unknown stream of the camera's).
        for body in [
            "<tt:Uri>http://192.0.2.9/elsewhere</tt:Uri>",
            "<tt:Uri>rtsp://evil\\@10.20.0.11/Streaming/Channels/101</tt:Uri>",
            "<tt:Uri>rtsp://10.20.0.11\\@evil/Streaming/Channels/101</tt:Uri>",
            "<tt:Uri>rtsp://10.20.0.11:554#@evil/Streaming/Channels/101</tt:Uri>",
            "<tt:Uri>rtsp://&#49;0.20.0.11/Streaming/Channels/101</tt:Uri>",
            "<tt:Uri>rtsp://[::ffff:10.20.0.11]/Streaming/Channels/101</tt:Uri>",
            "<a>ftp://10.20.0.11.evil/</a>",
        ] {
            assert!(r.answer(body.as_bytes()).is_err(), "{body}");
        }
        // The authority ends where camgate's does, whatever followed.
        assert_eq!(
            r.answer(b"<a>http://10.20.0.11\"@evil/x</a>").unwrap(),
            "<a>http://10.30.0.1:8080/gate-cam-01/\"@evil/x</a>"
        );
        assert!(matches!(
            r.answer(b"<tt:Uri>rtsp://10.20.0.11/Streaming/Channels/102</tt:Uri>"),
            Err(Refused::UnknownStream(_))
        ));
        assert!(matches!(
            r.answer(b"<\0a\0>\0"),
            Err(Refused::Unrewritable(_))
        ));
    }

    #[test]
    fn bare_ips_only_as_whole_addresses() {
        assert_eq!(replace_ip("a 10.0.0.1 b", "10.0.0.1", "X"), "a X b");
        assert_eq!(
            replace_ip("10.0.0.12 110.0.0.1 10.0.0.1.5", "10.0.0.1", "X"),
            "10.0.0.12 110.0.0.1 10.0.0.1.5"
        );
        assert_eq!(
            replace_ip("<a>10.0.0.1</a>10.0.0.1.", "10.0.0.1", "X"),
            "<a>X</a>X."
        );
    }

    #[test]
    fn stream_replace_across_chunks() {
        let mut r = StreamReplace::new("10.20.0.11", "10.30.0.1");
        let text =
            "<ipAddress>10.20.0.11</ipAddress>--MIME_boundary\r\n<ipAddress>10.20.0.11</ipAddress>";
        for split in 0..text.len() {
            let mut out = r.push(&text.as_bytes()[..split]);
            out.extend(r.push(&text.as_bytes()[split..]));
            out.extend(r.finish());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                text.replace("10.20.0.11", "10.30.0.1"),
                "split {split}"
            );
        }
        let mut r = StreamReplace::new("abc", "x");
        let mut out = r.push(b"ab");
        out.extend(r.finish());
        assert_eq!(out, b"ab");
    }
}
