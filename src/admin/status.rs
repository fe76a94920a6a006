//! A point-in-time view of every device for the admin API, the status page
//! and the inventory: state, codec facts, rates, recorders, drops, last
//! error and removal deadline. Never a credential.

use std::time::SystemTime;

use serde::Serialize;

use crate::config::DeviceSource;
use crate::devices::{DeviceEntry, Registry, StreamEntry};
use crate::egress::book::Book;
use crate::inspect::facts::{self, TrackFacts};
use crate::inspect::sanitize::StripKind;
use crate::media::hub::SourceState;
use crate::recorder::session::Sessions;

#[derive(Debug, Clone, Serialize)]
pub struct RecorderStatus {
    pub name: String,
    pub transport: &'static str,
    pub session: String,
    pub playing: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct ErrorStatus {
    pub message: String,
    /// RFC 3339, UTC.
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub name: String,
    /// idle | connecting | live | backoff
    pub state: &'static str,
    pub up: bool,
    pub tracks: Vec<TrackFacts>,
    /// Video frame rate from the frames' timestamps.
    pub fps: f64,
    /// Frames in the last complete GOP (0 until two key frames were seen).
    pub gop_frames: u32,
    /// Bytes the inspector removed, by kind.
    pub stripped_bytes: std::collections::BTreeMap<&'static str, u64>,
    pub bitrate_in_bps: u64,
    pub bitrate_out_bps: u64,
    pub recorders: Vec<RecorderStatus>,
    pub dropped_frames: u64,
    pub lost_packets: u64,
    pub last_frame_at: Option<String>,
    pub last_error: Option<ErrorStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub id: String,
    pub vendor: &'static str,
    /// camera | simulated
    pub kind: &'static str,
    pub host: Option<String>,
    pub pull: &'static str,
    pub audio: &'static str,
    /// strip | pass (ONVIF metadata tracks).
    pub metadata: &'static str,
    pub removal_deadline: Option<String>,
    pub days_until_removal: Option<i64>,
    /// Every stream live.
    pub up: bool,
    pub streams: Vec<StreamStatus>,
    /// Blocked egress attempts by category (the egress trap).
    pub blocked_attempts: std::collections::BTreeMap<String, u64>,
    /// The latest outbound attempts, newest first (at most 16).
    pub recent_attempts: Vec<crate::egress::book::Attempt>,
    /// The latest stream changes the inspector noticed, newest first (at
    /// most 16).
    pub events: Vec<EventStatus>,
    /// Fingerprinting: detected vendor with its evidence, model, firmware.
    pub identity: crate::fingerprint::identity::Identity,
}

/// A change the inspector noticed.
#[derive(Debug, Clone, Serialize)]
pub struct EventStatus {
    /// RFC 3339, UTC.
    pub at: String,
    pub stream: String,
    /// codec_change | resolution_change | parameter_set_change | track_added
    /// | track_removed | bitrate_spike | framerate_collapse |
    /// timestamp_backwards
    pub event: &'static str,
    pub detail: String,
}

impl DeviceStatus {
    pub fn bitrate_in_bps(&self) -> u64 {
        self.streams.iter().map(|s| s.bitrate_in_bps).sum()
    }

    pub fn bitrate_out_bps(&self) -> u64 {
        self.streams.iter().map(|s| s.bitrate_out_bps).sum()
    }

    pub fn recorders(&self) -> usize {
        self.streams
            .iter()
            .map(|s| s.recorders.iter().filter(|r| r.playing).count())
            .sum()
    }

    pub fn dropped_frames(&self) -> u64 {
        self.streams.iter().map(|s| s.dropped_frames).sum()
    }

    pub fn blocked(&self) -> u64 {
        self.blocked_attempts.values().sum()
    }

