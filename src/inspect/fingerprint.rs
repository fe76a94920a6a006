//! Vendor fingerprinting from what a camera says about itself: RTSP and HTTP
//! `Server:` headers, `WWW-Authenticate` realms, SDP markers, the ONVIF
//! `GetDeviceInformation` manufacturer and the MAC address's OUI, each turned
//! into weighted [`Evidence`] for `hikvision` or `dahua` (OEM brands map to
//! the real vendor), and a weighted vote over it ([`decide`]).
//!
//! Pure functions; the network probes (OPTIONS/DESCRIBE, HTTP, ONVIF, reading
//! `/proc/net/arp`) live elsewhere. Every input is hostile camera data: no
//! function panics, inputs are bounded before any work, and everything shown
//! to an operator is cleaned to printable ASCII with a length cap.
//!
//! Signatures come from `vendor-callbacks.md` §3 (OEM table, fingerprint
//! table, MAC OUIs); the OUI list ships as `oui.txt` next to this file.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use quick_xml::Reader;
use quick_xml::events::Event;

/// The vendor vocabulary of the configuration.
pub const HIKVISION: &str = "hikvision";
/// The vendor vocabulary of the configuration.
pub const DAHUA: &str = "dahua";

/// Longest `Server:` value considered (real ones are a few dozen bytes).
const MAX_SERVER: usize = 256;
/// Longest `WWW-Authenticate` prefix scanned for realms.
const MAX_AUTH: usize = 4096;
/// Realms looked at per `WWW-Authenticate` value.
const MAX_REALMS: usize = 8;
/// Longest realm kept.
const MAX_REALM: usize = 256;
/// Longest ONVIF manufacturer considered.
const MAX_MANUFACTURER: usize = 128;
/// SDP bytes looked at.
const MAX_SDP: usize = 64 * 1024;
/// SDP line bytes looked at (longer lines are cut; markers are prefixes).
const MAX_SDP_LINE: usize = 1024;
/// `/proc/net/arp` lines looked at.
const MAX_ARP_LINES: usize = 65536;
/// Largest GetDeviceInformationResponse parsed.
const MAX_SOAP: usize = 256 * 1024;
/// XML nesting accepted in a response.
const MAX_XML_DEPTH: usize = 64;
/// Raw text kept per ONVIF field before cleaning.
const MAX_FIELD_RAW: usize = 4096;
/// Characters of a cleaned ONVIF field.
const MAX_FIELD: usize = 64;
/// Characters of an [`Evidence::detail`].
const MAX_DETAIL: usize = 96;
/// Characters of a metric label value.
const MAX_LABEL: usize = 64;

/// Which signal an evidence item came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// RTSP `Server:` header (OPTIONS/DESCRIBE reply).
    RtspServer,
    /// RTSP `WWW-Authenticate` realm.
    RtspRealm,
    /// Markers in the camera's SDP.
    Sdp,
    /// HTTP `Server:` header.
    HttpServer,
    /// HTTP `WWW-Authenticate` realm.
    HttpRealm,
    /// ONVIF `GetDeviceInformation` `Manufacturer`.
    OnvifManufacturer,
    /// The MAC address's OUI (IEEE registrant).
    Oui,
}

impl Signal {
    /// The snake_case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::RtspServer => "rtsp_server",
            Signal::RtspRealm => "rtsp_realm",
            Signal::Sdp => "sdp",
            Signal::HttpServer => "http_server",
            Signal::HttpRealm => "http_realm",
            Signal::OnvifManufacturer => "onvif_manufacturer",
            Signal::Oui => "oui",
        }
    }

    /// The weight of this signal in [`decide`].
    ///
    /// * `OnvifManufacturer` 5: the firmware's own statement of who made it;
    ///   OEM builds name the OEM brand, which maps to the real vendor.
    /// * `Oui` 4: the network interface's IEEE registrant, burnt in by the
    ///   ODM; OEM devices usually carry the ODM's OUI, so this survives
    ///   rebranding. Below the manufacturer because MACs can be changed and a
    ///   board can be sourced from one vendor while running another's firmware.
    /// * `Sdp`, `RtspServer`, `HttpServer` 3: software strings of the vendor's
    ///   stack, but clones and OEM firmware copy them verbatim (the reference:
    ///   "Clones copy the Hik SDP verbatim, so SDP alone is not proof").
    /// * `HttpRealm`, `RtspRealm` 2: short strings, easily shared or copied.
    ///
    /// The weights are chosen so that the two identity signals (manufacturer
    /// and OUI) together outvote any two copied software strings.
    pub fn weight(self) -> u32 {
        match self {
            Signal::OnvifManufacturer => 5,
            Signal::Oui => 4,
            Signal::Sdp | Signal::RtspServer | Signal::HttpServer => 3,
            Signal::HttpRealm | Signal::RtspRealm => 2,
        }
    }
}

