//! ONVIF metadata packetizer (ONVIF Streaming Specification §5.1.2.1): one
//! XML document (`tt:MetadataStream`) per frame, split across packets of at
//! most the payload limit, the marker bit on its last packet.

use super::FrameWriter;

/// Packetizes one metadata document at RTP time `ts`. Returns the number of
/// packets (0 for an empty document, which is not sent).
pub fn packetize(w: &mut FrameWriter<'_>, ts: u32, document: &[u8]) -> usize {
    let max = w.max_payload().max(1);
    let count = document.len().div_ceil(max);
    for (i, piece) in document.chunks(max).enumerate() {
        w.packet(ts, i + 1 == count, &[piece]);
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::testutil::Roundtrip;
    use crate::rtp::{TrackSender, framed_packets};

    #[test]
    fn roundtrip_through_retina() {
        let mut s = TrackSender::new(107, 4, 256);
        let mut rt = Roundtrip::new("application", "vnd.onvif.metadata", 90_000, None, None);
        let mut doc = b"<?xml version=\"1.0\"?><tt:MetadataStream xmlns:tt=\"http://www.onvif.org/ver10/schema\">".to_vec();
        doc.extend(std::iter::repeat_n(b'x', 600));
        doc.extend_from_slice(b"</tt:MetadataStream>");
        let mut w = s.frame(doc.len(), 1);
        assert_eq!(packetize(&mut w, 9000, &doc), doc.len().div_ceil(256));
        let buf = w.finish();
        let markers: Vec<bool> = framed_packets(&buf)
            .map(|p| p.packet[1] & 0x80 != 0)
            .collect();
        assert_eq!(markers.iter().filter(|m| **m).count(), 1);
        assert!(*markers.last().unwrap());
        let got = rt.push_all(&buf);
        assert_eq!(got, vec![doc]);
        let mut w = s.frame(0, 1);
        assert_eq!(packetize(&mut w, 0, &[]), 0);
    }
}
