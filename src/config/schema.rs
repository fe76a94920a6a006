//! The configuration file's schema: one serde struct per section, each field
//! documented with its default.
//!
//! These structs are what the TOML says, nothing more. Cross-field rules,
//! secrets and derived values live in [`super::validate`]; runtime modules take
//! the validated [`super::Config`], never these.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

/// `[rtsp]`: the recorder-facing RTSP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct RtspSection {
    /// Address recorders connect to. Default `0.0.0.0:8554`.
    pub listen: SocketAddr,
    /// Offer RTP over UDP unicast as well as TCP interleaved. Default `true`.
    pub udp: bool,
    /// UDP port camgate sends RTP from (RTCP uses the next port). `0` picks a
    /// free pair at start. Default `8000`.
    pub udp_rtp_port: u16,
    /// Most simultaneous recorder connections, on the main listener and
    /// every device front together; more are refused (503). Default `1024`.
    pub max_connections: usize,
    /// Most simultaneous connections that have not authenticated yet (a
    /// share of `max_connections`, so authenticated recorders always have
    /// the rest). When full, a newcomer evicts the oldest unauthenticated
    /// connection of the address holding the most, if it holds at least
    /// two more than the newcomer's. Default: a quarter of
    /// `max_connections` (at least 1).
    pub max_unauthenticated_connections: Option<usize>,
    /// Most unauthenticated connections from one address (IPv6: one /64);
    /// an authenticated connection no longer counts, so an NVR with one
    /// connection per channel never meets it once authenticated; the cap
    /// only bounds how many it may open at the same instant (a 32-channel
    /// NVR reconnecting every channel at once). Default `32`.
    pub max_unauthenticated_per_address: usize,
    /// A connection that has not authenticated this long after it was
    /// accepted is closed; requests (`OPTIONS`) do not extend it. Default `10`.
    pub unauthenticated_timeout_secs: u64,
    /// Largest request (request line + headers + body) a recorder may send, in
    /// bytes; larger requests get 400 and the connection is closed. Default `8192`.
    pub max_request_bytes: usize,
    /// Largest RTP payload camgate emits, in bytes. Default `1400`.
    pub max_payload_bytes: usize,
    /// Session timeout announced to recorders (`Session: ...;timeout=`); a UDP
    /// session with no request and no RTCP for this long is closed. Default `60`.
    pub session_timeout_secs: u64,
    /// How long DESCRIBE waits for a camera that is not connected yet (or has
    /// not sent its parameter sets) before answering 503. Default `10`.
    pub describe_timeout_secs: u64,
    /// Bytes a recorder may fall behind before camgate skips it to the next
    /// key frame (counting the dropped frames). Default `8388608` (8 MiB).
    pub recorder_queue_bytes: u64,
    /// A recorder whose oldest unsent frame is older than this is
    /// disconnected. Default `10`.
    pub recorder_max_lag_secs: u64,
    /// Cap on the GOP cache (latest key frame and what follows) per stream, in
    /// bytes. Default `16777216` (16 MiB).
    pub gop_cache_max_bytes: u64,
    /// Most sessions one recorder account holds at once, over all its
    /// connections (a UDP session outlives its connection until TEARDOWN or
    /// its timeout); a SETUP past it gets 453 Not Enough Bandwidth. One
    /// connection holds at most 16 whatever this says. Default `64`.
    pub max_sessions_per_recorder: usize,
}

impl Default for RtspSection {
    fn default() -> Self {
        RtspSection {
            listen: SocketAddr::from(([0, 0, 0, 0], 8554)),
            udp: true,
            udp_rtp_port: 8000,
            max_connections: 1024,
            max_unauthenticated_connections: None,
            max_unauthenticated_per_address: 32,
            unauthenticated_timeout_secs: 10,
            max_request_bytes: 8192,
            max_payload_bytes: 1400,
            session_timeout_secs: 60,
            describe_timeout_secs: 10,
            recorder_queue_bytes: 8 << 20,
            recorder_max_lag_secs: 10,
            gop_cache_max_bytes: 16 << 20,
            max_sessions_per_recorder: 64,
        }
    }
}

