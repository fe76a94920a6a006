//! Codec facts of a stream: codec, profile, level and resolution, parsed
//! from the SPS (H.264 with h264-reader; H.265 here), for the admin API,
//! the status page and metric labels.

use serde::Serialize;

use super::bits::{BitReader, OutOfData, rbsp};
use crate::media::{AudioCodec, Track, VideoCodec};

/// Video facts from the parameter sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VideoFacts {
    pub codec: &'static str,
    /// e.g. `Main`, `High`, `Main 10`; empty when the SPS did not parse.
    pub profile: String,
    /// e.g. `4.1`.
    pub level: String,
    pub width: u32,
    pub height: u32,
}

impl VideoFacts {
    /// `1920x1080`, or empty when unknown.
    pub fn resolution(&self) -> String {
        if self.width == 0 {
            String::new()
        } else {
            format!("{}x{}", self.width, self.height)
        }
    }
}

/// Audio facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AudioFacts {
    pub codec: &'static str,
    pub sample_rate: u32,
    pub channels: u16,
}

/// Facts of one track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum TrackFacts {
    Video(VideoFacts),
    Audio(AudioFacts),
    Metadata(MetadataFacts),
}

/// A metadata track's facts: its encoding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetadataFacts {
    pub codec: &'static str,
}

pub fn track(t: &Track) -> TrackFacts {
    match t {
        Track::Video(v) => TrackFacts::Video(video(v)),
        Track::Audio(a) => TrackFacts::Audio(audio(a)),
        Track::Metadata(m) => TrackFacts::Metadata(MetadataFacts {
            codec: m.encoding(),
        }),
    }
}

pub fn audio(a: &AudioCodec) -> AudioFacts {
    AudioFacts {
        codec: a.name(),
        sample_rate: a.sample_rate(),
        channels: a.channels(),
    }
}

pub fn video(v: &VideoCodec) -> VideoFacts {
    match v {
        VideoCodec::H264 { sps, .. } => h264(sps).unwrap_or(VideoFacts {
            codec: "h264",
            ..Default::default()
        }),
        VideoCodec::H265 { sps, .. } => h265(sps).unwrap_or(VideoFacts {
            codec: "h265",
            ..Default::default()
        }),
    }
}

/// Facts from an H.264 SPS NAL unit (with its header byte).
pub fn h264(sps: &[u8]) -> Option<VideoFacts> {
    if sps.len() < 4 {
        return None;
    }
    // The SPS comes from the camera: a panic inside the third-party parser
    // must not take camgate down.
    let parsed = std::panic::catch_unwind(|| {
        let rbsp = h264_reader::rbsp::decode_nal(sps).ok()?;
        h264_reader::nal::sps::SeqParameterSet::from_bits(h264_reader::rbsp::BitReader::new(
            &rbsp[..],
        ))
        .ok()
    });
    let s = parsed.ok().flatten()?;
    let (width, height) = s.pixel_dimensions().ok()?;
    let profile = match s.profile() {
        h264_reader::nal::sps::Profile::Unknown(n) => format!("profile {n}"),
        p => format!("{p:?}"),
    };
    Some(VideoFacts {
        codec: "h264",
        profile,
        level: format!("{}.{}", s.level_idc / 10, s.level_idc % 10),
        width,
        height,
    })
}

/// Facts from an H.265 SPS NAL unit (with its two header bytes),
/// H.265 §7.3.2.2.
pub fn h265(sps: &[u8]) -> Option<VideoFacts> {
    h265_inner(sps.get(2..)?).ok()
}