impl std::fmt::Display for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One piece of evidence for a vendor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Evidence {
    pub signal: Signal,
    /// "hikvision" or "dahua" (the configured-vendor vocabulary; OEM brands map to the real vendor)
    pub vendor: &'static str,
    /// What was seen, cleaned for display: printable ASCII only, at most 96 chars (e.g. `Server: App-webs/`, `a=packetization-supported:DH`, `OUI 44:19:B6 Hangzhou Hikvision Digital Technology`, `Manufacturer HIKVISION`).
    pub detail: String,
}

fn evidence(signal: Signal, vendor: &'static str, detail: &str) -> Evidence {
    Evidence {
        signal,
        vendor,
        detail: clean(detail, MAX_DETAIL),
    }
}

/// Printable ASCII only: whitespace and control characters become a single
/// space (runs collapsed, ends trimmed), other non-ASCII characters `?`; at
/// most `max` characters. Work stops once `max` characters are out.
fn clean(s: &str, max: usize) -> String {
    let mut out = String::new();
    let mut pending_space = false;
    for c in s.chars() {
        if out.len() >= max {
            break;
        }
        if c.is_whitespace() || c.is_control() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
            if out.len() >= max {
                break;
            }
        }
        out.push(if c.is_ascii_graphic() { c } else { '?' });
    }
    // Only ASCII is pushed, so bytes == characters; a trailing space is
    // impossible (spaces are only pushed before a character) except at the
    // cap.
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    s.get(..i).unwrap_or("")
}

/// `s` without `p` at its start, ASCII case-insensitively.
fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    let head = s.as_bytes().get(..p.len())?;
    if head.eq_ignore_ascii_case(p.as_bytes()) {
        s.get(p.len()..)
    } else {
        None
    }
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// A version suffix: short, `[0-9A-Za-z._-]` only (may be empty).
fn is_version(s: &str) -> bool {
    s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A vendor named in free text (`Server:` values): `hikvision` or `dahua` as
/// a substring; `None` when neither or both.
fn vendor_named_in(s: &str) -> Option<&'static str> {
    match (contains_ci(s, "hikvision"), contains_ci(s, "dahua")) {
        (true, false) => Some(HIKVISION),
        (false, true) => Some(DAHUA),
        _ => None,
    }
}

/// RTSP `Server:` header value. Dahua answers OPTIONS with
/// `Rtsp Server/3.0` (`^Rtsp Server/[0-9.]+$`, exact case: the string is
/// generic enough that only the exact form counts) and older firmware with
/// `Dahua Rtsp Server`; Hikvision usually sends none, but a value naming
/// `Hikvision` (or `Dahua`) counts for that vendor. Values over 256 bytes are
/// not a camera's server string and give `None`.
pub fn rtsp_server(header_value: &str) -> Option<Evidence> {
    let v = header_value.trim();
    if v.is_empty() || v.len() > MAX_SERVER {
        return None;
    }
    let dahua_stack = v.strip_prefix("Rtsp Server/").is_some_and(|ver| {
        !ver.is_empty() && ver.len() <= 16 && ver.bytes().all(|b| b.is_ascii_digit() || b == b'.')
    });
    let vendor = if dahua_stack {
        DAHUA
    } else {
        vendor_named_in(v)?
    };
    Some(evidence(
        Signal::RtspServer,
        vendor,
        &format!("Server: {v}"),
    ))
}

