//! The camera API proxy's request phases: route to a device, check framing
//! and the request target, read the body (bounded), extract what the policy
//! needs (ONVIF operations, RPC calls), authenticate the recorder, decide,
//! then forward with camgate's own credentials and rewrite the answer so
//! the camera's address never reaches the recorder.
//!
//! Not here: sockets and TLS (`server`), the rules (`policy`), the camera
//! connection (`upstream`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full, Limited, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use tracing::{debug, info};

use super::judge;
use super::normalize::{self, Target};
use super::policy::{Action, Policy};
use super::rewrite::{Rewriter, StreamReplace, StreamRoute};
use super::soap;
use super::upstream::{Upstream, UpstreamBody};
use crate::auth::{Authenticator, Outcome};
use crate::config::schema::HttpSection;
use crate::config::{Device, DeviceSource, Recorder, Secret};
use crate::metrics::{AuthFailure, Metrics};
use crate::ratelimit::LogLimiter;

/// Response bodies: buffered or streamed.
pub type Body = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(full(format!("{}\n", text.into())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// One device's API as camgate serves it.
pub struct DeviceApi {
    pub device: Arc<Device>,
    /// None for a simulated device (it has no API).
    pub upstream: Option<Upstream>,
    /// The camera's credentials, for re-signing ONVIF requests.
    creds: Option<(String, Secret)>,
}

impl DeviceApi {
    pub fn new(
        device: Arc<Device>,
        timeout: Duration,
        tracker: tokio_util::task::TaskTracker,
        cancel: tokio_util::sync::CancellationToken,
    ) -> DeviceApi {
        let (upstream, creds) = match &device.source {
            DeviceSource::Simulated { .. } => (None, None),
            DeviceSource::Camera(cam) => {
                let creds = match (&cam.username, &cam.password) {
                    (Some(u), Some(p)) => Some((u.clone(), p.clone())),
                    _ => None,
                };
                let addr = SocketAddr::new(cam.host, device.http.port);
                let pin = if device.http.https {
                    device.http.fingerprint
                } else {
                    None
                };
                (
                    Some(Upstream::new(
                        addr,
                        pin,
                        creds.clone(),
                        timeout,
                        tracker,
                        cancel,
                    )),
                    creds,
                )
            }
        };
        DeviceApi {
            device,
            upstream,
            creds,
        }
    }
}

/// How a listener reaches devices.
#[derive(Clone)]
pub enum Mode {
    /// `http://camgate:port/<device>/...`; `rtsp_port` is camgate's RTSP
    /// port for rewritten stream URIs.
    PathBased { rtsp_port: u16 },
    /// A device's front: the camera's own paths at the front address.
    Front {
        device: Arc<DeviceApi>,
        rtsp_port: u16,
        https: bool,
    },
}

/// Everything the request phases share.
pub struct Proxy {
    pub policy: Arc<Policy>,
    pub auth: Arc<Authenticator>,
    pub metrics: Metrics,
    pub cfg: HttpSection,
    pub devices: HashMap<String, Arc<DeviceApi>>,
}

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &str, connection: &HeaderMap) -> bool {
    HOP_BY_HOP.contains(&name)
        || connection
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(name))
}

/// What the judgment phase found.
impl Proxy {
    fn count(&self, device: &str, verdict: &'static str, rule: &str) {
        self.metrics.http_request(device, verdict, rule);
    }

