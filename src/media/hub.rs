//! Per-stream fan-out of RTP: a singly linked list of frames, each already
//! packetized once as RTSP-interleaved RTP (or an RTCP sender report), shared
//! by every recorder session, plus the GOP cache.
//!
//! This is an RTP hub, not a protocol-neutral one: the publisher
//! (`media::publisher`) gives every track camgate's own SSRC, sequence
//! numbers and RTP clock, and packetizes each frame once in the framing the
//! TCP writer sends as is (`crate::rtp`: a `$` header before each packet);
//! the UDP sender strips the 4-byte header. Each frame carries its first
//! packet's `(seq, rtptime)` ([`OutFrame::rtp`]) so the RTSP server answers
//! PLAY's `RTP-Info` without reading packets back.
//!
//! The publisher appends frames at the tail; each [`Subscriber`] holds a
//! pointer to the last frame it consumed and follows `next` links, without a
//! lock. A frame is freed when the slowest subscriber has passed it, so
//! memory is bounded by the recorders' byte limit and the GOP cache, never by
//! a fixed ring. The hub keeps the node just before the latest key frame, so a
//! new subscriber starts at that key frame at once. Key frames are what
//! `inspect::access` decided from the NAL unit types (IRAP pictures), and a
//! subscriber that starts at one skips the leading pictures that depend on
//! what came before it ([`FrameKind::Leading`]).
//!
//! Slow subscribers never slow the publisher: one that falls more than its
//! byte limit behind jumps ahead to the latest key frame (the skipped frames
//! are counted), and one whose oldest unsent frame is too old is ended.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::StreamInfo;

/// What a frame in the hub is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A video frame a decoder can start from (parameter sets included).
    Key,
    /// Any other video frame.
    Delta,
    /// A leading picture of the latest key frame that references pictures
    /// before it (an H.265 RASL picture, or an H.264 open-GOP B frame): a
    /// recorder that started at that key frame skips it.
    Leading,
    /// A leading picture every recorder can decode (H.265 RADL): sent to
    /// all, and more [`FrameKind::Leading`] ones may follow it.
    DecodableLeading,
    Audio,
    /// An ONVIF metadata document.
    Metadata,
    /// An RTCP sender report.
    Rtcp,
    /// The stream ended or changed incompatibly: sessions must close.
    End,
}

/// A frame packetized once for every recorder.
#[derive(Debug, Clone)]
pub struct OutFrame {
    pub track: u8,
    pub kind: FrameKind,
    /// The frame's packets, each preceded by its interleaved header (see
    /// `crate::rtp`). Empty for [`FrameKind::End`].
    pub data: Bytes,
    /// When camgate received the frame.
    pub at: Instant,
    /// Where the frame's first RTP packet stands on its track's timeline;
    /// `None` for RTCP and [`FrameKind::End`].
    pub rtp: Option<RtpStart>,
}

/// The sequence number and RTP timestamp of a frame's first packet: what
/// PLAY's `RTP-Info` announces for the frame a recorder starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpStart {
    pub seq: u16,
    pub rtptime: u32,
}

/// One link of the frame list.
#[derive(Debug)]
pub struct Node {
    /// `None` only for the list's initial sentinel.
    frame: Option<OutFrame>,
    /// Position in the stream (sentinel = 0).
    seq: u64,
    /// Bytes published up to and including this frame.
    cum_bytes: u64,
    next: OnceLock<Arc<Node>>,
}

impl Node {
    fn sentinel(seq: u64, cum_bytes: u64) -> Arc<Node> {
        Arc::new(Node {
            frame: None,
            seq,
            cum_bytes,
            next: OnceLock::new(),
        })
    }

    pub fn frame(&self) -> Option<&OutFrame> {
        self.frame.as_ref()
    }
}

impl Drop for Node {
    // Unlink iteratively: dropping a long chain recursively would overflow
    // the stack once a slow subscriber lets go of thousands of frames.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(n) = next {
            match Arc::try_unwrap(n) {
                Ok(mut node) => next = node.next.take(),
                Err(_) => break,
            }
        }
    }
}

/// Where a stream's source stands, for DESCRIBE, status and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceState {
    /// Not connected and not trying (on-demand with no recorder, or stopped).
    Idle,
    Connecting,
    Live,
    /// Waiting to reconnect after an error.
    Backoff {
        error: String,
    },
}

/// Limits applied to subscribers and the GOP cache.
#[derive(Debug, Clone, Copy)]
pub struct HubLimits {
    pub queue_bytes: u64,
    pub max_lag: Duration,
    pub gop_cache_max_bytes: u64,
}