/// HTTP `Server:` header value. Hikvision (and the DVRs it OEMs) sends
/// `App-webs/` (current), `webserver` (newest; exact lowercase only, the word
/// is generic), `DNVRS-Webs`, `DVRDVS-Webs`, `Hikvision-Webs`, `DVS-Webs`; a
/// short version suffix (`App-webs/1.0`, `DNVRS-Webs/2`) is accepted. Dahua
/// sends nothing distinctive, so only a value naming `Dahua` counts for it (as
/// one naming `Hikvision` does for Hikvision). Values over 256 bytes give
/// `None`.
pub fn http_server(header_value: &str) -> Option<Evidence> {
    let v = header_value.trim();
    if v.is_empty() || v.len() > MAX_SERVER {
        return None;
    }
    let hik_stack = strip_prefix_ci(v, "App-webs/").is_some_and(is_version)
        || v == "webserver"
        || ["Hikvision", "DNVRS", "DVRDVS", "DVS"].iter().any(|p| {
            strip_prefix_ci(v, p)
                .and_then(|r| strip_prefix_ci(r, "-Webs"))
                .is_some_and(|r| r.is_empty() || r.strip_prefix('/').is_some_and(is_version))
        });
    let vendor = if hik_stack {
        HIKVISION
    } else {
        vendor_named_in(v)?
    };
    Some(evidence(
        Signal::HttpServer,
        vendor,
        &format!("Server: {v}"),
    ))
}

