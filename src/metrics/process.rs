//! The standard `process_*` metrics (as the Prometheus client libraries
//! name them), read from /proc/self at each scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Reads /proc/self on each scrape; Linux only (elsewhere it reports nothing).
#[derive(Debug)]
pub struct ProcessCollector {
    ticks_per_second: f64,
    page_size: f64,
    start_time: Option<f64>,
}

impl ProcessCollector {
    pub fn new() -> Self {
        let ticks_per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .map_or(100.0, |v| v as f64);
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .map_or(4096.0, |v| v as f64);
        let start_time = stat_fields().and_then(|f| {
            let start_ticks: f64 = f.get(19)?.parse().ok()?;
            let btime: f64 = std::fs::read_to_string("/proc/stat")
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("btime "))?
                .trim()
                .parse()
                .ok()?;
            Some(btime + start_ticks / ticks_per_second)
        });
        ProcessCollector {
            ticks_per_second,
            page_size,
            start_time,
        }
    }
}

impl Default for ProcessCollector {
    fn default() -> Self {
        Self::new()
    }
}

/// Fields of /proc/self/stat after the command name (field 3 onward).
fn stat_fields() -> Option<Vec<String>> {
    let s = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = s.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn max_fds() -> Option<f64> {
    std::fs::read_to_string("/proc/self/limits")
        .ok()?
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

fn gauge(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    v: f64,
) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(v);
    let m = e.encode_descriptor(name, help, None, g.metric_type())?;
    g.encode(m)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let Some(f) = stat_fields() else {
            return Ok(());
        };
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields (from 3): utime 14, stime 15, vsize 23, rss 24 -> indexes 11, 12, 20, 21.
        let cpu = (num(11) + num(12)) / self.ticks_per_second;
        let c = ConstCounter::new(cpu);
        let m = e.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            c.metric_type(),
        )?;
        c.encode(m)?;
        gauge(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            num(21) * self.page_size,
        )?;
        gauge(
            &mut e,
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes",
            num(20),
        )?;
        if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut e,
                "process_open_fds",
                "Number of open file descriptors",
                d.count() as f64,
            )?;
        }
        if let Some(m) = max_fds() {
            gauge(
                &mut e,
                "process_max_fds",
                "Maximum number of open file descriptors",
                m,
            )?;
        }
        if let Some(t) = self.start_time {
            gauge(
                &mut e,
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds",
                t,
            )?;
        }
        Ok(())
    }
}
