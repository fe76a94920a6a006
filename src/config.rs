//! Configuration: the TOML file, `CAMGATE__` environment overrides, and the
//! validated, typed [`Config`] every other module reads.
//!
//! Loading walks each section separately, so one run reports every unknown
//! key, bad value and missing secret with its key path
//! (`device[3].streams.main: ...`). What the file may contain is
//! [`schema`]; the rules between fields are in [`validate`]. Nothing outside
//! this module parses configuration.

pub mod egress;
pub mod schema;
mod secret;
pub mod validate;

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use serde::de::DeserializeOwned;

pub use secret::{Secret, constant_time_eq};
pub use validate::is_label_safe;

pub use egress::{DnsConfig, EgressAllow, EgressConfig, NamePattern, Sinkhole};
use schema::{
    AdminSection, AuthSection, CameraSection, DeviceEntry, DnsSection, EgressSection,
    FrontsSection, HttpSection, InspectSection, RecorderEntry, RtspSection,
};

/// The environment prefix for overrides: `CAMGATE__RTSP__LISTEN=...`.
pub const ENV_PREFIX: &str = "CAMGATE";

/// One problem (or warning) found in the configuration, with its key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `device[3].streams.main`; empty for the file itself.
    pub path: String,
    /// What is wrong, naming the bad value.
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// A device id: `[a-z0-9][a-z0-9_-]*`, used in URLs and metric labels.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(Arc<str>);

impl DeviceId {
    pub fn new(s: &str) -> Self {
        DeviceId(Arc::from(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// The configured camera vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    Hikvision,
    Dahua,
    Generic,
}

impl Vendor {
    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::Hikvision => "hikvision",
            Vendor::Dahua => "dahua",
            Vendor::Generic => "generic",
        }
    }
}

/// When camgate connects to a camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    /// At start, and stays connected.
    Always,
    /// At the first recorder; disconnects a while after the last leaves.
    OnDemand,
}

/// What happens to a camera's audio tracks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioPolicy {
    /// Audio is left out (default: microphones in sensitive sites).
    Strip,
    /// Audio is relayed (AAC, G.711).
    Pass,
}

/// Retina quirk options for one camera.
#[derive(Clone, Copy, Default)]
pub struct Quirks {
    pub initial_timestamp: retina::client::InitialTimestampPolicy,
    pub initial_seq: retina::client::InitialSequenceNumberPolicy,
    pub unknown_rtcp_ssrc: retina::client::UnknownRtcpSsrcPolicy,
    pub session_id: retina::client::SessionIdPolicy,
    pub teardown: retina::client::TeardownPolicy,
    pub unassigned_channel_data: retina::client::UnassignedChannelDataPolicy,
}

impl fmt::Debug for Quirks {
    // Retina's UnassignedChannelDataPolicy has no Debug; its Display suffices.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Quirks")
            .field("initial_timestamp", &self.initial_timestamp)
            .field("initial_seq", &self.initial_seq)
            .field("unknown_rtcp_ssrc", &self.unknown_rtcp_ssrc)
            .field("session_id", &self.session_id)
            .field("teardown", &self.teardown)
            .field(
                "unassigned_channel_data",
                &self.unassigned_channel_data.to_string(),
            )
            .finish()
    }
}

/// Which authentication schemes camgate answers for a camera (`auth` on a
/// `[[device]]`), over RTSP and HTTP alike.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CameraAuth {
    /// Digest only: a camera (or an impostor at its address) that offers
    /// only Basic never receives the password. The default.
    #[default]
    Digest,
    /// Basic is answered too (the password in clear on the camera network),
    /// for cameras that cannot do Digest. Digest is still preferred when
    /// offered.
    Basic,
}

impl CameraAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            CameraAuth::Digest => "digest",
            CameraAuth::Basic => "basic",
        }
    }

    /// Whether a Basic challenge may be answered with the password.
    pub fn allows_basic(self) -> bool {
        self == CameraAuth::Basic
    }
}

