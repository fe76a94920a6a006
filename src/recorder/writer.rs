//! The write side of one RTSP connection: responses in order, and, while a
//! TCP-interleaved session plays, its media in one vectored write per batch
//! of frames.
//!
//! The hub's shared buffers already carry interleaved headers for channels
//! `2i`/`2i+1`; a recorder that uses those (nearly all do) gets the shared
//! bytes untouched. Otherwise camgate writes its own 4-byte headers around
//! the same packets. A write that cannot finish within the lag limit ends
//! the connection: a stalled recorder never holds frames forever.

use std::io::IoSlice;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::session::PlayTicket;
use crate::media::hub::{FrameKind, Node, Subscriber, SubscriberEnd};
use crate::metrics::RecorderMetrics;
use crate::rtp::framed_packets;

/// Linux's limit on iovecs per `writev`.
const IOV_MAX: usize = 1024;
/// Bytes of frames gathered into one write.
const BATCH_BYTES: usize = 1 << 20;

/// Per track: the recorder's (RTP, RTCP) channels, if it set the track up.
#[derive(Debug, Clone)]
pub struct ChannelMap {
    tracks: Vec<Option<(u8, u8)>>,
    /// Every set-up track uses camgate's default channels (2i, 2i+1).
    default: bool,
}

impl ChannelMap {
    pub fn new(tracks: Vec<Option<(u8, u8)>>) -> Self {
        let default = tracks.iter().enumerate().all(|(i, t)| {
            t.is_none_or(|(a, b)| usize::from(a) == 2 * i && usize::from(b) == 2 * i + 1)
        });
        ChannelMap { tracks, default }
    }
}

/// A TCP-interleaved session starting to play on this connection.
pub struct TcpPlay {
    pub session_id: String,
    /// The PLAY's claim to send: once the session stops or ends, no batch
    /// more is written, whatever messages are still queued.
    pub ticket: PlayTicket,
    pub subscriber: Subscriber,
    pub channels: ChannelMap,
    pub label: String,
    pub metrics: RecorderMetrics,
}

/// What the connection's reader asks the writer to do.
pub enum WriterMsg {
    Response(Bytes),
    Play(Box<TcpPlay>),
    /// Signal once everything queued before it has been written.
    Written(tokio::sync::oneshot::Sender<()>),
    /// Stop this session's media (PAUSE, TEARDOWN, removal): the session
    /// id and the generation of the PLAY to stop (a later PLAY's media is
    /// not stopped by an earlier stop delivered late).
    Stop(String, u64),
    /// Write nothing more and close.
    Close,
}

enum Event {
    Msg(Option<WriterMsg>),
    Batch(Result<(), SubscriberEnd>),
}