/// Skips a quoted string starting at `b[i] == '"'`; returns its unescaped
/// content (at most [`MAX_REALM`] bytes kept) and the index after it.
fn quoted(b: &[u8], i: usize) -> (Vec<u8>, usize) {
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
fn realms(header_value: &str) -> Vec<String> {
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
fn realm_vendor(realm: &str, rtsp: bool) -> Option<(&'static str, String)> {
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

struct SdpMarker {
    prefix: &'static [u8],
    vendor: &'static str,
    /// Show the (cleaned) line rather than the marker: it carries a version.
    show_line: bool,
}

/// Distinctive SDP lines (prefix, ASCII case-insensitive). The generic
/// session names `s=Media Presentation` (Hikvision, but also other servers)
/// and `s=Media Server` (Dahua) are deliberately not markers: they never
/// count, not even next to a strong marker of the same vendor, because
/// [`decide`] counts a signal once per vendor anyway, so they could only ever
/// add false positives.
const SDP_MARKERS: [SdpMarker; 4] = [
    SdpMarker {
        // "IMKH": the 40-byte PlayM4 stream header.
        prefix: b"a=Media_header:MEDIAINFO=494D4B48",
        vendor: HIKVISION,
        show_line: false,
    },
    SdpMarker {
        // NVRs/encoders: "s=HIK Media Server V3.5.43".
        prefix: b"s=HIK Media Server",
        vendor: HIKVISION,
        show_line: true,
    },
    SdpMarker {
        prefix: b"a=packetization-supported:DH",
        vendor: DAHUA,
        show_line: false,
    },
    SdpMarker {
        prefix: b"a=rtppayload-supported:DH",
        vendor: DAHUA,
        show_line: false,
    },
];

/// Evidence from a camera's SDP (DESCRIBE body): one item per distinct marker
/// found (see `SDP_MARKERS`). Only the first 64 KiB are looked at, and of
/// each line the first 1 KiB.
pub fn sdp(sdp: &[u8]) -> Vec<Evidence> {
    let body = sdp.get(..sdp.len().min(MAX_SDP)).unwrap_or_default();
    let mut seen = [false; SDP_MARKERS.len()];
    let mut out = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        let line = line.get(..line.len().min(MAX_SDP_LINE)).unwrap_or_default();
        let line = line.trim_ascii();
        for (m, seen) in SDP_MARKERS.iter().zip(seen.iter_mut()) {
            if *seen {
                continue;
            }
            let hit = line
                .get(..m.prefix.len())
                .is_some_and(|h| h.eq_ignore_ascii_case(m.prefix));
            if hit {
                *seen = true;
                let detail = if m.show_line {
                    String::from_utf8_lossy(line).into_owned()
                } else {
                    String::from_utf8_lossy(m.prefix).into_owned()
                };
                out.push(evidence(Signal::Sdp, m.vendor, &detail));
            }
        }
    }
    out
}

/// ONVIF manufacturers stated by the reference (§3.1) as Hikvision or its
/// sub-brands/OEMs (lowercase; matched whole or followed by a non-alphanumeric
/// character, so `Hikvision Digital Technology Co., Ltd.` counts).
const HIK_BRANDS: &[&str] = &[
    "hikvision",
    "hangzhou hikvision",
    "ezviz",
    "hangzhou ezviz",
    "hilook",
    "hiwatch",
    "lts",
    "lt security",
    "prama",
];

/// The same for Dahua. IC Realtime, Technaxx and Inaxsys are the OEMs with
/// documented manual reuse; NOVUS, Activecam, Q-See, Speco are unverified in
/// the reference and not listed.
const DAHUA_BRANDS: &[&str] = &[
    "dahua",
    "zhejiang dahua",
    "lorex",
    "amcrest",
    "imou",
    "lechange",
    "ic realtime",
    "icrealtime",
    "technaxx",
    "inaxsys",
];

fn brand_matches(name: &str, brand: &str) -> bool {
    match name.strip_prefix(brand) {
        Some(rest) => rest.chars().next().is_none_or(|c| !c.is_alphanumeric()),
        None => false,
    }
}

/// The ONVIF `Manufacturer` (case-insensitive, trimmed). Hikvision, EZVIZ,
/// HiLook, HiWatch, LTS, Prama count for `hikvision`; Dahua, Lorex, Amcrest,
/// Imou, Lechange, IC Realtime, Technaxx, Inaxsys for `dahua`. Brands whose
/// supplier is model-dependent (Honeywell, Annke, Swann, Alarm.com, RCA,
/// LaView) give `None`, as does anything unknown.
pub fn onvif_manufacturer(manufacturer: &str) -> Option<Evidence> {
    let m = manufacturer.trim();
    if m.is_empty() || m.len() > MAX_MANUFACTURER {
        return None;
    }
    let lower = m.to_ascii_lowercase();
    let vendor = if HIK_BRANDS.iter().any(|b| brand_matches(&lower, b)) {
        HIKVISION
    } else if DAHUA_BRANDS.iter().any(|b| brand_matches(&lower, b)) {
        DAHUA
    } else {
        return None;
    };
    Some(evidence(
        Signal::OnvifManufacturer,
        vendor,
        &format!("Manufacturer {m}"),
    ))
}

/// One entry of the shipped OUI list.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OuiEntry<'a> {
    /// The block, left-aligned in the low 48 bits.
    prefix: u64,
    /// 24 (MA-L), 28 (MA-M) or 36 (MA-S).
    bits: u32,
    /// As written in the file, e.g. `44:19:B6`.
    prefix_text: &'a str,
    vendor: &'static str,
    /// IEEE registrant name.
    name: &'a str,
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn mask(bits: u32) -> u64 {
    let bits = bits.min(48);
    ((1u64 << bits) - 1) << (48 - bits)
}

fn mac_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// A block prefix: `44:19:B6`, `B0:B3:53:6` or `70:B3:D5:12:3`.
fn parse_block(s: &str) -> Result<(u64, u32), String> {
    let groups: Vec<&str> = s.split(':').collect();
    let bits = match groups.as_slice() {
        [a, b, c] if [a, b, c].iter().all(|g| g.len() == 2) => 24,
        [a, b, c, d] if [a, b, c].iter().all(|g| g.len() == 2) && d.len() == 1 => 28,
        [a, b, c, d, e] if [a, b, c, d].iter().all(|g| g.len() == 2) && e.len() == 1 => 36,
        _ => {
            return Err(format!(
                "bad prefix {s:?} (want XX:XX:XX, XX:XX:XX:X or XX:XX:XX:XX:X)"
            ));
        }
    };
    let mut v = 0u64;
    for b in groups.iter().flat_map(|g| g.bytes()) {
        let d = hex_val(b).ok_or_else(|| format!("bad hex digit in {s:?}"))?;
        v = (v << 4) | u64::from(d);
    }
    let prefix = v << (48 - bits);
    if (prefix >> 40) & 0x03 != 0 {
        return Err(format!(
            "{s:?} has the multicast or locally-administered bit set"
        ));
    }
    Ok((prefix, bits))
}

/// One line of `oui.txt`: `Ok(None)` for blank and comment lines.
fn parse_oui_line(line: &str) -> Result<Option<OuiEntry<'_>>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (prefix_text, rest) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("missing vendor and name: {line:?}"))?;
    let (vendor, name) = rest
        .trim_start()
        .split_once(char::is_whitespace)
        .ok_or_else(|| format!("missing registrant name: {line:?}"))?;
    let vendor = match vendor {
        "hikvision" => HIKVISION,
        "dahua" => DAHUA,
        other => return Err(format!("unknown vendor {other:?} in {line:?}")),
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("missing registrant name: {line:?}"));
    }
    let (prefix, bits) = parse_block(prefix_text)?;
    Ok(Some(OuiEntry {
        prefix,
        bits,
        prefix_text,
        vendor,
        name,
    }))
}

