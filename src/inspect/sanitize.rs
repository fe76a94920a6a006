//! Sanitizing video access units before camgate packetizes them, by
//! allow-list: per codec, the NAL unit types a single-layer camera stream
//! carries and, inside SEI, the payload types a decoder or recorder uses.
//! Everything else is cut, and what is kept is capped in size.
//!
//! **NAL units kept** (table 7-1 of each spec):
//! - H.264: 1 (non-IDR slice), 5 (IDR slice), 6 (SEI), 7 (SPS), 8 (PPS),
//!   9 (access unit delimiter).
//! - H.265, with `nuh_layer_id` 0 and `nuh_temporal_id_plus1` not 0
//!   (§7.4.2.2; a higher layer belongs to the multi-layer extensions,
//!   Annexes F-I): VCL 0-9 (TRAIL, TSA, STSA, RADL, RASL) and 16-21 (BLA,
//!   IDR, CRA), 32-34 (VPS, SPS, PPS), 35 (AUD), 39/40 (prefix/suffix SEI).
//! - A unit whose `forbidden_zero_bit` is set is not kept either.
//!
//! **NAL units cut**, and why a camera stream does not need them:
//! - Filler data (H.264 12, H.265 38; kind `filler`): padding that keeps a
//!   constant bit rate honest to the HRD model, which recorders do not
//!   check; to a hostile camera, room for any bytes.
//! - H.264 2-4 (slice data partitions A-C): Extended profile only (A.2.3),
//!   which camera encoders and most decoders do not implement; one picture
//!   as three units is a path few decoders have tested. 13 (SPS extension)
//!   and 19 (auxiliary slice): alpha planes, which decoders may discard.
//!   14 (prefix NAL), 15 (subset SPS), 20 (slice extension): SVC and MVC
//!   layers (Annexes G, H). 16 (depth parameter set), 21 (depth slice):
//!   3D-AVC (Annexes I, J). Base-layer decoders ignore all of these, so
//!   they could carry anything (kind `disallowed_nal`).
//! - End of sequence and end of stream (H.264 10/11, H.265 36/37; kind
//!   `disallowed_nal`): a live relay never ends a sequence (recorders join
//!   at any key frame, camgate's stream continues across camera
//!   reconnects), and after one the next picture is an IDR (H.264) or an
//!   IRAP (H.265) anyway (their RBSP semantics). In H.265 they also make a
//!   decoder drop the RASL pictures of the next CRA, which closed-GOP
//!   cameras do not produce and a hostile camera could use to blank video.
//! - Reserved and unspecified types (kind `reserved_nal`): H.264 0, 17,
//!   18, 22-31; H.265 10-15, 22-31, 41-63.
//!
//! **SEI payload types kept** (H.264 Annex D, H.265 Annex D), with the
//! largest payload each one's syntax allows (computed with every field at
//! its widest) as its cap (kind `oversized` past it):
//! - Both codecs: 0 buffering period and 1 picture timing (the HRD timing
//!   and field structure recorders use), 6 recovery point (where decoding
//!   may start without an IDR: cameras' intra-refresh modes).
//! - H.265 prefix SEI also: 129 active parameter sets, 136 time code, 137
//!   mastering display colour volume and 144 content light level (HDR
//!   display); suffix SEI: 132 decoded picture hash (lets a decoder check
//!   its output). A type in the wrong kind of SEI unit is not kept.
//! - Each kept type once per SEI unit: the specs allow repeats in one
//!   access unit only with the same content, so a repeat adds nothing
//!   (kind `disallowed_sei`).
//!
//! **SEI payloads cut**: 4 and 5, user data registered (ITU-T T.35) and
//! unregistered, where encoders and vendors put private data (x264 writes
//! its command line there; kind `sei_user_data`); 3, filler payload (kind
//! `filler`); every other type (kind `disallowed_sei`), among them the
//! nesting messages that could wrap user data (H.264 30 and 37, H.265 133)
//! and those that steer a display: pan-scan (2), full-frame freeze and
//! snapshot (H.264 13-15), film grain (19), tone mapping (23), frame
//! packing (45), display orientation (47), no display (H.265 135).
//!
//! **Size caps on the non-VCL units kept** (kind `oversized`): parameter
//! sets within access units get the caps of [`super::params`] (the
//! packetizers drop these copies and send the cleaned ones, but a camera
//! stuffing them is counted); access unit delimiters are exactly their
//! syntax, 2 bytes (H.264) or 3 (H.265). A kept SEI unit is bounded by
//! the payload caps and the one-per-type rule. Slices are the video and
//! have no cap here.
//!
//! The two per-device switches keep their names: `sei_user_data` filters
//! SEI units by the payload allow-list; `reserved_nals` drops NAL units
//! outside the type allow-list and those over their caps. With both off
//! nothing is looked at.
//!
//! Pure code on one access unit. The common case (slices only, nothing to
//! strip) is a scan of the NAL header bytes and no copy; an SEI unit is
//! parsed in place unless it has emulation prevention bytes, and rewritten
//! only when it holds something to remove. A malformed SEI unit (sizes that
//! overrun it, no message) is dropped whole: what cannot be parsed cannot
//! be vouched for. What does not belong here: the parameter sets camgate
//! announces and prepends ([`super::params`]) and slice contents.