/// How to reach a real camera.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub host: IpAddr,
    pub rtsp_port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// Schemes the password may be sent with (`auth`).
    pub auth: CameraAuth,
    pub transport: retina::client::Transport,
    pub quirks: Quirks,
}

impl CameraConfig {
    /// The camera's RTSP URL for `path` (without credentials).
    pub fn url(&self, path: &str) -> Result<url::Url, url::ParseError> {
        let host = match self.host {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        };
        url::Url::parse(&format!("rtsp://{host}:{}{path}", self.rtsp_port))
    }
}

/// Where a device's video comes from.
#[derive(Debug, Clone)]
pub enum DeviceSource {
    /// The built-in camera looping the bundled clip, or `clip` if given.
    Simulated {
        clip: Option<Arc<crate::camera::clip::Clip>>,
    },
    Camera(CameraConfig),
}

/// One named stream of a device.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Name in the recorder-facing URL (`/<device>/<name>`).
    pub name: Arc<str>,
    /// Path on the camera, may include a query (`/cam/realmonitor?channel=1&subtype=0`).
    pub path: String,
}

/// How camgate reaches a camera's HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraHttp {
    pub port: u16,
    pub https: bool,
    /// SHA-256 of the camera certificate (DER) that HTTPS must present.
    pub fingerprint: Option<[u8; 32]>,
}

/// A validated `[[device]]`.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub vendor: Vendor,
    pub source: DeviceSource,
    pub http: CameraHttp,
    /// The address this device is presented at, if any.
    pub front: Option<IpAddr>,
    pub pull: Pull,
    pub audio: AudioPolicy,
    /// Relay the camera's ONVIF metadata track (`metadata = "pass"`).
    pub metadata_pass: bool,
    /// What the inspector strips from this device's video.
    pub sanitize: crate::inspect::sanitize::Policy,
    pub removal_deadline: Option<jiff::civil::Date>,
    pub streams: Vec<StreamConfig>,
}

impl Device {
    /// The camera's address (its identity for DNS and egress accounting);
    /// `None` for simulated devices.
    pub fn camera_host(&self) -> Option<IpAddr> {
        match &self.source {
            DeviceSource::Camera(c) => Some(c.host),
            DeviceSource::Simulated { .. } => None,
        }
    }
}

/// Which devices a recorder may view.
#[derive(Debug, Clone)]
pub enum DeviceSet {
    All,
    Only(HashSet<String>),
}

impl DeviceSet {
    pub fn contains(&self, id: &str) -> bool {
        match self {
            DeviceSet::All => true,
            DeviceSet::Only(s) => s.contains(id),
        }
    }
}

/// A validated `[[recorder]]`.
#[derive(Debug, Clone)]
pub struct Recorder {
    pub name: Arc<str>,
    pub username: String,
    pub password: Secret,
    /// Empty means anywhere.
    pub allow_from: Vec<IpNet>,
    pub devices: DeviceSet,
    /// Basic and WS-Security PasswordText accepted on plaintext listeners.
    pub cleartext_auth: bool,
}

impl Recorder {
    /// Whether a connection from `ip` is allowed for this recorder.
    pub fn allowed_from(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        self.allow_from.is_empty() || self.allow_from.iter().any(|n| n.contains(&ip))
    }
}

/// Maps IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) to IPv4, so allow
/// lists written with IPv4 networks work on dual-stack listeners.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was loaded from.
    pub file: PathBuf,
    pub rtsp: RtspSection,
    pub camera: CameraSection,
    pub inspect: InspectSection,
    pub admin: AdminSection,
    pub http: HttpSection,
    pub fronts: FrontsSection,
    pub auth: AuthSection,
    pub dns: DnsConfig,
    pub egress: EgressConfig,
    /// The HTTP policy, loaded when the HTTP proxy is used (an `[http]`
    /// listener or any device front).
    pub policy: Option<Arc<crate::http::policy::Policy>>,
    pub recorders: Vec<Recorder>,
    pub devices: Vec<Device>,
}

