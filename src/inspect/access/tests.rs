use super::*;
use bytes::Bytes;

/// Annex B byte stream -> access units (one slice per picture in these
/// clips: every VCL unit starts a new access unit, with the non-VCL units
/// before it).
fn access_units(stream: &[u8], vcl: impl Fn(&[u8]) -> bool) -> Vec<Vec<&[u8]>> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= stream.len() {
        if stream[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut nals = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let mut end = starts.get(k + 1).map_or(stream.len(), |&n| n - 3);
        while end > s && stream[end - 1] == 0 {
            end -= 1;
        }
        nals.push(&stream[s..end]);
    }
    let mut aus = Vec::new();
    let mut cur = Vec::new();
    for n in nals {
        let is_vcl = vcl(n);
        cur.push(n);
        if is_vcl {
            aus.push(std::mem::take(&mut cur));
        }
    }
    aus
}

fn find(aus: &[Vec<&[u8]>], ty: impl Fn(&[u8]) -> bool) -> Bytes {
    aus.iter()
        .flatten()
        .find(|n| ty(n))
        .map(|n| Bytes::copy_from_slice(n))
        .expect("parameter set in the clip")
}

/// The x264 open-GOP clip's access units and its parameter sets.
fn x264_open_gop() -> (Vec<Vec<&'static [u8]>>, VideoCodec) {
    let stream: &'static [u8] = include_bytes!("../../../assets/test/open-gop.h264");
    let aus = access_units(stream, |n| matches!(n[0] & 0x1f, 1 | 5));
    let h = |t: u8| move |n: &[u8]| n[0] & 0x1f == t;
    let codec = VideoCodec::H264 {
        sps: find(&aus, h(7)),
        pps: find(&aus, h(8)),
    };
    (aus, codec)
}

fn letters(p: &[Picture]) -> String {
    p.iter()
        .map(|p| match p {
            Picture::Key => 'K',
            Picture::Leading => 'L',
            Picture::DecodableLeading => 'R',
            Picture::Delta => 'd',
            Picture::None => '-',
        })
        .collect()
}

// The clips: ffmpeg testsrc 64x64, 30 frames, keyint 10, 3 B-frames,
// x264 `open-gop=1` / x265 defaults (open GOP). The expected patterns are
// from ffprobe's view of the same encodes in Matroska (packet pts in
// decoding order): x264 `0K 400 200 100 300 800 600 500 700 1000K 900 1400
// ...`, x265 `0K 300 200 100 600 500 400 1000K 800 700 900 ...`; a leading
// picture is one with a pts below its key frame's.

#[test]
fn x265_open_gop_cra_is_key_and_its_rasl_pictures_leading() {
    let stream = include_bytes!("../../../assets/test/open-gop.h265");
    let aus = access_units(stream, |n| (n[0] >> 1) & 0x3f < 32);
    let h = |t: u8| move |n: &[u8]| (n[0] >> 1) & 0x3f == t;
    let codec = VideoCodec::H265 {
        vps: find(&aus, h(32)),
        sps: find(&aus, h(33)),
        pps: find(&aus, h(34)),
    };
    let mut c = Classifier::new(&codec);
    let got: Vec<_> = aus.iter().map(|au| c.classify(au)).collect();
    assert_eq!(
        letters(&got),
        "Kdddddd\
         KLLLdddddddd\
         KLddddddddd"
    );
}

#[test]
fn x264_open_gop_recovery_point_is_key_and_its_leading_b_frames_leading() {
    let (aus, codec) = x264_open_gop();
    let mut c = Classifier::new(&codec);
    let got: Vec<_> = aus.iter().map(|au| c.classify(au)).collect();
    assert_eq!(
        letters(&got),
        "Kdddddddd\
         KLdddddddd\
         KLddddddddd"
    );
}

