//! Fingerprinting probes: camgate asks each camera who it is, through its
//! own clients and with the device's own credentials, and reads the host's
//! neighbour table for the camera's MAC address.
//!
//! - RTSP: `OPTIONS` (the `Server` header) and an unauthenticated
//!   `DESCRIBE` of the first stream (the `WWW-Authenticate` realm);
//! - HTTP: `GET /` without credentials (`Server`, `WWW-Authenticate`);
//! - ONVIF: `GetDeviceInformation` signed with the device's credentials
//!   (WS-Security UsernameToken with the password digest, and HTTP Digest
//!   if the camera asks; HTTP Basic only with the device's
//!   `auth = "basic"`);
//! - the MAC from `/proc/net/arp` (IPv4, on-link cameras), matched against
//!   the shipped OUI list.
//!
//! Every step has a timeout and a size limit; a step that fails is noted in
//! the report and the others still run. Nothing here writes to a camera.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::config::{Device, DeviceSource};
use crate::fingerprint;
use crate::fingerprint::identity::{IdentityCell, ProbeReport};
use crate::http::upstream::Upstream;
use crate::ratelimit::LogLimiter;

/// Largest response head read from RTSP.
const MAX_HEAD: usize = 8 << 10;
/// Largest ONVIF answer read.
const MAX_BODY: usize = 256 << 10;

/// Probes one camera device (simulated devices have nothing to probe).
pub async fn probe(
    device: &Device,
    timeout: Duration,
    tracker: &TaskTracker,
    cancel: &CancellationToken,
) -> Option<ProbeReport> {
    let DeviceSource::Camera(cam) = &device.source else {
        return None;
    };
    let mut r = ProbeReport::default();
    // RTSP
    let rtsp_addr = SocketAddr::new(cam.host, cam.rtsp_port);
    let path = device.streams.first().map_or("/", |s| s.path.as_str());
    match rtsp(rtsp_addr, path, timeout).await {
        Ok((server, auth)) => {
            r.evidence
                .extend(server.as_deref().and_then(fingerprint::rtsp_server));
            r.evidence.extend(
                auth.as_deref()
                    .and_then(|a| fingerprint::www_authenticate(a, true)),
            );
        }
        Err(e) => r.errors.push(format!("rtsp: {e}")),
    }
    // HTTP, anonymous
    let http_addr = SocketAddr::new(cam.host, device.http.port);
    let pin = device
        .http
        .https
        .then_some(device.http.fingerprint)
        .flatten();
    let anon = Upstream::new(
        http_addr,
        pin,
        None,
        timeout,
        tracker.clone(),
        cancel.clone(),
    );
    match anon
        .send(
            &hyper::Method::GET,
            "/",
            &hyper::HeaderMap::new(),
            Bytes::new(),
        )
        .await
    {
        Ok(resp) => {
            let h = resp.headers();
            let text = |name| {
                h.get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            r.evidence.extend(
                text(hyper::header::SERVER)
                    .as_deref()
                    .and_then(fingerprint::http_server),
            );
            r.evidence.extend(
                text(hyper::header::WWW_AUTHENTICATE)
                    .as_deref()
                    .and_then(|a| fingerprint::www_authenticate(a, false)),
            );
        }
        Err(e) => r.errors.push(format!("http: {}", e.kind.as_str())),
    }
    // ONVIF GetDeviceInformation, signed
    let creds = cam.username.clone().zip(cam.password.clone());
    let security = creds.as_ref().map_or(String::new(), |(u, p)| {
        let created = jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default();
        crate::http::soap::security_header(u, p.expose(), &created)
    });
    // The HTTP Digest answer, if the camera asks; Basic only if the device
    // opted in (`auth = "basic"`).
    let onvif = Upstream::new(
        http_addr,
        pin,
        creds,
        timeout,
        tracker.clone(),
        cancel.clone(),
    )
    .allow_basic(cam.auth.allows_basic());
    let mut headers = hyper::HeaderMap::new();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/soap+xml; charset=utf-8; action=\"http://www.onvif.org/ver10/device/wsdl/GetDeviceInformation\"",
        ),
    );
    let body = Bytes::from(fingerprint::device_information_request(&security));
    match onvif
        .send(
            &hyper::Method::POST,
            "/onvif/device_service",
            &headers,
            body,
        )
        .await
    {
        Ok(resp) => {
            let status = resp.status();
            if let Some(s) = resp
                .headers()
                .get(hyper::header::SERVER)
                .and_then(|v| v.to_str().ok())
                .and_then(fingerprint::http_server)
                && !r.evidence.contains(&s)
            {
                r.evidence.push(s);
            }
            let collected =
                tokio::time::timeout(timeout, Limited::new(resp.into_body(), MAX_BODY).collect())
                    .await;
            match collected {
                Ok(Ok(b)) => match fingerprint::parse_device_information(&b.to_bytes()) {
                    Some(info) => {
                        r.evidence
                            .extend(fingerprint::onvif_manufacturer(&info.manufacturer));
                        r.info = Some(info);
                    }
                    None => r.errors.push(format!("onvif: HTTP {}", status.as_u16())),
                },
                Ok(Err(_)) => r
                    .errors
                    .push("onvif: unreadable or oversized answer".into()),
                Err(_) => r.errors.push("onvif: timeout".into()),
            }
        }
        Err(e) => {
            if e.kind == crate::http::upstream::ErrorKind::BasicRefused {
                static BASIC: LogLimiter = LogLimiter::new(10);
                if let Some(suppressed) = BASIC.allow() {
                    warn!(device = %device.id, suppressed,
                        "fingerprint probe: the camera offers only Basic authentication; password not sent");
                }
            }
            r.errors.push(format!("onvif: {}", e.kind.as_str()));
        }
    }
    // Neighbour table
    if let IpAddr::V4(v4) = cam.host {
        match tokio::fs::read_to_string("/proc/net/arp").await {
            Ok(text) => {
                if let Some(mac) = fingerprint::parse_proc_net_arp(&text).get(&v4) {
                    r.mac = Some(*mac);
                    r.evidence.extend(fingerprint::oui(*mac));
                }
            }
            Err(e) => debug!(error = %e, "no neighbour table"),
        }
    }
    Some(r)
}

