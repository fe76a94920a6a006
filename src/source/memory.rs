//! The memory guard: a hard ceiling on what hostile cameras can make
//! camgate hold.
//!
//! retina buffers an access unit until it ends, and its RTSP parser reads a
//! message of any length, with no hook to cap either (an upstream change
//! would need a maximum access unit size on its depacketizers and
//! `max_message_size` exposed in `SessionOptions`). The video-progress
//! watchdog bounds that memory by time (`read_timeout_secs` of the camera's
//! link rate); this guard bounds it by size: a sampler reads the process's
//! resident memory every [`SAMPLE`], and while it is over the limit every
//! camera session that has delivered no video frame for [`STALLED`] (the
//! ones whose bytes are piling up inside retina, or which are stuck in a
//! huge RTSP message) ends with reason `memory` and reconnects with backoff;
//! over twice the limit, [`STALLED_SEVERE`] without video is enough.
//! Sessions that deliver video are never touched, so a recorder backlog or a
//! large estate over the limit costs nothing but a warning.

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

    /// How long a session may go without video before it is shed: `None`
    /// under the limit.
    pub fn stall_allowed(&self) -> Option<Duration> {
        if self.severe.load(Ordering::Relaxed) {
            Some(STALLED_SEVERE)
        } else if self.over() {
            Some(STALLED)
        } else {
            None
        }
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
        assert_eq!(g.stall_allowed(), None);
        g.observe(101 << 20);
        assert!(g.over());
        assert_eq!(g.stall_allowed(), Some(STALLED));
        assert_eq!(g.rss(), 101 << 20);
        g.observe(201 << 20);
        assert_eq!(g.stall_allowed(), Some(STALLED_SEVERE));
        g.observe(99 << 20);
        assert!(!g.over());
        assert_eq!(g.stall_allowed(), None);
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