    /// Handles one request. Never fails: every problem is a response.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
        mode: Mode,
    ) -> Response<Body> {
        let raw = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        // Route.
        let (api, target_raw, public) = match &mode {
            Mode::Front {
                device,
                rtsp_port,
                https,
            } => {
                let scheme = if *https { "https" } else { "http" };
                let host = host_of(local.ip());
                let base = if (*https && local.port() == 443) || (!*https && local.port() == 80) {
                    format!("{scheme}://{host}")
                } else {
                    format!("{scheme}://{host}:{}", local.port())
                };
                let rtsp_port = *rtsp_port;
                let rtsp = move |path: &str| format!("rtsp://{host}:{rtsp_port}{path}");
                (
                    device.clone(),
                    raw.clone(),
                    Public {
                        http_base: base,
                        host: local.ip().to_string(),
                        rtsp: Box::new(rtsp),
                    },
                )
            }
            Mode::PathBased { rtsp_port } => {
                let rest = raw.strip_prefix('/').unwrap_or(&raw);
                let (id, tail) = match rest.find(['/', '?']) {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                let Some(api) = self.devices.get(id).cloned() else {
                    self.count("unknown", "deny", "unknown_device");
                    return plain(StatusCode::NOT_FOUND, "no such device");
                };
                let tail = if tail.starts_with('?') || tail.is_empty() {
                    format!("/{tail}")
                } else {
                    tail.to_string()
                };
                let host_hdr = req
                    .headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .filter(|h| {
                        h.len() < 256
                            && h.chars()
                                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
                    })
                    .map(str::to_string)
                    .unwrap_or_else(|| local.to_string());
                let host_only = strip_port(&host_hdr);
                let base = format!("http://{host_hdr}/{id}");
                let dev = id.to_string();
                let rtsp_port = *rtsp_port;
                let streams: Vec<(String, String)> = api
                    .device
                    .streams
                    .iter()
                    .map(|s| (s.path.clone(), s.name.to_string()))
                    .collect();
                let rtsp = move |path: &str| {
                    let name = streams
                        .iter()
                        .find(|(p, _)| p == path)
                        .map_or("", |(_, n)| n.as_str());
                    format!("rtsp://{host_only}:{rtsp_port}/{dev}/{name}")
                };
                (
                    api,
                    tail,
                    Public {
                        http_base: base,
                        host: strip_port(&host_hdr),
                        rtsp: Box::new(rtsp),
                    },
                )
            }
        };
        let dev = api.device.id.to_string();

        // Framing: refuse anything two parsers could read differently.
        let h = req.headers();
        // hyper lets Transfer-Encoding win over a Content-Length (and drops
        // the latter), so a request that had both cannot be told from a
        // chunked one: refuse every chunked request body. Recorders send
        // Content-Length; differing duplicate lengths hyper refuses itself.
        if h.contains_key(header::TRANSFER_ENCODING) {
            self.count(&dev, "deny", "malformed");
            return close(plain(
                StatusCode::BAD_REQUEST,
                "Transfer-Encoding is not accepted on requests: send Content-Length",
            ));
        }
        if h.get_all(header::CONTENT_LENGTH).iter().count() > 1 {
            self.count(&dev, "deny", "malformed");
            return close(plain(
                StatusCode::BAD_REQUEST,
                "more than one Content-Length",
            ));
        }
        let target = match normalize::target(&target_raw) {
            Ok(t) => t,
            Err(why) => {
                self.count(&dev, "deny", "malformed");
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!("bad request target: {}", why.as_str()),
                );
            }
        };

        let (parts, body) = req.into_parts();
        let limit = self.cfg.max_body_bytes;
        let body = match tokio::time::timeout(
            Duration::from_secs(self.cfg.timeout_secs),
            Limited::new(body, limit).collect(),
        )
        .await
        {
            Err(_) => return close(plain(StatusCode::REQUEST_TIMEOUT, "request body too slow")),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                self.count(&dev, "deny", "too_large");
                return close(plain(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {limit} bytes"),
                ));
            }
            Ok(Err(_)) => return close(plain(StatusCode::BAD_REQUEST, "unreadable request body")),
            Ok(Ok(c)) => c.to_bytes(),
        };

        // What the policy needs.
        let header =
            |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let judged = match judge::judge(
            &self.policy,
            &judge::Request {
                vendor: api.device.vendor,
                method: parts.method.as_str(),
                content_type: header(header::CONTENT_TYPE),
                soap_action: header(header::HeaderName::from_static("soapaction")),
                target: &target,
                body: &body,
            },
        ) {
            Ok(j) => j,
            Err(why) => {
                self.count(&dev, "deny", "unjudgeable");
                limited_info(&dev, &parts.method, &target, "unjudgeable", &why);
                return plain(
                    StatusCode::FORBIDDEN,
                    format!("denied by camgate: the request cannot be judged ({why})"),
                );
            }
        };

        // The recorder.
        let exempt =
            judged.ops.len() == 1 && judged.ops[0].eq_ignore_ascii_case("GetSystemDateAndTime");
        if !exempt {
            match self.authenticate(&parts, &body, judged.soap, peer).await {
                Ok(rec) => {
                    if !rec.devices.contains(&dev) {
                        self.metrics
                            .auth_failure("http", AuthFailure::DeviceNotAllowed);
                        self.count(&dev, "deny", "forbidden");
                        return plain(
                            StatusCode::FORBIDDEN,
                            "this recorder may not use this device",
                        );
                    }
                }
                Err(resp) => {
                    self.count(&dev, "deny", "unauthenticated");
                    return *resp;
                }
            }
        }

        // The verdict.
        let v = &judged.verdict;
        self.count(&dev, v.verdict_label(), &v.rule);
        if v.action != Action::Allow {
            limited_info(&dev, &parts.method, &target, &v.rule, &v.reason);
        }
        if !v.allowed() {
            let cve = if v.cve.is_empty() {
                String::new()
            } else {
                format!(" [{}]", v.cve.join(", "))
            };
            return plain(
                StatusCode::FORBIDDEN,
                format!(
                    "denied by camgate policy rule {}: {}{cve}",
                    v.rule, v.reason
                ),
            );
        }
        let Some(upstream) = &api.upstream else {
            return plain(
                StatusCode::NOT_FOUND,
                "a simulated device has no camera API",
            );
        };

        // Forward, signed as camgate.
        let mut headers = HeaderMap::new();
        for (k, val) in &parts.headers {
            let name = k.as_str();
            if is_hop_by_hop(name, &parts.headers)
                || matches!(
                    name,
                    "host" | "authorization" | "content-length" | "accept-encoding" | "expect"
                )
            {
                continue;
            }
            headers.append(k.clone(), val.clone());
        }
        let body = if judged.soap {
            let created = jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .map(|t| t.to_string())
                .unwrap_or_default();
            let sec = api
                .creds
                .as_ref()
                .map(|(u, p)| soap::security_header(u, p.expose(), &created));
            match soap::resign(&body, sec.as_deref()) {
                Ok(b) => Bytes::from(b),
                Err(e) => {
                    self.count(&dev, "deny", "unjudgeable");
                    return plain(StatusCode::FORBIDDEN, format!("denied by camgate: {}", e.0));
                }
            }
        } else {
            body
        };
        let resp = match upstream
            .send(&parts.method, &target.encode(), &headers, body)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                self.metrics.http_upstream_error(&dev, e.kind.as_str());
                static UP: LogLimiter = LogLimiter::new(10);
                if let Some(suppressed) = UP.allow() {
                    info!(device = %dev, error = %e, suppressed, "camera API request failed");
                }
                return plain(
                    StatusCode::BAD_GATEWAY,
                    format!("the camera did not answer ({})", e.kind.as_str()),
                );
            }
        };
        self.respond(&api, resp, public).await
    }

    async fn authenticate(
        &self,
        parts: &hyper::http::request::Parts,
        body: &Bytes,
        soap_body: bool,
        peer: SocketAddr,
    ) -> Result<Arc<Recorder>, Box<Response<Body>>> {
        let token = if soap_body {
            soap::parse(body).ok().and_then(|s| s.token)
        } else {
            None
        };
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let outcome = match (&token, header) {
            (Some(t), _) => self.auth.check_ws_token(t),
            (None, h) => self.auth.check(parts.method.as_str(), h),
        };
        let challenge = |stale: bool| {
            let [digest, basic] = self.auth.challenges(stale);
            let mut r = plain(StatusCode::UNAUTHORIZED, "authentication required");
            if let (Ok(d), Ok(b)) = (
                HeaderValue::from_str(&digest),
                HeaderValue::from_str(&basic),
            ) {
                r.headers_mut().append(header::WWW_AUTHENTICATE, d);
                r.headers_mut().append(header::WWW_AUTHENTICATE, b);
            }
            Box::new(r)
        };
        let rec = match outcome {
            Outcome::Ok(r) => r,
            Outcome::Missing => return Err(challenge(false)),
            Outcome::Stale => return Err(challenge(true)),
            Outcome::Invalid(why) => {
                self.metrics.auth_failure("http", why);
                let delay = self.auth.failure_delay(peer.ip());
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                return Err(challenge(false));
            }
        };
        if !rec.allowed_from(peer.ip()) {
            self.metrics
                .auth_failure("http", AuthFailure::AddressNotAllowed);
            return Err(Box::new(plain(
                StatusCode::FORBIDDEN,
                "this recorder may not connect from this address",
            )));
        }
        Ok(rec)
    }

    /// The camera's answer, cleaned and rewritten.
    async fn respond(
        &self,
        api: &DeviceApi,
        resp: Response<UpstreamBody>,
        public: Public,
    ) -> Response<Body> {
        let dev = api.device.id.to_string();
        let (parts, body) = resp.into_parts();
        let mut out = Response::builder().status(parts.status);
        for (k, v) in &parts.headers {
            let name = k.as_str();
            if is_hop_by_hop(name, &parts.headers)
                || matches!(
                    name,
                    "www-authenticate" | "content-length" | "server" | "authentication-info"
                )
            {
                continue;
            }
            out = out.header(k, v);
        }
        let length = parts.headers.get(header::CONTENT_LENGTH).cloned();
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let camera_ip = match &api.device.source {
            DeviceSource::Camera(c) => c.host,
            DeviceSource::Simulated { .. } => IpAddr::from([0, 0, 0, 0]),
        };
        let bytes = self.metrics.http_response_bytes(&dev);
        if ct.starts_with("multipart/") || ct.contains("event-stream") {
            // Long-lived event streams: forwarded as they come, the camera's
            // address replaced on the fly, closed when silent too long.
            let idle = Duration::from_secs(self.cfg.stream_idle_timeout_secs);
            let mut replace = StreamReplace::new(&camera_ip.to_string(), &public.host);
            let stream = futures::stream::unfold((body, false), move |(mut body, done)| {
                let bytes = bytes.clone();
                async move {
                    if done {
                        return None;
                    }
                    match tokio::time::timeout(idle, body.frame()).await {
                        Ok(Some(Ok(frame))) => Some((Ok(frame), (body, false))),
                        Ok(Some(Err(e))) => Some((
                            Err(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                            (body, true),
                        )),
                        Ok(None) => None,
                        Err(_) => {
                            let _ = bytes;
                            None
                        }
                    }
                }
            })
            .map(move |r| {
                r.map(|frame| match frame.into_data() {
                    Ok(data) => {
                        let d = Bytes::from(replace.push(&data));
                        Frame::data(d)
                    }
                    Err(f) => f,
                })
            })
            .inspect({
                let bytes = self.metrics.http_response_bytes(&dev);
                move |r| {
                    if let Ok(f) = r
                        && let Some(d) = f.data_ref()
                    {
                        bytes.inc_by(d.len() as u64);
                    }
                }
            });
            return out
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "bad response"));
        }
        let textual =
            ct.contains("xml") || ct.contains("json") || ct.starts_with("text/") || ct.is_empty();
        if !textual {
            // Images and other binary answers pass as they are.
            if let Some(l) = length {
                out = out.header(header::CONTENT_LENGTH, l);
            }
            let b = body.map_frame(move |f| {
                if let Some(d) = f.data_ref() {
                    bytes.inc_by(d.len() as u64);
                }
                f
            });
            return out
                .body(
                    b.map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                        .boxed(),
                )
                .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "bad response"));
        }
        let limit = self.cfg.max_response_bytes;
        let collected = tokio::time::timeout(
            Duration::from_secs(self.cfg.timeout_secs),
            Limited::new(body, limit).collect(),
        )
        .await;
        let data = match collected {
            Ok(Ok(c)) => c.to_bytes(),
            _ => {
                self.metrics.http_upstream_error(&dev, "protocol");
                return plain(
                    StatusCode::BAD_GATEWAY,
                    "the camera's answer was too large or too slow",
                );
            }
        };
        let text = String::from_utf8_lossy(&data);
        let streams: Vec<StreamRoute> = api
            .device
            .streams
            .iter()
            .map(|s| StreamRoute::new(&s.path, (public.rtsp)(&s.path)))
            .collect();
        let rw = Rewriter::new(
            camera_ip,
            public.http_base.clone(),
            public.host.clone(),
            streams,
        );
        match rw.text(&text) {
            Ok(t) => {
                bytes.inc_by(t.len() as u64);
                out.body(full(t))
                    .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "bad response"))
            }
            Err(unknown) => {
                self.metrics.http_upstream_error(&dev, "unknown_stream");
                debug!(device = %dev, path = %unknown.0, "camera named a stream that is not configured");
                plain(
                    StatusCode::BAD_GATEWAY,
                    "the camera answered with a stream camgate does not serve (add it to [device.streams])",
                )
            }
        }
    }
}

/// How the recorder reaches camgate for this device.
struct Public {
    http_base: String,
    /// Host (no port) replacing the camera's bare IP.
    host: String,
    /// camera path -> the RTSP URL recorders use.
    rtsp: Box<dyn Fn(&str) -> String + Send + Sync>,
}

fn host_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

fn strip_port(host: &str) -> String {
    if host.starts_with('[') {
        host.split(']')
            .next()
            .map(|h| format!("{h}]"))
            .unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or(host).to_string()
    }
}

fn close(mut r: Response<Body>) -> Response<Body> {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn limited_info(device: &str, method: &hyper::Method, target: &Target, rule: &str, reason: &str) {
    static LOG: LogLimiter = LogLimiter::new(1);
    if let Some(suppressed) = LOG.allow() {
        info!(device, %method, path = %target.path, rule, reason, suppressed, "camera API request judged");
    }
}
