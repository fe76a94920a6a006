//! RTSP sessions (RFC 2326 §3.4): what a recorder has set up and how its
//! media is delivered, in a server-wide table keyed by session id.
//!
//! A TCP-interleaved session lives and dies with its connection. A UDP
//! session may be controlled from any connection of the same recorder and
//! ends on TEARDOWN or after the session timeout without requests or RTCP.
//!
//! Every PLAY that starts media gets a [`PlayTicket`] numbered by the
//! session's play/stop generation; PAUSE, TEARDOWN, the timeout and the
//! connection's end bump the generation, so whatever sends media (the UDP
//! sender task, the connection's writer) sees at once that its PLAY is
//! over, and a PLAY racing a TEARDOWN from another connection either
//! starts before it (and is stopped by it) or finds the session ended and
//! starts nothing. The table counts sessions per recorder account, so a
//! cap is checked and a session inserted under one lock.

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
    /// Set while playing (only through [`Session::start_play`]).
    pub playing: Option<Playing>,
    /// Set once the session has left the table: nothing starts it again.
    ended: bool,
}

impl SessionState {
    /// Whether the session has left the table.
    pub fn is_ended(&self) -> bool {
        self.ended
    }
}

/// A PLAY's claim to send media, valid until the session's next stop.
#[derive(Debug, Clone)]
pub struct PlayTicket {
    generation: Arc<AtomicU64>,
    mine: u64,
}

impl PlayTicket {
    /// Whether this PLAY is still the session's current one (one atomic
    /// load: senders check it before every batch).
    pub fn is_current(&self) -> bool {
        self.generation.load(Ordering::Acquire) == self.mine
    }

    /// The generation this PLAY started at.
    pub fn generation(&self) -> u64 {
        self.mine
    }
}

