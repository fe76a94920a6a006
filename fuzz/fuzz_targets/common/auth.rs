//! What the request fuzz targets share: the authenticator they drive (one
//! recorder `nvr` / `pw`) and a nonce it issued to the fuzzed peer.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use camgate::auth::{Authenticator, Settings};
use camgate::config::{DeviceSet, Recorder, Secret};

/// The peer every fuzzed request comes from.
pub const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

/// One authenticator for the whole run (`cleartext`: the recorder accepts
/// Basic and PasswordText).
pub fn auth(cleartext: bool) -> &'static Authenticator {
    static A: OnceLock<Authenticator> = OnceLock::new();
    A.get_or_init(|| {
        Authenticator::new(
            &[Recorder {
                name: Arc::from("nvr"),
                username: "nvr".into(),
                password: Secret::new("pw"),
                allow_from: vec![],
                devices: DeviceSet::All,
                cleartext_auth: cleartext,
            }],
            Settings::default(),
        )
    })
}

/// A nonce the authenticator issued to [`PEER`]: `@NONCE@` in a fuzzed
/// `Authorization` line is replaced by it, so the checks past the nonce run.
pub fn issued_nonce(a: &Authenticator) -> String {
    let c = a.challenges(PEER, false, false, true);
    c[0].split("nonce=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
        .to_string()
}
