//! The simulated camera's clip: parsing an H.264 Annex B elementary stream
//! into access units and an ADTS stream into raw AAC frames.
//!
//! The bundled clip (`assets/clip.h264`, `assets/clip.aac`, made by
//! `assets/make-clip.sh`) is embedded in the binary and parsed once.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};

use crate::media::{AudioCodec, VideoCodec};
use crate::rtp::h264;

static CLIP_H264: &[u8] = include_bytes!("../../assets/clip.h264");
static CLIP_AAC: &[u8] = include_bytes!("../../assets/clip.aac");
/// Frame rate the bundled clip was encoded at.
pub const CLIP_FPS: u32 = 25;

/// A clip ready to loop.
pub struct Clip {
    pub video: VideoCodec,
    /// Access units: 4-byte-length-prefixed NAL units (parameter sets and
    /// delimiters removed) and whether each is a key frame.
    pub frames: Vec<(Bytes, bool)>,
    pub fps: u32,
    pub audio: Option<(AudioCodec, Vec<Bytes>)>,
    /// In-band parameter-set changes (see [`ParameterChanges`]).
    pub changes: ParameterChanges,
}

impl std::fmt::Debug for Clip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clip")
            .field("video", &self.video.name())
            .field("frames", &self.frames.len())
            .field("fps", &self.fps)
            .field("audio_frames", &self.audio.as_ref().map(|a| a.1.len()))
            .finish()
    }
}

impl Clip {
    /// Loads an H.264 Annex B file (video only) to loop at `fps`.
    pub fn load(path: &std::path::Path, fps: u32) -> Result<Clip, String> {
        let data =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if data.len() > 256 << 20 {
            return Err(format!("{} is larger than 256 MiB", path.display()));
        }
        let (video, frames, changes) = parse_h264_annexb_with_changes(&data)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Clip {
            video,
            frames,
            fps,
            audio: None,
            changes,
        })
    }

    /// Loop length in seconds (the video's duration).
    pub fn duration_secs(&self) -> f64 {
        self.frames.len() as f64 / f64::from(self.fps)
    }
}

/// Why a clip could not be parsed.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error("H.264 stream has no SPS/PPS")]
    NoParameterSets,
    #[error("H.264 stream has no key frame")]
    NoKeyFrame,
    /// Checked like a camera's (`inspect::params`): a clip file is input.
    #[error("H.264 parameter sets in effect at frame {frame}: {err}")]
    BadParameterSets {
        frame: usize,
        #[source]
        err: crate::inspect::params::Error,
    },
    #[error("ADTS stream is malformed at byte {0}")]
    BadAdts(usize),
}

/// The bundled clip, parsed on first use.
pub fn builtin() -> Result<Arc<Clip>, Arc<ClipError>> {
    static CLIP: OnceLock<Result<Arc<Clip>, Arc<ClipError>>> = OnceLock::new();
    CLIP.get_or_init(|| {
        let (video, frames) = parse_h264_annexb(CLIP_H264).map_err(Arc::new)?;
        let (codec, aus) = parse_adts(CLIP_AAC).map_err(Arc::new)?;
        // Keep the audio loop no longer than the video loop, so the two
        // stay in sync across loops (the AAC encoder adds a priming frame).
        let frame_secs = 1024.0 / f64::from(codec.sample_rate());
        let dur = frames.len() as f64 / f64::from(CLIP_FPS);
        let keep = ((dur / frame_secs) + 1e-6).floor() as usize;
        let aus = aus.into_iter().take(keep).collect();
        Ok(Arc::new(Clip {
            video,
            frames,
            fps: CLIP_FPS,
            audio: Some((codec, aus)),
            changes: Vec::new(),
        }))
    })
    .clone()
}

