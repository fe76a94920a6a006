//! The write side of a hub: maps a source's timestamps onto camgate's own
//! continuous RTP timeline, packetizes each frame once, and publishes it.
//!
//! One `Publisher` lives as long as its stream, across camera reconnects, so
//! SSRCs and sequence numbers never restart and a recorder's session simply
//! resumes at the next key frame after a camera flap.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use smallvec::SmallVec;
use tracing::warn;

use super::hub::{FrameKind, Hub, OutFrame, RtpStart, SourceState};
use super::{AudioCodec, SourceFrame, StreamInfo, Track, VideoCodec};
use crate::inspect::access::{Classifier, Picture};
use crate::inspect::facts;
use crate::inspect::monitor::{Event, Monitor, Shared};
use crate::inspect::sanitize::{self, Policy, Syntax};
use crate::metrics::StreamMetrics;
use crate::ratelimit::LogLimiter;
use crate::rtp::{self, TrackSender};

/// Why a frame was not published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Waiting for the first key frame of a source session.
    AwaitingKey,
    /// The frame's data is malformed (bad NAL lengths, oversized AU).
    Malformed,
    /// The track index is not in the stream description.
    UnknownTrack,
    /// A video access unit with no slice (only delimiters, SEI, filler).
    NoPicture,
    /// A leading picture of the key frame the session started at: it
    /// references pictures no recorder received.
    Leading,
}

/// What happened to a published frame (for counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub kind: FrameKind,
    pub bytes: usize,
}

struct TrackOut {
    track: Track,
    sender: TrackSender,
    /// (source pts, camgate RTP time) of the session's first frame.
    anchor: Option<(i64, u32)>,
    /// camgate RTP time of the last frame and when it was published.
    last: Option<(u32, Instant)>,
    /// Key frame decisions for a video track (from its NAL unit types).
    access: Option<Classifier>,
}

/// Inspection of the frames before packetizing (see `crate::inspect`).
struct Inspect {
    policy: Policy,
    monitor: Monitor,
    /// Event log lines for this stream (a flapping camera must not flood).
    log: LogLimiter,
}

/// See the module docs.
pub struct Publisher {
    hub: Hub,
    metrics: Arc<StreamMetrics>,
    max_payload: usize,
    cname: String,
    tracks: Vec<TrackOut>,
    info: Option<Arc<StreamInfo>>,
    awaiting_key: bool,
    /// The session started at a key frame whose leading pictures (if any)
    /// cannot be decoded: drop them until the first other picture.
    skip_leading: bool,
    inspect: Option<Inspect>,
    /// What the source offered (every track, relayed or not), as
    /// `media codec` strings, to notice tracks appearing and vanishing.
    offered: Option<Vec<String>>,
    pending_offered: Option<Vec<String>>,
}

impl Publisher {
    /// `cname` identifies the stream in RTCP (e.g. `camgate/<device>/<stream>`).
    pub fn new(hub: Hub, metrics: Arc<StreamMetrics>, max_payload: usize, cname: String) -> Self {
        Publisher {
            hub,
            metrics,
            max_payload,
            cname,
            tracks: Vec::new(),
            info: None,
            awaiting_key: true,
            skip_leading: false,
            inspect: Some(Inspect {
                policy: Policy::STRICT,
                monitor: Monitor::new(Arc::new(Shared::new(""))),
                log: LogLimiter::new(10),
            }),
            offered: None,
            pending_offered: None,
        }
    }

    /// Sets the inspection: `Some(policy)` sanitizes with it and reports
    /// measurements and events to `shared`; `None` turns inspection off
    /// (frames are packetized as the source delivered them).
    pub fn set_inspection(&mut self, policy: Option<Policy>, shared: Arc<Shared>) {
        self.inspect = policy.map(|policy| Inspect {
            policy,
            monitor: Monitor::new(shared),
            log: LogLimiter::new(10),
        });
    }

