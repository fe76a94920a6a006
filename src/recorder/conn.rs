//! One recorder connection: reads requests (and interleaved RTCP), checks
//! credentials and permissions, drives sessions, and hands responses and
//! media to the connection's writer.
//!
//! A SETUP creates a session only once everything it names is checked, and
//! within the caps (16 per connection, `[rtsp] max_sessions_per_recorder`
//! per account); a PLAY starts media only through the session's play
//! ticket (`session`), so TEARDOWN, PAUSE and the timeout stop exactly
//! the PLAY they follow, from whichever connection they come.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::request::{self, Parsed, Request};
use super::response::{Response, Status};
use super::server::Server;
use super::session::{Playing, Session, StartPlay, TrackTransport};
use super::transport::{self, Requested};
use super::writer::{self, ChannelMap, TcpPlay, WriterMsg};
use super::{sdp, udp};
use crate::auth::{Outcome, Presented};
use crate::config::Recorder;
use crate::devices::{DeviceEntry, StreamEntry};
use crate::listener::ConnGuard;
use crate::media::hub::FrameKind;
use crate::metrics::AuthFailure;
use crate::ratelimit::LogLimiter;

/// A partial request must complete within this (slow-loris guard).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Most sessions one connection holds (sessions of its recorder account
/// count against `[rtsp] max_sessions_per_recorder` too).
pub const MAX_SESSIONS_PER_CONNECTION: usize = 16;
/// Methods camgate answers, for `Public` and `Allow`.
const METHODS: &str =
    "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER";

/// What a request's URI names.
struct Resolved {
    device: DeviceEntry,
    stream: StreamEntry,
    track: Option<usize>,
    /// Content-Base: how the recorder addressed the stream, with a slash.
    base: String,
}

/// On a device front, the configured stream a request URI names by the
/// camera's own path (`/Streaming/Channels/101[/trackID=N]`), its track,
/// and the target without the track as the recorder wrote it.
fn front_stream<'a>(
    device: &'a DeviceEntry,
    uri: &'a str,
) -> Option<(&'a StreamEntry, Option<usize>, &'a str)> {
    let target = match uri.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => uri,
    };
    let (target, track) = split_track(target.trim_end_matches('/'));
    let target = target.trim_end_matches('/');
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let stream = device
        .streams
        .iter()
        .find(|s| s.camera_path.matches(path, query))?;
    Some((stream, track, target))
}

/// Splits a trailing `/trackID=N` off a request target.
fn split_track(target: &str) -> (&str, Option<usize>) {
    if let Some((head, tail)) = target.rsplit_once("/trackID=")
        && let Ok(n) = tail.parse::<usize>()
    {
        return (head, Some(n));
    }
    (target, None)
}

struct Conn {
    server: Arc<Server>,
    /// The device whose front this connection came in on, if any.
    front: Option<crate::config::DeviceId>,
    id: u64,
    peer: SocketAddr,
    local: SocketAddr,
    /// The recorder this connection authenticated as.
    recorder: Option<Arc<Recorder>>,
    /// Sessions created on this connection.
    sessions: Vec<Arc<Session>>,
    tx: mpsc::Sender<WriterMsg>,
    tracker: TaskTracker,
    /// The connection's hold on the listener pool: marked authenticated
    /// once a recorder proves who it is.
    guard: ConnGuard,
}

