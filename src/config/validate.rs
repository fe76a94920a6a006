//! Turns the file's sections into the typed [`Config`], collecting every
//! problem (with its key path) instead of stopping at the first.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

use super::schema::{DeviceEntry, HttpSection, QuirksSection, RecorderEntry};
use super::{
    AudioPolicy, CameraAuth, CameraConfig, CameraHttp, Config, Device, DeviceId, DeviceSet,
    DeviceSource, Problem, Pull, Quirks, Recorder, Secret, StreamConfig, Vendor,
};

/// Reads environment variables; injectable so tests need not touch the process env.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Accumulates problems and warnings while building the typed config.
pub(super) struct Checker<'a> {
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
    pub base_dir: PathBuf,
    pub env: EnvLookup<'a>,
}

impl Checker<'_> {
    pub fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    pub fn warn(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem::new(path, message));
    }

    /// Checks the sections that have no cross references.
    pub fn check_ranges(&mut self, cfg: &Config) {
        let r = &cfg.rtsp;
        if !(256..=65_000).contains(&r.max_payload_bytes) {
            self.problem("rtsp.max_payload_bytes", "must be between 256 and 65000");
        }
        if !(1024..=1 << 20).contains(&r.max_request_bytes) {
            self.problem("rtsp.max_request_bytes", "must be between 1024 and 1048576");
        }
        if r.max_connections == 0 {
            self.problem("rtsp.max_connections", "must be at least 1");
        }
        if !(1..=100_000).contains(&r.max_sessions_per_recorder) {
            self.problem(
                "rtsp.max_sessions_per_recorder",
                "must be between 1 and 100000",
            );
        }
        let h = &cfg.http;
        if !(1024..=1 << 20).contains(&h.max_unauthenticated_body_bytes) {
            self.problem(
                "http.max_unauthenticated_body_bytes",
                "must be between 1024 and 1048576",
            );
        }
        if h.unauthenticated_body_budget_bytes < h.max_unauthenticated_body_bytes
            || h.unauthenticated_body_budget_bytes > 1 << 30
        {
            self.problem(
                "http.unauthenticated_body_budget_bytes",
                "must be at least http.max_unauthenticated_body_bytes and at most 1073741824",
            );
        }
        if !(1..=300).contains(&cfg.auth.nonce_lifetime_secs) {
            self.problem("auth.nonce_lifetime_secs", "must be between 1 and 300");
        }
        if !(1..=3600).contains(&cfg.auth.ws_created_skew_secs) {
            self.problem("auth.ws_created_skew_secs", "must be between 1 and 3600");
        }
        if h.max_connections == 0 {
            self.problem("http.max_connections", "must be at least 1");
        }
        for (section, explicit, max) in [
            ("rtsp", r.max_unauthenticated_connections, r.max_connections),
            ("http", h.max_unauthenticated_connections, h.max_connections),
        ] {
            if let Some(n) = explicit
                && (n == 0 || n > max)
            {
                self.problem(
                    format!("{section}.max_unauthenticated_connections"),
                    format!("must be between 1 and {section}.max_connections (leave it out for a quarter of it)"),
                );
            }
        }
        for (key, v) in [
            (
                "rtsp.max_unauthenticated_per_address",
                r.max_unauthenticated_per_address,
            ),
            (
                "http.max_unauthenticated_per_address",
                h.max_unauthenticated_per_address,
            ),
            ("admin.max_connections", cfg.admin.max_connections),
            (
                "admin.max_connections_per_address",
                cfg.admin.max_connections_per_address,
            ),
        ] {
            if v == 0 {
                self.problem(key, "must be at least 1");
            }
        }
        if cfg.admin.max_connections_per_address > cfg.admin.max_connections {
            self.problem(
                "admin.max_connections_per_address",
                "must not exceed admin.max_connections",
            );
        }
        for (key, v) in [
            (
                "rtsp.unauthenticated_timeout_secs",
                r.unauthenticated_timeout_secs,
            ),
            (
                "http.unauthenticated_timeout_secs",
                h.unauthenticated_timeout_secs,
            ),
        ] {
            if !(1..=3600).contains(&v) {
                self.problem(key, "must be between 1 and 3600");
            }
        }
        if cfg.inspect.probe_interval_secs < 60 {
            self.problem("inspect.probe_interval_secs", "must be at least 60");
        }
        if r.recorder_queue_bytes < 1 << 20 {
            self.problem(
                "rtsp.recorder_queue_bytes",
                "must be at least 1048576 (key frames alone reach 400 KB)",
            );
        }
        if r.gop_cache_max_bytes < 1 << 20 {
            self.problem("rtsp.gop_cache_max_bytes", "must be at least 1048576");
        }
        for (key, v) in [
            ("rtsp.session_timeout_secs", r.session_timeout_secs),
            ("rtsp.describe_timeout_secs", r.describe_timeout_secs),
            ("rtsp.recorder_max_lag_secs", r.recorder_max_lag_secs),
            (
                "camera.connect_timeout_secs",
                cfg.camera.connect_timeout_secs,
            ),
            ("camera.read_timeout_secs", cfg.camera.read_timeout_secs),
            ("inspect.probe_timeout_secs", cfg.inspect.probe_timeout_secs),
            (
                "camera.backoff_initial_secs",
                cfg.camera.backoff_initial_secs,
            ),
            ("camera.backoff_max_secs", cfg.camera.backoff_max_secs),
        ] {
            if v == 0 {
                self.problem(key, "must be at least 1");
            } else if v > 86_400 {
                self.problem(key, "must be at most 86400 (one day)");
            }
        }
        let m = cfg.camera.memory_limit_bytes;
        if m != 0 && m < 64 << 20 {
            self.problem(
                "camera.memory_limit_bytes",
                "must be 0 (automatic) or at least 67108864 (64 MiB): it is in bytes",
            );
        }
        if cfg.camera.backoff_max_secs < cfg.camera.backoff_initial_secs {
            self.problem(
                "camera.backoff_max_secs",
                "must not be below camera.backoff_initial_secs",
            );
        }
        if r.listen.port() == 0 && !cfg!(test) {
            // Port 0 is legitimate in tests (ephemeral ports), so only a note.
            self.warn("rtsp.listen", "port 0 picks a random port at each start");
        }
    }

    /// Resolves a password from exactly one of its three sources.
    fn password(
        &mut self,
        path: &str,
        literal: &Option<Secret>,
        env: &Option<String>,
        file: &Option<String>,
    ) -> Option<Secret> {
        let given = [literal.is_some(), env.is_some(), file.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if given > 1 {
            self.problem(
                format!("{path}.password"),
                "set only one of password, password_env, password_file",
            );
            return None;
        }
        if let Some(p) = literal {
            self.warn(
                format!("{path}.password"),
                "literal password in the config file; prefer password_env or password_file",
            );
            if p.expose().is_empty() {
                self.problem(format!("{path}.password"), "must not be empty");
                return None;
            }
            return Some(p.clone());
        }
        if let Some(var) = env {
            return match (self.env)(var) {
                Some(v) if !v.is_empty() => Some(Secret::new(v)),
                Some(_) => {
                    self.problem(
                        format!("{path}.password_env"),
                        format!("environment variable {var} is empty"),
                    );
                    None
                }
                None => {
                    self.problem(
                        format!("{path}.password_env"),
                        format!("environment variable {var} is not set"),
                    );
                    None
                }
            };
        }
        if let Some(f) = file {
            let full = self.base_dir.join(f);
            return match std::fs::read_to_string(&full) {
                Ok(s) => {
                    let s = s.trim_end_matches(['\r', '\n']);
                    if s.is_empty() {
                        self.problem(
                            format!("{path}.password_file"),
                            format!("{} is empty", full.display()),
                        );
                        None
                    } else {
                        Some(Secret::new(s))
                    }
                }
                Err(e) => {
                    self.problem(
                        format!("{path}.password_file"),
                        format!("cannot read {}: {e}", full.display()),
                    );
                    None
                }
            };
        }
        None
    }

    pub fn recorder(&mut self, i: usize, e: &RecorderEntry) -> Option<Recorder> {
        let path = format!("recorder[{i}]");
        let mut ok = true;
        if e.name.is_empty() {
            self.problem(format!("{path}.name"), "is required");
            ok = false;
        } else if !is_label_safe(&e.name) {
            self.problem(
                format!("{path}.name"),
                format!(
                    "'{}' must match [a-z0-9][a-z0-9_-]* (at most 64 characters)",
                    e.name
                ),
            );
            ok = false;
        }
        if e.username.is_empty() {
            self.problem(format!("{path}.username"), "is required");
            ok = false;
        } else if e.username.contains(':') || e.username.chars().any(char::is_control) {
            self.problem(
                format!("{path}.username"),
                "must not contain ':' or control characters",
            );
            ok = false;
        }
        let password = self.password(&path, &e.password, &e.password_env, &e.password_file);
        if password.is_none()
            && e.password.is_none()
            && e.password_env.is_none()
            && e.password_file.is_none()
        {
            self.problem(
                format!("{path}.password"),
                "a recorder needs password, password_env or password_file",
            );
        }
        let mut allow_from = Vec::new();
        for (j, a) in e.allow_from.iter().enumerate() {
            match parse_net(a) {
                Some(n) => allow_from.push(n),
                None => {
                    self.problem(
                        format!("{path}.allow_from[{j}]"),
                        format!("'{a}' is not an IP address or network (e.g. 10.30.0.0/24)"),
                    );
                    ok = false;
                }
            }
        }
        let devices = if e.devices.iter().any(|d| d == "*") {
            DeviceSet::All
        } else {
            if e.devices.is_empty() {
                self.warn(
                    format!("{path}.devices"),
                    "empty: this recorder may view no device (use [\"*\"] for all)",
                );
            }
            DeviceSet::Only(e.devices.iter().cloned().collect())
        };
        Some(Recorder {
            name: Arc::from(e.name.as_str()),
            username: e.username.clone(),
            password: password?,
            allow_from,
            devices,
            cleartext_auth: e.cleartext_auth,
        })
        .filter(|_| ok)
    }

    pub fn device(&mut self, i: usize, e: &DeviceEntry) -> Option<Device> {
        let path = format!("device[{i}]");
        let mut ok = true;
        if e.id.is_empty() {
            self.problem(format!("{path}.id"), "is required");
            ok = false;
        } else if !is_label_safe(&e.id) {
            self.problem(
                format!("{path}.id"),
                format!(
                    "'{}' must match [a-z0-9][a-z0-9_-]* (at most 64 characters)",
                    e.id
                ),
            );
            ok = false;
        }
        let vendor = match e.vendor.as_deref().unwrap_or("generic") {
            "hikvision" => Vendor::Hikvision,
            "dahua" => Vendor::Dahua,
            "generic" => Vendor::Generic,
            other => {
                self.problem(
                    format!("{path}.vendor"),
                    format!("'{other}' is not one of hikvision, dahua, generic"),
                );
                ok = false;
                Vendor::Generic
            }
        };
        let pull = match e.pull.as_deref().unwrap_or("always") {
            "always" => Pull::Always,
            "on-demand" => Pull::OnDemand,
            other => {
                self.problem(
                    format!("{path}.pull"),
                    format!("'{other}' is not one of always, on-demand"),
                );
                ok = false;
                Pull::Always
            }
        };
        let audio = match e.audio.as_deref().unwrap_or("strip") {
            "strip" => AudioPolicy::Strip,
            "pass" => AudioPolicy::Pass,
            other => {
                self.problem(
                    format!("{path}.audio"),
                    format!("'{other}' is not one of strip, pass"),
                );
                ok = false;
                AudioPolicy::Strip
            }
        };
        let mut strip = |key: &str, v: &Option<String>| match v.as_deref().unwrap_or("strip") {
            "strip" => true,
            "pass" => false,
            other => {
                self.problem(
                    format!("{path}.{key}"),
                    format!("'{other}' is not one of strip, pass"),
                );
                ok = false;
                true
            }
        };
        let metadata_pass = !strip("metadata", &e.metadata);
        let sanitize = crate::inspect::sanitize::Policy {
            sei_user_data: strip("sei_user_data", &e.sei_user_data),
            reserved_nals: strip("reserved_nals", &e.reserved_nals),
        };
        let removal_deadline = match &e.removal_deadline {
            None => None,
            Some(s) => match s.trim().parse::<jiff::civil::Date>() {
                Ok(d) => Some(d),
                Err(_) => {
                    self.problem(
                        format!("{path}.removal_deadline"),
                        format!("'{s}' is not a date (YYYY-MM-DD)"),
                    );
                    ok = false;
                    None
                }
            },
        };
        let mut streams = Vec::new();
        let mut stream_map: BTreeMap<String, String> = e.streams.clone();
        if e.simulated && stream_map.is_empty() {
            stream_map.insert("main".into(), "/".into());
        }
        if stream_map.is_empty() {
            self.problem(
                format!("{path}.streams"),
                "at least one stream is required (e.g. main = \"/Streaming/Channels/101\")",
            );
            ok = false;
        }
        for (name, cam_path) in &stream_map {
            let spath = format!("{path}.streams.{name}");
            if !is_label_safe(name) {
                self.problem(
                    spath.clone(),
                    "stream names must match [a-z0-9][a-z0-9_-]* (at most 64 characters)",
                );
                ok = false;
            }
            if !cam_path.starts_with('/')
                || cam_path.len() > 1024
                || cam_path.chars().any(|c| c.is_control() || c == ' ')
            {
                self.problem(
                    spath,
                    format!(
                        "'{cam_path}' must be an absolute camera path starting with '/', \
                         without spaces"
                    ),
                );
                ok = false;
                continue;
            }
            streams.push(StreamConfig {
                name: Arc::from(name.as_str()),
                path: cam_path.clone(),
            });
        }
        let source = if e.simulated {
            for (key, set) in [
                ("host", e.host.is_some()),
                ("username", e.username.is_some()),
                ("rtsp_transport", e.rtsp_transport.is_some()),
                ("auth", e.auth.is_some()),
            ] {
                if set {
                    self.warn(format!("{path}.{key}"), "ignored for a simulated device");
                }
            }
            let clip = match &e.clip {
                None => None,
                Some(file) => {
                    let fps = e.clip_fps.unwrap_or(25);
                    if !(1..=120).contains(&fps) {
                        self.problem(format!("{path}.clip_fps"), "must be between 1 and 120");
                        return None;
                    }
                    match crate::camera::clip::Clip::load(&self.base_dir.join(file), fps) {
                        Ok(c) => Some(Arc::new(c)),
                        Err(msg) => {
                            self.problem(format!("{path}.clip"), msg);
                            return None;
                        }
                    }
                }
            };
            DeviceSource::Simulated { clip }
        } else {
            for (key, set) in [
                ("clip", e.clip.is_some()),
                ("clip_fps", e.clip_fps.is_some()),
            ] {
                if set {
                    self.warn(format!("{path}.{key}"), "only used by simulated devices");
                }
            }
            let host = match &e.host {
                None => {
                    self.problem(
                        format!("{path}.host"),
                        "is required (the camera's IP address)",
                    );
                    None
                }
                Some(h) => match h.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        self.problem(
                            format!("{path}.host"),
                            format!("'{h}' is not an IP address (it is also the camera's identity for DNS and egress accounting)"),
                        );
                        None
                    }
                },
            };
            let password = self.password(&path, &e.password, &e.password_env, &e.password_file);
            if password.is_some() && e.username.is_none() {
                self.problem(format!("{path}.username"), "a password needs a username");
                ok = false;
            }
            let transport = match e.rtsp_transport.as_deref().unwrap_or("tcp") {
                "tcp" => retina::client::Transport::Tcp(Default::default()),
                "udp" => retina::client::Transport::Udp(Default::default()),
                other => {
                    self.problem(
                        format!("{path}.rtsp_transport"),
                        format!("'{other}' is not one of tcp, udp"),
                    );
                    ok = false;
                    retina::client::Transport::Tcp(Default::default())
                }
            };
            let auth = match e.auth.as_deref().unwrap_or("digest") {
                "digest" => CameraAuth::Digest,
                "basic" => CameraAuth::Basic,
                other => {
                    self.problem(
                        format!("{path}.auth"),
                        format!("'{other}' is not one of digest, basic (device '{}')", e.id),
                    );
                    ok = false;
                    CameraAuth::Digest
                }
            };
            let quirks = self.quirks(&format!("{path}.quirks"), &e.quirks);
            match (host, quirks) {
                (Some(host), Some(quirks)) => DeviceSource::Camera(CameraConfig {
                    host,
                    rtsp_port: e.rtsp_port.unwrap_or(554),
                    username: e.username.clone(),
                    password,
                    auth,
                    transport,
                    quirks,
                }),
                _ => return None,
            }
        };
        if !ok {
            return None;
        }
        let front = match &e.front {
            None => None,
            Some(f) => match f.parse::<IpAddr>() {
                Ok(ip) if !ip.is_unspecified() => Some(ip),
                _ => {
                    self.problem(
                        format!("{path}.front"),
                        format!("'{f}' is not a specific IP address"),
                    );
                    return None;
                }
            },
        };
        let https = match e.http_scheme.as_deref().unwrap_or("http") {
            "http" => false,
            "https" => true,
            other => {
                self.problem(
                    format!("{path}.http_scheme"),
                    format!("'{other}' is not one of http, https"),
                );
                return None;
            }
        };
        let fingerprint = match &e.tls_fingerprint {
            None if https => {
                self.problem(
                    format!("{path}.tls_fingerprint"),
                    "required with http_scheme = \"https\": cameras present self-signed certificates, \
                     so camgate pins the SHA-256 of yours (openssl x509 -noout -fingerprint -sha256)",
                );
                return None;
            }
            None => None,
            Some(fp) => {
                match parse_fingerprint(fp) {
                    Some(f) => Some(f),
                    None => {
                        self.problem(
                        format!("{path}.tls_fingerprint"),
                        format!("'{fp}' is not a SHA-256 fingerprint (64 hex digits, colons allowed)"),
                    );
                        return None;
                    }
                }
            }
        };
        Some(Device {
            id: DeviceId::new(&e.id),
            vendor,
            source,
            http: CameraHttp {
                port: e.http_port.unwrap_or(if https { 443 } else { 80 }),
                https,
                fingerprint,
            },
            front,
            pull,
            audio,
            metadata_pass,
            sanitize,
            removal_deadline,
            streams,
        })
    }

    fn quirks(&mut self, path: &str, q: &QuirksSection) -> Option<Quirks> {
        fn parse<T: std::str::FromStr + Default>(
            c: &mut Checker<'_>,
            path: &str,
            key: &str,
            v: &Option<String>,
            choices: &str,
        ) -> Option<T> {
            match v {
                None => Some(T::default()),
                Some(s) => match s.parse::<T>() {
                    Ok(t) => Some(t),
                    Err(_) => {
                        c.problem(
                            format!("{path}.{key}"),
                            format!("'{s}' is not one of {choices}"),
                        );
                        None
                    }
                },
            }
        }
        let initial_timestamp = parse(
            self,
            path,
            "initial_timestamp",
            &q.initial_timestamp,
            "default, require, ignore, permissive",
        );
        let initial_seq = parse(
            self,
            path,
            "initial_seq",
            &q.initial_seq,
            "default, respect, ignore-suspicious-values, ignore",
        );
        let unknown_rtcp_ssrc = parse(
            self,
            path,
            "unknown_rtcp_ssrc",
            &q.unknown_rtcp_ssrc,
            "default, abort-session, drop-packets, process-packets",
        );
        let session_id = parse(
            self,
            path,
            "session_id",
            &q.session_id,
            "default, require-match, use-first",
        );
        let teardown = parse(self, path, "teardown", &q.teardown, "auto, never, always");
        let unassigned_channel_data = parse(
            self,
            path,
            "unassigned_channel_data",
            &q.unassigned_channel_data,
            "auto, assume-stale-session, error, ignore",
        );
        Some(Quirks {
            initial_timestamp: initial_timestamp?,
            initial_seq: initial_seq?,
            unknown_rtcp_ssrc: unknown_rtcp_ssrc?,
            session_id: session_id?,
            teardown: teardown?,
            unassigned_channel_data: unassigned_channel_data?,
        })
    }

    /// The HTTP proxy's settings: policy files (loaded when the proxy is
    /// used), TLS files, unique fronts.
    pub fn http(
        &mut self,
        http: &HttpSection,
        devices: &[Device],
    ) -> Option<Arc<crate::http::policy::Policy>> {
        if http.max_body_bytes < 1024 || http.max_body_bytes > 64 << 20 {
            self.problem("http.max_body_bytes", "must be between 1024 and 67108864");
        }
        if http.max_header_bytes < 1024 || http.max_header_bytes > 1 << 20 {
            self.problem("http.max_header_bytes", "must be between 1024 and 1048576");
        }
        if http.timeout_secs == 0 || http.stream_idle_timeout_secs == 0 {
            self.problem("http.timeout_secs", "timeouts must be at least 1 second");
        }
        let mut fronts = HashSet::new();
        for d in devices {
            if let Some(f) = d.front
                && !fronts.insert(f)
            {
                self.problem(
                    format!("device {}.front", d.id),
                    format!("{f} is already another device's front"),
                );
            }
        }
        match (&http.tls_cert, &http.tls_key) {
            (Some(c), Some(k)) => {
                if let Err(e) =
                    crate::tls::server_config(&self.base_dir.join(c), &self.base_dir.join(k))
                {
                    self.problem("http.tls_cert", e);
                }
            }
            (None, None) => {}
            _ => self.problem("http.tls_cert", "tls_cert and tls_key go together"),
        }
        let used = http.listen.is_some() || devices.iter().any(|d| d.front.is_some());
        if !used {
            return None;
        }
        if http.policy.is_empty() {
            self.problem(
                "http.policy",
                "at least one policy file is required (an empty policy would deny everything)",
            );
            return None;
        }
        let files: Vec<PathBuf> = http.policy.iter().map(|f| self.base_dir.join(f)).collect();
        match crate::http::policy::Policy::load(&files) {
            Ok(p) => Some(Arc::new(p)),
            Err(errors) => {
                for e in errors {
                    self.problem("http.policy", e.0);
                }
                None
            }
        }
    }

    /// Rules that span entries: unique ids and names, recorders' device lists.
    pub fn cross_check(
        &mut self,
        recorders: &[Option<RecorderEntry>],
        devices: &[Option<DeviceEntry>],
    ) {
        let mut ids = HashSet::new();
        let present_devices = devices
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.as_ref()?)));
        for (i, d) in present_devices {
            if !d.id.is_empty() && !ids.insert(d.id.as_str()) {
                self.problem(
                    format!("device[{i}].id"),
                    format!("duplicate device id '{}'", d.id),
                );
            }
        }
        let mut names = HashSet::new();
        let mut users = HashSet::new();
        let present_recorders = recorders
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i, e.as_ref()?)));
        for (i, r) in present_recorders {
            if !r.name.is_empty() && !names.insert(r.name.as_str()) {
                self.problem(
                    format!("recorder[{i}].name"),
                    format!("duplicate recorder name '{}'", r.name),
                );
            }
            if !r.username.is_empty() && !users.insert(r.username.as_str()) {
                self.problem(
                    format!("recorder[{i}].username"),
                    format!("duplicate username '{}'", r.username),
                );
            }
            for (j, d) in r.devices.iter().enumerate() {
                if d != "*" && !ids.contains(d.as_str()) {
                    self.problem(
                        format!("recorder[{i}].devices[{j}]"),
                        format!("unknown device id '{d}'"),
                    );
                }
            }
        }
    }
}

/// Parses `AB:CD:...` or `abcd...` (64 hex digits).
pub fn parse_fingerprint(s: &str) -> Option<[u8; 32]> {
    let hex: String = s.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// True for `[a-z0-9][a-z0-9_-]*` of at most 64 characters: safe in URLs,
/// metric labels and log lines.
pub fn is_label_safe(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// The folder relative paths in `file` resolve against.
pub fn base_dir_of(file: &Path) -> PathBuf {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
