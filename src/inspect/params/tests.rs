use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Writes syntax elements MSB first, for building parameter sets.
#[derive(Default)]
struct W {
    bytes: Vec<u8>,
    bits: usize,
}

impl W {
    fn bit(&mut self, b: bool) {
        if self.bits.is_multiple_of(8) {
            self.bytes.push(0);
        }
        if b {
            *self.bytes.last_mut().unwrap() |= 0x80 >> (self.bits % 8);
        }
        self.bits += 1;
    }

    fn u(&mut self, n: u32, v: u64) {
        for i in (0..n).rev() {
            self.bit(v >> i & 1 == 1);
        }
    }

    fn ue(&mut self, v: u32) {
        let code = u64::from(v) + 1;
        let len = 63 - code.leading_zeros();
        self.u(len, 0);
        self.u(len + 1, code);
    }

    fn se(&mut self, v: i64) {
        let k = if v > 0 { 2 * v - 1 } else { -2 * v };
        self.ue(k as u32);
    }

    /// The RBSP with `rbsp_trailing_bits`.
    fn finish(mut self) -> Vec<u8> {
        self.bit(true);
        while !self.bits.is_multiple_of(8) {
            self.bit(false);
        }
        self.bytes
    }
}

/// What an H.264 SPS built by [`sps`] carries.
#[derive(Clone, Copy)]
struct Spec {
    profile: u8,
    chroma: u32,
    scaling: bool,
    poc_type: u32,
    vui: bool,
}

const MAIN: Spec = Spec {
    profile: 77,
    chroma: 1,
    scaling: false,
    poc_type: 0,
    vui: true,
};

/// An H.264 SPS RBSP for 1920x1080, exercising the optional syntax `spec`
/// asks for (VUI with timing, both HRDs and bitstream restrictions).
fn sps_rbsp(spec: Spec) -> Vec<u8> {
    let mut w = W::default();
    w.u(8, spec.profile.into());
    w.u(8, 0); // constraint flags
    w.u(8, 40); // level 4.0
    w.ue(0);
    if spec.profile >= 100 {
        w.ue(spec.chroma);
        if spec.chroma == 3 {
            w.bit(false);
        }
        w.ue(0);
        w.ue(0);
        w.bit(false);
        w.bit(spec.scaling);
        if spec.scaling {
            for i in 0..if spec.chroma == 3 { 12 } else { 8 } {
                w.bit(true);
                let size = if i < 6 { 16 } else { 64 };
                let mut last = 8;
                for j in 0..size {
                    // Deltas that wander, and one list ending early (a
                    // next scale of 0 stops the deltas).
                    if i == 7 && j == 3 {
                        w.se(-last);
                        break;
                    }
                    let delta = if j % 2 == 0 { 3 } else { -1 };
                    w.se(delta);
                    last += delta;
                }
            }
        }
    }
    w.ue(4); // log2_max_frame_num_minus4
    w.ue(spec.poc_type);
    match spec.poc_type {
        0 => w.ue(4),
        1 => {
            w.bit(false);
            w.se(-2);
            w.se(1);
            w.ue(3);
            for o in [5, -7, 100_000] {
                w.se(o);
            }
        }
        _ => {}
    }
    w.ue(4); // max_num_ref_frames
    w.bit(false);
    w.ue(119); // 120 macroblocks wide
    w.ue(67); // 68 high
    w.bit(true); // frame_mbs_only_flag
    w.bit(true); // direct_8x8_inference_flag
    w.bit(true); // frame_cropping_flag
    for v in [0, 0, 0, 4] {
        w.ue(v);
    }
    w.bit(spec.vui);
    if spec.vui {
        w.bit(true);
        w.u(8, 255); // Extended_SAR
        w.u(16, 1);
        w.u(16, 1);
        w.bit(false); // overscan
        w.bit(true);
        w.u(3, 5);
        w.bit(false);
        w.bit(true);
        w.u(24, 0x01_01_01);
        w.bit(true); // chroma loc
        w.ue(0);
        w.ue(0);
        w.bit(true); // timing: 00 00 00 01, 00 00 00 32 need escaping
        w.u(32, 1);
        w.u(32, 50);
        w.bit(true);
        for _ in 0..2 {
            w.bit(true); // NAL, then VCL HRD
            w.ue(1); // two CPBs
            w.u(4, 0);
            w.u(4, 0);
            for _ in 0..2 {
                w.ue(40_000);
                w.ue(100_000);
                w.bit(false);
            }
            w.u(20, 0xfffff);
        }
        w.bit(false); // low_delay_hrd_flag
        w.bit(false); // pic_struct_present_flag
        w.bit(true); // bitstream_restriction_flag
        w.bit(true);
        for v in [2, 1, 16, 16, 0, 4] {
            w.ue(v);
        }
    }
    w.finish()
}