use std::borrow::Cow;

use smallvec::SmallVec;

use super::{bits, params};

/// SEI payload types carrying private data (both codecs).
const USER_DATA_REGISTERED: u32 = 4;
const USER_DATA_UNREGISTERED: u32 = 5;
/// SEI filler payload (both codecs).
const FILLER_PAYLOAD: u32 = 3;
/// More messages than this in one SEI unit is not an encoder's doing.
const MAX_MESSAGES: usize = 1024;

/// SEI payload types kept in H.264 SEI, with their largest payload in bytes
/// (syntax in Annex D): buffering period, 32 CPBs of two 32-bit delays in
/// both HRDs (4,107 bits); picture timing, two 32-bit delays, `pic_struct`
/// and three full clock timestamps with 31-bit offsets (281 bits); recovery
/// point, a 33-bit `recovery_frame_cnt` and 4 bits of flags.
const H264_SEI: [(u32, usize); 3] = [(0, 514), (1, 36), (6, 5)];
/// Kept in H.265 prefix SEI (syntax in Annex D): buffering period, 32 CPBs
/// of four 32-bit values in both HRDs
/// (8,300 bits); picture timing without per-decoding-unit timing (103 bits);
/// recovery point (35 bits); active parameter sets for one layer, 16 SPS
/// ids (159 bits); time code, three full timestamps (227 bits); mastering
/// display (24 bytes); content light level (4 bytes).
const H265_PREFIX_SEI: [(u32, usize); 7] = [
    (0, 1038),
    (1, 13),
    (6, 5),
    (129, 20),
    (136, 29),
    (137, 24),
    (144, 4),
];
/// Kept in H.265 suffix SEI: decoded picture hash, its type and an MD5 per
/// colour component (49 bytes).
const H265_SUFFIX_SEI: [(u32, usize); 1] = [(132, 49)];
/// Access unit delimiters: the header and one byte (`primary_pic_type` or
/// `pic_type`, then the stop bit).
const H264_AUD_LEN: usize = 2;
const H265_AUD_LEN: usize = 3;

/// What the sanitizer removes (per device; both on by default). The names
/// are the config keys'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// SEI messages outside the payload allow-list (user data first among
    /// them), and kept ones over their caps or repeated.
    pub sei_user_data: bool,
    /// NAL units outside the type allow-list (reserved, filler, extension
    /// layers, end of sequence...), and parameter sets or delimiters over
    /// their caps.
    pub reserved_nals: bool,
}

