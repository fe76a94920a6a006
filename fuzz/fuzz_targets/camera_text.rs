//! What a camera (or something posing as one) says about itself: RTSP and
//! HTTP `Server` headers, auth challenges, its SDP, ONVIF
//! GetDeviceInformation, plus the host's neighbour table. The fingerprint
//! parsers must never panic and label values must stay bounded and clean.
#![no_main]

use camgate::fingerprint as fp;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = fp::sdp(data);
    let _ = fp::parse_device_information(data);
    let text = String::from_utf8_lossy(data);
    let _ = fp::rtsp_server(&text);
    let _ = fp::http_server(&text);
    let _ = fp::www_authenticate(&text, true);
    let _ = fp::www_authenticate(&text, false);
    let _ = fp::onvif_manufacturer(&text);
    let _ = fp::parse_mac(&text);
    let _ = fp::parse_proc_net_arp(&text);
    let label = fp::label_value(&text);
    assert!(label.chars().count() <= 64, "label too long: {label:?}");
    assert!(
        !label.chars().any(|c| c.is_control()),
        "control character in label: {label:?}"
    );
    if let Some(info) = fp::parse_device_information(data) {
        for v in [
            &info.manufacturer,
            &info.model,
            &info.firmware,
            &info.serial,
        ] {
            assert!(v.chars().count() <= 64, "{v:?}");
        }
    }
});
