//! Logging setup: `tracing` to stderr, human-readable or JSON, with the
//! filter from `--log`, else `CAMGATE_LOG`, else `RUST_LOG`, else `info`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// hickory logs every DNS query at INFO: the sinkhole counts queries in
/// metrics instead, so its crates log warnings only unless the filter names
/// them. retina logs camera-supplied text (a whole SDP per unparseable
/// `m=` line, every request a camera sends while playing), unescaped and
/// unbounded: it logs errors only unless the filter names it; camgate logs
/// what matters about a camera session itself, escaped.
fn with_quiet_deps(spec: &str) -> String {
    let mut out = spec.to_string();
    if !spec.contains("hickory") {
        out.push_str(
            ",hickory_server=warn,hickory_proto=warn,hickory_resolver=warn,hickory_net=warn",
        );
    }
    if !spec.contains("retina") {
        out.push_str(",retina=error");
    }
    out
}

/// Text from a camera (or any peer) made safe for one log line: at most
/// `max` characters, control characters (CR, LF, terminal escapes) and
/// quotes escaped, so it can neither forge a line nor flood one.
pub fn escape(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(max).is_some() {
        out.push_str("...");
    }
    out
}

/// Installs the global subscriber. Returns an error message for a bad filter.
pub fn init(filter: Option<&str>, format: LogFormat) -> Result<(), String> {
    let spec = filter
        .map(str::to_string)
        .or_else(|| std::env::var("CAMGATE_LOG").ok())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(with_quiet_deps(&spec))
        .map_err(|e| format!("bad log filter {spec:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Human => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))?;
    install_panic_hook();
    Ok(())
}

/// Panics are logged like any other error: one structured line through the
/// subscriber, the message bounded and escaped ([`panic_text`]), instead of
/// the default hook's raw text on stderr (a panic on camera input may quote
/// it, CR/LF and terminal escapes included).
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(location, message = %panic_text(info.payload()), "panic");
    }));
}

/// What a panic said, at most 200 characters, control characters escaped.
pub fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    escape(text, 200)
}

/// `uri` without its user info, for logs: `rtsp://u:p@h/x` becomes
/// `rtsp://h/x`. A path (`/x`) is returned as is; a URI without a scheme
/// (`u:p@h/x`) is read as starting with its authority. When the authority
/// is not a plain `host[:port]` but an `@` follows, the user info held an
/// unencoded `/`, `?` or `#` (`rtsp://u:p/w@h/`): it is cut up to that `@`.
/// Errs toward removing too much, never too little.
pub fn redact_uri(uri: &str) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let start = match uri.find("://") {
        Some(i) if is_scheme(&uri[..i]) => i + 3,
        _ if uri.starts_with("//") => 2,
        _ if uri.starts_with('/') => return Cow::Borrowed(uri),
        _ => 0,
    };
    let rest = &uri[start..];
    let auth_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let cut = match rest[..auth_end].rfind('@') {
        Some(at) => at,
        None if !is_host_port(&rest[..auth_end]) => {
            let Some(first) = rest.find('@') else {
                return Cow::Borrowed(uri);
            };
            let stop = rest[first..].find('/').map_or(rest.len(), |i| first + i);
            rest[..stop].rfind('@').unwrap_or(first)
        }
        None => return Cow::Borrowed(uri),
    };
    Cow::Owned(format!("{}{}", &uri[..start], &rest[cut + 1..]))
}

/// RFC 3986 `scheme`.
fn is_scheme(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|f| f.is_ascii_alphabetic())
        && c.all(|x| x.is_ascii_alphanumeric() || "+-.".contains(x))
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn is_host_port(a: &str) -> bool {
    let (host, port) = if let Some(v6) = a.strip_prefix('[') {
        match v6.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').or((p.is_empty()).then_some(""))),
            None => return false,
        }
    } else {
        match a.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, Some("")),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_~%:".contains(c))
        && (a.starts_with('[') || !host.contains(':'));
    host_ok && port.is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_logged_without_user_info() {
        for (raw, want) in [
            ("rtsp://u:p@h/", "rtsp://h/"),
            ("rtsp://u:p@h", "rtsp://h"),
            ("rtsp://u%3Ap@h", "rtsp://h"),
            ("rtsp://u%3Ap@h:554/x?y=1", "rtsp://h:554/x?y=1"),
            (
                "RTSP://admin:Secr3t@10.0.0.1:554/Streaming/Channels/101",
                "RTSP://10.0.0.1:554/Streaming/Channels/101",
            ),
            ("rtsp://user@h/x", "rtsp://h/x"),
            ("rtsp://:pw@h/x", "rtsp://h/x"),
            ("rtsp://u:p@x@h/x", "rtsp://h/x"),
            ("rtsp://u:p@h/a@b", "rtsp://h/a@b"),
            ("rtsp://u:p@[::1]:8554/d/m", "rtsp://[::1]:8554/d/m"),
            ("rtsp://u:p@[fe80::1%25eth0]/d", "rtsp://[fe80::1%25eth0]/d"),
            ("http://u:p@h/?q=a@b", "http://h/?q=a@b"),
            ("u:p@h:554/d/m", "h:554/d/m"),
            ("//u:p@h/d", "//h/d"),
            // An unencoded delimiter inside the password.
            ("rtsp://u:p/w@h/d/m", "rtsp://h/d/m"),
            ("rtsp://u:p?w@h/d/m", "rtsp://h/d/m"),
            ("rtsp://u:p#w@h/d", "rtsp://h/d"),
            ("rtsp://u:p/a/b@h/d", "rtsp://h/d"),
        ] {
            assert_eq!(redact_uri(raw), want, "{raw}");
        }
        // Nothing to remove: the same text, borrowed.
        for raw in [
            "rtsp://h/a@b",
            "rtsp://h:554/a@b?x=c@d",
            "rtsp://[::1]:8554/d/m",
            "rtsp://[::1]/x@y",
            "rtsp://10.0.0.1/x?u=a@b",
            "/demo/main",
            "/a@b",
            "*",
            "",
            "h:554/d",
        ] {
            assert!(
                matches!(redact_uri(raw), std::borrow::Cow::Borrowed(s) if s == raw),
                "{raw} -> {}",
                redact_uri(raw)
            );
        }
    }

    #[test]
    fn dependencies_are_quiet_unless_named() {
        assert!(with_quiet_deps("info").contains("hickory_server=warn"));
        assert!(with_quiet_deps("info").ends_with(",retina=error"));
        assert_eq!(
            with_quiet_deps("info,hickory_server=debug"),
            "info,hickory_server=debug,retina=error"
        );
        assert_eq!(
            with_quiet_deps("debug,retina=debug,hickory=info"),
            "debug,retina=debug,hickory=info"
        );
        assert!(EnvFilter::try_new(with_quiet_deps("warn,camgate::app=info")).is_ok());
    }

    #[test]
    fn camera_text_cannot_forge_or_flood_a_line() {
        assert_eq!(
            escape("h264\r\n2026-12-02 ERROR forged", 100),
            "h264\\r\\n2026-12-02 ERROR forged"
        );
        assert_eq!(escape("a\rb\nc\u{1b}[31m", 100), "a\\rb\\nc\\u{1b}[31m");
        assert_eq!(escape(&"x".repeat(1000), 8), "xxxxxxxx...");
        assert_eq!(escape("ééé", 3), "ééé");
    }
}