/// Where a track's RTP timeline stands: the sequence number of its next
/// packet and the timestamp of its last frame, when it was published.
#[derive(Debug, Clone, Copy)]
struct TrackClock {
    next_seq: u16,
    ts: u32,
    at: Instant,
    rate: u32,
}

impl TrackClock {
    /// The next sequence number and the RTP time now, extrapolated.
    fn now(&self) -> (u16, u32) {
        let elapsed = Instant::now()
            .saturating_duration_since(self.at)
            .as_secs_f64();
        (
            self.next_seq,
            self.ts
                .wrapping_add((elapsed * f64::from(self.rate)) as u32),
        )
    }
}

struct State {
    tail: Arc<Node>,
    /// Per track (by index), for RTP-Info when a track has nothing queued.
    clocks: smallvec::SmallVec<[Option<TrackClock>; 4]>,
    /// The node just before the latest video key frame (the GOP cache).
    gop_anchor: Option<Arc<Node>>,
    gop_bytes: u64,
}

struct Shared {
    state: Mutex<State>,
    notify: Notify,
    published_bytes: AtomicU64,
    limits: HubLimits,
    info: watch::Sender<Option<Arc<StreamInfo>>>,
    source: watch::Sender<SourceState>,
    demand: watch::Sender<usize>,
    subscribers: AtomicUsize,
    /// The last source error and when it happened (kept after recovery).
    last_error: Mutex<Option<(String, std::time::SystemTime)>>,
}

/// Handle to one stream's hub; cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<Shared>);

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("subscribers", &self.subscriber_count())
            .finish_non_exhaustive()
    }
}

