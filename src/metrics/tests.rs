use super::*;

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn every_family_is_declared_with_help_and_type() {
    let m = Metrics::new();
    m.device("cam", "hikvision", Some(1_800_000_000));
    let s = m.stream("cam", "main");
    s.reconnect("timeout");
    let _r = s.session("nvr", "tcp");
    m.auth_failure("rtsp", AuthFailure::BadCredentials);
    let text = m.encode(false);
    for name in NAMES {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} not declared in:\n{text}"
        );
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no help"
        );
    }
    assert!(text.contains(&format!(
        "camgate_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert_eq!(
        value(
            &text,
            "camgate_device_removal_deadline_timestamp_seconds{device=\"cam\"}"
        ),
        Some(1.8e9)
    );
    assert_eq!(
        value(
            &text,
            "camgate_stream_reconnects_total{device=\"cam\",stream=\"main\",reason=\"timeout\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "camgate_auth_failures_total{protocol=\"rtsp\",reason=\"bad_credentials\"}"
        ),
        Some(1.0)
    );
    assert!(value(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(value(&text, "process_start_time_seconds").unwrap() > 1.7e9);
}

#[test]
fn session_handles_count_and_uncount() {
    let m = Metrics::new();
    let s = m.stream("cam", "main");
    let a = s.session("nvr", "tcp");
    let b = s.session("nvr", "tcp");
    let series = "camgate_recorder_sessions{device=\"cam\",stream=\"main\",recorder=\"nvr\",transport=\"tcp\"}";
    assert_eq!(value(&m.encode(false), series), Some(2.0));
    a.sent(100);
    b.sent(50);
    b.dropped_queue_full(3);
    drop(a);
    let text = m.encode(false);
    assert_eq!(value(&text, series), Some(1.0));
    assert_eq!(
        value(
            &text,
            "camgate_recorder_sent_bytes_total{device=\"cam\",stream=\"main\",recorder=\"nvr\"}"
        ),
        Some(150.0)
    );
    assert_eq!(
        value(
            &text,
            "camgate_recorder_dropped_frames_total{device=\"cam\",stream=\"main\",recorder=\"nvr\",reason=\"queue_full\"}"
        ),
        Some(3.0)
    );
    assert_eq!(s.sent_bytes(), 150);
    assert_eq!(s.dropped_frames(), 3);
}

#[test]
fn labels_never_merge_by_concatenation() {
    // The defect that rules out the `prometheus` crate: ("ab","c") and
    // ("a","bc") must stay two series.
    let m = Metrics::new();
    m.stream("ab", "c").received_bytes.inc_by(1);
    m.stream("a", "bc").received_bytes.inc_by(2);
    let text = m.encode(false);
    assert_eq!(
        value(
            &text,
            "camgate_stream_received_bytes_total{device=\"ab\",stream=\"c\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &text,
            "camgate_stream_received_bytes_total{device=\"a\",stream=\"bc\"}"
        ),
        Some(2.0)
    );
}

#[test]
fn openmetrics_ends_with_eof() {
    let text = Metrics::new().encode(true);
    assert!(text.trim_end().ends_with("# EOF"));
}
