//! A hostile camera that never ends an access unit, on a 200 Mbit/s link,
//! next to an honest one: camgate's memory guard sheds the hostile session
//! over and over (reason `memory`, with backoff) long before the read
//! timeout, the process's resident memory stays within a bound, and the
//! honest camera's recorder plays on undisturbed. Its own test binary: it
//! measures the process's memory.

mod support;

use std::time::{Duration, Instant};

use support::scripted_camera::{Options, ScriptedCamera};

/// One test at a time: each measures the process's memory.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
use support::*;

fn device(id: &str, port: u16) -> String {
    format!(
        "[[device]]\nid = \"{id}\"\nhost = \"127.0.0.1\"\nrtsp_port = {port}\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_ending_access_unit_is_shed_by_memory_and_others_play_on() {
    let _serial = SERIAL.lock().await;
    const LIMIT: u64 = 64 << 20;
    const RATE: u64 = 25_000_000;
    let good = ScriptedCamera::start().await;
    let bad = ScriptedCamera::start_with(Options {
        endless_au: Some((10, RATE)),
        ..Options::default()
    })
    .await;
    // A read timeout far away: only the memory guard can end the session
    // in time (without it, 30 s at 25 MB/s is some 750 MB buffered).
    let base = base_config("").replace(
        "read_timeout_secs = 5",
        &format!("read_timeout_secs = 30\nmemory_limit_bytes = {LIMIT}"),
    );
    let config = format!(
        "{base}\n{}\n{}",
        device("good", good.addr.port()),
        device("bad", bad.addr.port())
    );
    let app = spawn_app(&config, &[]).await;
    let baseline = camgate::camera::memory::rss_bytes().unwrap();
    let url = app.url("good/main");
    let recorder = tokio::spawn(async move { ffmpeg_decode(&url, "tcp", 12).await });
    let started = Instant::now();
    let mut peak = baseline;
    while started.elapsed() < Duration::from_secs(13) {
        peak = peak.max(camgate::camera::memory::rss_bytes().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, stderr) = recorder.await.unwrap();
    assert!(
        ok && stderr.trim().is_empty(),
        "the honest camera's recorder: {stderr}"
    );
    let shed = reconnects(&app, "bad", "memory").await;
    assert!(shed >= 2.0, "the hostile session was shed {shed} times");
    assert_eq!(
        reconnects(&app, "good", "memory").await,
        0.0,
        "the honest camera delivers video: never shed"
    );
    // The bound: the limit (or where the process stood, if above it) plus
    // what the link delivers while a stall is detected (2 s, sampled every
    // 0.2 s) at retina's ~1.6 bytes held per byte received, plus slack for
    // the allocator and the recorder.
    let bound = baseline.max(LIMIT) + RATE * 22 / 10 * 16 / 10 + (64 << 20);
    eprintln!(
        "baseline {} MiB, peak {} MiB, bound {} MiB, shed {shed} times",
        baseline >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(
        peak <= bound,
        "peak RSS {} MiB over the bound {} MiB (baseline {} MiB)",
        peak >> 20,
        bound >> 20,
        baseline >> 20
    );
    app.stop().await;
}

/// The same against a camera that answers DESCRIBE with a 10 GB body at
/// 200 Mbit/s (retina's RTSP parser has no message size limit): the step
/// ends under memory pressure long before its 30 s timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_describe_answer_is_shed_by_memory() {
    let _serial = SERIAL.lock().await;
    const LIMIT: u64 = 64 << 20;
    const RATE: u64 = 25_000_000;
    let bad = ScriptedCamera::start_with(Options {
        endless_describe: Some(RATE),
        ..Options::default()
    })
    .await;
    let base = base_config("").replace(
        "connect_timeout_secs = 5",
        &format!("connect_timeout_secs = 30\nmemory_limit_bytes = {LIMIT}"),
    );
    let config = format!("{base}\n{}", device("bad", bad.addr.port()));
    let app = spawn_app(&config, &[]).await;
    let baseline = camgate::camera::memory::rss_bytes().unwrap();
    let started = Instant::now();
    let mut peak = baseline;
    while started.elapsed() < Duration::from_secs(12) {
        peak = peak.max(camgate::camera::memory::rss_bytes().unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let shed = reconnects(&app, "bad", "memory").await;
    let bound = baseline.max(LIMIT) + RATE * 22 / 10 * 2 + (64 << 20);
    eprintln!(
        "baseline {} MiB, peak {} MiB, bound {} MiB, shed {shed} times",
        baseline >> 20,
        peak >> 20,
        bound >> 20
    );
    assert!(shed >= 2.0, "the hostile session was shed {shed} times");
    assert!(
        peak <= bound,
        "peak RSS {} MiB over {} MiB",
        peak >> 20,
        bound >> 20
    );
    app.stop().await;
}