/// RTSP `OPTIONS` then an unauthenticated `DESCRIBE` on one connection:
/// the `Server` header and any `WWW-Authenticate` challenge.
async fn rtsp(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(Option<String>, Option<String>), String> {
    let mut s = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timeout".to_string())?
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let host = match addr.ip() {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    let base = format!("rtsp://{host}:{}", addr.port());
    let options = format!(
        "OPTIONS {base}/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: camgate/{}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let mut carry = Vec::new();
    let head1 = exchange(&mut s, &mut carry, &options, timeout).await?;
    let server = header(&head1, "server");
    let path = if path.starts_with('/') { path } else { "/" };
    let describe = format!(
        "DESCRIBE {base}{path} RTSP/1.0\r\nCSeq: 2\r\nAccept: application/sdp\r\nUser-Agent: camgate/{}\r\n\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let auth = match exchange(&mut s, &mut carry, &describe, timeout).await {
        Ok(head2) => header(&head2, "www-authenticate"),
        Err(_) => None,
    };
    Ok((server, auth))
}

/// Most body bytes skipped after a probe response head.
const MAX_SKIPPED_BODY: usize = 64 * 1024;

/// Sends a request and reads the response head (status line + headers),
/// then skips the response's body (`Content-Length`), so the next exchange
/// on the connection starts at its own response. `carry` holds bytes read
/// past the current response, for the next one.
async fn exchange(
    s: &mut TcpStream,
    carry: &mut Vec<u8>,
    req: &str,
    timeout: Duration,
) -> Result<String, String> {
    tokio::time::timeout(timeout, s.write_all(req.as_bytes()))
        .await
        .map_err(|_| "write timeout".to_string())?
        .map_err(|e| format!("write: {}", e.kind()))?;
    let mut buf = std::mem::take(carry);
    let deadline = tokio::time::Instant::now() + timeout;
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        read_more(s, &mut buf, deadline).await?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    if !head.starts_with("RTSP/1.") {
        return Err("not an RTSP response".into());
    }
    let body_len = match header(&head, "content-length") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_SKIPPED_BODY)
            .ok_or("bad or oversized Content-Length")?,
        None => 0,
    };
    let mut rest = buf.split_off(end + 4);
    while rest.len() < body_len {
        read_more(s, &mut rest, deadline).await?;
    }
    *carry = rest.split_off(body_len);
    Ok(head)
}

/// Appends what one read returns to `buf`; an error if the peer closed or
/// the deadline passed.
async fn read_more(
    s: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    let mut chunk = [0u8; 1024];
    let n = tokio::time::timeout_at(deadline, s.read(&mut chunk))
        .await
        .map_err(|_| "read timeout".to_string())?
        .map_err(|e| format!("read: {}", e.kind()))?;
    if n == 0 {
        return Err("closed".into());
    }
    buf.extend_from_slice(&chunk[..n]);
    Ok(())
}

/// The first value of header `name` (lower case) in a response head.
fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().chars().take(512).collect())
    })
}

