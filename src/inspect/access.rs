//! Where a decoder can start: classifies each video access unit from the
//! NAL unit types it actually holds, never from what the depacketizer
//! guessed.
//!
//! retina calls an access unit a random access point unless it sees a
//! non-IDR slice, so one holding only an access unit delimiter or filler
//! would count as a key frame (and get the parameter sets prepended for
//! every recorder), while an H.265 CRA (x265's default open GOP) would not,
//! leaving a joining recorder to start at the stream's first IDR, minutes in
//! the past. Here:
//!
//! - **H.265** (ITU-T H.265 §3.69, §7.4.2.2, table 7-1): a picture whose
//!   VCL NAL units are IRAP (BLA 16-18, IDR 19-20, CRA 21) is a key frame.
//!   RASL pictures (8, 9) reference pictures before their IRAP: a decoder
//!   that starts at that IRAP cannot decode them (§8.1.3 NoRaslOutputFlag),
//!   so they are [`Picture::Leading`], to be dropped by whoever starts there.
//!   RADL pictures (6, 7) are leading too but decodable from the IRAP
//!   ([`Picture::DecodableLeading`]): delivered, and they do not end the
//!   leading pictures (RASL and RADL may interleave, §7.4.2.2).
//! - **H.264** (ITU-T H.264 §7.4.1.2.4, D.2.8): an IDR picture (type 5) is a
//!   key frame; so is an I picture carrying a recovery point SEI with
//!   `recovery_frame_cnt = 0` (x264's `open-gop`), when the SPS uses
//!   `pic_order_cnt_type` 0 or 2, which tell the pictures before it in output
//!   order: with type 0, the pictures that follow it in decoding order with a
//!   lower picture order count until the first with a higher one are its
//!   leading pictures, which may reference the previous GOP; with type 2
//!   output order is decoding order and there are none. With type 1 only IDR
//!   pictures are key frames.
//! - An access unit with no slice at all is [`Picture::None`]: not a frame.
//!
//! Pure code; a few header bytes per NAL unit on the hot path, an SEI
//! walk only for H.264 I pictures without IDR.

use super::bits::{self, BitReader, OutOfData};
use crate::media::VideoCodec;

/// What one access unit is to a decoder starting somewhere in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Picture {
    /// A random access point: decoding can start here (with the parameter
    /// sets).
    Key,
    /// A leading picture of the latest key frame that needs pictures from
    /// before it: undecodable for a decoder that started at that key frame.
    Leading,
    /// A leading picture that references nothing before its key frame
    /// (H.265 RADL): decodable by anyone, and more [`Picture::Leading`]
    /// ones may follow it.
    DecodableLeading,
    /// Any other picture.
    Delta,
    /// No slice: nothing a decoder would show.
    None,
}

/// The H.264 SPS fields a slice header's picture order count needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PocSyntax {
    separate_colour_plane: bool,
    log2_max_frame_num: u32,
    frame_mbs_only: bool,
    /// `log2_max_pic_order_cnt_lsb` for type 0; `None` for type 2 (output
    /// order is decoding order).
    log2_max_poc_lsb: Option<u32>,
}

/// Per-track classifier (H.264 open GOPs need the key frame's picture order
/// count to find its leading pictures).
#[derive(Debug, Clone)]
pub struct Classifier {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    H265,
    H264 {
        /// `None`: recovery points are not used as key frames.
        poc: Option<PocSyntax>,
        /// The picture order count (lsb) of the latest recovery point
        /// while its leading pictures may still follow.
        leading_before: Option<u32>,
    },
}

impl Classifier {
    pub fn new(codec: &VideoCodec) -> Classifier {
        let kind = match codec {
            VideoCodec::H265 { .. } => Kind::H265,
            VideoCodec::H264 { sps, .. } => Kind::H264 {
                poc: h264_poc_syntax(sps),
                leading_before: None,
            },
        };
        Classifier { kind }
    }

    /// Classifies one access unit (NAL units without start codes).
    pub fn classify(&mut self, nals: &[&[u8]]) -> Picture {
        match &mut self.kind {
            Kind::H265 => h265(nals),
            Kind::H264 {
                poc,
                leading_before,
            } => h264(nals, *poc, leading_before),
        }
    }
}

fn h265(nals: &[&[u8]]) -> Picture {
    // The first VCL unit decides: every VCL unit of a picture has the same
    // type for IRAP and RASL pictures (§7.4.2.2).
    for nal in nals {
        let Some(&h) = nal.first() else { continue };
        let t = (h >> 1) & 0x3f;
        if nal.len() < 3 || t > 31 {
            continue;
        }
        return match t {
            16..=21 => Picture::Key,
            8 | 9 => Picture::Leading,
            6 | 7 => Picture::DecodableLeading,
            _ => Picture::Delta,
        };
    }
    Picture::None
}

