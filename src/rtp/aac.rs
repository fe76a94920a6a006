//! AAC packetizer (RFC 3640, mode AAC-hbr): one access unit per packet with
//! a 16-bit AU header (13-bit size, 3-bit index); an access unit larger than
//! a packet is fragmented (§3.2.3), each fragment carrying the full AU size.

use super::FrameWriter;

/// Largest AU size the 13-bit AU-size field can describe.
pub const MAX_AU_BYTES: usize = (1 << 13) - 1;

/// The `a=fmtp` parameters for AAC-hbr with this AudioSpecificConfig.
pub fn fmtp(config: &[u8]) -> String {
    let mut hex = String::with_capacity(config.len() * 2);
    for b in config {
        hex.push_str(&format!("{b:02x}"));
    }
    format!(
        "streamtype=5;profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3;config={hex}"
    )
}

/// Packetizes one raw AAC access unit. Returns `false` (and writes nothing)
/// for an empty AU or one too large for the AU header.
pub fn packetize(w: &mut FrameWriter<'_>, ts: u32, au: &[u8]) -> bool {
    if au.is_empty() || au.len() > MAX_AU_BYTES {
        return false;
    }
    let size = au.len() as u16;
    // AU-headers-length (in bits) = 16, then size << 3 | index 0.
    let hdr = [0x00, 0x10, (size >> 5) as u8, ((size & 0x1f) << 3) as u8];
    let chunk = w.max_payload() - hdr.len();
    let pieces = au.len().div_ceil(chunk);
    for (i, piece) in au.chunks(chunk).enumerate() {
        w.packet(ts, i + 1 == pieces, &[&hdr, piece]);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::TrackSender;
    use crate::rtp::testutil::Roundtrip;

    #[test]
    fn roundtrip_through_retina() {
        // AAC-LC, 48 kHz, mono.
        let config = [0x11, 0x88];
        for max in [1400usize, 300] {
            let mut s = TrackSender::new(97, 2, max);
            let mut rt = Roundtrip::new(
                "audio",
                "mpeg4-generic",
                48_000,
                Some(1),
                Some(&fmtp(&config)),
            );
            let mut got = Vec::new();
            let aus: Vec<Vec<u8>> = [1usize, 2, 295, 296, 297, 700, 1500]
                .iter()
                .map(|n| (0..*n).map(|i| (i % 256) as u8).collect())
                .collect();
            for (i, au) in aus.iter().enumerate() {
                let mut w = s.frame(au.len(), 1);
                assert!(packetize(&mut w, (i as u32) * 1024, au));
                got.extend(rt.push_all(&w.finish()));
            }
            assert_eq!(got, aus, "max {max}");
        }
    }

    #[test]
    fn rejects_oversized() {
        let mut s = TrackSender::new(97, 2, 1400);
        let mut w = s.frame(10, 1);
        assert!(!packetize(&mut w, 0, &vec![0; MAX_AU_BYTES + 1]));
        assert!(!packetize(&mut w, 0, &[]));
        assert_eq!(w.packets(), 0);
    }

    #[test]
    fn fmtp_text() {
        assert!(fmtp(&[0x12, 0x10]).ends_with("config=1210"));
    }
}
