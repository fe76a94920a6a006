//! The parameter sets a camera supplies (SDP `sprop-*` or in-band, as
//! retina extracts them), checked before camgate announces them in its SDP
//! and prepends them to every key frame for every recorder: each must be a
//! NAL unit of its slot's type with a well-formed header, within a size cap,
//! and it leaves here without trailing bytes.
//!
//! Pure code on one [`VideoCodec`]: [`clean`] returns the cleaned codec or
//! an [`Error`] naming the slot and what was wrong. Parameter sets inside
//! access units are not this module's: the packetizers drop them (camgate
//! sends these instead) and the sanitizer caps them with the same limits.
//!
//! **Caps.** A camera's parameter sets are tens of bytes (a 1080p H.264
//! High SPS with VUI and HRD is about 30; x265's SPS about 50). What makes
//! them larger is optional syntax cameras do not use, and the caps leave
//! room for it:
//! - H.264 SPS and PPS ([`H264_MAX`], 1 KiB): all twelve 4:4:4 scaling
//!   lists (480 coefficients) coded with typical deltas are a few hundred
//!   bytes. What exceeds 1 KiB is syntax at its theoretical worst (a
//!   255-entry picture-order-count cycle of 32-bit offsets, 32 CPBs of
//!   32-bit rates in both HRDs, scaling deltas alternating ±128, a PPS slice
//!   group map of 8,000 macroblocks), which no encoder writes.
//! - H.265 VPS, SPS and PPS ([`H265_MAX`], 4 KiB): H.265 adds 32x32 scaling
//!   lists (up to 1,248 coefficients), up to 64 short-term reference picture
//!   sets, per-sub-layer HRD parameters (7 sub-layers of 32 CPBs), tile
//!   layouts and range/SCC extensions, so its syntax can legitimately grow
//!   past 1 KiB; 4 KiB still keeps the SDP camgate writes (three of them in
//!   Base64) within a few KiB, and far from the 65,535 bytes past which
//!   retina's own H.265 code panics.
//!
//! **Trailing bytes.** Trailing zero bytes (Annex B's `trailing_zero_8bits`
//! or padding, which a NAL unit must not end with, §7.4.1) are removed from
//! every parameter set. An H.264 SPS is parsed to its end (§7.3.2.1.1 with
//! the VUI of §E.1.1), so data a camera appends after its syntax (retina
//! issue 102 shows a camera doing so) is cut and `rbsp_trailing_bits`
//! rewritten. The PPS and the H.265 sets end in `more_rbsp_data()` loops or
//! extension data whose end is, by definition, the last 1 bit: there the
//! data after the stop bit is not determinable from the syntax, and only the
//! zero bytes go. Emulation prevention is rewritten canonically.

use std::fmt;

use bytes::Bytes;

use super::bits::{self, BitReader, OutOfData};
use crate::media::VideoCodec;

/// Largest H.264 SPS or PPS accepted, NAL header included.
pub const H264_MAX: usize = 1024;
/// Largest H.265 VPS, SPS or PPS accepted, NAL header included.
pub const H265_MAX: usize = 4096;

/// Which parameter set of a [`VideoCodec`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    H264Sps,
    H264Pps,
    H265Vps,
    H265Sps,
    H265Pps,
}

impl Slot {
    /// The NAL unit type the slot holds (H.264 / H.265 table 7-1).
    pub fn nal_type(self) -> u8 {
        match self {
            Slot::H264Sps => 7,
            Slot::H264Pps => 8,
            Slot::H265Vps => 32,
            Slot::H265Sps => 33,
            Slot::H265Pps => 34,
        }
    }

    /// Largest accepted size in bytes, NAL header included.
    pub fn cap(self) -> usize {
        match self {
            Slot::H264Sps | Slot::H264Pps => H264_MAX,
            Slot::H265Vps | Slot::H265Sps | Slot::H265Pps => H265_MAX,
        }
    }

    fn is_h264(self) -> bool {
        matches!(self, Slot::H264Sps | Slot::H264Pps)
    }

    fn header_len(self) -> usize {
        if self.is_h264() { 1 } else { 2 }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::H264Sps => "H.264 SPS",
            Slot::H264Pps => "H.264 PPS",
            Slot::H265Vps => "H.265 VPS",
            Slot::H265Sps => "H.265 SPS",
            Slot::H265Pps => "H.265 PPS",
        })
    }
}

