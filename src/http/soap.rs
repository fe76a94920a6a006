//! ONVIF SOAP: the operation a request calls (SOAP 1.1 and 1.2, from the
//! body or the `action`), the WS-Security UsernameToken recorders sign with,
//! and re-signing a request with camgate's own token for the camera.
//!
//! Pure code over bytes; bodies are bounded by the caller.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use quick_xml::events::{BytesStart, Event};
use quick_xml::{Reader, Writer};
use sha1::{Digest, Sha1};

/// The parts of a SOAP request camgate needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Soap {
    /// Local names of the Body's children: the operations called.
    pub ops: Vec<String>,
    pub token: Option<UsernameToken>,
}

/// A WS-Security UsernameToken (OASIS WSS UsernameToken Profile 1.0).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UsernameToken {
    pub username: String,
    /// The digest (or, with `digest = false`, the plain password).
    pub password: String,
    pub digest: bool,
    /// The `Nonce` as sent (Base64, decoded by [`decode_nonce`]).
    pub nonce: Option<String>,
    /// The `Created` time as sent.
    pub created: Option<String>,
}

impl std::fmt::Debug for UsernameToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsernameToken")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("digest", &self.digest)
            .finish()
    }
}

/// Why a body could not be judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoapError(pub String);

fn local(name: &[u8]) -> &[u8] {
    match name.iter().rposition(|b| *b == b':') {
        Some(i) => &name[i + 1..],
        None => name,
    }
}

fn text_of(name: &[u8]) -> String {
    String::from_utf8_lossy(local(name)).into_owned()
}

