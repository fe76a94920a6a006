//! The one TCP listener every camgate server uses (RTSP, camera API, admin,
//! DNS over TCP, the egress trap): bind, accept loop, connection limits,
//! backoff on accept errors, shutdown and metrics. What a connection *is*
//! (RTSP, HTTP, DNS) belongs to the protocol modules; they get an accepted
//! `TcpStream` and a [`ConnGuard`], nothing else.
//!
//! # Limits
//!
//! Listeners of one protocol share a [`Pool`] (the RTSP main listener and
//! every device front; every HTTP listener, plain and TLS), so a device's
//! fronts cannot multiply the caps. A pool bounds:
//!
//! * **connections held at once** (`max_connections`): a semaphore permit
//!   per connection, released when its guard drops;
//! * **unauthenticated connections held at once** (`max_unauthenticated`),
//!   a share of `max_connections`, so authenticated work (a recorder's
//!   sessions) always has the rest: a flood can fill the unauthenticated
//!   share, never the whole pool;
//! * **unauthenticated connections per source** (`max_unauthenticated_per_address`),
//!   well below the share: IPv4 per address, IPv6 per /64 (a host
//!   usually owns a whole /64, so counting single IPv6 addresses would
//!   let one host spray past the cap), or per address where the sources are
//!   individual devices (`ipv6_prefix = 128`: cameras on one LAN /64);
//! * **how long a connection may stay unauthenticated**
//!   (`unauthenticated_timeout`), counted from accept; requests do not
//!   extend it. [`ConnGuard::closed`] fires at the deadline.
//!
//! A handler calls [`ConnGuard::authenticated`] once the peer has proven who
//! it is: the connection leaves its source's unauthenticated count (an NVR
//! with one authenticated connection per channel never meets the
//! per-address cap) and loses its deadline, keeping only its slot in
//! `max_connections`.
//!
//! **Fair eviction.** When the unauthenticated share is full, a newcomer from
//! a source holding `n` unauthenticated connections evicts the oldest
//! unauthenticated connection of the source holding the most, if that
//! source holds at least `n + 2` (so sources converge to equal shares and
//! never trade one connection back and forth); otherwise it is refused. A
//! flood from one address (or /64) therefore cannot keep a recorder from
//! another address out: it holds at most the per-address cap, and if many
//! addresses together fill the share, the heaviest ones make room. Only a
//! flood from more sources than the share has slots, each holding one
//! connection, can refuse a newcomer; the deadline then frees a slot within
//! `unauthenticated_timeout`.
//!
//! The per-source table only holds sources with at least one
//! unauthenticated connection, so it never has more entries than the
//! share: a spray of addresses cannot grow it.
//!
//! Refusals are counted in `camgate_connections_refused_total{listener,reason}`
//! and logged at most every 10 s; evictions and deadline closes in
//! `camgate_connections_closed_total{listener,reason}`.
//!
//! Not here: protocol timeouts after authentication (each protocol's own),
//! TLS (the HTTP server's), and what a refused connection is told (the
//! `refuse` callback of [`Listener::run`]).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::canonical_ip;
use crate::metrics::{ListenerMetrics, Metrics};
use crate::ratelimit::LogLimiter;

/// First pause after an accept error that is not about one connection
/// (EMFILE, ENFILE, ENOBUFS, ...): doubles up to [`ACCEPT_BACKOFF_MAX`],
/// and resets after an accept succeeds.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest pause between accept attempts after errors.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The limits of one [`Pool`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections held at once, authenticated or not.
    pub max_connections: usize,
    /// Unauthenticated connections held at once; at most `max_connections`.
    pub max_unauthenticated: usize,
    /// Unauthenticated connections held at once per source.
    pub max_unauthenticated_per_address: usize,
    /// How long a connection may stay unauthenticated; `None`: no deadline.
    pub unauthenticated_timeout: Option<Duration>,
    /// IPv6 sources are grouped by this prefix length: 64 for listeners
    /// facing hosts (recorders, operators), 128 for listeners facing
    /// devices identified by their address (cameras).
    pub ipv6_prefix: u8,
}

