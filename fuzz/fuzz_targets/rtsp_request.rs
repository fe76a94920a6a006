//! What a recorder sends on an RTSP connection: requests (any length,
//! any Content-Length), interleaved frames, Transport headers, URLs, and
//! the `Authorization` header checked as before authentication.
#![no_main]

#[path = "common/auth.rs"]
mod common_auth;

use camgate::auth::Presented;
use camgate::recorder::request::{self, Parsed};
use camgate::recorder::transport;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // No size limit at all: lengths near usize::MAX must not wrap.
    if let Parsed::Request { consumed, .. } | Parsed::Interleaved { consumed, .. } =
        request::parse(data, usize::MAX)
    {
        assert!(consumed <= data.len());
    }
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
            for a in request.headers_named("authorization") {
                // `@NONCE@` stands for a nonce camgate issued to this peer,
                // so the Digest checks past the nonce run too.
                let a = a.replace(
                    "@NONCE@",
                    &common_auth::issued_nonce(common_auth::auth(true)),
                );
                let _ = common_auth::auth(true).check(&Presented {
                    method: &request.method,
                    authorization: Some(&a),
                    peer: common_auth::PEER,
                    tls: false,
                    uri_matches: &|u| u == request.uri,
                });
            }
        }
        Parsed::Interleaved { consumed, .. } => assert!(consumed <= data.len()),
        Parsed::Incomplete | Parsed::Invalid(_) => {}
    }
    let text = String::from_utf8_lossy(data);
    let _ = transport::choose(&text, true);
    let _ = request::path_segments(&text);
});