/// Runs until the reader drops its sender (or a write fails); cancels
/// `cancel` on the way out so the reader stops too. The loop polls only the
/// message channel and the subscriber: it runs once per frame per recorder.
pub async fn run(
    mut wr: OwnedWriteHalf,
    mut rx: mpsc::Receiver<WriterMsg>,
    cancel: CancellationToken,
    write_timeout: Duration,
) {
    let mut play: Option<Box<TcpPlay>> = None;
    let mut batch: Vec<Arc<Node>> = Vec::new();
    let mut headers: Vec<[u8; 4]> = Vec::new();
    loop {
        let event = {
            let media = async {
                match play.as_mut() {
                    Some(p) => Event::Batch(p.subscriber.next_batch(&mut batch, BATCH_BYTES).await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                m = rx.recv() => Event::Msg(m),
                e = media => e,
            }
        };
        match event {
            Event::Msg(None) | Event::Msg(Some(WriterMsg::Close)) => break,
            Event::Msg(Some(WriterMsg::Response(b))) => {
                let done = tokio::select! {
                    biased;
                    r = tokio::time::timeout(write_timeout, wr.write_all(&b)) => matches!(r, Ok(Ok(()))),
                    _ = cancel.cancelled() => false,
                };
                if !done {
                    break;
                }
            }
            Event::Msg(Some(WriterMsg::Play(p))) => {
                debug!(session = %p.session_id, "playing over TCP");
                play = Some(p);
            }
            Event::Msg(Some(WriterMsg::Written(done))) => {
                let _ = done.send(());
            }
            Event::Msg(Some(WriterMsg::Stop(id, generation))) => {
                if play
                    .as_ref()
                    .is_some_and(|p| p.session_id == id && p.ticket.generation() == generation)
                {
                    play = None;
                }
            }
            Event::Batch(Err(end)) => {
                if let Some(p) = &play {
                    if end == SubscriberEnd::TooSlow {
                        p.metrics.dropped_too_slow(p.subscriber.backlog_frames());
                    }
                    info!(session = %p.session_id, recorder = %p.label, ?end, "ending recorder session");
                }
                break;
            }
            Event::Batch(Ok(())) => {
                let Some(p) = play.as_mut() else { continue };
                if !p.ticket.is_current() {
                    // Stopped (its message may still be queued): not one
                    // batch more.
                    play = None;
                    batch.clear();
                    continue;
                }
                let dropped = p.subscriber.take_dropped();
                if dropped > 0 {
                    p.metrics.dropped_queue_full(dropped);
                    static LAG: crate::ratelimit::LogLimiter =
                        crate::ratelimit::LogLimiter::new(10);
                    if let Some(suppressed) = LAG.allow() {
                        info!(recorder = %p.label, dropped, suppressed,
                            "recorder too slow: skipped to the latest key frame");
                    }
                }
                // Shutdown is only checked while a write waits: the common
                // case (the write completes at once) polls nothing else.
                let write = tokio::time::timeout(
                    write_timeout,
                    write_batch(&mut wr, &batch, &p.channels, &mut headers),
                );
                let r = tokio::select! {
                    biased;
                    r = write => r,
                    _ = cancel.cancelled() => break,
                };
                batch.clear();
                match r {
                    Ok(Ok(n)) => p.metrics.sent(n as u64),
                    Ok(Err(e)) => {
                        debug!(recorder = %p.label, error = %e, "write failed");
                        break;
                    }
                    Err(_) => {
                        p.metrics.dropped_too_slow(p.subscriber.backlog_frames());
                        info!(recorder = %p.label, "recorder stalled: closing its connection");
                        break;
                    }
                }
            }
        }
    }
    cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(1), wr.shutdown()).await;
}

/// Writes a batch of frames for a recorder in as few `writev` calls as the
/// iovec limit allows. Returns the bytes written.
pub async fn write_batch<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    batch: &[Arc<Node>],
    channels: &ChannelMap,
    headers: &mut Vec<[u8; 4]>,
) -> std::io::Result<usize> {
    let wanted = |track: u8| channels.tracks.get(usize::from(track)).copied().flatten();
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batch.len() * 2);
    if channels.default {
        for n in batch {
            let Some(f) = n.frame() else { continue };
            if f.kind != FrameKind::End && wanted(f.track).is_some() && !f.data.is_empty() {
                slices.push(IoSlice::new(&f.data));
            }
        }
    } else {
        headers.clear();
        for n in batch {
            let Some(f) = n.frame() else { continue };
            let Some((rtp, rtcp)) = wanted(f.track) else {
                continue;
            };
            for p in framed_packets(&f.data) {
                let ch = if p.channel % 2 == 0 { rtp } else { rtcp };
                let len = (p.packet.len() as u16).to_be_bytes();
                headers.push([b'$', ch, len[0], len[1]]);
            }
        }
        let mut h = headers.iter();
        for n in batch {
            let Some(f) = n.frame() else { continue };
            if wanted(f.track).is_none() {
                continue;
            }
            for p in framed_packets(&f.data) {
                let Some(hdr) = h.next() else { break };
                slices.push(IoSlice::new(hdr));
                slices.push(IoSlice::new(p.packet));
            }
        }
    }
    let total: usize = slices.iter().map(|s| s.len()).sum();
    let mut rest: &mut [IoSlice<'_>] = &mut slices;
    while !rest.is_empty() {
        let upto = rest.len().min(IOV_MAX);
        let n = wr.write_vectored(&rest[..upto]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::hub::{Hub, HubLimits, OutFrame};
    use crate::rtp::TrackSender;
    use tokio::time::Instant;

    fn hub_with_frames() -> (Hub, Subscriber) {
        let hub = Hub::new(HubLimits {
            queue_bytes: 1 << 20,
            max_lag: Duration::from_secs(10),
            gop_cache_max_bytes: 1 << 20,
        });
        let mut v = TrackSender::new(96, 0, 100);
        let mut a = TrackSender::new(97, 2, 100);
        let mut w = v.frame(250, 1);
        crate::rtp::h264::packetize(&mut w, 0, &[&[0x65; 250]], None);
        hub.publish(OutFrame {
            track: 0,
            kind: FrameKind::Key,
            data: w.finish(),
            at: Instant::now(),
            rtp: None,
        });
        let mut w = a.frame(10, 1);
        crate::rtp::aac::packetize(&mut w, 0, &[1; 10]);
        hub.publish(OutFrame {
            track: 1,
            kind: FrameKind::Audio,
            data: w.finish(),
            at: Instant::now(),
            rtp: None,
        });
        let s = hub.subscribe();
        (hub, s)
    }

    #[tokio::test]
    async fn default_channels_write_shared_bytes() {
        let (_hub, mut s) = hub_with_frames();
        let mut batch = Vec::new();
        s.next_batch(&mut batch, usize::MAX).await.unwrap();
        let mut out = Vec::new();
        let map = ChannelMap::new(vec![Some((0, 1)), Some((2, 3))]);
        let n = write_batch(&mut out, &batch, &map, &mut Vec::new())
            .await
            .unwrap();
        assert_eq!(n, out.len());
        let expect: Vec<u8> = batch
            .iter()
            .flat_map(|n| n.frame().unwrap().data.to_vec())
            .collect();
        assert_eq!(out, expect);
    }

    #[tokio::test]
    async fn custom_channels_and_unset_tracks() {
        let (_hub, mut s) = hub_with_frames();
        let mut batch = Vec::new();
        s.next_batch(&mut batch, usize::MAX).await.unwrap();
        let mut out = Vec::new();
        // Video on channels 6-7, audio not set up.
        let map = ChannelMap::new(vec![Some((6, 7)), None]);
        write_batch(&mut out, &batch, &map, &mut Vec::new())
            .await
            .unwrap();
        let pkts: Vec<_> = framed_packets(&out).collect();
        assert_eq!(pkts.len(), 3, "250 bytes in FU-A at 100");
        assert!(pkts.iter().all(|p| p.channel == 6));
        let video = batch[0].frame().unwrap();
        let orig: Vec<_> = framed_packets(&video.data)
            .map(|p| p.packet.to_vec())
            .collect();
        let got: Vec<_> = pkts.iter().map(|p| p.packet.to_vec()).collect();
        assert_eq!(orig, got);
    }
}