    /// The tracks the source offers this session (including ones camgate
    /// leaves out), e.g. `["video h264", "audio pcma", "application
    /// vnd.onvif.metadata"]`; call before [`Publisher::begin_session`].
    /// Without it, the relayed tracks are compared.
    pub fn set_offered(&mut self, offered: Vec<String>) {
        self.pending_offered = Some(offered);
    }

    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn metrics(&self) -> &Arc<StreamMetrics> {
        &self.metrics
    }

    /// Sets the source state (for DESCRIBE and status) and `stream_up`.
    pub fn set_state(&self, s: SourceState) {
        self.metrics.up.set(i64::from(s == SourceState::Live));
        self.hub.set_source_state(s);
    }

    /// Starts a source session with this description. If it is compatible
    /// with the current one, recorders carry on (same SSRCs, continuing
    /// sequence numbers and timestamps); otherwise current recorders are
    /// ended and the stream starts afresh.
    pub fn begin_session(&mut self, info: StreamInfo) {
        self.inspect_description(&info);
        let compatible = self.info.as_ref().is_some_and(|old| old.compatible(&info));
        if !compatible {
            if self.info.is_some() {
                self.hub.end_subscribers();
            }
            self.tracks = info
                .tracks
                .iter()
                .enumerate()
                .map(|(i, t)| TrackOut {
                    track: t.clone(),
                    sender: TrackSender::new(payload_type(t, i), (2 * i) as u8, self.max_payload),
                    anchor: None,
                    last: None,
                    access: classifier(t),
                })
                .collect();
        } else {
            for (t, new) in self.tracks.iter_mut().zip(&info.tracks) {
                t.track = new.clone();
                t.anchor = None;
                t.access = classifier(new);
            }
        }
        self.awaiting_key = info.video_track().is_some();
        let info = Arc::new(info);
        self.info = Some(info.clone());
        self.hub.set_info(info);
    }

    /// New video parameter sets seen mid-stream (in-band or by retina).
    pub fn update_video(&mut self, track: usize, codec: VideoCodec) {
        let Some(t) = self.tracks.get_mut(track) else {
            return;
        };
        if t.track == Track::Video(codec.clone()) {
            return;
        }
        if let (Some(i), Track::Video(old)) = (&self.inspect, &t.track)
            && let Some((event, detail)) = video_change(old, &codec)
        {
            report(i, &self.metrics, &self.cname, event, detail);
        }
        self.metrics.set_info(
            codec.name(),
            &facts::video(&codec).profile,
            &facts::video(&codec).resolution(),
        );
        t.access = Some(Classifier::new(&codec));
        t.track = Track::Video(codec);
        let info = StreamInfo {
            tracks: self.tracks.iter().map(|t| t.track.clone()).collect(),
        };
        let info = Arc::new(info);
        self.info = Some(info.clone());
        self.hub.set_info(info);
    }

