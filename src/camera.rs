//! Camera-side sources: one task per device stream that keeps its hub fed.
//!
//! [`StreamSource::run`] is the retry loop (on-demand waiting, exponential
//! backoff with jitter, state for DESCRIBE and status); a session is either
//! a real camera pulled with retina ([`camera`]) or the built-in simulated
//! camera ([`simulated`]). Sources only write to the hub through their
//! [`Publisher`]; they never see a recorder.

pub mod backoff;
pub mod challenge;
pub mod clip;
pub mod memory;
pub mod session;
pub mod simulated;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::schema::CameraSection;
use crate::config::{Device, DeviceSource, Pull, StreamConfig};
use crate::media::hub::SourceState;
use crate::media::publisher::Publisher;

pub use backoff::Backoff;

/// Seconds between RTCP sender reports on each track.
pub const SENDER_REPORT_INTERVAL: Duration = Duration::from_secs(5);

/// A bounded classification of why a camera session ended, for logs now and
/// metric labels later. Never contains camera-supplied text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The camera refused or could not be reached.
    Refused,
    /// A step or the stream timed out.
    Timeout,
    /// The camera rejected camgate's credentials.
    Auth,
    /// The camera closed the connection.
    Closed,
    /// The camera spoke something camgate could not use.
    Protocol,
    /// The session's code panicked on what the camera sent (a bug, in
    /// camgate or retina): caught, counted and retried like any failure.
    Panic,
    /// camgate was over its memory limit while the session delivered no
    /// video (see [`memory`]).
    Memory,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Auth => "auth",
            ErrorKind::Closed => "closed",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Panic => "panic",
            ErrorKind::Memory => "memory",
        }
    }
}

/// Runs one camera session, turning a panic inside it into an
/// [`ErrorKind::Panic`] error. The session's state is thrown away with it
/// (the caller ends the session and backs off), so nothing observes what
/// the panic left half-done.
async fn supervised(
    session: impl std::future::Future<Output = Result<(), SourceError>>,
) -> Result<(), SourceError> {
    futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(session))
        .await
        .unwrap_or_else(|panic| {
            Err(SourceError::new(
                ErrorKind::Panic,
                format!("panicked: {}", crate::telemetry::panic_text(panic.as_ref())),
            ))
        })
}

/// Why a source session ended.
#[derive(Debug, thiserror::Error)]
#[error("{kind_str}: {message}", kind_str = kind.as_str())]
pub struct SourceError {
    pub kind: ErrorKind,
    /// Human-readable detail (camera URLs here never carry credentials).
    pub message: String,
}

impl SourceError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        SourceError {
            kind,
            message: message.into(),
        }
    }
}

/// Everything one stream's task needs.
pub struct StreamSource {
    pub device: Arc<Device>,
    pub stream: StreamConfig,
    pub camera: CameraSection,
    pub publisher: Publisher,
    pub cancel: CancellationToken,
    /// Shared by a camera's streams, so stale sessions are awaited (retina).
    pub session_group: Arc<retina::client::SessionGroup>,
    /// Left-out tracks were already warned about.
    pub warned_tracks: bool,
    /// The device's fingerprint (the camera's SDP is evidence).
    pub identity: Arc<crate::fingerprint::identity::IdentityCell>,
    /// Sheds sessions that hold memory without delivering video.
    pub memory: Arc<memory::Guard>,
}

impl StreamSource {
    /// Runs until cancelled: connect, relay, back off, reconnect.
    pub async fn run(mut self) {
        let hub = self.publisher.hub().clone();
        let mut demand = hub.watch_demand();
        let mut backoff = Backoff::new(
            Duration::from_secs(self.camera.backoff_initial_secs),
            Duration::from_secs(self.camera.backoff_max_secs),
            Duration::from_secs(self.camera.backoff_reset_secs),
        );
        let on_demand = self.device.pull == Pull::OnDemand;
        loop {
            if on_demand && *demand.borrow() == 0 {
                self.publisher.set_state(SourceState::Idle);
                tokio::select! {
                    _ = self.cancel.cancelled() => break,
                    r = demand.wait_for(|d| *d > 0) => if r.is_err() { break },
                }
            }
            self.publisher.set_state(SourceState::Connecting);
            let started = Instant::now();
            let cancel = self.cancel.clone();
            // Supervised: a panic on what a camera sent ends this session
            // like any other failure (backoff, counted, reported), never the
            // stream's task.
            let result = tokio::select! {
                _ = cancel.cancelled() => break,
                r = supervised(self.run_once(&mut demand, on_demand)) => r,
            };
            self.publisher.end_session();
            match result {
                Ok(()) => {
                    info!(device = %self.device.id, stream = %self.stream.name,
                        "no recorder left: disconnected from camera");
                    backoff.reset();
                }
                Err(e) => {
                    let delay = backoff.next_delay(started.elapsed());
                    warn!(device = %self.device.id, stream = %self.stream.name,
                        reason = e.kind.as_str(), error = %e.message,
                        retry_in_ms = delay.as_millis() as u64, "camera session ended");
                    self.publisher.metrics().reconnect(e.kind.as_str());
                    hub.set_last_error(e.to_string());
                    self.publisher.set_state(SourceState::Backoff {
                        error: e.to_string(),
                    });
                    tokio::select! {
                        _ = self.cancel.cancelled() => break,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        // Shutdown: end recorder sessions and let retina tear down.
        self.publisher.close();
        self.publisher.set_state(SourceState::Idle);
        let _ =
            tokio::time::timeout(Duration::from_secs(2), self.session_group.await_teardown()).await;
    }

    async fn run_once(
        &mut self,
        demand: &mut watch::Receiver<usize>,
        on_demand: bool,
    ) -> Result<(), SourceError> {
        let idle = Duration::from_secs(self.camera.on_demand_close_secs);
        let idle_fut = wait_idle(demand, on_demand, idle);
        match &self.device.source {
            DeviceSource::Simulated { clip } => {
                let clip = clip.clone();
                simulated::run_session(&mut self.publisher, clip, self.device.audio, idle_fut).await
            }
            DeviceSource::Camera(cam) => {
                let cam = cam.clone();
                session::run_session(self, &cam, idle_fut).await
            }
        }
    }
}

/// Resolves once nobody has wanted the stream for `idle` (never for an
/// always-on stream).
async fn wait_idle(demand: &mut watch::Receiver<usize>, on_demand: bool, idle: Duration) {
    if !on_demand {
        return std::future::pending().await;
    }
    loop {
        if demand.wait_for(|d| *d == 0).await.is_err() {
            return std::future::pending().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(idle) => return,
            r = demand.changed() => if r.is_err() { return std::future::pending().await },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_session_is_an_error_not_a_dead_task() {
        let e = supervised(async { panic!("bad SDP line: m=video \r\n\u{1b}[31mforged") })
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Panic);
        assert!(
            e.message.starts_with("panicked: bad SDP line"),
            "{}",
            e.message
        );
        // Camera text in the message cannot forge log lines or colours.
        assert!(!e.message.contains('\r') && !e.message.contains('\n'));
        assert!(!e.message.contains('\u{1b}'));
        let long = supervised(async { panic!("{}", "x".repeat(10_000)) })
            .await
            .unwrap_err();
        assert!(long.message.len() < 300);
        // A session that ends normally is passed through.
        assert!(supervised(async { Ok(()) }).await.is_ok());
        let refused = supervised(async { Err(SourceError::new(ErrorKind::Refused, "x")) })
            .await
            .unwrap_err();
        assert_eq!(refused.kind, ErrorKind::Refused);
    }
}
