//! The composition root: builds the device registry, starts a source task
//! per device stream and the RTSP server, and shuts everything down.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, info_span, warn};

use std::sync::atomic::{AtomicBool, Ordering};

use std::collections::HashMap;

use crate::admin::{self, AdminState};
use crate::auth::Authenticator;
use crate::camera::StreamSource;
use crate::config::{Config, DeviceSource, Sinkhole};
use crate::devices::Registry;
use crate::egress::{self, book::Book};
use crate::http::{
    self,
    proxy::{DeviceApi, Mode, Proxy},
};
use crate::listener::{Listener, Pool};
use crate::media::publisher::Publisher;
use crate::metrics::Metrics;
use crate::recorder;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind the RTSP listener on {addr}: {source}")]
    BindRtsp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind the camera API listener on {addr}: {source}")]
    BindHttp {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid TLS files: {0}")]
    Tls(String),
    #[error("cannot bind the DNS sinkhole on {addr}: {source}")]
    BindDns {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the DNS sinkhole: {0}")]
    Dns(String),
    #[error("cannot bind the egress trap on {addr}: {source}")]
    BindTrap {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot bind the admin listener on {addr}: {source}")]
    BindAdmin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A running gateway.
pub struct Running {
    pub rtsp_addr: SocketAddr,
    /// The camera API listeners: path-based first (if any), then fronts.
    pub http_addrs: Vec<SocketAddr>,
    pub admin_addr: SocketAddr,
    /// The DNS sinkhole (UDP and TCP on the same port), if on.
    pub dns_addr: Option<SocketAddr>,
    /// The egress trap's TCP and UDP listeners, if on.
    pub trap_tcp_addr: Option<SocketAddr>,
    pub trap_udp_addr: Option<SocketAddr>,
    pub egress: Arc<Book>,
    pub metrics: Metrics,
    pub udp_ports: Option<(u16, u16)>,
    pub registry: Arc<Registry>,
    pub rtsp: Arc<recorder::server::Server>,
    admin: Arc<AdminState>,
    cancel: CancellationToken,
    tracker: TaskTracker,
}

/// How often stream rates (bitrate, fps) are sampled.
const RATE_INTERVAL: Duration = Duration::from_secs(2);

/// Starts every task of the gateway for `config`.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let cancel = CancellationToken::new();
    let tracker = TaskTracker::new();
    let metrics = Metrics::new();
    let registry = Arc::new(Registry::new(&config, &metrics));

    let admin_listener = Listener::bind(
        config.admin.listen,
        Pool::new("admin", admin::limits(&config.admin), &metrics),
    )
    .await
    .map_err(|e| StartError::BindAdmin {
        addr: e.addr,
        source: e.source,
    })?;
    let admin_addr = admin_listener.local_addr();
    let auth = Arc::new(Authenticator::new(
        &config.recorders,
        config.auth_settings(),
    ));
    let fronts: Vec<(SocketAddr, crate::config::DeviceId)> = config
        .devices
        .iter()
        .filter_map(|d| {
            Some((
                SocketAddr::new(d.front?, config.fronts.rtsp_port),
                d.id.clone(),
            ))
        })
        .collect();
    let bound = recorder::server::bind(
        &config.rtsp,
        &fronts,
        registry.clone(),
        auth.clone(),
        metrics.clone(),
    )
    .await
    .map_err(|(addr, source)| StartError::BindRtsp { addr, source })?;
    let rtsp_addr = bound.local_addr().unwrap_or(config.rtsp.listen);
    let udp_ports = bound.udp_ports();
    let rtsp_server = bound.server().clone();

    // One memory guard for every camera session.
    let memory = crate::camera::memory::Guard::new(config.camera.memory_limit_bytes);
    tracker.spawn(memory.clone().run(cancel.child_token()));
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
            let mut publisher = Publisher::new(
                stream.hub.clone(),
                stream.metrics.clone(),
                config.rtsp.max_payload_bytes,
                format!("camgate/{}/{}", device.config.id, stream.name),
            );
            publisher.set_inspection(
                config.inspect.enabled.then_some(device.config.sanitize),
                stream.inspect.clone(),
            );
            let source = StreamSource {
                device: device.config.clone(),
                stream: stream_cfg,
                camera: config.camera.clone(),
                publisher,
                cancel: cancel.child_token(),
                session_group: group.clone(),
                warned_tracks: false,
                identity: device.identity.clone(),
                memory: memory.clone(),
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

    if config.inspect.fingerprint {
        let cameras: Vec<_> = registry
            .devices()
            .iter()
            .filter(|d| matches!(d.config.source, DeviceSource::Camera(_)))
            .map(|d| (d.config.clone(), d.identity.clone()))
            .collect();
        if !cameras.is_empty() {
            tracker.spawn(crate::fingerprint::probe::run(
                cameras,
                Duration::from_secs(config.inspect.probe_interval_secs),
                Duration::from_secs(config.inspect.probe_timeout_secs),
                tracker.clone(),
                cancel.child_token(),
            ));
        }
    }

    tracker.spawn(bound.run(cancel.child_token(), tracker.clone()));
    let http_addrs = start_http(
        &config,
        &registry,
        auth,
        &metrics,
        rtsp_addr.port(),
        &cancel,
        &tracker,
    )
    .await?;

    let pool = match config.dns.sinkhole {
        Sinkhole::Trap(net) => Some(net),
        Sinkhole::NxDomain => None,
    };
    let book = Arc::new(Book::new(&config, pool));
    let dns_addr = start_dns(&config, &book, &metrics, &cancel, &tracker).await?;
    let (trap_tcp_addr, trap_udp_addr) =
        start_trap(&config, &book, &metrics, &cancel, &tracker).await?;

    let admin = Arc::new(AdminState {
        registry: registry.clone(),
        metrics: metrics.clone(),
        rtsp: rtsp_server.clone(),
        egress: book.clone(),
        ready: AtomicBool::new(true),
    });
    tracker.spawn(admin::serve(
        admin_listener,
        admin::router(admin.clone()),
        cancel.child_token(),
        tracker.clone(),
    ));
    {
        let registry = registry.clone();
        let cancel = cancel.child_token();
        tracker.spawn(async move {
            let mut tick = tokio::time::interval(RATE_INTERVAL);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => registry.sample_rates(),
                }
            }
        });
    }
    info!(rtsp = %rtsp_addr, admin = %admin_addr, ?udp_ports, "camgate running");
    Ok(Running {
        rtsp_addr,
        http_addrs,
        admin_addr,
        dns_addr,
        trap_tcp_addr,
        trap_udp_addr,
        egress: book,
        metrics,
        admin,
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
        self.admin.ready.store(false, Ordering::Relaxed);
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

/// Binds the DNS sinkhole (UDP, then TCP on the same port) and serves it.
async fn start_dns(
    config: &Config,
    book: &Arc<Book>,
    metrics: &Metrics,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Option<SocketAddr>, StartError> {
    let Some(listen) = config.dns.listen else {
        return Ok(None);
    };
    let udp = tokio::net::UdpSocket::bind(listen)
        .await
        .map_err(|source| StartError::BindDns {
            addr: listen,
            source,
        })?;
    let addr = udp.local_addr().unwrap_or(listen);
    let pool = Pool::new("dns", egress::dns_tcp::limits(&config.dns), metrics);
    let tcp = Listener::bind(addr, pool)
        .await
        .map_err(|e| StartError::BindDns {
            addr: e.addr,
            source: e.source,
        })?;
    let handler = Arc::new(
        egress::dns::Handler::new(
            config.dns.clone(),
            config.egress.categories.clone(),
            book.clone(),
            metrics.clone(),
        )
        .map_err(StartError::Dns)?,
    );
    // UDP on hickory's server; TCP on camgate's listener (caps per pool
    // and per camera), both answered by the same handler.
    let mut server = hickory_server::Server::new(egress::dns::Shared(handler.clone()));
    server.register_socket(udp);
    tracker.spawn(egress::dns_tcp::serve(
        tcp,
        handler,
        config.dns.tcp_idle_timeout,
        cancel.child_token(),
        tracker.clone(),
    ));
    let cancel = cancel.child_token();
    tracker.spawn(async move {
        tokio::select! {
            _ = cancel.cancelled() => {
                let _ = server.shutdown_gracefully().await;
            }
            r = server.block_until_done() => {
                if let Err(e) = r {
                    warn!(error = %e, "DNS sinkhole stopped");
                }
            }
        }
    });
    info!(%addr, sinkhole = ?config.dns.sinkhole, "DNS sinkhole running");
    Ok(Some(addr))
}

/// Binds and serves the egress trap's TCP and UDP listeners.
async fn start_trap(
    config: &Config,
    book: &Arc<Book>,
    metrics: &Metrics,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(Option<SocketAddr>, Option<SocketAddr>), StartError> {
    let e = &config.egress;
    if e.trap_tcp.is_none() && e.trap_udp.is_none() {
        return Ok((None, None));
    }
    let trap = egress::trap::Trap::new(e.clone(), book.clone(), metrics.clone());
    // IPv4 and IPv6 listeners share the slots.
    let pool = Pool::new("trap", egress::trap::limits(e), metrics);
    let mut tcp_addr = None;
    if let Some(addr) = e.trap_tcp {
        let l = egress::trap::bind_tcp(addr)
            .await
            .map_err(|source| StartError::BindTrap { addr, source })?;
        let l = Listener::from_tcp(l, pool.clone(), addr);
        let bound = l.local_addr();
        tcp_addr = Some(bound);
        tracker.spawn(egress::trap::serve_tcp(
            l,
            trap.clone(),
            cancel.child_token(),
            tracker.clone(),
        ));
        if let Some(v6) = egress::trap::ipv6_twin(bound) {
            match egress::trap::bind_tcp(v6).await {
                Ok(l) => {
                    tracker.spawn(egress::trap::serve_tcp(
                        Listener::from_tcp(l, pool.clone(), v6),
                        trap.clone(),
                        cancel.child_token(),
                        tracker.clone(),
                    ));
                }
                Err(e) => {
                    warn!(addr = %v6, error = %e, "no IPv6 TCP trap (IPv6 cameras' connections will not be counted)")
                }
            }
        }
    }
    let mut udp_addr = None;
    if let Some(addr) = e.trap_udp {
        let (sock, transparent) =
            egress::trap::bind_udp(addr).map_err(|source| StartError::BindTrap { addr, source })?;
        if !transparent {
            warn!(
                %addr,
                "egress.trap_udp: cannot set IP_TRANSPARENT (needs CAP_NET_ADMIN); datagrams the firewall tproxies will not arrive"
            );
        }
        let bound = sock.local_addr().unwrap_or(addr);
        udp_addr = Some(bound);
        tracker.spawn(egress::trap::serve_udp(
            sock,
            trap.clone(),
            cancel.child_token(),
        ));
        if let Some(v6) = egress::trap::ipv6_twin(bound) {
            match egress::trap::bind_udp(v6) {
                Ok((sock, _)) => {
                    tracker.spawn(egress::trap::serve_udp(sock, trap, cancel.child_token()));
                }
                Err(e) => {
                    warn!(addr = %v6, error = %e, "no IPv6 UDP trap (IPv6 cameras' datagrams will not be counted)")
                }
            }
        }
    }
    info!(tcp = ?tcp_addr, udp = ?udp_addr, "egress trap running");
    Ok((tcp_addr, udp_addr))
}

/// Binds and starts the camera API proxy's listeners (when a policy was
/// loaded: an `[http]` listener or a device front is configured).
async fn start_http(
    config: &Config,
    registry: &Registry,
    auth: Arc<Authenticator>,
    metrics: &Metrics,
    rtsp_port: u16,
    cancel: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<Vec<SocketAddr>, StartError> {
    let Some(policy) = config.policy.clone() else {
        return Ok(Vec::new());
    };
    let timeout = Duration::from_secs(config.http.timeout_secs);
    let devices: HashMap<String, Arc<DeviceApi>> = registry
        .devices()
        .iter()
        .map(|d| {
            (
                d.config.id.to_string(),
                Arc::new(DeviceApi::new(
                    d.config.clone(),
                    timeout,
                    tracker.clone(),
                    cancel.child_token(),
                )),
            )
        })
        .collect();
    let proxy = Arc::new(Proxy {
        policy,
        auth,
        metrics: metrics.clone(),
        cfg: config.http.clone(),
        devices: devices.clone(),
        unauthenticated_bodies: Arc::new(tokio::sync::Semaphore::new(
            config.http.unauthenticated_body_budget_bytes,
        )),
    });
    let tls = match (&config.http.tls_cert, &config.http.tls_key) {
        (Some(c), Some(k)) => {
            let base = crate::config::validate::base_dir_of(&config.file);
            let cfg =
                crate::tls::server_config(&base.join(c), &base.join(k)).map_err(StartError::Tls)?;
            Some(tokio_rustls::TlsAcceptor::from(cfg))
        }
        _ => None,
    };
    let mut addrs = Vec::new();
    // One pool for every camera API listener: a device's fronts share the caps.
    let pool = Pool::new("http", http::server::limits(&config.http), metrics);
    let bind = |addr: SocketAddr| {
        let pool = pool.clone();
        async move {
            Listener::bind(addr, pool)
                .await
                .map_err(|e| StartError::BindHttp {
                    addr: e.addr,
                    source: e.source,
                })
        }
    };
    if let Some(addr) = config.http.listen {
        let l = bind(addr).await?;
        addrs.push(l.local_addr());
        tracker.spawn(http::server::serve(
            l,
            proxy.clone(),
            Mode::PathBased { rtsp_port },
            None,
            cancel.child_token(),
            tracker.clone(),
        ));
    }
    for d in registry.devices() {
        let Some(front) = d.config.front else {
            continue;
        };
        let api = devices[d.config.id.as_str()].clone();
        let l = bind(SocketAddr::new(front, config.fronts.http_port)).await?;
        addrs.push(l.local_addr());
        let mode = Mode::Front {
            device: api.clone(),
            rtsp_port: config.fronts.rtsp_port,
            https: false,
        };
        tracker.spawn(http::server::serve(
            l,
            proxy.clone(),
            mode,
            None,
            cancel.child_token(),
            tracker.clone(),
        ));
        if let Some(acceptor) = &tls {
            let addr = SocketAddr::new(front, config.fronts.https_port);
            let l = bind(addr).await?;
            addrs.push(l.local_addr());
            let mode = Mode::Front {
                device: api,
                rtsp_port: config.fronts.rtsp_port,
                https: true,
            };
            tracker.spawn(http::server::serve(
                l,
                proxy.clone(),
                mode,
                Some(acceptor.clone()),
                cancel.child_token(),
                tracker.clone(),
            ));
        }
    }
    info!(listeners = ?addrs, rules = proxy.policy.len(), "camera API proxy running");
    Ok(addrs)
}
