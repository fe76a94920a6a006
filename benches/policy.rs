//! Policy evaluation per request with the shipped rules
//! (`config/policy/*.toml`): request-target normalization, ONVIF SOAP
//! parsing, Dahua RPC2 extraction and the first-match walk, exactly what
//! the proxy runs between reading a body and forwarding it (issue target:
//! under 5 µs per request).
//!
//! `cargo bench --bench policy`

use std::hint::black_box;

use camgate::config::Vendor;
use camgate::http::judge::{self, Request};
use camgate::http::normalize;
use camgate::http::policy::Policy;
use criterion::{Criterion, criterion_group, criterion_main};

const ONVIF_GET_STREAM_URI: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:tt="http://www.onvif.org/ver10/schema">
<s:Header><Security s:mustUnderstand="1" xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd">
<UsernameToken><Username>nvr</Username>
<Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">c2Fmkg0mwN6M6FZ8ZaUbZ0jWDrs=</Password>
<Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">LKqI6G/AikKCQrN0zqZFlg==</Nonce>
<Created xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">2026-11-28T10:00:00Z</Created>
</UsernameToken></Security></s:Header>
<s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
<GetStreamUri xmlns="http://www.onvif.org/ver10/media/wsdl"><StreamSetup><Stream xmlns="http://www.onvif.org/ver10/schema">RTP-Unicast</Stream>
<Transport xmlns="http://www.onvif.org/ver10/schema"><Protocol>RTSP</Protocol></Transport></StreamSetup>
<ProfileToken>Profile_1</ProfileToken></GetStreamUri></s:Body></s:Envelope>"#;

const DAHUA_MULTICALL: &str = r#"{"method":"system.multicall","params":[{"method":"magicBox.getSerialNo","params":null,"id":3,"session":"a1b2c3"},{"method":"magicBox.getDeviceType","params":null,"id":4,"session":"a1b2c3"},{"method":"configManager.getConfig","params":{"name":"Encode"},"id":5,"session":"a1b2c3"}],"id":2,"session":"a1b2c3"}"#;

struct Case {
    name: &'static str,
    vendor: Vendor,
    method: &'static str,
    target: &'static str,
    content_type: Option<&'static str>,
    body: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "isapi snapshot GET (allow)",
        vendor: Vendor::Hikvision,
        method: "GET",
        target: "/ISAPI/Streaming/channels/101/picture?snapShotImageType=JPEG",
        content_type: None,
        body: "",
    },
    Case {
        name: "onvif GetStreamUri with WS-Security (allow)",
        vendor: Vendor::Hikvision,
        method: "POST",
        target: "/onvif/Media",
        content_type: Some("application/soap+xml; charset=utf-8"),
        body: ONVIF_GET_STREAM_URI,
    },
    Case {
        name: "dahua RPC2 multicall of 3 getters (allow)",
        vendor: Vendor::Dahua,
        method: "POST",
        target: "/RPC2",
        content_type: Some("application/json"),
        body: DAHUA_MULTICALL,
    },
    Case {
        name: "CVE-2017-7921 auth= bypass, encoded (deny)",
        vendor: Vendor::Hikvision,
        method: "GET",
        target: "/Security/%75sers;x=1?auth=YWRtaW46MTEK",
        content_type: None,
        body: "",
    },
    Case {
        name: "unknown path, default deny (every rule walked)",
        vendor: Vendor::Dahua,
        method: "GET",
        target: "/cgi-bin/nothing-matches-this.cgi?action=getAnything&x=1",
        content_type: None,
        body: "",
    },
];

fn shipped() -> Policy {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/policy");
    let files: Vec<String> = ["common", "onvif", "hikvision", "dahua"]
        .iter()
        .map(|f| format!("{dir}/{f}.toml"))
        .collect();
    match Policy::load(&files) {
        Ok(p) => p,
        Err(e) => panic!("shipped policy does not load: {e:?}"),
    }
}

fn benches(c: &mut Criterion) {
    let policy = shipped();
    println!("shipped policy: {} rules", policy.len());
    let mut g = c.benchmark_group("policy");
    for case in CASES {
        // Sanity: each case gets the verdict its name says, so the bench
        // measures the real path and not an early refusal.
        let t = normalize::target(case.target).expect("target parses");
        let j = judge::judge(
            &policy,
            &Request {
                vendor: case.vendor,
                method: case.method,
                content_type: case.content_type,
                soap_action: None,
                target: &t,
                body: case.body.as_bytes(),
            },
        )
        .expect("judgeable");
        let want_allow = case.name.ends_with("(allow)");
        assert_eq!(
            j.verdict.allowed(),
            want_allow,
            "{}: {:?}",
            case.name,
            j.verdict
        );

        g.bench_function(case.name, |b| {
            b.iter(|| {
                let t = normalize::target(black_box(case.target)).expect("target parses");
                let j = judge::judge(
                    &policy,
                    &Request {
                        vendor: case.vendor,
                        method: case.method,
                        content_type: case.content_type,
                        soap_action: None,
                        target: &t,
                        body: black_box(case.body.as_bytes()),
                    },
                );
                black_box(j.map(|j| j.verdict.allowed()))
            })
        });
    }
    g.finish();
}

criterion_group!(group, benches);
criterion_main!(group);