impl Config {
    /// The authentication settings `[auth]` gives.
    pub fn auth_settings(&self) -> crate::auth::Settings {
        crate::auth::Settings {
            nonce_lifetime: std::time::Duration::from_secs(self.auth.nonce_lifetime_secs),
            ws_created_skew: std::time::Duration::from_secs(self.auth.ws_created_skew_secs),
        }
    }

    /// The RTSP listen address (convenience for tests and logs).
    pub fn rtsp_listen(&self) -> SocketAddr {
        self.rtsp.listen
    }
}

/// A configuration that loaded, with any warnings.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Problem>,
}

/// A configuration that did not load: every problem found, plus warnings.
#[derive(Debug)]
pub struct LoadError {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

/// Loads `file` with overrides from the process environment.
pub fn load(file: &Path) -> Result<Loaded, LoadError> {
    let vars: config::Map<String, String> = std::env::vars()
        .filter(|(k, _)| k.starts_with(&format!("{ENV_PREFIX}__")))
        .collect();
    load_with_env(file, vars, &|k| std::env::var(k).ok())
}

/// Loads `file` with explicit override variables and a secret lookup, for tests.
pub fn load_with_env(
    file: &Path,
    overrides: config::Map<String, String>,
    env: validate::EnvLookup<'_>,
) -> Result<Loaded, LoadError> {
    let fail = |message: String| LoadError {
        problems: vec![Problem::new("", message)],
        warnings: vec![],
    };
    let text = std::fs::read_to_string(file)
        .map_err(|e| fail(format!("cannot read {}: {e}", file.display())))?;
    let built = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Toml))
        .add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                .source(Some(overrides)),
        )
        .build()
        .map_err(|e| fail(format!("{}: {e}", file.display())))?;
    let mut root: config::Map<String, config::Value> = built
        .try_deserialize()
        .map_err(|e| fail(format!("{}: {e}", file.display())))?;

    let mut checker = validate::Checker {
        problems: Vec::new(),
        warnings: Vec::new(),
        base_dir: validate::base_dir_of(file),
        env,
    };

    let rtsp: Option<RtspSection> = section(&mut checker, "rtsp", root.remove("rtsp"));
    let camera: Option<CameraSection> = section(&mut checker, "camera", root.remove("camera"));
    let inspect: Option<InspectSection> = section(&mut checker, "inspect", root.remove("inspect"));
    let admin: Option<AdminSection> = section(&mut checker, "admin", root.remove("admin"));
    let http: Option<HttpSection> = section(&mut checker, "http", root.remove("http"));
    let fronts: Option<FrontsSection> = section(&mut checker, "fronts", root.remove("fronts"));
    let auth: Option<AuthSection> = section(&mut checker, "auth", root.remove("auth"));
    let dns: Option<DnsSection> = section(&mut checker, "dns", root.remove("dns"));
    let egress: Option<EgressSection> = section(&mut checker, "egress", root.remove("egress"));
    let recorder_entries: Vec<Option<RecorderEntry>> =
        array(&mut checker, "recorder", root.remove("recorder"));
    let device_entries: Vec<Option<DeviceEntry>> =
        array(&mut checker, "device", root.remove("device"));
    let mut unknown: Vec<_> = root.keys().cloned().collect();
    unknown.sort();
    for key in unknown {
        checker.problem(
            key,
            "unknown key (known sections: rtsp, camera, inspect, admin, http, fronts, auth, dns, egress, [[recorder]], [[device]])",
        );
    }

    checker.cross_check(&recorder_entries, &device_entries);
    let recorders: Vec<_> = recorder_entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| checker.recorder(i, e.as_ref()?))
        .collect();
    let devices: Vec<_> = device_entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| checker.device(i, e.as_ref()?))
        .collect();
    if device_entries.is_empty() {
        checker.warn("device", "no [[device]] configured: nothing to serve");
    }

    let dns = dns.and_then(|d| checker.dns(&d));
    let egress = egress.and_then(|e| checker.egress(&e, &devices));
    let config = match (
        rtsp, camera, inspect, admin, http, fronts, auth, dns, egress,
    ) {
        (
            Some(rtsp),
            Some(camera),
            Some(inspect),
            Some(admin),
            Some(http),
            Some(fronts),
            Some(auth),
            Some(dns),
            Some(egress),
        ) => {
            let policy = checker.http(&http, &devices);
            Some(Config {
                file: file.to_path_buf(),
                rtsp,
                camera,
                inspect,
                admin,
                http,
                fronts,
                auth,
                dns,
                egress,
                policy,
                recorders,
                devices,
            })
        }
        _ => None,
    };
    if let Some(c) = &config {
        checker.check_ranges(c);
    }
    match config {
        Some(config) if checker.problems.is_empty() => Ok(Loaded {
            config,
            warnings: checker.warnings,
        }),
        _ => Err(LoadError {
            problems: checker.problems,
            warnings: checker.warnings,
        }),
    }
}

