//! H.265 packetizer (RFC 7798): single NAL unit packets and fragmentation
//! units (§4.4.1, §4.4.3); no aggregation packets, no PACI, no DON
//! (`sprop-max-don-diff` = 0).
//!
//! VPS, SPS and PPS are sent in-band before every IRAP picture from the
//! stream's current parameters.

use smallvec::SmallVec;

use super::FrameWriter;

pub const NAL_VPS: u8 = 32;
pub const NAL_SPS: u8 = 33;
pub const NAL_PPS: u8 = 34;
pub const NAL_AUD: u8 = 35;
/// Fragmentation unit packet type.
const FU: u8 = 49;

/// The NAL unit type (bits 1..=6 of the first header byte).
pub fn nal_type(nal: &[u8]) -> u8 {
    nal.first().map_or(0, |h| (h >> 1) & 0x3f)
}

/// Whether this NAL type starts a random-access (IRAP) picture.
pub fn is_irap(nal_type: u8) -> bool {
    (16..=23).contains(&nal_type)
}

/// Whether camgate forwards a NAL of this type. 41..=47 are reserved, 48..=50
/// are RFC 7798's own packet types, 51..=63 unspecified; parameter sets and
/// delimiters are regenerated rather than copied.
pub fn forwarded(nal_type: u8) -> bool {
    !matches!(nal_type, 41..=63 | NAL_VPS | NAL_SPS | NAL_PPS | NAL_AUD)
}

/// Packetizes one access unit at RTP time `ts`; `params` (VPS, SPS, PPS)
/// first when given. Returns the number of NAL units emitted.
pub fn packetize(
    w: &mut FrameWriter<'_>,
    ts: u32,
    nals: &[&[u8]],
    params: Option<(&[u8], &[u8], &[u8])>,
) -> usize {
    let mut units: SmallVec<[&[u8]; 16]> = SmallVec::new();
    if let Some((vps, sps, pps)) = params {
        units.extend([vps, sps, pps]);
    }
    // A NAL needs its two-byte header to be meaningful.
    units.extend(
        nals.iter()
            .copied()
            .filter(|n| n.len() >= 2 && forwarded(nal_type(n))),
    );
    let max = w.max_payload();
    let count = units.len();
    for (i, nal) in units.iter().enumerate() {
        let last = i + 1 == count;
        if nal.len() <= max {
            w.packet(ts, last, &[nal]);
            continue;
        }
        // PayloadHdr keeps F, LayerId and TID, with type 49; then the FU header.
        let payload_hdr = [(nal[0] & 0x81) | (FU << 1), nal[1]];
        let t = nal_type(nal);
        let body = &nal[2..];
        let chunk = max - 3;
        let pieces = body.len().div_ceil(chunk);
        for (j, piece) in body.chunks(chunk).enumerate() {
            let start = if j == 0 { 0x80 } else { 0 };
            let end = if j + 1 == pieces { 0x40 } else { 0 };
            w.packet(
                ts,
                last && j + 1 == pieces,
                &[&payload_hdr, &[start | end | t], piece],
            );
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::testutil::{Roundtrip, h265_params};
    use crate::rtp::{TrackSender, framed_packets};
    use base64::Engine;

    fn nal(t: u8, len: usize) -> Vec<u8> {
        let mut v = vec![t << 1, 1];
        v.extend((0..len.saturating_sub(2)).map(|i| (i % 200) as u8 + 1));
        v
    }

    fn lengths(nals: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for n in nals {
            v.extend_from_slice(&(n.len() as u32).to_be_bytes());
            v.extend_from_slice(n);
        }
        v
    }

    #[test]
    fn roundtrip_through_retina() {
        let (vps, sps, pps) = h265_params();
        let b = base64::engine::general_purpose::STANDARD;
        let fmtp = format!(
            "sprop-vps={};sprop-sps={};sprop-pps={}",
            b.encode(&vps),
            b.encode(&sps),
            b.encode(&pps)
        );
        for len in [2usize, 3, 99, 100, 101, 102, 196, 197, 198, 4000] {
            let max = 100;
            let mut s = TrackSender::new(96, 0, max);
            let mut rt = Roundtrip::new("video", "h265", 90_000, None, Some(&fmtp));
            let idr = nal(19, len); // IDR_W_RADL
            let trail = nal(1, len); // TRAIL_R
            let mut got = Vec::new();
            for (ts, n, key) in [(0u32, &idr, true), (3000, &trail, false)] {
                let mut w = s.frame(len, 4);
                packetize(
                    &mut w,
                    ts,
                    &[n],
                    key.then_some((&vps[..], &sps[..], &pps[..])),
                );
                let buf = w.finish();
                for p in framed_packets(&buf) {
                    assert!(p.packet.len() - 12 <= max);
                }
                got.extend(rt.push_all(&buf));
            }
            got.extend(rt.flush());
            assert_eq!(got.len(), 2, "len {len}");
            assert_eq!(got[0], lengths(&[&idr]), "len {len}");
            assert_eq!(got[1], lengths(&[&trail]), "len {len}");
        }
    }

    #[test]
    fn fu_headers() {
        let mut s = TrackSender::new(96, 0, 100);
        let n = nal(19, 2 + 97 * 2);
        let mut w = s.frame(300, 1);
        packetize(&mut w, 0, &[&n], None);
        let buf = w.finish();
        let pkts: Vec<_> = framed_packets(&buf).collect();
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0].packet[12], 49 << 1);
        assert_eq!(pkts[0].packet[14], 0x80 | 19);
        assert_eq!(pkts[1].packet[14], 0x40 | 19);
        assert_eq!(pkts[1].packet.len(), 12 + 100);
    }
}
