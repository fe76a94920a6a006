//! Evidence from `WWW-Authenticate` realms (Hikvision and Dahua realms
//! name the vendor or the model), RTSP and HTTP.

use super::oui::lookup_oui;
use super::*;

/// Longest `WWW-Authenticate` prefix scanned for realms.
pub(super) const MAX_AUTH: usize = 4096;

/// Realms looked at per `WWW-Authenticate` value.
pub(super) const MAX_REALMS: usize = 8;

/// Longest realm kept.
pub(super) const MAX_REALM: usize = 256;

/// Skips a quoted string starting at `b[i] == '"'`; returns its unescaped
/// content (at most [`MAX_REALM`] bytes kept) and the index after it.
pub(super) fn quoted(b: &[u8], i: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut j = i + 1;
    while let Some(&c) = b.get(j) {
        match c {
            b'"' => return (out, j + 1),
            b'\\' => {
                if let Some(&n) = b.get(j + 1)
                    && out.len() < MAX_REALM
                {
                    out.push(n);
                }
                j += 2;
            }
            _ => {
                if out.len() < MAX_REALM {
                    out.push(c);
                }
                j += 1;
            }
        }
    }
    (out, j)
}

/// The `realm` parameters of a `WWW-Authenticate` value (one or more
/// challenges); `realm` inside another parameter's quoted value is skipped.
pub(super) fn realms(header_value: &str) -> Vec<String> {
    let b = prefix(header_value, MAX_AUTH).as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() && out.len() < MAX_REALMS {
        if b.get(i) == Some(&b'"') {
            i = quoted(b, i).1;
            continue;
        }
        let at_param = i == 0 || matches!(b.get(i - 1), Some(b' ' | b'\t' | b','));
        let is_realm = b
            .get(i..i + 5)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"realm"));
        if !(at_param && is_realm) {
            i += 1;
            continue;
        }
        let mut j = i + 5;
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        if b.get(j) != Some(&b'=') {
            i = j;
            continue;
        }
        j += 1;
        while matches!(b.get(j), Some(b' ' | b'\t')) {
            j += 1;
        }
        let (value, end) = if b.get(j) == Some(&b'"') {
            quoted(b, j)
        } else {
            let start = j;
            while b.get(j).is_some_and(|c| !matches!(c, b',' | b' ' | b'\t')) {
                j += 1;
            }
            let v = b.get(start..j).unwrap_or_default();
            (v[..v.len().min(MAX_REALM)].to_vec(), j)
        };
        out.push(String::from_utf8_lossy(&value).into_owned());
        i = end.max(i + 1);
    }
    out
}

/// The vendor a realm points to, and the detail to show.
pub(super) fn realm_vendor(realm: &str, rtsp: bool) -> Option<(&'static str, String)> {
    let r = realm.trim();
    let shown = format!("realm=\"{r}\"");
    if r.eq_ignore_ascii_case("hikvision") {
        return Some((HIKVISION, shown));
    }
    if !rtsp && r.eq_ignore_ascii_case("IPCamera") {
        return Some((HIKVISION, shown));
    }
    if strip_prefix_ci(r, "Login to ").is_some() {
        return Some((DAHUA, shown));
    }
    if rtsp && r.len() == 12 && r.bytes().all(|b| b.is_ascii_hexdigit()) {
        let mac = parse_mac(r)?;
        let entry = lookup_oui(mac)?;
        return Some((entry.vendor, format!("{shown} (OUI {})", entry.prefix_text)));
    }
    None
}

/// A `WWW-Authenticate` header value (RTSP when `rtsp`, else HTTP). Hikvision:
/// `realm="hikvision"` (older, both) and `realm="IPCamera"` (HTTP, App-webs);
/// its RTSP realm is the MAC as 12 hex digits (`realm="4419b66d2485"`), which
/// counts for the vendor whose OUI it starts with (see [`oui`]). Dahua:
/// `realm="Login to <serial>"`. Generic realms (`IP Camera`, `device`, ...)
/// say nothing and give `None`. The first realm that matches wins.
pub fn www_authenticate(header_value: &str, rtsp: bool) -> Option<Evidence> {
    let signal = if rtsp {
        Signal::RtspRealm
    } else {
        Signal::HttpRealm
    };
    realms(header_value).iter().find_map(|r| {
        let (vendor, detail) = realm_vendor(r, rtsp)?;
        Some(evidence(signal, vendor, &detail))
    })
}
