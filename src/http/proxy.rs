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
use tracing::{info, warn};

use super::answer::{self, Handling};
use super::judge;
use super::normalize::{self, Target};
use super::policy::{Action, Policy};
use super::rewrite::{Refused, Rewriter, StreamReplace, StreamRoute};
use super::soap;
use super::upstream::{Upstream, UpstreamBody};
use crate::auth::{Authenticator, Outcome, Presented};
use crate::config::schema::HttpSection;
use crate::config::{Device, DeviceSource, Recorder, Secret};
use crate::metrics::{AuthFailure, Metrics};
use crate::ratelimit::LogLimiter;

/// Response bodies: buffered or streamed.
pub type Body = BoxBody<Bytes, BoxError>;

/// A response body's error.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
    /// Cookies the camera set (never passed to recorders).
    cookies: CookieJar,
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
                    Some(
                        Upstream::new(addr, pin, creds.clone(), timeout, tracker, cancel)
                            .allow_basic(cam.auth.allows_basic()),
                    ),
                    creds,
                )
            }
        };
        DeviceApi {
            device,
            upstream,
            creds,
            cookies: CookieJar::default(),
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
    /// Bytes of request bodies read before authentication (ONVIF calls),
    /// all connections together: `[http] unauthenticated_body_budget_bytes`.
    pub unauthenticated_bodies: Arc<tokio::sync::Semaphore>,
}

impl Proxy {
    fn count(&self, device: &str, verdict: &'static str, rule: &str) {
        self.metrics.http_request(device, verdict, rule);
    }

