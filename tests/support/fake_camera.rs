//! A fake camera HTTP API: ISAPI, Dahua CGI/RPC2 and ONVIF endpoints behind
//! Digest authentication (and WS-Security for ONVIF), recording every
//! request that reaches it, and naming its own address in its answers the
//! way real cameras do.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use camgate::config::Secret;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub const CAM_USER: &str = "admin";
pub const CAM_PASS: &str = "cam-secret";
const NONCE: &str = "fakecameranonce0123456789";

/// A request as the camera saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct FakeCamera {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCamera {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A 200 KB JPEG-looking body (the snapshot).
pub fn snapshot() -> Bytes {
    let mut v = vec![0xff, 0xd8, 0xff, 0xe0];
    v.extend((0..200_000).map(|i| (i * 7 % 251) as u8));
    v.extend([0xff, 0xd9]);
    Bytes::from(v)
}

type Body = BoxBody<Bytes, Infallible>;

fn reply(status: StatusCode, ct: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", ct)
        .header("Server", "App-webs/")
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

/// A self-signed certificate for `ip` (cert PEM, key PEM, SHA-256 hex).
pub fn self_signed(ip: IpAddr) -> (String, String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec![ip.to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let fp = camgate::tls::fingerprint(cert.der());
    let hex: Vec<String> = fp.iter().map(|b| format!("{b:02X}")).collect();
    (cert.pem(), key.serialize_pem(), hex.join(":"))
}

impl FakeCamera {
    /// Serves HTTPS on `ip:0` with a fresh self-signed certificate; returns
    /// the camera and its certificate's SHA-256 fingerprint.
    pub async fn start_tls(ip: IpAddr, rtsp_port: u16) -> (FakeCamera, String) {
        let (cert, key, fp) = self_signed(ip);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("c.pem"), cert).unwrap();
        std::fs::write(dir.path().join("k.pem"), key).unwrap();
        let cfg = camgate::tls::server_config(&dir.path().join("c.pem"), &dir.path().join("k.pem"))
            .unwrap();
        (
            Self::serve(ip, rtsp_port, Some(tokio_rustls::TlsAcceptor::from(cfg))).await,
            fp,
        )
    }

    /// Serves on `ip:0`. `rtsp_port` is what ONVIF stream URIs name.
    pub async fn start(ip: IpAddr, rtsp_port: u16) -> FakeCamera {
        Self::serve(ip, rtsp_port, None).await
    }

    async fn serve(
        ip: IpAddr,
        rtsp_port: u16,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> FakeCamera {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let s2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = s2.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(handle(req, addr, rtsp_port, seen).await) }
                    });
                    let b = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = b.serve_connection(TokioIo::new(stream), svc).await;
                        }
                        Some(acc) => {
                            if let Ok(s) = acc.accept(stream).await {
                                let _ = b.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                    }
                });
            }
        });
        FakeCamera { addr, seen, task }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn digest_ok(auth: &str, method: &str) -> bool {
    let get = |k: &str| {
        auth.split(',')
            .find_map(|p| {
                p.trim()
                    .trim_start_matches("Digest ")
                    .strip_prefix(&format!("{k}="))
            })
            .map(|v| v.trim_matches('"').to_string())
    };
    let (Some(user), Some(uri), Some(resp)) = (get("username"), get("uri"), get("response")) else {
        return false;
    };
    let qop = get("qop");
    let (nc, cnonce) = (
        get("nc").unwrap_or_default(),
        get("cnonce").unwrap_or_default(),
    );
    let expected = camgate::auth::digest_response(
        &user,
        &Secret::new(CAM_PASS),
        method,
        &uri,
        NONCE,
        qop.as_deref().map(|q| (q, nc.as_str(), cnonce.as_str())),
    );
    user == CAM_USER && expected == resp
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    addr: SocketAddr,
    rtsp_port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Response<Body> {
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = String::from_utf8_lossy(
        &req.into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default(),
    )
    .into_owned();
    let s = Seen {
        method: method.clone(),
        target: target.clone(),
        headers,
        body: body.clone(),
    };
    seen.lock().unwrap().push(s.clone());
    let ip = addr.ip();
    let path = target.split('?').next().unwrap_or("");

    // ONVIF: GetSystemDateAndTime needs no auth; others need a valid
    // UsernameToken (camera credentials) or HTTP Digest.
    if path.starts_with("/onvif/") {
        let op = [
            "GetSystemDateAndTime",
            "GetCapabilities",
            "GetProfiles",
            "GetStreamUri",
            "GetSnapshotUri",
            "GetDeviceInformation",
        ]
        .into_iter()
        .find(|o| body.contains(&format!(":{o}")) || body.contains(&format!("<{o}")));
        let op = op.unwrap_or("Unknown");
        if op != "GetSystemDateAndTime" {
            let token_ok = camgate::http::soap::parse(body.as_bytes())
                .ok()
                .and_then(|s| s.token)
                .is_some_and(|t| {
                    let nonce = t
                        .nonce
                        .as_deref()
                        .and_then(camgate::http::soap::decode_nonce);
                    t.username == CAM_USER
                        && camgate::http::soap::verify(&t, nonce.as_deref(), CAM_PASS)
                });
            let digest = s
                .header("authorization")
                .is_some_and(|a| digest_ok(a, &method));
            if !token_ok && !digest {
                return reply(StatusCode::UNAUTHORIZED, "text/plain", "NotAuthorized");
            }
        }
        let answer = match op {
            "GetSystemDateAndTime" => "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>NTP</tt:DateTimeType></tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>".to_string(),
            "GetCapabilities" => format!("<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device><tt:XAddr>http://{ip}:{}/onvif/device_service</tt:XAddr></tt:Device><tt:Media><tt:XAddr>http://{ip}/onvif/Media</tt:XAddr></tt:Media><tt:Events><tt:XAddr>http://{ip}:{}/onvif/Events</tt:XAddr></tt:Events></tds:Capabilities></tds:GetCapabilitiesResponse>", addr.port(), addr.port()),
            "GetProfiles" => "<trt:GetProfilesResponse><trt:Profiles token=\"Profile_1\" fixed=\"true\"><tt:Name>mainStream</tt:Name></trt:Profiles></trt:GetProfilesResponse>".to_string(),
            "GetStreamUri" => format!("<trt:GetStreamUriResponse><trt:MediaUri><tt:Uri>rtsp://{ip}:{rtsp_port}/Streaming/Channels/101?transportmode=unicast&amp;profile=Profile_1</tt:Uri></trt:MediaUri></trt:GetStreamUriResponse>"),
            "GetSnapshotUri" => format!("<trt:GetSnapshotUriResponse><trt:MediaUri><tt:Uri>http://{ip}/onvif-http/snapshot?Profile_1</tt:Uri></trt:MediaUri></trt:GetSnapshotUriResponse>"),
            "GetDeviceInformation" => "<tds:GetDeviceInformationResponse><tds:Manufacturer>HIKVISION</tds:Manufacturer><tds:Model>DS-2CD2043G0-I</tds:Model></tds:GetDeviceInformationResponse>".to_string(),
            _ => "<s:Fault/>".to_string(),
        };
        let env = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>{answer}</s:Body></s:Envelope>"
        );
        return reply(StatusCode::OK, "application/soap+xml; charset=utf-8", env);
    }

    // Everything else: HTTP Digest with the camera's credentials.
    let authorized = s
        .header("authorization")
        .is_some_and(|a| digest_ok(a, &method));
    if !authorized {
        let mut r = reply(StatusCode::UNAUTHORIZED, "text/html", "<html>401</html>");
        r.headers_mut().insert(
            "WWW-Authenticate",
            format!("Digest realm=\"camgate\", qop=\"auth\", nonce=\"{NONCE}\", opaque=\"x\"")
                .parse()
                .unwrap(),
        );
        return r;
    }
    match path {
        "/ISAPI/System/deviceInfo" => {
            let mut r = reply(
                StatusCode::OK,
                "application/xml",
                format!(
                    "<DeviceInfo><deviceName>IP CAMERA</deviceName><model>DS-2CD2043G0-I</model><ipAddress>{ip}</ipAddress><webUrl>http://{ip}:{}/doc/page/login.asp</webUrl></DeviceInfo>",
                    addr.port()
                ),
            );
            // Headers a camera sends that must not reach a recorder as
            // they are: a session cookie, a private header, a redirect
            // naming the camera.
            let h = r.headers_mut();
            h.insert(
                "Set-Cookie",
                "WebSession=cam-cookie-1; path=/".parse().unwrap(),
            );
            h.insert("X-Camera-Private", "serial=DS123".parse().unwrap());
            h.insert(
                "Location",
                format!("http://{ip}:{}/ISAPI/System/deviceInfo", addr.port())
                    .parse()
                    .unwrap(),
            );
            r
        }
        "/ISAPI/Streaming/channels/101/picture" | "/cgi-bin/snapshot.cgi" => {
            reply(StatusCode::OK, "image/jpeg", snapshot())
        }
        "/ISAPI/Event/notification/alertStream" | "/cgi-bin/eventManager.cgi" => {
            let ip = ip.to_string();
            let stream = futures::stream::unfold(0u32, move |i| {
                let ip = ip.clone();
                async move {
                    if i > 0 {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    let part = format!(
                        "--boundary\r\nContent-Type: application/xml\r\n\r\n<EventNotificationAlert><ipAddress>{ip}</ipAddress><eventType>videoloss</eventType><n>{i}</n></EventNotificationAlert>\r\n"
                    );
                    Some((Ok::<_, Infallible>(Frame::data(Bytes::from(part))), i + 1))
                }
            });
            Response::builder()
                .header("Content-Type", "multipart/mixed; boundary=boundary")
                .body(StreamBody::new(stream).boxed())
                .unwrap()
        }
        "/RPC2" => reply(
            StatusCode::OK,
            "application/json",
            "{\"result\":true,\"params\":{\"sn\":\"ABC\"},\"id\":1}",
        ),
        _ => reply(StatusCode::OK, "text/plain", format!("ok {path}")),
    }
}

/// The `Authorization` value of a Basic answer with the camera's account.
pub fn basic_credentials() -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CAM_USER}:{CAM_PASS}"))
    )
}

