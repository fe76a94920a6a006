//! A real camera, pulled with retina over RTSP: DESCRIBE, SETUP of the
//! tracks camgate relays, PLAY, then demuxed frames into the publisher.
//!
//! Retina has no timeouts of its own on connect and requests, so every step
//! is wrapped in one; its keepalives run only while the session is polled, so
//! this loop never stops reading, whether or not a recorder watches.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use retina::client::{Credentials, Demuxed, PlayOptions, Session, SessionOptions, SetupOptions};
use retina::codec::{CodecItem, FrameFormat, ParametersRef, VideoParametersCodec};
use tracing::{debug, warn};

use super::{ErrorKind, SENDER_REPORT_INTERVAL, SourceError, StreamSource};
use crate::config::{AudioPolicy, CameraConfig};
use crate::media::hub::SourceState;
use crate::media::{AudioCodec, MetadataCodec, SourceFrame, StreamInfo, Track, VideoCodec};

/// A track camgate relays: retina's stream index and what it becomes.
#[derive(Debug, Clone)]
struct Chosen {
    retina_index: usize,
    /// `None` for video whose parameter sets are not known yet.
    track: Option<Track>,
}

/// Runs one camera session until it fails or `idle` resolves: the RTSP
/// steps toward the camera ([`open`]), then the frames into the publisher
/// ([`relay`]).
pub async fn run_session(
    src: &mut StreamSource,
    cam: &CameraConfig,
    idle: impl Future<Output = ()>,
) -> Result<(), SourceError> {
    let url = cam.url(&src.stream.path).map_err(|e| {
        SourceError::new(
            ErrorKind::Protocol,
            format!("bad camera URL for path {}: {e}", src.stream.path),
        )
    })?;
    let opened = open(src, cam, &url).await?;
    relay(src, opened, &url, idle).await
}

/// A playing session and how its streams map to camgate's tracks.
struct Opened {
    demuxed: Demuxed,
    tracks: TrackMap,
}

/// The RTSP steps toward the camera, each within the connect timeout and
/// the memory guard: the camera's challenge checked before retina gets any
/// credentials, DESCRIBE, the choice of tracks, SETUP of each, PLAY.
async fn open(
    src: &mut StreamSource,
    cam: &CameraConfig,
    url: &url::Url,
) -> Result<Opened, SourceError> {
    let step = Duration::from_secs(src.camera.connect_timeout_secs);
    // Cameras with few session slots (and live555's stale-session bug) need
    // earlier sessions torn down before a new one starts.
    let stale = src.session_group.stale_sessions();
    let _ = tokio::time::timeout(step, src.session_group.await_stale_sessions(&stale)).await;

    let q = &cam.quirks;
    let mut opts = SessionOptions::default()
        .session_group(src.session_group.clone())
        .teardown(q.teardown)
        .session_id(q.session_id)
        .unassigned_channel_data(q.unassigned_channel_data)
        .user_agent(format!("camgate/{}", env!("CARGO_PKG_VERSION")));
    // Retina answers any challenge, Basic too: it gets the password only
    // once the camera's own challenge offers Digest (or the device allows
    // Basic), and none when the camera asks for no authentication.
    if let Some((user, pw)) = super::challenge::vetted_creds(cam, url, step).await? {
        opts = opts.creds(Some(Credentials {
            username: user.clone(),
            password: pw.expose().to_string(),
        }));
    }
    let mut session = timed(
        step,
        "DESCRIBE",
        &src.memory,
        Session::describe(url.clone(), opts),
    )
    .await?;
    src.identity.sdp(&src.stream.name, session.sdp());
    // Every track the camera offers, relayed or not, for change detection.
    src.publisher.set_offered(
        session
            .streams()
            .iter()
            .map(|s| format!("{} {}", s.media(), s.encoding_name()))
            .collect(),
    );

    let chosen = choose_tracks(
        &session,
        src.device.audio,
        src.device.metadata_pass,
        &src.device.id.to_string(),
        &src.stream.name,
        !src.warned_tracks,
    );
    // Warn about left-out tracks once per stream, not at every reconnect.
    src.warned_tracks = true;
    if !chosen
        .iter()
        .any(|c| matches!(c.track, None | Some(Track::Video(_))))
    {
        return Err(SourceError::new(
            ErrorKind::Protocol,
            format!("{url}: no H.264 or H.265 video track"),
        ));
    }
    for c in &chosen {
        let opts = SetupOptions::default()
            .transport(cam.transport.clone())
            .frame_format(FrameFormat::MP4);
        timed(
            step,
            "SETUP",
            &src.memory,
            session.setup(c.retina_index, opts),
        )
        .await?;
    }
    let play = PlayOptions::default()
        .initial_timestamp(q.initial_timestamp)
        .initial_seq(q.initial_seq)
        .unknown_rtcp_ssrc(q.unknown_rtcp_ssrc);
    let playing = timed(step, "PLAY", &src.memory, session.play(play)).await?;
    let demuxed = playing.demuxed().map_err(|e| classify(&e, "demux"))?;
    let tracks = TrackMap::new(&chosen, demuxed.streams().len());
    Ok(Opened { demuxed, tracks })
}