/// Why a connection was refused at accept (a bounded metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` reached.
    Capacity,
    /// The source already holds its unauthenticated connections.
    PerAddress,
    /// The unauthenticated share is full and nobody holds more than the
    /// newcomer's source.
    Unauthenticated,
}

impl Refusal {
    /// Every reason, in the order of [`Refusal::index`].
    pub const ALL: [Refusal; 3] = [
        Refusal::Capacity,
        Refusal::PerAddress,
        Refusal::Unauthenticated,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Capacity => "capacity",
            Refusal::PerAddress => "per_address",
            Refusal::Unauthenticated => "unauthenticated",
        }
    }

    /// Position in [`Refusal::ALL`].
    pub fn index(self) -> usize {
        match self {
            Refusal::Capacity => 0,
            Refusal::PerAddress => 1,
            Refusal::Unauthenticated => 2,
        }
    }
}

/// Why [`ConnGuard::closed`] fired: the handler should close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// camgate is shutting down: finish what is in flight, then close.
    Shutdown,
    /// Another source needed the unauthenticated slot (fair eviction).
    Evicted,
    /// The connection did not authenticate within the deadline.
    UnauthenticatedTimeout,
}

/// A source as the per-address caps count it: IPv4 address (IPv4-mapped
/// IPv6 included), or IPv6 address truncated to the pool's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceKey(IpAddr);

impl SourceKey {
    /// The key of `ip` when IPv6 sources are grouped by `ipv6_prefix` bits.
    pub fn new(ip: IpAddr, ipv6_prefix: u8) -> SourceKey {
        match canonical_ip(ip) {
            IpAddr::V6(v6) => {
                let bits = u32::from(ipv6_prefix.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                SourceKey(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask)))
            }
            v4 => SourceKey(v4),
        }
    }
}

/// One unauthenticated connection in the [`Table`].
#[derive(Debug)]
struct Entry {
    id: u64,
    /// Cancelled when the connection is evicted.
    evict: CancellationToken,
}

/// Unauthenticated connections per source, with the fair-eviction rule
/// (see the module doc). No I/O and no clock: the pool calls it under its
/// lock.
#[derive(Debug)]
pub struct Table {
    per_source: usize,
    max: usize,
    /// Oldest first. A source is present only while it holds a connection.
    by_source: HashMap<SourceKey, VecDeque<Entry>>,
    total: usize,
}

impl Table {
    /// A table allowing `max` unauthenticated connections, `per_source`
    /// from any one source.
    pub fn new(max: usize, per_source: usize) -> Table {
        Table {
            per_source,
            max,
            by_source: HashMap::new(),
            total: 0,
        }
    }

    /// Admits connection `id` from `key`. On success, returns the eviction
    /// token of the connection that made room for it, if one had to.
    pub fn admit(
        &mut self,
        key: SourceKey,
        id: u64,
        evict: CancellationToken,
    ) -> Result<Option<CancellationToken>, Refusal> {
        let held = self.by_source.get(&key).map_or(0, VecDeque::len);
        if held >= self.per_source {
            return Err(Refusal::PerAddress);
        }
        let mut evicted = None;
        if self.total >= self.max {
            let heaviest = self
                .by_source
                .iter()
                .filter(|(k, _)| **k != key)
                .max_by_key(|(_, q)| q.len())
                .map(|(k, q)| (*k, q.len()));
            match heaviest {
                Some((victim, n)) if n >= held + 2 => {
                    evicted = self.pop_oldest(victim).map(|e| e.evict);
                }
                _ => return Err(Refusal::Unauthenticated),
            }
        }
        self.by_source
            .entry(key)
            .or_default()
            .push_back(Entry { id, evict });
        self.total += 1;
        Ok(evicted)
    }

