//! Per-stream measurements from the frames themselves (frame rate from
//! timestamps, bitrate, GOP length) and change detection: codec, resolution
//! or parameter-set changes, tracks appearing or vanishing, a bitrate spike,
//! a frame-rate collapse, timestamps going backwards.
//!
//! The [`Monitor`] lives in the stream's publisher (one writer, no lock) and
//! reports what it measured through [`Shared`], which the admin API reads.
//! Time comes in as an argument, so tests drive it directly.
//!
//! Thresholds (documented in the README):
//! - bitrate spike: every one-second bucket above 3x the rolling median of
//!   the last 60 s for more than 10 s (after 20 s of history);
//! - frame-rate collapse: video frames per second below half the rolling
//!   median for 5 s in a row (after 20 s of history);
//! - timestamps backwards: an audio timestamp before the previous one, or a
//!   video timestamp more than 1 s before the latest one (B-frames reorder
//!   video timestamps legitimately, by a few frames).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::time::Instant;

/// A change camgate noticed: the `event` label of
/// `camgate_inspect_events_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    CodecChange,
    ResolutionChange,
    ParameterSetChange,
    TrackAdded,
    TrackRemoved,
    BitrateSpike,
    FramerateCollapse,
    TimestampBackwards,
}

impl Event {
    pub const ALL: [Event; 8] = [
        Event::CodecChange,
        Event::ResolutionChange,
        Event::ParameterSetChange,
        Event::TrackAdded,
        Event::TrackRemoved,
        Event::BitrateSpike,
        Event::FramerateCollapse,
        Event::TimestampBackwards,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::CodecChange => "codec_change",
            Event::ResolutionChange => "resolution_change",
            Event::ParameterSetChange => "parameter_set_change",
            Event::TrackAdded => "track_added",
            Event::TrackRemoved => "track_removed",
            Event::BitrateSpike => "bitrate_spike",
            Event::FramerateCollapse => "framerate_collapse",
            Event::TimestampBackwards => "timestamp_backwards",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

/// An event as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub event: &'static str,
    pub stream: String,
    /// What changed, e.g. `640x360 -> 320x180`.
    pub detail: String,
    #[serde(skip)]
    pub at: SystemTime,
}

/// Events kept per stream for the API.
const EVENT_LOG: usize = 16;
/// Seconds of one-second buckets kept for the rolling medians.
const HISTORY_SECS: usize = 60;
/// Buckets needed before spikes and collapses are judged.
const MIN_HISTORY: usize = 20;
const SPIKE_FACTOR: u64 = 3;
const SPIKE_SECS: u32 = 10;
const COLLAPSE_SECS: u32 = 5;
/// Video timestamps may go back this far (90 kHz) before it counts.
const VIDEO_REORDER_TICKS: i64 = 90_000;

/// What the monitor measured, for readers on other tasks.
#[derive(Debug)]
pub struct Shared {
    stream: String,
    /// Frames in the last complete GOP (key frame to key frame).
    gop_frames: AtomicU32,
    /// Video frame rate from timestamps, times 100.
    fps_x100: AtomicU64,
    /// Bytes removed by the sanitizer, by [`super::sanitize::StripKind`].
    stripped: [AtomicU64; super::sanitize::StripKind::COUNT],
    events: Mutex<VecDeque<EventRecord>>,
}

impl Shared {
    pub fn new(stream: &str) -> Shared {
        Shared {
            stream: stream.to_string(),
            gop_frames: AtomicU32::new(0),
            fps_x100: AtomicU64::new(0),
            stripped: Default::default(),
            events: Mutex::new(VecDeque::with_capacity(EVENT_LOG)),
        }
    }

    pub fn gop_frames(&self) -> u32 {
        self.gop_frames.load(Ordering::Relaxed)
    }

    pub fn fps(&self) -> f64 {
        self.fps_x100.load(Ordering::Relaxed) as f64 / 100.0
    }

    pub fn stripped(&self, kind: super::sanitize::StripKind) -> u64 {
        self.stripped[kind.index()].load(Ordering::Relaxed)
    }

    pub fn add_stripped(&self, s: &super::sanitize::Stripped) {
        for (i, n) in s.0.iter().enumerate() {
            if *n > 0 {
                self.stripped[i].fetch_add(*n, Ordering::Relaxed);
            }
        }
    }