fn nal(header: &[u8], rbsp: &[u8]) -> Vec<u8> {
    let mut out = header.to_vec();
    bits::escape_into(rbsp, &mut out);
    out
}

fn h264(sps: &[u8], pps: &[u8]) -> VideoCodec {
    VideoCodec::H264 {
        sps: Bytes::copy_from_slice(sps),
        pps: Bytes::copy_from_slice(pps),
    }
}

fn sps_of(codec: &VideoCodec) -> &Bytes {
    match codec {
        VideoCodec::H264 { sps, .. } | VideoCodec::H265 { sps, .. } => sps,
    }
}

/// h264-reader, strict about what follows the syntax (its `finish_rbsp`),
/// reads the SPS, to 1920x1080 where the chroma format is 4:2:0.
fn strictly_parses(sps: &[u8]) -> bool {
    let rbsp = h264_reader::rbsp::decode_nal(sps).unwrap();
    let parsed = h264_reader::nal::sps::SeqParameterSet::from_bits(
        h264_reader::rbsp::BitReader::new(&rbsp[..]),
    );
    match parsed {
        Ok(s) if s.chroma_info.chroma_format == h264_reader::nal::sps::ChromaFormat::YUV420 => {
            matches!(s.pixel_dimensions(), Ok((1920, 1080)))
        }
        Ok(_) => true,
        Err(_) => false,
    }
}

const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];
/// libx265's 320x240 Main parameter sets.
const H265_VPS: &str = "40010c01ffff016000000300900000030000030078959809";
const H265_SPS: &str =
    "42010101600000030090000003000003003ca00a080f165959a4932bc05a020000030002000003003210";
const H265_PPS: &str = "4401c172b46240";

fn h265(vps: &[u8], sps: &[u8], pps: &[u8]) -> VideoCodec {
    VideoCodec::H265 {
        vps: Bytes::copy_from_slice(vps),
        sps: Bytes::copy_from_slice(sps),
        pps: Bytes::copy_from_slice(pps),
    }
}

#[test]
fn clean_parameter_sets_pass_unchanged() {
    for spec in [
        MAIN,
        Spec { vui: false, ..MAIN },
        Spec {
            profile: 100,
            scaling: true,
            poc_type: 1,
            ..MAIN
        },
        Spec {
            profile: 244,
            chroma: 3,
            scaling: true,
            poc_type: 2,
            ..MAIN
        },
    ] {
        let sps = nal(&[0x67], &sps_rbsp(spec));
        assert!(strictly_parses(&sps));
        let codec = h264(&sps, PPS);
        let c = clean(&codec).unwrap();
        assert_eq!(c.codec, codec);
        assert_eq!(c.trimmed_bytes, 0);
    }
    // The timing info needed emulation prevention, kept as it was.
    let sps = nal(&[0x67], &sps_rbsp(MAIN));
    assert!(sps.windows(3).any(|w| w == [0, 0, 3]));
    // The bundled clip (x264) and libx265's sets.
    let clip = crate::camera::clip::builtin().unwrap();
    assert_eq!(clean(&clip.video).unwrap().codec, clip.video);
    let codec = h265(&hex(H265_VPS), &hex(H265_SPS), &hex(H265_PPS));
    assert_eq!(clean(&codec).unwrap().codec, codec);
}

#[test]
fn data_after_the_sps_syntax_is_cut() {
    for spec in [
        MAIN,
        Spec {
            profile: 100,
            scaling: true,
            poc_type: 1,
            ..MAIN
        },
    ] {
        let good = nal(&[0x67], &sps_rbsp(spec));
        for junk in [
            &[0x12, 0x34][..],
            &[0, 0, 0, 1, 0x65], // a start code and a slice header
            &[0xff; 40],
            &[0x80],
        ] {
            let mut rbsp = sps_rbsp(spec);
            rbsp.extend_from_slice(junk);
            let bad = nal(&[0x67], &rbsp);
            assert!(!strictly_parses(&bad), "{junk:?}");
            let c = clean(&h264(&bad, PPS)).unwrap();
            assert_eq!(&sps_of(&c.codec)[..], &good[..], "{junk:?}");
            assert_eq!(c.trimmed_bytes, bad.len() - good.len());
            assert!(strictly_parses(sps_of(&c.codec)));
        }
    }
    // Garbage after the syntax instead of the stop bit (the real stop bit
    // comes later), and no trailing bits at all: written anew.
    let good = sps_rbsp(MAIN);
    let mut no_stop = good.clone();
    *no_stop.last_mut().unwrap() &= !(0x80 >> (trailing_one(&good) % 8));
    no_stop.extend_from_slice(&[0x40, 0x80]);
    let c = clean(&h264(&nal(&[0x67], &no_stop), PPS)).unwrap();
    assert_eq!(&sps_of(&c.codec)[..], &nal(&[0x67], &good)[..]);
}