/// Which of retina's streams camgate relays, as which track, and whether
/// the publisher's session has begun (it begins once every relayed video
/// track has parameter sets camgate accepts).
struct TrackMap {
    /// retina stream index -> camgate track index.
    index_of: Vec<Option<usize>>,
    /// `None` for a video track whose parameter sets are not known yet.
    tracks: Vec<Option<Track>>,
    begun: bool,
    param_changes: ParameterChanges,
}

impl TrackMap {
    fn new(chosen: &[Chosen], streams: usize) -> TrackMap {
        let mut index_of = vec![None; streams];
        for (i, c) in chosen.iter().enumerate() {
            index_of[c.retina_index] = Some(i);
        }
        TrackMap {
            index_of,
            tracks: chosen.iter().map(|c| c.track.clone()).collect(),
            begun: false,
            param_changes: ParameterChanges::default(),
        }
    }

    /// camgate's track for a retina stream, if relayed.
    fn track_of(&self, stream_id: usize) -> Option<usize> {
        self.index_of.get(stream_id).copied().flatten()
    }

    /// Every relayed track is usable (video parameter sets known).
    fn complete(&self) -> bool {
        self.tracks.iter().all(Option::is_some)
    }

    /// Begins the publisher's session once every track is known; whether it
    /// has begun.
    fn begin_when_complete(&mut self, src: &mut StreamSource) -> bool {
        if !self.begun && self.complete() {
            let tracks = self.tracks.iter().flatten().cloned().collect();
            src.publisher.begin_session(StreamInfo { tracks });
            src.publisher.set_state(SourceState::Live);
            self.begun = true;
        }
        self.begun
    }

    /// Takes in a video frame of relayed track `ti`: its new parameter sets
    /// (checked, applied, counted against churn) and its loss.
    fn video(
        &mut self,
        src: &mut StreamSource,
        demuxed: &Demuxed,
        ti: usize,
        f: retina::codec::VideoFrame,
        url: &url::Url,
    ) -> Result<SourceFrame, SourceError> {
        let sid = f.stream_id();
        let offered = (f.has_new_parameters() || self.tracks[ti].is_none())
            .then(|| demuxed.streams()[sid].parameters().map(video_codec))
            .flatten();
        match offered {
            Some(Some(codec)) => {
                if self.begun {
                    self.param_changes.note(url)?;
                    src.publisher.update_video(ti, codec.clone());
                }
                self.tracks[ti] = Some(Track::Video(codec));
            }
            // Relaying on under the old parameter sets would send
            // recorders pictures they cannot decode.
            Some(None) if self.begun => {
                return Err(SourceError::new(
                    ErrorKind::Protocol,
                    format!("{url} changed to video parameter sets camgate refuses"),
                ));
            }
            _ => {}
        }
        if f.loss() > 0 {
            src.publisher
                .metrics()
                .lost_packets
                .inc_by(u64::from(f.loss()));
        }
        Ok(SourceFrame {
            track: ti,
            pts: f.timestamp().timestamp(),
            key: f.is_random_access_point(),
            data: Bytes::from(f.into_data()),
        })
    }
}