    /// Packetizes and publishes one frame.
    pub fn push(&mut self, f: &SourceFrame) -> Result<Published, Skip> {
        let now = Instant::now();
        let Some(t) = self.tracks.get_mut(f.track) else {
            return Err(Skip::UnknownTrack);
        };
        let is_video = t.track.is_video();
        // Nothing before the session's first video key frame: a recorder
        // could not use it.
        if self.awaiting_key && !is_video {
            return Err(Skip::AwaitingKey);
        }
        let clock = t.track.clock_rate();
        let (src0, out0) = *t.anchor.get_or_insert_with(|| {
            let out0 = match t.last {
                // Continue the timeline: the gap in wall time since the last
                // frame of the previous session becomes a gap in RTP time.
                Some((ts, at)) => {
                    let gap = now.saturating_duration_since(at).as_secs_f64() * f64::from(clock);
                    ts.wrapping_add((gap as u32).max(1))
                }
                None => rand::random(),
            };
            (f.pts, out0)
        });
        let ts = out0.wrapping_add(f.pts.wrapping_sub(src0) as u32);
        // The frame's first packet carries the track's next sequence number:
        // kept with the frame so RTP-Info never parses packets back.
        let first_seq = t.sender.seq;
        let (kind, data) = match &t.track {
            Track::Video(codec) => {
                let orig = rtp::length_prefixed_nals(&f.data).ok_or(Skip::Malformed)?;
                let syntax = match codec {
                    VideoCodec::H264 { .. } => Syntax::H264,
                    VideoCodec::H265 { .. } => Syntax::H265,
                };
                let cleaned = self
                    .inspect
                    .as_ref()
                    .and_then(|i| sanitize::access_unit(syntax, i.policy, &orig));
                let rewritten: SmallVec<[&[u8]; 16]>;
                let nals: &[&[u8]] = match &cleaned {
                    None => &orig,
                    Some((units, stripped)) => {
                        for k in sanitize::StripKind::ALL {
                            let n = stripped.get(k);
                            if n > 0 {
                                self.metrics.stripped[k.index()].inc_by(n);
                            }
                        }
                        if let Some(i) = &self.inspect {
                            i.monitor.shared().add_stripped(stripped);
                        }
                        rewritten = units.iter().map(|c| &**c).collect();
                        &rewritten
                    }
                };
                // Key frames are decided from the NAL unit types relayed,
                // never from the depacketizer's guess (see inspect::access).
                let picture = match &mut t.access {
                    Some(c) => c.classify(nals),
                    None => Classifier::new(codec).classify(nals),
                };
                let kind = match picture {
                    Picture::None => return Err(Skip::NoPicture),
                    Picture::Key => FrameKind::Key,
                    _ if self.awaiting_key => return Err(Skip::AwaitingKey),
                    Picture::Leading if self.skip_leading => return Err(Skip::Leading),
                    Picture::Leading => FrameKind::Leading,
                    Picture::DecodableLeading => FrameKind::DecodableLeading,
                    Picture::Delta => FrameKind::Delta,
                };
                if kind == FrameKind::Key {
                    if self.awaiting_key {
                        self.awaiting_key = false;
                        self.skip_leading = true;
                    }
                } else if kind == FrameKind::Delta {
                    self.skip_leading = false;
                }
                let key = kind == FrameKind::Key;
                let mut w = t.sender.frame(f.data.len(), nals.len() + 3);
                match codec {
                    VideoCodec::H264 { sps, pps } => {
                        let params = key.then_some((&sps[..], &pps[..]));
                        rtp::h264::packetize(&mut w, ts, nals, params);
                    }
                    VideoCodec::H265 { vps, sps, pps } => {
                        let params = key.then_some((&vps[..], &sps[..], &pps[..]));
                        rtp::h265::packetize(&mut w, ts, nals, params);
                    }
                }
                if w.packets() == 0 {
                    return Err(Skip::Malformed);
                }
                (kind, w.finish())
            }
            Track::Audio(codec) => {
                let mut w = t.sender.frame(f.data.len(), 1);
                match codec {
                    AudioCodec::Aac { .. } => {
                        if !rtp::aac::packetize(&mut w, ts, &f.data) {
                            return Err(Skip::Malformed);
                        }
                    }
                    AudioCodec::Pcmu { channels, .. } | AudioCodec::Pcma { channels, .. } => {
                        if rtp::g711::packetize(&mut w, ts, &f.data, *channels) == 0 {
                            return Err(Skip::Malformed);
                        }
                    }
                }
                (FrameKind::Audio, w.finish())
            }
            Track::Metadata(_) => {
                let mut w = t.sender.frame(f.data.len(), 1);
                if rtp::metadata::packetize(&mut w, ts, &f.data) == 0 {
                    return Err(Skip::Malformed);
                }
                (FrameKind::Metadata, w.finish())
            }
        };
        t.last = Some((ts, now));
        let key = kind == FrameKind::Key;
        if let Some(i) = &mut self.inspect {
            let video = matches!(
                kind,
                FrameKind::Key
                    | FrameKind::Delta
                    | FrameKind::Leading
                    | FrameKind::DecodableLeading
            );
            let found = i
                .monitor
                .frame(f.track, video, key, f.pts, f.data.len(), now);
            if video && key {
                self.metrics
                    .gop_frames
                    .set(i64::from(i.monitor.shared().gop_frames()));
            }
            for (event, detail) in found {
                log_event(i, &self.metrics, &self.cname, event, &detail);
            }
        }
        let m = &self.metrics;
        m.received_bytes.inc_by(f.data.len() as u64);
        match kind {
            FrameKind::Key => m.frames_key.inc(),
            FrameKind::Audio => m.frames_audio.inc(),
            FrameKind::Metadata => m.frames_metadata.inc(),
            _ => m.frames_delta.inc(),
        };
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        m.last_frame.set(unix);
        let bytes = data.len();
        self.hub.publish_media(
            OutFrame {
                track: f.track as u8,
                kind,
                data,
                at: now,
                rtp: Some(RtpStart {
                    seq: first_seq,
                    rtptime: ts,
                }),
            },
            t.sender.seq,
            ts,
            clock,
        );
        Ok(Published { kind, bytes })
    }

