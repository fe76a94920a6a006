//! The removal inventory (`camgate inventory`): every device with its
//! configured and detected vendor (and the evidence), model, firmware,
//! removal deadline and days left, its streams' facts and its blocked
//! egress attempts, sorted by deadline, as a table, CSV or JSON.
//!
//! The data comes from a running camgate's `/api/v1/devices` (the admin
//! listener in the same config) or, when none answers, from probing the
//! cameras directly: the fingerprint probes and an RTSP `DESCRIBE` of each
//! stream (no media is pulled). Either way the rows are built from the same
//! JSON, so both paths print the same columns.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::config::{Config, DeviceSource};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Where the rows came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A running camgate's admin API.
    Api,
    /// camgate's own probes (no camgate was running).
    Probe,
}

/// One stream's facts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StreamRow {
    pub name: String,
    pub codec: String,
    pub profile: String,
    pub resolution: String,
    pub fps: f64,
    pub gop_frames: u64,
    pub bitrate_in_bps: u64,
    pub audio: String,
}

/// One device.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Row {
    pub id: String,
    pub vendor: String,
    pub detected_vendor: String,
    /// `signal: detail` items.
    pub evidence: Vec<String>,
    pub model: String,
    pub firmware: String,
    pub serial: String,
    pub removal_deadline: Option<String>,
    pub days_left: Option<i64>,
    pub streams: Vec<StreamRow>,
    /// Category -> count.
    pub blocked_attempts: std::collections::BTreeMap<String, u64>,
}

fn s(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Rows from `/api/v1/devices` JSON (unknown fields ignored, missing ones
/// empty), sorted by deadline (none last), then id.
pub fn rows(devices: &Value) -> Vec<Row> {
    let mut out: Vec<Row> = devices
        .as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default();
    out.sort_by(|a, b| {
        let key = |r: &Row| (r.removal_deadline.is_none(), r.removal_deadline.clone());
        key(a).cmp(&key(b)).then_with(|| a.id.cmp(&b.id))
    });
    out
}

fn row(d: &Value) -> Row {
    let id = d.get("identity").cloned().unwrap_or(Value::Null);
    let evidence = id
        .get("evidence")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|e| format!("{}: {}", s(e, "signal"), s(e, "detail")))
                .collect()
        })
        .unwrap_or_default();
    let streams = d
        .get("streams")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(stream_row).collect())
        .unwrap_or_default();
    let blocked_attempts = d
        .get("blocked_attempts")
        .and_then(Value::as_object)
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    Row {
        id: s(d, "id"),
        vendor: s(d, "vendor"),
        detected_vendor: s(&id, "detected_vendor"),
        evidence,
        model: s(&id, "model"),
        firmware: s(&id, "firmware"),
        serial: s(&id, "serial"),
        removal_deadline: d
            .get("removal_deadline")
            .and_then(Value::as_str)
            .map(str::to_string),
        days_left: d.get("days_until_removal").and_then(Value::as_i64),
        streams,
        blocked_attempts,
    }
}

fn stream_row(st: &Value) -> StreamRow {
    let mut r = StreamRow {
        name: s(st, "name"),
        fps: st.get("fps").and_then(Value::as_f64).unwrap_or(0.0),
        gop_frames: st.get("gop_frames").and_then(Value::as_u64).unwrap_or(0),
        bitrate_in_bps: st
            .get("bitrate_in_bps")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        ..Default::default()
    };
    for t in st
        .get("tracks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match t.get("kind").and_then(Value::as_str) {
            Some("video") if r.codec.is_empty() => {
                r.codec = s(t, "codec");
                r.profile = s(t, "profile");
                let (w, h) = (
                    t.get("width").and_then(Value::as_u64).unwrap_or(0),
                    t.get("height").and_then(Value::as_u64).unwrap_or(0),
                );
                if w > 0 {
                    r.resolution = format!("{w}x{h}");
                }
            }
            Some("audio") if r.audio.is_empty() => {
                r.audio = format!(
                    "{} {} Hz",
                    s(t, "codec"),
                    t.get("sample_rate").and_then(Value::as_u64).unwrap_or(0)
                );
            }
            _ => {}
        }
    }
    r
}

