//! The DNS sinkhole: the resolver the camera network is given. Names the
//! operator allows are forwarded to the site's resolver (or answered from
//! static entries); names in a vendor category are sinkholed (NXDOMAIN, or
//! a trap-pool address so the follow-up connection is caught and named);
//! everything else is refused. The asking address identifies the device;
//! every query is counted, and every address handed out is remembered so
//! the egress trap can tell a looked-up destination from a bare IP.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ProtocolConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_server::net::runtime::Time;
use hickory_server::proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_server::proto::rr::rdata::{A, AAAA};
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use super::book::Book;
use super::categories::Categories;
use crate::config::{DnsConfig, Sinkhole};
use crate::metrics::Metrics;
use crate::ratelimit::LogLimiter;

/// Upstream lookups in flight at once; beyond, queries get SERVFAIL at
/// once (a flood of allowed names cannot pile up tasks).
const MAX_FORWARDS: usize = 256;

/// Category label of operator-listed names (allowed or static).
const SITE: &str = "site";
/// Category label of names no category lists.
const UNKNOWN: &str = "unknown";

/// What a query got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Static(Vec<IpAddr>),
    Forward,
    /// Vendor name: the category id.
    Sinkhole(String),
    Refuse,
}

/// Decides what a name gets (`name`: lower case, no final dot).
pub fn decide(cfg: &DnsConfig, categories: &Categories, name: &str) -> Decision {
    if let Some((_, addrs)) = cfg.statics.iter().find(|(n, _)| n == name) {
        return Decision::Static(addrs.clone());
    }
    if cfg.allow.iter().any(|p| p.matches(name)) {
        return Decision::Forward;
    }
    match categories.by_name(name) {
        Some(c) => Decision::Sinkhole(c.id.clone()),
        None => Decision::Refuse,
    }
}

/// The request handler hickory-server calls for each query.
pub struct Handler {
    cfg: DnsConfig,
    categories: Arc<Categories>,
    book: Arc<Book>,
    metrics: Metrics,
    upstream: Option<TokioResolver>,
    forwards: Semaphore,
}

impl Handler {
    pub fn new(
        cfg: DnsConfig,
        categories: Arc<Categories>,
        book: Arc<Book>,
        metrics: Metrics,
    ) -> Result<Handler, String> {
        let upstream = if cfg.upstream.is_empty() {
            None
        } else {
            let servers = cfg
                .upstream
                .iter()
                .map(|a| {
                    let conn = |protocol| {
                        let mut c = ConnectionConfig::new(protocol);
                        c.port = a.port();
                        c
                    };
                    NameServerConfig::new(
                        a.ip(),
                        true,
                        vec![conn(ProtocolConfig::Udp), conn(ProtocolConfig::Tcp)],
                    )
                })
                .collect();
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            let o = b.options_mut();
            o.timeout = cfg.upstream_timeout;
            o.attempts = 1;
            o.ndots = 0;
            o.use_hosts_file = ResolveHosts::Never;
            Some(
                b.build()
                    .map_err(|e| format!("cannot set up the upstream resolver: {e}"))?,
            )
        };
        Ok(Handler {
            cfg,
            categories,
            book,
            metrics,
            upstream,
            forwards: Semaphore::new(MAX_FORWARDS),
        })
    }

    /// Answers with `code` and `answers`.
    async fn send<R: ResponseHandler>(
        request: &Request,
        mut rh: R,
        code: ResponseCode,
        answers: &[Record],
    ) -> ResponseInfo {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = code;
        metadata.recursion_available = true;
        let resp = MessageResponseBuilder::from_message_request(request).build(
            metadata,
            answers.iter(),
            std::iter::empty(),
            std::iter::empty(),
            std::iter::empty(),
        );
        match rh.send_response(resp).await {
            Ok(info) => info,
            Err(e) => {
                static SEND: LogLimiter = LogLimiter::new(10);
                if let Some(suppressed) = SEND.allow() {
                    warn!(error = %e, suppressed, "cannot send a DNS answer");
                }
                ResponseInfo::from(Header {
                    metadata,
                    counts: HeaderCounts::default(),
                })
            }
        }
    }

    fn records(name: &Name, ttl: u32, qtype: RecordType, addrs: &[IpAddr]) -> Vec<Record> {
        addrs
            .iter()
            .filter_map(|a| match (qtype, a) {
                (RecordType::A | RecordType::ANY, IpAddr::V4(v4)) => {
                    Some(Record::from_rdata(name.clone(), ttl, RData::A(A(*v4))))
                }
                (RecordType::AAAA | RecordType::ANY, IpAddr::V6(v6)) => Some(Record::from_rdata(
                    name.clone(),
                    ttl,
                    RData::AAAA(AAAA(*v6)),
                )),
                _ => None,
            })
            .collect()
    }