/// Serves one connection until it closes, `cancel` fires, or its guard
/// says so (eviction, the unauthenticated deadline, which requests do not
/// extend).
#[allow(clippy::too_many_arguments)] // one call site, in the listener
pub async fn serve(
    server: Arc<Server>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    front: Option<crate::config::DeviceId>,
    guard: ConnGuard,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let local = stream.local_addr().unwrap_or(server.cfg.listen);
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::channel(8);
    let conn_cancel = cancel.child_token();
    let write_timeout = Duration::from_secs(server.cfg.recorder_max_lag_secs);
    let writer = tracker.spawn(writer::run(wr, rx, conn_cancel.clone(), write_timeout));
    let mut conn = Conn {
        server: server.clone(),
        front,
        id,
        peer,
        local,
        recorder: None,
        sessions: Vec::new(),
        tx,
        tracker,
        guard: guard.clone(),
    };
    let max = server.cfg.max_request_bytes;
    let idle = Duration::from_secs(server.cfg.session_timeout_secs);
    let mut buf = BytesMut::with_capacity(4096);
    let mut partial_since: Option<Instant> = None;
    let mut last_request = Instant::now();
    'conn: loop {
        loop {
            match request::parse(&buf, max) {
                Parsed::Incomplete => break,
                Parsed::Interleaved { consumed, .. } => {
                    // RTCP receiver reports over TCP: a sign of life.
                    buf.advance(consumed);
                    conn.touch_all();
                }
                Parsed::Request { request, consumed } => {
                    buf.advance(consumed);
                    last_request = Instant::now();
                    if !conn.handle(request).await {
                        break 'conn;
                    }
                }
                Parsed::Invalid(why) => {
                    static BAD: LogLimiter = LogLimiter::new(10);
                    if let Some(suppressed) = BAD.allow() {
                        info!(%peer, reason = why, suppressed, "closing connection after a malformed request");
                    }
                    let r = Response::new(Status::BadRequest).to_bytes(None);
                    let _ = conn.tx.send(WriterMsg::Response(r)).await;
                    let _ = conn.tx.send(WriterMsg::Close).await;
                    break 'conn;
                }
            }
        }
        partial_since = if buf.is_empty() {
            None
        } else {
            partial_since.or(Some(Instant::now()))
        };
        let deadline = match partial_since {
            Some(t) => Some(t + HEADER_TIMEOUT),
            None if conn.sessions.is_empty() => Some(last_request + idle),
            None => None,
        };
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = conn_cancel.cancelled() => break,
            ended = guard.closed() => {
                debug!(?ended, "closing connection: listener limit");
                break;
            }
            _ = sleep => {
                debug!("closing idle connection");
                break;
            }
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    // Dropping the connection ends its TCP sessions (see `Drop for Conn`),
    // on this path and on every other, a panic's unwinding included.
    conn_cancel.cancel();
    drop(conn);
    let _ = writer.await;
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.close();
    }
}

impl Conn {
    fn touch_all(&self) {
        for s in &self.sessions {
            s.touch();
        }
    }

    /// Ends the connection's TCP sessions; UDP sessions live on until
    /// TEARDOWN or their timeout (RFC 2326 §3.4).
    fn close(&mut self) {
        for s in self.sessions.drain(..) {
            if !s.is_udp() {
                self.server.sessions.remove(&s.id);
            }
        }
    }

    async fn send(&self, r: Response, cseq: Option<&str>) -> bool {
        self.tx
            .send(WriterMsg::Response(r.to_bytes(cseq)))
            .await
            .is_ok()
    }

    /// Handles one request. Returns false to close the connection.
    async fn handle(&mut self, req: Request) -> bool {
        // Sessions ended elsewhere (TEARDOWN from another connection, the
        // timeout) are let go: they no longer count, nor keep a camera.
        self.sessions.retain(|s| !s.is_ended());
        let Some(cseq) = req.cseq().map(str::to_string) else {
            return self.send(Response::new(Status::BadRequest), None).await;
        };
        let cseq = Some(cseq.as_str());
        debug!(method = %req.method, uri = %crate::telemetry::redact_uri(&req.uri), "request");
        if req.method == "OPTIONS" {
            // A keepalive, but OPTIONS needs no credentials: it keeps alive
            // only a session of the recorder this connection authenticated
            // as, never one whose id an unauthenticated peer learned.
            if let (Some(rec), Some(s)) = (
                &self.recorder,
                req.session_id().and_then(|id| self.server.sessions.get(id)),
            ) && s.recorder.name == rec.name
            {
                s.touch();
            }
            return self
                .send(Response::new(Status::Ok).header("Public", METHODS), cseq)
                .await;
        }
        if !matches!(
            req.method.as_str(),
            "DESCRIBE"
                | "SETUP"
                | "PLAY"
                | "PAUSE"
                | "TEARDOWN"
                | "GET_PARAMETER"
                | "SET_PARAMETER"
        ) {
            let r = Response::new(Status::MethodNotAllowed).header("Allow", METHODS);
            return self.send(r, cseq).await;
        }
        let recorder = match self.authenticate(&req).await {
            Ok(r) => r,
            Err(resp) => return self.send(resp, cseq).await,
        };
        let resp = match req.method.as_str() {
            "DESCRIBE" => self.describe(&req, &recorder).await,
            "SETUP" => self.setup(&req, &recorder).await,
            "PLAY" => self.play(&req, &recorder).await,
            "PAUSE" => self.pause(&req, &recorder),
            "TEARDOWN" => self.teardown(&req, &recorder),
            _ => self.keepalive(&req, &recorder),
        };
        let (resp, after) = match resp {
            Ok(x) => x,
            Err(r) => (r, None),
        };
        if !self.send(resp, cseq).await {
            return false;
        }
        if let Some(msg) = after
            && self.tx.send(msg).await.is_err()
        {
            return false;
        }
        true
    }