impl StreamRow {
    /// `main h264 High 1920x1080 25fps gop 50`.
    fn summary(&self) -> String {
        let mut out = self.name.clone();
        for part in [&self.codec, &self.profile, &self.resolution] {
            if !part.is_empty() {
                out.push(' ');
                out.push_str(part);
            }
        }
        if self.fps > 0.0 {
            let _ = write!(out, " {:.0}fps", self.fps);
        }
        if self.gop_frames > 0 {
            let _ = write!(out, " gop {}", self.gop_frames);
        }
        if !self.audio.is_empty() {
            let _ = write!(out, " +{}", self.audio);
        }
        out
    }
}

impl Row {
    fn blocked(&self) -> String {
        self.blocked_attempts
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{k}={n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn days(&self) -> String {
        self.days_left.map(|d| d.to_string()).unwrap_or_default()
    }
}

/// Renders the rows.
pub fn render(rows: &[Row], format: Format, origin: Origin) -> String {
    match format {
        Format::Json => {
            #[derive(Serialize)]
            struct Out<'a> {
                source: Origin,
                devices: &'a [Row],
            }
            let mut s = serde_json::to_string_pretty(&Out {
                source: origin,
                devices: rows,
            })
            .unwrap_or_default();
            s.push('\n');
            s
        }
        Format::Csv => csv(rows),
        Format::Table => table(rows, origin),
    }
}

const COLUMNS: [&str; 11] = [
    "removal_deadline",
    "days_left",
    "device",
    "vendor",
    "detected_vendor",
    "evidence",
    "model",
    "firmware",
    "serial",
    "streams",
    "blocked_attempts",
];

fn fields(r: &Row) -> [String; 11] {
    [
        r.removal_deadline.clone().unwrap_or_default(),
        r.days(),
        r.id.clone(),
        r.vendor.clone(),
        r.detected_vendor.clone(),
        r.evidence.join("; "),
        r.model.clone(),
        r.firmware.clone(),
        r.serial.clone(),
        r.streams
            .iter()
            .map(StreamRow::summary)
            .collect::<Vec<_>>()
            .join("; "),
        r.blocked(),
    ]
}

/// RFC 4180 CSV. Cells that a spreadsheet would run as a formula (camera
/// text is hostile) are prefixed with `'`.
fn csv(rows: &[Row]) -> String {
    let cell = |v: &str| {
        let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) && v.parse::<f64>().is_err() {
            format!("'{v}")
        } else {
            v.to_string()
        };
        if v.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", v.replace('"', "\"\""))
        } else {
            v
        }
    };
    let mut out = COLUMNS.join(",");
    out.push_str("\r\n");
    for r in rows {
        let f = fields(r);
        out.push_str(&f.iter().map(|v| cell(v)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

/// An aligned table of the main columns (evidence and serial go to CSV and
/// JSON, they are too wide for a terminal).
fn table(rows: &[Row], origin: Origin) -> String {
    let header = [
        "DEADLINE", "DAYS", "DEVICE", "VENDOR", "DETECTED", "MODEL", "FIRMWARE", "STREAMS",
        "BLOCKED",
    ];
    let body: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let f = fields(r);
            let printable = |s: &str| -> String {
                s.chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .take(60)
                    .collect()
            };
            [
                printable(&f[0]),
                printable(&f[1]),
                printable(&f[2]),
                printable(&f[3]),
                printable(if f[4].is_empty() { "?" } else { &f[4] }),
                printable(&f[6]),
                printable(&f[7]),
                printable(&f[9]),
                printable(&f[10]),
            ]
        })
        .collect();
    let mut width = header.map(str::len);
    for r in &body {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[&str], out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let pad = width[i] - c.chars().count();
                l.push_str(c);
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header, &mut out);
    for r in &body {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells, &mut out);
    }
    let _ = writeln!(
        out,
        "{} device(s); source: {}",
        rows.len(),
        match origin {
            Origin::Api => "running camgate (admin API)",
            Origin::Probe => "camgate's own probes (no camgate running)",
        }
    );
    out
}

