//! DNS over TCP for the sinkhole (RFC 7766), on camgate's own accept loop:
//! hickory's `register_listener` accepts without limits, so the sinkhole's
//! TCP side runs on a [`crate::listener::Listener`] (a connection cap, a cap
//! per camera address) and hands each query to the same [`Handler`] the
//! UDP side uses.
//!
//! Per connection: queries are answered one at a time, in order; a
//! connection that sends no complete query (or does not take its answer)
//! within `dns.tcp_idle_timeout_secs` is closed, and so is one that sends a
//! message camgate cannot read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_server::net::NetError;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::proto::op::MessageType;
use hickory_server::proto::rr::Record;
use hickory_server::proto::serialize::binary::BinEncoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::dns::Handler;
use crate::config::DnsConfig;
use crate::listener::{ConnGuard, Limits, Listener, refuse_silently};

/// Smallest DNS message: the header.
const HEADER_BYTES: usize = 12;

/// The DNS-over-TCP limits of `cfg`. Cameras are sources by their own
/// address (one /128 each); nothing on this listener authenticates.
pub fn limits(cfg: &DnsConfig) -> Limits {
    Limits {
        max_connections: cfg.tcp_max_connections,
        max_unauthenticated: cfg.tcp_max_connections,
        max_unauthenticated_per_address: cfg.tcp_max_connections_per_address,
        unauthenticated_timeout: None,
        ipv6_prefix: 128,
    }
}

/// Serves DNS over TCP on `listener` until `cancel`.
pub async fn serve(
    listener: Listener,
    handler: Arc<Handler>,
    idle: Duration,
    cancel: CancellationToken,
    tracker: TaskTracker,
) {
    let serve = move |stream: TcpStream, guard: ConnGuard| {
        let handler = handler.clone();
        async move {
            let peer = guard.peer();
            tokio::select! {
                r = connection(&handler, stream, peer, idle) => {
                    if let Err(why) = r {
                        debug!(%peer, why, "DNS-over-TCP connection closed");
                    }
                }
                _ = guard.closed() => {}
            }
        }
    };
    listener.run(cancel, tracker, serve, refuse_silently).await;
}

/// Answers the queries of one connection until it closes or stalls.
async fn connection(
    handler: &Handler,
    mut stream: TcpStream,
    peer: SocketAddr,
    idle: Duration,
) -> Result<(), &'static str> {
    let _ = stream.set_nodelay(true);
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(idle, stream.read_exact(&mut len)).await {
            Err(_) => return Err("idle"),
            // The client closed between queries: the normal end.
            Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len < HEADER_BYTES {
            return Err("message shorter than a DNS header");
        }
        let mut msg = vec![0u8; len];
        tokio::time::timeout(idle, stream.read_exact(&mut msg))
            .await
            .map_err(|_| "idle in the middle of a query")?
            .map_err(|_| "closed in the middle of a query")?;
        let request =
            Request::from_bytes(msg, peer, Protocol::Tcp).map_err(|_| "unreadable DNS message")?;
        if request.metadata.message_type == MessageType::Response {
            // Never answer answers (reflection).
            return Err("a response instead of a query");
        }
        let answer = Answer::default();
        handler
            .handle_request::<_, TokioTime>(&request, answer.clone())
            .await;
        let Some(bytes) = answer.take() else {
            continue;
        };
        let Ok(n) = u16::try_from(bytes.len()) else {
            return Err("answer over 65535 bytes");
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&n.to_be_bytes());
        framed.extend_from_slice(&bytes);
        tokio::time::timeout(idle, stream.write_all(&framed))
            .await
            .map_err(|_| "the client does not read its answers")?
            .map_err(|_| "closed before its answer")?;
    }
}

/// Collects the handler's answer (one per query) for the connection to
/// write. A std mutex: held to store or take, never across `.await`.
#[derive(Clone, Default)]
struct Answer(Arc<Mutex<Option<Vec<u8>>>>);

impl Answer {
    fn take(&self) -> Option<Vec<u8>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Answer {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(u16::MAX);
        let info = response
            .destructive_emit(&mut encoder)
            .map_err(|e| NetError::from(format!("cannot encode a DNS answer: {e}")))?;
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
        Ok(info)
    }
}
