//! Test helpers: feed camgate's packets through retina's own depacketizers,
//! the strictest field-proven reader available in-process.

use std::num::NonZeroU16;

use base64::Engine;
use retina::codec::{CodecItem, Depacketizer};

use super::framed_packets;

/// An H.264 SPS/PPS pair (Baseline 320x240) that retina parses.
pub fn h264_params() -> (Vec<u8>, Vec<u8>) {
    let b = base64::engine::general_purpose::STANDARD;
    (
        b.decode("Z0LAHtkDxWhAAAADAEAAAAwDxYuS").unwrap(),
        b.decode("aMuMsg==").unwrap(),
    )
}

/// An H.265 VPS/SPS/PPS triple (Main 320x240, from libx265).
pub fn h265_params() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let h = |s: &str| {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    (
        h("40010c01ffff01600000030090000003000003003c959809"),
        h("42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003210"),
        h("4401c172b46240"),
    )
}

/// One track's depacketizer state.
pub struct Roundtrip {
    depacketizer: Depacketizer,
    parser: retina::client::rtp::InorderParser,
    timeline: retina::client::Timeline,
    buf: retina::testutil::DepacketizeBuf,
}

impl Roundtrip {
    pub fn new(
        media: &str,
        encoding: &str,
        clock: u32,
        channels: Option<u16>,
        fmtp: Option<&str>,
    ) -> Self {
        let mut depacketizer = Depacketizer::new(
            media,
            encoding,
            clock,
            channels.and_then(NonZeroU16::new),
            fmtp,
        )
        .unwrap();
        depacketizer.set_frame_format(retina::codec::FrameFormat::MP4);
        Roundtrip {
            depacketizer,
            parser: retina::client::rtp::InorderParser::new(
                None,
                None,
                retina::client::UnknownRtcpSsrcPolicy::Default,
            ),
            timeline: retina::client::Timeline::new(None, clock, None).unwrap(),
            buf: retina::testutil::DepacketizeBuf::new(1 << 20),
        }
    }

    pub fn video_h264(sps: &[u8], pps: &[u8]) -> Self {
        let b = base64::engine::general_purpose::STANDARD;
        let fmtp = format!(
            "packetization-mode=1;sprop-parameter-sets={},{}",
            b.encode(sps),
            b.encode(pps)
        );
        Self::new("video", "h264", 90_000, None, Some(&fmtp))
    }

    /// Pushes every RTP packet of a framed buffer, returning finished frames'
    /// data (video) or audio payloads.
    pub fn push_all(&mut self, framed: &[u8]) -> Vec<Vec<u8>> {
        let conn_ctx = retina::ConnectionContext::dummy();
        let stream_ctx = retina::StreamContext::dummy();
        let pkt_ctx = retina::PacketContext::dummy();
        let mut out = Vec::new();
        for p in framed_packets(framed) {
            let (header, range) = retina::rtp::PacketHeader::validate(p.packet).unwrap();
            let meta = self
                .parser
                .rtp(
                    &retina::client::SessionOptions::default(),
                    &stream_ctx,
                    None,
                    &conn_ctx,
                    &pkt_ctx,
                    &mut self.timeline,
                    0,
                    &header,
                )
                .unwrap()
                .expect("packet accepted");
            let payload = &p.packet[usize::from(range.start)..usize::from(range.end)];
            self.buf
                .push(&mut self.depacketizer, meta, payload)
                .unwrap_or_else(|e| panic!("retina rejected a packet: {e}"));
            out.extend(self.pull());
        }
        out
    }

    fn pull(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(item) = self.depacketizer.pull() {
            match item.unwrap_or_else(|e| panic!("depacketize error: {e:?}")) {
                CodecItem::VideoFrame(f) => out.push(f.into_data()),
                CodecItem::AudioFrame(f) => out.push(f.data().to_vec()),
                CodecItem::MessageFrame(f) => out.push(f.data().to_vec()),
                other => panic!("unexpected item {other:?}"),
            }
        }
        out
    }

    /// Frames still held (retina ends a video frame when the next begins).
    pub fn flush(&mut self) -> Vec<Vec<u8>> {
        self.pull()
    }
}