impl Policy {
    pub const STRICT: Policy = Policy {
        sei_user_data: true,
        reserved_nals: true,
    };
    pub const OFF: Policy = Policy {
        sei_user_data: false,
        reserved_nals: false,
    };

    pub fn is_off(&self) -> bool {
        !self.sei_user_data && !self.reserved_nals
    }
}

/// Why bytes were removed: the `kind` label of
/// `camgate_inspect_stripped_bytes_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StripKind {
    /// SEI user-data messages (payload types 4 and 5).
    SeiUserData,
    /// NAL units of reserved or unspecified types.
    ReservedNal,
    /// SEI units that did not parse, dropped whole.
    MalformedSei,
    /// Filler data NAL units and SEI filler payloads.
    Filler,
    /// NAL units of defined types a single-layer stream does not carry, or
    /// with a header such a stream never has.
    DisallowedNal,
    /// SEI messages of other types than the kept ones, or repeated.
    DisallowedSei,
    /// Kept units or SEI messages over their size caps.
    Oversized,
}

impl StripKind {
    /// How many kinds there are.
    pub const COUNT: usize = 7;

    pub const ALL: [StripKind; StripKind::COUNT] = [
        StripKind::SeiUserData,
        StripKind::ReservedNal,
        StripKind::MalformedSei,
        StripKind::Filler,
        StripKind::DisallowedNal,
        StripKind::DisallowedSei,
        StripKind::Oversized,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StripKind::SeiUserData => "sei_user_data",
            StripKind::ReservedNal => "reserved_nal",
            StripKind::MalformedSei => "malformed_sei",
            StripKind::Filler => "filler",
            StripKind::DisallowedNal => "disallowed_nal",
            StripKind::DisallowedSei => "disallowed_sei",
            StripKind::Oversized => "oversized",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Bytes removed from one access unit, by kind (indexed by
/// [`StripKind::index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stripped(pub [u64; StripKind::COUNT]);

impl Stripped {
    pub fn add(&mut self, kind: StripKind, bytes: usize) {
        self.0[kind.index()] += bytes as u64;
    }

    pub fn get(&self, kind: StripKind) -> u64 {
        self.0[kind.index()]
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Which bitstream syntax the NAL units follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    H264,
    H265,
}

/// What a NAL unit is to the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A coded slice: kept as it is.
    Slice,
    /// SEI: kept with its messages filtered.
    Sei { suffix: bool },
    /// Kept up to this many bytes.
    Capped(usize),
    /// Not kept.
    Cut(StripKind),
}

impl Syntax {
    fn header_len(self) -> usize {
        match self {
            Syntax::H264 => 1,
            Syntax::H265 => 2,
        }
    }

    /// The unit's class, from its header alone.
    fn classify(self, nal: &[u8]) -> Class {
        match self {
            Syntax::H264 => {
                let Some(&h) = nal.first() else {
                    return Class::Cut(StripKind::DisallowedNal);
                };
                let class = match h & 0x1f {
                    1 | 5 => Class::Slice,
                    6 => Class::Sei { suffix: false },
                    7 | 8 => Class::Capped(params::H264_MAX),
                    9 => Class::Capped(H264_AUD_LEN),
                    12 => Class::Cut(StripKind::Filler),
                    2..=4 | 10 | 11 | 13..=16 | 19..=21 => Class::Cut(StripKind::DisallowedNal),
                    // 0, 17, 18, 22-31.
                    _ => Class::Cut(StripKind::ReservedNal),
                };
                match class {
                    Class::Cut(_) => class,
                    _ if h & 0x80 != 0 => Class::Cut(StripKind::DisallowedNal),
                    _ => class,
                }
            }
            Syntax::H265 => {
                let [h0, h1, ..] = *nal else {
                    return Class::Cut(StripKind::DisallowedNal);
                };
                let class = match (h0 >> 1) & 0x3f {
                    0..=9 | 16..=21 => Class::Slice,
                    32..=34 => Class::Capped(params::H265_MAX),
                    35 => Class::Capped(H265_AUD_LEN),
                    38 => Class::Cut(StripKind::Filler),
                    39 => Class::Sei { suffix: false },
                    40 => Class::Sei { suffix: true },
                    36 | 37 => Class::Cut(StripKind::DisallowedNal),
                    // 10-15, 22-31, 41-63.
                    _ => Class::Cut(StripKind::ReservedNal),
                };
                let layer = ((h0 & 1) << 5) | (h1 >> 3);
                let temporal_id_plus1 = h1 & 7;
                match class {
                    Class::Cut(_) => class,
                    _ if h0 & 0x80 != 0 || layer != 0 || temporal_id_plus1 == 0 => {
                        Class::Cut(StripKind::DisallowedNal)
                    }
                    _ => class,
                }
            }
        }
    }

    /// The SEI payload types kept in this kind of SEI unit, with their caps.
    fn kept_sei(self, suffix: bool) -> &'static [(u32, usize)] {
        match (self, suffix) {
            (Syntax::H264, _) => &H264_SEI,
            (Syntax::H265, false) => &H265_PREFIX_SEI,
            (Syntax::H265, true) => &H265_SUFFIX_SEI,
        }
    }
}

/// An access unit's units after sanitizing, and the bytes removed.
pub type Sanitized<'a> = (SmallVec<[Cow<'a, [u8]>; 16]>, Stripped);

