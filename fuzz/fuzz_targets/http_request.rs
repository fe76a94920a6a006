//! What a recorder sends to a camera's HTTP API through camgate: the
//! request target, headers (Content-Type, SOAPAction, Authorization) and
//! body (SOAP with WS-Security, Dahua RPC2 JSON), judged by the shipped
//! policy; and camera answers through the URL rewriter.
//!
//! Input: up to the first NUL, header lines (target, content type,
//! SOAPAction, Authorization); after it, the body.
#![no_main]

#[path = "common/auth.rs"]
mod common_auth;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use camgate::auth::Presented;
use camgate::config::Vendor;
use camgate::http::policy::Policy;
use camgate::http::rewrite::{Rewriter, StreamReplace, StreamRoute};
use camgate::http::{judge, normalize, rpc, soap};
use libfuzzer_sys::fuzz_target;

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/policy");
        let files: Vec<String> = ["common", "onvif", "hikvision", "dahua"]
            .iter()
            .map(|f| format!("{dir}/{f}.toml"))
            .collect();
        Policy::load(&files).unwrap_or_else(|e| panic!("shipped policy: {e:?}"))
    })
}

fn rewriter() -> &'static Rewriter {
    static R: OnceLock<Rewriter> = OnceLock::new();
    R.get_or_init(|| {
        Rewriter::new(
            IpAddr::V4(Ipv4Addr::new(192, 168, 1, 64)),
            "http://10.0.0.1:8080/cam".into(),
            "10.0.0.1".into(),
            vec![StreamRoute::new(
                "/Streaming/Channels/101",
                "rtsp://10.0.0.1:8554/cam/main".into(),
            )],
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let raw_target = lines.next().unwrap_or("/");
    let content_type = lines.next().filter(|s| !s.is_empty());
    let soap_action = lines.next().filter(|s| !s.is_empty());
    // `@NONCE@` stands for a nonce camgate issued to this peer, so the
    // Digest checks past the nonce (user, response, uri, stale, nc) run too.
    let authorization = lines.next().filter(|s| !s.is_empty()).map(|a| {
        a.replace(
            "@NONCE@",
            &common_auth::issued_nonce(common_auth::auth(false)),
        )
    });
    let authorization = authorization.as_deref();

    let _ = soap::parse(body);
    let _ = soap::op_from_action(content_type, soap_action);
    let _ = rpc::calls(body);
    let _ = soap::resign(body, Some("<wsse:Security/>"));
    let _ = soap::resign(body, None);
    let peer = common_auth::PEER;
    for tls in [false, true] {
        let _ = common_auth::auth(false).check(&Presented {
            method: "GET",
            authorization,
            peer,
            tls,
            uri_matches: &|u| u == raw_target,
        });
    }
    // WS-Security tokens (nonce, Created, digest in any spelling).
    if let Ok(s) = soap::parse(body)
        && let Some(t) = s.token
    {
        if let Some(n) = t.nonce.as_deref() {
            let decoded = soap::decode_nonce(n);
            assert!(
                decoded
                    .as_ref()
                    .is_none_or(|d| !d.is_empty() && d.len() <= 64)
            );
        }
        let _ = common_auth::auth(false).check_ws_token(&t, peer, false);
    }

    if let Ok(target) = normalize::target(raw_target) {
        let _ = target.encode();
        for vendor in [Vendor::Hikvision, Vendor::Dahua, Vendor::Generic] {
            for method in ["GET", "POST", "PUT"] {
                let r = judge::Request {
                    vendor,
                    method,
                    content_type,
                    soap_action,
                    target: &target,
                    body,
                };
                if let Ok(j) = judge::judge(policy(), &r) {
                    // Operations come only from the body of an ONVIF call,
                    // and the unauthenticated exemption is exactly one.
                    assert!(j.ops.is_empty() || judge::is_onvif_call(method, &target.path_lower));
                    if judge::is_unauthenticated_exemption(&r, &j) {
                        assert_eq!(method, "POST");
                        assert_eq!(target.path_lower, "/onvif/device_service");
                        assert_eq!(j.ops, ["GetSystemDateAndTime"]);
                    }
                }
            }
        }
    }

    let text = String::from_utf8_lossy(body);
    let _ = rewriter().text(&text);
    // What the proxy runs on every rewritten answer: text checks, rewriting
    // and the URL audit, on bytes as a camera sends them.
    let _ = rewriter().answer(body);
    // Chunk boundaries must not change what the streaming rewriter emits.
    let mut whole = StreamReplace::new("192.168.1.64", "10.0.0.1");
    let mut expected = whole.push(body);
    expected.extend(whole.finish());
    let split = usize::from(body.first().copied().unwrap_or(0)) % (body.len() + 1);
    let mut parts = StreamReplace::new("192.168.1.64", "10.0.0.1");
    let mut got = parts.push(&body[..split]);
    got.extend(parts.push(&body[split..]));
    got.extend(parts.finish());
    assert_eq!(got, expected, "split at {split}");
});
