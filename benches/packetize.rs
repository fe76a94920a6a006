//! Per-frame costs of the hot path, with criterion: packetizing a frame
//! once, and fanning it out to subscribers. Before the timings it prints
//! allocation counts (a counting global allocator), to show that packetizing
//! allocates per frame, not per packet, and that fan-out allocates nothing
//! per packet or per subscriber.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use camgate::media::hub::{Hub, HubLimits, Node};
use camgate::media::publisher::Publisher;
use camgate::media::{SourceFrame, StreamInfo, Track};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn clip() -> (camgate::media::VideoCodec, Vec<(Bytes, bool)>) {
    let data = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/clip.h264")).unwrap();
    camgate::camera::clip::parse_h264_annexb(&data).unwrap()
}

fn hub() -> Hub {
    Hub::new(HubLimits {
        queue_bytes: u64::MAX,
        max_lag: Duration::from_secs(3600),
        gop_cache_max_bytes: 64 << 20,
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Allocations to packetize and publish one frame, and per subscriber to
/// collect it.
fn allocation_counts() {
    let (codec, frames) = clip();
    let rt = rt();
    rt.block_on(async {
        let hub = hub();
        let mut p = Publisher::new(hub.clone(), camgate::metrics::Metrics::new().stream("d", "s"), 1400, "bench".into());
        p.begin_session(StreamInfo { tracks: vec![Track::Video(codec)] });
        let mut subs: Vec<_> = (0..100).map(|_| hub.subscribe()).collect();
        let mut batch: Vec<std::sync::Arc<Node>> = Vec::with_capacity(16);
        for (i, (data, key)) in frames.iter().take(3).enumerate() {
            let f = SourceFrame { track: 0, pts: i as i64 * 3600, key: *key, data: data.clone() };
            let a0 = ALLOCS.load(Ordering::Relaxed);
            p.push(&f).unwrap();
            let a1 = ALLOCS.load(Ordering::Relaxed);
            for s in &mut subs {
                s.next_batch(&mut batch, usize::MAX).await.unwrap();
                batch.clear();
            }
            let a2 = ALLOCS.load(Ordering::Relaxed);
            let packets = data.len().div_ceil(1398);
            println!(
                "allocations: {} frame of {} bytes (~{packets} packets): packetize + publish {}, fan-out to 100 subscribers {}",
                if *key { "key" } else { "delta" },
                data.len(),
                a1 - a0,
                a2 - a1
            );
        }
    });
}

fn benches(c: &mut Criterion) {
    allocation_counts();
    let (codec, frames) = clip();
    let key = frames.iter().find(|f| f.1).unwrap().0.clone();
    let delta = frames.iter().find(|f| !f.1).unwrap().0.clone();
    let mut g = c.benchmark_group("packetize");
    for (name, data, is_key) in [
        ("h264_key_frame", key.clone(), true),
        ("h264_delta_frame", delta.clone(), false),
    ] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        let hub = hub();
        let mut p = Publisher::new(
            hub.clone(),
            camgate::metrics::Metrics::new().stream("d", "s"),
            1400,
            "bench".into(),
        );
        p.begin_session(StreamInfo {
            tracks: vec![Track::Video(codec.clone())],
        });
        p.push(&SourceFrame {
            track: 0,
            pts: 0,
            key: true,
            data: key.clone(),
        })
        .unwrap();
        let mut pts = 0i64;
        g.bench_function(name, |b| {
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
    g.finish();

    let mut g = c.benchmark_group("fanout");
    let rt = rt();
    for n in [1usize, 100, 1000] {
        g.throughput(Throughput::Elements(n as u64));
        let hub = hub();
        let mut p = Publisher::new(
            hub.clone(),
            camgate::metrics::Metrics::new().stream("d", "s"),
            1400,
            "bench".into(),
        );
        p.begin_session(StreamInfo {
            tracks: vec![Track::Video(codec.clone())],
        });
        p.push(&SourceFrame {
            track: 0,
            pts: 0,
            key: true,
            data: key.clone(),
        })
        .unwrap();
        let mut subs: Vec<_> = (0..n).map(|_| hub.subscribe()).collect();
        let mut batch = Vec::with_capacity(16);
        rt.block_on(async {
            for s in &mut subs {
                s.next_batch(&mut batch, usize::MAX).await.unwrap();
                batch.clear();
            }
        });
        let mut pts = 0i64;
        g.bench_function(format!("delta_frame_to_{n}_subscribers"), |b| {
            b.iter(|| {
                pts += 3600;
                p.push(&SourceFrame {
                    track: 0,
                    pts,
                    key: false,
                    data: delta.clone(),
                })
                .unwrap();
                rt.block_on(async {
                    for s in &mut subs {
                        s.next_batch(&mut batch, usize::MAX).await.unwrap();
                        batch.clear();
                    }
                });
            })
        });
    }
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
