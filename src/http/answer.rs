//! Which camera answers camgate rewrites, chosen by the request that asked
//! for them, never by the `Content-Type` the camera claims: a hostile
//! camera answering GetStreamUri as `application/octet-stream` or
//! `multipart/mixed` is rewritten and checked like one answering
//! `application/soap+xml`.
//!
//! Endpoints known to name URIs or the camera's address (every ONVIF
//! call; ISAPI streaming channels, playback search, network and device
//! facts, alarm hosts; Dahua RPC2 and the configuration, device-fact and
//! file-search CGIs) are [`Handling::Rewrite`]: buffered (up to `[http]
//! max_response_bytes`), rewritten whatever their content type, and
//! refused (502) when they cannot be read as text, carry a content coding
//! or a foreign charset, or name a host other than camgate. Media under
//! them (`.../picture`, `.../httpPreview`) and every other endpoint are
//! [`Handling::ByContentType`]: textual answers are rewritten and checked
//! the same way, event streams are forwarded with the camera's address
//! replaced, and binary answers pass untouched, closed when the camera
//! stalls.
//!
//! Pure: the proxy (`proxy::respond`) acts on the answer.

use hyper::header::{self, HeaderMap};

use super::normalize::Target;

/// What camgate does with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Buffered, rewritten whatever the content type, checked; refused
    /// when it cannot be.
    Rewrite,
    /// Decided by the content type: text rewritten and checked, event
    /// streams forwarded, binary passed with an idle timeout.
    ByContentType,
}

/// Paths (lower-cased, with everything under them) whose answers name
/// URIs or the camera's address.
const URI_PATHS: [&str; 13] = [
    // Hikvision ISAPI: stream channels (transport, URLs), playback search
    // and tracks (`playbackURI` is an rtsp URL), network and device facts,
    // where alarms are pushed.
    "/isapi/streaming/channels",
    "/isapi/streaming/status",
    "/isapi/contentmgmt/search",
    "/isapi/contentmgmt/record/tracks",
    "/isapi/system/network",
    "/isapi/system/deviceinfo",
    "/isapi/event/notification/httphosts",
    // Dahua: RPC2 (JSON, every call), configuration, device facts, file
    // and record search.
    "/rpc2",
    "/rpc2_login",
    "/cgi-bin/configmanager.cgi",
    "/cgi-bin/magicbox.cgi",
    "/cgi-bin/mediafilefind.cgi",
    "/cgi-bin/recordfinder.cgi",
];

/// Path segments that are media under a [`URI_PATHS`] entry (snapshots,
/// MJPEG previews, downloads).
const MEDIA_SEGMENTS: [&str; 4] = ["picture", "httppreview", "download", "snapshot"];

/// How the answer to a request for `target` is handled; `onvif` when the
/// request is an ONVIF call (a SOAP POST to an ONVIF service).
pub fn handling(target: &Target, onvif: bool) -> Handling {
    if onvif {
        return Handling::Rewrite;
    }
    let p = target.path_lower.as_str();
    let under = URI_PATHS.iter().find_map(|u| {
        p.strip_prefix(u)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    });
    match under {
        Some(rest) if !rest.split('/').any(|seg| MEDIA_SEGMENTS.contains(&seg)) => {
            Handling::Rewrite
        }
        _ => Handling::ByContentType,
    }
}

/// Checks the headers of an answer that is to be rewritten: one
/// `Content-Type` at most, with no charset but UTF-8's kin, and no
/// content coding (camgate cannot rewrite compressed bytes, and passing
/// them undeclared would hand the recorder garbage).
pub fn check_headers(h: &HeaderMap) -> Result<(), &'static str> {
    for v in h.get_all(header::CONTENT_ENCODING) {
        let coded = v
            .to_str()
            .map(|s| {
                s.split(',')
                    .any(|c| !c.trim().eq_ignore_ascii_case("identity"))
            })
            .unwrap_or(true);
        if coded {
            return Err("a content coding");
        }
    }
    let mut types = h.get_all(header::CONTENT_TYPE).iter();
    let ct = types.next();
    if types.next().is_some() {
        return Err("more than one Content-Type");
    }
    if let Some(ct) = ct {
        let ct = ct
            .to_str()
            .map_err(|_| "a Content-Type that is not ASCII")?;
        for param in ct.split(';').skip(1) {
            let (k, v) = param.split_once('=').unwrap_or((param, ""));
            if k.trim().eq_ignore_ascii_case("charset") && !super::audit::encoding_ok(v) {
                return Err("a charset other than UTF-8");
            }
        }
    }
    Ok(())
}

/// Whether an answer of this `Content-Type` (lower-cased) is a long-lived
/// event stream (ISAPI `alertStream`, Dahua `eventManager` attach).
pub fn is_event_stream(ct: &str) -> bool {
    ct.starts_with("multipart/") || ct.contains("event-stream")
}

