//! The admin listener: `/metrics`, `/healthz`, `/readyz`, the JSON API
//! (`/api/v1/devices`, `/api/v1/devices/{id}`) and the status page at `/`.
//!
//! Served with hyper's HTTP/1 connection builder (a header timeout bounds
//! slow or idle clients) around an axum router, on a
//! [`crate::listener::Listener`] (a connection cap, and a cap per address). It
//! binds to loopback unless configured otherwise: it shows the inventory.

pub mod page;
pub mod status;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use crate::config::is_label_safe;
use crate::config::schema::AdminSection;
use crate::devices::Registry;
use crate::listener::{ConnGuard, Limits, Listener, refuse_with};
use crate::metrics::Metrics;
use crate::recorder::server::Server as RtspServer;

/// What a refused client is told before the connection closes.
const REFUSED: &[u8] =
    b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
/// A request's headers must arrive within this.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// What the handlers read.
pub struct AdminState {
    pub registry: Arc<Registry>,
    pub metrics: Metrics,
    pub rtsp: Arc<RtspServer>,
    /// Egress attempts per device.
    pub egress: Arc<crate::egress::book::Book>,
    /// Config loaded and every listener bound (cleared at shutdown).
    pub ready: AtomicBool,
}

/// The router, for the listener and for tests.
pub fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/v1/devices", get(devices))
        .route("/api/v1/devices/{id}", get(device))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

/// The admin listener's limits. It has no authentication (yet), so every
/// connection counts as unauthenticated, with generous caps and no
/// deadline: a Prometheus server keeps its connection between scrapes, and
/// hyper's header timeout already closes idle ones.
pub fn limits(cfg: &AdminSection) -> Limits {
    Limits {
        max_connections: cfg.max_connections,
        max_unauthenticated: cfg.max_connections,
        max_unauthenticated_per_address: cfg.max_connections_per_address,
        unauthenticated_timeout: None,
        ipv6_prefix: 64,
    }
}

/// Serves `router` on `listener` until `cancel`.
pub async fn serve(
    listener: Listener,
    router: Router,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let serve = move |stream: TcpStream, guard: ConnGuard| {
        let svc = TowerToHyperService::new(router.clone());
        async move {
            let peer = guard.peer();
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "admin connection") },
                _ = guard.closed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn).await;
                }
            }
        }
    };
    listener
        .run(cancel, tracker, serve, refuse_with(REFUSED))
        .await;
}

fn bad_request(msg: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
}

/// The API takes no query parameters: any given is a mistake worth a 400.
fn reject_params(q: &HashMap<String, String>) -> Option<Response> {
    let mut keys: Vec<_> = q.keys().collect();
    keys.sort();
    keys.first().map(|k| {
        bad_request(format!(
            "unknown parameter '{}'",
            k.chars().take(64).collect::<String>()
        ))
    })
}

fn json(v: &impl serde::Serialize) -> Response {
    match serde_json::to_string_pretty(v) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body + "\n").into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn metrics(State(s): State<Arc<AdminState>>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/openmetrics-text"));
    let body = s.metrics.encode(openmetrics);
    let ct = if openmetrics {
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    } else {
        "text/plain; version=0.0.4; charset=utf-8"
    };
    ([(header::CONTENT_TYPE, ct)], body).into_response()
}

async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    if s.ready.load(Ordering::Relaxed) {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

async fn devices(
    State(s): State<Arc<AdminState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = reject_params(&q) {
        return r;
    }
    json(&status::all(&s.registry, &s.rtsp.sessions, &s.egress))
}

async fn device(
    State(s): State<Arc<AdminState>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = reject_params(&q) {
        return r;
    }
    if !is_label_safe(&id) {
        return bad_request(
            "a device id matches [a-z0-9][a-z0-9_-]* (at most 64 characters)".into(),
        );
    }
    match s.registry.device(&id) {
        Some(d) => json(&status::device(d, &s.rtsp.sessions, &s.egress)),
        None => (StatusCode::NOT_FOUND, format!("no device '{id}'\n")).into_response(),
    }
}

async fn status_page(
    State(s): State<Arc<AdminState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(r) = reject_params(&q) {
        return r;
    }
    let devices = status::all(&s.registry, &s.rtsp.sessions, &s.egress);
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page::render(&devices, status::today()),
    )
        .into_response()
}
