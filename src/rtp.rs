//! RTP packetization toward recorders: pure code, no I/O.
//!
//! Each frame is packetized once per stream into one contiguous buffer in
//! which every RTP packet is preceded by its 4-byte RTSP interleaved header
//! (`$`, channel, length; RFC 2326 §10.12). A TCP recorder using the default
//! channels writes that buffer as is; a UDP recorder sends the RTP packets
//! inside it; a TCP recorder with other channel numbers writes its own
//! headers around the same bytes. Nothing here knows about sockets.
//!
//! Not here: depacketizing camera RTP (retina does that), SDP (in
//! `rtsp::sdp`), and deciding what to strip from frames (the sources and
//! the inspector do).

pub mod aac;
pub mod g711;
pub mod h264;
pub mod h265;
pub mod metadata;
pub mod rtcp;

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes of an RTP fixed header without CSRCs or extension (RFC 3550 §5.1).
pub const RTP_HEADER_LEN: usize = 12;
/// Bytes of an RTSP interleaved frame header (`$`, channel, u16 length).
pub const INTERLEAVED_HEADER_LEN: usize = 4;

/// Per-track RTP sender state, owned by the stream's publisher. Sequence
/// numbers and counters continue across camera reconnects.
#[derive(Debug, Clone)]
pub struct TrackSender {
    /// camgate's own SSRC for this track.
    pub ssrc: u32,
    /// RTP payload type announced in the SDP.
    pub payload_type: u8,
    /// Sequence number of the next packet.
    pub seq: u16,
    /// Interleaved channel used in the shared buffer (`2 * track index`).
    pub channel: u8,
    /// Packets sent, for RTCP sender reports (wraps, per RFC 3550).
    pub packet_count: u32,
    /// Payload octets sent, for RTCP sender reports (wraps).
    pub octet_count: u32,
    /// Largest RTP payload to emit.
    pub max_payload: usize,
}

impl TrackSender {
    /// A sender with random SSRC and initial sequence number (RFC 3550 §5.1).
    pub fn new(payload_type: u8, channel: u8, max_payload: usize) -> Self {
        TrackSender {
            ssrc: rand::random(),
            payload_type,
            seq: rand::random(),
            channel,
            packet_count: 0,
            octet_count: 0,
            max_payload,
        }
    }

    /// Starts a frame's packet buffer with room for about `payload_len` bytes
    /// split into packets.
    pub fn frame(&mut self, payload_len: usize, units: usize) -> FrameWriter<'_> {
        let max = self.max_payload.max(16);
        let packets = payload_len / (max - 3) + units + 2;
        let cap = payload_len + packets * (INTERLEAVED_HEADER_LEN + RTP_HEADER_LEN + 3);
        FrameWriter {
            buf: BytesMut::with_capacity(cap),
            sender: self,
            packets: 0,
        }
    }
}

/// Writes one frame's packets into a single buffer. See the module docs.
pub struct FrameWriter<'a> {
    buf: BytesMut,
    sender: &'a mut TrackSender,
    packets: usize,
}

impl FrameWriter<'_> {
    /// The largest payload a packet may carry.
    pub fn max_payload(&self) -> usize {
        self.sender.max_payload
    }

    /// Appends one RTP packet whose payload is the concatenation of `parts`.
    pub fn packet(&mut self, timestamp: u32, marker: bool, parts: &[&[u8]]) {
        let payload_len: usize = parts.iter().map(|p| p.len()).sum();
        let rtp_len = RTP_HEADER_LEN + payload_len;
        debug_assert!(rtp_len <= usize::from(u16::MAX));
        let s = &mut *self.sender;
        self.buf.reserve(INTERLEAVED_HEADER_LEN + rtp_len);
        self.buf.put_u8(b'$');
        self.buf.put_u8(s.channel);
        self.buf.put_u16(rtp_len as u16);
        self.buf.put_u8(0x80); // V=2, no padding, no extension, no CSRC
        self.buf
            .put_u8(((marker as u8) << 7) | (s.payload_type & 0x7f));
        self.buf.put_u16(s.seq);
        self.buf.put_u32(timestamp);
        self.buf.put_u32(s.ssrc);
        for p in parts {
            self.buf.put_slice(p);
        }
        s.seq = s.seq.wrapping_add(1);
        s.packet_count = s.packet_count.wrapping_add(1);
        s.octet_count = s.octet_count.wrapping_add(payload_len as u32);
        self.packets += 1;
    }

    /// Number of packets written so far.
    pub fn packets(&self) -> usize {
        self.packets
    }

    /// The frame's packets, framed for RTSP interleaving.
    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// One RTP or RTCP packet inside a framed buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramedPacket<'a> {
    /// The interleaved channel the buffer was framed with.
    pub channel: u8,
    /// The packet itself (RTP header onward).
    pub packet: &'a [u8],
}