impl RtspSection {
    /// `max_unauthenticated_connections`, or its default.
    pub fn max_unauthenticated(&self) -> usize {
        unauthenticated_share(self.max_unauthenticated_connections, self.max_connections)
    }
}

/// An explicit unauthenticated share, or a quarter of `max_connections`
/// (at least 1).
fn unauthenticated_share(explicit: Option<usize>, max_connections: usize) -> usize {
    explicit.unwrap_or((max_connections / 4).max(1))
}

/// `[inspect]`: looking inside what camgate relays and at the cameras
/// themselves. Per-device sanitizing is set on each `[[device]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct InspectSection {
    /// Sanitize frames (per device: `sei_user_data`, `reserved_nals`) and
    /// watch streams for changes. Turning it off relays frames as the
    /// camera sent them (for measurements only). Default `true`.
    pub enabled: bool,
    /// Fingerprint each camera (RTSP `OPTIONS`, its HTTP `Server` header,
    /// ONVIF `GetDeviceInformation` with the device's credentials, and the
    /// MAC address's OUI from the host's neighbour table). Default `true`.
    pub fingerprint: bool,
    /// Fingerprint again this often, to notice a swapped device. Default `3600`.
    pub probe_interval_secs: u64,
    /// Timeout of each fingerprinting request. Default `5`.
    pub probe_timeout_secs: u64,
}

impl Default for InspectSection {
    fn default() -> Self {
        InspectSection {
            enabled: true,
            fingerprint: true,
            probe_interval_secs: 3600,
            probe_timeout_secs: 5,
        }
    }
}

/// `[camera]`: how camgate pulls from cameras (defaults for every device).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct CameraSection {
    /// Timeout for each step toward a camera: TCP connect + DESCRIBE, each
    /// SETUP, PLAY. Default `10`.
    pub connect_timeout_secs: u64,
    /// A camera that delivers no complete video frame for this long is
    /// reconnected; RTCP, audio, metadata and keepalive answers do not
    /// count. Default `20`.
    pub read_timeout_secs: u64,
    /// First reconnect delay; doubles after each failure. Default `1`.
    pub backoff_initial_secs: u64,
    /// Cap on the reconnect delay. Default `60`.
    pub backoff_max_secs: u64,
    /// A session that stayed healthy this long resets the delay. Default `60`.
    pub backoff_reset_secs: u64,
    /// `pull = "on-demand"` cameras are disconnected this long after the last
    /// recorder leaves. Default `30`.
    pub on_demand_close_secs: u64,
    /// Resident memory above which camera sessions that deliver no video
    /// (an access unit or RTSP message that never ends) are ended. `0`
    /// (default): half the memory of the machine or of the cgroup.
    pub memory_limit_bytes: u64,
}

impl Default for CameraSection {
    fn default() -> Self {
        CameraSection {
            connect_timeout_secs: 10,
            read_timeout_secs: 20,
            backoff_initial_secs: 1,
            backoff_max_secs: 60,
            backoff_reset_secs: 60,
            on_demand_close_secs: 30,
            memory_limit_bytes: 0,
        }
    }
}