    /// Identifies the recorder: 401 without valid credentials, from outside
    /// its `allow_from` (the same answer, so the address check is no
    /// password oracle), or from a locked-out address.
    async fn authenticate(&mut self, req: &Request) -> Result<Arc<Recorder>, Response> {
        let peer = self.peer.ip();
        let challenge = |stale: bool| {
            let mut r = Response::new(Status::Unauthorized);
            for c in self.server.auth.challenges(peer, stale, false, false) {
                r = r.header("WWW-Authenticate", c);
            }
            r
        };
        let mut given = req.headers_named("Authorization");
        let authorization = given.next();
        let outcome = if given.next().is_some() {
            // Two Authorization headers: which one would a proxy in between
            // have checked? Neither is taken.
            Outcome::Invalid(AuthFailure::Malformed)
        } else {
            // The digest `uri` must name this request: the same URI, or
            // (clients differ on track URLs) the same device and stream.
            let uri_matches = |u: &str| {
                u == req.uri || {
                    let (a, b) = (self.locate(u), self.locate(&req.uri));
                    a.is_some() && a == b
                }
            };
            self.server.auth.check(&Presented {
                method: &req.method,
                authorization,
                peer,
                tls: false,
                uri_matches: &uri_matches,
            })
        };
        let recorder = match outcome {
            Outcome::Ok(r) => r,
            Outcome::Missing => match &self.recorder {
                // Credentials carry over within a connection: some recorders
                // only authenticate their first request.
                Some(r) => r.clone(),
                None => return Err(challenge(false)),
            },
            Outcome::Stale(r) => {
                // A session already held is never cut for an old nonce: the
                // response was verified, only its nonce aged.
                let same = |name: &str| *name == *r.name;
                let in_session = self.recorder.as_ref().is_some_and(|c| same(&c.name))
                    || req
                        .session_id()
                        .and_then(|id| self.server.sessions.get(id))
                        .is_some_and(|s| same(&s.recorder.name));
                if !in_session {
                    return Err(challenge(true));
                }
                r
            }
            Outcome::Invalid(why) => {
                self.server.metrics.auth_failure("rtsp", why);
                static FAIL: LogLimiter = LogLimiter::new(10);
                if let Some(suppressed) = FAIL.allow() {
                    info!(peer = %self.peer, reason = why.as_str(), suppressed, "recorder authentication failed");
                }
                let delay = self.server.auth.failure_delay(peer);
                if !delay.is_zero() {
                    tokio::time::sleep(delay.min(Duration::from_secs(2))).await;
                }
                return Err(challenge(false));
            }
        };
        self.recorder = Some(recorder.clone());
        self.guard.authenticated();
        Ok(recorder)
    }

    /// The device and stream a request URI names, without permission
    /// checks: for comparing two URIs.
    fn locate(&self, uri: &str) -> Option<(String, String)> {
        match &self.front {
            Some(id) => {
                let device = self.server.registry.device(id.as_str())?;
                let (stream, _, _) = front_stream(device, uri)?;
                Some((id.to_string(), stream.name.to_string()))
            }
            None => {
                let segs = request::path_segments(uri);
                let (dev, name) = (segs.first()?, segs.get(1)?);
                let device = self.server.registry.device(dev)?;
                let stream = device.stream(name)?;
                Some((device.config.id.to_string(), stream.name.to_string()))
            }
        }
    }