impl Hub {
    pub fn new(limits: HubLimits) -> Hub {
        Hub(Arc::new(Shared {
            state: Mutex::new(State {
                tail: Node::sentinel(0, 0),
                clocks: smallvec::SmallVec::new(),
                gop_anchor: None,
                gop_bytes: 0,
            }),
            notify: Notify::new(),
            published_bytes: AtomicU64::new(0),
            limits,
            info: watch::Sender::new(None),
            source: watch::Sender::new(SourceState::Idle),
            demand: watch::Sender::new(0),
            subscribers: AtomicUsize::new(0),
            last_error: Mutex::new(None),
        }))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock is never held across an await or a panic-prone call, so a
        // poisoned lock still holds a consistent list.
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a media frame, noting where its track's RTP timeline stands
    /// (`next_seq` after it, its timestamp `ts`, the track's clock `rate`).
    pub fn publish_media(&self, frame: OutFrame, next_seq: u16, ts: u32, rate: u32) {
        let track = usize::from(frame.track);
        let clock = TrackClock {
            next_seq,
            ts,
            at: frame.at,
            rate,
        };
        self.publish_inner(frame, Some((track, clock)));
    }

    /// Appends a frame and wakes every subscriber.
    pub fn publish(&self, frame: OutFrame) {
        self.publish_inner(frame, None);
    }

    fn publish_inner(&self, frame: OutFrame, clock: Option<(usize, TrackClock)>) {
        let len = frame.data.len() as u64;
        let kind = frame.kind;
        let mut st = self.lock();
        if let Some((track, c)) = clock
            && track < 64
        {
            if st.clocks.len() <= track {
                st.clocks.resize(track + 1, None);
            }
            st.clocks[track] = Some(c);
        }
        let node = Arc::new(Node {
            frame: Some(frame),
            seq: st.tail.seq + 1,
            cum_bytes: st.tail.cum_bytes + len,
            next: OnceLock::new(),
        });
        match kind {
            // A key frame alone over the cache limit is not cached either:
            // new recorders wait for the next one.
            FrameKind::Key if len > self.0.limits.gop_cache_max_bytes => {
                st.gop_anchor = None;
                st.gop_bytes = 0;
            }
            FrameKind::Key => {
                st.gop_anchor = Some(st.tail.clone());
                st.gop_bytes = len;
            }
            FrameKind::End => {
                st.gop_anchor = None;
                st.gop_bytes = 0;
                // The next source session starts new RTP timelines.
                st.clocks.clear();
            }
            _ if st.gop_anchor.is_some() => {
                st.gop_bytes += len;
                if st.gop_bytes > self.0.limits.gop_cache_max_bytes {
                    // A GOP too long to cache: new recorders wait for the
                    // next key frame instead.
                    st.gop_anchor = None;
                }
            }
            _ => {}
        }
        let cum = node.cum_bytes;
        // The tail's `next` is only ever set here, under the lock.
        let _ = st.tail.next.set(node.clone());
        st.tail = node;
        drop(st);
        self.0.published_bytes.store(cum, Ordering::Release);
        self.0.notify.notify_waiters();
    }

    /// Ends every current subscriber (stream gone or changed incompatibly)
    /// and empties the GOP cache.
    pub fn end_subscribers(&self) {
        self.publish(OutFrame {
            track: 0,
            kind: FrameKind::End,
            data: Bytes::new(),
            at: Instant::now(),
            rtp: None,
        });
    }

    /// Forgets the GOP cache: its frames belong to a source session that
    /// ended, and a new recorder must not start minutes in the past.
    pub fn clear_cache(&self) {
        let mut st = self.lock();
        st.gop_anchor = None;
        st.gop_bytes = 0;
    }

    /// Starts a subscriber at the latest key frame (or, with no GOP cached,
    /// at the live tail, waiting for the next key frame).
    ///
    /// A cached key frame older than the lag limit (a stalled camera) is not
    /// used: the recorder would be ended as too slow on its first frame.
    /// It waits at the tail for the next key frame instead.
    pub fn subscribe(&self) -> Subscriber {
        let st = self.lock();
        let fresh = |a: &Arc<Node>| {
            a.next
                .get()
                .and_then(|k| k.frame.as_ref())
                .is_some_and(|k| k.at.elapsed() <= self.0.limits.max_lag)
        };
        let (cursor, need_key) = match &st.gop_anchor {
            Some(a) if fresh(a) => (a.clone(), false),
            _ => (st.tail.clone(), true),
        };
        // Taken with the cursor, so a frame published after this point is
        // both after the cursor and after the clock (no RTP-Info race).
        let clocks = st.clocks.clone();
        drop(st);
        self.0.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscriber {
            hub: self.clone(),
            cursor,
            need_key,
            skip_leading: true,
            dropped: 0,
            clocks,
        }
    }

    pub fn subscriber_count(&self) -> usize {
        self.0.subscribers.load(Ordering::Relaxed)
    }

    /// The current stream description, once the source knows its parameters.
    pub fn info(&self) -> Option<Arc<StreamInfo>> {
        self.0.info.borrow().clone()
    }

    pub fn set_info(&self, info: Arc<StreamInfo>) {
        self.0.info.send_replace(Some(info));
    }

    /// Waits up to `timeout` for the stream description.
    pub async fn wait_info(&self, timeout: Duration) -> Option<Arc<StreamInfo>> {
        let mut rx = self.0.info.subscribe();
        let r = tokio::time::timeout(timeout, rx.wait_for(|i| i.is_some())).await;
        match r {
            Ok(Ok(i)) => i.clone(),
            _ => None,
        }
    }

    pub fn source_state(&self) -> SourceState {
        self.0.source.borrow().clone()
    }

    pub fn set_source_state(&self, s: SourceState) {
        self.0.source.send_if_modified(|cur| {
            let changed = *cur != s;
            *cur = s;
            changed
        });
    }

    /// Records a source error (shown by the admin API with its time).
    pub fn set_last_error(&self, message: String) {
        let mut g = self.0.last_error.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some((message, std::time::SystemTime::now()));
    }

    /// The last source error and when it happened.
    pub fn last_error(&self) -> Option<(String, std::time::SystemTime)> {
        self.0
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Registers interest in the stream (a DESCRIBE in progress or a
    /// session); on-demand sources connect while any is held.
    pub fn demand(&self) -> DemandGuard {
        self.0.demand.send_modify(|d| *d += 1);
        DemandGuard(self.clone())
    }

    /// Watches the number of [`DemandGuard`]s held.
    pub fn watch_demand(&self) -> watch::Receiver<usize> {
        self.0.demand.subscribe()
    }
}

/// Keeps an on-demand stream wanted while held.
#[derive(Debug)]
pub struct DemandGuard(Hub);

impl Drop for DemandGuard {
    fn drop(&mut self) {
        self.0.0.demand.send_modify(|d| *d = d.saturating_sub(1));
    }
}

/// Why a subscriber stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriberEnd {
    /// The stream ended or changed incompatibly.
    StreamEnded,
    /// Its oldest unsent frame was older than the lag limit.
    TooSlow,
}

/// One recorder session's read position in a hub.
pub struct Subscriber {
    hub: Hub,
    /// The last node consumed.
    cursor: Arc<Node>,
    /// Skip frames until the next video key frame.
    need_key: bool,
    /// Started (or restarted) at a key frame: skip its leading pictures
    /// until the first other video frame.
    skip_leading: bool,
    /// Frames skipped because this subscriber fell behind, since the last
    /// [`Subscriber::take_dropped`].
    dropped: u64,
    /// The tracks' RTP timelines when this subscriber started.
    clocks: smallvec::SmallVec<[Option<TrackClock>; 4]>,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.hub.0.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Subscriber {
    /// Frames published but not yet consumed (lost if the session ends now).
    pub fn backlog_frames(&self) -> u64 {
        let tail = self.hub.lock().tail.seq;
        tail.saturating_sub(self.cursor.seq)
    }

    /// Frames dropped since the last call (for the drop counter).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// The frames this subscriber will send first, without consuming them
    /// (for RTP-Info at PLAY): from the current position, skipping what
    /// [`Subscriber::next_batch`] would skip while waiting for a key frame,
    /// and stopping at the end of the current source session.
    pub fn peek(&self) -> impl Iterator<Item = &OutFrame> {
        let mut node = self.cursor.next.get();
        let mut skip = Skip {
            need_key: self.need_key,
            leading: self.skip_leading,
        };
        std::iter::from_fn(move || {
            loop {
                let n = node?;
                node = n.next.get();
                let Some(f) = n.frame.as_ref() else { continue };
                if f.kind == FrameKind::End {
                    return None;
                }
                if skip.skips(f.kind) {
                    continue;
                }
                return Some(f);
            }
        })
    }

    /// Where a track's RTP timeline stood when this subscriber started,
    /// extrapolated to now: the sequence number and RTP time its first
    /// packet will carry if the track has nothing queued for it.
    pub fn start_clock(&self, track: usize) -> Option<(u16, u32)> {
        self.clocks.get(track).copied().flatten().map(|c| c.now())
    }

    /// Waits until at least one frame is ready, then appends the ready frames
    /// (up to `max_bytes` of them, at least one) to `out`.
    pub async fn next_batch(
        &mut self,
        out: &mut Vec<Arc<Node>>,
        max_bytes: usize,
    ) -> Result<(), SubscriberEnd> {
        loop {
            self.skip_if_behind();
            let mut bytes = 0usize;
            while let Some(next) = self.cursor.next.get().cloned() {
                let Some(frame) = next.frame.as_ref() else {
                    self.cursor = next;
                    continue;
                };
                match frame.kind {
                    // Deliver what came before the marker first.
                    FrameKind::End if out.is_empty() => return Err(SubscriberEnd::StreamEnded),
                    FrameKind::End => break,
                    _ => {}
                }
                let mut skip = Skip {
                    need_key: self.need_key,
                    leading: self.skip_leading,
                };
                let skipped = skip.skips(frame.kind);
                (self.need_key, self.skip_leading) = (skip.need_key, skip.leading);
                if skipped {
                    self.cursor = next;
                    continue;
                }
                if out.is_empty() && frame.at.elapsed() > self.hub.0.limits.max_lag {
                    return Err(SubscriberEnd::TooSlow);
                }
                bytes += frame.data.len();
                self.cursor = next.clone();
                out.push(next);
                if bytes >= max_bytes {
                    break;
                }
            }
            if !out.is_empty() {
                return Ok(());
            }
            let notified = self.hub.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.cursor.next.get().is_none() {
                notified.await;
            }
        }
    }

    /// If the unsent backlog exceeds the byte limit, jumps to the latest key
    /// frame and counts what was skipped.
    fn skip_if_behind(&mut self) {
        let published = self.hub.0.published_bytes.load(Ordering::Acquire);
        let behind = published.saturating_sub(self.cursor.cum_bytes);
        if behind <= self.hub.0.limits.queue_bytes {
            return;
        }
        let st = self.hub.lock();
        let (target, need_key) = match &st.gop_anchor {
            Some(a) if a.seq > self.cursor.seq => (a.clone(), false),
            _ => (st.tail.clone(), true),
        };
        drop(st);
        // Count the skipped frames (RTCP and markers included: close enough
        // for a drop counter, and never undercounting video).
        self.dropped += target.seq.saturating_sub(self.cursor.seq);
        self.cursor = target;
        self.need_key = need_key;
        self.skip_leading = true;
    }
}

/// What a subscriber skips while it waits for a key frame and while the
/// key frame it started at may still have leading pictures.
#[derive(Debug, Clone, Copy)]
struct Skip {
    need_key: bool,
    leading: bool,
}

impl Skip {
    /// Whether a frame of `kind` is skipped (and updates the state).
    fn skips(&mut self, kind: FrameKind) -> bool {
        match kind {
            FrameKind::Key => {
                if self.need_key {
                    self.need_key = false;
                    self.leading = true;
                }
                false
            }
            _ if self.need_key => true,
            FrameKind::Leading => self.leading,
            FrameKind::DecodableLeading => false,
            FrameKind::Delta => {
                self.leading = false;
                false
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