/// `[http]`: the camera HTTP API proxy (ISAPI, Dahua CGI/RPC2, ONVIF).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct HttpSection {
    /// Path-based API front: `http://<listen>/<device>/...`. Off when
    /// absent. Per-device fronts (`front` on a device) work either way.
    pub listen: Option<SocketAddr>,
    /// Policy files, in order (first matching rule wins; no match: deny);
    /// relative to the config file's folder.
    /// Default: the shipped `policy/common.toml`, `policy/onvif.toml`,
    /// `policy/hikvision.toml`, `policy/dahua.toml`.
    pub policy: Vec<String>,
    /// Largest request head (request line and headers). Default `16384`.
    pub max_header_bytes: usize,
    /// Largest request body camgate reads to judge; larger ones get 413.
    /// Default `1048576`.
    pub max_body_bytes: usize,
    /// Largest body camgate reads before the recorder has authenticated:
    /// only ONVIF calls, whose WS-Security credentials are in the body (any
    /// other request is answered 401 from its head, body unread). Default
    /// `65536`.
    pub max_unauthenticated_body_bytes: usize,
    /// Bytes of such bodies held at once, all connections together; past
    /// it unauthenticated ONVIF calls get 503. Default `16777216` (16 MiB).
    pub unauthenticated_body_budget_bytes: usize,
    /// Largest non-streamed response from a camera (rewritten in memory).
    /// Default `8388608`.
    pub max_response_bytes: usize,
    /// Timeout to connect to a camera and get its response headers, to read
    /// a buffered (rewritten) answer, and to read a recorder's request; also
    /// the longest a streamed binary answer may stall between two chunks
    /// before it fails and the recorder's connection is closed. Default `15`.
    pub timeout_secs: u64,
    /// A long-lived event stream silent this long is closed. Default `120`.
    pub stream_idle_timeout_secs: u64,
    /// Most simultaneous connections on every camera API listener together
    /// (path-based and each device front, HTTP and HTTPS). Default `1024`.
    pub max_connections: usize,
    /// Most simultaneous connections that have not authenticated yet (see
    /// `[rtsp]`). Default: a quarter of `max_connections` (at least 1).
    pub max_unauthenticated_connections: Option<usize>,
    /// Most unauthenticated connections from one address (IPv6: one /64).
    /// Default `32`.
    pub max_unauthenticated_per_address: usize,
    /// A connection without an authenticated request this long after it
    /// was accepted is closed; the request headers must arrive within it
    /// too. Default `10`.
    pub unauthenticated_timeout_secs: u64,
    /// Certificate chain (PEM) for HTTPS on device fronts.
    pub tls_cert: Option<String>,
    /// Private key (PEM) for `tls_cert`.
    pub tls_key: Option<String>,
}

/// The shipped policy files, in order.
pub const DEFAULT_POLICY: [&str; 4] = [
    "policy/common.toml",
    "policy/onvif.toml",
    "policy/hikvision.toml",
    "policy/dahua.toml",
];

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: None,
            policy: DEFAULT_POLICY.iter().map(|s| s.to_string()).collect(),
            max_header_bytes: 16 << 10,
            max_body_bytes: 1 << 20,
            max_unauthenticated_body_bytes: 64 << 10,
            unauthenticated_body_budget_bytes: 16 << 20,
            max_response_bytes: 8 << 20,
            timeout_secs: 15,
            stream_idle_timeout_secs: 120,
            max_connections: 1024,
            max_unauthenticated_connections: None,
            max_unauthenticated_per_address: 32,
            unauthenticated_timeout_secs: 10,
            tls_cert: None,
            tls_key: None,
        }
    }
}

impl HttpSection {
    /// `max_unauthenticated_connections`, or its default.
    pub fn max_unauthenticated(&self) -> usize {
        unauthenticated_share(self.max_unauthenticated_connections, self.max_connections)
    }
}

/// `[fronts]`: ports of per-device fronts (`front = "<ip>"` on a device).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct FrontsSection {
    /// RTSP with the camera's own paths. Default `554`.
    pub rtsp_port: u16,
    /// The camera's HTTP API. Default `80`.
    pub http_port: u16,
    /// HTTPS (needs `[http].tls_cert` and `tls_key`). Default `443`.
    pub https_port: u16,
}

impl Default for FrontsSection {
    fn default() -> Self {
        FrontsSection {
            rtsp_port: 554,
            http_port: 80,
            https_port: 443,
        }
    }
}