#[test]
fn units_without_a_slice_are_no_picture() {
    let h265 = VideoCodec::H265 {
        vps: Bytes::from_static(&[0x40, 1, 0]),
        sps: Bytes::from_static(&[0x42, 1, 0]),
        pps: Bytes::from_static(&[0x44, 1, 0]),
    };
    let mut c = Classifier::new(&h265);
    // AUD, prefix SEI, filler, VPS: no picture, however many.
    let aud: &[u8] = &[35 << 1, 1, 0x50];
    let sei: &[u8] = &[39 << 1, 1, 5, 1, 0, 0x80];
    let fd: &[u8] = &[38 << 1, 1, 0xff, 0xff];
    assert_eq!(c.classify(&[aud, sei, fd, fd]), Picture::None);
    assert_eq!(c.classify(&[]), Picture::None);
    // A two-byte "slice" is a header with nothing after it.
    assert_eq!(c.classify(&[&[19 << 1, 1]]), Picture::None);
    assert_eq!(c.classify(&[aud, &[19 << 1, 1, 0xaf]]), Picture::Key);
    assert_eq!(c.classify(&[&[1 << 1, 1, 0xaf]]), Picture::Delta);
    // Reserved non-VCL types never make a picture.
    assert_eq!(c.classify(&[&[48 << 1, 1, 0xaf]]), Picture::None);

    let h264 = VideoCodec::H264 {
        sps: Bytes::from_static(&[0x67, 0x42, 0, 0x1e]),
        pps: Bytes::from_static(&[0x68, 0xce]),
    };
    let mut c = Classifier::new(&h264);
    let aud: &[u8] = &[0x09, 0xf0];
    let filler: &[u8] = &[0x0c, 0xff, 0xff, 0x80];
    assert_eq!(c.classify(&[aud, filler]), Picture::None);
    // A slice header byte with nothing after it.
    assert_eq!(c.classify(&[aud, &[0x65]]), Picture::None);
    assert_eq!(c.classify(&[aud, &[0x65, 0x88]]), Picture::Key);
    assert_eq!(c.classify(&[aud, &[0x41, 0x9a]]), Picture::Delta);
}

#[test]
fn a_recovery_point_without_an_intra_slice_or_with_a_count_is_not_key() {
    let (aus, codec) = x264_open_gop();
    // Recovery point SEI (type 6, recovery_frame_cnt = 0) before a P slice.
    let sei_now: &[u8] = &[0x06, 0x06, 0x01, 0x80, 0x80];
    // recovery_frame_cnt = 1 (ue 010) before an I slice: gradual refresh.
    let sei_later: &[u8] = &[0x06, 0x06, 0x01, 0x40, 0x80];
    let p_slice = aus[1].last().copied().unwrap_or_default();
    let i_slice = aus[9].last().copied().unwrap_or_default();
    let mut c = Classifier::new(&codec);
    assert_eq!(c.classify(&[sei_now, i_slice]), Picture::Key);
    let mut c = Classifier::new(&codec);
    assert_eq!(c.classify(&[sei_now, p_slice]), Picture::Delta);
    assert_eq!(c.classify(&[sei_later, i_slice]), Picture::Delta);
    // Truncated and overlong SEI sizes never count.
    assert_eq!(c.classify(&[&[0x06, 0x06, 0xff], i_slice]), Picture::Delta);
    assert_eq!(
        c.classify(&[&[0x06, 0x06, 0x09, 0x80], i_slice]),
        Picture::Delta
    );
}

#[test]
fn never_panics_on_garbage() {
    let codecs = [
        VideoCodec::H264 {
            sps: Bytes::from_static(&[0x67, 0x64, 0, 0x1f, 0xff, 0xff, 0xff]),
            pps: Bytes::from_static(&[0x68]),
        },
        VideoCodec::H265 {
            vps: Bytes::new(),
            sps: Bytes::new(),
            pps: Bytes::new(),
        },
    ];
    let mut x: u32 = 0x1234_5678;
    for codec in &codecs {
        let mut c = Classifier::new(codec);
        for len in 0..300usize {
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            let nals: Vec<&[u8]> = data.chunks(1 + len % 17).collect();
            let _ = c.classify(&nals);
        }
    }
}
