//! Vendor fingerprinting from what a camera says about itself: RTSP and HTTP
//! `Server:` headers, `WWW-Authenticate` realms, SDP markers, the ONVIF
//! `GetDeviceInformation` manufacturer and the MAC address's OUI, each turned
//! into weighted [`Evidence`] for `hikvision` or `dahua` (OEM brands map to
//! the real vendor), and a weighted vote over it ([`decide`]).
//!
//! One file per evidence source (`server`, `realm`, `sdp`, `onvif`, `oui`),
//! all pure; this file holds the evidence type, the vote and the text
//! cleaning they share. The network probes (OPTIONS/DESCRIBE, HTTP, ONVIF,
//! reading `/proc/net/arp`) are [`probe`]; what is known of each device,
//! [`identity`]. Every input is hostile camera data: no function panics,
//! inputs are bounded before any work, and everything shown to an operator
//! is cleaned to printable ASCII with a length cap.
//!
//! Signatures come from `vendor-callbacks.md` §3 (OEM table, fingerprint
//! table, MAC OUIs); the OUI list ships as `fingerprint/oui.txt`.

pub mod identity;
mod onvif;
mod oui;
pub mod probe;
mod realm;
mod sdp;
mod server;

pub use onvif::{
    DeviceInformation, device_information_request, onvif_manufacturer, parse_device_information,
};
#[cfg(test)]
use oui::{OUI_TXT, oui_table, parse_oui_line, parse_oui_list};
pub use oui::{oui, parse_mac, parse_proc_net_arp};
pub use realm::www_authenticate;
pub use sdp::sdp;
pub use server::{http_server, rtsp_server};

/// The vendor vocabulary of the configuration.
pub const HIKVISION: &str = "hikvision";

/// The vendor vocabulary of the configuration.
pub const DAHUA: &str = "dahua";

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

#[cfg(test)]
mod tests;