    /// Handles one request. Never fails: every problem is a response.
    ///
    /// Phases: route to a device; check framing and the target; authenticate
    /// from the head (no body is read for a recorder that has not proved who
    /// it is, except an ONVIF call's, which carries its credentials, read up
    /// to a small cap from a shared budget); read the body; judge exactly the
    /// bytes that will be forwarded; check the recorder may use the device;
    /// forward with an allow-list of headers; clean and rewrite the answer.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        local: SocketAddr,
        mode: Mode,
    ) -> Response<Body> {
        let (api, target_raw, public, tls) = match self.route(&req, local, &mode) {
            Ok(x) => x,
            Err(resp) if resp.status() == StatusCode::NOT_FOUND => {
                // Which device ids exist is told only to a recorder that
                // authenticated: to anyone else an unknown id is a 401 too.
                let raw_uri = req.uri().to_string();
                let (parts, _) = req.into_parts();
                let ctx = AuthCtx {
                    parts: &parts,
                    peer,
                    tls: false,
                    raw_uri: &raw_uri,
                    dev: "unknown",
                };
                return match self.authenticate_head(&ctx).await {
                    Ok(_) => {
                        self.count("unknown", "deny", "unknown_device");
                        resp
                    }
                    Err(challenge) => close(*challenge),
                };
            }
            Err(resp) => return resp,
        };
        let dev = api.device.id.to_string();
        if let Err(resp) = self.check_framing(&req, &dev) {
            return resp;
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
        let raw_uri = req.uri().to_string();
        let (parts, body) = req.into_parts();
        let onvif = judge::is_onvif_call(parts.method.as_str(), &target.path_lower);
        let has_body = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0");

        // Who is asking, from the head alone where possible.
        let ctx = AuthCtx {
            parts: &parts,
            peer,
            tls,
            raw_uri: &raw_uri,
            dev: &dev,
        };
        let mut recorder = None;
        if !onvif || parts.headers.contains_key(header::AUTHORIZATION) {
            match self.authenticate_head(&ctx).await {
                Ok(r) => recorder = Some(r),
                Err(resp) => {
                    self.count(&dev, "deny", "unauthenticated");
                    // An unread body must not be taken for the next request.
                    return if has_body { close(*resp) } else { *resp };
                }
            }
        }

        // The body: bounded, and small until the recorder is known.
        let body = if recorder.is_some() {
            self.read_body(body, self.cfg.max_body_bytes, None, &dev)
                .await
        } else {
            let budget = self.unauthenticated_bodies.clone();
            let cap = self.cfg.max_unauthenticated_body_bytes;
            self.read_body(body, cap, Some(budget), &dev).await
        };
        let body = match body {
            Ok(b) => b,
            Err(resp) => return close(*resp),
        };

        // What the policy needs, from exactly these bytes.
        let header =
            |name: header::HeaderName| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let jr = judge::Request {
            vendor: api.device.vendor,
            method: parts.method.as_str(),
            content_type: header(header::CONTENT_TYPE),
            soap_action: header(header::HeaderName::from_static("soapaction")),
            target: &target,
            body: &body,
        };
        let judged = match judge::judge(&self.policy, &jr) {
            Ok(j) => j,
            Err(why) => {
                self.count(&dev, "deny", "unjudgeable");
                limited_info(&dev, &parts.method, &target, "unjudgeable", &why.0);
                return plain(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "refused by camgate: the request cannot be judged ({})",
                        why.0
                    ),
                );
            }
        };

        // An ONVIF call without an Authorization header: its WS-Security
        // token, or the one call allowed without credentials.
        if recorder.is_none() {
            let token = if judged.soap {
                soap::parse(&body).ok().and_then(|s| s.token)
            } else {
                None
            };
            match token {
                Some(t) => match self
                    .check_outcome(&ctx, self.auth.check_ws_token(&t, peer.ip(), tls))
                    .await
                {
                    Ok(r) => recorder = Some(r),
                    Err(resp) => {
                        self.count(&dev, "deny", "unauthenticated");
                        return *resp;
                    }
                },
                None if judge::is_unauthenticated_exemption(&jr, &judged) => {}
                None => {
                    self.count(&dev, "deny", "unauthenticated");
                    return *self.challenge(&ctx, false);
                }
            }
        }
        if let Some(rec) = &recorder {
            // The connection has proved who it is: it leaves its address's
            // unauthenticated count and its pre-authentication deadline.
            if let Some(h) = parts.extensions.get::<crate::listener::AuthHandle>() {
                h.authenticated();
            }
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
        let headers = toward_camera(&parts.headers, judged.soap, &api.cookies);
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
                    return plain(
                        StatusCode::BAD_REQUEST,
                        format!("refused by camgate: {}", e.0),
                    );
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
                static BASIC: LogLimiter = LogLimiter::new(10);
                if e.kind == super::upstream::ErrorKind::BasicRefused {
                    // A camera (or whoever holds its address) fishing for
                    // the password in clear: an operator should look.
                    if let Some(suppressed) = BASIC.allow() {
                        warn!(device = %dev, error = %e, suppressed,
                            "camera API request refused: the camera offers only Basic authentication");
                    }
                } else if let Some(suppressed) = UP.allow() {
                    info!(device = %dev, error = %e, suppressed, "camera API request failed");
                }
                return plain(
                    StatusCode::BAD_GATEWAY,
                    format!("the camera did not answer ({})", e.kind.as_str()),
                );
            }
        };
        // What to do with the answer is the endpoint's, not the camera's
        // Content-Type's, to say.
        let handling = answer::handling(&target, judged.soap);
        self.respond(&api, resp, public, handling).await
    }

    /// Routes a request to its device: the front's device, or the first
    /// path segment on the path-based listener. Also says how the recorder
    /// reaches camgate (for rewriting) and whether the listener is TLS.
    #[allow(clippy::result_large_err)]
    fn route(
        &self,
        req: &Request<Incoming>,
        local: SocketAddr,
        mode: &Mode,
    ) -> Result<(Arc<DeviceApi>, String, Public, bool), Response<Body>> {
        let raw = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        match mode {
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
                Ok((
                    device.clone(),
                    raw,
                    Public {
                        http_base: base,
                        host: local.ip().to_string(),
                        rtsp: Box::new(rtsp),
                    },
                    *https,
                ))
            }
            Mode::PathBased { rtsp_port } => {
                let rest = raw.strip_prefix('/').unwrap_or(&raw);
                let (id, tail) = match rest.find(['/', '?']) {
                    Some(i) => (&rest[..i], &rest[i..]),
                    None => (rest, ""),
                };
                let Some(api) = self.devices.get(id).cloned() else {
                    return Err(plain(StatusCode::NOT_FOUND, "no such device"));
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
                Ok((
                    api,
                    tail,
                    Public {
                        http_base: base,
                        host: strip_port(&host_hdr),
                        rtsp: Box::new(rtsp),
                    },
                    false,
                ))
            }
        }
    }

    /// Refuses anything two HTTP parsers could read differently.
    #[allow(clippy::result_large_err)]
    fn check_framing(&self, req: &Request<Incoming>, dev: &str) -> Result<(), Response<Body>> {
        let h = req.headers();
        // hyper lets Transfer-Encoding win over a Content-Length (and drops
        // the latter), so a request that had both cannot be told from a
        // chunked one: refuse every chunked request body. Recorders send
        // Content-Length; differing duplicate lengths hyper refuses itself.
        if h.contains_key(header::TRANSFER_ENCODING) {
            self.count(dev, "deny", "malformed");
            return Err(close(plain(
                StatusCode::BAD_REQUEST,
                "Transfer-Encoding is not accepted on requests: send Content-Length",
            )));
        }
        for (name, why) in [
            (header::CONTENT_LENGTH, "more than one Content-Length"),
            (header::AUTHORIZATION, "more than one Authorization header"),
            (header::CONTENT_TYPE, "more than one Content-Type"),
            (
                header::HeaderName::from_static("soapaction"),
                "more than one SOAPAction header",
            ),
        ] {
            if h.get_all(&name).iter().count() > 1 {
                self.count(dev, "deny", "malformed");
                return Err(close(plain(StatusCode::BAD_REQUEST, why)));
            }
        }
        Ok(())
    }

    /// Reads a request body up to `limit` bytes within the request timeout.
    /// With a `budget` (bodies read before authentication), the bytes are
    /// first reserved from that shared budget, and a declared length over
    /// `limit` is refused before anything is read.
    async fn read_body(
        &self,
        body: Incoming,
        limit: usize,
        budget: Option<Arc<tokio::sync::Semaphore>>,
        dev: &str,
    ) -> Result<Bytes, Box<Response<Body>>> {
        use hyper::body::Body as _;
        let too_large = |limit: usize| {
            self.count(dev, "deny", "too_large");
            Box::new(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {limit} bytes"),
            ))
        };
        let declared = body.size_hint().exact();
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let _reserved = match budget {
            None => None,
            Some(b) => {
                let want = declared.map_or(limit, |n| n as usize).min(limit);
                let permits = u32::try_from(want).unwrap_or(u32::MAX);
                match b.try_acquire_many_owned(permits) {
                    Ok(p) => Some(p),
                    Err(_) => {
                        self.count(dev, "deny", "busy");
                        return Err(Box::new(plain(
                            StatusCode::SERVICE_UNAVAILABLE,
                            "too many unauthenticated requests in progress: try again",
                        )));
                    }
                }
            }
        };
        match tokio::time::timeout(
            Duration::from_secs(self.cfg.timeout_secs),
            Limited::new(body, limit).collect(),
        )
        .await
        {
            Err(_) => Err(Box::new(plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body too slow",
            ))),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
            Ok(Err(_)) => Err(Box::new(plain(
                StatusCode::BAD_REQUEST,
                "unreadable request body",
            ))),
            Ok(Ok(c)) => Ok(c.to_bytes()),
        }
    }

    /// Checks the `Authorization` header (Digest, or Basic where allowed).
    async fn authenticate_head(
        &self,
        c: &AuthCtx<'_>,
    ) -> Result<Arc<Recorder>, Box<Response<Body>>> {
        let authorization = c
            .parts
            .headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or("\u{0}invalid"));
        // The digest `uri` is the request-target as sent (origin form), or
        // the same in absolute form.
        let uri_matches = |u: &str| {
            u == c.raw_uri
                || u.split_once("://")
                    .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
                    .is_some_and(|p| p == c.raw_uri)
        };
        let outcome = self.auth.check(&Presented {
            method: c.parts.method.as_str(),
            authorization,
            peer: c.peer.ip(),
            tls: c.tls,
            uri_matches: &uri_matches,
        });
        self.check_outcome(c, outcome).await
    }

    /// Turns an authentication outcome into the recorder or a 401 (held
    /// back a while after repeated failures from the address).
    async fn check_outcome(
        &self,
        c: &AuthCtx<'_>,
        outcome: Outcome,
    ) -> Result<Arc<Recorder>, Box<Response<Body>>> {
        match outcome {
            Outcome::Ok(r) => Ok(r),
            Outcome::Missing => Err(self.challenge(c, false)),
            // HTTP has no session to keep: a stale nonce is re-challenged.
            Outcome::Stale(_) => Err(self.challenge(c, true)),
            Outcome::Invalid(why) => {
                self.metrics.auth_failure("http", why);
                static FAIL: LogLimiter = LogLimiter::new(10);
                if let Some(suppressed) = FAIL.allow() {
                    info!(peer = %c.peer, device = c.dev, reason = why.as_str(), suppressed,
                        "recorder authentication failed");
                }
                let delay = self.auth.failure_delay(c.peer.ip());
                if !delay.is_zero() {
                    tokio::time::sleep(delay.min(Duration::from_secs(2))).await;
                }
                Err(self.challenge(c, false))
            }
        }
    }

    fn challenge(&self, c: &AuthCtx<'_>, stale: bool) -> Box<Response<Body>> {
        let mut r = plain(StatusCode::UNAUTHORIZED, "authentication required");
        for v in self.auth.challenges(c.peer.ip(), stale, c.tls, true) {
            if let Ok(v) = HeaderValue::from_str(&v) {
                r.headers_mut().append(header::WWW_AUTHENTICATE, v);
            }
        }
        Box::new(r)
    }

    /// The camera's answer, cleaned and rewritten (see `answer` for which
    /// answers are rewritten, and `audit` for what a rewritten one may name).
    async fn respond(
        &self,
        api: &DeviceApi,
        resp: Response<UpstreamBody>,
        public: Public,
        handling: Handling,
    ) -> Response<Body> {
        let dev = api.device.id.to_string();
        let (parts, body) = resp.into_parts();
        let mut out = Response::builder().status(parts.status);
        for (k, v) in &parts.headers {
            if TOWARD_RECORDER.contains(&k.as_str()) {
                out = out.header(k, v);
            }
        }
        for c in parts.headers.get_all(header::SET_COOKIE) {
            api.cookies.set(c);
        }
        let length = parts.headers.get(header::CONTENT_LENGTH).cloned();
        let camera_ip = match &api.device.source {
            DeviceSource::Camera(c) => c.host,
            DeviceSource::Simulated { .. } => IpAddr::from([0, 0, 0, 0]),
        };
        let rewriter = || {
            let streams: Vec<StreamRoute> = api
                .device
                .streams
                .iter()
                .map(|s| StreamRoute::new(&s.path, (public.rtsp)(&s.path)))
                .collect();
            Rewriter::new(
                camera_ip,
                public.http_base.clone(),
                public.host.clone(),
                streams,
            )
        };
        if let Some(loc) = parts.headers.get(header::LOCATION) {
            // A redirect names the camera like a body would: rewritten, or
            // dropped when it cannot be.
            if let Some(l) = loc
                .to_str()
                .ok()
                .and_then(|l| rewriter().answer(l.as_bytes()).ok())
                .and_then(|l| HeaderValue::from_str(&l).ok())
            {
                out = out.header(header::LOCATION, l);
            }
        }
        let ct = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let bytes = self.metrics.http_response_bytes(&dev);
        let by_type = handling == Handling::ByContentType;
        if by_type && answer::is_event_stream(&ct) {
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
        // An answer the camera calls binary on an endpoint that is not known
        // to name URIs: its first bytes decide. Markup or JSON is read and
        // checked like text (a camera cannot slip a foreign URL past the
        // audit by calling its XML an image).
        let mut body = body;
        let mut first: Option<Bytes> = None;
        if by_type && !answer::is_textual(&ct) {
            let idle = Duration::from_secs(self.cfg.timeout_secs);
            match tokio::time::timeout(idle, body.frame()).await {
                Ok(Some(Ok(frame))) => first = frame.into_data().ok(),
                Ok(None) => first = Some(Bytes::new()),
                Ok(Some(Err(_))) | Err(_) => {
                    self.metrics.http_upstream_error(&dev, "protocol");
                    return plain(
                        StatusCode::BAD_GATEWAY,
                        "the camera's answer was too large or too slow",
                    );
                }
            }
        }
        let sniffed_text = first.as_deref().is_some_and(answer::looks_textual);
        if by_type && !answer::is_textual(&ct) && !sniffed_text {
            // Images and other binary answers pass as they are, but a camera
            // that stalls mid-body does not hold the recorder: past
            // `timeout_secs` without a byte the body fails, which closes the
            // recorder's connection (a truncated answer is never taken as
            // whole).
            if let Some(l) = length {
                out = out.header(header::CONTENT_LENGTH, l);
            }
            let idle = Duration::from_secs(self.cfg.timeout_secs);
            let metrics = self.metrics.clone();
            let stream = futures::stream::unfold((first, Some(body)), move |(first, body)| {
                let (bytes, metrics, dev) = (bytes.clone(), metrics.clone(), dev.clone());
                async move {
                    if let Some(d) = first.filter(|d| !d.is_empty()) {
                        bytes.inc_by(d.len() as u64);
                        return Some((Ok(Frame::data(d)), (None, body)));
                    }
                    let mut body = body?;
                    match tokio::time::timeout(idle, body.frame()).await {
                        Ok(Some(Ok(frame))) => {
                            if let Some(d) = frame.data_ref() {
                                bytes.inc_by(d.len() as u64);
                            }
                            Some((Ok(frame), (None, Some(body))))
                        }
                        Ok(Some(Err(e))) => Some((Err(Box::new(e) as BoxError), (None, None))),
                        Ok(None) => None,
                        Err(_) => {
                            metrics.http_upstream_error(&dev, "timeout");
                            static STALL: LogLimiter = LogLimiter::new(10);
                            if let Some(suppressed) = STALL.allow() {
                                info!(device = %dev, idle_secs = idle.as_secs(), suppressed,
                                    "camera stalled mid-answer: closing the recorder's connection");
                            }
                            let e = std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "the camera stalled mid-answer",
                            );
                            Some((Err(Box::new(e) as BoxError), (None, None)))
                        }
                    }
                }
            });
            return out
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "bad response"));
        }
        if let Err(why) = answer::check_headers(&parts.headers) {
            return self.refuse(&dev, &Refused::Unrewritable(why));
        }
        let first = first.unwrap_or_default();
        let limit = self.cfg.max_response_bytes.saturating_sub(first.len());
        let collected = tokio::time::timeout(
            Duration::from_secs(self.cfg.timeout_secs),
            Limited::new(body, limit).collect(),
        )
        .await;
        let data = match collected {
            Ok(Ok(c)) if first.is_empty() => c.to_bytes(),
            Ok(Ok(c)) => {
                let mut all = first.to_vec();
                all.extend_from_slice(&c.to_bytes());
                Bytes::from(all)
            }
            _ => {
                self.metrics.http_upstream_error(&dev, "protocol");
                return plain(
                    StatusCode::BAD_GATEWAY,
                    "the camera's answer was too large or too slow",
                );
            }
        };
        match rewriter().answer(&data) {
            Ok(t) => {
                bytes.inc_by(t.len() as u64);
                out.body(full(t))
                    .unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "bad response"))
            }
            Err(refused) => self.refuse(&dev, &refused),
        }
    }

    /// Refuses a camera's answer: counted, logged (rate-limited, what the
    /// camera wrote escaped and bounded), and a 502 that repeats nothing
    /// of it.
    fn refuse(&self, dev: &str, refused: &Refused) -> Response<Body> {
        self.metrics.http_upstream_error(dev, refused.reason());
        static REFUSED: LogLimiter = LogLimiter::new(10);
        if let Some(suppressed) = REFUSED.allow() {
            info!(device = %dev, reason = refused.reason(), detail = ?refused, suppressed,
                "camera answer refused");
        }
        plain(StatusCode::BAD_GATEWAY, refused.message())
    }
}