/// Whether an answer of this `Content-Type` (lower-cased) is text camgate
/// rewrites on endpoints that are [`Handling::ByContentType`].
pub fn is_textual(ct: &str) -> bool {
    ct.contains("xml") || ct.contains("json") || ct.starts_with("text/") || ct.is_empty()
}

/// Whether the first bytes of an answer the camera called binary are
/// markup or JSON (after an optional UTF-8 byte order mark and
/// whitespace, or in UTF-16/32): such an answer is read and checked like
/// text. Images, video and archives start otherwise.
pub fn looks_textual(first: &[u8]) -> bool {
    // UTF-16 and UTF-32 text (a byte order mark, or markup with NULs
    // between its characters) is text too: read, then refused as not
    // UTF-8 rather than passed unchecked.
    let wide = [&b"\xFE\xFF"[..], b"\xFF\xFE", b"\x00\x00\xFE\xFF"]
        .iter()
        .any(|bom| first.starts_with(bom))
        || matches!(
            first,
            [0, b'<' | b'{' | b'[', ..] | [b'<' | b'{' | b'[', 0, ..]
        );
    if wide {
        return true;
    }
    let b = first.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(first);
    b.iter()
        .find(|c| !c.is_ascii_whitespace())
        .is_some_and(|c| matches!(c, b'<' | b'{' | b'['))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::normalize;

    fn h(path: &str, onvif: bool) -> Handling {
        handling(&normalize::target(path).unwrap(), onvif)
    }

    #[test]
    fn markup_called_binary_is_sniffed() {
        assert!(looks_textual(b"<?xml version=\"1.0\"?><a/>"));
        assert!(looks_textual(b"\xEF\xBB\xBF \r\n<Envelope/>"));
        assert!(looks_textual(b"{\"url\":\"rtsp://evil/\"}"));
        assert!(looks_textual(b"\t[1]"));
        assert!(looks_textual(b"\xFF\xFE<\x00?\x00"));
        assert!(looks_textual(b"\xFE\xFF\x00<"));
        assert!(looks_textual(b"\x00<\x00?"));
        assert!(looks_textual(b"<\x00?\x00x\x00"));
        assert!(looks_textual(b"\x00\x00\xFE\xFF\x00\x00\x00<"));
        assert!(!looks_textual(b"\xFF\xD8\xFF\xE0JFIF"));
        assert!(!looks_textual(b"\x00\x00\x00\x18ftypmp42"));
        assert!(!looks_textual(b"   "));
        assert!(!looks_textual(b""));
    }

    #[test]
    fn endpoints_not_content_types_decide() {
        for p in [
            "/ISAPI/Streaming/channels",
            "/ISAPI/Streaming/channels/101",
            "/isapi/streaming/Channels/101/status",
            "/ISAPI/ContentMgmt/search",
            "/ISAPI/System/Network/interfaces/1",
            "/ISAPI/System/deviceInfo",
            "/RPC2",
            "/cgi-bin/configManager.cgi?action=getConfig&name=Encode",
            "/cgi-bin/magicBox.cgi?action=getSystemInfo",
        ] {
            assert_eq!(h(p, false), Handling::Rewrite, "{p}");
        }
        assert_eq!(h("/onvif/Media", true), Handling::Rewrite);
        assert_eq!(h("/anything", true), Handling::Rewrite);
        for p in [
            "/ISAPI/Streaming/channels/101/picture",
            "/ISAPI/Streaming/channels/102/httpPreview",
            "/ISAPI/Streaming/channelsX",
            "/ISAPI/Event/notification/alertStream",
            "/cgi-bin/snapshot.cgi?channel=1",
            "/cgi-bin/eventManager.cgi?action=attach",
            "/onvif-http/snapshot",
            "/RPC2x",
            "/onvif/Media",
        ] {
            assert_eq!(h(p, false), Handling::ByContentType, "{p}");
        }
    }

    #[test]
    fn headers_of_rewritten_answers() {
        let mut m = HeaderMap::new();
        assert!(check_headers(&m).is_ok());
        m.insert(
            header::CONTENT_TYPE,
            "application/soap+xml; charset=\"UTF-8\"".parse().unwrap(),
        );
        assert!(check_headers(&m).is_ok());
        m.insert(header::CONTENT_ENCODING, "identity".parse().unwrap());
        assert!(check_headers(&m).is_ok());
        let mut gz = m.clone();
        gz.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert!(check_headers(&gz).is_err());
        let mut two = m.clone();
        two.append(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(check_headers(&two).is_err());
        for cs in ["utf-16", "UTF-7", "utf-32le", "shift_jis"] {
            let mut o = HeaderMap::new();
            o.insert(
                header::CONTENT_TYPE,
                format!("text/xml; charset={cs}").parse().unwrap(),
            );
            assert!(check_headers(&o).is_err(), "{cs}");
        }
    }
}