    /// The latest events, newest first.
    pub fn events(&self) -> Vec<EventRecord> {
        let log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        log.iter().rev().cloned().collect()
    }

    fn record(&self, event: Event, detail: String) {
        let mut log = self.events.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == EVENT_LOG {
            log.pop_front();
        }
        log.push_back(EventRecord {
            event: event.as_str(),
            stream: self.stream.clone(),
            detail,
            at: SystemTime::now(),
        });
    }
}

/// Per-second counts.
#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    bytes: u64,
    video_frames: u32,
}

/// See the module docs.
#[derive(Debug)]
pub struct Monitor {
    shared: std::sync::Arc<Shared>,
    frames_since_key: u32,
    seen_key: bool,
    /// Per track: the latest and the largest timestamp of this session.
    last_pts: Vec<Option<(i64, i64)>>,
    /// Video timestamps in the current fps window: (first, last, count).
    fps_window: Option<(i64, i64, u32)>,
    bucket_start: Option<Instant>,
    bucket: Bucket,
    history: VecDeque<Bucket>,
    spike_secs: u32,
    spiking: bool,
    collapse_secs: u32,
    collapsed: bool,
}

/// What the monitor wants reported for one frame (rare; usually nothing).
pub type Found = smallvec::SmallVec<[(Event, String); 1]>;

impl Monitor {
    pub fn new(shared: std::sync::Arc<Shared>) -> Monitor {
        Monitor {
            shared,
            frames_since_key: 0,
            seen_key: false,
            last_pts: Vec::new(),
            fps_window: None,
            bucket_start: None,
            bucket: Bucket::default(),
            history: VecDeque::with_capacity(HISTORY_SECS + 1),
            spike_secs: 0,
            spiking: false,
            collapse_secs: 0,
            collapsed: false,
        }
    }

    pub fn shared(&self) -> &std::sync::Arc<Shared> {
        &self.shared
    }

    /// A new source session: timestamps restart, so forget them. The rate
    /// history carries on, but the time the source was away is not counted
    /// as silent seconds (an on-demand stream idle for minutes did not
    /// collapse), and runs of spiking or collapsing seconds start over.
    pub fn new_session(&mut self, tracks: usize) {
        self.last_pts = vec![None; tracks];
        self.fps_window = None;
        self.frames_since_key = 0;
        self.seen_key = false;
        self.bucket_start = None;
        self.bucket = Bucket::default();
        self.spike_secs = 0;
        self.spiking = false;
        self.collapse_secs = 0;
        self.collapsed = false;
    }

    /// Records an event found outside the frame path (a description change).
    pub fn record(&self, event: Event, detail: String) {
        self.shared.record(event, detail);
    }

    /// Accounts one published frame; returns the events it revealed.
    pub fn frame(
        &mut self,
        track: usize,
        video: bool,
        key: bool,
        pts: i64,
        bytes: usize,
        now: Instant,
    ) -> Found {
        let mut found = Found::new();
        self.tick(now, &mut found);
        self.bucket.bytes += bytes as u64;
        if let Some(slot) = self.last_pts.get_mut(track) {
            if let Some((last, max)) = *slot {
                let backwards = if video {
                    pts < max - VIDEO_REORDER_TICKS
                } else {
                    pts < last
                };
                if backwards {
                    found.push((
                        Event::TimestampBackwards,
                        format!("track {track}: {pts} after {last}"),
                    ));
                    // Start over from here rather than report every frame.
                    *slot = Some((pts, pts));
                } else {
                    *slot = Some((pts, max.max(pts)));
                }
            } else {
                *slot = Some((pts, pts));
            }
        }
        if video {
            self.bucket.video_frames += 1;
            if key {
                if self.seen_key {
                    self.shared
                        .gop_frames
                        .store(self.frames_since_key, Ordering::Relaxed);
                }
                self.seen_key = true;
                self.frames_since_key = 0;
            }
            self.frames_since_key = self.frames_since_key.saturating_add(1);
            self.fps_sample(pts);
        }
        for (e, d) in &found {
            self.shared.record(*e, d.clone());
        }
        found
    }