/// Parses a SOAP envelope (1.1 or 1.2: matched by local names, so any
/// prefix or namespace version works).
pub fn parse(body: &[u8]) -> Result<Soap, SoapError> {
    let mut r = Reader::from_reader(body);
    r.config_mut().trim_text(true);
    let mut stack: Vec<Vec<u8>> = Vec::new();
    let mut soap = Soap::default();
    let mut token: Option<UsernameToken> = None;
    let mut field: Option<&'static str> = None;
    let mut saw_envelope = false;
    let mut roots = 0usize;
    let mut buf = Vec::new();
    loop {
        let ev = r
            .read_event_into(&mut buf)
            .map_err(|e| SoapError(format!("malformed XML: {e}")))?;
        if stack.is_empty() && matches!(ev, Event::Start(_) | Event::Empty(_)) {
            roots += 1;
            if roots > 1 {
                // A second document after the envelope: a camera might read
                // either one.
                return Err(SoapError("more than one root element".into()));
            }
        }
        match ev {
            Event::Start(e) | Event::Empty(e) if stack.len() > 64 => {
                let _ = e;
                return Err(SoapError("XML nested too deeply".into()));
            }
            Event::Start(e) => {
                let name = local(e.name().as_ref()).to_vec();
                on_start(
                    &name,
                    &e,
                    &stack,
                    &mut soap,
                    &mut token,
                    &mut field,
                    &mut saw_envelope,
                )?;
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = local(e.name().as_ref()).to_vec();
                on_start(
                    &name,
                    &e,
                    &stack,
                    &mut soap,
                    &mut token,
                    &mut field,
                    &mut saw_envelope,
                )?;
                field = None;
            }
            Event::End(_) => {
                stack.pop();
                field = None;
            }
            Event::Text(t) => {
                if let (Some(f), Some(tok)) = (field, token.as_mut()) {
                    let s = t
                        .decode()
                        .map_err(|e| SoapError(format!("bad text: {e}")))?
                        .into_owned();
                    match f {
                        "Username" => tok.username.push_str(&s),
                        "Password" => tok.password.push_str(&s),
                        "Nonce" => tok.nonce.get_or_insert_default().push_str(&s),
                        "Created" => tok.created.get_or_insert_default().push_str(&s),
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            Event::DocType(_) => return Err(SoapError("DOCTYPE not allowed".into())),
            _ => {}
        }
        buf.clear();
    }
    if !saw_envelope {
        return Err(SoapError("not a SOAP envelope".into()));
    }
    soap.token = token;
    Ok(soap)
}

fn on_start(
    name: &[u8],
    e: &BytesStart<'_>,
    stack: &[Vec<u8>],
    soap: &mut Soap,
    token: &mut Option<UsernameToken>,
    field: &mut Option<&'static str>,
    saw_envelope: &mut bool,
) -> Result<(), SoapError> {
    if stack.is_empty() && name == b"Envelope" {
        *saw_envelope = true;
    }
    let parent = stack.last().map(|p| p.as_slice());
    if stack.len() == 2 && stack[0] == b"Envelope" && parent == Some(b"Body") {
        soap.ops.push(text_of(name));
    }
    if name == b"UsernameToken" && stack.iter().any(|s| s == b"Security") {
        if token.is_some() {
            return Err(SoapError("more than one UsernameToken".into()));
        }
        *token = Some(UsernameToken::default());
    }
    if let Some(t) = token.as_mut()
        && parent == Some(b"UsernameToken")
    {
        let (f, seen): (&'static str, bool) = match name {
            b"Username" => ("Username", !t.username.is_empty()),
            b"Password" => {
                let seen = !t.password.is_empty();
                t.digest = e.attributes().flatten().any(|a| {
                    local(a.key.as_ref()) == b"Type"
                        && a.value.as_ref().ends_with(b"#PasswordDigest")
                });
                ("Password", seen)
            }
            b"Nonce" => ("Nonce", t.nonce.is_some()),
            b"Created" => ("Created", t.created.is_some()),
            _ => {
                *field = None;
                return Ok(());
            }
        };
        if seen {
            return Err(SoapError(format!("UsernameToken has two {f} elements")));
        }
        if f == "Nonce" {
            t.nonce = Some(String::new());
        } else if f == "Created" {
            t.created = Some(String::new());
        }
        *field = Some(f);
    }
    Ok(())
}

/// The operation named by a SOAP 1.2 `action` content-type parameter or a
/// SOAP 1.1 `SOAPAction` header: the last segment of the action URI.
pub fn op_from_action(content_type: Option<&str>, soap_action: Option<&str>) -> Option<String> {
    let from_ct = content_type.and_then(|ct| {
        ct.split(';').find_map(|p| {
            let (k, v) = p.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("action")
                .then(|| v.trim().trim_matches('"').to_string())
        })
    });
    let action = from_ct.or_else(|| soap_action.map(|a| a.trim().trim_matches('"').to_string()))?;
    let op = action.rsplit(['/', '#']).next()?.trim();
    (!op.is_empty()).then(|| op.to_string())
}

/// Decodes a WS-Security nonce strictly: standard Base64 with padding, no
/// characters outside the alphabet (surrounding ASCII whitespace aside),
/// 1 to [`crate::auth::MAX_WS_NONCE`] bytes. `None` when it is not that.
pub fn decode_nonce(b64: &str) -> Option<Vec<u8>> {
    let t = b64.trim_ascii();
    // Base64 of the largest nonce, plus padding.
    if t.is_empty() || t.len() > crate::auth::MAX_WS_NONCE.div_ceil(3) * 4 {
        return None;
    }
    let n = B64.decode(t).ok()?;
    (!n.is_empty() && n.len() <= crate::auth::MAX_WS_NONCE).then_some(n)
}

/// `Base64(SHA-1(nonce + created + password))` (WSS UsernameToken 1.0 §3.1).
pub fn password_digest(nonce_b64: &str, created: &str, password: &str) -> Option<String> {
    let nonce = decode_nonce(nonce_b64)?;
    Some(B64.encode(digest_bytes(&nonce, created, password)))
}

fn digest_bytes(nonce: &[u8], created: &str, password: &str) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(nonce);
    h.update(created.as_bytes());
    h.update(password.as_bytes());
    h.finalize().into()
}

/// Whether `token` proves knowledge of `password`; `nonce` is the token's
/// nonce as decoded by [`decode_nonce`]. A digest is compared as the
/// 20 bytes it encodes, so other spellings of one digest are one value.
pub fn verify(token: &UsernameToken, nonce: Option<&[u8]>, password: &str) -> bool {
    use crate::config::constant_time_eq;
    if token.digest {
        let (Some(nonce), Some(created)) = (nonce, token.created.as_deref()) else {
            return false;
        };
        let expected = digest_bytes(nonce, created, password);
        let given = B64.decode(token.password.trim_ascii()).unwrap_or_default();
        constant_time_eq(&expected, &given)
    } else {
        constant_time_eq(token.password.as_bytes(), password.as_bytes())
    }
}

const WSSE: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd";
const WSU: &str =
    "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd";
const DIGEST_TYPE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest";
const NONCE_TYPE: &str = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary";

/// A Security header signing as `user` (PasswordDigest, fresh nonce).
pub fn security_header(user: &str, password: &str, created: &str) -> String {
    let nonce: [u8; 16] = rand::random();
    let nonce = B64.encode(nonce);
    let digest = password_digest(&nonce, created, password).unwrap_or_default();
    let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
    format!(
        "<wsse:Security xmlns:wsse=\"{WSSE}\" xmlns:wsu=\"{WSU}\"><wsse:UsernameToken><wsse:Username>{}</wsse:Username>\
         <wsse:Password Type=\"{DIGEST_TYPE}\">{digest}</wsse:Password><wsse:Nonce EncodingType=\"{NONCE_TYPE}\">{nonce}</wsse:Nonce>\
         <wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>",
        esc(user)
    )
}

/// Rewrites a request body: removes every `Security` header block (the
/// recorder's token never reaches the camera) and, when `security` is given,
/// inserts it into the Header (creating one if needed).
pub fn resign(body: &[u8], security: Option<&str>) -> Result<Vec<u8>, SoapError> {
    let mut r = Reader::from_reader(body);
    let mut w = Writer::new(Vec::with_capacity(body.len() + 1024));
    let mut depth = 0usize;
    let mut skipping: Option<usize> = None;
    let mut saw_header = false;
    // Inside the envelope's Header: the only place a Security block is
    // removed (an element of that name in the Body is the caller's data).
    let mut in_header = false;
    let mut env_prefix: Option<String> = None;
    let mut buf = Vec::new();
    let err = |e: &dyn std::fmt::Display| SoapError(format!("cannot rewrite the SOAP body: {e}"));
    loop {
        let ev = r.read_event_into(&mut buf).map_err(|e| err(&e))?;
        match &ev {
            Event::Eof => break,
            Event::DocType(_) => return Err(SoapError("DOCTYPE not allowed".into())),
            Event::Start(e) => {
                depth += 1;
                let name = e.name();
                let loc = local(name.as_ref());
                if skipping.is_some() {
                    buf.clear();
                    continue;
                }
                if loc == b"Security" && in_header {
                    skipping = Some(depth);
                    buf.clear();
                    continue;
                }
                if depth == 1 && loc == b"Envelope" {
                    let full = String::from_utf8_lossy(name.as_ref()).into_owned();
                    env_prefix = Some(
                        full.rsplit_once(':')
                            .map(|(p, _)| format!("{p}:"))
                            .unwrap_or_default(),
                    );
                }
                if depth == 2
                    && loc == b"Body"
                    && !saw_header
                    && let Some(sec) = security
                {
                    let p = env_prefix.clone().unwrap_or_default();
                    let raw = format!("<{p}Header>{sec}</{p}Header>");
                    w.get_mut().extend_from_slice(raw.as_bytes());
                    saw_header = true;
                }
                w.write_event(ev.clone()).map_err(|e| err(&e))?;
                if depth == 2 && loc == b"Header" {
                    saw_header = true;
                    in_header = true;
                    if let Some(sec) = security {
                        w.get_mut().extend_from_slice(sec.as_bytes());
                    }
                }
            }
            Event::End(_) => {
                if let Some(d) = skipping {
                    if d == depth {
                        skipping = None;
                    }
                    depth = depth.saturating_sub(1);
                    buf.clear();
                    continue;
                }
                if depth == 2 {
                    in_header = false;
                }
                depth = depth.saturating_sub(1);
                w.write_event(ev.clone()).map_err(|e| err(&e))?;
            }
            Event::Empty(e) => {
                if skipping.is_some() || (in_header && local(e.name().as_ref()) == b"Security") {
                    buf.clear();
                    continue;
                }
                if depth == 1 && local(e.name().as_ref()) == b"Header" {
                    // <s:Header/>: replace with one holding our token.
                    saw_header = true;
                    if let Some(sec) = security {
                        let p = env_prefix.clone().unwrap_or_default();
                        w.get_mut()
                            .extend_from_slice(format!("<{p}Header>{sec}</{p}Header>").as_bytes());
                    }
                    buf.clear();
                    continue;
                }
                w.write_event(ev.clone()).map_err(|e| err(&e))?;
            }
            _ => {
                if skipping.is_none() {
                    w.write_event(ev.clone()).map_err(|e| err(&e))?;
                }
            }
        }
        buf.clear();
    }
    Ok(w.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOAP12: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Header><Security s:mustUnderstand="1" xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"><UsernameToken><Username>nvr</Username><Password Type="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest">DIGEST</Password><Nonce EncodingType="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary">NONCE</Nonce><Created xmlns="http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd">2026-11-28T00:00:00Z</Created></UsernameToken></Security></s:Header><s:Body xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><GetStreamUri xmlns="http://www.onvif.org/ver10/media/wsdl"><StreamSetup><Stream xmlns="http://www.onvif.org/ver10/schema">RTP-Unicast</Stream></StreamSetup><ProfileToken>Profile_1</ProfileToken></GetStreamUri></s:Body></s:Envelope>"#;

    fn signed(password: &str) -> String {
        let nonce = B64.encode(b"0123456789abcdef");
        let digest = password_digest(&nonce, "2026-11-28T00:00:00Z", password).unwrap();
        SOAP12.replace("DIGEST", &digest).replace("NONCE", &nonce)
    }

    #[test]
    fn parses_op_and_token() {
        let s = parse(signed("pw").as_bytes()).unwrap();
        assert_eq!(s.ops, vec!["GetStreamUri".to_string()]);
        let t = s.token.unwrap();
        assert_eq!(t.username, "nvr");
        assert!(t.digest);
        let n = decode_nonce(t.nonce.as_deref().unwrap()).unwrap();
        assert!(verify(&t, Some(&n), "pw"));
        assert!(!verify(&t, Some(&n), "px"));
        assert!(!verify(&t, None, "pw"));
        assert!(!format!("{t:?}").contains(&t.password));
    }

    #[test]
    fn soap11_and_no_header() {
        let b = r#"<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body><tds:GetSystemDateAndTime xmlns:tds="http://www.onvif.org/ver10/device/wsdl"/></SOAP-ENV:Body></SOAP-ENV:Envelope>"#;
        let s = parse(b.as_bytes()).unwrap();
        assert_eq!(s.ops, vec!["GetSystemDateAndTime".to_string()]);
        assert!(s.token.is_none());
        // Re-signing adds a Header with the same prefix.
        let out = String::from_utf8(
            resign(
                b.as_bytes(),
                Some(&security_header("admin", "cam", "2026-11-28T00:00:01Z")),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(out.contains("<SOAP-ENV:Header><wsse:Security"), "{out}");
        let s = parse(out.as_bytes()).unwrap();
        assert_eq!(s.ops, vec!["GetSystemDateAndTime".to_string()]);
        let t = s.token.unwrap();
        assert_eq!(t.username, "admin");
        let n = decode_nonce(t.nonce.as_deref().unwrap()).unwrap();
        assert!(verify(&t, Some(&n), "cam"));
    }

    #[test]
    fn resign_replaces_the_recorders_token() {
        let body = signed("recorder-secret");
        let out = String::from_utf8(
            resign(
                body.as_bytes(),
                Some(&security_header("admin", "cam", "2026-11-28T00:00:01Z")),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(!out.contains(">nvr<"), "recorder token removed: {out}");
        assert_eq!(
            out.matches("UsernameToken>").count(),
            2,
            "one token (open + close): {out}"
        );
        let t = parse(out.as_bytes()).unwrap().token.unwrap();
        let n = decode_nonce(t.nonce.as_deref().unwrap()).unwrap();
        assert!(verify(&t, Some(&n), "cam"));
        assert!(out.contains("<ProfileToken>Profile_1</ProfileToken>"));
        // Stripping without re-signing.
        let out = String::from_utf8(resign(body.as_bytes(), None).unwrap()).unwrap();
        assert!(
            !out.contains("Security") && !out.contains("UsernameToken"),
            "{out}"
        );
    }

    #[test]
    fn actions_and_rejections() {
        assert_eq!(
            op_from_action(
                Some(
                    "application/soap+xml; charset=utf-8; action=\"http://www.onvif.org/ver10/device/wsdl/GetDeviceInformation\""
                ),
                None
            ),
            Some("GetDeviceInformation".into())
        );
        assert_eq!(
            op_from_action(
                None,
                Some("\"http://www.onvif.org/ver10/media/wsdl/GetProfiles\"")
            ),
            Some("GetProfiles".into())
        );
        assert_eq!(op_from_action(Some("application/soap+xml"), None), None);
        assert!(parse(b"<html></html>").is_err());
        assert!(parse(b"<s:Envelope><s:Body><x></s:Envelope>").is_err());
        assert!(parse(b"<!DOCTYPE x [<!ENTITY a \"b\">]><s:Envelope/>").is_err());
        let deep = "<a>".repeat(100);
        assert!(parse(deep.as_bytes()).is_err());
        for n in 0..200 {
            let junk: Vec<u8> = SOAP12.bytes().take(n * 7).collect();
            let _ = parse(&junk);
            let _ = resign(&junk, Some("<x/>"));
        }
    }
}
