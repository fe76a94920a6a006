//! G.711 packetizer (RFC 3551 §4.5.14): samples split into packets of at
//! most the payload limit, each stamped with its first sample's time.

use super::FrameWriter;

/// Static payload type for PCMU at 8 kHz mono (RFC 3551 table 4).
pub const PT_PCMU: u8 = 0;
/// Static payload type for PCMA at 8 kHz mono.
pub const PT_PCMA: u8 = 8;

/// Packetizes `samples` (one byte per sample per channel) starting at RTP
/// time `ts`. Returns the number of packets.
pub fn packetize(w: &mut FrameWriter<'_>, ts: u32, samples: &[u8], channels: u16) -> usize {
    let channels = usize::from(channels.max(1));
    // Keep every packet a whole number of sample frames.
    let chunk = (w.max_payload() / channels).max(1) * channels;
    let mut n = 0;
    for (i, piece) in samples.chunks(chunk).enumerate() {
        let offset = (i * chunk / channels) as u32;
        w.packet(ts.wrapping_add(offset), i == 0, &[piece]);
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::testutil::Roundtrip;
    use crate::rtp::{TrackSender, framed_packets};

    #[test]
    fn roundtrip_through_retina() {
        let mut s = TrackSender::new(PT_PCMU, 2, 256);
        let mut rt = Roundtrip::new("audio", "pcmu", 8000, Some(1), None);
        let samples: Vec<u8> = (0..600).map(|i| (i % 256) as u8).collect();
        let mut w = s.frame(600, 1);
        assert_eq!(packetize(&mut w, 1000, &samples, 1), 3);
        let buf = w.finish();
        let ts: Vec<u32> = framed_packets(&buf)
            .map(|p| u32::from_be_bytes(p.packet[4..8].try_into().unwrap()))
            .collect();
        assert_eq!(ts, vec![1000, 1256, 1512]);
        let got: Vec<u8> = rt.push_all(&buf).concat();
        assert_eq!(got, samples);
    }
}