    /// Frame rate from timestamps over windows of about one second.
    fn fps_sample(&mut self, pts: i64) {
        let (first, _, count) = match self.fps_window {
            Some((first, _, count)) if pts >= first => (first, pts, count + 1),
            _ => (pts, pts, 1),
        };
        let span = pts - first;
        if span >= 90_000 && count > 1 {
            let fps = f64::from(count - 1) * 90_000.0 / span as f64;
            self.shared
                .fps_x100
                .store((fps * 100.0).round() as u64, Ordering::Relaxed);
            self.fps_window = Some((pts, pts, 1));
        } else {
            self.fps_window = Some((first, pts, count));
        }
    }

    /// Closes the one-second buckets that have ended by `now`.
    fn tick(&mut self, now: Instant, found: &mut Found) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start).as_secs();
        if elapsed == 0 {
            return;
        }
        // A long silence closes at most a history's worth of empty buckets.
        for _ in 0..elapsed.min(HISTORY_SECS as u64 + 1) {
            let b = std::mem::take(&mut self.bucket);
            self.close_bucket(b, found);
        }
        self.bucket_start = Some(start + Duration::from_secs(elapsed));
    }

    fn close_bucket(&mut self, b: Bucket, found: &mut Found) {
        if self.history.len() >= MIN_HISTORY {
            let mut bytes: Vec<u64> = self.history.iter().map(|h| h.bytes).collect();
            let mut fps: Vec<u32> = self.history.iter().map(|h| h.video_frames).collect();
            let median_bytes = median(&mut bytes);
            let median_fps = median(&mut fps);
            if median_bytes > 0 && b.bytes > SPIKE_FACTOR * median_bytes {
                self.spike_secs += 1;
                if self.spike_secs > SPIKE_SECS && !self.spiking {
                    self.spiking = true;
                    found.push((
                        Event::BitrateSpike,
                        format!(
                            "{} kbit/s for {} s, median {} kbit/s",
                            b.bytes * 8 / 1000,
                            self.spike_secs,
                            median_bytes * 8 / 1000
                        ),
                    ));
                }
            } else {
                self.spike_secs = 0;
                self.spiking = false;
            }
            if median_fps >= 2 && b.video_frames * 2 < median_fps {
                self.collapse_secs += 1;
                if self.collapse_secs >= COLLAPSE_SECS && !self.collapsed {
                    self.collapsed = true;
                    found.push((
                        Event::FramerateCollapse,
                        format!(
                            "{} frames/s for {} s, median {}",
                            b.video_frames, self.collapse_secs, median_fps
                        ),
                    ));
                }
            } else {
                // A second at half the median or better ends the run; the
                // event re-arms only once the rate is back to 3/4 of it, so
                // a rate hovering around the threshold reports once.
                self.collapse_secs = 0;
                if b.video_frames * 4 >= median_fps * 3 {
                    self.collapsed = false;
                }
            }
        }
        if self.history.len() == HISTORY_SECS {
            self.history.pop_front();
        }
        self.history.push_back(b);
    }
}

