use super::*;
use crate::inspect::bits::escape_into;

/// A payload type or size as SEI writes it (0xFF bytes, then the rest).
fn ff(mut v: usize, out: &mut Vec<u8>) {
    while v >= 255 {
        out.push(0xff);
        v -= 255;
    }
    out.push(v as u8);
}

/// An SEI message: type, size, payload (RBSP).
fn msg(t: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    ff(t as usize, &mut v);
    ff(payload.len(), &mut v);
    v.extend_from_slice(payload);
    v
}

/// An SEI NAL unit with these header bytes and messages.
fn sei_unit(header: &[u8], messages: &[Vec<u8>]) -> Vec<u8> {
    let mut rbsp: Vec<u8> = messages.concat();
    rbsp.push(0x80);
    let mut nal = header.to_vec();
    escape_into(&rbsp, &mut nal);
    nal
}

fn h264_sei(messages: &[Vec<u8>]) -> Vec<u8> {
    sei_unit(&[0x06], messages)
}

const PREFIX: [u8; 2] = [39 << 1, 1];
const SUFFIX: [u8; 2] = [40 << 1, 1];

fn x264_user_data() -> Vec<u8> {
    let mut p = vec![0xdcu8; 16]; // UUID
    p.extend_from_slice(b"x264 - core 164 - H.264/MPEG-4 AVC codec");
    p.push(0);
    msg(5, &p)
}

const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x10];
const TRAIL: &[u8] = &[0x02, 0x01, 0xaa];

/// A NAL unit of `t` with a plausible header (H.264 nal_ref_idc 3 or 0;
/// H.265 layer 0, temporal id 0) and a few bytes.
fn unit(syntax: Syntax, t: u8) -> Vec<u8> {
    match syntax {
        Syntax::H264 => vec![
            if t == 6 || t == 9 || t == 12 {
                t
            } else {
                0x60 | t
            },
            0x9a,
            0x55,
        ],
        Syntax::H265 => vec![t << 1, 1, 0x9a, 0x55],
    }
}

/// Sanitizes `nals` with everything on.
fn strict<'a>(syntax: Syntax, nals: &[&'a [u8]]) -> Option<Sanitized<'a>> {
    access_unit(syntax, Policy::STRICT, nals)
}

#[test]
fn nothing_to_do_is_none() {
    let nals: Vec<&[u8]> = vec![IDR, &[0x41, 0x9a]];
    assert!(strict(Syntax::H264, &nals).is_none());
    // A timing-only SEI stays as it is, and so do in-band parameter sets
    // and a delimiter within their caps.
    let timing = h264_sei(&[msg(1, &[0x10, 0x20])]);
    let sps = vec![0x67; params::H264_MAX];
    let nals: Vec<&[u8]> = vec![&[0x09, 0xf0], &sps, &[0x68, 0xce, 0x38, 0x80], &timing, IDR];
    assert!(strict(Syntax::H264, &nals).is_none());
}

/// Every type of the allow-list passes untouched, in both codecs.
#[test]
fn every_kept_nal_type_passes() {
    for t in [1, 5, 7, 8] {
        let u = unit(Syntax::H264, t);
        assert!(strict(Syntax::H264, &[&u]).is_none(), "H.264 type {t}");
    }
    assert!(
        strict(Syntax::H264, &[&[0x09, 0x10]]).is_none(),
        "H.264 AUD"
    );
    let sei = h264_sei(&[msg(6, &[0x84])]);
    assert!(strict(Syntax::H264, &[&sei]).is_none(), "H.264 SEI");
    for t in (0..=9).chain(16..=21).chain(32..=34) {
        let u = unit(Syntax::H265, t);
        assert!(strict(Syntax::H265, &[&u]).is_none(), "H.265 type {t}");
    }
    assert!(
        strict(Syntax::H265, &[&[35 << 1, 1, 0x50]]).is_none(),
        "AUD"
    );
    let prefix = sei_unit(&PREFIX, &[msg(6, &[0x84])]);
    let suffix = sei_unit(&SUFFIX, &[msg(132, &[2, 1, 2, 3, 4])]);
    assert!(strict(Syntax::H265, &[&prefix, TRAIL, &suffix]).is_none());
    // Higher temporal layers are single-layer too.
    assert!(strict(Syntax::H265, &[&[0x02, 0x03, 0xaa]]).is_none());
}