/// All valid entries of a list, sorted by (bits, prefix), and the errors.
fn parse_oui_list(text: &str) -> (Vec<OuiEntry<'_>>, Vec<String>) {
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        match parse_oui_line(line) {
            Ok(Some(e)) => entries.push(e),
            Ok(None) => {}
            Err(e) => errors.push(format!("line {}: {e}", n + 1)),
        }
    }
    entries.sort_by_key(|e| (e.bits, e.prefix));
    (entries, errors)
}

/// The shipped list (`oui.txt`), parsed once. Malformed lines are skipped
/// here; the unit tests make sure there are none.
const OUI_TXT: &str = include_str!("oui.txt");

fn oui_table() -> &'static [OuiEntry<'static>] {
    static TABLE: OnceLock<Vec<OuiEntry<'static>>> = OnceLock::new();
    TABLE.get_or_init(|| parse_oui_list(OUI_TXT).0)
}

/// The most specific shipped block containing `mac`.
fn lookup_oui(mac: [u8; 6]) -> Option<&'static OuiEntry<'static>> {
    let table = oui_table();
    let m = mac_u64(mac);
    [36u32, 28, 24].iter().find_map(|&bits| {
        let key = (bits, m & mask(bits));
        table
            .binary_search_by(|e| (e.bits, e.prefix).cmp(&key))
            .ok()
            .and_then(|i| table.get(i))
    })
}

/// The MAC's block in the shipped OUI list (Hikvision, EZVIZ, Prama,
/// Hikrobot -> `hikvision`; Dahua, Huacheng (Imou), Lorex, Amcrest ->
/// `dahua`). Detail: `OUI 44:19:B6 Hangzhou Hikvision Digital Technology`.
pub fn oui(mac: [u8; 6]) -> Option<Evidence> {
    let e = lookup_oui(mac)?;
    Some(evidence(
        Signal::Oui,
        e.vendor,
        &format!("OUI {} {}", e.prefix_text, e.name),
    ))
}