/// Why a parameter set was refused. `head` is the unit's first bytes in
/// hex, to find it in a capture.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{slot} is empty")]
    Empty { slot: Slot },
    #[error("{slot} is {len} bytes, over the {cap}-byte cap")]
    TooLarge { slot: Slot, len: usize, cap: usize },
    #[error("{slot} slot holds NAL unit type {found}, not {expected}: {head}")]
    WrongType {
        slot: Slot,
        found: u8,
        expected: u8,
        head: String,
    },
    #[error("{slot} has a malformed NAL header ({what}): {head}")]
    BadHeader {
        slot: Slot,
        what: &'static str,
        head: String,
    },
    #[error("{slot} has nothing but zero bytes after its header: {head}")]
    NoPayload { slot: Slot, head: String },
    #[error("{slot} ends inside {field}: {head}")]
    Truncated {
        slot: Slot,
        field: &'static str,
        head: String,
    },
    #[error("{slot} has {field} = {value}, out of range: {head}")]
    OutOfRange {
        slot: Slot,
        field: &'static str,
        value: i64,
        head: String,
    },
}

/// A codec whose parameter sets passed, and how many bytes cleaning
/// removed from them (trailing bytes; emulation prevention rewritten).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    pub codec: VideoCodec,
    pub trimmed_bytes: usize,
}

/// Checks and cleans every parameter set of `codec`.
pub fn clean(codec: &VideoCodec) -> Result<Cleaned, Error> {
    let mut trimmed = 0;
    let mut unit = |slot: Slot, nal: &Bytes| -> Result<Bytes, Error> {
        let out = clean_unit(slot, nal)?;
        trimmed += nal.len().saturating_sub(out.len());
        Ok(out)
    };
    let codec = match codec {
        VideoCodec::H264 { sps, pps } => VideoCodec::H264 {
            sps: unit(Slot::H264Sps, sps)?,
            pps: unit(Slot::H264Pps, pps)?,
        },
        VideoCodec::H265 { vps, sps, pps } => VideoCodec::H265 {
            vps: unit(Slot::H265Vps, vps)?,
            sps: unit(Slot::H265Sps, sps)?,
            pps: unit(Slot::H265Pps, pps)?,
        },
    };
    Ok(Cleaned {
        codec,
        trimmed_bytes: trimmed,
    })
}

/// Up to 16 bytes in hex, for error messages.
fn head(nal: &[u8]) -> String {
    let mut s: Vec<String> = nal.iter().take(16).map(|b| format!("{b:02x}")).collect();
    if nal.len() > 16 {
        s.push(format!("... ({} bytes)", nal.len()));
    }
    s.join(" ")
}

/// One parameter set: header checks, cap, trailing bytes.
fn clean_unit(slot: Slot, nal: &Bytes) -> Result<Bytes, Error> {
    if nal.is_empty() {
        return Err(Error::Empty { slot });
    }
    if nal.len() > slot.cap() {
        return Err(Error::TooLarge {
            slot,
            len: nal.len(),
            cap: slot.cap(),
        });
    }
    let h = slot.header_len();
    let bad = |what: &'static str| Error::BadHeader {
        slot,
        what,
        head: head(nal),
    };
    let Some(header) = nal.get(..h) else {
        return Err(bad("shorter than the header"));
    };
    if header[0] & 0x80 != 0 {
        return Err(bad("forbidden_zero_bit set"));
    }
    let found = if slot.is_h264() {
        header[0] & 0x1f
    } else {
        (header[0] >> 1) & 0x3f
    };
    if found != slot.nal_type() {
        return Err(Error::WrongType {
            slot,
            found,
            expected: slot.nal_type(),
            head: head(nal),
        });
    }
    if !slot.is_h264() {
        // §7.4.2.2: a single-layer stream's units have nuh_layer_id 0;
        // nuh_temporal_id_plus1 is never 0, and 1 for a VPS and an SPS.
        let layer = ((header[0] & 1) << 5) | (header[1] >> 3);
        let tid_plus1 = header[1] & 7;
        if layer != 0 {
            return Err(bad("nuh_layer_id is not 0"));
        }
        if tid_plus1 == 0 || (slot != Slot::H265Pps && tid_plus1 != 1) {
            return Err(bad("nuh_temporal_id_plus1 out of range"));
        }
    }
    let mut rbsp = bits::rbsp(&nal[h..]);
    while rbsp.last() == Some(&0) {
        rbsp.pop();
    }
    if rbsp.is_empty() {
        return Err(Error::NoPayload {
            slot,
            head: head(nal),
        });
    }
    if slot == Slot::H264Sps {
        let end = h264_sps_end(&rbsp).map_err(|e| match e {
            SpsError::Truncated(field) => Error::Truncated {
                slot,
                field,
                head: head(nal),
            },
            SpsError::OutOfRange(field, value) => Error::OutOfRange {
                slot,
                field,
                value,
                head: head(nal),
            },
        })?;
        rbsp = with_trailing_bits(&rbsp, end);
    }
    let mut out = Vec::with_capacity(nal.len());
    out.extend_from_slice(header);
    bits::escape_into(&rbsp, &mut out);
    if out[..] == nal[..] {
        Ok(nal.clone())
    } else {
        Ok(Bytes::from(out))
    }
}