/// Every type outside the allow-list is cut and counted under its kind.
#[test]
fn every_other_nal_type_is_cut_with_its_kind() {
    for t in 0..32u8 {
        let kind = match t {
            1 | 5 | 6 | 7 | 8 | 9 => continue,
            12 => StripKind::Filler,
            2..=4 | 10 | 11 | 13..=16 | 19..=21 => StripKind::DisallowedNal,
            _ => StripKind::ReservedNal,
        };
        let u = unit(Syntax::H264, t);
        let (out, s) = strict(Syntax::H264, &[&u, IDR]).unwrap();
        assert_eq!(out.len(), 1, "H.264 type {t}");
        assert_eq!(&*out[0], IDR);
        assert_eq!(s.get(kind), u.len() as u64, "H.264 type {t}");
        assert_eq!(s.total(), u.len() as u64, "H.264 type {t}");
    }
    for t in 0..64u8 {
        let kind = match t {
            0..=9 | 16..=21 | 32..=35 | 39 | 40 => continue,
            38 => StripKind::Filler,
            36 | 37 => StripKind::DisallowedNal,
            _ => StripKind::ReservedNal,
        };
        let u = unit(Syntax::H265, t);
        let (out, s) = strict(Syntax::H265, &[TRAIL, &u]).unwrap();
        assert_eq!(out.len(), 1, "H.265 type {t}");
        assert_eq!(s.get(kind), u.len() as u64, "H.265 type {t}");
        assert_eq!(s.total(), u.len() as u64, "H.265 type {t}");
    }
}