/// `[dns]`: the resolver the camera network is given: allowed names are
/// forwarded or answered from static entries, vendor names sinkholed,
/// everything else refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct DnsSection {
    /// UDP and TCP address of the sinkhole. Off when absent.
    pub listen: Option<SocketAddr>,
    /// Resolvers allowed names are forwarded to (`10.0.0.53:53`).
    pub upstream: Vec<SocketAddr>,
    /// Names cameras may resolve (through `upstream`): `ntp.site.example`,
    /// or `*.site.example` for every name under it.
    pub allow: Vec<String>,
    /// Names camgate answers itself.
    #[serde(rename = "static")]
    pub statics: Vec<StaticEntry>,
    /// Answer to vendor names: `nxdomain`, or `trap` (an address from
    /// `trap_pool`, so the follow-up connection is caught and named too).
    /// Default `nxdomain`.
    pub sinkhole: String,
    /// IPv4 range for `sinkhole = "trap"` answers. Default `198.18.0.0/16`
    /// (RFC 2544 benchmarking range, never routed on the internet).
    pub trap_pool: String,
    /// TTL of camgate's answers. Default `60`.
    pub ttl_secs: u32,
    /// How long an upstream lookup may take. Default `3`.
    pub upstream_timeout_secs: u64,
    /// Most simultaneous DNS-over-TCP connections. Default `256`.
    pub tcp_max_connections: usize,
    /// Most simultaneous DNS-over-TCP connections from one address (IPv6
    /// addresses each count on their own: a camera is its address).
    /// Default `16`.
    pub tcp_max_connections_per_address: usize,
    /// A DNS-over-TCP connection that sends no complete query for this
    /// long (or does not read its answer) is closed. Default `10`.
    pub tcp_idle_timeout_secs: u64,
}

impl Default for DnsSection {
    fn default() -> Self {
        DnsSection {
            listen: None,
            upstream: Vec::new(),
            allow: Vec::new(),
            statics: Vec::new(),
            sinkhole: "nxdomain".into(),
            trap_pool: "198.18.0.0/16".into(),
            ttl_secs: 60,
            upstream_timeout_secs: 3,
            tcp_max_connections: 256,
            tcp_max_connections_per_address: 16,
            tcp_idle_timeout_secs: 10,
        }
    }
}

/// `[[dns.static]]`: a name camgate answers with fixed addresses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StaticEntry {
    pub name: String,
    pub addresses: Vec<IpAddr>,
}

/// `[egress]`: the trap for every other outbound connection the cameras
/// try, and the firewall rules `camgate nft` renders.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct EgressSection {
    /// Where the firewall redirects cameras' TCP (`nft redirect`). Off when
    /// absent.
    pub trap_tcp: Option<SocketAddr>,
    /// Where the firewall sends cameras' UDP (`nft tproxy`; needs
    /// CAP_NET_ADMIN). Off when absent.
    pub trap_udp: Option<SocketAddr>,
    /// How long the trap waits for a connection's first bytes. Default `3`.
    pub peek_timeout_secs: u64,
    /// Trapped connections held at once (waiting for first bytes or
    /// forwarded); beyond it, new ones are classified by port and closed at
    /// once. Default `1024`.
    pub max_connections: usize,
    /// Trapped connections one camera (one source address) may hold at
    /// once, so one camera cannot take every slot; beyond it, its new ones
    /// are classified by port and closed at once. Default `64` (at most
    /// `max_connections`).
    pub max_connections_per_device: Option<usize>,
    /// Site NTP servers cameras may reach on UDP 123 (rendered by `camgate
    /// nft`; camgate serves no NTP).
    pub ntp_servers: Vec<IpAddr>,
    /// Interface facing the cameras, for `camgate nft`: every host that
    /// comes in on it is on the camera side. Off when absent; `camgate nft`
    /// needs this or `camera_networks`.
    pub camera_interface: Option<String>,
    /// The camera side's networks (CIDRs, IPv4 or IPv6, e.g.
    /// `10.20.0.0/24`), for `camgate nft`: every source in them is on the
    /// camera side. Default empty; `camgate nft` needs this or
    /// `camera_interface`.
    pub camera_networks: Vec<String>,
    /// Vendor categories file (relative to the config file's folder).
    /// Default: the built-in copy of `config/egress/categories.toml`.
    pub categories: Option<String>,
    /// A forwarded connection idle this long is closed. Default `300`.
    pub forward_idle_timeout_secs: u64,
    /// A forwarded connection whose peer (either side) does not take bytes
    /// for this long is closed. Default `30`.
    pub forward_write_timeout_secs: u64,
    /// Connections the trap forwards instead of dropping.
    pub allow: Vec<EgressAllowEntry>,
}