/// Sanitizes one access unit's NAL units. Returns `None` when nothing is to
/// change (the caller packetizes the originals), or the units to packetize
/// instead and the bytes removed.
pub fn access_unit<'a>(syntax: Syntax, policy: Policy, nals: &[&'a [u8]]) -> Option<Sanitized<'a>> {
    if policy.is_off() {
        return None;
    }
    let attention = |n: &&[u8]| match syntax.classify(n) {
        Class::Slice => false,
        Class::Sei { .. } => policy.sei_user_data,
        Class::Capped(cap) => policy.reserved_nals && n.len() > cap,
        Class::Cut(_) => policy.reserved_nals,
    };
    let first = nals.iter().position(attention)?;
    let mut stripped = Stripped::default();
    let mut out: SmallVec<[Cow<'a, [u8]>; 16]> = SmallVec::new();
    out.extend(nals[..first].iter().map(|n| Cow::Borrowed(*n)));
    for &nal in &nals[first..] {
        match syntax.classify(nal) {
            Class::Cut(kind) if policy.reserved_nals => stripped.add(kind, nal.len()),
            Class::Capped(cap) if policy.reserved_nals && nal.len() > cap => {
                stripped.add(StripKind::Oversized, nal.len());
            }
            Class::Sei { suffix } if policy.sei_user_data => match sei(syntax, suffix, nal) {
                Sei::Unchanged => out.push(Cow::Borrowed(nal)),
                Sei::Rewritten(kept, removed) => {
                    add_all(&mut stripped, &removed);
                    out.push(Cow::Owned(kept));
                }
                Sei::Empty(removed) => add_all(&mut stripped, &removed),
                Sei::Malformed => stripped.add(StripKind::MalformedSei, nal.len()),
            },
            _ => out.push(Cow::Borrowed(nal)),
        }
    }
    if stripped.total() == 0 {
        return None;
    }
    Some((out, stripped))
}

fn add_all(total: &mut Stripped, s: &Stripped) {
    for (t, n) in total.0.iter_mut().zip(s.0) {
        *t += n;
    }
}

/// The outcome for one SEI NAL unit.
#[derive(Debug, PartialEq, Eq)]
enum Sei {
    /// Nothing in it to remove.
    Unchanged,
    /// The unit with only its kept messages, and the RBSP bytes removed.
    Rewritten(Vec<u8>, Stripped),
    /// Nothing kept: drop the unit (all its bytes, counted by kind).
    Empty(Stripped),
    Malformed,
}

/// One SEI message's span in the RBSP (header included), its type and
/// where its payload starts.
struct Message {
    payload_type: u32,
    start: usize,
    payload: usize,
    end: usize,
}

