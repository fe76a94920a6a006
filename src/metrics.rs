//! Prometheus metrics: the registry, every camgate metric family, and the
//! per-stream and per-session handles the hot paths use.
//!
//! Handles are resolved once (per stream when the registry is built, per
//! recorder session at PLAY), so the per-frame work is an atomic add. Label
//! values are configured names or small fixed enums: never an address, a
//! URL or error text. Names are fixed by the issues and documented in the
//! README's metrics table; the constants below are what tests check.
//!
//! Not here: serving `/metrics` (the admin module does).

pub mod process;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Every metric family name camgate exports (counters with `_total`).
pub const NAMES: &[&str] = &[
    "camgate_build_info",
    "camgate_device_info",
    "camgate_device_removal_deadline_timestamp_seconds",
    "camgate_stream_up",
    "camgate_stream_reconnects_total",
    "camgate_stream_received_bytes_total",
    "camgate_stream_frames_total",
    "camgate_stream_last_frame_timestamp_seconds",
    "camgate_stream_lost_packets_total",
    "camgate_recorder_sessions",
    "camgate_recorder_sent_bytes_total",
    "camgate_recorder_dropped_frames_total",
    "camgate_auth_failures_total",
    "camgate_egress_attempts_total",
    "camgate_egress_attempt_bytes_total",
    "camgate_dns_queries_total",
    "camgate_http_requests_total",
    "camgate_http_response_bytes_total",
    "camgate_http_upstream_errors_total",
    "camgate_stream_info",
    "camgate_stream_gop_frames",
    "camgate_inspect_stripped_bytes_total",
    "camgate_inspect_events_total",
    "camgate_device_vendor_mismatch",
    "camgate_connections",
    "camgate_connections_unauthenticated",
    "camgate_connections_refused_total",
    "camgate_connections_closed_total",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_open_fds",
    "process_max_fds",
    "process_start_time_seconds",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

/// `camgate_device_info`: the configured vendor and what fingerprinting
/// found (camera-supplied values sanitized to `[A-Za-z0-9._-]`, at most 64
/// characters; empty until known).
#[derive(Clone, Debug, Default, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceInfoLabels {
    pub device: String,
    pub vendor: String,
    pub detected_vendor: String,
    pub model: String,
    pub firmware: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StreamInfoLabels {
    device: String,
    stream: String,
    codec: String,
    profile: String,
    resolution: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StripLabels {
    device: String,
    stream: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct InspectEventLabels {
    device: String,
    stream: String,
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabels {
    pub device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StreamLabels {
    pub device: String,
    pub stream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReconnectLabels {
    device: String,
    stream: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
enum FrameKindLabel {
    key,
    delta,
    audio,
    metadata,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FrameLabels {
    device: String,
    stream: String,
    kind: FrameKindLabel,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    device: String,
    stream: String,
    recorder: String,
    transport: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RecorderLabels {
    device: String,
    stream: String,
    recorder: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    device: String,
    stream: String,
    recorder: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EgressLabels {
    device: String,
    protocol: &'static str,
    category: String,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EgressBytesLabels {
    device: String,
    protocol: &'static str,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DnsLabels {
    device: String,
    verdict: &'static str,
    category: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    device: String,
    verdict: &'static str,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    device: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerReasonLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthLabels {
    protocol: &'static str,
    reason: &'static str,
}

/// Why a recorder's credentials or request were refused (bounded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// Wrong password, or a Digest response that does not match.
    BadCredentials,
    UnknownUser,
    /// Unparseable credentials, a foreign nonce, an unsupported scheme.
    Malformed,
    /// A valid account connecting from outside its `allow_from`.
    AddressNotAllowed,
    /// A valid account asking for a device not in its `devices`.
    DeviceNotAllowed,
    /// A Digest `nc` or WS-Security nonce used before.
    Replay,
    /// A WS-Security `Created` outside the allowed clock skew.
    Expired,
    /// A Digest `uri` that is not the request's.
    UriMismatch,
    /// Basic or a PasswordText token on a plaintext listener from a
    /// recorder without `cleartext_auth`.
    CleartextRefused,
    /// The address is locked out after repeated failures (not checked).
    Throttled,
    /// A SETUP past the connection's or the account's session cap.
    TooManySessions,
}

impl AuthFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFailure::BadCredentials => "bad_credentials",
            AuthFailure::UnknownUser => "unknown_user",
            AuthFailure::Malformed => "malformed",
            AuthFailure::AddressNotAllowed => "address_not_allowed",
            AuthFailure::DeviceNotAllowed => "device_not_allowed",
            AuthFailure::Replay => "replay",
            AuthFailure::Expired => "expired",
            AuthFailure::UriMismatch => "uri_mismatch",
            AuthFailure::CleartextRefused => "cleartext_refused",
            AuthFailure::Throttled => "throttled",
            AuthFailure::TooManySessions => "too_many_sessions",
        }
    }
}

/// Declares a family even while it has no series, so dashboards and alert
/// rules always find its `# TYPE` (prometheus-client skips empty ones).
#[derive(Debug, Clone)]
struct Declared<M>(M);

impl<M: EncodeMetric> EncodeMetric for Declared<M> {
    fn encode(&self, encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.0.encode(encoder)
    }

    fn metric_type(&self) -> MetricType {
        self.0.metric_type()
    }

    fn is_empty(&self) -> bool {
        false
    }
}

/// The metric families. Cheap to clone (each family is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    device_info: Family<DeviceInfoLabels, Gauge>,
    removal_deadline: Family<DeviceLabels, Gauge>,
    stream_up: Family<StreamLabels, Gauge>,
    reconnects: Family<ReconnectLabels, Counter>,
    received_bytes: Family<StreamLabels, Counter>,
    frames: Family<FrameLabels, Counter>,
    last_frame: Family<StreamLabels, Gauge<f64, AtomicU64>>,
    lost_packets: Family<StreamLabels, Counter>,
    sessions: Family<SessionLabels, Gauge>,
    sent_bytes: Family<RecorderLabels, Counter>,
    dropped: Family<DropLabels, Counter>,
    auth_failures: Family<AuthLabels, Counter>,
    egress_attempts: Family<EgressLabels, Counter>,
    egress_bytes: Family<EgressBytesLabels, Counter>,
    dns_queries: Family<DnsLabels, Counter>,
    http_requests: Family<HttpLabels, Counter>,
    http_response_bytes: Family<DeviceLabels, Counter>,
    http_upstream_errors: Family<UpstreamErrorLabels, Counter>,
    stream_info: Family<StreamInfoLabels, Gauge>,
    gop_frames: Family<StreamLabels, Gauge>,
    stripped_bytes: Family<StripLabels, Counter>,
    inspect_events: Family<InspectEventLabels, Counter>,
    vendor_mismatch: Family<DeviceLabels, Gauge>,
    connections: Family<ListenerLabels, Gauge>,
    connections_unauthenticated: Family<ListenerLabels, Gauge>,
    connections_refused: Family<ListenerReasonLabels, Counter>,
    connections_closed: Family<ListenerReasonLabels, Counter>,
    /// The current `device_info` labels per device (replaced when
    /// fingerprinting learns more, so each device keeps one series).
    device_labels: Arc<Mutex<HashMap<String, DeviceInfoLabels>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Builds the registry with every family and the process collector.
    pub fn new() -> Metrics {
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector::new()));
        let r = root.sub_registry_with_prefix("camgate");
        let build_info = Family::<VersionLabels, Gauge>::default();
        r.register(
            "build_info",
            "camgate build: always 1, with the version as a label",
            Declared(build_info.clone()),
        );
        let device_info = Family::<DeviceInfoLabels, Gauge>::default();
        r.register(
            "device_info",
            "Configured device: always 1, with its configured vendor and the detected vendor, model and firmware (empty until fingerprinted)",
            Declared(device_info.clone()),
        );
        let removal_deadline = Family::<DeviceLabels, Gauge>::default();
        r.register(
            "device_removal_deadline_timestamp_seconds",
            "Unix time of the device's configured removal deadline (start of that day, UTC)",
            Declared(removal_deadline.clone()),
        );
        let stream_up = Family::<StreamLabels, Gauge>::default();
        r.register(
            "stream_up",
            "1 while the camera stream is live, 0 otherwise",
            Declared(stream_up.clone()),
        );
        let reconnects = Family::<ReconnectLabels, Counter>::default();
        r.register(
            "stream_reconnects",
            "Camera sessions that ended and were retried, by reason",
            Declared(reconnects.clone()),
        );
        let received_bytes = Family::<StreamLabels, Counter>::default();
        r.register(
            "stream_received_bytes",
            "Media bytes received from the camera (depacketized frames)",
            Declared(received_bytes.clone()),
        );
        let frames = Family::<FrameLabels, Counter>::default();
        r.register(
            "stream_frames",
            "Frames received from the camera and relayed, by kind",
            Declared(frames.clone()),
        );
        let last_frame = Family::<StreamLabels, Gauge<f64, AtomicU64>>::default();
        r.register(
            "stream_last_frame_timestamp_seconds",
            "Unix time of the last frame from the camera",
            Declared(last_frame.clone()),
        );
        let lost_packets = Family::<StreamLabels, Counter>::default();
        r.register(
            "stream_lost_packets",
            "RTP packets the camera sent that never arrived (sequence gaps)",
            Declared(lost_packets.clone()),
        );
        let sessions = Family::<SessionLabels, Gauge>::default();
        r.register(
            "recorder_sessions",
            "Recorder sessions playing the stream",
            Declared(sessions.clone()),
        );
        let sent_bytes = Family::<RecorderLabels, Counter>::default();
        r.register(
            "recorder_sent_bytes",
            "Bytes camgate re-emitted to the recorder for this stream",
            Declared(sent_bytes.clone()),
        );
        let dropped = Family::<DropLabels, Counter>::default();
        r.register("recorder_dropped_frames", "Frames a recorder did not get: queue_full (fell behind, skipped to a key frame), too_slow (disconnected)", Declared(dropped.clone()));
        let auth_failures = Family::<AuthLabels, Counter>::default();
        r.register(
            "auth_failures",
            "Refused recorder requests, by protocol and reason",
            Declared(auth_failures.clone()),
        );
        let egress_attempts = Family::<EgressLabels, Counter>::default();
        r.register(
            "egress_attempts",
            "Outbound connections and datagrams cameras tried, by protocol, category and verdict (blocked, forwarded)",
            Declared(egress_attempts.clone()),
        );
        let egress_bytes = Family::<EgressBytesLabels, Counter>::default();
        r.register(
            "egress_attempt_bytes",
            "Bytes cameras sent in outbound attempts (read before blocking, or forwarded)",
            Declared(egress_bytes.clone()),
        );
        let dns_queries = Family::<DnsLabels, Counter>::default();
        r.register(
            "dns_queries",
            "DNS queries from the camera network, by verdict (allowed, static, sinkholed, refused, failed, malformed) and category",
            Declared(dns_queries.clone()),
        );
        let http_requests = Family::<HttpLabels, Counter>::default();
        r.register(
            "http_requests",
            "Camera API requests by verdict and the policy rule that decided (or why none could)",
            Declared(http_requests.clone()),
        );
        let http_response_bytes = Family::<DeviceLabels, Counter>::default();
        r.register(
            "http_response_bytes",
            "Camera API response bytes sent to recorders",
            Declared(http_response_bytes.clone()),
        );
        let http_upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        r.register(
            "http_upstream_errors",
            "Camera API requests the camera could not answer: connect, timeout, tls, protocol, auth, basic_refused (Basic-only camera, password not sent), stream",
            Declared(http_upstream_errors.clone()),
        );
        let stream_info = Family::<StreamInfoLabels, Gauge>::default();
        r.register(
            "stream_info",
            "Codec facts of the stream's video from its parameter sets: always 1",
            Declared(stream_info.clone()),
        );
        let gop_frames = Family::<StreamLabels, Gauge>::default();
        r.register(
            "stream_gop_frames",
            "Frames in the stream's last complete GOP (key frame to key frame)",
            Declared(gop_frames.clone()),
        );
        let stripped_bytes = Family::<StripLabels, Counter>::default();
        r.register(
            "inspect_stripped_bytes",
            "Bytes removed from camera frames before re-emitting, by kind: sei_user_data, disallowed_sei, filler, reserved_nal, disallowed_nal, oversized, malformed_sei",
            Declared(stripped_bytes.clone()),
        );
        let inspect_events = Family::<InspectEventLabels, Counter>::default();
        r.register(
            "inspect_events",
            "Changes noticed in a camera's stream (codec, resolution, parameter sets, tracks, bitrate spike, frame-rate collapse, timestamps backwards)",
            Declared(inspect_events.clone()),
        );
        let vendor_mismatch = Family::<DeviceLabels, Gauge>::default();
        r.register(
            "device_vendor_mismatch",
            "1 when the fingerprinted vendor differs from the configured one",
            Declared(vendor_mismatch.clone()),
        );
        let connections = Family::<ListenerLabels, Gauge>::default();
        r.register(
            "connections",
            "Connections held by a listener pool (rtsp, http, admin, dns, trap)",
            Declared(connections.clone()),
        );
        let connections_unauthenticated = Family::<ListenerLabels, Gauge>::default();
        r.register(
            "connections_unauthenticated",
            "Connections held by a listener pool that have not authenticated (yet)",
            Declared(connections_unauthenticated.clone()),
        );
        let connections_refused = Family::<ListenerReasonLabels, Counter>::default();
        r.register(
            "connections_refused",
            "Connections refused at accept: capacity (max_connections), per_address (the source's unauthenticated cap), unauthenticated (the unauthenticated share is full)",
            Declared(connections_refused.clone()),
        );
        let connections_closed = Family::<ListenerReasonLabels, Counter>::default();
        r.register(
            "connections_closed",
            "Connections camgate closed to enforce a limit: evicted (made room for another source's unauthenticated connection), unauthenticated_timeout",
            Declared(connections_closed.clone()),
        );
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        Metrics {
            registry: Arc::new(root),
            device_info,
            removal_deadline,
            stream_up,
            reconnects,
            received_bytes,
            frames,
            last_frame,
            lost_packets,
            sessions,
            sent_bytes,
            dropped,
            auth_failures,
            egress_attempts,
            egress_bytes,
            dns_queries,
            http_requests,
            http_response_bytes,
            http_upstream_errors,
            stream_info,
            gop_frames,
            stripped_bytes,
            inspect_events,
            vendor_mismatch,
            connections,
            connections_unauthenticated,
            connections_refused,
            connections_closed,
            device_labels: Arc::default(),
        }
    }

    /// The scrape: OpenMetrics text, or Prometheus text 0.0.4.
    pub fn encode(&self, openmetrics: bool) -> String {
        let mut s = String::with_capacity(64 << 10);
        // Writing to a String cannot fail.
        let _ = if openmetrics {
            prometheus_client::encoding::text::encode(&mut s, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut s, &self.registry)
        };
        s
    }

    /// Records a configured device.
    pub fn device(&self, device: &str, vendor: &str, removal_deadline_unix: Option<i64>) {
        self.device_identity(DeviceInfoLabels {
            device: device.into(),
            vendor: vendor.into(),
            ..Default::default()
        });
        self.vendor_mismatch
            .get_or_create(&DeviceLabels {
                device: device.into(),
            })
            .set(0);
        if let Some(t) = removal_deadline_unix {
            self.removal_deadline
                .get_or_create(&DeviceLabels {
                    device: device.into(),
                })
                .set(t);
        }
    }

    /// Sets a device's `device_info` series, replacing its previous one.
    /// The caller passes sanitized values.
    pub fn device_identity(&self, labels: DeviceInfoLabels) {
        let mut current = self.device_labels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = current.get(&labels.device) {
            if *old == labels {
                return;
            }
            self.device_info.remove(old);
        }
        self.device_info.get_or_create(&labels).set(1);
        current.insert(labels.device.clone(), labels);
    }

    /// Sets `camgate_device_vendor_mismatch` for a device.
    pub fn vendor_mismatch(&self, device: &str, mismatch: bool) {
        self.vendor_mismatch
            .get_or_create(&DeviceLabels {
                device: device.into(),
            })
            .set(i64::from(mismatch));
    }

    /// Resolves the handles of one stream.
    pub fn stream(&self, device: &str, stream: &str) -> Arc<StreamMetrics> {
        let l = StreamLabels {
            device: device.into(),
            stream: stream.into(),
        };
        let frames = |kind| {
            self.frames.get_or_create_owned(&FrameLabels {
                device: device.into(),
                stream: stream.into(),
                kind,
            })
        };
        Arc::new(StreamMetrics {
            metrics: self.clone(),
            labels: l.clone(),
            up: self.stream_up.get_or_create_owned(&l),
            received_bytes: self.received_bytes.get_or_create_owned(&l),
            frames_key: frames(FrameKindLabel::key),
            frames_delta: frames(FrameKindLabel::delta),
            frames_audio: frames(FrameKindLabel::audio),
            frames_metadata: frames(FrameKindLabel::metadata),
            last_frame: self.last_frame.get_or_create_owned(&l),
            lost_packets: self.lost_packets.get_or_create_owned(&l),
            sent_bytes: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            gop_frames: self.gop_frames.get_or_create_owned(&l),
            stripped: crate::inspect::sanitize::StripKind::ALL.map(|k| {
                self.stripped_bytes.get_or_create_owned(&StripLabels {
                    device: device.into(),
                    stream: stream.into(),
                    kind: k.as_str(),
                })
            }),
            events: crate::inspect::monitor::Event::ALL.map(|e| {
                self.inspect_events
                    .get_or_create_owned(&InspectEventLabels {
                        device: device.into(),
                        stream: stream.into(),
                        event: e.as_str(),
                    })
            }),
            info: Mutex::new(None),
        })
    }

    /// Counts a refused recorder request.
    pub fn auth_failure(&self, protocol: &'static str, reason: AuthFailure) {
        self.auth_failures
            .get_or_create(&AuthLabels {
                protocol,
                reason: reason.as_str(),
            })
            .inc();
    }

    /// Counts a camera API request. `device` is a configured id or
    /// `unknown`; `rule` a policy rule id or a fixed reason.
    pub fn http_request(&self, device: &str, verdict: &'static str, rule: &str) {
        self.http_requests
            .get_or_create(&HttpLabels {
                device: device.into(),
                verdict,
                rule: rule.into(),
            })
            .inc();
    }

    /// Counts response bytes sent to a recorder for `device`.
    pub fn http_response_bytes(&self, device: &str) -> Counter {
        self.http_response_bytes.get_or_create_owned(&DeviceLabels {
            device: device.into(),
        })
    }

    /// Counts a request the camera could not answer.
    pub fn http_upstream_error(&self, device: &str, reason: &'static str) {
        self.http_upstream_errors
            .get_or_create(&UpstreamErrorLabels {
                device: device.into(),
                reason,
            })
            .inc();
    }

    /// Counts an outbound attempt and the bytes the camera sent in it.
    pub fn egress_attempt(
        &self,
        device: &str,
        protocol: &'static str,
        category: &str,
        verdict: &'static str,
        bytes: u64,
    ) {
        self.egress_attempts
            .get_or_create(&EgressLabels {
                device: device.into(),
                protocol,
                category: category.into(),
                verdict,
            })
            .inc();
        self.egress_bytes
            .get_or_create(&EgressBytesLabels {
                device: device.into(),
                protocol,
                category: category.into(),
            })
            .inc_by(bytes);
    }

    /// Adds bytes to a forwarded attempt's count as they pass.
    pub fn egress_bytes(&self, device: &str, protocol: &'static str, category: &str) -> Counter {
        self.egress_bytes.get_or_create_owned(&EgressBytesLabels {
            device: device.into(),
            protocol,
            category: category.into(),
        })
    }

    /// Counts a DNS query from the camera network.
    pub fn dns_query(&self, device: &str, verdict: &'static str, category: &str) {
        self.dns_queries
            .get_or_create(&DnsLabels {
                device: device.into(),
                verdict,
                category: category.into(),
            })
            .inc();
    }

    /// Resolves the handles of one listener pool (`listener`: `rtsp`,
    /// `http`, `admin`, `dns`, `trap`).
    pub fn listener(&self, listener: &'static str) -> ListenerMetrics {
        let reason = |reason| ListenerReasonLabels { listener, reason };
        let l = ListenerLabels { listener };
        ListenerMetrics {
            refused: crate::listener::Refusal::ALL.map(|r| {
                self.connections_refused
                    .get_or_create_owned(&reason(r.as_str()))
            }),
            evicted: self
                .connections_closed
                .get_or_create_owned(&reason("evicted")),
            timed_out: self
                .connections_closed
                .get_or_create_owned(&reason("unauthenticated_timeout")),
            open: self.connections.get_or_create_owned(&l),
            unauthenticated: self.connections_unauthenticated.get_or_create_owned(&l),
        }
    }

    /// The registry (for tests that inspect it).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// One stream's pre-resolved handles.
#[derive(Debug)]
pub struct StreamMetrics {
    metrics: Metrics,
    labels: StreamLabels,
    pub up: Gauge,
    pub received_bytes: Counter,
    pub frames_key: Counter,
    pub frames_delta: Counter,
    pub frames_audio: Counter,
    pub frames_metadata: Counter,
    pub last_frame: Gauge<f64, AtomicU64>,
    pub lost_packets: Counter,
    /// Bytes sent to all recorders of the stream (for bitrate out; the
    /// exported counters are per recorder).
    sent_bytes: AtomicU64,
    /// Frames dropped for all recorders of the stream (for the status page).
    dropped: AtomicU64,
    pub gop_frames: Gauge,
    /// By [`crate::inspect::sanitize::StripKind::index`].
    pub stripped: [Counter; crate::inspect::sanitize::StripKind::COUNT],
    /// By [`crate::inspect::monitor::Event::index`].
    pub events: [Counter; 8],
    /// The current `stream_info` series (replaced when the codec changes).
    info: Mutex<Option<StreamInfoLabels>>,
}

impl StreamMetrics {
    /// Counts a camera session that ended, by bounded reason.
    pub fn reconnect(&self, reason: &'static str) {
        self.metrics
            .reconnects
            .get_or_create(&ReconnectLabels {
                device: self.labels.device.clone(),
                stream: self.labels.stream.clone(),
                reason,
            })
            .inc();
    }

    /// Sets `camgate_stream_info` (one series per stream: the previous one
    /// is removed). Called when the stream's description changes, not per
    /// frame.
    pub fn set_info(&self, codec: &str, profile: &str, resolution: &str) {
        let l = StreamInfoLabels {
            device: self.labels.device.clone(),
            stream: self.labels.stream.clone(),
            codec: codec.into(),
            profile: profile.into(),
            resolution: resolution.into(),
        };
        let mut cur = self.info.lock().unwrap_or_else(|p| p.into_inner());
        if cur.as_ref() == Some(&l) {
            return;
        }
        if let Some(old) = cur.take() {
            self.metrics.stream_info.remove(&old);
        }
        self.metrics.stream_info.get_or_create(&l).set(1);
        *cur = Some(l);
    }

    /// Total bytes sent to this stream's recorders.
    pub fn sent_bytes(&self) -> u64 {
        self.sent_bytes.load(Ordering::Relaxed)
    }

    /// Total frames dropped for this stream's recorders.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Resolves a recorder session's handles and counts it as playing
    /// until the returned value is dropped.
    pub fn session(self: &Arc<Self>, recorder: &str, transport: &'static str) -> RecorderMetrics {
        let m = &self.metrics;
        let rl = RecorderLabels {
            device: self.labels.device.clone(),
            stream: self.labels.stream.clone(),
            recorder: recorder.into(),
        };
        let drop_counter = |reason| {
            m.dropped.get_or_create_owned(&DropLabels {
                device: rl.device.clone(),
                stream: rl.stream.clone(),
                recorder: rl.recorder.clone(),
                reason,
            })
        };
        let sessions = m.sessions.get_or_create_owned(&SessionLabels {
            device: rl.device.clone(),
            stream: rl.stream.clone(),
            recorder: rl.recorder.clone(),
            transport,
        });
        sessions.inc();
        RecorderMetrics {
            stream: self.clone(),
            sessions,
            sent_bytes: m.sent_bytes.get_or_create_owned(&rl),
            dropped_queue_full: drop_counter("queue_full"),
            dropped_too_slow: drop_counter("too_slow"),
        }
    }
}

/// One listener pool's pre-resolved handles.
#[derive(Debug, Clone)]
pub struct ListenerMetrics {
    /// By [`crate::listener::Refusal::index`].
    pub refused: [Counter; 3],
    /// Unauthenticated connections evicted for another source's.
    pub evicted: Counter,
    /// Connections closed at the unauthenticated deadline.
    pub timed_out: Counter,
    /// Connections held.
    pub open: Gauge,
    /// Unauthenticated connections held.
    pub unauthenticated: Gauge,
}

/// A playing recorder session's handles; decrements the session gauge when
/// dropped.
#[derive(Debug)]
pub struct RecorderMetrics {
    stream: Arc<StreamMetrics>,
    sessions: Gauge,
    sent_bytes: Counter,
    dropped_queue_full: Counter,
    dropped_too_slow: Counter,
}

impl RecorderMetrics {
    /// Counts bytes written to the recorder.
    pub fn sent(&self, bytes: u64) {
        self.sent_bytes.inc_by(bytes);
        self.stream.sent_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts frames skipped because the recorder fell behind.
    pub fn dropped_queue_full(&self, frames: u64) {
        self.dropped_queue_full.inc_by(frames);
        self.stream.dropped.fetch_add(frames, Ordering::Relaxed);
    }

    /// Counts the frames a too-slow recorder lost when it was disconnected.
    pub fn dropped_too_slow(&self, frames: u64) {
        self.dropped_too_slow.inc_by(frames);
        self.stream.dropped.fetch_add(frames, Ordering::Relaxed);
    }
}

impl Drop for RecorderMetrics {
    fn drop(&mut self) {
        self.sessions.dec();
    }
}

#[cfg(test)]
mod tests;
