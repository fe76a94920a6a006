//! RTCP sender reports (RFC 3550 §6.4.1) with an SDES CNAME (§6.5.1), as a
//! compound packet framed for interleaving on the track's RTCP channel.

use bytes::{BufMut, Bytes, BytesMut};

use super::TrackSender;

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Converts a time since the Unix epoch to a 64-bit NTP timestamp.
pub fn ntp_from_unix(since_epoch: std::time::Duration) -> u64 {
    let secs = since_epoch.as_secs() + NTP_UNIX_OFFSET;
    let frac = (u64::from(since_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Builds SR + SDES(CNAME) for `sender`, saying that RTP time `rtp_ts`
/// corresponds to wall-clock `ntp`. Framed with channel `sender.channel + 1`.
pub fn sender_report(sender: &TrackSender, ntp: u64, rtp_ts: u32, cname: &str) -> Bytes {
    let cname = &cname.as_bytes()[..cname.len().min(255)];
    // SDES chunk: SSRC, CNAME item (type, len, text), END, padded to 32 bits.
    let chunk_len = 4 + 2 + cname.len() + 1;
    let sdes_words = (4 + chunk_len).div_ceil(4);
    let sr_len = 28;
    let total = sr_len + sdes_words * 4;
    let mut b = BytesMut::with_capacity(4 + total);
    b.put_u8(b'$');
    b.put_u8(sender.channel + 1);
    b.put_u16(total as u16);
    // SR: V=2, RC=0, PT=200, length in words minus one.
    b.put_u8(0x80);
    b.put_u8(200);
    b.put_u16((sr_len / 4 - 1) as u16);
    b.put_u32(sender.ssrc);
    b.put_u64(ntp);
    b.put_u32(rtp_ts);
    b.put_u32(sender.packet_count);
    b.put_u32(sender.octet_count);
    // SDES: V=2, SC=1, PT=202.
    b.put_u8(0x81);
    b.put_u8(202);
    b.put_u16((sdes_words - 1) as u16);
    b.put_u32(sender.ssrc);
    b.put_u8(1); // CNAME
    b.put_u8(cname.len() as u8);
    b.put_slice(cname);
    let pad = sdes_words * 4 - 4 - (4 + 2 + cname.len());
    b.put_bytes(0, pad); // END item (0) and padding
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtp::framed_packets;

    #[test]
    fn sender_report_layout() {
        let mut s = TrackSender::new(96, 0, 1400);
        s.ssrc = 0xdeadbeef;
        s.packet_count = 10;
        s.octet_count = 1000;
        let ntp = ntp_from_unix(std::time::Duration::from_millis(1_500));
        let framed = sender_report(&s, ntp, 90_000, "camgate");
        let p: Vec<_> = framed_packets(&framed).collect();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].channel, 1);
        let pkt = p[0].packet;
        assert_eq!(pkt.len() % 4, 0);
        assert_eq!(pkt[1], 200);
        assert_eq!(
            u32::from_be_bytes(pkt[8..12].try_into().unwrap()),
            2_208_988_801
        );
        assert_eq!(u32::from_be_bytes(pkt[12..16].try_into().unwrap()), 1 << 31);
        assert_eq!(u32::from_be_bytes(pkt[16..20].try_into().unwrap()), 90_000);
        assert_eq!(pkt[29], 202);
        // Retina parses it as a valid compound packet.
        let parsed = retina::rtcp::PacketRef::parse(pkt).unwrap();
        assert!(matches!(
            parsed.0.as_typed().unwrap(),
            Some(retina::rtcp::TypedPacketRef::SenderReport(_))
        ));
    }
}