fn sei(syntax: Syntax, suffix: bool, nal: &[u8]) -> Sei {
    let h = syntax.header_len();
    let payload = match nal.get(h..) {
        Some(p) if !p.is_empty() => p,
        _ => return Sei::Malformed,
    };
    let rbsp = bits::rbsp_cow(payload);
    let Some(messages) = messages(&rbsp) else {
        return Sei::Malformed;
    };
    if messages.is_empty() {
        // sei_rbsp() has at least one message, in both specs.
        return Sei::Malformed;
    }
    let kept = syntax.kept_sei(suffix);
    let mut seen: SmallVec<[u32; 8]> = SmallVec::new();
    // Why each message goes, or `None` where it stays.
    let verdicts: SmallVec<[Option<StripKind>; 8]> = messages
        .iter()
        .map(|m| match m.payload_type {
            USER_DATA_REGISTERED | USER_DATA_UNREGISTERED => Some(StripKind::SeiUserData),
            FILLER_PAYLOAD => Some(StripKind::Filler),
            t => match kept.iter().find(|(k, _)| *k == t) {
                None => Some(StripKind::DisallowedSei),
                Some(_) if seen.contains(&t) => Some(StripKind::DisallowedSei),
                Some((_, cap)) if m.end - m.payload > *cap => Some(StripKind::Oversized),
                Some(_) => {
                    seen.push(t);
                    None
                }
            },
        })
        .collect();
    let Some(first_cut) = verdicts.iter().flatten().next().copied() else {
        return Sei::Unchanged;
    };
    let mut removed = Stripped::default();
    for (m, v) in messages.iter().zip(&verdicts) {
        if let Some(kind) = v {
            removed.add(*kind, m.end - m.start);
        }
    }
    if verdicts.iter().all(Option::is_some) {
        // The unit's header, emulation prevention and trailing bits go
        // with the first message removed.
        let rest = (nal.len() as u64).saturating_sub(removed.total());
        removed.add(first_cut, rest as usize);
        return Sei::Empty(removed);
    }
    let mut body = Vec::with_capacity(rbsp.len());
    for (m, _) in messages.iter().zip(&verdicts).filter(|(_, v)| v.is_none()) {
        body.extend_from_slice(&rbsp[m.start..m.end]);
    }
    body.push(0x80); // rbsp_trailing_bits
    let mut out = Vec::with_capacity(h + body.len() + body.len() / 64 + 2);
    out.extend_from_slice(&nal[..h]);
    bits::escape_into(&body, &mut out);
    Sei::Rewritten(out, removed)
}

/// Splits an SEI RBSP into its messages; `None` if a size overruns it.
fn messages(rbsp: &[u8]) -> Option<SmallVec<[Message; 4]>> {
    let mut out = SmallVec::new();
    let mut i = 0;
    loop {
        match rbsp.get(i..)? {
            // End: the trailing bits (stop bit then zeros), or nothing left
            // (some encoders omit them).
            [] => return Some(out),
            [0x80, rest @ ..] if rest.iter().all(|b| *b == 0) => return Some(out),
            _ => {}
        }
        let start = i;
        let payload_type = ff_coded(rbsp, &mut i)?;
        let size = ff_coded(rbsp, &mut i)? as usize;
        let payload = i;
        let end = i.checked_add(size)?;
        if end > rbsp.len() || out.len() >= MAX_MESSAGES {
            return None;
        }
        i = end;
        out.push(Message {
            payload_type,
            start,
            payload,
            end,
        });
    }
}

/// A payload type or size: 0xFF bytes adding 255 each, then the last byte.
fn ff_coded(b: &[u8], i: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    loop {
        let byte = *b.get(*i)?;
        *i += 1;
        v = v.checked_add(u32::from(byte))?;
        if byte != 0xff {
            return Some(v);
        }
    }
}

#[cfg(test)]
mod tests;