    /// Publishes an RTCP sender report for every track that has sent media,
    /// mapping wall-clock now to the RTP time the track has reached.
    pub fn send_reports(&mut self) {
        let now = Instant::now();
        let wall = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let ntp = rtp::rtcp::ntp_from_unix(wall);
        for (i, t) in self.tracks.iter().enumerate() {
            let Some((ts, at)) = t.last else { continue };
            let elapsed = now.saturating_duration_since(at).as_secs_f64();
            let rtp_now = ts.wrapping_add((elapsed * f64::from(t.track.clock_rate())) as u32);
            let data = rtp::rtcp::sender_report(&t.sender, ntp, rtp_now, &self.cname);
            self.hub.publish(OutFrame {
                track: i as u8,
                kind: FrameKind::Rtcp,
                data,
                at: now,
                rtp: None,
            });
        }
    }

    /// The source session ended; the next frames will start a new one.
    pub fn end_session(&mut self) {
        self.hub.clear_cache();
        self.awaiting_key = true;
        for t in &mut self.tracks {
            t.anchor = None;
        }
    }

    /// Ends every recorder session (shutdown or stream removed).
    pub fn close(&mut self) {
        self.hub.end_subscribers();
    }
}

impl Publisher {
    /// Compares a new description with the current one: events for codec,
    /// resolution and parameter-set changes and for tracks that appeared or
    /// vanished; updates `camgate_stream_info`; restarts the monitor's clock.
    fn inspect_description(&mut self, info: &StreamInfo) {
        if let Some(v) = info.tracks.iter().find_map(|t| match t {
            Track::Video(v) => Some(v),
            Track::Audio(_) | Track::Metadata(_) => None,
        }) {
            let f = facts::video(v);
            self.metrics.set_info(v.name(), &f.profile, &f.resolution());
        }
        let offered = self
            .pending_offered
            .take()
            .unwrap_or_else(|| info.tracks.iter().map(describe_track).collect());
        let previous = self.offered.replace(offered.clone());
        let Some(i) = &mut self.inspect else {
            return;
        };
        i.monitor.new_session(info.tracks.len());
        if let Some(prev) = previous {
            for t in offered.iter().filter(|t| !prev.contains(t)) {
                report(i, &self.metrics, &self.cname, Event::TrackAdded, t.clone());
            }
            for t in prev.iter().filter(|t| !offered.contains(t)) {
                report(
                    i,
                    &self.metrics,
                    &self.cname,
                    Event::TrackRemoved,
                    t.clone(),
                );
            }
        }
        let Some(old) = &self.info else { return };
        for (a, b) in old.tracks.iter().zip(&info.tracks) {
            let change = match (a, b) {
                (Track::Video(a), Track::Video(b)) => video_change(a, b),
                (Track::Audio(a), Track::Audio(b)) if a != b => Some((
                    Event::CodecChange,
                    format!(
                        "audio {} {} Hz -> {} {} Hz",
                        a.name(),
                        a.sample_rate(),
                        b.name(),
                        b.sample_rate()
                    ),
                )),
                _ => None,
            };
            if let Some((event, detail)) = change {
                report(i, &self.metrics, &self.cname, event, detail);
            }
        }
    }
}

