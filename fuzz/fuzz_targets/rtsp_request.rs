//! What a recorder sends on an RTSP connection: requests (any length,
//! any Content-Length), interleaved frames, Transport headers, URLs, and
//! the `Authorization` header checked as before authentication.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use camgate::auth::{Authenticator, Presented, Settings};
use camgate::config::{DeviceSet, Recorder, Secret};
use camgate::rtsp::request::{self, Parsed};
use camgate::rtsp::transport;
use libfuzzer_sys::fuzz_target;

fn auth() -> &'static Authenticator {
    static A: OnceLock<Authenticator> = OnceLock::new();
    A.get_or_init(|| {
        Authenticator::new(
            &[Recorder {
                name: Arc::from("nvr"),
                username: "nvr".into(),
                password: Secret::new("pw"),
                allow_from: vec![],
                devices: DeviceSet::All,
                cleartext_auth: true,
            }],
            Settings::default(),
        )
    })
}

/// A nonce camgate issued to the fuzzed peer (192.0.2.1).
fn issued_nonce() -> String {
    let c = auth().challenges(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), false, false, false);
    c[0].split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}

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
                let a = a.replace("@NONCE@", &issued_nonce());
                let _ = auth().check(&Presented {
                    method: &request.method,
                    authorization: Some(&a),
                    peer: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
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