impl Default for EgressSection {
    fn default() -> Self {
        EgressSection {
            trap_tcp: None,
            trap_udp: None,
            peek_timeout_secs: 3,
            max_connections: 1024,
            max_connections_per_device: None,
            ntp_servers: Vec::new(),
            camera_interface: None,
            camera_networks: Vec::new(),
            categories: None,
            forward_idle_timeout_secs: 300,
            forward_write_timeout_secs: 30,
            allow: Vec::new(),
        }
    }
}

/// `[[egress.allow]]`: a TCP destination some cameras may reach through
/// the trap (e.g. a recorder's alarm endpoint), forwarded and counted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EgressAllowEntry {
    /// Device ids, or `"*"` for every camera.
    pub devices: Vec<String>,
    /// Destination address and port.
    pub to: Option<SocketAddr>,
    /// Why (for the operator).
    pub reason: String,
}

/// `[admin]`: metrics and health endpoints.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AdminSection {
    /// Address of `/metrics`, `/healthz`, `/readyz`. Default `127.0.0.1:9559`.
    pub listen: SocketAddr,
    /// Most simultaneous admin connections. Default `256`.
    pub max_connections: usize,
    /// Most simultaneous admin connections from one address (IPv6: one
    /// /64). The admin listener has no authentication, so every connection
    /// counts. Default `32`.
    pub max_connections_per_address: usize,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            listen: SocketAddr::from(([127, 0, 0, 1], 9559)),
            max_connections: 256,
            max_connections_per_address: 32,
        }
    }
}

/// `[auth]`: how recorders' credentials are checked (RTSP and HTTP).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct AuthSection {
    /// How long a Digest nonce camgate issues stays valid; a recorder that
    /// answers with an older one gets `stale=true` and retries with a fresh
    /// nonce without asking anyone for a password. Requests inside an RTSP
    /// session the recorder already holds are never refused as stale.
    /// Between 1 and 300. Default `300`.
    pub nonce_lifetime_secs: u64,
    /// How far an ONVIF WS-Security token's `Created` time may be from
    /// camgate's clock, either way. Between 1 and 3600. Default `300`.
    pub ws_created_skew_secs: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            nonce_lifetime_secs: 300,
            ws_created_skew_secs: 300,
        }
    }
}

/// `[[recorder]]`: an NVR/VMS account. Exactly one of `password`,
/// `password_env` and `password_file` is required.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RecorderEntry {
    /// Label value in metrics and logs. Required.
    pub name: String,
    /// Login name. Required.
    pub username: String,
    /// A literal password (discouraged; `camgate check` warns). A
    /// [`Secret`](crate::config::Secret): `Debug` of the entry redacts it.
    pub password: Option<crate::config::Secret>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// Path of a file holding the password (trailing newline ignored);
    /// relative paths resolve against the config file's folder.
    pub password_file: Option<String>,
    /// Addresses or networks (`10.30.0.0/24`, `10.30.0.5`) the recorder may
    /// connect from. Default: anywhere.
    pub allow_from: Vec<String>,
    /// Device ids this recorder may view, or `"*"` for all. Default: none.
    pub devices: Vec<String>,
    /// Accept this recorder's password in clear on plaintext listeners:
    /// HTTP/RTSP Basic and ONVIF WS-Security `PasswordText`. Only for
    /// devices that cannot do Digest; over TLS both are always accepted.
    /// Default `false`.
    pub cleartext_auth: bool,
}