    /// Resolves the stream a request names, enforcing the recorder's device
    /// list: `/<device>/<stream>[/trackID=N]`, or on a device front the
    /// camera's own path (`/Streaming/Channels/101[/trackID=N]`).
    fn resolve(&self, req: &Request, recorder: &Recorder) -> Result<Resolved, Response> {
        let authority = req
            .uri
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .map(|a| a.rsplit('@').next().unwrap_or(a).to_string())
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| self.local.to_string());
        let not_found = || Response::new(Status::NotFound);
        let (device, stream, track, base) = match &self.front {
            Some(id) => {
                let device = self
                    .server
                    .registry
                    .device(id.as_str())
                    .ok_or_else(not_found)?;
                let (stream, track, target) =
                    front_stream(device, &req.uri).ok_or_else(not_found)?;
                (
                    device,
                    stream,
                    track,
                    format!("rtsp://{authority}{target}/"),
                )
            }
            None => {
                let segs = request::path_segments(&req.uri);
                let (Some(dev), Some(name)) = (segs.first(), segs.get(1)) else {
                    return Err(not_found());
                };
                let device = self.server.registry.device(dev).ok_or_else(not_found)?;
                let stream = device.stream(name).ok_or_else(not_found)?;
                let track = match &segs[2..] {
                    [] => None,
                    [t] => Some(
                        t.strip_prefix("trackID=")
                            .and_then(|n| n.parse::<usize>().ok())
                            .ok_or_else(not_found)?,
                    ),
                    _ => return Err(not_found()),
                };
                (
                    device,
                    stream,
                    track,
                    format!("rtsp://{authority}/{dev}/{name}/"),
                )
            }
        };
        if !recorder.devices.contains(device.config.id.as_str()) {
            self.server
                .metrics
                .auth_failure("rtsp", AuthFailure::DeviceNotAllowed);
            return Err(Response::new(Status::Forbidden));
        }
        Ok(Resolved {
            device: device.clone(),
            stream: stream.clone(),
            track,
            base,
        })
    }

    async fn describe(&mut self, req: &Request, rec: &Recorder) -> Reply {
        let Resolved {
            device,
            stream,
            base,
            ..
        } = self.resolve(req, rec)?;
        let hub = stream.hub.clone();
        let _demand = hub.demand();
        let wait = Duration::from_secs(self.server.cfg.describe_timeout_secs);
        let Some(info) = hub.wait_info(wait).await else {
            info!(device = %device.config.id, stream = %stream.name,
                "DESCRIBE: camera has not delivered its parameters in time: 503");
            return Err(Response::new(Status::ServiceUnavailable).header("Retry-After", "5"));
        };
        let name = format!("{}/{}", device.config.id, stream.name);
        let body = sdp::write(&info, sdp_session_id(&name), self.local.ip(), &name);
        Ok((
            Response::new(Status::Ok)
                .header("Content-Base", base)
                .body("application/sdp", body),
            None,
        ))
    }

    /// SETUP: everything is checked (stream, permission, transport, track)
    /// before a session is created, so a refused SETUP leaves nothing
    /// behind; a new session counts against the connection's and the
    /// account's caps.
    async fn setup(&mut self, req: &Request, rec: &Arc<Recorder>) -> Reply {
        let Resolved {
            device,
            stream,
            track,
            base,
        } = self.resolve(req, rec)?;
        let track = track.unwrap_or(0);
        let Some(th) = req.header("Transport") else {
            return Err(Response::new(Status::UnsupportedTransport));
        };
        let requested = transport::choose(th, self.server.udp.is_some())
            .map_err(|_| Response::new(Status::UnsupportedTransport))?;
        let existing = match req.session_id() {
            Some(_) => {
                let s = self.session_of(req, rec)?;
                if s.device != device.config.id || s.stream != stream.name {
                    return Err(Response::new(Status::AggregateOperationNotAllowed));
                }
                Some(s)
            }
            None => None,
        };
        let info = match &existing {
            Some(s) => s.info.clone(),
            None => {
                let hub = stream.hub.clone();
                let _demand = hub.demand();
                let wait = Duration::from_secs(self.server.cfg.describe_timeout_secs);
                hub.wait_info(wait)
                    .await
                    .ok_or_else(|| Response::new(Status::ServiceUnavailable))?
            }
        };
        if track >= info.tracks.len() {
            return Err(Response::new(Status::NotFound));
        }
        let (tt, transport_reply) =
            self.track_transport(requested, track, existing.as_ref().map(|s| s.id.as_str()))?;
        let session = match existing {
            Some(s) => s,
            None => self.new_session(rec, &device, &stream, info, base)?,
        };
        // Checked and set under the session's lock: another connection of
        // the recorder may be setting up or playing the same session.
        session.with_state(|st| {
            if st.is_ended() {
                return Err(Response::new(Status::SessionNotFound));
            }
            if st.playing.is_some() {
                return Err(Response::new(Status::MethodNotValidInThisState));
            }
            let others = st.tracks.iter().enumerate().filter(|(i, _)| *i != track);
            for (_, t) in others {
                let clash = match (t, tt) {
                    (
                        Some(TrackTransport::Tcp { rtp: a, rtcp: b }),
                        TrackTransport::Tcp { rtp, rtcp },
                    ) => [*a, *b].iter().any(|c| *c == rtp || *c == rtcp),
                    // One session, one transport.
                    (Some(t), tt) => {
                        matches!(t, TrackTransport::Udp { .. })
                            != matches!(tt, TrackTransport::Udp { .. })
                    }
                    (None, _) => false,
                };
                if clash {
                    return Err(Response::new(Status::UnsupportedTransport));
                }
            }
            st.tracks[track] = Some(tt);
            Ok(())
        })?;
        if let (TrackTransport::Udp { rtp, rtcp }, Some(udp)) = (tt, &self.server.udp) {
            udp.register([rtp, rtcp], &session);
        }
        session.touch();
        info!(recorder = %rec.name, device = %session.device, stream = %session.stream,
            session = %session.id, track, transport = %transport_reply, "SETUP");
        Ok((
            Response::new(Status::Ok)
                .header("Transport", transport_reply)
                .header("Session", self.session_header(&session)),
            None,
        ))
    }

    /// The transport a SETUP asks for, checked against this connection
    /// (`session`: the session it sets up, if it exists already).
    fn track_transport(
        &self,
        requested: Requested,
        track: usize,
        session: Option<&str>,
    ) -> Result<(TrackTransport, String), Response> {
        match requested {
            Requested::Tcp { channels } => {
                if self.sessions.iter().any(|s| {
                    Some(s.id.as_str()) != session
                        && !s.is_ended()
                        && !s.is_udp()
                        && s.with_state(|st| st.tracks.iter().any(Option::is_some))
                }) {
                    // One interleaved session per connection.
                    return Err(Response::new(Status::MethodNotValidInThisState));
                }
                let (rtp, rtcp) = channels.unwrap_or(((2 * track) as u8, (2 * track + 1) as u8));
                if rtp == rtcp {
                    return Err(Response::new(Status::UnsupportedTransport));
                }
                Ok((
                    TrackTransport::Tcp { rtp, rtcp },
                    format!("RTP/AVP/TCP;unicast;interleaved={rtp}-{rtcp}"),
                ))
            }
            Requested::Udp {
                client_ports: (crtp, crtcp),
            } => {
                let Some(udp) = &self.server.udp else {
                    return Err(Response::new(Status::UnsupportedTransport));
                };
                let (srtp, srtcp) = udp.ports();
                let ip = self.peer.ip();
                Ok((
                    TrackTransport::Udp {
                        rtp: SocketAddr::new(ip, crtp),
                        rtcp: SocketAddr::new(ip, crtcp),
                    },
                    format!(
                        "RTP/AVP;unicast;client_port={crtp}-{crtcp};server_port={srtp}-{srtcp}"
                    ),
                ))
            }
        }
    }

    /// Creates and registers a session for a SETUP already checked, within
    /// the connection's cap ([`MAX_SESSIONS_PER_CONNECTION`]) and the
    /// account's (`[rtsp] max_sessions_per_recorder`); past either: 453.
    fn new_session(
        &mut self,
        rec: &Arc<Recorder>,
        device: &DeviceEntry,
        stream: &StreamEntry,
        info: Arc<crate::media::StreamInfo>,
        base: String,
    ) -> Result<Arc<Session>, Response> {
        // Sessions that ended elsewhere (timeout, TEARDOWN from another
        // connection) no longer count, nor hold their camera.
        self.sessions.retain(|s| !s.is_ended());
        let cap = self.server.cfg.max_sessions_per_recorder;
        let full = |what: &'static str| {
            self.server
                .metrics
                .auth_failure("rtsp", AuthFailure::TooManySessions);
            static FULL: LogLimiter = LogLimiter::new(10);
            if let Some(suppressed) = FULL.allow() {
                info!(recorder = %rec.name, peer = %self.peer, cap = what, suppressed,
                    "SETUP refused: session cap reached");
            }
            Response::new(Status::NotEnoughBandwidth)
        };
        if self.sessions.len() >= MAX_SESSIONS_PER_CONNECTION {
            return Err(full("connection"));
        }
        if self.server.sessions.count_for(&rec.name) >= cap {
            return Err(full("recorder"));
        }
        let s = Arc::new(Session::new(
            rec.clone(),
            device.config.id.clone(),
            stream.name.clone(),
            stream.hub.clone(),
            stream.metrics.clone(),
            info,
            base,
            self.id,
            self.peer,
        ));
        // The count again, with the insert, under the table's lock.
        if self.server.sessions.insert_capped(s.clone(), cap).is_err() {
            return Err(full("recorder"));
        }
        self.sessions.push(s.clone());
        Ok(s)
    }

    fn session_header(&self, s: &Session) -> String {
        format!("{};timeout={}", s.id, self.server.cfg.session_timeout_secs)
    }

    /// The session named in the request, owned by this recorder.
    fn session_of(&self, req: &Request, rec: &Recorder) -> Result<Arc<Session>, Response> {
        let id = req
            .session_id()
            .ok_or_else(|| Response::new(Status::SessionNotFound))?;
        let s = self
            .server
            .sessions
            .get(id)
            .ok_or_else(|| Response::new(Status::SessionNotFound))?;
        if s.recorder.name != rec.name {
            return Err(Response::new(Status::SessionNotFound));
        }
        s.touch();
        Ok(s)
    }

    async fn play(&mut self, req: &Request, rec: &Recorder) -> Reply {
        let s = self.session_of(req, rec)?;
        let tracks = s.with_state(|st| st.tracks.clone());
        if tracks.iter().all(Option::is_none) {
            return Err(Response::new(Status::MethodNotValidInThisState));
        }
        let base = Response::new(Status::Ok)
            .header("Session", self.session_header(&s))
            .header("Range", "npt=0.000-");
        if s.with_state(|st| st.playing.is_some()) {
            // Already playing: acknowledge (a keepalive-style repeat).
            return Ok((base, None));
        }
        let is_tcp = tracks
            .iter()
            .flatten()
            .any(|t| matches!(t, TrackTransport::Tcp { .. }));
        if is_tcp && s.conn_id != self.id {
            // Interleaved media can only flow on the connection that set it up.
            return Err(Response::new(Status::MethodNotValidInThisState));
        }
        let udp = match (is_tcp, &self.server.udp) {
            (true, _) => None,
            (false, Some(u)) => Some(u.clone()),
            (false, None) => return Err(Response::new(Status::UnsupportedTransport)),
        };
        let stop = CancellationToken::new();
        let playing = if is_tcp {
            Playing::Tcp(self.tx.clone())
        } else {
            Playing::Udp(stop.clone())
        };
        // From here the PLAY is numbered: a TEARDOWN racing it from another
        // connection either came first (nothing starts) or stops this one.
        let ticket = match s.start_play(playing) {
            StartPlay::Started(t) => t,
            StartPlay::AlreadyPlaying => return Ok((base, None)),
            StartPlay::Ended => return Err(Response::new(Status::SessionNotFound)),
        };
        let subscriber = s.hub.subscribe();
        let recorder_metrics = s
            .metrics
            .session(&rec.name, if is_tcp { "tcp" } else { "udp" });
        let rtp_info = rtp_info(&s, &tracks, &subscriber);
        info!(recorder = %rec.name, device = %s.device, stream = %s.stream, session = %s.id,
            transport = if is_tcp { "tcp" } else { "udp" }, "PLAY");
        let resp = if rtp_info.is_empty() {
            base
        } else {
            base.header("RTP-Info", rtp_info)
        };
        if is_tcp {
            let channels = ChannelMap::new(
                tracks
                    .iter()
                    .map(|t| match t {
                        Some(TrackTransport::Tcp { rtp, rtcp }) => Some((*rtp, *rtcp)),
                        _ => None,
                    })
                    .collect(),
            );
            let play = TcpPlay {
                session_id: s.id.clone(),
                ticket,
                subscriber,
                channels,
                label: rec.name.to_string(),
                metrics: recorder_metrics,
            };
            return Ok((resp, Some(WriterMsg::Play(Box::new(play)))));
        }
        let Some(udp) = udp else {
            // Unreachable: `udp` is set for every non-TCP PLAY above.
            s.finish_play(&ticket);
            return Err(Response::new(Status::UnsupportedTransport));
        };
        let dest = tracks
            .iter()
            .map(|t| match t {
                Some(TrackTransport::Udp { rtp, rtcp }) => Some((*rtp, *rtcp)),
                _ => None,
            })
            .collect();
        // The task starts sending once the writer has sent this response.
        let (written, started) = tokio::sync::oneshot::channel();
        let server = self.server.clone();
        let id = s.id.clone();
        let play = udp::UdpPlay {
            udp,
            session: s,
            subscriber,
            dest,
            stop,
            ticket,
            started,
            metrics: recorder_metrics,
        };
        self.tracker.spawn(udp::play(play, move || {
            server.sessions.remove(&id);
        }));
        Ok((resp, Some(WriterMsg::Written(written))))
    }

    fn pause(&mut self, req: &Request, rec: &Recorder) -> Reply {
        let s = self.session_of(req, rec)?;
        s.stop();
        Ok((
            Response::new(Status::Ok).header("Session", self.session_header(&s)),
            None,
        ))
    }

    fn teardown(&mut self, req: &Request, rec: &Recorder) -> Reply {
        let s = self.session_of(req, rec)?;
        self.server.sessions.remove(&s.id);
        self.sessions.retain(|x| x.id != s.id);
        info!(recorder = %rec.name, device = %s.device, session = %s.id, "TEARDOWN");
        Ok((Response::new(Status::Ok), None))
    }

    fn keepalive(&mut self, req: &Request, rec: &Recorder) -> Reply {
        if req.session_id().is_some() {
            let s = self.session_of(req, rec)?;
            return Ok((
                Response::new(Status::Ok).header("Session", self.session_header(&s)),
                None,
            ));
        }
        Ok((Response::new(Status::Ok), None))
    }
}