/// What authentication needs to know about a request.
struct AuthCtx<'a> {
    parts: &'a hyper::http::request::Parts,
    peer: SocketAddr,
    tls: bool,
    /// The request-target as sent, for the Digest `uri`.
    raw_uri: &'a str,
    dev: &'a str,
}

/// Request headers a camera API needs; nothing else reaches the camera
/// (no `Cookie`, no `X-HTTP-Method-Override` or other header a camera
/// might read as an operation, no recorder identity).
const TOWARD_CAMERA: [&str; 6] = [
    "accept",
    "accept-language",
    "content-type",
    "range",
    "if-modified-since",
    "if-none-match",
];

/// The headers forwarded to the camera: the allow-list, `SOAPAction` on
/// ONVIF calls (already checked to agree with the body), and the cookies
/// the camera set earlier.
fn toward_camera(from: &HeaderMap, onvif: bool, jar: &CookieJar) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in from {
        let name = k.as_str();
        if TOWARD_CAMERA.contains(&name) || (onvif && name == "soapaction") {
            headers.append(k.clone(), v.clone());
        }
    }
    if let Some(c) = jar.header() {
        headers.insert(header::COOKIE, c);
    }
    headers
}

/// Response headers safe to pass to a recorder (`Location` is rewritten,
/// `Content-Length` set by camgate, `Set-Cookie` kept by camgate).
const TOWARD_RECORDER: [&str; 11] = [
    "content-type",
    "content-disposition",
    "content-language",
    "content-range",
    "accept-ranges",
    "cache-control",
    "expires",
    "pragma",
    "last-modified",
    "etag",
    "date",
];

