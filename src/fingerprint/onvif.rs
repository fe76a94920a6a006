//! Evidence from ONVIF `GetDeviceInformation`: the manufacturer (OEM brands
//! mapped to the real vendor), and the answer's parser and request.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::*;

/// Longest ONVIF manufacturer considered.
pub(super) const MAX_MANUFACTURER: usize = 128;

/// Largest GetDeviceInformationResponse parsed.
pub(super) const MAX_SOAP: usize = 256 * 1024;

/// XML nesting accepted in a response.
pub(super) const MAX_XML_DEPTH: usize = 64;

/// Raw text kept per ONVIF field before cleaning.
pub(super) const MAX_FIELD_RAW: usize = 4096;

/// Characters of a cleaned ONVIF field.
pub(super) const MAX_FIELD: usize = 64;

/// ONVIF manufacturers stated by the reference (§3.1) as Hikvision or its
/// sub-brands/OEMs (lowercase; matched whole or followed by a non-alphanumeric
/// character, so `Hikvision Digital Technology Co., Ltd.` counts).
pub(super) const HIK_BRANDS: &[&str] = &[
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
pub(super) const DAHUA_BRANDS: &[&str] = &[
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

pub(super) fn brand_matches(name: &str, brand: &str) -> bool {
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

/// ONVIF GetDeviceInformationResponse fields (each cleaned: printable, at most 64 chars).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInformation {
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    pub hardware_id: String,
}

pub(super) fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(i) => name.get(i + 1..).unwrap_or_default(),
        None => name,
    }
}

pub(super) const FIELDS: [&[u8]; 5] = [
    b"Manufacturer",
    b"Model",
    b"FirmwareVersion",
    b"SerialNumber",
    b"HardwareId",
];

pub(super) fn push_bounded(acc: &mut String, s: &str) {
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