/// The admin API's address to ask: the configured listener, with an
/// unspecified address replaced by loopback.
fn admin_addr(config: &Config) -> SocketAddr {
    let mut a = config.admin.listen;
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => a.set_ip(Ipv4Addr::LOCALHOST.into()),
        IpAddr::V6(ip) if ip.is_unspecified() => a.set_ip(Ipv6Addr::LOCALHOST.into()),
        _ => {}
    }
    a
}

/// `GET /api/v1/devices` from a running camgate, if one answers.
pub async fn from_api(config: &Config, timeout: Duration) -> Option<Value> {
    use http_body_util::{BodyExt, Empty, Limited};
    let addr = admin_addr(config);
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .ok()?;
        tokio::spawn(conn);
        let req = hyper::Request::get("/api/v1/devices")
            .header(hyper::header::HOST, addr.to_string())
            .body(Empty::<bytes::Bytes>::new())
            .ok()?;
        let resp = sender.send_request(req).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = Limited::new(resp.into_body(), 64 << 20)
            .collect()
            .await
            .ok()?
            .to_bytes();
        serde_json::from_slice::<Value>(&body).ok()
    };
    tokio::time::timeout(timeout, fetch).await.ok().flatten()
}

/// Builds the API's JSON by probing the configured cameras directly.
pub async fn from_probes(config: &Config, timeout: Duration) -> Value {
    let metrics = crate::metrics::Metrics::new();
    let registry = crate::devices::Registry::new(config, &metrics);
    let tracker = tokio_util::task::TaskTracker::new();
    let cancel = tokio_util::sync::CancellationToken::new();
    let probes = registry.devices().iter().map(|d| {
        let (tracker, cancel) = (tracker.clone(), cancel.clone());
        async move {
            let cam = match &d.config.source {
                DeviceSource::Camera(cam) => cam,
                DeviceSource::Simulated { clip } => {
                    // The clip it would loop.
                    let clip = clip.clone().or_else(|| crate::camera::clip::builtin().ok());
                    if let Some(c) = clip {
                        let mut tracks = vec![crate::media::Track::Video(c.video.clone())];
                        if d.config.audio == crate::config::AudioPolicy::Pass
                            && let Some((a, _)) = &c.audio
                        {
                            tracks.push(crate::media::Track::Audio(a.clone()));
                        }
                        for s in &d.streams {
                            s.hub.set_info(Arc::new(crate::media::StreamInfo {
                                tracks: tracks.clone(),
                            }));
                        }
                    }
                    return;
                }
            };
            if let Some(r) =
                crate::fingerprint::probe::probe(&d.config, timeout, &tracker, &cancel).await
            {
                d.identity.probed(r);
            }
            for s in &d.streams {
                let Some(cfg) = d.config.streams.iter().find(|c| c.name == s.name) else {
                    continue;
                };
                if let Ok((sdp, tracks)) =
                    crate::camera::session::describe_only(&d.config, cam, &cfg.path, timeout).await
                {
                    d.identity.sdp(&s.name, &sdp);
                    s.hub
                        .set_info(Arc::new(crate::media::StreamInfo { tracks }));
                }
            }
        }
    });
    // At most 32 devices at a time: a large estate must not see a burst.
    futures::stream::iter(probes)
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    cancel.cancel();
    let sessions = crate::recorder::session::Sessions::default();
    let book = crate::egress::book::Book::new(config, None);
    let all: Vec<_> = registry
        .devices()
        .iter()
        .map(|d| crate::admin::status::device(d, &sessions, &book))
        .collect();
    serde_json::to_value(all).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!([
            {
                "id": "lobby", "vendor": "generic", "removal_deadline": null,
                "days_until_removal": null, "streams": [], "blocked_attempts": {},
                "identity": {"detected_vendor": null, "evidence": []}
            },
            {
                "id": "gate-cam-01", "vendor": "hikvision",
                "removal_deadline": "2027-06-30", "days_until_removal": 214,
                "streams": [{
                    "name": "main", "fps": 25.0, "gop_frames": 50, "bitrate_in_bps": 4000000,
                    "tracks": [
                        {"kind": "video", "codec": "h264", "profile": "High", "level": "4.1", "width": 1920, "height": 1080},
                        {"kind": "audio", "codec": "aac", "sample_rate": 16000, "channels": 1}
                    ]
                }],
                "blocked_attempts": {"hik_connect": 12, "ntp_vendor": 0, "direct_ip": 3},
                "identity": {
                    "detected_vendor": "hikvision",
                    "evidence": [{"signal": "http_server", "vendor": "hikvision", "detail": "Server: App-webs/"}],
                    "model": "DS-2CD2143G0-I", "firmware": "V5.5.82 build 190909",
                    "serial": "=HYPERLINK(\"http://x\")"
                }
            },
            {
                "id": "yard", "vendor": "generic", "removal_deadline": "2026-12-01",
                "days_until_removal": 3, "streams": [], "blocked_attempts": {},
                "identity": {"detected_vendor": "dahua", "evidence": [
                    {"signal": "oui", "vendor": "dahua", "detail": "OUI 90:02:A9 Zhejiang Dahua Technology"}
                ], "model": "IPC-HFW2431S", "firmware": "2.800.0000018.0.R"}
            }
        ])
    }

    #[test]
    fn sorted_by_deadline_none_last() {
        let r = rows(&sample());
        let ids: Vec<_> = r.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["yard", "gate-cam-01", "lobby"]);
        assert_eq!(r[1].streams[0].resolution, "1920x1080");
        assert_eq!(r[1].streams[0].audio, "aac 16000 Hz");
        assert_eq!(r[1].blocked(), "direct_ip=3 hik_connect=12");
    }

    #[test]
    fn table_format() {
        let t = render(&rows(&sample()), Format::Table, Origin::Api);
        let lines: Vec<_> = t.lines().collect();
        assert!(lines[0].starts_with("DEADLINE"), "{t}");
        assert!(lines[1].starts_with("2026-12-01  3"), "{t}");
        assert!(lines[1].contains("dahua"));
        assert!(lines[2].contains("main h264 High 1920x1080 25fps gop 50 +aac 16000 Hz"));
        assert!(lines[2].contains("direct_ip=3 hik_connect=12"));
        assert!(lines[3].contains("lobby") && lines[3].contains('?'));
        assert_eq!(lines[4], "3 device(s); source: running camgate (admin API)");
        // Columns line up: DEVICE starts at the same offset on every row.
        let col = lines[0].find("DEVICE").unwrap();
        assert_eq!(&lines[1][col..col + 4], "yard");
    }

    #[test]
    fn csv_format_quotes_and_defuses_formulas() {
        let c = render(&rows(&sample()), Format::Csv, Origin::Probe);
        let lines: Vec<_> = c.split("\r\n").collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(lines.len(), 5, "header, 3 rows, trailing empty");
        assert!(
            lines[2].contains("\"'=HYPERLINK(\"\"http://x\"\")\""),
            "{}",
            lines[2]
        );
        assert!(lines[2].starts_with(
            "2027-06-30,214,gate-cam-01,hikvision,hikvision,http_server: Server: App-webs/,"
        ));
        assert!(lines[3].starts_with(",,lobby,generic,,"));
    }

    #[test]
    fn json_format() {
        let j = render(&rows(&sample()), Format::Json, Origin::Probe);
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["source"], "probe");
        assert_eq!(v["devices"][0]["id"], "yard");
        assert_eq!(v["devices"][1]["streams"][0]["codec"], "h264");
        assert_eq!(v["devices"][1]["blocked_attempts"]["hik_connect"], 12);
    }

    #[test]
    fn garbage_json_gives_no_rows() {
        assert!(rows(&serde_json::json!({"not": "an array"})).is_empty());
        let r = rows(&serde_json::json!([{"id": 5, "streams": "x"}]));
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].id, "");
    }
}