/// Retina's camera-quirk options, by their kebab-case names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct QuirksSection {
    /// `default | require | ignore | permissive`
    pub initial_timestamp: Option<String>,
    /// `default | respect | ignore-suspicious-values | ignore`
    pub initial_seq: Option<String>,
    /// `default | abort-session | drop-packets | process-packets`
    pub unknown_rtcp_ssrc: Option<String>,
    /// `default | require-match | use-first`
    pub session_id: Option<String>,
    /// `auto | never | always`
    pub teardown: Option<String>,
    /// `auto | assume-stale-session | error | ignore`
    pub unassigned_channel_data: Option<String>,
}

/// `[[device]]`: a camera (or the built-in simulated one). At most one of
/// `password`, `password_env` and `password_file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DeviceEntry {
    /// `[a-z0-9][a-z0-9_-]*`, unique. Required.
    pub id: String,
    /// `hikvision | dahua | generic`. Default `generic`.
    pub vendor: Option<String>,
    /// The camera's IP address. Required unless `simulated`.
    pub host: Option<String>,
    /// Default `554`.
    pub rtsp_port: Option<u16>,
    /// Default `80`.
    pub http_port: Option<u16>,
    /// Camera login; omit for cameras without authentication.
    pub username: Option<String>,
    /// A literal password (discouraged; `camgate check` warns). A
    /// [`Secret`](crate::config::Secret): `Debug` of the entry redacts it.
    pub password: Option<crate::config::Secret>,
    /// Name of an environment variable holding the password.
    pub password_env: Option<String>,
    /// Path of a file holding the password (trailing newline ignored);
    /// relative paths resolve against the config file's folder.
    pub password_file: Option<String>,
    /// Authentication schemes the camera's password may be sent with, over
    /// RTSP and HTTP: `digest | basic`. Default `digest` (a camera offering
    /// only Basic is refused); `basic` also answers Basic, the password in
    /// clear.
    pub auth: Option<String>,
    /// `always | on-demand`. Default `always`.
    pub pull: Option<String>,
    /// `strip | pass`. Default `strip`.
    pub audio: Option<String>,
    /// ONVIF metadata tracks (events, analytics) from the camera: `strip |
    /// pass`. Default `strip`.
    pub metadata: Option<String>,
    /// SEI messages outside the sanitizer's allow-list in the video (user
    /// data, payload types 4 and 5, where vendors and encoders put private
    /// data, first among them; `inspect::sanitize`): `strip | pass`.
    /// Default `strip`.
    pub sei_user_data: Option<String>,
    /// NAL units outside the sanitizer's allow-list (reserved and
    /// unspecified types, filler, extension layers, end of sequence...) and
    /// in-band parameter sets over their caps: `strip | pass`. Default `strip`.
    pub reserved_nals: Option<String>,
    /// `YYYY-MM-DD`.
    pub removal_deadline: Option<String>,
    /// Serve the built-in test clip instead of pulling a camera.
    pub simulated: bool,
    /// For a simulated device: an H.264 Annex B file to loop instead of the
    /// bundled clip (video only); relative to the config file's folder.
    pub clip: Option<String>,
    /// Frame rate of `clip`. Default `25`.
    pub clip_fps: Option<u32>,
    /// Stream name -> camera path (`main = "/Streaming/Channels/101"`).
    pub streams: BTreeMap<String, String>,
    /// RTP transport toward the camera: `tcp | udp`. Default `tcp`.
    pub rtsp_transport: Option<String>,
    /// Retina quirk options for this camera.
    pub quirks: QuirksSection,
    /// Present the device at this address (assigned to the host) as if it
    /// were the camera: RTSP with the camera's paths, and its HTTP API.
    pub front: Option<String>,
    /// Scheme of the camera's HTTP API: `http | https`. Default `http`.
    pub http_scheme: Option<String>,
    /// SHA-256 fingerprint of the camera's certificate (hex, colons
    /// optional); required with `http_scheme = "https"`.
    pub tls_fingerprint: Option<String>,
}
