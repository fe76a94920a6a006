//! Camera video: Annex B access units (first byte picks H.264 or H.265)
//! through the sanitizer, the SPS parsers and the packetizers, as the
//! publisher runs them on every frame a camera sends; the first units also
//! as the camera's parameter sets, through their check; the access unit
//! through the key frame classifier.
#![no_main]

use camgate::inspect::access::{Classifier, Picture};
use camgate::inspect::params;
use camgate::inspect::sanitize::{self, Policy, Syntax};
use camgate::media::VideoCodec;
use camgate::rtp::{self, TrackSender};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let syntax = if sel & 1 == 0 {
        Syntax::H264
    } else {
        Syntax::H265
    };
    let nals = camgate::camera::clip::annexb_nals(rest);
    let out = sanitize::access_unit(syntax, Policy::STRICT, &nals);
    let units: Vec<&[u8]> = match &out {
        Some((kept, _)) => kept.iter().map(|c| &c[..]).collect(),
        None => nals.clone(),
    };
    // Sanitizing what was sanitized finds nothing more to remove.
    if out.is_some() {
        if let Some((_, again)) = sanitize::access_unit(syntax, Policy::STRICT, &units) {
            assert_eq!(again.total(), 0, "second pass removed bytes");
        }
    }
    for n in &nals {
        match syntax {
            Syntax::H264 => {
                let _ = camgate::inspect::facts::h264(n);
            }
            Syntax::H265 => {
                let _ = camgate::inspect::facts::h265(n);
            }
        }
    }
    // The first units as a codec's parameter sets: what passes is clean
    // for good (a second check changes nothing).
    let unit = |i: usize| nals.get(i).map_or_else(Vec::new, |n| n.to_vec()).into();
    let codec = match syntax {
        Syntax::H264 => VideoCodec::H264 {
            sps: unit(0),
            pps: unit(1),
        },
        Syntax::H265 => VideoCodec::H265 {
            vps: unit(0),
            sps: unit(1),
            pps: unit(2),
        },
    };
    if let Ok(c) = params::clean(&codec) {
        let again = params::clean(&c.codec).expect("a cleaned codec stays clean");
        assert_eq!(
            again.codec, c.codec,
            "second check changed the parameter sets"
        );
    }
    // Key frame decisions on the units, with the parameter sets as an SPS
    // (H.264 open-GOP recovery points read slice headers with it): an
    // access unit without a slice is never a picture.
    let mut classifier = Classifier::new(&codec);
    let picture = classifier.classify(&units);
    let has_slice = units.iter().any(|u| match syntax {
        Syntax::H264 => u.len() > 1 && u.first().is_some_and(|h| matches!(h & 0x1f, 1 | 2 | 5)),
        Syntax::H265 => u.len() > 2 && u.first().is_some_and(|h| (h >> 1) & 0x3f < 32),
    });
    assert_eq!(picture == Picture::None, !has_slice, "picture without a slice");
    let mut sender = TrackSender::new(96, 0, 1400);
    let len: usize = units.iter().map(|u| u.len()).sum();
    let mut w = sender.frame(len, units.len());
    match syntax {
        Syntax::H264 => {
            rtp::h264::packetize(&mut w, 9000, &units, None);
        }
        Syntax::H265 => {
            rtp::h265::packetize(&mut w, 9000, &units, None);
        }
    }
    let buf = w.finish();
    for p in rtp::framed_packets(&buf) {
        assert!(p.packet.len() <= 1400 + 12 + 3, "packet over the MTU");
    }
    let _ = rtp::length_prefixed_nals(rest);
});
