//! Evidence from the MAC address's OUI (the shipped `oui.txt`), and the
//! neighbour table (`/proc/net/arp`) the address comes from.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

use super::*;

/// `/proc/net/arp` lines looked at.
pub(super) const MAX_ARP_LINES: usize = 65536;

/// One entry of the shipped OUI list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OuiEntry<'a> {
    /// The block, left-aligned in the low 48 bits.
    pub(super) prefix: u64,
    /// 24 (MA-L), 28 (MA-M) or 36 (MA-S).
    pub(super) bits: u32,
    /// As written in the file, e.g. `44:19:B6`.
    pub(super) prefix_text: &'a str,
    pub(super) vendor: &'static str,
    /// IEEE registrant name.
    pub(super) name: &'a str,
}

pub(super) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

pub(super) fn mask(bits: u32) -> u64 {
    let bits = bits.min(48);
    ((1u64 << bits) - 1) << (48 - bits)
}

pub(super) fn mac_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// A block prefix: `44:19:B6`, `B0:B3:53:6` or `70:B3:D5:12:3`.
pub(super) fn parse_block(s: &str) -> Result<(u64, u32), String> {
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
pub(super) fn parse_oui_line(line: &str) -> Result<Option<OuiEntry<'_>>, String> {
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
pub(super) fn parse_oui_list(text: &str) -> (Vec<OuiEntry<'_>>, Vec<String>) {
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
pub(super) const OUI_TXT: &str = include_str!("oui.txt");

pub(super) fn oui_table() -> &'static [OuiEntry<'static>] {
    static TABLE: OnceLock<Vec<OuiEntry<'static>>> = OnceLock::new();
    TABLE.get_or_init(|| parse_oui_list(OUI_TXT).0)
}

/// The most specific shipped block containing `mac`.
pub(super) fn lookup_oui(mac: [u8; 6]) -> Option<&'static OuiEntry<'static>> {
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
pub(super) const ATF_COM: u32 = 0x02;

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