/// Relays the playing session's frames into the publisher until the camera
/// fails, stalls, ends the stream, or `idle` resolves.
async fn relay(
    src: &mut StreamSource,
    opened: Opened,
    url: &url::Url,
    idle: impl Future<Output = ()>,
) -> Result<(), SourceError> {
    let read_timeout = Duration::from_secs(src.camera.read_timeout_secs);
    let Opened {
        mut demuxed,
        mut tracks,
    } = opened;
    tracks.begin_when_complete(src);

    let mut reports = tokio::time::interval(SENDER_REPORT_INTERVAL);
    reports.tick().await;
    tokio::pin!(idle);
    // Video progress: only a video frame moves this deadline. RTCP reports,
    // audio, metadata and keepalive answers keep a session looking alive
    // while the encoder is hung, or while a hostile camera feeds one access
    // unit that never ends; either way the session is ended and the stream
    // reconnects with backoff.
    let no_video = tokio::time::sleep(read_timeout);
    tokio::pin!(no_video);
    // The memory guard's verdict is read at its own pace (see
    // `super::memory`): over the limit, a session whose video frames stop
    // completing is what holds the memory. Any complete frame counts (one
    // waiting for parameter sets too: retina holds nothing for it), and a
    // camera that usually leaves long gaps between frames is given them.
    let mut frames = super::memory::Cadence::new();
    let mut pressure = tokio::time::interval(super::memory::SAMPLE);
    pressure.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let item = tokio::select! {
            r = tokio::time::timeout(read_timeout, demuxed.next()) => r,
            _ = reports.tick() => {
                if tracks.begun {
                    src.publisher.send_reports();
                }
                continue;
            }
            _ = pressure.tick() => {
                let stalled = frames.since_last();
                if src.memory.sheds(stalled, frames.usual_gap()) {
                    return Err(SourceError::new(
                        ErrorKind::Memory,
                        format!(
                            "camgate over its memory limit ({} MiB, {} MiB resident) and no video frame from {url} for {} ms",
                            src.memory.limit() >> 20,
                            src.memory.rss() >> 20,
                            stalled.as_millis()
                        ),
                    ));
                }
                continue;
            }
            _ = &mut no_video => {
                return Err(SourceError::new(
                    ErrorKind::Timeout,
                    format!("no video frame from {url} for {}s", read_timeout.as_secs()),
                ));
            }
            _ = &mut idle => return Ok(()),
        };
        let item = match item {
            Err(_) => {
                return Err(SourceError::new(
                    ErrorKind::Timeout,
                    format!("no data from {url} for {}s", read_timeout.as_secs()),
                ));
            }
            Ok(None) => {
                return Err(SourceError::new(
                    ErrorKind::Closed,
                    format!("{url} ended the stream"),
                ));
            }
            Ok(Some(Err(e))) => return Err(classify(&e, "stream")),
            Ok(Some(Ok(item))) => item,
        };
        let (stream_id, frame) = match item {
            CodecItem::VideoFrame(f) => {
                let sid = f.stream_id();
                let Some(ti) = tracks.track_of(sid) else {
                    continue;
                };
                frames.frame();
                let frame = tracks.video(src, &demuxed, ti, f, url)?;
                // Progress is a frame camgate can relay: frames while the
                // parameter sets are missing or refused do not count.
                if tracks.complete() {
                    no_video
                        .as_mut()
                        .reset(tokio::time::Instant::now() + read_timeout);
                }
                (sid, frame)
            }
            CodecItem::AudioFrame(f) => {
                let Some(out) = relayed(&tracks, f.stream_id(), f.timestamp(), f.data()) else {
                    continue;
                };
                if f.loss() > 0 {
                    src.publisher
                        .metrics()
                        .lost_packets
                        .inc_by(u64::from(f.loss()));
                }
                out
            }
            // RTCP BYE (RFC 3550 §6.6) on a relayed track: the camera ended
            // the session (a media server at the end of its file does this
            // and then sends nothing while keeping the connection).
            CodecItem::Rtcp(r) if tracks.track_of(r.stream_id()).is_some() && is_bye(&r) => {
                return Err(SourceError::new(
                    ErrorKind::Closed,
                    format!("{url} ended the stream (RTCP BYE)"),
                ));
            }
            CodecItem::MessageFrame(f) => {
                match relayed(&tracks, f.stream_id(), f.timestamp(), f.data()) {
                    Some(out) => out,
                    None => continue,
                }
            }
            _ => continue,
        };
        if !tracks.begin_when_complete(src) {
            debug!(device = %src.device.id, stream = stream_id, "waiting for parameter sets");
            continue;
        }
        if let Err(skip) = src.publisher.push(&frame) {
            debug!(device = %src.device.id, stream = %src.stream.name, ?skip, "frame not relayed");
        }
    }
}