    async fn forward(
        &self,
        src: SocketAddr,
        name: &str,
        query_name: &Name,
        qtype: RecordType,
    ) -> Result<(ResponseCode, Vec<Record>), ()> {
        let Some(resolver) = &self.upstream else {
            return Err(());
        };
        let Ok(_slot) = self.forwards.try_acquire() else {
            return Err(());
        };
        match resolver.lookup(query_name.clone(), qtype).await {
            Ok(lookup) => {
                let answers: Vec<Record> = lookup.answers().to_vec();
                for r in &answers {
                    match &r.data {
                        RData::A(a) => self.book.resolved(src.ip(), IpAddr::V4(a.0), name),
                        RData::AAAA(a) => self.book.resolved(src.ip(), IpAddr::V6(a.0), name),
                        _ => {}
                    }
                }
                Ok((ResponseCode::NoError, answers))
            }
            Err(e) if e.is_nx_domain() => Ok((ResponseCode::NXDomain, Vec::new())),
            Err(e) if e.is_no_records_found() => Ok((ResponseCode::NoError, Vec::new())),
            Err(e) => {
                static UP: LogLimiter = LogLimiter::new(10);
                if let Some(suppressed) = UP.allow() {
                    warn!(name, error = %e, suppressed, "upstream DNS lookup failed");
                }
                Err(())
            }
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        let src = request.src();
        let device = self.book.device_of(src.ip()).to_string();
        let m = &request.metadata;
        if m.message_type != MessageType::Query || m.op_code != OpCode::Query {
            self.metrics.dns_query(&device, "malformed", UNKNOWN);
            return Self::send(request, response_handle, ResponseCode::NotImp, &[]).await;
        }
        let Ok(info) = request.request_info() else {
            // Not exactly one question.
            self.metrics.dns_query(&device, "malformed", UNKNOWN);
            return Self::send(request, response_handle, ResponseCode::FormErr, &[]).await;
        };
        let qtype = info.query.query_type();
        let query_name: Name = info.query.original().name().clone();
        let full = info.query.name().to_string();
        let name = full.trim_end_matches('.').to_ascii_lowercase();
        if info.query.original().query_class() != DNSClass::IN {
            self.metrics.dns_query(&device, "refused", UNKNOWN);
            return Self::send(request, response_handle, ResponseCode::Refused, &[]).await;
        }
        let ttl = self.cfg.ttl_secs;
        match decide(&self.cfg, &self.categories, &name) {
            Decision::Static(addrs) => {
                for a in &addrs {
                    self.book.resolved(src.ip(), *a, &name);
                }
                self.metrics.dns_query(&device, "static", SITE);
                let answers = Self::records(&query_name, ttl, qtype, &addrs);
                Self::send(request, response_handle, ResponseCode::NoError, &answers).await
            }
            Decision::Forward => match self.forward(src, &name, &query_name, qtype).await {
                Ok((code, answers)) => {
                    self.metrics.dns_query(&device, "allowed", SITE);
                    Self::send(request, response_handle, code, &answers).await
                }
                Err(()) => {
                    self.metrics.dns_query(&device, "failed", SITE);
                    Self::send(request, response_handle, ResponseCode::ServFail, &[]).await
                }
            },
            Decision::Sinkhole(category) => {
                self.metrics.dns_query(&device, "sinkholed", &category);
                static SINK: LogLimiter = LogLimiter::new(5);
                if let Some(suppressed) = SINK.allow() {
                    info!(device, source = %src.ip(), name, %category, suppressed, "vendor name sinkholed");
                }
                match self.cfg.sinkhole {
                    Sinkhole::NxDomain => {
                        Self::send(request, response_handle, ResponseCode::NXDomain, &[]).await
                    }
                    Sinkhole::Trap(_) => {
                        let addr = self.book.pool_address(&name).map(IpAddr::V4);
                        if let Some(a) = addr {
                            self.book.resolved(src.ip(), a, &name);
                        }
                        let answers = Self::records(&query_name, ttl, qtype, addr.as_slice());
                        Self::send(request, response_handle, ResponseCode::NoError, &answers).await
                    }
                }
            }
            Decision::Refuse => {
                self.metrics.dns_query(&device, "refused", UNKNOWN);
                static REFUSED: LogLimiter = LogLimiter::new(5);
                if let Some(suppressed) = REFUSED.allow() {
                    info!(
                        device,
                        name, suppressed, "DNS name refused (not allowed, no category)"
                    );
                }
                Self::send(request, response_handle, ResponseCode::Refused, &[]).await
            }
        }
    }
}

/// The handler shared by hickory's UDP server and camgate's own TCP
/// listener ([`super::dns_tcp`]).
pub struct Shared(pub Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for Shared {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        self.0
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> crate::config::Config {
        crate::config::tests_support::config_with(extra)
    }

    #[test]
    fn decisions() {
        let c = cfg(
            "[dns]\nupstream = [\"127.0.0.1:5353\"]\nallow = [\"*.site.example\", \"pool.ntp.org\"]\n\
             [[dns.static]]\nname = \"ntp.site.example\"\naddresses = [\"10.0.0.123\"]\n",
        );
        let cats = &c.egress.categories;
        let d = |n: &str| decide(&c.dns, cats, n);
        assert_eq!(
            d("ntp.site.example"),
            Decision::Static(vec!["10.0.0.123".parse().unwrap()])
        );
        assert_eq!(d("files.site.example"), Decision::Forward);
        // The operator's allow list wins over the vendor categories.
        assert_eq!(d("pool.ntp.org"), Decision::Forward);
        assert_eq!(d("0.pool.ntp.org"), Decision::Sinkhole("ntp_vendor".into()));
        assert_eq!(
            d("litedev.hik-connect.com"),
            Decision::Sinkhole("hik_connect".into())
        );
        assert_eq!(d("example.com"), Decision::Refuse);
        assert_eq!(d("11.0.20.10.in-addr.arpa"), Decision::Refuse);
    }
}