/// The first `end` bits of `rbsp` (`end <= 8 * rbsp.len()`), then
/// `rbsp_trailing_bits` (a 1, zeros to the byte boundary).
fn with_trailing_bits(rbsp: &[u8], end: usize) -> Vec<u8> {
    let (whole, used) = (end / 8, end % 8);
    let mut out = rbsp.get(..whole).unwrap_or(rbsp).to_vec();
    let partial = match rbsp.get(whole) {
        Some(b) if used > 0 => b & (0xffu8 << (8 - used)),
        _ => 0,
    };
    out.push(partial | (0x80 >> used));
    out
}

/// Why an SPS did not parse.
enum SpsError {
    Truncated(&'static str),
    OutOfRange(&'static str, i64),
}

/// Reads syntax elements, naming the one that ran out of data.
struct Sps<'a> {
    r: BitReader<'a>,
}

impl Sps<'_> {
    fn u(&mut self, n: u32, field: &'static str) -> Result<u32, SpsError> {
        self.r
            .bits(n)
            .map_err(|OutOfData| SpsError::Truncated(field))
    }

    fn flag(&mut self, field: &'static str) -> Result<bool, SpsError> {
        Ok(self.u(1, field)? == 1)
    }

    /// ue(v), at most `max`.
    fn ue(&mut self, field: &'static str, max: u32) -> Result<u32, SpsError> {
        let v = self
            .r
            .ue()
            .map_err(|OutOfData| SpsError::Truncated(field))?;
        if v > max {
            return Err(SpsError::OutOfRange(field, i64::from(v)));
        }
        Ok(v)
    }

    fn se(&mut self, field: &'static str) -> Result<i64, SpsError> {
        self.r.se().map_err(|OutOfData| SpsError::Truncated(field))
    }

    /// scaling_list() of §7.3.2.1.1.1.
    fn scaling_list(&mut self, size: usize) -> Result<(), SpsError> {
        let (mut last, mut next) = (8i64, 8i64);
        for _ in 0..size {
            if next != 0 {
                let delta = self.se("delta_scale")?;
                if !(-128..=127).contains(&delta) {
                    return Err(SpsError::OutOfRange("delta_scale", delta));
                }
                next = (last + delta + 256) % 256;
            }
            if next != 0 {
                last = next;
            }
        }
        Ok(())
    }

    /// hrd_parameters() of §E.1.2.
    fn hrd(&mut self) -> Result<(), SpsError> {
        let cpb_cnt = self.ue("cpb_cnt_minus1", 31)? + 1;
        self.u(8, "bit_rate_scale, cpb_size_scale")?;
        for _ in 0..cpb_cnt {
            self.ue("bit_rate_value_minus1", u32::MAX)?;
            self.ue("cpb_size_value_minus1", u32::MAX)?;
            self.flag("cbr_flag")?;
        }
        self.u(20, "hrd delay lengths")?;
        Ok(())
    }

