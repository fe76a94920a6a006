//! Inspection cost per frame, with criterion: sanitizing an access unit
//! (x264's SEI removed from a key frame; the no-change fast path on a delta
//! frame), the monitor's bookkeeping, and publishing a frame with
//! inspection on and off (the difference is what inspection adds to the
//! hot path).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use camgate::inspect::monitor::{Monitor, Shared};
use camgate::inspect::sanitize::{self, Policy, Syntax};
use camgate::media::hub::{Hub, HubLimits};
use camgate::media::publisher::Publisher;
use camgate::media::{SourceFrame, StreamInfo, Track, VideoCodec};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn clip() -> (VideoCodec, Vec<(Bytes, bool)>) {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/clip.h264")).unwrap();
    camgate::camera::clip::parse_h264_annexb(&data).unwrap()
}

fn publisher(codec: &VideoCodec, inspect: bool) -> Publisher {
    let hub = Hub::new(HubLimits {
        queue_bytes: u64::MAX,
        max_lag: Duration::from_secs(3600),
        gop_cache_max_bytes: 64 << 20,
    });
    let mut p = Publisher::new(
        hub,
        camgate::metrics::Metrics::new().stream("d", "s"),
        1400,
        "bench".into(),
    );
    p.set_inspection(
        inspect.then_some(Policy::STRICT),
        Arc::new(Shared::new("s")),
    );
    p.begin_session(StreamInfo {
        tracks: vec![Track::Video(codec.clone())],
    });
    p
}

fn benches(c: &mut Criterion) {
    let (codec, frames) = clip();
    // The clip's first frame carries x264's SEI user data.
    let key = frames[0].0.clone();
    let delta = frames.iter().find(|f| !f.1).unwrap().0.clone();
    let key_nals = camgate::rtp::length_prefixed_nals(&key).unwrap();
    let delta_nals = camgate::rtp::length_prefixed_nals(&delta).unwrap();
    let stripped = sanitize::access_unit(Syntax::H264, Policy::STRICT, &key_nals)
        .map(|(_, s)| s.total())
        .unwrap_or(0);
    println!(
        "key frame {} bytes ({} SEI user-data bytes stripped), delta frame {} bytes",
        key.len(),
        stripped,
        delta.len()
    );
    assert!(
        stripped > 0,
        "the bundled clip's first frame has x264's SEI"
    );

    let mut g = c.benchmark_group("sanitize");
    g.throughput(Throughput::Bytes(key.len() as u64));
    g.bench_function("key_frame_with_x264_sei", |b| {
        b.iter(|| sanitize::access_unit(Syntax::H264, Policy::STRICT, &key_nals))
    });
    g.throughput(Throughput::Bytes(delta.len() as u64));
    g.bench_function("delta_frame_nothing_to_strip", |b| {
        b.iter(|| sanitize::access_unit(Syntax::H264, Policy::STRICT, &delta_nals))
    });
    g.finish();

    let mut g = c.benchmark_group("monitor");
    let mut m = Monitor::new(Arc::new(Shared::new("s")));
    m.new_session(1);
    let t0 = tokio::time::Instant::now();
    let mut n = 0u64;
    g.bench_function("frame", |b| {
        b.iter(|| {
            n += 1;
            m.frame(
                0,
                true,
                n.is_multiple_of(50),
                (n * 3600) as i64,
                20_000,
                t0 + Duration::from_millis(n * 40),
            )
        })
    });
    g.finish();

    let mut g = c.benchmark_group("publish");
    for (name, data, is_key) in [("key", key.clone(), true), ("delta", delta.clone(), false)] {
        for inspect in [false, true] {
            let mut p = publisher(&codec, inspect);
            p.push(&SourceFrame {
                track: 0,
                pts: 0,
                key: true,
                data: key.clone(),
            })
            .unwrap();
            let mut pts = 0i64;
            g.throughput(Throughput::Bytes(data.len() as u64));
            let label = if inspect { "inspect_on" } else { "inspect_off" };
            g.bench_function(format!("{name}_frame_{label}"), |b| {
                b.iter(|| {
                    pts += 3600;
                    p.push(&SourceFrame {
                        track: 0,
                        pts,
                        key: is_key,
                        data: data.clone(),
                    })
                    .unwrap()
                })
            });
        }
    }
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