/// Deserializes one table, reporting unknown keys and type errors with paths.
fn section<T: DeserializeOwned + Default>(
    c: &mut validate::Checker<'_>,
    path: &str,
    value: Option<config::Value>,
) -> Option<T> {
    let Some(value) = value else {
        return Some(T::default());
    };
    if !matches!(value.kind, config::ValueKind::Table(_)) {
        c.problem(path, "must be a table");
        return None;
    }
    let mut unknown = Vec::new();
    let mut record = |p: serde_ignored::Path<'_>| unknown.push(p.to_string());
    let de = serde_ignored::Deserializer::new(value, &mut record);
    let result: Result<T, _> = serde_path_to_error::deserialize(de);
    for key in unknown {
        c.problem(join_path(path, &key), "unknown key");
    }
    match result {
        Ok(t) => Some(t),
        Err(e) => {
            let inner = e.path().to_string();
            let msg = clean_message(&e.inner().to_string());
            c.problem(join_path(path, if inner == "." { "" } else { &inner }), msg);
            None
        }
    }
}

/// Deserializes an array of tables (`[[device]]`), each entry on its own.
fn array<T: DeserializeOwned + Default>(
    c: &mut validate::Checker<'_>,
    name: &str,
    value: Option<config::Value>,
) -> Vec<Option<T>> {
    let Some(value) = value else {
        return Vec::new();
    };
    let items = match value.kind {
        config::ValueKind::Array(items) => items,
        _ => {
            c.problem(name, format!("must be an array of tables ([[{name}]])"));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        // A bad entry still takes its slot so later indexes in messages
        // match the file.
        out.push(section(c, &format!("{name}[{i}]"), Some(item)));
    }
    out
}

/// Joins a section path and a serde path (`streams.main`, `allow_from.0`) in
/// the `a[0].b` style used in messages.
fn join_path(base: &str, rest: &str) -> String {
    let mut out = base.to_string();
    for part in rest.split('.').filter(|p| !p.is_empty() && *p != "?") {
        if part.bytes().all(|b| b.is_ascii_digit()) {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

/// Drops the config crate's "for key ..." suffix: the path is already given.
fn clean_message(msg: &str) -> String {
    match msg.find(" for key ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// Builds configs from text in other modules' unit tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A config with a loopback RTSP listener, a recorder and `extra`
    /// (device blocks, sections); panics with the problems if invalid.
    pub fn config_with(extra: &str) -> Config {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("camgate.toml");
        let text = format!(
            "[rtsp]\nlisten = \"127.0.0.1:0\"\nudp_rtp_port = 0\n[admin]\nlisten = \"127.0.0.1:0\"\n\
             [[recorder]]\nname = \"nvr\"\nusername = \"nvr\"\npassword = \"pw\"\ndevices = [\"*\"]\n{extra}"
        );
        std::fs::write(&file, text).expect("write config");
        match load_with_env(&file, Default::default(), &|_| None) {
            Ok(l) => l.config,
            Err(e) => panic!("test config invalid:\n{e}"),
        }
    }
}
