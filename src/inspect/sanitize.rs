//! Sanitizing video access units before camgate packetizes them: SEI
//! user-data payloads (ITU-T T.35 registered, type 4, and unregistered,
//! type 5, where vendors and encoders put private data) and the nesting
//! messages that could wrap them are cut out of SEI NAL units while timing
//! and recovery-point messages stay; reserved and unspecified NAL unit types
//! are dropped.
//!
//! Pure code on one access unit. The common case (no SEI, nothing reserved)
//! is a scan of the NAL header bytes and no copy; an SEI unit is rewritten
//! only when it holds something to remove. A malformed SEI unit (sizes that
//! overrun it) is dropped whole: what cannot be parsed cannot be vouched for.
//!
//! H.264: ITU-T H.264 §7.3.2.3 (SEI RBSP), §7.4.1.2 (NAL types, table 7-1).
//! H.265: ITU-T H.265 §7.3.5 (SEI message), table 7-1 (NAL types 39/40
//! prefix/suffix SEI; 10-15, 22-31, 41-47 reserved; 48-63 unspecified).

use std::borrow::Cow;

use smallvec::SmallVec;

/// SEI payload types carrying private data (both codecs).
const USER_DATA_REGISTERED: u32 = 4;
const USER_DATA_UNREGISTERED: u32 = 5;
/// SEI messages that wrap other SEI messages, user data included: H.264
/// scalable nesting (30, Annex G) and MVC scalable nesting (37, Annex H);
/// H.265 scalable nesting (133). They only matter to multi-layer decoding,
/// which cameras do not produce, so they go whole rather than be parsed.
const H264_NESTING: [u32; 2] = [30, 37];
const H265_NESTING: [u32; 1] = [133];
/// More messages than this in one SEI unit is not an encoder's doing.
const MAX_MESSAGES: usize = 1024;

/// What the sanitizer removes (per device; both on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub sei_user_data: bool,
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
}