/// A response plus what the writer should do after sending it; or an
/// error response.
type Reply = Result<(Response, Option<WriterMsg>), Response>;

/// `RTP-Info` for the tracks set up: each track's first queued packet's
/// sequence number and timestamp (RFC 2326 §12.33).
fn rtp_info(
    s: &Session,
    tracks: &[Option<TrackTransport>],
    subscriber: &crate::media::hub::Subscriber,
) -> String {
    let mut first: Vec<Option<(u16, u32)>> = vec![None; tracks.len()];
    for f in subscriber.peek() {
        if matches!(f.kind, FrameKind::Rtcp | FrameKind::End) {
            continue;
        }
        let t = usize::from(f.track);
        if t < first.len()
            && first[t].is_none()
            && let Some(start) = f.rtp
        {
            first[t] = Some((start.seq, start.rtptime));
        }
        if first
            .iter()
            .zip(tracks)
            .all(|(f, t)| f.is_some() || t.is_none())
        {
            break;
        }
    }
    let mut parts = Vec::new();
    for (i, t) in tracks.iter().enumerate() {
        if t.is_none() {
            continue;
        }
        let url = format!("{}trackID={i}", s.base_url);
        // Nothing queued for this track (e.g. metadata, sent only on
        // events): where its timeline stands now. Recorders such as retina
        // refuse a PLAY answer that leaves a track's rtptime out.
        parts.push(match first[i].or_else(|| subscriber.start_clock(i)) {
            Some((seq, ts)) => format!("url={url};seq={seq};rtptime={ts}"),
            None => format!("url={url}"),
        });
    }
    parts.join(",")
}

/// A stable SDP session id per stream name.
fn sdp_session_id(name: &str) -> u64 {
    // FNV-1a: stable across runs, no dependency.
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) >> 1
}