/// Probes every camera device at start and then every `interval`, until
/// cancelled. Devices are probed one after another (the probes are light,
/// and a large estate should not see a burst at start).
pub async fn run(
    devices: Vec<(Arc<Device>, Arc<IdentityCell>)>,
    interval: Duration,
    timeout: Duration,
    tracker: TaskTracker,
    cancel: CancellationToken,
) {
    // Let the stream sources connect first.
    tokio::select! {
        _ = cancel.cancelled() => return,
        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
    }
    loop {
        for (device, cell) in &devices {
            let report = tokio::select! {
                _ = cancel.cancelled() => return,
                r = probe(device, timeout, &tracker, &cancel) => r,
            };
            if let Some(r) = report {
                debug!(device = %device.id, evidence = r.evidence.len(), errors = ?r.errors, "fingerprint probe done");
                cell.probed(r);
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lookup() {
        let head = "RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Rtsp Server/3.0\r\nPublic: OPTIONS";
        assert_eq!(header(head, "server").as_deref(), Some("Rtsp Server/3.0"));
        assert_eq!(header(head, "www-authenticate"), None);
    }

    /// A scripted RTSP camera that answers like a Dahua one.
    #[tokio::test]
    async fn rtsp_probe_reads_server_and_realm() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            let mut seen = String::new();
            for reply in [
                // Some cameras put a body even on OPTIONS: it is skipped.
                "RTSP/1.0 200 OK\r\nCSeq: 1\r\nServer: Rtsp Server/3.0\r\nPublic: OPTIONS, DESCRIBE\r\nContent-Length: 5\r\n\r\nhello",
                "RTSP/1.0 401 Unauthorized\r\nCSeq: 2\r\nWWW-Authenticate: Digest realm=\"Login to 4J0186FPAG00123\", nonce=\"abc\"\r\n\r\n",
            ] {
                while !seen.contains("\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    seen.push_str(std::str::from_utf8(&buf[..n]).unwrap());
                }
                let end = seen.find("\r\n\r\n").unwrap() + 4;
                seen.drain(..end);
                s.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        let (server, auth) = rtsp(
            addr,
            "/cam/realmonitor?channel=1&subtype=0",
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert_eq!(server.as_deref(), Some("Rtsp Server/3.0"));
        let e = fingerprint::www_authenticate(auth.as_deref().unwrap(), true).unwrap();
        assert_eq!(e.vendor, "dahua");
        assert_eq!(
            fingerprint::rtsp_server(&server.unwrap()).unwrap().vendor,
            "dahua"
        );
    }

    #[tokio::test]
    async fn rtsp_probe_times_out_on_a_silent_peer() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let _hold = tokio::spawn(async move {
            let (s, _) = l.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(s);
        });
        let e = rtsp(addr, "/", Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(e.contains("timeout"), "{e}");
    }
}
