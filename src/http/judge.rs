//! Everything the policy looks at, taken from exactly the bytes that are
//! forwarded: the ONVIF operations (from the SOAP body of a POST to an ONVIF
//! service path, and nowhere else), the Dahua RPC2 calls (each call of a
//! `system.multicall` included), the method, path and query, then the
//! verdict.
//!
//! Headers never name an operation: `SOAPAction` and the SOAP 1.2 `action`
//! media-type parameter may only agree with the body (else 400), and on a
//! path that is not an ONVIF service they are refused outright, so a header
//! cannot make an ISAPI or CGI call look like an allowed ONVIF one. A body
//! that claims to be something it cannot be parsed as, or that two parsers
//! could read differently (JSON with a duplicate key), is refused rather
//! than guessed at.
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
    /// ONVIF operations the body calls (empty off ONVIF service paths).
    pub ops: Vec<String>,
    /// The body is a SOAP envelope sent to an ONVIF service (so a
    /// WS-Security token may be in it and it is re-signed toward the camera).
    pub soap: bool,
}

/// Why a request cannot be judged. Both are answered 400: the request is
/// malformed or ambiguous, not denied by a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unjudgeable(pub String);

/// Whether `path_lower` (a canonical, lower-cased path) is an ONVIF service:
/// `/onvif/<service>` (`/onvif/device_service`, `/onvif/Media`, ...).
pub fn is_onvif_path(path_lower: &str) -> bool {
    path_lower
        .strip_prefix("/onvif/")
        .is_some_and(|rest| !rest.is_empty())
}

/// Whether a request is an ONVIF call: a POST to an ONVIF service path.
pub fn is_onvif_call(method: &str, path_lower: &str) -> bool {
    method == "POST" && is_onvif_path(path_lower)
}

/// The ONVIF device service, where the one unauthenticated operation lives.
pub fn is_device_service(path_lower: &str) -> bool {
    path_lower == "/onvif/device_service"
}

/// Whether a judged request is exactly the call ONVIF lets a client make
/// before it has credentials (it needs the camera's clock to compute a
/// WS-Security digest): a POST to the device service whose body holds one
/// `GetSystemDateAndTime` and nothing else.
pub fn is_unauthenticated_exemption(r: &Request<'_>, j: &Judged) -> bool {
    j.soap
        && is_onvif_call(r.method, &r.target.path_lower)
        && is_device_service(&r.target.path_lower)
        && j.ops.len() == 1
        && j.ops[0] == "GetSystemDateAndTime"
}