    fn pop_oldest(&mut self, key: SourceKey) -> Option<Entry> {
        let q = self.by_source.get_mut(&key)?;
        let e = q.pop_front();
        if q.is_empty() {
            self.by_source.remove(&key);
        }
        if e.is_some() {
            self.total -= 1;
        }
        e
    }

    /// Removes connection `id` of `key` (authenticated, closed). False if
    /// it was not there (already evicted or released).
    pub fn release(&mut self, key: SourceKey, id: u64) -> bool {
        let Some(q) = self.by_source.get_mut(&key) else {
            return false;
        };
        let Some(i) = q.iter().position(|e| e.id == id) else {
            return false;
        };
        q.remove(i);
        if q.is_empty() {
            self.by_source.remove(&key);
        }
        self.total -= 1;
        true
    }

    /// Unauthenticated connections held.
    pub fn len(&self) -> usize {
        self.total
    }

    /// True when no unauthenticated connection is held.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Sources holding at least one unauthenticated connection.
    pub fn sources(&self) -> usize {
        self.by_source.len()
    }

    /// Unauthenticated connections held by `key`.
    pub fn held_by(&self, key: SourceKey) -> usize {
        self.by_source.get(&key).map_or(0, VecDeque::len)
    }
}

/// The limits, table and metrics shared by the listeners of one protocol.
/// Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    /// Metric label and log field: `rtsp`, `http`, `admin`, `dns`, `trap`.
    name: &'static str,
    limits: Limits,
    slots: Arc<Semaphore>,
    /// A std mutex: held for a table operation, never across `.await`.
    table: Mutex<Table>,
    next_id: AtomicU64,
    metrics: ListenerMetrics,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.inner.name)
            .field("limits", &self.inner.limits)
            .finish()
    }
}

impl Pool {
    /// A pool named `name` (the `listener` label) with `limits`.
    /// `max_unauthenticated` and the per-address cap are clamped to
    /// `max_connections` (validation already refuses larger values).
    pub fn new(name: &'static str, limits: Limits, metrics: &Metrics) -> Pool {
        let max = limits.max_connections.max(1);
        let limits = Limits {
            max_connections: max,
            max_unauthenticated: limits.max_unauthenticated.clamp(1, max),
            max_unauthenticated_per_address: limits.max_unauthenticated_per_address.clamp(1, max),
            ..limits
        };
        Pool {
            inner: Arc::new(PoolInner {
                name,
                limits,
                slots: Arc::new(Semaphore::new(max)),
                table: Mutex::new(Table::new(
                    limits.max_unauthenticated,
                    limits.max_unauthenticated_per_address,
                )),
                next_id: AtomicU64::new(1),
                metrics: metrics.listener(name),
            }),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// The pool's name (the `listener` label).
    pub fn name(&self) -> &'static str {
        self.inner.name
    }

    /// Unauthenticated connections held now.
    pub fn unauthenticated(&self) -> usize {
        self.inner.lock().len()
    }

    /// Admits a connection from `peer`, or says why not (counted and
    /// logged here). `shutdown` is the listener's token.
    pub fn admit(
        &self,
        peer: SocketAddr,
        shutdown: &CancellationToken,
    ) -> Result<ConnGuard, Refusal> {
        let r = self.try_admit(peer, shutdown);
        if let Err(reason) = r {
            self.inner.metrics.refused[reason.index()].inc();
            static REFUSED: LogLimiter = LogLimiter::new(10);
            if let Some(suppressed) = REFUSED.allow() {
                warn!(listener = self.inner.name, %peer, reason = reason.as_str(), suppressed,
                    "connection refused: limit reached");
            }
        }
        r
    }

    fn try_admit(
        &self,
        peer: SocketAddr,
        shutdown: &CancellationToken,
    ) -> Result<ConnGuard, Refusal> {
        let inner = &self.inner;
        let permit = inner
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Capacity)?;
        let key = SourceKey::new(peer.ip(), inner.limits.ipv6_prefix);
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let evict = CancellationToken::new();
        let evicted = {
            let mut t = inner.lock();
            let r = t.admit(key, id, evict.clone());
            inner.metrics.unauthenticated.set(t.len() as i64);
            r?
        };
        if let Some(victim) = evicted {
            victim.cancel();
            inner.metrics.evicted.inc();
            static EVICTED: LogLimiter = LogLimiter::new(10);
            if let Some(suppressed) = EVICTED.allow() {
                info!(listener = inner.name, %peer, suppressed,
                    "unauthenticated connections full: evicted one from the source holding the most");
            }
        }
        inner.metrics.open.inc();
        Ok(ConnGuard {
            inner: Arc::new(GuardInner {
                pool: self.inner.clone(),
                id,
                key,
                peer,
                shutdown: shutdown.clone(),
                evict,
                deadline: inner
                    .limits
                    .unauthenticated_timeout
                    .map(|t| Instant::now() + t),
                authenticated: AtomicBool::new(false),
                timed_out: AtomicBool::new(false),
                _permit: permit,
            }),
        })
    }
}