impl FakeCamera {
    /// A camera whose HTTP API knows only Basic authentication: every
    /// request without the right `Authorization: Basic` gets 401 with
    /// `WWW-Authenticate: Basic` (ONVIF too, whatever token the body
    /// carries). Authorized: `GetDeviceInformation` is answered on ONVIF
    /// paths, `ok <path>` elsewhere. Records every request like `start`.
    pub async fn start_basic_only(ip: IpAddr) -> FakeCamera {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Default::default();
        let s2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let seen = s2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let seen = seen.clone();
                        async move { Ok::<_, Infallible>(handle_basic_only(req, seen).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        FakeCamera { addr, seen, task }
    }

    /// Panics if any request carried the camera's password: in a Basic
    /// answer, in clear in a header, or in a body (a WS-Security
    /// `PasswordText`).
    pub fn assert_never_got_the_password(&self) {
        let basic = basic_credentials();
        for r in self.requests() {
            for (k, v) in &r.headers {
                assert!(!v.contains(&basic), "Basic credentials sent: {k}: {v}");
                assert!(!v.contains(CAM_PASS), "password sent: {k}: {v}");
                assert!(
                    !(k.eq_ignore_ascii_case("authorization")
                        && v.to_ascii_lowercase().starts_with("basic")),
                    "Basic authorization sent: {v}"
                );
            }
            assert!(!r.body.contains(CAM_PASS), "password in a body: {}", r.body);
        }
    }
}

async fn handle_basic_only(
    req: Request<hyper::body::Incoming>,
    seen: Arc<Mutex<Vec<Seen>>>,
) -> Response<Body> {
    let method = req.method().to_string();
    let target = req
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |p| p.to_string());
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = String::from_utf8_lossy(
        &req.into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default(),
    )
    .into_owned();
    let s = Seen {
        method,
        target: target.clone(),
        headers,
        body,
    };
    seen.lock().unwrap().push(s.clone());
    if s.header("authorization") != Some(basic_credentials().as_str()) {
        let mut r = reply(StatusCode::UNAUTHORIZED, "text/html", "<html>401</html>");
        r.headers_mut().insert(
            "WWW-Authenticate",
            "Basic realm=\"IP Camera\"".parse().unwrap(),
        );
        return r;
    }
    let path = target.split('?').next().unwrap_or("");
    if path.starts_with("/onvif/") {
        return reply(
            StatusCode::OK,
            "application/soap+xml; charset=utf-8",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><s:Envelope xmlns:s=\"http://www.w3.org/2003/05/soap-envelope\"><s:Body>\
             <tds:GetDeviceInformationResponse><tds:Manufacturer>HIKVISION</tds:Manufacturer><tds:Model>DS-2CD2043G0-I</tds:Model></tds:GetDeviceInformationResponse>\
             </s:Body></s:Envelope>",
        );
    }
    reply(StatusCode::OK, "text/plain", format!("ok {path}"))
}
