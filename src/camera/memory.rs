//! The memory guard: a ceiling on what hostile cameras can make camgate
//! hold.
//!
//! retina buffers an access unit until it ends, and its RTSP parser reads a
//! message of any length, with no hook to cap either (an upstream change
//! would need a maximum access unit size on its depacketizers and
//! `max_message_size` exposed in `SessionOptions`). The video-progress
//! watchdog bounds that memory by time (`read_timeout_secs` of the camera's
//! link rate); this guard bounds it by size. A sampler reads the process's
//! resident memory every [`SAMPLE`]; while it is over the limit, every
//! camera session that has completed no video frame for [`STALLED`] (the
//! ones whose bytes pile up inside retina, or which are stuck in a huge
//! RTSP message) ends with reason `memory` and reconnects with backoff.
//! Over twice the limit, [`STALLED_SEVERE`] is enough. A camera whose
//! frames usually come further apart is given twice its longest gap, up
//! to 8 s (4 s over twice the limit). Sessions that deliver video are
//! never touched, so a recorder backlog or a large estate over the limit
//! costs nothing but a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How often the resident set size is read.
pub const SAMPLE: Duration = Duration::from_millis(200);
/// A session with no video frame for this long is shed under pressure.
/// Cameras send at least one frame a second; twice that leaves margin.
pub const STALLED: Duration = Duration::from_secs(2);
/// The same over twice the limit: the process is in danger, and a camera
/// on a fast link fills memory quickly; honest cameras send a frame at
/// least every half second (2 fps) even at night.
pub const STALLED_SEVERE: Duration = Duration::from_millis(500);
/// The most a camera's usual gap between frames can extend those two:
/// an honest low-frame-rate camera keeps its session, a hostile one that
/// spaced its frames out first gains no more than this.
const GAP_CAP: Duration = Duration::from_secs(8);
const GAP_CAP_SEVERE: Duration = Duration::from_secs(4);
/// The smallest automatic limit.
const MIN_AUTO: u64 = 256 << 20;

/// Shared by every camera session of a camgate.
#[derive(Debug)]
pub struct Guard {
    limit: u64,
    over: AtomicBool,
    severe: AtomicBool,
    rss: AtomicU64,
}

impl Guard {
    /// `limit` in bytes; 0 chooses half the memory available to the
    /// process (the machine's, or the cgroup's when lower), at least 256 MiB.
    pub fn new(limit: u64) -> Arc<Guard> {
        let limit = if limit == 0 { auto_limit() } else { limit };
        Arc::new(Guard {
            limit,
            over: AtomicBool::new(false),
            severe: AtomicBool::new(false),
            rss: AtomicU64::new(0),
        })
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether the last sample was over the limit.
    pub fn over(&self) -> bool {
        self.over.load(Ordering::Relaxed)
    }

    /// Whether a session that has completed no video frame for `stalled`
    /// is shed now. Under the limit, never; over it, after [`STALLED`]
    /// ([`STALLED_SEVERE`] over twice the limit), or twice the camera's
    /// `usual_gap` between frames when longer (up to a cap).
    pub fn sheds(&self, stalled: Duration, usual_gap: Duration) -> bool {
        let (floor, cap) = if self.severe.load(Ordering::Relaxed) {
            (STALLED_SEVERE, GAP_CAP_SEVERE)
        } else if self.over() {
            (STALLED, GAP_CAP)
        } else {
            return false;
        };
        stalled >= floor.max((usual_gap * 2).min(cap))
    }

    /// The last resident set size read, in bytes.
    pub fn rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }

    /// Samples until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(SAMPLE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(rss) = rss_bytes() else {
                // Not Linux, or /proc unreadable: the guard is off.
                return;
            };
            self.observe(rss);
        }
    }

    /// Records a sample; logs when the process crosses the limit either way.
    fn observe(&self, rss: u64) {
        self.rss.store(rss, Ordering::Relaxed);
        let over = rss > self.limit;
        self.severe.store(rss / 2 > self.limit, Ordering::Relaxed);
        if self.over.swap(over, Ordering::Relaxed) != over {
            let (rss_mib, limit_mib) = (rss >> 20, self.limit >> 20);
            if over {
                warn!(
                    rss_mib,
                    limit_mib,
                    "memory over the camera limit: shedding camera sessions that deliver no video"
                );
            } else {
                info!(rss_mib, limit_mib, "memory back under the camera limit");
            }
        }
    }
}

/// When a session's video frames complete, for [`Guard::sheds`].
#[derive(Debug)]
pub struct Cadence {
    last: tokio::time::Instant,
    /// The longest gap between two frames so far (none before the second).
    longest: Duration,
    frames: u64,
}

impl Cadence {
    pub fn new() -> Cadence {
        Cadence {
            last: tokio::time::Instant::now(),
            longest: Duration::ZERO,
            frames: 0,
        }
    }

    /// A video frame completed.
    pub fn frame(&mut self) {
        let now = tokio::time::Instant::now();
        if self.frames > 0 {
            self.longest = self.longest.max(now.duration_since(self.last));
        }
        self.frames += 1;
        self.last = now;
    }

    pub fn since_last(&self) -> Duration {
        self.last.elapsed()
    }

    /// The longest gap seen between frames (a low-frame-rate camera's).
    pub fn usual_gap(&self) -> Duration {
        self.longest
    }
}

impl Default for Cadence {
    fn default() -> Self {
        Cadence::new()
    }
}

/// The process's resident set size (Linux: /proc/self/statm).
pub fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |v| v as u64);
    pages.checked_mul(page)
}

/// Half of the memory available: the machine's, or the cgroup's limit
/// (v2 `memory.max`, v1 `memory.limit_in_bytes`) when lower.
fn auto_limit() -> u64 {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total(&m));
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    let available = match (total, cgroup) {
        (Some(t), Some(c)) => t.min(c),
        (Some(t), None) => t,
        (None, Some(c)) => c,
        (None, None) => 4 << 30,
    };
    (available / 2).max(MIN_AUTO)
}

/// `MemTotal` from /proc/meminfo, in bytes.
fn mem_total(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossing_the_limit_sets_and_clears_pressure() {
        let g = Guard::new(100 << 20);
        assert_eq!(g.limit(), 100 << 20);
        g.observe(50 << 20);
        assert!(!g.over());
        let s = Duration::from_secs;
        assert!(!g.sheds(s(100), Duration::ZERO));
        g.observe(101 << 20);
        assert!(g.over());
        assert_eq!(g.rss(), 101 << 20);
        assert!(!g.sheds(Duration::from_millis(1999), Duration::ZERO));
        assert!(g.sheds(STALLED, Duration::ZERO));
        // A camera at one frame every 3 s keeps 6 s; at one a minute, 8 s.
        assert!(!g.sheds(s(5), s(3)));
        assert!(g.sheds(s(6), s(3)));
        assert!(!g.sheds(s(7), s(60)));
        assert!(g.sheds(s(8), s(60)));
        g.observe(201 << 20);
        assert!(g.sheds(STALLED_SEVERE, Duration::ZERO));
        assert!(!g.sheds(STALLED_SEVERE, Duration::from_millis(400)));
        assert!(g.sheds(s(4), s(60)));
        g.observe(99 << 20);
        assert!(!g.over());
        assert!(!g.sheds(s(100), Duration::ZERO));
    }

    #[test]
    fn automatic_limit_is_half_the_memory_and_never_tiny() {
        assert!(Guard::new(0).limit() >= MIN_AUTO);
        assert_eq!(
            mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(mem_total("MemTotal: lots\n"), None);
        assert_eq!(mem_total(""), None);
        assert!(rss_bytes().is_some_and(|r| r > 0));
    }
}