/// Cookies a camera set, kept by camgate and sent back on later requests
/// to that camera; recorders never see them. Bounded in count and size.
#[derive(Default)]
pub struct CookieJar {
    // A std mutex: held for a map update, never across an await.
    cookies: std::sync::Mutex<Vec<(String, String)>>,
}

/// Most cookies kept per camera, and largest cookie (name and value).
const JAR_MAX: usize = 16;
const COOKIE_MAX_BYTES: usize = 4096;

impl CookieJar {
    /// Stores the `name=value` of a `Set-Cookie` header (attributes are
    /// ignored: the jar is per camera and only camgate sends it back).
    fn set(&self, set_cookie: &HeaderValue) {
        let Ok(v) = set_cookie.to_str() else { return };
        let pair = v.split(';').next().unwrap_or("").trim();
        let Some((name, value)) = pair.split_once('=') else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
        if name.is_empty()
            || pair.len() > COOKIE_MAX_BYTES
            || !name.chars().all(token)
            || !value
                .chars()
                .all(|c| c.is_ascii_graphic() && c != ';' && c != ',')
        {
            return;
        }
        let mut g = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
        g.retain(|(n, _)| n != name);
        if value.is_empty() {
            return;
        }
        if g.len() >= JAR_MAX {
            g.remove(0);
        }
        g.push((name.to_string(), value.to_string()));
    }

    fn header(&self) -> Option<HeaderValue> {
        let g = self.cookies.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_empty() {
            return None;
        }
        let joined = g
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        HeaderValue::from_str(&joined).ok()
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