/// The bit index of the last 1 bit (the stop bit).
fn trailing_one(rbsp: &[u8]) -> usize {
    let last = rbsp.len() - 1;
    last * 8 + 7 - rbsp[last].trailing_zeros() as usize
}

/// retina issue 102: a camera's in-band SPS with a byte after its syntax,
/// which retina tolerates and relays.
#[test]
fn retina_issue_102_sps() {
    let sps = hex("67 64 00 33 ac 15 14 a0 a0 3d a1 00 00 04 f6 00 00 63 38 04 04");
    let c = clean(&h264(&sps, PPS)).unwrap();
    let cleaned = sps_of(&c.codec);
    // The last byte (04) is the one too many: 38 ends with the stop bit.
    assert_eq!(&cleaned[..], &sps[..sps.len() - 1]);
    let rbsp = h264_reader::rbsp::decode_nal(cleaned).unwrap();
    let parsed = h264_reader::nal::sps::SeqParameterSet::from_bits(
        h264_reader::rbsp::BitReader::new(&rbsp[..]),
    );
    assert!(parsed.is_ok(), "{parsed:?}");
    assert_eq!(clean(&c.codec).unwrap().codec, c.codec, "idempotent");
}

#[test]
fn trailing_zero_bytes_are_removed_from_every_slot() {
    let sps = nal(&[0x67], &sps_rbsp(MAIN));
    for tail in [&[0u8][..], &[0, 0], &[0, 0, 3], &[0, 0, 0, 0]] {
        let pad = |b: &[u8]| [b, tail].concat();
        let c = clean(&h264(&pad(&sps), &pad(PPS))).unwrap();
        assert_eq!(c.codec, h264(&sps, PPS), "{tail:?}");
        assert_eq!(c.trimmed_bytes, 2 * tail.len());
        let (v, s, p) = (hex(H265_VPS), hex(H265_SPS), hex(H265_PPS));
        let c = clean(&h265(&pad(&v), &pad(&s), &pad(&p))).unwrap();
        assert_eq!(c.codec, h265(&v, &s, &p), "{tail:?}");
    }
}

#[test]
fn emulation_prevention_is_rewritten_canonically() {
    // A superfluous 03 (00 00 03 followed by more than 03) is dropped, as a
    // decoder would; a missing one (00 00 01 inside) never gets here
    // unescaped: it is escaped on the way out.
    let pps = [0x68, 0xee, 0x00, 0x00, 0x03, 0x3c, 0x80];
    let c = clean(&h264(&nal(&[0x67], &sps_rbsp(MAIN)), &pps)).unwrap();
    let VideoCodec::H264 { pps: out, .. } = &c.codec else {
        unreachable!()
    };
    assert_eq!(&out[..], &[0x68, 0xee, 0x00, 0x00, 0x3c, 0x80]);
    let raw = [0x68, 0xee, 0x00, 0x00, 0x01, 0x80];
    let c = clean(&h264(&nal(&[0x67], &sps_rbsp(MAIN)), &raw)).unwrap();
    let VideoCodec::H264 { pps: out, .. } = &c.codec else {
        unreachable!()
    };
    assert_eq!(&out[..], &[0x68, 0xee, 0x00, 0x00, 0x03, 0x01, 0x80]);
}