impl StripKind {
    pub const ALL: [StripKind; 3] = [
        StripKind::SeiUserData,
        StripKind::ReservedNal,
        StripKind::MalformedSei,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StripKind::SeiUserData => "sei_user_data",
            StripKind::ReservedNal => "reserved_nal",
            StripKind::MalformedSei => "malformed_sei",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// Bytes removed from one access unit, by kind (indexed by
/// [`StripKind::index`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stripped(pub [u64; 3]);

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

impl Syntax {
    fn header_len(self) -> usize {
        match self {
            Syntax::H264 => 1,
            Syntax::H265 => 2,
        }
    }

    fn nal_type(self, nal: &[u8]) -> u8 {
        match self {
            Syntax::H264 => nal.first().map_or(0, |h| h & 0x1f),
            Syntax::H265 => nal.first().map_or(0, |h| (h >> 1) & 0x3f),
        }
    }

    /// Payload types removed by the `sei_user_data` policy.
    fn is_private_payload(self, payload_type: u32) -> bool {
        payload_type == USER_DATA_REGISTERED
            || payload_type == USER_DATA_UNREGISTERED
            || match self {
                Syntax::H264 => H264_NESTING.contains(&payload_type),
                Syntax::H265 => H265_NESTING.contains(&payload_type),
            }
    }

    fn is_sei(self, t: u8) -> bool {
        match self {
            Syntax::H264 => t == 6,
            Syntax::H265 => t == 39 || t == 40,
        }
    }

    /// Reserved or unspecified types. H.264 0 and 24-31 are unspecified,
    /// 17, 18, 22 and 23 reserved; H.265 10-15, 22-31 and 41-47 reserved,
    /// 48-63 unspecified.
    pub fn is_reserved(self, t: u8) -> bool {
        match self {
            Syntax::H264 => matches!(t, 0 | 17 | 18 | 22 | 23 | 24..=31),
            Syntax::H265 => matches!(t, 10..=15 | 22..=31 | 41..=63),
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
    let attention = |n: &&[u8]| {
        let t = syntax.nal_type(n);
        (policy.sei_user_data && syntax.is_sei(t))
            || (policy.reserved_nals && syntax.is_reserved(t))
    };
    let first = nals.iter().position(attention)?;
    let mut stripped = Stripped::default();
    let mut out: SmallVec<[Cow<'a, [u8]>; 16]> = SmallVec::new();
    out.extend(nals[..first].iter().map(|n| Cow::Borrowed(*n)));
    for &nal in &nals[first..] {
        let t = syntax.nal_type(nal);
        if policy.reserved_nals && syntax.is_reserved(t) {
            stripped.add(StripKind::ReservedNal, nal.len());
            continue;
        }
        if policy.sei_user_data && syntax.is_sei(t) {
            match sei(syntax, nal) {
                Sei::Unchanged => out.push(Cow::Borrowed(nal)),
                Sei::Rewritten(kept, removed) => {
                    stripped.add(StripKind::SeiUserData, removed);
                    out.push(Cow::Owned(kept));
                }
                Sei::Empty(removed) => {
                    stripped.add(StripKind::SeiUserData, removed);
                    // The unit's header and trailing bits go with it.
                    stripped.add(StripKind::SeiUserData, nal.len().saturating_sub(removed));
                }
                Sei::Malformed => stripped.add(StripKind::MalformedSei, nal.len()),
            }
            continue;
        }
        out.push(Cow::Borrowed(nal));
    }
    if stripped.total() == 0 {
        return None;
    }
    Some((out, stripped))
}

/// The outcome for one SEI NAL unit.
#[derive(Debug, PartialEq, Eq)]
enum Sei {
    /// No user data in it.
    Unchanged,
    /// The unit without its user-data messages, and the RBSP bytes removed.
    Rewritten(Vec<u8>, usize),
    /// Only user data: drop the unit (RBSP bytes of the messages removed).
    Empty(usize),
    Malformed,
}

/// One SEI message's span in the RBSP (header included) and its type.
struct Message {
    payload_type: u32,
    start: usize,
    end: usize,
}

fn sei(syntax: Syntax, nal: &[u8]) -> Sei {
    let h = syntax.header_len();
    if nal.len() <= h {
        return Sei::Malformed;
    }
    let rbsp = super::bits::rbsp(&nal[h..]);
    let Some(messages) = messages(&rbsp) else {
        return Sei::Malformed;
    };
    let private = |m: &Message| syntax.is_private_payload(m.payload_type);
    if !messages.iter().any(private) {
        return Sei::Unchanged;
    }
    let removed: usize = messages
        .iter()
        .filter(|m| private(m))
        .map(|m| m.end - m.start)
        .sum();
    if messages.iter().all(private) {
        return Sei::Empty(removed);
    }
    let mut body = Vec::with_capacity(rbsp.len());
    for m in messages.iter().filter(|m| !private(m)) {
        body.extend_from_slice(&rbsp[m.start..m.end]);
    }
    body.push(0x80); // rbsp_trailing_bits
    let mut out = Vec::with_capacity(h + body.len() + body.len() / 64 + 2);
    out.extend_from_slice(&nal[..h]);
    escape_into(&body, &mut out);
    Sei::Rewritten(out, removed)
}

/// Splits an SEI RBSP into its messages; `None` if a size overruns it.
fn messages(rbsp: &[u8]) -> Option<SmallVec<[Message; 4]>> {
    let mut out = SmallVec::new();
    let mut i = 0;
    loop {
        match &rbsp[i..] {
            // End: the trailing bits (stop bit then zeros), or nothing left
            // (some encoders omit them).
            [] => return Some(out),
            [0x80, rest @ ..] if rest.iter().all(|b| *b == 0) => return Some(out),
            _ => {}
        }
        let start = i;
        let payload_type = ff_coded(rbsp, &mut i)?;
        let size = ff_coded(rbsp, &mut i)? as usize;
        let end = i.checked_add(size)?;
        if end > rbsp.len() || out.len() >= MAX_MESSAGES {
            return None;
        }
        i = end;
        out.push(Message {
            payload_type,
            start,
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

/// Appends `rbsp` with emulation-prevention bytes inserted (0x000003 before
/// any 0x00-0x03 that follows two zero bytes).
fn escape_into(rbsp: &[u8], out: &mut Vec<u8>) {
    let mut zeros = 0;
    for &b in rbsp {
        if zeros >= 2 && b <= 3 {
            out.push(3);
            zeros = 0;
        }
        out.push(b);
        zeros = if b == 0 { zeros + 1 } else { 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SEI message: type, size, payload (RBSP).
    fn msg(t: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![t, payload.len() as u8];
        v.extend_from_slice(payload);
        v
    }

    fn h264_sei(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut rbsp: Vec<u8> = messages.concat();
        rbsp.push(0x80);
        let mut nal = vec![0x06];
        escape_into(&rbsp, &mut nal);
        nal
    }

    fn x264_user_data() -> Vec<u8> {
        let mut p = vec![0xdcu8; 16]; // UUID
        p.extend_from_slice(b"x264 - core 164 - H.264/MPEG-4 AVC codec");
        p.push(0);
        msg(5, &p)
    }

    const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x10];

    #[test]
    fn nothing_to_do_is_none() {
        let nals: Vec<&[u8]> = vec![IDR, &[0x41, 0x9a]];
        assert!(access_unit(Syntax::H264, Policy::STRICT, &nals).is_none());
        // A timing-only SEI stays as it is.
        let timing = h264_sei(&[msg(1, &[0x10, 0x20])]);
        let nals: Vec<&[u8]> = vec![&timing, IDR];
        assert!(access_unit(Syntax::H264, Policy::STRICT, &nals).is_none());
    }

    #[test]
    fn user_data_only_sei_is_dropped() {
        let sei = h264_sei(&[x264_user_data()]);
        let nals: Vec<&[u8]> = vec![&sei, IDR];
        let (out, s) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0], IDR);
        assert_eq!(s.get(StripKind::SeiUserData), sei.len() as u64);
        assert_eq!(s.total(), sei.len() as u64);
    }

    #[test]
    fn recovery_point_kept_user_data_removed() {
        let recovery = msg(6, &[0x84]); // recovery_frame_cnt 0 etc.
        let registered = msg(4, &[0xb5, 0x00, 0x31, 0x47, 0x41]);
        let sei = h264_sei(&[recovery.clone(), x264_user_data(), registered.clone()]);
        let nals: Vec<&[u8]> = vec![&sei, IDR];
        let (out, s) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(&*out[0], &h264_sei(&[recovery])[..]);
        assert_eq!(
            s.get(StripKind::SeiUserData),
            (x264_user_data().len() + registered.len()) as u64
        );
        assert!(!out[0].windows(4).any(|w| w == b"x264"));
    }

    #[test]
    fn emulation_prevention_survives_rewrite() {
        // A pic-timing payload with zeros that need escaping.
        let timing = msg(1, &[0, 0, 1, 0, 0, 0]);
        let sei = h264_sei(&[timing.clone(), x264_user_data()]);
        assert!(sei.windows(3).any(|w| w == [0, 0, 3]));
        let nals: Vec<&[u8]> = vec![&sei];
        let (out, _) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
        assert_eq!(&*out[0], &h264_sei(&[timing])[..]);
        // Re-parsing the output finds exactly the timing message.
        let rbsp = crate::inspect::bits::rbsp(&out[0][1..]);
        let m = messages(&rbsp).unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].payload_type, 1);
    }

    #[test]
    fn large_types_and_sizes_use_ff_bytes() {
        // Payload type 5 written as-is, size 300 = 0xFF + 45.
        let mut p = vec![5u8, 0xff, 45];
        p.extend(std::iter::repeat_n(0x11, 300));
        p.push(0x80);
        let mut nal = vec![0x06];
        escape_into(&p, &mut nal);
        let nals: Vec<&[u8]> = vec![&nal, IDR];
        let (out, s) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(s.get(StripKind::SeiUserData), nal.len() as u64);
    }

    #[test]
    fn nesting_messages_go_with_the_user_data_they_may_hide() {
        let recovery = msg(6, &[0x84]);
        // Scalable nesting wrapping an unregistered user-data message.
        let mut nested = vec![0x80]; // all_layer_representations_in_au_flag
        nested.extend(x264_user_data());
        for t in [30, 37] {
            let sei = h264_sei(&[recovery.clone(), msg(t, &nested)]);
            let nals: Vec<&[u8]> = vec![&sei, IDR];
            let (out, s) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
            assert_eq!(
                &*out[0],
                &h264_sei(std::slice::from_ref(&recovery))[..],
                "type {t}"
            );
            assert!(s.get(StripKind::SeiUserData) > 0);
        }
        let mut prefix = vec![39 << 1, 1];
        escape_into(&[&msg(133, &nested)[..], &[0x80]].concat(), &mut prefix);
        let nals: Vec<&[u8]> = vec![&prefix];
        let (out, _) = access_unit(Syntax::H265, Policy::STRICT, &nals).unwrap();
        assert!(out.is_empty());
        // H.264 type 133 and H.265 type 30 are not nesting: left alone.
        let other = h264_sei(&[msg(133, &[1])]);
        let nals: Vec<&[u8]> = vec![&other];
        assert!(access_unit(Syntax::H264, Policy::STRICT, &nals).is_none());
    }

    #[test]
    fn many_small_messages_are_not_malformed() {
        let timing: Vec<Vec<u8>> = (0..300).map(|_| msg(1, &[0x10])).collect();
        let mut all = timing.clone();
        all.push(x264_user_data());
        let sei = h264_sei(&all);
        let nals: Vec<&[u8]> = vec![&sei];
        let (out, s) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
        assert_eq!(&*out[0], &h264_sei(&timing)[..]);
        assert_eq!(s.get(StripKind::MalformedSei), 0);
    }

    #[test]
    fn malformed_sei_dropped_whole() {
        for bad in [
            vec![0x06],                        // header only
            vec![0x06, 5, 200, 1, 2, 3, 0x80], // size overruns
            vec![0x06, 0xff, 0xff, 0xff],      // type never ends
            vec![0x06, 1, 1, 0, 0x55, 0x55],   // junk after a message
        ] {
            let nals: Vec<&[u8]> = vec![&bad, IDR];
            let (out, s) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
            assert_eq!(out.len(), 1, "{bad:?}");
            assert_eq!(s.get(StripKind::MalformedSei), bad.len() as u64, "{bad:?}");
        }
    }

    #[test]
    fn reserved_types_dropped() {
        let reserved: &[u8] = &[0x17, 1, 2]; // type 23
        let unspecified: &[u8] = &[0x1e, 1]; // type 30
        let nals: Vec<&[u8]> = vec![reserved, IDR, unspecified];
        let (out, s) = access_unit(Syntax::H264, Policy::STRICT, &nals).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(s.get(StripKind::ReservedNal), 5);
        // H.265: type 45 (reserved), 50 (unspecified) dropped; 1 (TRAIL_R) kept.
        let trail: &[u8] = &[0x02, 0x01, 0xaa];
        let r45: &[u8] = &[45 << 1, 1, 0];
        let u50: &[u8] = &[50 << 1, 1];
        let nals: Vec<&[u8]> = vec![r45, trail, u50];
        let (out, s) = access_unit(Syntax::H265, Policy::STRICT, &nals).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0], trail);
        assert_eq!(s.get(StripKind::ReservedNal), 5);
    }

    #[test]
    fn h265_prefix_and_suffix_sei() {
        let mut rbsp = x264_user_data();
        rbsp.extend(msg(129, &[1, 2])); // active parameter sets: kept
        rbsp.push(0x80);
        let mut prefix = vec![39 << 1, 1];
        escape_into(&rbsp, &mut prefix);
        let mut suffix = vec![40 << 1, 1];
        escape_into(&[&x264_user_data()[..], &[0x80]].concat(), &mut suffix);
        let trail: &[u8] = &[0x02, 0x01, 0xaa];
        let nals: Vec<&[u8]> = vec![&prefix, trail, &suffix];
        let (out, s) = access_unit(Syntax::H265, Policy::STRICT, &nals).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(&*out[0], &[39 << 1, 1, 129, 2, 1, 2, 0x80][..]);
        assert_eq!(&*out[1], trail);
        assert!(s.get(StripKind::SeiUserData) > 0);
    }

    #[test]
    fn policy_pass_keeps_everything() {
        let sei = h264_sei(&[x264_user_data()]);
        let reserved: &[u8] = &[0x17, 1, 2];
        let nals: Vec<&[u8]> = vec![&sei, reserved, IDR];
        assert!(access_unit(Syntax::H264, Policy::OFF, &nals).is_none());
        let only_reserved = Policy {
            sei_user_data: false,
            reserved_nals: true,
        };
        let (out, _) = access_unit(Syntax::H264, only_reserved, &nals).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(&*out[0], &sei[..]);
    }

    #[test]
    fn never_panics_on_garbage() {
        let mut seed = 0x1234_5678u32;
        for _ in 0..20_000 {
            let len = (seed % 40) as usize;
            let mut nal = Vec::with_capacity(len + 1);
            nal.push(if seed & 1 == 0 { 0x06 } else { 39 << 1 });
            for _ in 0..len {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                nal.push((seed >> 16) as u8);
            }
            let nals: Vec<&[u8]> = vec![&nal];
            let _ = access_unit(Syntax::H264, Policy::STRICT, &nals);
            let _ = access_unit(Syntax::H265, Policy::STRICT, &nals);
        }
    }
}