/// A MAC address: `44:19:b6:6d:24:85`, `44-19-B6-6D-24-85` (one or two hex
/// digits per group), `4419.b66d.2485` or `4419b66d2485`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let s = s.trim();
    if s.len() > 17 {
        return None;
    }
    let mut out = [0u8; 6];
    let sep = if s.contains(':') {
        Some(':')
    } else if s.contains('-') {
        Some('-')
    } else {
        None
    };
    if let Some(sep) = sep {
        let mut n = 0;
        for part in s.split(sep) {
            if part.is_empty() || part.len() > 2 {
                return None;
            }
            let slot = out.get_mut(n)?;
            *slot = part
                .bytes()
                .try_fold(0u8, |acc, b| Some((acc << 4) | hex_val(b)?))?;
            n += 1;
        }
        return (n == 6).then_some(out);
    }
    let digits: Vec<u8> = if s.contains('.') {
        let groups: Vec<&str> = s.split('.').collect();
        if groups.len() != 3 || groups.iter().any(|g| g.len() != 4) {
            return None;
        }
        groups.concat().into_bytes()
    } else {
        s.as_bytes().to_vec()
    };
    if digits.len() != 12 {
        return None;
    }
    for (slot, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let [hi, lo] = pair else { return None };
        *slot = (hex_val(*hi)? << 4) | hex_val(*lo)?;
    }
    Some(out)
}

/// `ATF_COM` in `/proc/net/arp` flags: the entry is complete.
const ATF_COM: u32 = 0x02;

/// Neighbour table (`/proc/net/arp` text) -> IPv4 address to MAC; skips incomplete entries (flags 0x0 / 00:00:00:00:00:00), bounded to 65536 lines.
///
/// Lines that do not parse (the header, other address types) are skipped;
/// an address listed on several interfaces keeps its first MAC.
pub fn parse_proc_net_arp(text: &str) -> HashMap<Ipv4Addr, [u8; 6]> {
    let mut map = HashMap::new();
    for line in text.lines().take(MAX_ARP_LINES) {
        let mut fields = line.split_whitespace();
        let (Some(ip), Some(_hw_type), Some(flags), Some(mac)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(ip) = ip.parse::<Ipv4Addr>() else {
            continue;
        };
        let Some(flags) = flags
            .strip_prefix("0x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
        else {
            continue;
        };
        if flags & ATF_COM == 0 {
            continue;
        }
        let Some(mac) = parse_mac(mac) else {
            continue;
        };
        if mac == [0; 6] {
            continue;
        }
        map.entry(ip).or_insert(mac);
    }
    map
}

/// The detected vendor: weighted vote over the evidence; None when there is none or it is a tie between vendors.
///
/// Each vendor scores the sum of [`Signal::weight`] over the *distinct*
/// signals that point to it: several SDP markers, or the same header seen on
/// two probes, count once, so repeated copies of one signal cannot outvote
/// the device's identity (manufacturer + OUI).
pub fn decide(evidence: &[Evidence]) -> Option<&'static str> {
    let mut seen: Vec<(&'static str, Signal)> = Vec::new();
    let mut totals: Vec<(&'static str, u32)> = Vec::new();
    for e in evidence {
        if seen.contains(&(e.vendor, e.signal)) {
            continue;
        }
        seen.push((e.vendor, e.signal));
        let w = e.signal.weight();
        match totals.iter_mut().find(|(v, _)| *v == e.vendor) {
            Some((_, t)) => *t = t.saturating_add(w),
            None => totals.push((e.vendor, w)),
        }
    }
    totals.sort_by_key(|t| std::cmp::Reverse(t.1));
    match totals.as_slice() {
        [] => None,
        [(v, _)] => Some(*v),
        [(v, first), (_, second), ..] => (first > second).then_some(*v),
    }
}

/// Camera-supplied text made safe for a metric label: only [A-Za-z0-9._-] kept (other characters replaced by '_' but runs collapsed, trimmed), at most 64 chars; empty stays empty.
///
/// "Trimmed": replacement underscores at either end are dropped
/// (`" <HIK> "` -> `HIK`); underscores the camera sent are kept.
pub fn label_value(s: &str) -> String {
    let mut out = String::new();
    // Whether the last pushed '_' stands for replaced characters.
    let mut replaced_tail = false;
    for c in s.chars() {
        if out.len() >= MAX_LABEL {
            break;
        }
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
            out.push(c);
            replaced_tail = false;
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
            replaced_tail = true;
        }
    }
    if replaced_tail {
        out.pop();
    }
    out
}

/// ONVIF GetDeviceInformationResponse fields (each cleaned: printable, at most 64 chars).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInformation {
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    pub hardware_id: String,
}

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(i) => name.get(i + 1..).unwrap_or_default(),
        None => name,
    }
}