fn h265_inner(payload: &[u8]) -> Result<VideoFacts, OutOfData> {
    let data = rbsp(payload);
    let mut r = BitReader::new(&data);
    r.skip(4)?; // sps_video_parameter_set_id
    let max_sub_layers_minus1 = r.bits(3)?;
    r.skip(1)?; // temporal_id_nesting
    // profile_tier_level(1, max_sub_layers_minus1)
    r.skip(2 + 1)?; // profile_space, tier
    let profile_idc = r.bits(5)?;
    r.skip(32 + 4 + 43 + 1)?; // compatibility flags, source flags, constraints
    let level_idc = r.bits(8)?;
    let mut sub_profile = [false; 8];
    let mut sub_level = [false; 8];
    for i in 0..max_sub_layers_minus1 as usize {
        sub_profile[i] = r.bit()? == 1;
        sub_level[i] = r.bit()? == 1;
    }
    if max_sub_layers_minus1 > 0 {
        for _ in max_sub_layers_minus1..8 {
            r.skip(2)?;
        }
    }
    for i in 0..max_sub_layers_minus1 as usize {
        if sub_profile[i] {
            r.skip(88)?;
        }
        if sub_level[i] {
            r.skip(8)?;
        }
    }
    r.ue()?; // sps_seq_parameter_set_id
    let chroma_format_idc = r.ue()?;
    if chroma_format_idc == 3 {
        r.skip(1)?;
    }
    let width = r.ue()?;
    let height = r.ue()?;
    let (mut w, mut h) = (width, height);
    if r.bit()? == 1 {
        let (sub_w, sub_h) = match chroma_format_idc {
            1 => (2, 2),
            2 => (2, 1),
            _ => (1, 1),
        };
        let (left, right, top, bottom) = (r.ue()?, r.ue()?, r.ue()?, r.ue()?);
        // Hostile offsets must not overflow: they can only shrink to 0.
        w = w.saturating_sub(left.saturating_add(right).saturating_mul(sub_w));
        h = h.saturating_sub(top.saturating_add(bottom).saturating_mul(sub_h));
    }
    let profile = match profile_idc {
        1 => "Main".to_string(),
        2 => "Main 10".to_string(),
        3 => "Main Still Picture".to_string(),
        4 => "Range Extensions".to_string(),
        n => format!("profile {n}"),
    };
    Ok(VideoFacts {
        codec: "h265",
        profile,
        level: format!("{}.{}", level_idc / 30, level_idc % 30 / 3),
        width: w,
        height: h,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn h265_sps_from_libx265() {
        // 320x240 Main, level 2 (60).
        let sps = hex(
            "42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003210",
        );
        let f = h265(&sps).unwrap();
        assert_eq!(
            (f.codec, f.profile.as_str(), f.width, f.height),
            ("h265", "Main", 320, 240)
        );
        assert_eq!(f.level, "2.0");
    }

    #[test]
    fn h264_sps_of_the_bundled_clip() {
        let clip = crate::camera::clip::builtin().unwrap();
        let f = video(&clip.video);
        assert_eq!(
            (f.codec, f.profile.as_str(), f.width, f.height),
            ("h264", "Main", 1280, 720)
        );
        assert_eq!(f.resolution(), "1280x720");
    }

    /// Found by `fuzz/` (target `video`): conformance-window offsets whose
    /// product with the chroma factor overflowed.
    #[test]
    fn hostile_conformance_window_does_not_overflow() {
        let data = hex(&[
            "010000000000015000800000ff01000000000001530316001000ffffffffffffffffffffffffffff",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "ffffff030000000000015000800000007f000000007f0000000072015303001000ffefffffffff03",
            "0000000000015000800000ff01000000000001530316001000ffffffffffff03000000003a7a0001",
            "5000800000007f000000007f000000",
        ]
        .concat());
        let units = crate::camera::clip::annexb_nals(&data);
        assert!(units.len() > 1);
        for nal in units {
            let _ = h265(nal);
        }
    }

    #[test]
    fn garbage_does_not_panic() {
        for n in 0..80 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 91 % 256) as u8).collect();
            let _ = h264(&junk);
            let _ = h265(&junk);
        }
        assert!(h265(&[0x42, 1]).is_none());
    }
}
