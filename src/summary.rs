//! The one-screen summary `camgate check` prints of what would run.

use std::fmt::Write;

use crate::config::{AudioPolicy, Config, DeviceSet, DeviceSource, Pull, Sinkhole};

/// Renders listeners, recorders and devices.
pub fn render(c: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "RTSP   rtsp://{}/<device>/<stream>  (UDP {})",
        c.rtsp.listen,
        if c.rtsp.udp {
            format!("on, RTP port {}", c.rtsp.udp_rtp_port)
        } else {
            "off".into()
        }
    );
    let rules = c.policy.as_ref().map_or(0, |p| p.len());
    match c.http.listen {
        Some(l) => {
            let _ = writeln!(s, "API    http://{l}/<device>/...  ({rules} policy rules)");
        }
        None if c.policy.is_some() => {
            let _ = writeln!(s, "API    device fronts only  ({rules} policy rules)");
        }
        None => {
            let _ = writeln!(s, "API    off");
        }
    }
    match c.dns.listen {
        Some(l) => {
            let sink = match c.dns.sinkhole {
                Sinkhole::NxDomain => "nxdomain".to_string(),
                Sinkhole::Trap(net) => format!("trap addresses from {net}"),
            };
            let _ = writeln!(
                s,
                "DNS    {l} udp+tcp  (vendor names: {sink}; {} allowed, {} static, {} categories)",
                c.dns.allow.len(),
                c.dns.statics.len(),
                c.egress.categories.all().len()
            );
        }
        None => {
            let _ = writeln!(s, "DNS    off");
        }
    }
    let addr = |a: Option<std::net::SocketAddr>| a.map_or("off".to_string(), |a| a.to_string());
    if c.egress.trap_tcp.is_some() || c.egress.trap_udp.is_some() {
        let _ = writeln!(
            s,
            "trap   tcp {}, udp {}  ({} allow rule(s))",
            addr(c.egress.trap_tcp),
            addr(c.egress.trap_udp),
            c.egress.allow.len()
        );
    } else {
        let _ = writeln!(s, "trap   off");
    }
    let _ = writeln!(s, "admin  http://{}/", c.admin.listen);
    let _ = writeln!(s, "recorders ({}):", c.recorders.len());
    for r in &c.recorders {
        let devices = match &r.devices {
            DeviceSet::All => "all devices".to_string(),
            DeviceSet::Only(set) => {
                let mut v: Vec<_> = set.iter().map(String::as_str).collect();
                v.sort();
                if v.is_empty() {
                    "no device".into()
                } else {
                    v.join(", ")
                }
            }
        };
        let from = if r.allow_from.is_empty() {
            "anywhere".to_string()
        } else {
            r.allow_from
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            s,
            "  {:<16} user {:<12} from {from}; may view {devices}",
            r.name, r.username
        );
    }
    let _ = writeln!(s, "devices ({}):", c.devices.len());
    for d in &c.devices {
        let source = match &d.source {
            DeviceSource::Simulated { clip: None } => "simulated".to_string(),
            DeviceSource::Simulated { clip: Some(c) } => {
                format!("simulated ({} frames at {} fps)", c.frames.len(), c.fps)
            }
            DeviceSource::Camera(cam) => {
                format!("{} at {}:{}", d.vendor.as_str(), cam.host, cam.rtsp_port)
            }
        };
        let pull = match d.pull {
            Pull::Always => "always",
            Pull::OnDemand => "on-demand",
        };
        let deadline = d
            .removal_deadline
            .map(|x| format!(", remove by {x}"))
            .unwrap_or_default();
        let streams: Vec<_> = d.streams.iter().map(|s| s.name.to_string()).collect();
        let audio = match d.audio {
            AudioPolicy::Strip => "strip",
            AudioPolicy::Pass => "pass",
        };
        let front = d
            .front
            .map(|ip| {
                let tls = if c.http.tls_cert.is_some() {
                    format!(", https :{}", c.fronts.https_port)
                } else {
                    String::new()
                };
                format!(
                    "; front {ip} (rtsp :{}, http :{}{tls})",
                    c.fronts.rtsp_port, c.fronts.http_port
                )
            })
            .unwrap_or_default();
        // Inspection settings, only where they differ from the safe defaults.
        let mut passes = Vec::new();
        if d.metadata_pass {
            passes.push("ONVIF metadata");
        }
        if !d.sanitize.sei_user_data {
            passes.push("SEI outside the allow-list");
        }
        if !d.sanitize.reserved_nals {
            passes.push("NAL units outside the allow-list");
        }
        let passes = if passes.is_empty() {
            String::new()
        } else {
            format!("; passes {}", passes.join(", "))
        };
        let _ = writeln!(
            s,
            "  {:<16} {source}; pull {pull}; audio {audio}{passes}; streams {}{front}{deadline}",
            d.id.as_str(),
            streams.join(", ")
        );
    }
    s
}
