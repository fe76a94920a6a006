//! Evidence from a camera's SDP: vendor attributes and session names.

use super::*;

/// SDP bytes looked at.
pub(super) const MAX_SDP: usize = 64 * 1024;

/// SDP line bytes looked at (longer lines are cut; markers are prefixes).
pub(super) const MAX_SDP_LINE: usize = 1024;

pub(super) struct SdpMarker {
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
pub(super) const SDP_MARKERS: [SdpMarker; 4] = [
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