impl PoolInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        // The table stays consistent even if a holder panicked: each
        // operation is a few field updates.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self, key: SourceKey, id: u64) -> bool {
        let mut t = self.lock();
        let released = t.release(key, id);
        self.metrics.unauthenticated.set(t.len() as i64);
        released
    }
}

/// One admitted connection's hold on its pool: its slot, its place among
/// its source's unauthenticated connections until [`ConnGuard::authenticated`],
/// and its deadline. Clones share the hold; it is released when the last
/// clone drops. Handlers keep it for the connection's lifetime.
#[derive(Clone)]
pub struct ConnGuard {
    inner: Arc<GuardInner>,
}

struct GuardInner {
    pool: Arc<PoolInner>,
    id: u64,
    key: SourceKey,
    peer: SocketAddr,
    shutdown: CancellationToken,
    evict: CancellationToken,
    deadline: Option<Instant>,
    authenticated: AtomicBool,
    /// Set when `closed()` fired for the deadline (counted once, at drop).
    timed_out: AtomicBool,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for ConnGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnGuard")
            .field("listener", &self.inner.pool.name)
            .field("peer", &self.inner.peer)
            .field("authenticated", &self.is_authenticated())
            .finish()
    }
}

impl ConnGuard {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.inner.peer
    }

    /// Marks the connection authenticated: it leaves its source's
    /// unauthenticated count and loses its deadline. Idempotent; a no-op
    /// once the connection was evicted.
    pub fn authenticated(&self) {
        self.inner.authenticate();
    }

    /// Whether [`ConnGuard::authenticated`] was called.
    pub fn is_authenticated(&self) -> bool {
        self.inner.authenticated.load(Ordering::Acquire)
    }

    /// A handle for code that may authenticate the connection but must not
    /// keep its slot (an HTTP request's extensions).
    pub fn auth_handle(&self) -> AuthHandle {
        AuthHandle(Arc::downgrade(&self.inner))
    }

    /// Completes when the connection should close: shutdown, eviction, or
    /// the unauthenticated deadline (which never fires once authenticated).
    /// Cancel-safe; may be polled from several places.
    pub async fn closed(&self) -> Ended {
        let inner = &self.inner;
        let deadline = async {
            match inner.deadline {
                Some(d) if !self.is_authenticated() => {
                    tokio::time::sleep_until(d).await;
                    if self.is_authenticated() {
                        std::future::pending::<()>().await;
                    }
                }
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = inner.shutdown.cancelled() => Ended::Shutdown,
            _ = inner.evict.cancelled() => Ended::Evicted,
            _ = deadline => {
                inner.timed_out.store(true, Ordering::Relaxed);
                Ended::UnauthenticatedTimeout
            }
        }
    }
}

impl GuardInner {
    fn authenticate(&self) {
        if self.authenticated.swap(true, Ordering::AcqRel) {
            return;
        }
        self.pool.release(self.key, self.id);
    }
}