/// An audio or metadata frame on a relayed track, as camgate's frame
/// (`None` for a track camgate left out).
fn relayed(
    tracks: &TrackMap,
    stream_id: usize,
    timestamp: retina::Timestamp,
    data: &[u8],
) -> Option<(usize, SourceFrame)> {
    let track = tracks.track_of(stream_id)?;
    Some((
        stream_id,
        SourceFrame {
            track,
            pts: timestamp.timestamp(),
            key: false,
            data: Bytes::copy_from_slice(data),
        },
    ))
}

/// Whether a compound RTCP packet holds a BYE (packet type 203).
fn is_bye(r: &retina::rtcp::ReceivedCompoundPacket) -> bool {
    r.pkts().any(|p| p.payload_type() == 203)
}

/// Parameter-set changes a session may make per [`PARAMETER_WINDOW`]
/// (twice a second: far above an encoder's GOP-rate changes, far below a
/// camera changing them at every frame).
const MAX_PARAMETER_CHANGES: usize = 120;
const PARAMETER_WINDOW: Duration = Duration::from_secs(60);

/// Parameter-set changes in the last [`PARAMETER_WINDOW`] of a session.
#[derive(Debug, Default)]
struct ParameterChanges(std::collections::VecDeque<tokio::time::Instant>);