fn median<T: Ord + Copy + Default>(v: &mut [T]) -> T {
    if v.is_empty() {
        return T::default();
    }
    let mid = v.len() / 2;
    *v.select_nth_unstable(mid).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn monitor() -> Monitor {
        let mut m = Monitor::new(Arc::new(Shared::new("main")));
        m.new_session(2);
        m
    }

    /// Feeds `secs` seconds of 25 fps video at `kbps`, GOP of 50, from
    /// frame `start_frame` (frame n arrives at n / 25 s).
    fn feed(m: &mut Monitor, t0: Instant, start_frame: u64, secs: u64, kbps: u64) -> Vec<Event> {
        let mut events = Vec::new();
        let bytes = (kbps * 1000 / 8 / 25) as usize;
        for i in 0..secs * 25 {
            let n = start_frame + i;
            let at = t0 + Duration::from_micros(n * 40_000);
            let pts = (n * 3600) as i64;
            for (e, _) in m.frame(0, true, n.is_multiple_of(50), pts, bytes, at) {
                events.push(e);
            }
        }
        events
    }

    #[test]
    fn gop_and_fps_from_timestamps() {
        let mut m = monitor();
        let t0 = Instant::now();
        assert!(feed(&mut m, t0, 0, 5, 4000).is_empty());
        assert_eq!(m.shared.gop_frames(), 50);
        assert!((m.shared.fps() - 25.0).abs() < 0.01, "{}", m.shared.fps());
    }

    #[test]
    fn steady_stream_raises_nothing_and_spike_is_reported_once() {
        let mut m = monitor();
        let t0 = Instant::now();
        assert!(feed(&mut m, t0, 0, 30, 4000).is_empty());
        // 5x the bitrate for 9 s: not yet.
        assert!(feed(&mut m, t0, 30 * 25, 9, 20_000).is_empty());
        // Beyond 10 s: once.
        let e = feed(&mut m, t0, 39 * 25, 10, 20_000);
        assert_eq!(e, vec![Event::BitrateSpike]);
        assert_eq!(m.shared.events()[0].event, "bitrate_spike");
    }

    #[test]
    fn short_burst_is_not_a_spike() {
        let mut m = monitor();
        let t0 = Instant::now();
        feed(&mut m, t0, 0, 30, 4000);
        assert!(feed(&mut m, t0, 30 * 25, 5, 20_000).is_empty());
        assert!(feed(&mut m, t0, 35 * 25, 10, 4000).is_empty());
        assert!(feed(&mut m, t0, 45 * 25, 5, 20_000).is_empty());
    }

    #[test]
    fn framerate_collapse() {
        let mut m = monitor();
        let t0 = Instant::now();
        feed(&mut m, t0, 0, 30, 4000);
        // 5 frames a second from second 30 on.
        let events = feed_fps(&mut m, t0, 30, 10, 5);
        assert_eq!(events, vec![Event::FramerateCollapse]);
    }

    /// Feeds `secs` seconds at `fps` from second `from` (pts from 0).
    fn feed_fps(m: &mut Monitor, t0: Instant, from: u64, secs: u64, fps: u64) -> Vec<Event> {
        let mut events = Vec::new();
        for s in from..from + secs {
            for k in 0..fps {
                let at = t0 + Duration::from_millis(s * 1000 + k * 1000 / fps);
                let pts = ((s * 1000 + k * 1000 / fps) * 90) as i64;
                events.extend(
                    m.frame(0, true, k == 0, pts, 4000, at)
                        .into_iter()
                        .map(|(e, _)| e),
                );
            }
        }
        events
    }

    #[test]
    fn reconnect_after_idle_is_not_a_collapse() {
        let mut m = monitor();
        let t0 = Instant::now();
        assert!(feed_fps(&mut m, t0, 0, 30, 25).is_empty());
        // On demand: the source is away for two minutes, then comes back.
        m.new_session(2);
        assert!(feed_fps(&mut m, t0, 150, 30, 25).is_empty());
    }

    #[test]
    fn collapse_needs_consecutive_slow_seconds() {
        let mut m = monitor();
        let t0 = Instant::now();
        feed_fps(&mut m, t0, 0, 30, 25);
        // Slow seconds broken up by seconds at 60% of the median (above
        // half, below the 3/4 re-arm level): never 5 in a row.
        let mut events = Vec::new();
        for round in 0..6u64 {
            let s = 30 + round * 4;
            events.extend(feed_fps(&mut m, t0, s, 3, 5));
            events.extend(feed_fps(&mut m, t0, s + 3, 1, 15));
        }
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn timestamps_backwards() {
        let mut m = monitor();
        let t = Instant::now();
        assert!(m.frame(0, true, true, 900_000, 10, t).is_empty());
        // B-frame reordering: a few frames back is fine.
        assert!(m.frame(0, true, false, 900_000 - 7200, 10, t).is_empty());
        let e = m.frame(0, true, false, 100, 10, t);
        assert_eq!(e[0].0, Event::TimestampBackwards);
        // Audio: any step back counts.
        assert!(m.frame(1, false, false, 48_000, 10, t).is_empty());
        assert_eq!(
            m.frame(1, false, false, 47_000, 10, t)[0].0,
            Event::TimestampBackwards
        );
        // A new session restarts the clock without an event.
        m.new_session(2);
        assert!(m.frame(0, true, true, 0, 10, t).is_empty());
    }

    #[test]
    fn event_log_is_bounded_newest_first() {
        let m = monitor();
        for i in 0..40 {
            m.record(Event::ParameterSetChange, format!("{i}"));
        }
        let ev = m.shared.events();
        assert_eq!(ev.len(), EVENT_LOG);
        assert_eq!(ev[0].detail, "39");
    }
}