impl Drop for GuardInner {
    fn drop(&mut self) {
        if !self.authenticated.load(Ordering::Acquire) {
            self.pool.release(self.key, self.id);
        }
        if self.timed_out.load(Ordering::Relaxed) {
            self.pool.metrics.timed_out.inc();
        }
        self.pool.metrics.open.dec();
    }
}

/// A weak handle on a connection's [`ConnGuard`], for marking it
/// authenticated from a request handler. The HTTP server puts one in every
/// request's extensions; it does not keep the connection's slot.
#[derive(Clone, Debug)]
pub struct AuthHandle(Weak<GuardInner>);

impl AuthHandle {
    /// Marks the connection authenticated (see [`ConnGuard::authenticated`]);
    /// a no-op once the connection is gone.
    pub fn authenticated(&self) {
        if let Some(g) = self.0.upgrade() {
            g.authenticate();
        }
    }
}

impl std::fmt::Debug for GuardInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuardInner")
            .field("peer", &self.peer)
            .finish()
    }
}

/// A listener that could not be bound, naming its address.
#[derive(Debug, thiserror::Error)]
#[error("cannot bind {addr}: {source}")]
pub struct BindError {
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the system said.
    #[source]
    pub source: io::Error,
}

/// A bound TCP listener and the pool its connections count against.
#[derive(Debug)]
pub struct Listener {
    tcp: TcpListener,
    pool: Pool,
    local: SocketAddr,
}

impl Listener {
    /// Binds `addr` for `pool`.
    pub async fn bind(addr: SocketAddr, pool: Pool) -> Result<Listener, BindError> {
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })?;
        Ok(Listener::from_tcp(tcp, pool, addr))
    }

    /// Wraps a listener bound elsewhere (with socket options of its own);
    /// `addr` is used if the bound address cannot be read.
    pub fn from_tcp(tcp: TcpListener, pool: Pool, addr: SocketAddr) -> Listener {
        let local = tcp.local_addr().unwrap_or(addr);
        Listener { tcp, pool, local }
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The pool the listener counts against.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Accepts until `cancel`. An admitted connection is handed to `serve`
    /// with its guard (the returned future runs on `tracker`); a refused one
    /// to `refuse`, which must not block (write with `try_write`, or
    /// spawn). Accept errors back off (10 ms doubling to 1 s) rather than
    /// spin when the process is out of descriptors.
    pub async fn run<S, F, R>(
        self,
        cancel: CancellationToken,
        tracker: TaskTracker,
        serve: S,
        refuse: R,
    ) where
        S: Fn(TcpStream, ConnGuard) -> F,
        F: Future<Output = ()> + Send + 'static,
        R: Fn(TcpStream, SocketAddr, Refusal),
    {
        static ACCEPT_ERR: LogLimiter = LogLimiter::new(10);
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.tcp.accept() => r,
            };
            let (stream, peer) = match accepted {
                Ok(x) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    x
                }
                // One connection's trouble (it was reset while queued):
                // nothing to wait for.
                Err(e) if per_connection(&e) => continue,
                Err(e) => {
                    if let Some(suppressed) = ACCEPT_ERR.allow() {
                        warn!(listener = self.pool.name(), addr = %self.local, error = %e,
                            suppressed, "accept failed: backing off");
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            match self.pool.admit(peer, &cancel) {
                Ok(guard) => {
                    tracker.spawn(serve(stream, guard));
                }
                Err(reason) => refuse(stream, peer, reason),
            }
        }
        info!(listener = self.pool.name(), addr = %self.local, "listener stopped");
    }
}

/// Accept errors about the one connection being accepted.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// A `refuse` callback that writes `answer` if the socket takes it at once
/// (a fresh socket's send buffer is empty), then closes.
pub fn refuse_with(answer: &'static [u8]) -> impl Fn(TcpStream, SocketAddr, Refusal) {
    move |stream, _, _| {
        let _ = stream.try_write(answer);
    }
}

/// A `refuse` callback that closes at once.
pub fn refuse_silently(_: TcpStream, _: SocketAddr, _: Refusal) {}

#[cfg(test)]
mod tests;
