//! RTSP sessions (RFC 2326 §3.4): what a recorder has set up and how its
//! media is delivered, in a server-wide table keyed by session id.
//!
//! A TCP-interleaved session lives and dies with its connection. A UDP
//! session may be controlled from any connection of the same recorder and
//! ends on TEARDOWN or after the session timeout without requests or RTCP.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::writer::WriterMsg;

use crate::config::{DeviceId, Recorder};
use crate::media::StreamInfo;
use crate::media::hub::{DemandGuard, Hub};
use crate::metrics::StreamMetrics;

/// How one track reaches the recorder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackTransport {
    /// Interleaved channels on the RTSP connection.
    Tcp { rtp: u8, rtcp: u8 },
    /// UDP to the recorder's ports.
    Udp { rtp: SocketAddr, rtcp: SocketAddr },
}

/// How to stop a playing session's media.
#[derive(Debug)]
pub enum Playing {
    /// A UDP sender task, stopped by cancelling this token.
    Udp(CancellationToken),
    /// Media written by the session's connection writer, stopped by a
    /// message (so the writer's hot loop polls no extra future).
    Tcp(mpsc::Sender<WriterMsg>),
}

/// Mutable session state (a std mutex: held for field updates only).
#[derive(Debug, Default)]
pub struct SessionState {
    /// Per stream track: its transport once SETUP.
    pub tracks: Vec<Option<TrackTransport>>,
    /// Set while playing.
    pub playing: Option<Playing>,
}

/// One recorder session.
#[derive(Debug)]
pub struct Session {
    pub id: String,
    pub recorder: Arc<Recorder>,
    pub device: DeviceId,
    pub stream: Arc<str>,
    pub hub: Hub,
    pub metrics: Arc<StreamMetrics>,
    pub info: Arc<StreamInfo>,
    /// `rtsp://host:port/device/stream/`, as the recorder addressed it.
    pub base_url: String,
    /// The connection that created it.
    pub conn_id: u64,
    pub peer: SocketAddr,
    created: Instant,
    /// Milliseconds after `created` of the last sign of life.
    last_seen_ms: AtomicU64,
    state: Mutex<SessionState>,
    _demand: DemandGuard,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        recorder: Arc<Recorder>,
        device: DeviceId,
        stream: Arc<str>,
        hub: Hub,
        metrics: Arc<StreamMetrics>,
        info: Arc<StreamInfo>,
        base_url: String,
        conn_id: u64,
        peer: SocketAddr,
    ) -> Session {
        let n = info.tracks.len();
        let demand = hub.demand();
        Session {
            id: format!("{:016X}", rand::random::<u64>()),
            recorder,
            device,
            stream,
            hub,
            metrics,
            info,
            base_url,
            conn_id,
            peer,
            created: Instant::now(),
            last_seen_ms: AtomicU64::new(0),
            state: Mutex::new(SessionState {
                tracks: vec![None; n],
                playing: None,
            }),
            _demand: demand,
        }
    }

    /// Runs `f` on the session state.
    pub fn with_state<T>(&self, f: impl FnOnce(&mut SessionState) -> T) -> T {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut g)
    }

    /// Records a sign of life (a request or an RTCP packet).
    pub fn touch(&self) {
        let ms = self.created.elapsed().as_millis() as u64;
        self.last_seen_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Time since the last sign of life.
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_seen_ms.load(Ordering::Relaxed));
        self.created.elapsed().saturating_sub(last)
    }

    /// Whether media goes over UDP.
    pub fn is_udp(&self) -> bool {
        self.with_state(|s| {
            s.tracks
                .iter()
                .flatten()
                .any(|t| matches!(t, TrackTransport::Udp { .. }))
        })
    }

    /// Stops media delivery, if playing.
    pub fn stop(&self) {
        match self.with_state(|s| s.playing.take()) {
            None => {}
            Some(Playing::Udp(t)) => t.cancel(),
            Some(Playing::Tcp(tx)) => {
                let msg = WriterMsg::Stop(self.id.clone());
                if let Err(mpsc::error::TrySendError::Full(msg)) = tx.try_send(msg) {
                    // The writer is busy; deliver the stop without blocking.
                    tokio::spawn(async move {
                        let _ = tx.send(msg).await;
                    });
                }
            }
        }
    }
}

/// The server-wide session table.
#[derive(Debug, Default)]
pub struct Sessions {
    // A std mutex: lookups and inserts only, never held across an await.
    map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn insert(&self, s: Arc<Session>) {
        self.lock().insert(s.id.clone(), s);
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// Removes and stops a session.
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.lock().remove(id);
        if let Some(s) = &s {
            s.stop();
        }
        s
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// A snapshot of every session.
    pub fn list(&self) -> Vec<Arc<Session>> {
        self.lock().values().cloned().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes every session matching `pred`, returning them.
    pub fn remove_where(&self, pred: impl Fn(&Session) -> bool) -> Vec<Arc<Session>> {
        let mut m = self.lock();
        let ids: Vec<String> = m
            .values()
            .filter(|s| pred(s))
            .map(|s| s.id.clone())
            .collect();
        let out: Vec<_> = ids.iter().filter_map(|id| m.remove(id)).collect();
        drop(m);
        for s in &out {
            s.stop();
        }
        out
    }
}