/// What [`Session::start_play`] found.
#[derive(Debug)]
pub enum StartPlay {
    Started(PlayTicket),
    /// Another PLAY is current (a repeat is acknowledged, nothing starts).
    AlreadyPlaying,
    /// TEARDOWN or the timeout ended the session first.
    Ended,
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
    /// Play/stop generation: bumped (under `state`'s lock) by every PLAY
    /// that starts media and every stop or end.
    generation: Arc<AtomicU64>,
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
            generation: Arc::new(AtomicU64::new(0)),
            state: Mutex::new(SessionState {
                tracks: vec![None; n],
                playing: None,
                ended: false,
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

    /// Starts a PLAY with `playing` as the way to stop it, unless the
    /// session is playing already or has ended: checked and set under one
    /// lock, so a TEARDOWN from another connection is either before (the
    /// PLAY starts nothing) or after (it stops this PLAY).
    pub fn start_play(&self, playing: Playing) -> StartPlay {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.ended {
            return StartPlay::Ended;
        }
        if st.playing.is_some() {
            return StartPlay::AlreadyPlaying;
        }
        let mine = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        st.playing = Some(playing);
        StartPlay::Started(PlayTicket {
            generation: self.generation.clone(),
            mine,
        })
    }

    /// Whether the session has left the table (TEARDOWN, timeout, its
    /// connection's end).
    pub fn is_ended(&self) -> bool {
        self.with_state(|s| s.is_ended())
    }

    /// Ends `ticket`'s PLAY from the sending side (its response was never
    /// written, its stream ended): clears `playing` if that PLAY is still
    /// current. Returns whether it was.
    pub fn finish_play(&self, ticket: &PlayTicket) -> bool {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !ticket.is_current() {
            return false;
        }
        st.playing = None;
        self.generation.fetch_add(1, Ordering::AcqRel);
        true
    }

    /// Stops media delivery, if playing.
    pub fn stop(&self) {
        self.halt(false);
    }

    /// Ends the session: stops its media, and no PLAY starts it again.
    fn end(&self) {
        self.halt(true);
    }

    fn halt(&self, end: bool) {
        let (playing, generation) = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.ended |= end;
            // The generation the current PLAY (if any) started at; after
            // the bump no sender holding it is current.
            let g = self.generation.fetch_add(1, Ordering::AcqRel);
            (st.playing.take(), g)
        };
        match playing {
            None => {}
            Some(Playing::Udp(t)) => t.cancel(),
            Some(Playing::Tcp(tx)) => {
                let msg = WriterMsg::Stop(self.id.clone(), generation);
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

/// A recorder account already holds as many sessions as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts a session without a cap (tests, tools).
    pub fn insert(&self, s: Arc<Session>) {
        self.lock().insert(s.id.clone(), s);
    }

    /// Inserts a session unless its recorder account already holds `cap`:
    /// counted and inserted under one lock, so connections racing each
    /// other cannot pass the cap together.
    pub fn insert_capped(&self, s: Arc<Session>, cap: usize) -> Result<(), Full> {
        let mut m = self.lock();
        if m.values()
            .filter(|x| x.recorder.name == s.recorder.name)
            .count()
            >= cap
        {
            return Err(Full);
        }
        m.insert(s.id.clone(), s);
        Ok(())
    }

    /// Sessions a recorder account holds.
    pub fn count_for(&self, recorder: &str) -> usize {
        self.lock()
            .values()
            .filter(|s| *s.recorder.name == *recorder)
            .count()
    }

    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.lock().get(id).cloned()
    }

    /// Removes and ends a session (its media stops; no PLAY restarts it).
    pub fn remove(&self, id: &str) -> Option<Arc<Session>> {
        let s = self.lock().remove(id);
        if let Some(s) = &s {
            s.end();
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
            s.end();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DeviceSet, Secret};
    use crate::media::hub::HubLimits;

    fn session(recorder: &str) -> Arc<Session> {
        let rec = Arc::new(Recorder {
            name: recorder.into(),
            username: recorder.into(),
            password: Secret::new("pw"),
            allow_from: Vec::new(),
            devices: DeviceSet::All,
            cleartext_auth: false,
        });
        let hub = Hub::new(HubLimits {
            queue_bytes: 1 << 20,
            max_lag: Duration::from_secs(10),
            gop_cache_max_bytes: 1 << 20,
        });
        let metrics = crate::metrics::Metrics::new().stream("d", "main");
        Arc::new(Session::new(
            rec,
            DeviceId::new("d"),
            "main".into(),
            hub,
            metrics,
            Arc::new(StreamInfo { tracks: Vec::new() }),
            "rtsp://x/d/main/".into(),
            1,
            "127.0.0.1:1".parse().unwrap(),
        ))
    }

    fn udp_play(s: &Session) -> (StartPlay, CancellationToken) {
        let stop = CancellationToken::new();
        (s.start_play(Playing::Udp(stop.clone())), stop)
    }

    #[tokio::test]
    async fn a_stop_ends_exactly_the_play_it_follows() {
        let s = session("nvr");
        let (StartPlay::Started(first), stop1) = udp_play(&s) else {
            panic!("a fresh session plays");
        };
        assert!(first.is_current());
        assert!(matches!(udp_play(&s).0, StartPlay::AlreadyPlaying));
        s.stop();
        assert!(!first.is_current() && stop1.is_cancelled());
        let (StartPlay::Started(second), _) = udp_play(&s) else {
            panic!("plays again after a stop");
        };
        assert!(second.is_current() && !first.is_current());
        // The first PLAY's sender finishing late does not end the second.
        assert!(!s.finish_play(&first));
        assert!(second.is_current());
        assert!(s.finish_play(&second));
        assert!(!second.is_current() && s.with_state(|st| st.playing.is_none()));
    }

    #[tokio::test]
    async fn an_ended_session_never_plays_again() {
        let table = Sessions::default();
        let s = session("nvr");
        table.insert(s.clone());
        let (StartPlay::Started(t), stop) = udp_play(&s) else {
            panic!("a fresh session plays");
        };
        assert!(table.remove(&s.id).is_some());
        assert!(!t.is_current() && stop.is_cancelled() && s.is_ended());
        assert!(matches!(udp_play(&s).0, StartPlay::Ended));
    }

    #[tokio::test]
    async fn a_tcp_stop_names_the_play_it_stops() {
        let s = session("nvr");
        let (tx, mut rx) = mpsc::channel(4);
        let StartPlay::Started(t) = s.start_play(Playing::Tcp(tx)) else {
            panic!("a fresh session plays");
        };
        s.stop();
        match rx.recv().await {
            Some(WriterMsg::Stop(id, g)) => assert_eq!((id, g), (s.id.clone(), t.generation())),
            _ => panic!("a stop message"),
        }
    }

    #[tokio::test]
    async fn the_table_caps_each_account() {
        let table = Sessions::default();
        for _ in 0..3 {
            assert!(table.insert_capped(session("a"), 3).is_ok());
        }
        assert_eq!(table.insert_capped(session("a"), 3), Err(Full));
        assert!(table.insert_capped(session("b"), 3).is_ok());
        assert_eq!((table.count_for("a"), table.count_for("b")), (3, 1));
    }
}