/// The key frame classifier of a video track.
fn classifier(t: &Track) -> Option<Classifier> {
    match t {
        Track::Video(v) => Some(Classifier::new(v)),
        Track::Audio(_) | Track::Metadata(_) => None,
    }
}

/// `video h264`, `audio aac 48000 Hz`.
fn describe_track(t: &Track) -> String {
    match t {
        Track::Video(v) => format!("video {}", v.name()),
        Track::Audio(a) => format!("audio {} {} Hz", a.name(), a.sample_rate()),
        Track::Metadata(m) => format!("application {}", m.encoding()),
    }
}

/// The event a change of video parameters is, if any.
fn video_change(old: &VideoCodec, new: &VideoCodec) -> Option<(Event, String)> {
    if old == new {
        return None;
    }
    if old.name() != new.name() {
        return Some((
            Event::CodecChange,
            format!("video {} -> {}", old.name(), new.name()),
        ));
    }
    let (a, b) = (facts::video(old), facts::video(new));
    if a.resolution() != b.resolution() {
        return Some((
            Event::ResolutionChange,
            format!("{} -> {}", a.resolution(), b.resolution()),
        ));
    }
    let detail = if a.profile != b.profile || a.level != b.level {
        format!("{} {} -> {} {}", a.profile, a.level, b.profile, b.level)
    } else {
        "new parameter sets".to_string()
    };
    Some((Event::ParameterSetChange, detail))
}

/// Records an event found outside the frame path, counts and logs it.
fn report(i: &Inspect, m: &StreamMetrics, cname: &str, event: Event, detail: String) {
    i.monitor.record(event, detail.clone());
    log_event(i, m, cname, event, &detail);
}

/// Counts an event and logs it, rate-limited per stream.
fn log_event(i: &Inspect, m: &StreamMetrics, cname: &str, event: Event, detail: &str) {
    m.events[event.index()].inc();
    if let Some(suppressed) = i.log.allow() {
        warn!(
            stream = cname,
            event = event.as_str(),
            detail,
            suppressed,
            "stream changed"
        );
    }
}

