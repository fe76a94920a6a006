//! The middle of the data path: what a stream is (tracks and codec
//! parameters), frames as sources deliver them, the publisher that gives
//! each stream camgate's own RTP timeline and packetizes every frame once,
//! and the per-stream hub that fans those RTP frames out to recorder
//! sessions.
//!
//! Sources (`camera::session`, `camera::simulated`) only write here, through a
//! [`publisher::Publisher`]; the RTSP server only reads, through
//! [`hub::Subscriber`]. Nothing in this module does network I/O.

pub mod hub;
pub mod publisher;

use bytes::Bytes;

/// Video codec parameters (the parameter sets as NAL units, without start
/// codes or length prefixes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoCodec {
    H264 { sps: Bytes, pps: Bytes },
    H265 { vps: Bytes, sps: Bytes, pps: Bytes },
}

impl VideoCodec {
    pub fn name(&self) -> &'static str {
        match self {
            VideoCodec::H264 { .. } => "h264",
            VideoCodec::H265 { .. } => "h265",
        }
    }
}

/// Audio codec parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC with its AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1).
    Aac {
        config: Bytes,
        sample_rate: u32,
        channels: u16,
    },
    /// G.711 µ-law.
    Pcmu { sample_rate: u32, channels: u16 },
    /// G.711 A-law.
    Pcma { sample_rate: u32, channels: u16 },
}

impl AudioCodec {
    pub fn name(&self) -> &'static str {
        match self {
            AudioCodec::Aac { .. } => "aac",
            AudioCodec::Pcmu { .. } => "pcmu",
            AudioCodec::Pcma { .. } => "pcma",
        }
    }

    pub fn sample_rate(&self) -> u32 {
        match self {
            AudioCodec::Aac { sample_rate, .. }
            | AudioCodec::Pcmu { sample_rate, .. }
            | AudioCodec::Pcma { sample_rate, .. } => *sample_rate,
        }
    }

    pub fn channels(&self) -> u16 {
        match self {
            AudioCodec::Aac { channels, .. }
            | AudioCodec::Pcmu { channels, .. }
            | AudioCodec::Pcma { channels, .. } => *channels,
        }
    }
}

/// An ONVIF metadata stream, by its RTP encoding name (ONVIF Streaming
/// Specification §5.1.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataCodec {
    Onvif,
    OnvifGzip,
    OnvifExi,
    OnvifExiExt,
}

impl MetadataCodec {
    /// The encoding name in `a=rtpmap`.
    pub fn encoding(self) -> &'static str {
        match self {
            MetadataCodec::Onvif => "vnd.onvif.metadata",
            MetadataCodec::OnvifGzip => "vnd.onvif.metadata.gzip",
            MetadataCodec::OnvifExi => "vnd.onvif.metadata.exi.onvif",
            MetadataCodec::OnvifExiExt => "vnd.onvif.metadata.exi.ext",
        }
    }

    /// From an encoding name (case-insensitive).
    pub fn from_encoding(name: &str) -> Option<MetadataCodec> {
        [
            MetadataCodec::Onvif,
            MetadataCodec::OnvifGzip,
            MetadataCodec::OnvifExi,
            MetadataCodec::OnvifExiExt,
        ]
        .into_iter()
        .find(|c| c.encoding().eq_ignore_ascii_case(name))
    }
}

/// One track of a stream as camgate re-emits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Track {
    Video(VideoCodec),
    Audio(AudioCodec),
    /// ONVIF metadata (events, analytics), relayed with `metadata = "pass"`.
    Metadata(MetadataCodec),
}

impl Track {
    /// RTP clock rate (RFC 6184/7798: 90 kHz for video; audio at its rate).
    pub fn clock_rate(&self) -> u32 {
        match self {
            Track::Video(_) | Track::Metadata(_) => 90_000,
            Track::Audio(a) => a.sample_rate(),
        }
    }

    pub fn is_video(&self) -> bool {
        matches!(self, Track::Video(_))
    }

    /// Whether a recorder set up for `self` can keep playing `other` without
    /// a new DESCRIBE: same codec and, for audio, the same format. Video
    /// parameter sets may differ (they are repeated in-band).
    pub fn compatible(&self, other: &Track) -> bool {
        match (self, other) {
            (Track::Video(a), Track::Video(b)) => a.name() == b.name(),
            (Track::Audio(a), Track::Audio(b)) => a == b,
            (Track::Metadata(a), Track::Metadata(b)) => a == b,
            _ => false,
        }
    }
}

/// The tracks of a stream: what camgate's SDP describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamInfo {
    pub tracks: Vec<Track>,
}

impl StreamInfo {
    /// Whether recorders of `self` can continue on `other`.
    pub fn compatible(&self, other: &StreamInfo) -> bool {
        self.tracks.len() == other.tracks.len()
            && self
                .tracks
                .iter()
                .zip(&other.tracks)
                .all(|(a, b)| a.compatible(b))
    }

    /// Index of the first video track, if any.
    pub fn video_track(&self) -> Option<usize> {
        self.tracks.iter().position(Track::is_video)
    }
}

/// A frame as a source delivers it, before camgate packetizes it.
#[derive(Debug, Clone)]
pub struct SourceFrame {
    /// Index into [`StreamInfo::tracks`].
    pub track: usize,
    /// Presentation time in the track's clock, monotonic within one source
    /// session (it restarts when the camera reconnects).
    pub pts: i64,
    /// A video frame a decoder can start from.
    pub key: bool,
    /// Video: NAL units with 4-byte big-endian length prefixes. Audio: one
    /// AAC access unit, or G.711 samples. Metadata: one XML document.
    pub data: Bytes,
}