/// Kept types with headers a single-layer stream never has are cut too.
#[test]
fn hostile_headers_are_cut() {
    let forbidden: &[u8] = &[0xe5, 0x88, 0x84];
    let (out, s) = strict(Syntax::H264, &[forbidden, IDR]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(s.get(StripKind::DisallowedNal), 3);
    for bad in [
        &[0x02, 0x09, 0xaa][..],             // TRAIL_R on layer 1
        &[0x03, 0x01, 0xaa],                 // layer 32
        &[0x02, 0x00, 0xaa],                 // temporal id plus 1 = 0
        &[0x82, 0x01, 0xaa],                 // forbidden bit
        &[39 << 1 | 1, 1, 6, 1, 0x84, 0x80], // SEI on layer 32
        &[0x02],                             // header cut short
    ] {
        let (out, s) = strict(Syntax::H265, &[bad, TRAIL]).unwrap();
        assert_eq!(out.len(), 1, "{bad:02x?}");
        assert_eq!(s.get(StripKind::DisallowedNal), bad.len() as u64);
    }
}

#[test]
fn kept_units_over_their_caps_are_cut() {
    let aud3: &[u8] = &[0x09, 0xf0, 0x00];
    let sps = vec![0x67; params::H264_MAX + 1];
    let pps = vec![0x68; params::H264_MAX + 1];
    let (out, s) = strict(Syntax::H264, &[aud3, &sps, &pps, IDR]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(s.get(StripKind::Oversized), (3 + 2 * sps.len()) as u64);
    let mut vps = vec![0x40, 0x01];
    vps.resize(params::H265_MAX + 1, 0x55);
    let aud4: &[u8] = &[35 << 1, 1, 0x50, 0x00];
    let (out, s) = strict(Syntax::H265, &[&vps, aud4, TRAIL]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(s.get(StripKind::Oversized), (vps.len() + 4) as u64);
    drop(out);
    // At the cap: kept.
    vps.pop();
    assert!(strict(Syntax::H265, &[&vps, TRAIL]).is_none());
}

#[test]
fn user_data_only_sei_is_dropped() {
    let sei = h264_sei(&[x264_user_data()]);
    let nals: Vec<&[u8]> = vec![&sei, IDR];
    let (out, s) = strict(Syntax::H264, &nals).unwrap();
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
    let (out, s) = strict(Syntax::H264, &nals).unwrap();
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
    let (out, _) = strict(Syntax::H264, &nals).unwrap();
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
    let (out, s) = strict(Syntax::H264, &nals).unwrap();
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
        let (out, s) = strict(Syntax::H264, &nals).unwrap();
        assert_eq!(
            &*out[0],
            &h264_sei(std::slice::from_ref(&recovery))[..],
            "type {t}"
        );
        assert_eq!(
            s.get(StripKind::DisallowedSei),
            msg(t, &nested).len() as u64
        );
    }
    let prefix = sei_unit(&PREFIX, &[msg(133, &nested)]);
    let (out, s) = strict(Syntax::H265, &[&prefix]).unwrap();
    assert!(out.is_empty());
    assert_eq!(s.get(StripKind::DisallowedSei), prefix.len() as u64);
}

/// Every kept SEI type passes at its cap and is cut one byte over it.
#[test]
fn every_kept_sei_type_passes_at_its_cap() {
    for (syntax, header, table) in [
        (Syntax::H264, &[0x06][..], &H264_SEI[..]),
        (Syntax::H265, &PREFIX[..], &H265_PREFIX_SEI[..]),
        (Syntax::H265, &SUFFIX[..], &H265_SUFFIX_SEI[..]),
    ] {
        for &(t, cap) in table {
            let at = sei_unit(header, &[msg(t, &vec![0x5a; cap])]);
            assert!(strict(syntax, &[&at]).is_none(), "{syntax:?} {t} at {cap}");
            let keep = msg(if t == 6 { 0 } else { 6 }, &[0x84]);
            let kept_too = table.iter().any(|(k, _)| *k == 6 || *k == 0);
            let over = msg(t, &vec![0x5a; cap + 1]);
            let nal = sei_unit(header, &[keep.clone(), over.clone()]);
            let (out, s) = strict(syntax, &[&nal]).unwrap();
            assert_eq!(s.get(StripKind::Oversized), over.len() as u64, "{t}");
            if kept_too {
                assert_eq!(&*out[0], &sei_unit(header, &[keep])[..]);
            }
        }
    }
}

/// Filler payloads, reserved types, display-steering messages, types of
/// the other codec or the other kind of SEI unit: all cut.
#[test]
fn sei_outside_the_allow_list_is_cut() {
    let recovery = msg(6, &[0x84]);
    let filler = msg(3, &[0xff; 20]);
    let sei = h264_sei(&[filler.clone(), recovery.clone()]);
    let (out, s) = strict(Syntax::H264, &[&sei]).unwrap();
    assert_eq!(&*out[0], &h264_sei(std::slice::from_ref(&recovery))[..]);
    assert_eq!(s.get(StripKind::Filler), filler.len() as u64);
    // A filler-only SEI goes whole, as filler.
    let only = h264_sei(std::slice::from_ref(&filler));
    let (out, s) = strict(Syntax::H264, &[&only, IDR]).unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(s.get(StripKind::Filler), only.len() as u64);
    // H.264: pan-scan, freeze and snapshot, film grain, tone mapping, frame
    // packing, display orientation, the H.265-only types, a reserved type.
    for t in [
        2, 7, 13, 14, 15, 19, 23, 45, 47, 129, 132, 137, 144, 181, 1000,
    ] {
        let bad = msg(t, &[1, 2, 3]);
        let sei = h264_sei(&[recovery.clone(), bad.clone()]);
        let (out, s) = strict(Syntax::H264, &[&sei]).unwrap();
        assert_eq!(
            &*out[0],
            &h264_sei(std::slice::from_ref(&recovery))[..],
            "{t}"
        );
        assert_eq!(s.get(StripKind::DisallowedSei), bad.len() as u64, "{t}");
    }
    // H.265 prefix: no display, decoding unit info, the suffix-only hash.
    for t in [2, 19, 45, 47, 128, 130, 132, 135, 147] {
        let bad = msg(t, &[1, 2, 3]);
        let sei = sei_unit(&PREFIX, &[recovery.clone(), bad.clone()]);
        let (out, s) = strict(Syntax::H265, &[&sei]).unwrap();
        assert_eq!(
            &*out[0],
            &sei_unit(&PREFIX, std::slice::from_ref(&recovery))[..]
        );
        assert_eq!(s.get(StripKind::DisallowedSei), bad.len() as u64, "{t}");
    }
    // H.265 suffix: prefix types are not kept there.
    let hash = msg(132, &[2, 1, 2, 3, 4]);
    for t in [0, 1, 6, 137] {
        let bad = msg(t, &[0x84]);
        let sei = sei_unit(&SUFFIX, &[hash.clone(), bad.clone()]);
        let (out, s) = strict(Syntax::H265, &[&sei]).unwrap();
        assert_eq!(
            &*out[0],
            &sei_unit(&SUFFIX, std::slice::from_ref(&hash))[..]
        );
        assert_eq!(s.get(StripKind::DisallowedSei), bad.len() as u64, "{t}");
    }
}

#[test]
fn a_kept_type_counts_once_per_unit() {
    let timing: Vec<Vec<u8>> = (0..300).map(|i| msg(1, &[i as u8 | 1])).collect();
    let mut all = timing.clone();
    all.push(x264_user_data());
    let sei = h264_sei(&all);
    let (out, s) = strict(Syntax::H264, &[&sei]).unwrap();
    assert_eq!(&*out[0], &h264_sei(&timing[..1])[..]);
    assert_eq!(s.get(StripKind::MalformedSei), 0);
    assert_eq!(s.get(StripKind::DisallowedSei), 299 * 3);
}

#[test]
fn malformed_sei_dropped_whole() {
    for bad in [
        vec![0x06],                        // header only
        vec![0x06, 0x80],                  // no message
        vec![0x06, 5, 200, 1, 2, 3, 0x80], // size overruns
        vec![0x06, 0xff, 0xff, 0xff],      // type never ends
        vec![0x06, 1, 1, 0, 0x55, 0x55],   // junk after a message
    ] {
        let nals: Vec<&[u8]> = vec![&bad, IDR];
        let (out, s) = strict(Syntax::H264, &nals).unwrap();
        assert_eq!(out.len(), 1, "{bad:?}");
        assert_eq!(s.get(StripKind::MalformedSei), bad.len() as u64, "{bad:?}");
    }
}

#[test]
fn h265_prefix_and_suffix_sei() {
    let mut rbsp = x264_user_data();
    rbsp.extend(msg(129, &[1, 2])); // active parameter sets: kept
    rbsp.push(0x80);
    let mut prefix = PREFIX.to_vec();
    escape_into(&rbsp, &mut prefix);
    let suffix = sei_unit(&SUFFIX, &[x264_user_data()]);
    let nals: Vec<&[u8]> = vec![&prefix, TRAIL, &suffix];
    let (out, s) = strict(Syntax::H265, &nals).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(&*out[0], &[39 << 1, 1, 129, 2, 1, 2, 0x80][..]);
    assert_eq!(&*out[1], TRAIL);
    assert!(s.get(StripKind::SeiUserData) > 0);
}

#[test]
fn each_switch_governs_its_own_list() {
    let sei = h264_sei(&[x264_user_data()]);
    let reserved: &[u8] = &[0x17, 1, 2];
    let filler: &[u8] = &[0x0c, 0xff, 0xff, 0x80];
    let nals: Vec<&[u8]> = vec![&sei, reserved, filler, IDR];
    assert!(access_unit(Syntax::H264, Policy::OFF, &nals).is_none());
    let units_only = Policy {
        sei_user_data: false,
        reserved_nals: true,
    };
    let (out, s) = access_unit(Syntax::H264, units_only, &nals).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(&*out[0], &sei[..]);
    assert_eq!(s.get(StripKind::Filler), 4);
    let sei_only = Policy {
        sei_user_data: true,
        reserved_nals: false,
    };
    let (out, s) = access_unit(Syntax::H264, sei_only, &nals).unwrap();
    assert_eq!(out.len(), 3);
    assert_eq!(s.total(), sei.len() as u64);
}

#[test]
fn never_panics_on_garbage_and_a_second_pass_finds_nothing() {
    let mut seed = 0x1234_5678u32;
    let mut next = || {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        (seed >> 16) as u8
    };
    for i in 0..20_000 {
        let mut units = Vec::new();
        for _ in 0..1 + next() % 4 {
            let len = usize::from(next() % 40);
            let mut nal = Vec::with_capacity(len + 2);
            // Mostly SEI headers, so the SEI parser gets to run.
            match next() % 4 {
                0 => nal.push(0x06),
                1 => nal.extend_from_slice(&PREFIX),
                2 => nal.extend_from_slice(&SUFFIX),
                _ => {}
            }
            nal.extend((0..len).map(|_| next()));
            units.push(nal);
        }
        let nals: Vec<&[u8]> = units.iter().map(|u| &u[..]).collect();
        for syntax in [Syntax::H264, Syntax::H265] {
            let Some((out, _)) = access_unit(syntax, Policy::STRICT, &nals) else {
                continue;
            };
            let again: Vec<&[u8]> = out.iter().map(|c| &c[..]).collect();
            if let Some((_, s)) = access_unit(syntax, Policy::STRICT, &again) {
                assert_eq!(s.total(), 0, "{i}: {syntax:?} {units:02x?}");
            }
        }
    }
}
