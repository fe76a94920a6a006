//! Everything the policy looks at, taken from one request: the ONVIF
//! operations (SOAP 1.1 or 1.2 body, else the `action` media-type parameter
//! or `SOAPAction` header), the Dahua RPC2 calls (each call of a
//! `system.multicall` included), then the verdict. A body that claims to be
//! something it cannot be parsed as is refused rather than guessed at.
//!
//! Pure and synchronous: the proxy calls it once per request after reading
//! the body; `benches/policy.rs` measures it.

use super::normalize::Target;
use super::policy::{Facts, Policy, Verdict};
use super::{rpc, soap};
use crate::config::Vendor;

/// The parts of a request the judgement needs.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub vendor: Vendor,
    pub method: &'a str,
    pub content_type: Option<&'a str>,
    pub soap_action: Option<&'a str>,
    pub target: &'a Target,
    pub body: &'a [u8],
}

/// The verdict and what was found on the way.
#[derive(Debug, Clone)]
pub struct Judged {
    pub verdict: Verdict,
    /// ONVIF operations named by the request.
    pub ops: Vec<String>,
    /// The body parsed as a SOAP envelope (so a WS-Security token may be in
    /// it and it must be re-signed toward the camera).
    pub soap: bool,
}

/// Judges one request. `Err` names why it cannot be judged (the proxy
/// answers 403).
pub fn judge(policy: &Policy, r: &Request<'_>) -> Result<Judged, String> {
    let ct = r.content_type.unwrap_or("");
    let onvif_path = r.target.path_lower.starts_with("/onvif/");
    let looks_soap = ct.contains("soap")
        || onvif_path
        || r.body.starts_with(b"<?xml")
            && r.body
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b":envelope"));
    let mut ops = Vec::new();
    let mut soap_body = false;
    if looks_soap && !r.body.is_empty() {
        match soap::parse(r.body) {
            Ok(s) => {
                ops = s.ops;
                soap_body = true;
            }
            Err(e) if onvif_path => return Err(e.0),
            Err(_) => {}
        }
    }
    if ops.is_empty()
        && let Some(op) = soap::op_from_action(Some(ct), r.soap_action)
    {
        ops.push(op);
    }
    let calls = if r.target.path_lower.starts_with("/rpc2") && r.method == "POST" {
        rpc::calls(r.body)?
    } else {
        Vec::new()
    };
    let verdict = policy.decide(&Facts {
        vendor: r.vendor,
        method: r.method,
        target: r.target,
        onvif_ops: &ops,
        rpc: &calls,
    });
    Ok(Judged {
        verdict,
        ops,
        soap: soap_body,
    })
}
