//! The first bytes a camera sends to a trapped destination: TLS
//! ClientHello, HTTP, vendor greetings.
#![no_main]

use camgate::egress::sniff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((port, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let port = u16::from_be_bytes(*port);
    let _ = sniff::complete(rest);
    let _ = sniff::sniff(rest, port, false);
    let _ = sniff::sniff(rest, port, true);
});
