//! `/metrics` rendering at scale: 500 devices x 2 streams x 2 recorder
//! sessions (every family populated), and the cost of the hot-path metric
//! updates per frame and per write.

use std::hint::black_box;

use camgate::metrics::Metrics;
use criterion::{Criterion, criterion_group, criterion_main};

fn populated() -> (Metrics, Vec<camgate::metrics::RecorderMetrics>) {
    let m = Metrics::new();
    let mut sessions = Vec::new();
    for d in 0..500 {
        let dev = format!("camera-{d:03}");
        m.device(&dev, "hikvision", Some(1_800_000_000));
        for s in ["main", "sub"] {
            let st = m.stream(&dev, s);
            st.up.set(1);
            st.received_bytes.inc_by(123_456_789);
            st.frames_key.inc_by(1000);
            st.frames_delta.inc_by(49_000);
            st.last_frame.set(1.8e9);
            st.reconnect("timeout");
            for r in ["nvr-a", "nvr-b"] {
                let rm = st.session(r, "tcp");
                rm.sent(987_654_321);
                rm.dropped_queue_full(3);
                sessions.push(rm);
            }
        }
    }
    (m, sessions)
}

fn benches(c: &mut Criterion) {
    let (m, _sessions) = populated();
    let text = m.encode(false);
    println!(
        "/metrics with 500 devices x 2 streams x 2 recorders: {} bytes, {} lines",
        text.len(),
        text.lines().count()
    );
    c.bench_function("metrics/encode_500_devices_prometheus_text", |b| {
        b.iter(|| black_box(m.encode(false)))
    });
    c.bench_function("metrics/encode_500_devices_openmetrics", |b| {
        b.iter(|| black_box(m.encode(true)))
    });

    let st = m.stream("hot", "main");
    c.bench_function("metrics/per_frame_updates", |b| {
        b.iter(|| {
            st.received_bytes.inc_by(black_box(17_000));
            st.frames_delta.inc();
            st.last_frame.set(black_box(1.8e9));
        })
    });
    let rm = st.session("nvr", "tcp");
    c.bench_function("metrics/per_write_update", |b| {
        b.iter(|| rm.sent(black_box(17_000)))
    });
}

criterion_group!(group, benches);
criterion_main!(group);