#[test]
fn hostile_parameter_sets_are_refused_with_their_slot() {
    let sps = nal(&[0x67], &sps_rbsp(MAIN));
    let err = |codec: VideoCodec| clean(&codec).unwrap_err();
    // Empty.
    assert_eq!(
        err(h264(&sps, &[])),
        Error::Empty {
            slot: Slot::H264Pps
        }
    );
    // Over the cap (a scaling-list SPS padded with a huge VUI-less tail
    // would be trimmed; the cap applies to what the camera sent).
    let mut big = sps.clone();
    big.resize(H264_MAX + 1, 0x55);
    let e = err(h264(&big, PPS));
    assert_eq!(
        e.to_string(),
        "H.264 SPS is 1025 bytes, over the 1024-byte cap"
    );
    let mut big = hex(H265_PPS);
    big.resize(H265_MAX + 1, 0x55);
    assert!(matches!(
        err(h265(&hex(H265_VPS), &hex(H265_SPS), &big)),
        Error::TooLarge {
            slot: Slot::H265Pps,
            len: 4097,
            cap: 4096
        }
    ));
    // Wrong type in a slot: the PPS as SPS, an IDR slice as PPS, the SPS
    // as VPS.
    let e = err(h264(PPS, PPS));
    assert!(
        matches!(
            e,
            Error::WrongType {
                slot: Slot::H264Sps,
                found: 8,
                expected: 7,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("H.264 SPS slot holds NAL unit type 8, not 7: 68 ee 3c 80")
    );
    assert!(matches!(
        err(h264(&sps, &[0x65, 0x88, 0x84])),
        Error::WrongType { found: 5, .. }
    ));
    assert!(matches!(
        err(h265(&hex(H265_SPS), &hex(H265_SPS), &hex(H265_PPS))),
        Error::WrongType {
            slot: Slot::H265Vps,
            found: 33,
            ..
        }
    ));
    // Malformed headers: forbidden bit, H.265 layer 1, temporal id 0 or
    // (for an SPS) not 0, a header cut short.
    let mut forbidden = sps.clone();
    forbidden[0] |= 0x80;
    assert!(matches!(
        err(h264(&forbidden, PPS)),
        Error::BadHeader {
            what: "forbidden_zero_bit set",
            ..
        }
    ));
    for (b0, b1, what) in [
        (0x42, 0x09, "nuh_layer_id is not 0"),
        (0x43, 0x01, "nuh_layer_id is not 0"),
        (0x42, 0x00, "nuh_temporal_id_plus1 out of range"),
        (0x42, 0x02, "nuh_temporal_id_plus1 out of range"),
    ] {
        let mut s = hex(H265_SPS);
        s[0] = b0;
        s[1] = b1;
        let e = err(h265(&hex(H265_VPS), &s, &hex(H265_PPS)));
        assert!(
            matches!(e, Error::BadHeader { slot: Slot::H265Sps, what: w, .. } if w == what),
            "{e}"
        );
    }
    // A PPS may have a temporal id above 0.
    let mut p = hex(H265_PPS);
    p[1] = 0x02;
    assert!(clean(&h265(&hex(H265_VPS), &hex(H265_SPS), &p)).is_ok());
    assert!(matches!(
        err(h265(&[0x40], &hex(H265_SPS), &hex(H265_PPS))),
        Error::BadHeader {
            what: "shorter than the header",
            ..
        }
    ));
    // Nothing but zeros after the header.
    for pps in [&[0x68][..], &[0x68, 0, 0, 0]] {
        assert!(matches!(
            err(h264(&sps, pps)),
            Error::NoPayload {
                slot: Slot::H264Pps,
                ..
            }
        ));
    }
    // An SPS cut short names the field it ends in.
    let e = err(h264(&sps[..6], PPS));
    assert!(
        matches!(
            e,
            Error::Truncated {
                slot: Slot::H264Sps,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().starts_with("H.264 SPS ends inside "), "{e}");
    // Out-of-range fields that would steer the parse.
    let mut w = W::default();
    w.u(24, 0x64_00_28);
    w.ue(0);
    w.ue(4); // chroma_format_idc 4
    let e = err(h264(&nal(&[0x67], &w.finish()), PPS));
    assert!(
        matches!(
            e,
            Error::OutOfRange {
                field: "chroma_format_idc",
                value: 4,
                ..
            }
        ),
        "{e}"
    );
    let mut w = W::default();
    w.u(24, 0x4d_00_28);
    w.ue(32); // seq_parameter_set_id 32
    let e = err(h264(&nal(&[0x67], &w.finish()), PPS));
    assert!(e.to_string().contains("seq_parameter_set_id = 32"), "{e}");
}

#[test]
fn never_panics_and_is_idempotent_on_garbage() {
    let mut seed = 0x9e37_79b9u32;
    let mut next = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 16) as u8
    };
    for i in 0..20_000 {
        let len = usize::from(next() % 48);
        let mut body: Vec<u8> = (0..len).map(|_| next()).collect();
        // Mostly valid headers, so the parsers get to run.
        let codec = if i % 2 == 0 {
            body.insert(0, 0x67);
            let mut pps = PPS.to_vec();
            if i % 4 == 0 {
                pps.extend_from_slice(&body[1..]);
            }
            h264(&body, &pps)
        } else {
            body.splice(0..0, [0x42, 0x01]);
            h265(&hex(H265_VPS), &body, &hex(H265_PPS))
        };
        if let Ok(c) = clean(&codec) {
            let again = clean(&c.codec).expect("a cleaned codec stays clean");
            assert_eq!(again.codec, c.codec);
            assert_eq!(again.trimmed_bytes, 0);
        }
    }
}