/// Splits an Annex B stream at start codes into NAL units (without the
/// start codes; trailing zero bytes belong to the next start code).
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut start: Option<usize> = None;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                out.push(&data[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start
        && s < data.len()
    {
        out.push(&data[s..]);
    }
    out.retain(|n| !n.is_empty());
    out
}

/// Parses an H.264 Annex B stream into parameters and access units.
///
/// A new access unit starts at a delimiter, at an SPS/PPS/SEI following a
/// picture, or at a slice with `first_mb_in_slice == 0` following a picture
/// (H.264 §7.4.1.2.3).
pub fn parse_h264_annexb(data: &[u8]) -> Result<(VideoCodec, Vec<(Bytes, bool)>), ClipError> {
    parse_h264_annexb_with_changes(data).map(|(v, f, _)| (v, f))
}

/// Where a clip's parameter sets change: (frame index, parameters from that
/// frame on). Empty when the whole clip uses one SPS/PPS; otherwise the
/// first entry is frame 0, so a loop restores the clip's first parameters.
pub type ParameterChanges = Vec<(usize, VideoCodec)>;

/// A parsed clip: its first parameters, its access units (length-prefixed,
/// with the key-frame flag) and where the parameters change.
pub type ParsedClip = (VideoCodec, Vec<(Bytes, bool)>, ParameterChanges);

/// [`parse_h264_annexb`], also reporting in-band parameter-set changes (a
/// clip made by concatenating streams of different resolutions).
pub fn parse_h264_annexb_with_changes(data: &[u8]) -> Result<ParsedClip, ClipError> {
    struct Au<'a> {
        nals: Vec<&'a [u8]>,
        has_vcl: bool,
    }
    let mut sps: Option<&[u8]> = None;
    let mut pps: Option<&[u8]> = None;
    // Frames with the parameter sets in effect for each.
    let mut frames: Frames<'_> = Vec::new();
    let mut cur = Au {
        nals: Vec::new(),
        has_vcl: false,
    };
    type Frames<'a> = Vec<(Bytes, bool, Option<(&'a [u8], &'a [u8])>)>;
    fn flush<'a>(cur: &mut Au<'a>, params: Option<(&'a [u8], &'a [u8])>, frames: &mut Frames<'a>) {
        // Leading non-VCL-only units (e.g. a lone SEI) are not frames.
        if cur.has_vcl {
            let key = cur.nals.iter().any(|n| h264::nal_type(n) == h264::NAL_IDR);
            let len: usize = cur.nals.iter().map(|n| n.len() + 4).sum();
            let mut b = BytesMut::with_capacity(len);
            for n in &cur.nals {
                b.put_u32(n.len() as u32);
                b.put_slice(n);
            }
            frames.push((b.freeze(), key, params));
        }
        cur.nals.clear();
        cur.has_vcl = false;
    }
    for nal in annexb_nals(data) {
        let t = h264::nal_type(nal);
        let is_vcl = (1..=5).contains(&t);
        let starts_au = match t {
            h264::NAL_AUD => true,
            6 | h264::NAL_SPS | h264::NAL_PPS => cur.has_vcl,
            1..=5 => cur.has_vcl && nal.get(1).is_some_and(|b| b & 0x80 != 0),
            _ => false,
        };
        if starts_au {
            flush(&mut cur, sps.zip(pps), &mut frames);
        }
        match t {
            h264::NAL_SPS => sps = Some(nal),
            h264::NAL_PPS => pps = Some(nal),
            h264::NAL_AUD => {}
            _ => cur.nals.push(nal),
        }
        cur.has_vcl |= is_vcl;
    }
    flush(&mut cur, sps.zip(pps), &mut frames);
    // Start the loop at a key frame that has parameter sets.
    let first_key = frames
        .iter()
        .position(|(_, k, p)| *k && p.is_some())
        .ok_or(if sps.zip(pps).is_none() {
            ClipError::NoParameterSets
        } else {
            ClipError::NoKeyFrame
        })?;
    frames.drain(..first_key);
    let codec = |frame: usize, (sps, pps): (&[u8], &[u8])| {
        let raw = VideoCodec::H264 {
            sps: Bytes::copy_from_slice(sps),
            pps: Bytes::copy_from_slice(pps),
        };
        crate::inspect::params::clean(&raw)
            .map(|c| c.codec)
            .map_err(|err| ClipError::BadParameterSets { frame, err })
    };
    let mut changes: ParameterChanges = Vec::new();
    let mut last: Option<(&[u8], &[u8])> = None;
    for (i, (_, _, p)) in frames.iter().enumerate() {
        if let Some(p) = *p
            && last != Some(p)
        {
            changes.push((i, codec(i, p)?));
            last = Some(p);
        }
    }
    let first = changes
        .first()
        .map(|(_, c)| c.clone())
        .ok_or(ClipError::NoParameterSets)?;
    if changes.len() == 1 {
        changes.clear();
    }
    let frames = frames.into_iter().map(|(b, k, _)| (b, k)).collect();
    Ok((first, frames, changes))
}

/// AAC sampling frequencies by ADTS index (ISO/IEC 14496-3 table 1.18).
const AAC_RATES: [u32; 13] = [
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];

