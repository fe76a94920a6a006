//! The composition root: builds the device registry, starts a source task
//! per device stream and the RTSP server, and shuts everything down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use crate::config::{Config, DeviceSource};
use crate::devices::Registry;
use crate::media::publisher::Publisher;
use crate::rtsp;
use crate::source::StreamSource;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind the RTSP listener on {addr} (or its UDP ports {udp_port}/+1): {source}")]
    BindRtsp {
        addr: SocketAddr,
        udp_port: u16,
        #[source]
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Running {
    pub rtsp_addr: SocketAddr,
    pub udp_ports: Option<(u16, u16)>,
    pub registry: Arc<Registry>,
    pub rtsp: Arc<rtsp::server::Server>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// Starts every task of the gateway for `config`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let registry = Arc::new(Registry::new(&config));

    let bound = rtsp::server::bind(&config.rtsp, registry.clone(), &config.recorders)
        .await
        .map_err(|source| StartError::BindRtsp {
            addr: config.rtsp.listen,
            udp_port: config.rtsp.udp_rtp_port,
            source,
        })?;
    let rtsp_addr = bound.local_addr().unwrap_or(config.rtsp.listen);
    let udp_ports = bound.udp_ports();
    let rtsp_server = bound.server().clone();

    for device in registry.devices() {
        let group =
            Arc::new(retina::client::SessionGroup::default().named(device.config.id.to_string()));
        for stream in &device.streams {
            let Some(stream_cfg) = device
                .config
                .streams
                .iter()
                .find(|s| s.name == stream.name)
                .cloned()
            else {
                continue;
            };
            let publisher = Publisher::new(
                stream.hub.clone(),
                config.rtsp.max_payload_bytes,
                format!("camgate/{}/{}", device.config.id, stream.name),
            );
            let source = StreamSource {
                device: device.config.clone(),
                stream: stream_cfg,
                camera: config.camera.clone(),
                publisher,
                cancel: cancel.child_token(),
                session_group: group.clone(),
            };
            let span = info_span!("source", device = %device.config.id, stream = %stream.name);
            tracker.spawn(source.run().instrument(span));
        }
        let kind = match device.config.source {
            DeviceSource::Simulated { .. } => "simulated",
            DeviceSource::Camera(_) => "camera",
        };
        info!(device = %device.config.id, kind, streams = device.streams.len(), "device configured");
    }

    tracker.spawn(bound.run(cancel.child_token(), tracker.clone()));
    info!(rtsp = %rtsp_addr, ?udp_ports, "camgate running");
    Ok(Running {
        rtsp_addr,
        udp_ports,
        registry,
        rtsp: rtsp_server,
        cancel,
        tracker,
    })
}

impl Running {
    /// Stops accepting, ends sessions, tears camera sessions down, and waits
    /// up to `grace` for every task. Returns false if some did not finish.
    pub async fn shutdown(self, grace: Duration) -> bool {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            warn!(
                remaining = self.tracker.len(),
                "tasks still running at the end of the grace period"
            );
            return false;
        }
        true
    }

    /// A token that, when cancelled, starts shutdown.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}
