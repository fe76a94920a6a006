//! camgate's own SDP (RFC 4566) for a stream, written from codec parameters
//! alone: nothing of the camera's SDP text reaches a recorder.

use std::fmt::Write;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::media::publisher::payload_type;
use crate::media::{AudioCodec, StreamInfo, Track, VideoCodec};
use crate::rtp;

/// Writes the session description. `session_id` should be stable for the
/// stream; `origin` is camgate's address as the recorder reached it.
pub fn write(info: &StreamInfo, session_id: u64, origin: IpAddr, name: &str) -> String {
    let (net, addr) = match origin {
        IpAddr::V4(a) => ("IP4", a.to_string()),
        IpAddr::V6(a) => ("IP6", a.to_string()),
    };
    let mut s = String::with_capacity(512);
    // `write!` to a String cannot fail.
    let _ = write!(
        s,
        "v=0\r\no=- {session_id} 1 IN {net} {addr}\r\ns={name}\r\nc=IN {net} {}\r\nt=0 0\r\na=tool:camgate\r\na=range:npt=now-\r\na=control:*\r\n",
        if net == "IP4" { "0.0.0.0" } else { "::" }
    );
    for (i, t) in info.tracks.iter().enumerate() {
        let pt = payload_type(t, i);
        match t {
            Track::Video(v) => {
                let _ = write!(s, "m=video 0 RTP/AVP {pt}\r\n");
                match v {
                    VideoCodec::H264 { sps, pps } => {
                        // profile-level-id from the SPS itself (bytes 1..4),
                        // not from anything a camera claimed.
                        let pli = sps
                            .get(1..4)
                            .map(|b| format!("{:02X}{:02X}{:02X}", b[0], b[1], b[2]))
                            .unwrap_or_else(|| "42E01F".into());
                        let _ = write!(
                            s,
                            "a=rtpmap:{pt} H264/90000\r\na=fmtp:{pt} packetization-mode=1;profile-level-id={pli};sprop-parameter-sets={},{}\r\n",
                            B64.encode(sps),
                            B64.encode(pps)
                        );
                    }
                    VideoCodec::H265 { vps, sps, pps } => {
                        let _ = write!(
                            s,
                            "a=rtpmap:{pt} H265/90000\r\na=fmtp:{pt} sprop-vps={};sprop-sps={};sprop-pps={}\r\n",
                            B64.encode(vps),
                            B64.encode(sps),
                            B64.encode(pps)
                        );
                    }
                }
            }
            Track::Audio(a) => {
                let _ = write!(s, "m=audio 0 RTP/AVP {pt}\r\n");
                let (rate, ch) = (a.sample_rate(), a.channels());
                match a {
                    AudioCodec::Aac { config, .. } => {
                        let _ = write!(
                            s,
                            "a=rtpmap:{pt} MPEG4-GENERIC/{rate}/{ch}\r\na=fmtp:{pt} {}\r\n",
                            rtp::aac::fmtp(config)
                        );
                    }
                    AudioCodec::Pcmu { .. } => {
                        let _ = write!(s, "a=rtpmap:{pt} PCMU/{rate}/{ch}\r\n");
                    }
                    AudioCodec::Pcma { .. } => {
                        let _ = write!(s, "a=rtpmap:{pt} PCMA/{rate}/{ch}\r\n");
                    }
                }
            }
            Track::Metadata(m) => {
                let _ = write!(
                    s,
                    "m=application 0 RTP/AVP {pt}\r\na=rtpmap:{pt} {}/90000\r\n",
                    m.encoding()
                );
            }
        }
        let _ = write!(s, "a=control:trackID={i}\r\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn h264_and_aac() {
        let info = StreamInfo {
            tracks: vec![
                Track::Video(VideoCodec::H264 {
                    sps: Bytes::from_static(&[0x67, 0x4d, 0x00, 0x1f, 0xaa]),
                    pps: Bytes::from_static(&[0x68, 0xee]),
                }),
                Track::Audio(AudioCodec::Aac {
                    config: Bytes::from_static(&[0x12, 0x88]),
                    sample_rate: 32000,
                    channels: 1,
                }),
            ],
        };
        let sdp = write(&info, 42, "127.0.0.1".parse().unwrap(), "demo/main");
        assert!(sdp.starts_with("v=0\r\no=- 42 1 IN IP4 127.0.0.1\r\n"));
        assert!(sdp.contains("m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"));
        assert!(sdp.contains("profile-level-id=4D001F;sprop-parameter-sets=Z00AH6o=,aO4=\r\n"));
        assert!(sdp.contains("a=control:trackID=0\r\n"));
        assert!(sdp.contains("m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/32000/1\r\n"));
        assert!(sdp.contains("config=1288\r\na=control:trackID=1\r\n"));
        // Parses as SDP with retina's parser.
        assert!(sdp.lines().all(|l| l.len() >= 2 && &l[1..2] == "="));
    }

    #[test]
    fn g711_static_payload_types_and_h265() {
        let info = StreamInfo {
            tracks: vec![
                Track::Video(VideoCodec::H265 {
                    vps: Bytes::from_static(&[0x40, 1]),
                    sps: Bytes::from_static(&[0x42, 1]),
                    pps: Bytes::from_static(&[0x44, 1]),
                }),
                Track::Audio(AudioCodec::Pcma {
                    sample_rate: 8000,
                    channels: 1,
                }),
            ],
        };
        let sdp = write(&info, 1, "::1".parse().unwrap(), "x");
        assert!(sdp.contains("IN IP6 ::1"));
        assert!(sdp.contains(
            "a=rtpmap:96 H265/90000\r\na=fmtp:96 sprop-vps=QAE=;sprop-sps=QgE=;sprop-pps=RAE=\r\n"
        ));
        assert!(sdp.contains("m=audio 0 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000/1\r\n"));
    }
}
