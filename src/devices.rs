//! The device registry: every configured device and, for each of its
//! streams, the hub, the metric handles and the measured rates, looked up by
//! the names in recorder-facing URLs.
//!
//! Built once from the config at start; the source tasks write to the hubs,
//! the RTSP server reads from them, the admin API reports on them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{Config, Device};
use crate::media::hub::{Hub, HubLimits};
use crate::metrics::{Metrics, StreamMetrics};

/// Rates measured over the last sampling interval.
#[derive(Debug, Default)]
pub struct Rates {
    in_bps: AtomicU64,
    out_bps: AtomicU64,
    /// Video frames per second, times 100.
    fps_x100: AtomicU64,
    last: std::sync::Mutex<Option<(tokio::time::Instant, u64, u64, u64)>>,
}

impl Rates {
    pub fn in_bps(&self) -> u64 {
        self.in_bps.load(Ordering::Relaxed)
    }

    pub fn out_bps(&self) -> u64 {
        self.out_bps.load(Ordering::Relaxed)
    }

    pub fn fps(&self) -> f64 {
        self.fps_x100.load(Ordering::Relaxed) as f64 / 100.0
    }

    /// Updates the rates from the stream's counters.
    pub fn sample(&self, m: &StreamMetrics) {
        let now = tokio::time::Instant::now();
        let bytes_in = m.received_bytes.get();
        let bytes_out = m.sent_bytes();
        let frames = m.frames_key.get() + m.frames_delta.get();
        // A std mutex: only the sampler task takes it, briefly.
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((t, i, o, f)) = *last {
            let secs = now.duration_since(t).as_secs_f64();
            if secs > 0.0 {
                let rate = |a: u64, b: u64| (a.saturating_sub(b) as f64 / secs) as u64;
                self.in_bps.store(rate(bytes_in, i) * 8, Ordering::Relaxed);
                self.out_bps
                    .store(rate(bytes_out, o) * 8, Ordering::Relaxed);
                self.fps_x100.store(
                    (frames.saturating_sub(f) as f64 * 100.0 / secs) as u64,
                    Ordering::Relaxed,
                );
            }
        }
        *last = Some((now, bytes_in, bytes_out, frames));
    }
}

/// One stream of a device.
#[derive(Debug, Clone)]
pub struct StreamEntry {
    pub name: Arc<str>,
    pub hub: Hub,
    pub metrics: Arc<StreamMetrics>,
    pub rates: Arc<Rates>,
    /// What the inspector measured and noticed.
    pub inspect: Arc<crate::inspect::monitor::Shared>,
    /// How the camera names this stream (what a front's RTSP request and a
    /// camera's answer are matched against).
    pub camera_path: CameraPath,
}

/// A stream as the camera names it: its path and the query parameters that
/// identify it (`/cam/realmonitor?channel=1&subtype=0`). Recorders behind a
/// device front use the camera's own URLs, and cameras name their streams in
/// ONVIF and ISAPI answers; both are matched against this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraPath {
    /// The path, lower-cased, without a trailing `/`.
    pub path: String,
    /// The identifying query parameters, keys lower-cased.
    pub params: Vec<(String, String)>,
}

impl CameraPath {
    /// From a configured camera path.
    pub fn new(camera_path: &str) -> CameraPath {
        let (path, query) = camera_path.split_once('?').unwrap_or((camera_path, ""));
        CameraPath {
            path: path.trim_end_matches('/').to_lowercase(),
            params: parse_query(query),
        }
    }

    /// Whether a URI's path and query name this stream: the same path, and
    /// every identifying parameter present with the same value (extra ONVIF
    /// parameters such as `transportmode` or `profile` are ignored).
    pub fn matches(&self, path: &str, query: &str) -> bool {
        if path.trim_end_matches('/').to_lowercase() != self.path {
            return false;
        }
        let q = parse_query(query);
        self.params
            .iter()
            .all(|(k, v)| q.iter().any(|(k2, v2)| k2 == k && v2 == v))
    }
}

fn parse_query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_lowercase(), v.to_string())
        })
        .collect()
}

/// One device and its streams.
#[derive(Debug, Clone)]
pub struct DeviceEntry {
    pub config: Arc<Device>,
    pub streams: Vec<StreamEntry>,
    /// Fingerprinting results.
    pub identity: Arc<crate::fingerprint::identity::IdentityCell>,
}

impl DeviceEntry {
    pub fn stream(&self, name: &str) -> Option<&StreamEntry> {
        self.streams.iter().find(|s| &*s.name == name)
    }
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Registry {
    devices: Vec<DeviceEntry>,
    by_id: HashMap<String, usize>,
}

impl Registry {
    /// Creates a hub and metric handles for every configured device stream.
    pub fn new(config: &Config, metrics: &Metrics) -> Registry {
        let limits = HubLimits {
            queue_bytes: config.rtsp.recorder_queue_bytes,
            max_lag: Duration::from_secs(config.rtsp.recorder_max_lag_secs),
            gop_cache_max_bytes: config.rtsp.gop_cache_max_bytes,
        };
        let mut r = Registry::default();
        for d in &config.devices {
            let deadline = d.removal_deadline.and_then(|date| {
                date.to_zoned(jiff::tz::TimeZone::UTC)
                    .ok()
                    .map(|z| z.timestamp().as_second())
            });
            metrics.device(d.id.as_str(), d.vendor.as_str(), deadline);
            let entry = DeviceEntry {
                identity: Arc::new(crate::fingerprint::identity::IdentityCell::new(
                    d.id.as_str(),
                    d.vendor.as_str(),
                    metrics.clone(),
                )),
                config: Arc::new(d.clone()),
                streams: d
                    .streams
                    .iter()
                    .map(|s| StreamEntry {
                        name: s.name.clone(),
                        hub: Hub::new(limits),
                        metrics: metrics.stream(d.id.as_str(), &s.name),
                        rates: Arc::new(Rates::default()),
                        inspect: Arc::new(crate::inspect::monitor::Shared::new(&s.name)),
                        camera_path: CameraPath::new(&s.path),
                    })
                    .collect(),
            };
            r.by_id.insert(d.id.to_string(), r.devices.len());
            r.devices.push(entry);
        }
        r
    }

    pub fn device(&self, id: &str) -> Option<&DeviceEntry> {
        self.by_id.get(id).map(|i| &self.devices[*i])
    }

    pub fn devices(&self) -> &[DeviceEntry] {
        &self.devices
    }

    /// Samples every stream's rates; call at a steady interval.
    pub fn sample_rates(&self) {
        for d in &self.devices {
            for s in &d.streams {
                s.rates.sample(&s.metrics);
            }
        }
    }
}