const FIELDS: [&[u8]; 5] = [
    b"Manufacturer",
    b"Model",
    b"FirmwareVersion",
    b"SerialNumber",
    b"HardwareId",
];

fn push_bounded(acc: &mut String, s: &str) {
    let room = MAX_FIELD_RAW.saturating_sub(acc.len());
    acc.push_str(prefix(s, room));
}

/// Parses a SOAP 1.1 or 1.2 GetDeviceInformationResponse (any namespace prefixes, e.g. tds:Manufacturer or no prefix); None if it is not one (e.g. a SOAP Fault) or the body exceeds 256 KiB.
///
/// Elements are matched by local name (`Envelope` / `Body` /
/// `GetDeviceInformationResponse` / field); malformed XML, a DOCTYPE or
/// nesting deeper than 64 also give `None`. Missing fields stay empty.
pub fn parse_device_information(xml: &[u8]) -> Option<DeviceInformation> {
    if xml.len() > MAX_SOAP {
        return None;
    }
    let mut r = Reader::from_reader(xml);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut raw: [String; 5] = Default::default();
    let mut field: Option<usize> = None;
    let mut found = false;
    let mut fault = false;
    loop {
        let ev = r.read_event().ok()?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                if stack.len() >= MAX_XML_DEPTH {
                    return None;
                }
                let name = local(e.name().as_ref()).to_vec();
                match stack.len() {
                    0 if name != b"Envelope" => return None,
                    2 if stack.get(1).is_some_and(|p| p == b"Body") => {
                        if name == b"Fault" {
                            fault = true;
                        } else if name == b"GetDeviceInformationResponse" {
                            found = true;
                        }
                    }
                    3 if stack.get(1).is_some_and(|p| p == b"Body")
                        && stack
                            .get(2)
                            .is_some_and(|p| p == b"GetDeviceInformationResponse") =>
                    {
                        field = FIELDS.iter().position(|f| *f == name.as_slice());
                    }
                    _ => field = None,
                }
                if matches!(ev, Event::Start(_)) {
                    stack.push(name);
                } else {
                    field = None;
                }
            }
            Event::End(_) => {
                stack.pop();
                field = None;
            }
            Event::Text(t) => {
                if let Some(acc) = field.and_then(|i| raw.get_mut(i)) {
                    push_bounded(acc, &String::from_utf8_lossy(&t));
                }
            }
            Event::CData(t) => {
                if let Some(acc) = field.and_then(|i| raw.get_mut(i)) {
                    push_bounded(acc, &String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(g) => {
                if let Some(acc) = field.and_then(|i| raw.get_mut(i)) {
                    if g.is_char_ref() {
                        if let Ok(Some(c)) = g.resolve_char_ref() {
                            push_bounded(acc, c.encode_utf8(&mut [0u8; 4]));
                        }
                    } else if let Some(s) =
                        quick_xml::escape::resolve_predefined_entity(&String::from_utf8_lossy(&g))
                    {
                        push_bounded(acc, s);
                    }
                }
            }
            Event::DocType(_) => return None,
            Event::Eof => break,
            _ => {}
        }
    }
    if fault || !found || !stack.is_empty() {
        return None;
    }
    let [manufacturer, model, firmware, serial, hardware_id] = raw.map(|s| clean(&s, MAX_FIELD));
    Some(DeviceInformation {
        manufacturer,
        model,
        firmware,
        serial,
        hardware_id,
    })
}

/// The SOAP 1.2 request body for GetDeviceInformation with the given wsse:Security header XML inserted into the Header (pass "" for none).
///
/// With no security header the envelope has no Header at all.
pub fn device_information_request(security_header: &str) -> String {
    let header = if security_header.trim().is_empty() {
        String::new()
    } else {
        format!("<s:Header>{security_header}</s:Header>")
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
         <s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\" \
         xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\">{header}\
         <s:Body><tds:GetDeviceInformation/></s:Body></s:Envelope>"
    )
}

#[cfg(test)]
mod tests;