/// Judges one request.
pub fn judge(policy: &Policy, r: &Request<'_>) -> Result<Judged, Unjudgeable> {
    let named = soap::op_from_action(r.content_type, r.soap_action);
    let onvif = is_onvif_call(r.method, &r.target.path_lower);
    let mut ops = Vec::new();
    if onvif {
        let s = soap::parse(r.body).map_err(|e| Unjudgeable(e.0))?;
        if s.ops.is_empty() {
            return Err(Unjudgeable("the SOAP body calls no operation".into()));
        }
        ops = s.ops;
        if let Some(named) = &named
            && !(ops.len() == 1 && ops[0] == *named)
        {
            return Err(Unjudgeable(format!(
                "the SOAP action names {named} but the body calls {}",
                ops.join(", ")
            )));
        }
    } else if let Some(named) = &named {
        return Err(Unjudgeable(format!(
            "a SOAP action ({named}) on a request that is not a POST to an ONVIF service"
        )));
    } else if r.soap_action.is_some() {
        return Err(Unjudgeable(
            "a SOAPAction header on a request that is not a POST to an ONVIF service".into(),
        ));
    }
    let calls = if r.target.path_lower.starts_with("/rpc2") && r.method == "POST" {
        rpc::calls(r.body).map_err(Unjudgeable)?
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
        soap: onvif,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::normalize;

    fn policy() -> Policy {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
        let files: Vec<_> = crate::config::schema::DEFAULT_POLICY
            .iter()
            .map(|f| dir.join(f))
            .collect();
        Policy::load(&files).unwrap()
    }

    const GSDT: &str = r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body><GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>"#;

    fn run(
        vendor: Vendor,
        method: &str,
        path: &str,
        ct: Option<&str>,
        action: Option<&str>,
        body: &str,
    ) -> (Result<Judged, Unjudgeable>, bool) {
        let p = policy();
        let target = normalize::target(path).unwrap();
        let r = Request {
            vendor,
            method,
            content_type: ct,
            soap_action: action,
            target: &target,
            body: body.as_bytes(),
        };
        let j = judge(&p, &r);
        let exempt = j
            .as_ref()
            .is_ok_and(|j| is_unauthenticated_exemption(&r, j));
        (j, exempt)
    }

    #[test]
    fn headers_never_name_an_operation_off_onvif_paths() {
        // The reported bypass: an ISAPI write dressed as the exempt call.
        for action in [
            Some("\"http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime\""),
            Some("GetCapabilities"),
            Some(" GetSystemDateAndTime "),
        ] {
            for (method, path) in [
                ("PUT", "/ISAPI/Security/users/1"),
                ("POST", "/ISAPI/System/factoryReset"),
                (
                    "GET",
                    "/cgi-bin/configManager.cgi?action=getConfig&name=Email",
                ),
                ("GET", "/onvif/device_service"),
                ("POST", "/onvif/"),
                ("POST", "/onvif-http/snapshot"),
            ] {
                let (j, exempt) = run(Vendor::Hikvision, method, path, None, action, "");
                assert!(j.is_err(), "{method} {path} with {action:?}");
                assert!(!exempt);
            }
        }
        let ct = "application/soap+xml; action=\"http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime\"";
        let (j, exempt) = run(
            Vendor::Hikvision,
            "PUT",
            "/ISAPI/Security/users/1",
            Some(ct),
            None,
            GSDT,
        );
        assert!(j.is_err());
        assert!(!exempt);
        // A SOAP body on an ISAPI path is judged as ISAPI: denied by path.
        let (j, exempt) = run(
            Vendor::Hikvision,
            "PUT",
            "/ISAPI/Security/users/1",
            Some("application/soap+xml"),
            None,
            GSDT,
        );
        let j = j.unwrap();
        assert!(!j.verdict.allowed(), "{:?}", j.verdict);
        assert!(j.ops.is_empty() && !j.soap && !exempt);
    }

    #[test]
    fn the_exemption_is_exactly_one_call() {
        let (j, exempt) = run(
            Vendor::Dahua,
            "POST",
            "/onvif/device_service",
            Some("application/soap+xml"),
            None,
            GSDT,
        );
        assert!(j.unwrap().verdict.allowed());
        assert!(exempt);
        // Agreeing action: still exempt. Other case of the path: canonical.
        let (_, exempt) = run(
            Vendor::Dahua,
            "POST",
            "/ONVIF/Device_Service",
            Some(
                "application/soap+xml; action=\"http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime\"",
            ),
            None,
            GSDT,
        );
        assert!(exempt);
        // Another service path, two calls, another method: not exempt.
        let (_, exempt) = run(Vendor::Dahua, "POST", "/onvif/Media", None, None, GSDT);
        assert!(!exempt);
        let two = GSDT.replace(
            "</s:Body>",
            "<SetSystemFactoryDefault xmlns=\"http://www.onvif.org/ver10/device/wsdl\"/></s:Body>",
        );
        let (j, exempt) = run(
            Vendor::Dahua,
            "POST",
            "/onvif/device_service",
            None,
            None,
            &two,
        );
        assert!(!exempt);
        assert!(!j.unwrap().verdict.allowed());
        // The action disagrees with the body.
        let (j, _) = run(
            Vendor::Dahua,
            "POST",
            "/onvif/device_service",
            None,
            Some("http://www.onvif.org/ver10/device/wsdl/GetSystemDateAndTime"),
            &GSDT.replace("GetSystemDateAndTime", "SystemReboot"),
        );
        assert!(j.is_err());
        // A lower-case operation is another operation.
        let (_, exempt) = run(
            Vendor::Dahua,
            "POST",
            "/onvif/device_service",
            None,
            None,
            &GSDT.replace("GetSystemDateAndTime", "getsystemdateandtime"),
        );
        assert!(!exempt);
        // Not SOAP, or no operation at all, on an ONVIF path: unjudgeable.
        for body in ["", "{}", "<s:Envelope xmlns:s=\"x\"><s:Body/></s:Envelope>"] {
            let (j, _) = run(
                Vendor::Dahua,
                "POST",
                "/onvif/device_service",
                None,
                None,
                body,
            );
            assert!(j.is_err(), "{body}");
        }
    }

    #[test]
    fn rpc_duplicate_keys_are_refused() {
        let (j, _) = run(
            Vendor::Dahua,
            "POST",
            "/RPC2",
            Some("application/json"),
            None,
            r#"{"method":"userManager.addUser","method":"magicBox.getSerialNo","id":1}"#,
        );
        assert!(j.is_err());
    }
}
