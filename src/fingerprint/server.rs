//! Evidence from `Server:` headers, RTSP and HTTP (vendor web servers and
//! RTSP stacks name themselves, often with a version).

use super::*;

/// Longest `Server:` value considered (real ones are a few dozen bytes).
pub(super) const MAX_SERVER: usize = 256;

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
