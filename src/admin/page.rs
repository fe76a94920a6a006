//! The status page: one self-contained, server-rendered HTML page (no
//! scripts, no external assets, so it works on an offline network) with a
//! row per device, problems first, refreshing itself every 5 s.

use std::fmt::Write;

use crate::admin::status::DeviceStatus;

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// `4.10 Mbit/s`, `850 kbit/s`.
fn bitrate(bps: u64) -> String {
    if bps >= 1_000_000 {
        format!("{:.2} Mbit/s", bps as f64 / 1e6)
    } else {
        format!("{} kbit/s", bps / 1000)
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}table{border-collapse:collapse;width:100%}\
th,td{padding:.35em .6em;border-bottom:1px solid #ddd;text-align:left;font-variant-numeric:tabular-nums}\
th{background:#f3f3f3}tr.down td.state{color:#fff;background:#c0392b}tr.up td.state{color:#fff;background:#27ae60}\
td.warn{background:#fdebd0}.mismatch{color:#c0392b;font-weight:bold}td.bad{background:#f5b7b1}.muted{color:#777;font-size:.9em}";

/// Renders the page. `devices` should already be sorted problems first.
pub fn render(devices: &[DeviceStatus], today: jiff::civil::Date) -> String {
    let mut s = String::with_capacity(4096 + devices.len() * 512);
    let down = devices.iter().filter(|d| !d.up).count();
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>camgate status</title>\
         <style>{STYLE}</style></head><body>\
         <h1>camgate: {} devices, {} down</h1>\
         <p class=\"muted\">{today}, refreshes every 5 s; JSON at <a href=\"/api/v1/devices\">/api/v1/devices</a>, \
         metrics at <a href=\"/metrics\">/metrics</a></p>\
         <table id=\"devices\"><thead><tr><th>device</th><th>vendor</th><th>state</th><th>bitrate in</th>\
         <th>bitrate out</th><th>recorders</th><th>dropped frames</th><th>blocked attempts</th>\
         <th>days until removal</th><th>streams</th><th>last error</th></tr></thead><tbody>\n",
        devices.len(),
        down,
    );
    for d in devices {
        let state = if d.up { "up" } else { "down" };
        let days = match d.days_until_removal {
            Some(n) if n < 0 => format!("<td class=\"days bad\">{n} (overdue)</td>"),
            Some(n) if n <= 30 => format!("<td class=\"days warn\">{n}</td>"),
            Some(n) => format!("<td class=\"days\">{n}</td>"),
            None => "<td class=\"days muted\">none set</td>".to_string(),
        };
        let streams: Vec<String> = d
            .streams
            .iter()
            .map(|st| {
                let video = st.tracks.iter().find_map(|t| match t {
                    crate::inspect::facts::TrackFacts::Video(v) => {
                        let mut f = format!("{} {} {}", v.codec, v.profile, v.resolution());
                        if st.fps > 0.0 {
                            let _ = write!(f, " {:.0} fps", st.fps);
                        }
                        if st.gop_frames > 0 {
                            let _ = write!(f, ", GOP {}", st.gop_frames);
                        }
                        Some(f)
                    }
                    _ => None,
                });
                format!(
                    "{}: {}{}",
                    escape(&st.name),
                    st.state,
                    video
                        .map(|v| format!(" ({})", escape(&v)))
                        .unwrap_or_default()
                )
            })
            .collect();
        let error = d
            .streams
            .iter()
            .filter_map(|st| st.last_error.as_ref())
            .max_by(|a, b| a.at.cmp(&b.at))
            .map(|e| {
                format!(
                    "{} <span class=\"muted\">{}</span>",
                    escape(&e.message.chars().take(200).collect::<String>()),
                    escape(&e.at)
                )
            })
            .unwrap_or_default();
        let id = &d.identity;
        let detected = match id.detected_vendor {
            Some(v) if id.vendor_mismatch => {
                format!("<br><span class=\"mismatch\">detected {v} (mismatch)</span>")
            }
            Some(v) => format!("<br><small>detected {v}</small>"),
            None => String::new(),
        };
        let model: String = [id.model.as_str(), id.firmware.as_str()]
            .iter()
            .filter(|x| !x.is_empty())
            .map(|x| escape(x))
            .collect::<Vec<_>>()
            .join(" ");
        let model = if model.is_empty() {
            model
        } else {
            format!("<br><small class=\"muted\">{model}</small>")
        };
        let event = d
            .events
            .first()
            .map(|e| {
                format!(
                    "<br><small>{}: {} <span class=\"muted\">{}</span></small>",
                    escape(&e.stream),
                    escape(&format!("{} {}", e.event, e.detail)),
                    escape(&e.at)
                )
            })
            .unwrap_or_default();
        let dropped = d.dropped_frames();
        let blocked = d.blocked();
        // Most frequent categories first.
        let mut by: Vec<_> = d.blocked_attempts.iter().collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let breakdown = if by.is_empty() {
            String::new()
        } else {
            let parts: Vec<String> = by
                .iter()
                .map(|(c, n)| format!("{} {n}", escape(c)))
                .collect();
            format!("<br><small>{}</small>", parts.join(", "))
        };
        let _ = writeln!(
            s,
            "<tr class=\"device {state}\" data-device=\"{id}\"><td class=\"id\">{id}</td><td class=\"vendor\">{vendor}{detected}{model}</td>\
             <td class=\"state\">{state}</td><td class=\"in\">{bin}</td><td class=\"out\">{bout}</td>\
             <td class=\"recorders\">{rec}</td><td class=\"dropped{dw}\">{dropped}</td>\
             <td class=\"blocked{bw}\">{blocked}{breakdown}</td>{days}<td>{streams}{event}</td><td class=\"error\">{error}</td></tr>",
            id = escape(&d.id),
            vendor = d.vendor,
            bin = bitrate(d.bitrate_in_bps()),
            bout = bitrate(d.bitrate_out_bps()),
            rec = d.recorders(),
            dw = if dropped > 0 { " warn" } else { "" },
            bw = if blocked > 0 { " bad" } else { "" },
            streams = streams.join("<br>"),
        );
    }
    s.push_str("</tbody></table></body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::status::{DeviceStatus, ErrorStatus, StreamStatus};

    fn dev(id: &str, up: bool, days: Option<i64>) -> DeviceStatus {
        DeviceStatus {
            id: id.into(),
            vendor: "hikvision",
            kind: "camera",
            host: Some("10.0.0.1".into()),
            pull: "always",
            audio: "strip",
            metadata: "strip",
            removal_deadline: None,
            days_until_removal: days,
            up,
            streams: vec![StreamStatus {
                name: "main".into(),
                state: if up { "live" } else { "backoff" },
                up,
                tracks: vec![],
                fps: 25.0,
                gop_frames: 50,
                stripped_bytes: Default::default(),
                bitrate_in_bps: 4_100_000,
                bitrate_out_bps: 8_200_000,
                recorders: vec![],
                dropped_frames: 0,
                lost_packets: 0,
                last_frame_at: None,
                last_error: (!up).then(|| ErrorStatus {
                    message: "refused: <script>alert(1)</script>".into(),
                    at: "2026-11-28T00:00:00Z".into(),
                }),
            }],
            blocked_attempts: Default::default(),
            recent_attempts: Vec::new(),
            events: Vec::new(),
            identity: Default::default(),
        }
    }

    #[test]
    fn rows_and_escaping() {
        let today = jiff::civil::date(2026, 11, 28);
        let html = render(
            &[dev("cam-b", false, Some(-3)), dev("cam-a", true, Some(200))],
            today,
        );
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(html.contains("2 devices, 1 down"));
        assert!(html.contains("data-device=\"cam-b\""));
        assert!(html.contains("-3 (overdue)"));
        assert!(html.contains("4.10 Mbit/s") && html.contains("8.20 Mbit/s"));
        assert!(!html.contains("<script>"), "camera text is escaped");
        assert!(html.contains("&lt;script&gt;"));
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "no external assets"
        );
        assert!(html.find("cam-b").unwrap() < html.find("cam-a").unwrap());
    }

    #[test]
    fn identity_and_events_shown_escaped() {
        let mut d = dev("cam-c", true, None);
        d.identity.detected_vendor = Some("dahua");
        d.identity.vendor_mismatch = true;
        d.identity.model = "IPC<b>X</b>".into();
        d.streams[0]
            .tracks
            .push(crate::inspect::facts::TrackFacts::Video(
                crate::inspect::facts::VideoFacts {
                    codec: "h264",
                    profile: "High".into(),
                    level: "4.1".into(),
                    width: 1920,
                    height: 1080,
                },
            ));
        d.events.push(crate::admin::status::EventStatus {
            at: "2026-11-28T00:00:00Z".into(),
            stream: "main".into(),
            event: "resolution_change",
            detail: "640x360 -> 1920x1080".into(),
        });
        let html = render(&[d], jiff::civil::date(2026, 11, 28));
        assert!(html.contains("detected dahua (mismatch)"));
        assert!(html.contains("IPC&lt;b&gt;X&lt;/b&gt;"));
        assert!(html.contains("resolution_change 640x360 -&gt; 1920x1080"));
        assert!(html.contains("h264 High 1920x1080 25 fps, GOP 50"));
    }
}
