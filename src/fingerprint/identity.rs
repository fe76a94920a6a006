//! What camgate has learned about who made each device: the evidence from
//! every signal (the camera's SDP as the stream source sees it, and the
//! probes' RTSP, HTTP, ONVIF and neighbour-table answers), the vendor it
//! points to, and the model and firmware the camera reports.
//!
//! One [`IdentityCell`] per device, written by the stream sources and the
//! prober, read by the admin API and the inventory. Every change republishes
//! `camgate_device_info` (one series per device, values sanitized) and
//! `camgate_device_vendor_mismatch`, and a mismatch is logged once per
//! change of verdict.

use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;
use tracing::warn;

use crate::fingerprint::{self, DeviceInformation, Evidence, Signal};
use crate::metrics::{DeviceInfoLabels, Metrics};

/// Most evidence items kept per device.
const MAX_EVIDENCE: usize = 32;

/// A device's identity as the API shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Identity {
    /// `hikvision` or `dahua`, when the evidence points to one.
    pub detected_vendor: Option<&'static str>,
    /// Whether the detected vendor differs from the configured one.
    pub vendor_mismatch: bool,
    pub evidence: Vec<Evidence>,
    /// From ONVIF `GetDeviceInformation` (cleaned, at most 64 characters).
    pub manufacturer: String,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    /// The camera's MAC address from the neighbour table, if on-link.
    pub mac: Option<String>,
    /// RFC 3339 time of the last completed probe.
    pub probed_at: Option<String>,
    /// What the last probe could not learn (e.g. `onvif: timeout`).
    pub probe_errors: Vec<String>,
    /// SDP evidence per stream (a main stream's SDP may say more than a
    /// sub-stream's; the device's evidence is their union).
    #[serde(skip)]
    sdp_by_stream: Vec<(String, Vec<Evidence>)>,
}

/// See the module docs.
#[derive(Debug)]
pub struct IdentityCell {
    device: String,
    configured: &'static str,
    metrics: Metrics,
    state: Mutex<Identity>,
}

/// One probe's findings.
#[derive(Debug, Default)]
pub struct ProbeReport {
    pub evidence: Vec<Evidence>,
    pub info: Option<DeviceInformation>,
    pub mac: Option<[u8; 6]>,
    pub errors: Vec<String>,
}

impl IdentityCell {
    pub fn new(device: &str, configured: &'static str, metrics: Metrics) -> IdentityCell {
        IdentityCell {
            device: device.to_string(),
            configured,
            metrics,
            state: Mutex::new(Identity::default()),
        }
    }

    pub fn get(&self) -> Identity {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Evidence from one stream's SDP (the stream source, at DESCRIBE). It
    /// replaces that stream's earlier SDP evidence only, so streams whose
    /// SDPs differ do not take turns overwriting each other.
    pub fn sdp(&self, stream: &str, sdp: &[u8]) {
        let found = fingerprint::sdp(sdp);
        self.update(|s| {
            match s.sdp_by_stream.iter_mut().find(|(n, _)| n == stream) {
                Some((_, e)) => *e = found,
                None => s.sdp_by_stream.push((stream.to_string(), found)),
            }
            let union: Vec<Evidence> = s
                .sdp_by_stream
                .iter()
                .flat_map(|(_, e)| e.iter().cloned())
                .collect();
            replace_signal(&mut s.evidence, &[Signal::Sdp], union);
        });
    }

    /// A probe's findings replace the previous probe's.
    pub fn probed(&self, r: ProbeReport) {
        self.update(|s| {
            let probe_signals = [
                Signal::RtspServer,
                Signal::RtspRealm,
                Signal::HttpServer,
                Signal::HttpRealm,
                Signal::OnvifManufacturer,
                Signal::Oui,
            ];
            replace_signal(&mut s.evidence, &probe_signals, r.evidence);
            if let Some(info) = r.info {
                s.manufacturer = info.manufacturer;
                s.model = info.model;
                s.firmware = info.firmware;
                s.serial = info.serial;
            }
            if let Some(m) = r.mac {
                s.mac = Some(
                    m.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                );
            }
            s.probe_errors = r.errors;
            s.probed_at = jiff::Timestamp::try_from(SystemTime::now()).ok().map(|t| {
                t.round(jiff::Unit::Second)
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            });
        });
    }

    fn update(&self, f: impl FnOnce(&mut Identity)) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let before = (s.detected_vendor, s.vendor_mismatch);
        f(&mut s);
        s.evidence.truncate(MAX_EVIDENCE);
        s.detected_vendor = fingerprint::decide(&s.evidence);
        s.vendor_mismatch = s.detected_vendor.is_some_and(|d| d != self.configured);
        let labels = DeviceInfoLabels {
            device: self.device.clone(),
            vendor: self.configured.to_string(),
            detected_vendor: s.detected_vendor.unwrap_or("").to_string(),
            model: fingerprint::label_value(&s.model),
            firmware: fingerprint::label_value(&s.firmware),
        };
        let changed_verdict = before != (s.detected_vendor, s.vendor_mismatch);
        let (mismatch, detected) = (s.vendor_mismatch, s.detected_vendor);
        // Published under the lock: two updates racing must not leave the
        // older one's labels as the series (the metrics' own locks are
        // never held while taking this one).
        self.metrics.device_identity(labels);
        self.metrics.vendor_mismatch(&self.device, mismatch);
        drop(s);
        if changed_verdict && mismatch {
            warn!(
                device = %self.device,
                configured = self.configured,
                detected = detected.unwrap_or(""),
                "device fingerprint does not match its configured vendor"
            );
        }
    }
}

/// Replaces the evidence of `signals` with `new` (deduplicated).
fn replace_signal(evidence: &mut Vec<Evidence>, signals: &[Signal], new: Vec<Evidence>) {
    evidence.retain(|e| !signals.contains(&e.signal));
    for e in new {
        if !evidence.contains(&e) {
            evidence.push(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_sdp_evidence_is_merged_not_overwritten() {
        let metrics = Metrics::new();
        let cell = IdentityCell::new("cam", "dahua", metrics.clone());
        let hik = b"v=0\ns=HIK Media Server V3.5.43\nm=video 0 RTP/AVP 96\n";
        let plain = b"v=0\ns=Session\nm=video 0 RTP/AVP 96\n";
        cell.sdp("main", hik);
        cell.sdp("sub", plain);
        // The sub-stream's bare SDP does not erase what the main one showed.
        let id = cell.get();
        assert_eq!(id.detected_vendor, Some("hikvision"));
        assert!(id.vendor_mismatch);
        // Only the stream's own new SDP replaces its evidence.
        cell.sdp("main", plain);
        assert_eq!(cell.get().detected_vendor, None);
        assert!(!cell.get().vendor_mismatch);
        let text = metrics.encode(false);
        assert!(
            text.contains("camgate_device_vendor_mismatch{device=\"cam\"} 0"),
            "{text}"
        );
    }
}