    /// vui_parameters() of §E.1.1.
    fn vui(&mut self) -> Result<(), SpsError> {
        if self.flag("aspect_ratio_info_present_flag")? && self.u(8, "aspect_ratio_idc")? == 255 {
            self.u(32, "sar_width, sar_height")?;
        }
        if self.flag("overscan_info_present_flag")? {
            self.flag("overscan_appropriate_flag")?;
        }
        if self.flag("video_signal_type_present_flag")? {
            self.u(4, "video_format, video_full_range_flag")?;
            if self.flag("colour_description_present_flag")? {
                self.u(24, "colour description")?;
            }
        }
        if self.flag("chroma_loc_info_present_flag")? {
            self.ue("chroma_sample_loc_type_top_field", 5)?;
            self.ue("chroma_sample_loc_type_bottom_field", 5)?;
        }
        if self.flag("timing_info_present_flag")? {
            self.u(32, "num_units_in_tick")?;
            self.u(32, "time_scale")?;
            self.flag("fixed_frame_rate_flag")?;
        }
        let nal_hrd = self.flag("nal_hrd_parameters_present_flag")?;
        if nal_hrd {
            self.hrd()?;
        }
        let vcl_hrd = self.flag("vcl_hrd_parameters_present_flag")?;
        if vcl_hrd {
            self.hrd()?;
        }
        if nal_hrd || vcl_hrd {
            self.flag("low_delay_hrd_flag")?;
        }
        self.flag("pic_struct_present_flag")?;
        if self.flag("bitstream_restriction_flag")? {
            self.flag("motion_vectors_over_pic_boundaries_flag")?;
            for field in [
                "max_bytes_per_pic_denom",
                "max_bits_per_mb_denom",
                "log2_max_mv_length_horizontal",
                "log2_max_mv_length_vertical",
                "max_num_reorder_frames",
                "max_dec_frame_buffering",
            ] {
                self.ue(field, u32::MAX)?;
            }
        }
        Ok(())
    }
}

/// Where an H.264 SPS's syntax ends, in bits into its RBSP: where its
/// `rbsp_stop_one_bit` belongs (§7.3.2.1.1). Ranges are checked where they
/// bound a loop or the spec bounds a field tightly.
fn h264_sps_end(rbsp: &[u8]) -> Result<usize, SpsError> {
    let mut s = Sps {
        r: BitReader::new(rbsp),
    };
    let profile_idc = s.u(8, "profile_idc")?;
    s.u(16, "constraint flags, level_idc")?;
    s.ue("seq_parameter_set_id", 31)?;
    // The profiles whose SPS has chroma and bit-depth fields.
    if matches!(
        profile_idc,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        let chroma_format_idc = s.ue("chroma_format_idc", 3)?;
        if chroma_format_idc == 3 {
            s.flag("separate_colour_plane_flag")?;
        }
        s.ue("bit_depth_luma_minus8", 6)?;
        s.ue("bit_depth_chroma_minus8", 6)?;
        s.flag("qpprime_y_zero_transform_bypass_flag")?;
        if s.flag("seq_scaling_matrix_present_flag")? {
            let lists = if chroma_format_idc == 3 { 12 } else { 8 };
            for i in 0..lists {
                if s.flag("seq_scaling_list_present_flag")? {
                    s.scaling_list(if i < 6 { 16 } else { 64 })?;
                }
            }
        }
    }
    s.ue("log2_max_frame_num_minus4", 12)?;
    match s.ue("pic_order_cnt_type", 2)? {
        0 => {
            s.ue("log2_max_pic_order_cnt_lsb_minus4", 12)?;
        }
        1 => {
            s.flag("delta_pic_order_always_zero_flag")?;
            s.se("offset_for_non_ref_pic")?;
            s.se("offset_for_top_to_bottom_field")?;
            let n = s.ue("num_ref_frames_in_pic_order_cnt_cycle", 255)?;
            for _ in 0..n {
                s.se("offset_for_ref_frame")?;
            }
        }
        _ => {}
    }
    s.ue("max_num_ref_frames", u32::MAX)?;
    s.flag("gaps_in_frame_num_value_allowed_flag")?;
    s.ue("pic_width_in_mbs_minus1", u32::MAX)?;
    s.ue("pic_height_in_map_units_minus1", u32::MAX)?;
    if !s.flag("frame_mbs_only_flag")? {
        s.flag("mb_adaptive_frame_field_flag")?;
    }
    s.flag("direct_8x8_inference_flag")?;
    if s.flag("frame_cropping_flag")? {
        for field in [
            "frame_crop_left_offset",
            "frame_crop_right_offset",
            "frame_crop_top_offset",
            "frame_crop_bottom_offset",
        ] {
            s.ue(field, u32::MAX)?;
        }
    }
    if s.flag("vui_parameters_present_flag")? {
        s.vui()?;
    }
    // At the end of the data when the camera left out the trailing bits:
    // they are written anew either way.
    Ok(s.r.position())
}

#[cfg(test)]
mod tests;