/// Iterates the packets of a buffer built by [`FrameWriter`] or [`rtcp`].
pub fn framed_packets(buf: &[u8]) -> FramedPackets<'_> {
    FramedPackets { rest: buf }
}

/// Iterator returned by [`framed_packets`].
pub struct FramedPackets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for FramedPackets<'a> {
    type Item = FramedPacket<'a>;

    fn next(&mut self) -> Option<FramedPacket<'a>> {
        let r = self.rest;
        if r.len() < INTERLEAVED_HEADER_LEN {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([r[2], r[3]]));
        let end = INTERLEAVED_HEADER_LEN + len;
        // Buffers are built by this module, so this only guards against bugs.
        let packet = r.get(INTERLEAVED_HEADER_LEN..end)?;
        self.rest = &r[end..];
        Some(FramedPacket {
            channel: r[1],
            packet,
        })
    }
}

/// Splits a frame in 4-byte-length-prefixed form (ISO/IEC 14496-15, as
/// retina delivers it) into NAL units. Returns `None` if a length runs past
/// the end: the frame is then dropped, never half-sent.
pub fn length_prefixed_nals(data: &[u8]) -> Option<smallvec::SmallVec<[&[u8]; 16]>> {
    let mut out = smallvec::SmallVec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let len_bytes: [u8; 4] = rest.get(..4)?.try_into().ok()?;
        let len = u32::from_be_bytes(len_bytes) as usize;
        let nal = rest.get(4..4usize.checked_add(len)?)?;
        if !nal.is_empty() {
            out.push(nal);
        }
        rest = &rest[4 + len..];
    }
    Some(out)
}

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_fields() {
        let mut s = TrackSender::new(96, 2, 1400);
        s.ssrc = 0x01020304;
        s.seq = 0xffff;
        let mut w = s.frame(3, 1);
        w.packet(0xaabbccdd, true, &[b"ab", b"c"]);
        w.packet(7, false, &[b"d"]);
        let buf = w.finish();
        let pkts: Vec<_> = framed_packets(&buf).collect();
        assert_eq!(pkts.len(), 2);
        assert_eq!(pkts[0].channel, 2);
        assert_eq!(
            pkts[0].packet,
            &[
                0x80,
                0x80 | 96,
                0xff,
                0xff,
                0xaa,
                0xbb,
                0xcc,
                0xdd,
                1,
                2,
                3,
                4,
                b'a',
                b'b',
                b'c'
            ][..]
        );
        assert_eq!(&pkts[1].packet[2..4], &[0, 0]); // sequence wrapped
        assert_eq!(pkts[1].packet[1], 96); // no marker
        assert_eq!(s.packet_count, 2);
        assert_eq!(s.octet_count, 4);
    }

    #[test]
    fn length_prefixed_parsing() {
        let d = [0, 0, 0, 2, 0x65, 1, 0, 0, 0, 1, 0x41];
        let nals = length_prefixed_nals(&d).unwrap();
        assert_eq!(nals.as_slice(), &[&[0x65, 1][..], &[0x41][..]]);
        assert!(length_prefixed_nals(&[0, 0, 0, 5, 1]).is_none());
        assert!(length_prefixed_nals(&[0, 0]).is_none());
        assert!(length_prefixed_nals(&[0xff, 0xff, 0xff, 0xff, 1]).is_none());
        assert_eq!(length_prefixed_nals(&[]).unwrap().len(), 0);
    }
}