    /// Bigger is worse: down streams, errors, drops, deadlines.
    pub fn severity(&self) -> u32 {
        let mut s = 0;
        if !self.up {
            s += 1000;
        }
        if self.streams.iter().any(|x| x.last_error.is_some()) {
            s += 10;
        }
        if self.dropped_frames() > 0 {
            s += 50;
        }
        if self.blocked() > 0 {
            s += 100;
        }
        match self.days_until_removal {
            Some(d) if d < 0 => s += 500,
            Some(d) if d <= 30 => s += 200,
            _ => {}
        }
        s
    }
}

/// Today's date in UTC.
pub fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|ts| {
            ts.round(jiff::Unit::Second)
                .map(|r| r.to_string())
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

fn stream(d: &DeviceEntry, s: &StreamEntry, sessions: &Sessions) -> StreamStatus {
    let state = s.hub.source_state();
    let tracks = s
        .hub
        .info()
        .map(|i| i.tracks.iter().map(facts::track).collect())
        .unwrap_or_default();
    let recorders = sessions
        .list()
        .into_iter()
        .filter(|x| x.device == d.config.id && x.stream == s.name)
        .map(|x| RecorderStatus {
            name: x.recorder.name.to_string(),
            transport: if x.is_udp() { "udp" } else { "tcp" },
            session: x.id.clone(),
            playing: x.with_state(|st| st.playing.is_some()),
        })
        .collect();
    let last = s.metrics.last_frame.get();
    StreamStatus {
        name: s.name.to_string(),
        state: match state {
            SourceState::Idle => "idle",
            SourceState::Connecting => "connecting",
            SourceState::Live => "live",
            SourceState::Backoff { .. } => "backoff",
        },
        up: state == SourceState::Live,
        tracks,
        fps: match s.inspect.fps() {
            f if f > 0.0 => f,
            _ => s.rates.fps(),
        },
        gop_frames: s.inspect.gop_frames(),
        stripped_bytes: StripKind::ALL
            .iter()
            .map(|k| (k.as_str(), s.inspect.stripped(*k)))
            .collect(),
        bitrate_in_bps: s.rates.in_bps(),
        bitrate_out_bps: s.rates.out_bps(),
        recorders,
        dropped_frames: s.metrics.dropped_frames(),
        lost_packets: s.metrics.lost_packets.get(),
        last_frame_at: (last > 0.0)
            .then(|| rfc3339(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs_f64(last))),
        last_error: s.hub.last_error().map(|(message, at)| ErrorStatus {
            message,
            at: rfc3339(at),
        }),
    }
}

/// The status of one device.
pub fn device(d: &DeviceEntry, sessions: &Sessions, book: &Book) -> DeviceStatus {
    let c = &d.config;
    let (blocked_attempts, recent_attempts) = book.report(c.id.as_str());
    let streams: Vec<_> = d.streams.iter().map(|s| stream(d, s, sessions)).collect();
    let today = today();
    DeviceStatus {
        id: c.id.to_string(),
        vendor: c.vendor.as_str(),
        kind: match c.source {
            DeviceSource::Simulated { .. } => "simulated",
            DeviceSource::Camera(_) => "camera",
        },
        host: match &c.source {
            DeviceSource::Camera(cam) => Some(cam.host.to_string()),
            DeviceSource::Simulated { .. } => None,
        },
        pull: match c.pull {
            crate::config::Pull::Always => "always",
            crate::config::Pull::OnDemand => "on-demand",
        },
        audio: match c.audio {
            crate::config::AudioPolicy::Strip => "strip",
            crate::config::AudioPolicy::Pass => "pass",
        },
        metadata: if c.metadata_pass { "pass" } else { "strip" },
        removal_deadline: c.removal_deadline.map(|d| d.to_string()),
        days_until_removal: c
            .removal_deadline
            .and_then(|d| today.until(d).ok())
            .map(|span| i64::from(span.get_days())),
        up: !streams.is_empty() && streams.iter().all(|s| s.up),
        streams,
        blocked_attempts,
        recent_attempts,
        events: events(d),
        identity: d.identity.get(),
    }
}

/// The device's latest events across its streams, newest first.
fn events(d: &DeviceEntry) -> Vec<EventStatus> {
    let mut all: Vec<_> = d.streams.iter().flat_map(|s| s.inspect.events()).collect();
    all.sort_by_key(|e| std::cmp::Reverse(e.at));
    all.truncate(16);
    all.into_iter()
        .map(|e| EventStatus {
            at: rfc3339(e.at),
            stream: e.stream,
            event: e.event,
            detail: e.detail,
        })
        .collect()
}

/// Every device, problems first, then by id.
pub fn all(registry: &Registry, sessions: &Sessions, book: &Book) -> Vec<DeviceStatus> {
    let mut v: Vec<_> = registry
        .devices()
        .iter()
        .map(|d| device(d, sessions, book))
        .collect();
    v.sort_by(|a, b| {
        b.severity()
            .cmp(&a.severity())
            .then_with(|| a.id.cmp(&b.id))
    });
    v
}