fn h264(nals: &[&[u8]], poc: Option<PocSyntax>, leading_before: &mut Option<u32>) -> Picture {
    let mut slice = None;
    let mut has_sei = false;
    for nal in nals {
        // A slice is a header byte and then at least its slice header.
        let Some(&h) = nal.first() else { continue };
        match h & 0x1f {
            1 | 2 | 5 if nal.len() < 2 => {}
            5 => {
                *leading_before = None;
                return Picture::Key;
            }
            1 | 2 if slice.is_none() => slice = Some(*nal),
            6 => has_sei = true,
            _ => {}
        }
    }
    let Some(slice) = slice else {
        return Picture::None;
    };
    let Some(poc) = poc else {
        return Picture::Delta;
    };
    // Only a recovery point makes this a key frame, and only a key frame
    // whose leading pictures may still follow makes it leading: most
    // pictures need neither the SEI nor the slice header parsed.
    let recovery = has_sei
        && nals
            .iter()
            .filter(|n| n.first().is_some_and(|h| h & 0x1f == 6))
            .any(|n| recovery_point_now(n));
    if !recovery && leading_before.is_none() {
        return Picture::Delta;
    }
    let Ok(header) = slice_header(slice, poc) else {
        return Picture::Delta;
    };
    if recovery && header.intra {
        *leading_before = header.poc_lsb;
        return Picture::Key;
    }
    if let (Some(key), Some(this), Some(log2)) =
        (*leading_before, header.poc_lsb, poc.log2_max_poc_lsb)
    {
        let max = 1u32 << log2;
        let ahead = this.wrapping_sub(key) & (max - 1);
        if ahead >= max / 2 {
            return Picture::Leading;
        }
        // The first picture after the key frame in output order: every
        // leading picture came before it in decoding order.
        *leading_before = None;
    }
    Picture::Delta
}

/// Whether an SEI NAL unit holds a recovery point with
/// `recovery_frame_cnt = 0` (H.264 D.1.8: the picture itself is exact).
fn recovery_point_now(nal: &[u8]) -> bool {
    let rbsp = bits::rbsp_cow(nal.get(1..).unwrap_or_default());
    let mut i = 0;
    // sei_message()s until the trailing bits (§7.3.2.3.1).
    while i < rbsp.len() && !(rbsp[i] == 0x80 && i + 1 == rbsp.len()) {
        let (Some(payload_type), Some(size)) = (ff_coded(&rbsp, &mut i), ff_coded(&rbsp, &mut i))
        else {
            return false;
        };
        let Some(end) = i.checked_add(size as usize).filter(|&e| e <= rbsp.len()) else {
            return false;
        };
        if payload_type == 6 {
            return BitReader::new(&rbsp[i..end]).ue() == Ok(0);
        }
        i = end;
    }
    false
}

/// `0xFF`-run coded value (SEI payload type or size).
fn ff_coded(b: &[u8], i: &mut usize) -> Option<u32> {
    let mut v = 0u32;
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        v = v.checked_add(u32::from(byte))?;
        if byte != 0xff {
            return Some(v);
        }
    }
}

struct SliceHeader {
    intra: bool,
    poc_lsb: Option<u32>,
}

/// The start of an H.264 slice header (§7.3.3) up to `pic_order_cnt_lsb`.
fn slice_header(nal: &[u8], poc: PocSyntax) -> Result<SliceHeader, OutOfData> {
    // A slice header's first fields fit in a few dozen bytes.
    let head = nal.get(1..nal.len().min(64)).ok_or(OutOfData)?;
    let rbsp = bits::rbsp_cow(head);
    let mut r = BitReader::new(&rbsp);
    let _first_mb = r.ue()?;
    let slice_type = r.ue()?;
    let _pps_id = r.ue()?;
    if poc.separate_colour_plane {
        r.bits(2)?;
    }
    r.bits(poc.log2_max_frame_num)?;
    if !poc.frame_mbs_only && r.bit()? == 1 {
        r.bit()?;
    }
    let poc_lsb = match poc.log2_max_poc_lsb {
        Some(n) => Some(r.bits(n)?),
        None => None,
    };
    Ok(SliceHeader {
        // I (2, 7) and SI (4, 9) slices.
        intra: matches!(slice_type, 2 | 4 | 7 | 9),
        poc_lsb,
    })
}

/// Reads the POC-related SPS fields; `None` where recovery points cannot be
/// used (picture order count type 1, or an SPS that does not parse).
fn h264_poc_syntax(sps: &[u8]) -> Option<PocSyntax> {
    use h264_reader::nal::sps::{PicOrderCntType, SeqParameterSet};
    if sps.len() < 4 {
        return None;
    }
    // The SPS comes from the camera: a panic inside the third-party parser
    // must not take camgate down.
    let parsed = std::panic::catch_unwind(|| {
        let rbsp = h264_reader::rbsp::decode_nal(sps).ok()?;
        SeqParameterSet::from_bits(h264_reader::rbsp::BitReader::new(&rbsp[..])).ok()
    });
    let s = parsed.ok().flatten()?;
    let log2_max_poc_lsb = match s.pic_order_cnt {
        PicOrderCntType::TypeZero {
            log2_max_pic_order_cnt_lsb_minus4,
        } => Some(u32::from(log2_max_pic_order_cnt_lsb_minus4) + 4),
        PicOrderCntType::TypeTwo => None,
        PicOrderCntType::TypeOne { .. } => return None,
    };
    Some(PocSyntax {
        separate_colour_plane: s.chroma_info.separate_colour_plane_flag,
        log2_max_frame_num: u32::from(s.log2_max_frame_num_minus4) + 4,
        frame_mbs_only: matches!(
            s.frame_mbs_flags,
            h264_reader::nal::sps::FrameMbsFlags::Frames
        ),
        log2_max_poc_lsb,
    })
}

#[cfg(test)]
mod tests;