/// The RTP payload type camgate announces for track `i`: the static types
/// for 8 kHz mono G.711 (RFC 3551), dynamic 96 + i otherwise.
pub fn payload_type(t: &Track, i: usize) -> u8 {
    match t {
        Track::Audio(AudioCodec::Pcmu {
            sample_rate: 8000,
            channels: 1,
        }) => rtp::g711::PT_PCMU,
        Track::Audio(AudioCodec::Pcma {
            sample_rate: 8000,
            channels: 1,
        }) => rtp::g711::PT_PCMA,
        _ => 96 + (i as u8).min(31),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::hub::{HubLimits, Subscriber, SubscriberEnd};
    use crate::media::{SourceFrame, StreamInfo, Track, VideoCodec};
    use crate::rtp::framed_packets;
    use bytes::Bytes;
    use std::time::Duration;

    fn hub() -> Hub {
        Hub::new(HubLimits {
            queue_bytes: 1 << 20,
            max_lag: Duration::from_secs(100),
            gop_cache_max_bytes: 1 << 20,
        })
    }

    fn info(codec: &str) -> StreamInfo {
        let v = match codec {
            "h264" => VideoCodec::H264 {
                sps: Bytes::from_static(&[0x67, 0x42, 0, 0x1e]),
                pps: Bytes::from_static(&[0x68, 0xce]),
            },
            _ => VideoCodec::H265 {
                vps: Bytes::from_static(&[0x40, 1]),
                sps: Bytes::from_static(&[0x42, 1]),
                pps: Bytes::from_static(&[0x44, 1]),
            },
        };
        StreamInfo {
            tracks: vec![Track::Video(v)],
        }
    }

    fn frame(pts: i64, key: bool) -> SourceFrame {
        let nal: &[u8] = if key {
            &[0x65, 0x88, 0x80]
        } else {
            &[0x41, 0x9a]
        };
        let mut d = (nal.len() as u32).to_be_bytes().to_vec();
        d.extend_from_slice(nal);
        SourceFrame {
            track: 0,
            pts,
            key,
            data: Bytes::from(d),
        }
    }

    /// (ssrc, seq, ts) of every RTP packet the subscriber has.
    async fn packets(s: &mut Subscriber) -> Vec<(u32, u16, u32)> {
        let mut out = Vec::new();
        let mut v = Vec::new();
        s.next_batch(&mut v, usize::MAX).await.unwrap();
        for n in &v {
            for p in framed_packets(&n.frame().unwrap().data) {
                let b = p.packet;
                out.push((
                    u32::from_be_bytes(b[8..12].try_into().unwrap()),
                    u16::from_be_bytes([b[2], b[3]]),
                    u32::from_be_bytes(b[4..8].try_into().unwrap()),
                ));
            }
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn each_frame_carries_its_first_packets_seq_and_rtptime() {
        let h = hub();
        let mut s = h.subscribe();
        let mut p = publisher(&h);
        p.begin_session(info("h264"));
        p.push(&frame(1000, true)).unwrap();
        p.push(&frame(4600, false)).unwrap();
        p.end_session();
        p.begin_session(info("h264"));
        p.push(&frame(90, true)).unwrap();
        let mut v = Vec::new();
        s.next_batch(&mut v, usize::MAX).await.unwrap();
        assert_eq!(v.len(), 3);
        for n in &v {
            let f = n.frame().unwrap();
            let b = framed_packets(&f.data).next().unwrap().packet;
            let start = f.rtp.expect("media frames carry their RTP start");
            assert_eq!(start.seq, u16::from_be_bytes([b[2], b[3]]));
            assert_eq!(
                start.rtptime,
                u32::from_be_bytes(b[4..8].try_into().unwrap())
            );
        }
    }

    /// A publisher on `h` with the default test metrics and payload size.
    fn publisher(h: &Hub) -> Publisher {
        Publisher::new(
            h.clone(),
            crate::metrics::Metrics::new().stream("d", "s"),
            1400,
            "t".into(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_key_then_continues_across_sessions() {
        let h = hub();
        let mut p = publisher(&h);
        p.begin_session(info("h264"));
        assert_eq!(p.push(&frame(0, false)), Err(Skip::AwaitingKey));
        p.push(&frame(1000, true)).unwrap();
        p.push(&frame(4600, false)).unwrap();
        let mut s = h.subscribe();
        let first = packets(&mut s).await;
        // Key frame: SPS, PPS, IDR; then the delta frame.
        assert_eq!(first.len(), 4);
        let (ssrc, seq0, ts0) = first[0];
        assert_eq!(first[3].2.wrapping_sub(ts0), 3600);

        // The camera reconnects 2 s later; its clock restarts at 0.
        p.end_session();
        tokio::time::advance(Duration::from_secs(2)).await;
        p.begin_session(info("h264"));
        assert_eq!(p.push(&frame(0, false)), Err(Skip::AwaitingKey));
        p.push(&frame(90, true)).unwrap();
        let after = packets(&mut s).await;
        assert_eq!(after[0].0, ssrc, "same SSRC");
        assert_eq!(after[0].1, seq0.wrapping_add(4), "sequence continues");
        let gap = after[0].2.wrapping_sub(first[3].2);
        assert!(
            (179_000..=181_000).contains(&gap),
            "timestamps jump by the 2 s away: {gap}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn incompatible_session_ends_recorders() {
        let h = hub();
        let mut p = publisher(&h);
        p.begin_session(info("h264"));
        p.push(&frame(0, true)).unwrap();
        let mut s = h.subscribe();
        packets(&mut s).await;
        p.end_session();
        p.begin_session(info("h265"));
        let mut v = Vec::new();
        assert_eq!(
            s.next_batch(&mut v, usize::MAX).await,
            Err(SubscriberEnd::StreamEnded)
        );
        assert!(matches!(
            &h.info().unwrap().tracks[0],
            Track::Video(VideoCodec::H265 { .. })
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn malformed_frames_are_skipped() {
        let h = hub();
        let mut p = publisher(&h);
        p.begin_session(info("h264"));
        let bad = SourceFrame {
            track: 0,
            pts: 0,
            key: true,
            data: Bytes::from_static(&[0, 0, 0, 9, 1]),
        };
        assert_eq!(p.push(&bad), Err(Skip::Malformed));
        let only_sps = SourceFrame {
            track: 0,
            pts: 0,
            key: false,
            data: Bytes::from_static(&[0, 0, 0, 1, 0x67]),
        };
        p.push(&frame(0, true)).unwrap();
        assert_eq!(p.push(&only_sps), Err(Skip::NoPicture));
        let wrong_track = SourceFrame {
            track: 5,
            ..frame(0, true)
        };
        assert_eq!(p.push(&wrong_track), Err(Skip::UnknownTrack));
    }

    fn au(nals: &[&[u8]], key_claimed: bool) -> SourceFrame {
        let mut d = Vec::new();
        for n in nals {
            d.extend_from_slice(&(n.len() as u32).to_be_bytes());
            d.extend_from_slice(n);
        }
        SourceFrame {
            track: 0,
            pts: 0,
            key: key_claimed,
            data: Bytes::from(d),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn key_frames_come_from_nal_types_not_the_source_claim() {
        let h = hub();
        let mut p = publisher(&h);
        p.begin_session(info("h265"));
        // An access unit delimiter the depacketizer called a key frame: no
        // picture, nothing published, no parameter sets amplified.
        let aud: &[u8] = &[35 << 1, 1, 0x50];
        assert_eq!(p.push(&au(&[aud], true)), Err(Skip::NoPicture));
        // A trailing picture claimed as key is still not a start.
        let trail: &[u8] = &[1 << 1, 1, 0xaf];
        assert_eq!(p.push(&au(&[trail], true)), Err(Skip::AwaitingKey));
        // A CRA the depacketizer did not call key is one; its RASL pictures
        // are dropped (nobody has what they reference), later ones kept.
        let cra: &[u8] = &[21 << 1, 1, 0xaf];
        let rasl: &[u8] = &[8 << 1, 1, 0xaf];
        let published = p.push(&au(&[aud, cra], false)).unwrap();
        assert_eq!(published.kind, FrameKind::Key);
        assert_eq!(p.push(&au(&[rasl], false)), Err(Skip::Leading));
        // A RADL picture between them is decodable: relayed, and the RASL
        // after it still dropped.
        let radl: &[u8] = &[7 << 1, 1, 0xaf];
        assert_eq!(
            p.push(&au(&[radl], false)).unwrap().kind,
            FrameKind::DecodableLeading
        );
        assert_eq!(p.push(&au(&[rasl], false)), Err(Skip::Leading));
        assert_eq!(p.push(&au(&[trail], false)).unwrap().kind, FrameKind::Delta);
        p.push(&au(&[cra], false)).unwrap();
        // Past the session's first key frame, RASL pictures are relayed: a
        // recorder that joined earlier decodes them.
        assert_eq!(
            p.push(&au(&[rasl], false)).unwrap().kind,
            FrameKind::Leading
        );
    }
}