impl ParameterChanges {
    /// Notes a change; a camera changing its parameter sets all the time is
    /// broken or hostile (each change is applied, reported and sent before
    /// every key frame): past [`MAX_PARAMETER_CHANGES`] the session ends.
    fn note(&mut self, url: &url::Url) -> Result<(), SourceError> {
        let now = tokio::time::Instant::now();
        self.0.push_back(now);
        while self
            .0
            .front()
            .is_some_and(|t| now.duration_since(*t) > PARAMETER_WINDOW)
        {
            self.0.pop_front();
        }
        if self.0.len() > MAX_PARAMETER_CHANGES {
            return Err(SourceError::new(
                ErrorKind::Protocol,
                format!(
                    "{url} changed its parameter sets more than {MAX_PARAMETER_CHANGES} times in {}s",
                    PARAMETER_WINDOW.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

/// Left-out tracks warned about per stream; more get one line in all.
const MAX_TRACK_WARNINGS: usize = 4;

/// Picks the first H.264/H.265 video track and, with `audio = "pass"`, the
/// first AAC or G.711 audio track. Everything else is left out, with a
/// warning naming it (`warn`; a debug line on later reconnects).
fn choose_tracks(
    session: &Session<retina::client::Described>,
    audio: AudioPolicy,
    metadata_pass: bool,
    device: &str,
    stream: &str,
    warn: bool,
) -> Vec<Chosen> {
    // An SDP can list thousands of tracks: warn about the first few, escaped.
    let mut warned = 0usize;
    let mut left_out = |i: usize, media: &str, enc: &str, why: &str| {
        let media = crate::telemetry::escape(media, 32);
        let enc = crate::telemetry::escape(enc, 32);
        warned += 1;
        if warn && warned == MAX_TRACK_WARNINGS + 1 {
            warn!(device, stream, "leaving out more tracks (not logged)");
        }
        if warn && warned <= MAX_TRACK_WARNINGS {
            warn!(
                device,
                stream,
                track = i,
                media,
                encoding = %enc,
                "leaving out track: {why}"
            );
        } else {
            debug!(
                device,
                stream,
                track = i,
                media,
                encoding = %enc,
                "leaving out track: {why}"
            );
        }
    };
    let mut out: Vec<Chosen> = Vec::new();
    let mut have_video = false;
    let mut have_audio = false;
    let mut have_metadata = false;
    for (i, s) in session.streams().iter().enumerate() {
        let media = s.media();
        let enc = s.encoding_name();
        match (media, enc) {
            ("video", "h264" | "h265") if !have_video => {
                have_video = true;
                let track = s.parameters().and_then(video_codec).map(Track::Video);
                // Video first, so it is track 0 in camgate's SDP.
                out.insert(
                    0,
                    Chosen {
                        retina_index: i,
                        track,
                    },
                );
            }
            ("audio", _) if audio == AudioPolicy::Strip => {
                debug!(
                    device,
                    stream,
                    track = i,
                    encoding = enc,
                    "audio stripped by policy"
                );
            }
            ("audio", "mpeg4-generic" | "pcmu" | "pcma") if !have_audio => match audio_codec(s) {
                Some(a) => {
                    have_audio = true;
                    out.push(Chosen {
                        retina_index: i,
                        track: Some(Track::Audio(a)),
                    });
                }
                None => left_out(i, media, enc, "audio parameters unusable"),
            },
            ("application", _) if !metadata_pass => {
                debug!(
                    device,
                    stream,
                    track = i,
                    encoding = enc,
                    "metadata stripped by policy"
                );
            }
            ("application", _) if !have_metadata && MetadataCodec::from_encoding(enc).is_some() => {
                have_metadata = true;
                out.push(Chosen {
                    retina_index: i,
                    track: MetadataCodec::from_encoding(enc).map(Track::Metadata),
                });
            }
            _ => left_out(
                i,
                media,
                enc,
                "codec not relayed (video H.264/H.265, audio AAC/G.711, ONVIF metadata)",
            ),
        }
    }
    out
}

/// DESCRIBE only (no SETUP/PLAY), for the inventory when no camgate runs:
/// the camera's SDP and the tracks camgate would relay from it under the
/// device's audio and metadata policies.
pub async fn describe_only(
    device: &crate::config::Device,
    cam: &CameraConfig,
    path: &str,
    timeout: Duration,
) -> Result<(Vec<u8>, Vec<Track>), String> {
    let url = cam
        .url(path)
        .map_err(|e| format!("bad camera URL for {path}: {e}"))?;
    let mut opts = SessionOptions::default()
        .teardown(retina::client::TeardownPolicy::Never)
        .user_agent(format!("camgate/{}", env!("CARGO_PKG_VERSION")));
    // As in run_session: the password only for a Digest challenge.
    if let Some((user, pw)) = super::challenge::vetted_creds(cam, &url, timeout)
        .await
        .map_err(|e| format!("DESCRIBE: {e}"))?
    {
        opts = opts.creds(Some(Credentials {
            username: user.clone(),
            password: pw.expose().to_string(),
        }));
    }
    let session = tokio::time::timeout(timeout, Session::describe(url, opts))
        .await
        .map_err(|_| "DESCRIBE timed out".to_string())?
        .map_err(|e| format!("DESCRIBE: {}", classify(&e, "DESCRIBE").kind.as_str()))?;
    let tracks = choose_tracks(
        &session,
        device.audio,
        device.metadata_pass,
        &device.id.to_string(),
        path,
        false,
    )
    .into_iter()
    .filter_map(|c| c.track)
    .collect();
    Ok((session.sdp().to_vec(), tracks))
}

/// The stream's video parameters, if retina has them and they pass
/// [`crate::inspect::params::clean`]: they go into camgate's SDP and before
/// every key frame for every recorder, so a refused set is logged and the
/// stream keeps waiting for parameters (`None`), as if it had none.
fn video_codec(p: ParametersRef<'_>) -> Option<VideoCodec> {
    let ParametersRef::Video(v) = p else {
        return None;
    };
    let codec = match v.codec_params() {
        VideoParametersCodec::H264 { sps, pps } => VideoCodec::H264 {
            sps: sps.clone(),
            pps: pps.clone(),
        },
        VideoParametersCodec::H265 { vps, sps, pps } => VideoCodec::H265 {
            vps: vps.clone(),
            sps: sps.clone(),
            pps: pps.clone(),
        },
        _ => return None,
    };
    match crate::inspect::params::clean(&codec) {
        Ok(c) => {
            if c.trimmed_bytes > 0 {
                static TRIMMED: crate::ratelimit::LogLimiter =
                    crate::ratelimit::LogLimiter::new(10);
                if let Some(suppressed) = TRIMMED.allow() {
                    debug!(
                        bytes = c.trimmed_bytes,
                        suppressed, "trailing bytes removed from the camera's parameter sets"
                    );
                }
            }
            Some(c.codec)
        }
        Err(e) => {
            // Called for every frame until parameters pass: rate-limited.
            static REFUSED: crate::ratelimit::LogLimiter = crate::ratelimit::LogLimiter::new(10);
            if let Some(suppressed) = REFUSED.allow() {
                warn!(err = %e, suppressed, "camera parameter sets refused; waiting for others");
            }
            None
        }
    }
}

fn audio_codec(s: &retina::client::Stream) -> Option<AudioCodec> {
    let channels = s.channels().map_or(1, |c| c.get());
    match s.encoding_name() {
        "pcmu" => Some(AudioCodec::Pcmu {
            sample_rate: s.clock_rate_hz(),
            channels,
        }),
        "pcma" => Some(AudioCodec::Pcma {
            sample_rate: s.clock_rate_hz(),
            channels,
        }),
        "mpeg4-generic" => {
            let ParametersRef::Audio(a) = s.parameters()? else {
                return None;
            };
            let config = a.extra_data();
            if config.is_empty() {
                return None;
            }
            Some(AudioCodec::Aac {
                config: Bytes::copy_from_slice(config),
                sample_rate: a.clock_rate(),
                channels: a.channels().get(),
            })
        }
        _ => None,
    }
}

/// Runs one RTSP step with a timeout. A step delivers no video: while
/// camgate is over its memory limit, one that has taken
/// [`super::memory::STALLED`] ends (a camera streaming an endless answer
/// into retina's parser).
async fn timed<T>(
    limit: Duration,
    step: &str,
    memory: &super::memory::Guard,
    fut: impl Future<Output = Result<T, retina::Error>>,
) -> Result<T, SourceError> {
    let started = tokio::time::Instant::now();
    let deadline = tokio::time::sleep(limit);
    let mut pressure = tokio::time::interval(super::memory::SAMPLE);
    tokio::pin!(fut, deadline);
    loop {
        tokio::select! {
            r = &mut fut => return r.map_err(|e| classify(&e, step)),
            _ = &mut deadline => {
                return Err(SourceError::new(
                    ErrorKind::Timeout,
                    format!("{step} took over {}s", limit.as_secs()),
                ));
            }
            _ = pressure.tick() => {
                if memory.sheds(started.elapsed(), Duration::ZERO) {
                    return Err(SourceError::new(
                        ErrorKind::Memory,
                        format!(
                            "camgate over its memory limit ({} MiB resident) during {step}",
                            memory.rss() >> 20
                        ),
                    ));
                }
            }
        }
    }
}

/// Maps a retina error onto the bounded [`ErrorKind`].
fn classify(e: &retina::Error, step: &str) -> SourceError {
    let kind = match e.status_code() {
        Some(401 | 403) => ErrorKind::Auth,
        Some(_) => ErrorKind::Protocol,
        None => {
            let io = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>());
            match io.map(|io| io.kind()) {
                Some(
                    std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::HostUnreachable
                    | std::io::ErrorKind::NetworkUnreachable
                    | std::io::ErrorKind::AddrNotAvailable,
                ) => ErrorKind::Refused,
                Some(std::io::ErrorKind::TimedOut) => ErrorKind::Timeout,
                Some(_) => ErrorKind::Closed,
                None => {
                    let text = e.to_string();
                    if text.starts_with("Unable to connect") {
                        ErrorKind::Refused
                    } else if text.starts_with("Timeout") {
                        ErrorKind::Timeout
                    } else {
                        ErrorKind::Protocol
                    }
                }
            }
        }
    };
    // retina's messages carry connection context, never credentials.
    // They may quote what the camera sent: one line, bounded, escaped.
    let text = e.to_string();
    let first_line = crate::telemetry::escape(text.lines().next().unwrap_or_default(), 300);
    SourceError::new(kind, format!("{step}: {first_line}"))
}