/// Parses an ADTS stream into the AudioSpecificConfig and raw AAC frames.
pub fn parse_adts(data: &[u8]) -> Result<(AudioCodec, Vec<Bytes>), ClipError> {
    let mut i = 0;
    let mut out = Vec::new();
    let mut codec = None;
    while i < data.len() {
        let h = data.get(i..i + 7).ok_or(ClipError::BadAdts(i))?;
        if h[0] != 0xff || h[1] & 0xf0 != 0xf0 {
            return Err(ClipError::BadAdts(i));
        }
        let protection_absent = h[1] & 1 == 1;
        let profile = (h[2] >> 6) & 3;
        let rate_idx = (h[2] >> 2) & 0xf;
        let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
        let frame_len =
            ((usize::from(h[3]) & 3) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5);
        let hdr_len = if protection_absent { 7 } else { 9 };
        let rate = *AAC_RATES
            .get(usize::from(rate_idx))
            .ok_or(ClipError::BadAdts(i))?;
        if frame_len <= hdr_len || channels == 0 {
            return Err(ClipError::BadAdts(i));
        }
        let payload = data
            .get(i + hdr_len..i + frame_len)
            .ok_or(ClipError::BadAdts(i))?;
        if codec.is_none() {
            // AudioSpecificConfig: object type (profile + 1), rate index, channels.
            let aot = u16::from(profile) + 1;
            let asc = (aot << 11) | (u16::from(rate_idx) << 7) | (u16::from(channels) << 3);
            codec = Some(AudioCodec::Aac {
                config: Bytes::copy_from_slice(&asc.to_be_bytes()),
                sample_rate: rate,
                channels: u16::from(channels),
            });
        }
        out.push(Bytes::copy_from_slice(payload));
        i += frame_len;
    }
    Ok((codec.ok_or(ClipError::BadAdts(0))?, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_clip_parses() {
        let clip = builtin().unwrap();
        assert_eq!(clip.frames.len(), 100, "4 s at 25 fps");
        assert!(clip.frames[0].1, "starts at a key frame");
        assert_eq!(clip.frames.iter().filter(|f| f.1).count(), 2, "2 s GOP");
        let (codec, aus) = clip.audio.as_ref().unwrap();
        assert_eq!(codec.sample_rate(), 32000);
        assert_eq!(codec.channels(), 1);
        assert_eq!(aus.len(), 125);
        let AudioCodec::Aac { config, .. } = codec else {
            panic!()
        };
        assert_eq!(&config[..], &[0x12, 0x88]); // AAC-LC, 32 kHz, mono
        for (f, _) in &clip.frames {
            let nals = crate::rtp::length_prefixed_nals(f).unwrap();
            assert!(nals.iter().all(|n| !matches!(h264::nal_type(n), 7..=9)));
        }
    }

    #[test]
    fn annexb_split() {
        let d = [0, 0, 0, 1, 0x67, 1, 0, 0, 1, 0x68, 2, 0, 0, 0, 1, 0x65, 3];
        assert_eq!(
            annexb_nals(&d),
            vec![&[0x67, 1][..], &[0x68, 2][..], &[0x65, 3][..]]
        );
        assert!(annexb_nals(&[1, 2, 3]).is_empty());
        assert!(annexb_nals(&[]).is_empty());
    }

    #[test]
    fn parameter_sets_are_checked_and_cleaned() {
        let idr = [0, 0, 0, 1, 0x65, 0x88, 0x84, 0x00, 0x10];
        // An SPS slot holding garbage of the right type is refused...
        let mut data = vec![0, 0, 0, 1, 0x67, 0x42];
        data.extend_from_slice(&[0, 0, 0, 1, 0x68, 0xce, 0x38, 0x80]);
        data.extend_from_slice(&idr);
        let e = parse_h264_annexb(&data).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("H.264 parameter sets in effect at frame 0: H.264 SPS"),
            "{e}"
        );
        // ...and the bundled clip's SPS with bytes after its syntax comes
        // back without them.
        let clip = builtin().unwrap();
        let VideoCodec::H264 { sps, pps } = &clip.video else {
            panic!()
        };
        let mut data = vec![0, 0, 0, 1];
        data.extend_from_slice(sps);
        data.extend_from_slice(&[0x5a, 0x5a]);
        data.extend_from_slice(&[0, 0, 0, 1]);
        data.extend_from_slice(pps);
        data.extend_from_slice(&idr);
        let (video, _) = parse_h264_annexb(&data).unwrap();
        assert_eq!(video, clip.video);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(parse_h264_annexb(&[0, 0, 1, 0x65, 0x88]).is_err());
        assert!(parse_adts(&[0xff]).is_err());
        assert!(parse_adts(&[0xff, 0xf1, 0x50, 0x80, 0x00, 0x1f, 0xfc]).is_err());
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let _ = parse_h264_annexb(&junk);
            let _ = parse_adts(&junk);
        }
    }
}
