//! What a recorder sends on an RTSP connection: requests, interleaved
//! frames, Transport headers, URLs.
#![no_main]

use camgate::rtsp::request::{self, Parsed};
use camgate::rtsp::transport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match request::parse(data, 8192) {
        Parsed::Request { request, consumed } => {
            assert!(consumed <= data.len());
            let _ = request.cseq();
            let _ = request.session_id();
            if let Some(t) = request.header("transport") {
                let _ = transport::choose(t, true);
                let _ = transport::choose(t, false);
            }
            let _ = request::path_segments(&request.uri);
        }
        Parsed::Interleaved { consumed, .. } => assert!(consumed <= data.len()),
        Parsed::Incomplete | Parsed::Invalid(_) => {}
    }
    let text = String::from_utf8_lossy(data);
    let _ = transport::choose(&text, true);
    let _ = request::path_segments(&text);
});
