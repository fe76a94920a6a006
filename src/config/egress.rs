//! Validation of `[dns]` and `[egress]`: names, addresses, the sinkhole
//! mode, allow rules against the inventory, the categories file, the
//! camera side `camgate nft` confines.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::schema::{DnsSection, EgressSection};
use super::validate::Checker;
use super::{Device, DeviceSet};
use crate::egress::categories::Categories;

/// What the sinkhole answers for vendor names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sinkhole {
    NxDomain,
    /// An address from this range, one per name.
    Trap(Ipv4Net),
}

/// A name pattern of `[dns].allow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamePattern {
    /// This name only.
    Exact(String),
    /// Every name under this one (`*.site.example`), not the name itself.
    Under(String),
}

impl NamePattern {
    /// `name`: lower case, without the final dot.
    pub fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(n) => n == name,
            NamePattern::Under(n) => name
                .strip_suffix(n.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// The validated `[dns]`.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub listen: Option<SocketAddr>,
    pub upstream: Vec<SocketAddr>,
    pub allow: Vec<NamePattern>,
    /// Lower-case name (no final dot) and its addresses.
    pub statics: Vec<(String, Vec<IpAddr>)>,
    pub sinkhole: Sinkhole,
    pub ttl_secs: u32,
    pub upstream_timeout: Duration,
    /// DNS-over-TCP connections held at once, and per source address.
    pub tcp_max_connections: usize,
    pub tcp_max_connections_per_address: usize,
    /// A DNS-over-TCP connection idle this long is closed.
    pub tcp_idle_timeout: Duration,
}

/// A `[[egress.allow]]` rule.
#[derive(Debug, Clone)]
pub struct EgressAllow {
    pub devices: DeviceSet,
    pub to: SocketAddr,
    pub reason: String,
}

/// The validated `[egress]`.
#[derive(Debug, Clone)]
pub struct EgressConfig {
    pub trap_tcp: Option<SocketAddr>,
    pub trap_udp: Option<SocketAddr>,
    pub peek_timeout: Duration,
    pub max_connections: usize,
    /// Trapped connections one source address (a camera) may hold.
    pub max_connections_per_device: usize,
    pub ntp_servers: Vec<IpAddr>,
    pub camera_interface: Option<String>,
    /// The camera side's networks, validated: network addresses (no host
    /// bits), none inside another.
    pub camera_networks: Vec<IpNet>,
    pub forward_idle_timeout: Duration,
    /// A forwarded connection whose peer does not take bytes this long is closed.
    pub forward_write_timeout: Duration,
    pub allow: Vec<EgressAllow>,
    pub categories: Arc<Categories>,
}

/// `egress.max_connections_per_device` when not set (at most
/// `max_connections`).
const DEFAULT_PER_DEVICE: usize = 64;

/// A DNS name as configured: lower case, no final dot, RFC 1035 lengths,
/// letters, digits, `-` and `_`.
pub fn clean_name(raw: &str) -> Option<String> {
    let n = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    ok.then_some(n)
}

impl Checker<'_> {
    /// `[dns]`.
    pub fn dns(&mut self, s: &DnsSection) -> Option<DnsConfig> {
        let before = self.problems.len();
        let mut allow = Vec::new();
        for (i, a) in s.allow.iter().enumerate() {
            let (under, rest) = match a.strip_prefix("*.") {
                Some(r) => (true, r),
                None => (false, a.as_str()),
            };
            match clean_name(rest) {
                Some(n) if under => allow.push(NamePattern::Under(n)),
                Some(n) => allow.push(NamePattern::Exact(n)),
                None => self.problem(
                    format!("dns.allow[{i}]"),
                    format!("{a:?} is not a DNS name (or *.name)"),
                ),
            }
        }
        let mut statics = Vec::new();
        for (i, e) in s.statics.iter().enumerate() {
            match clean_name(&e.name) {
                Some(n) if !e.addresses.is_empty() => statics.push((n, e.addresses.clone())),
                Some(_) => self.problem(
                    format!("dns.static[{i}].addresses"),
                    "at least one address is required",
                ),
                None => self.problem(
                    format!("dns.static[{i}].name"),
                    format!("{:?} is not a DNS name", e.name),
                ),
            }
        }
        if !allow.is_empty() && s.upstream.is_empty() {
            self.problem(
                "dns.upstream",
                "dns.allow names are forwarded to dns.upstream, which is empty (or answer them with [[dns.static]])",
            );
        }
        let sinkhole = match s.sinkhole.as_str() {
            "nxdomain" => Some(Sinkhole::NxDomain),
            "trap" => match s.trap_pool.parse::<Ipv4Net>() {
                Ok(net) if net.prefix_len() <= 30 => Some(Sinkhole::Trap(net.trunc())),
                Ok(_) => {
                    self.problem(
                        "dns.trap_pool",
                        "must hold at least 2 addresses (/30 or larger)",
                    );
                    None
                }
                Err(_) => {
                    self.problem(
                        "dns.trap_pool",
                        format!("{:?} is not an IPv4 network (a.b.c.d/len)", s.trap_pool),
                    );
                    None
                }
            },
            other => {
                self.problem(
                    "dns.sinkhole",
                    format!("{other:?}: expected \"nxdomain\" or \"trap\""),
                );
                None
            }
        };
        if !(1..=86_400).contains(&s.ttl_secs) {
            self.problem("dns.ttl_secs", "must be between 1 and 86400");
        }
        if !(1..=60).contains(&s.upstream_timeout_secs) {
            self.problem("dns.upstream_timeout_secs", "must be between 1 and 60");
        }
        if !(1..=65_536).contains(&s.tcp_max_connections) {
            self.problem("dns.tcp_max_connections", "must be between 1 and 65536");
        }
        if s.tcp_max_connections_per_address == 0
            || s.tcp_max_connections_per_address > s.tcp_max_connections
        {
            self.problem(
                "dns.tcp_max_connections_per_address",
                "must be between 1 and dns.tcp_max_connections",
            );
        }
        if !(1..=3600).contains(&s.tcp_idle_timeout_secs) {
            self.problem("dns.tcp_idle_timeout_secs", "must be between 1 and 3600");
        }
        if self.problems.len() > before {
            return None;
        }
        Some(DnsConfig {
            listen: s.listen,
            upstream: s.upstream.clone(),
            allow,
            statics,
            sinkhole: sinkhole?,
            ttl_secs: s.ttl_secs,
            upstream_timeout: Duration::from_secs(s.upstream_timeout_secs),
            tcp_max_connections: s.tcp_max_connections,
            tcp_max_connections_per_address: s.tcp_max_connections_per_address,
            tcp_idle_timeout: Duration::from_secs(s.tcp_idle_timeout_secs),
        })
    }

    /// `[egress]`, with its allow rules checked against the devices.
    pub fn egress(&mut self, s: &EgressSection, devices: &[Device]) -> Option<EgressConfig> {
        let before = self.problems.len();
        let categories = match &s.categories {
            None => Some(Categories::built_in()),
            Some(f) => {
                let path = self.base_dir.join(f);
                match std::fs::read_to_string(&path) {
                    Ok(text) => match Categories::parse(&text, &path.display().to_string()) {
                        Ok(c) => Some(c),
                        Err(errors) => {
                            for e in errors {
                                self.problem("egress.categories", e);
                            }
                            None
                        }
                    },
                    Err(e) => {
                        self.problem(
                            "egress.categories",
                            format!("cannot read {}: {e}", path.display()),
                        );
                        None
                    }
                }
            }
        };
        if !(1..=60).contains(&s.peek_timeout_secs) {
            self.problem("egress.peek_timeout_secs", "must be between 1 and 60");
        }
        if !(1..=86_400).contains(&s.forward_idle_timeout_secs) {
            self.problem(
                "egress.forward_idle_timeout_secs",
                "must be between 1 and 86400",
            );
        }
        if !(1..=65_536).contains(&s.max_connections) {
            self.problem("egress.max_connections", "must be between 1 and 65536");
        }
        let per_device = s
            .max_connections_per_device
            .unwrap_or(DEFAULT_PER_DEVICE.min(s.max_connections));
        if per_device == 0 || per_device > s.max_connections {
            self.problem(
                "egress.max_connections_per_device",
                "must be between 1 and egress.max_connections",
            );
        }
        if !(1..=3600).contains(&s.forward_write_timeout_secs) {
            self.problem(
                "egress.forward_write_timeout_secs",
                "must be between 1 and 3600",
            );
        }
        if let Some(i) = &s.camera_interface
            && (i.is_empty()
                || i.len() > 15
                || !i
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
        {
            self.problem(
                "egress.camera_interface",
                format!("{i:?} is not an interface name"),
            );
        }
        let camera_networks = self.camera_side(s, devices);
        let mut allow = Vec::new();
        for (i, a) in s.allow.iter().enumerate() {
            let at = format!("egress.allow[{i}]");
            let Some(to) = a.to else {
                self.problem(format!("{at}.to"), "required: the destination address:port");
                continue;
            };
            if a.devices.is_empty() {
                self.problem(format!("{at}.devices"), "required: device ids or \"*\"");
                continue;
            }
            let set = if a.devices.iter().any(|d| d == "*") {
                DeviceSet::All
            } else {
                for d in &a.devices {
                    if !devices.iter().any(|x| x.id.as_str() == d) {
                        self.problem(format!("{at}.devices"), format!("no device {d:?}"));
                    }
                }
                DeviceSet::Only(a.devices.iter().cloned().collect())
            };
            allow.push(EgressAllow {
                devices: set,
                to,
                reason: a.reason.clone(),
            });
        }
        if !allow.is_empty() && s.trap_tcp.is_none() {
            self.warn(
                "egress.allow",
                "allow rules take effect in the TCP trap, and egress.trap_tcp is not set",
            );
        }
        if self.problems.len() > before {
            return None;
        }
        Some(EgressConfig {
            trap_tcp: s.trap_tcp,
            trap_udp: s.trap_udp,
            peek_timeout: Duration::from_secs(s.peek_timeout_secs),
            max_connections: s.max_connections,
            max_connections_per_device: per_device,
            ntp_servers: s.ntp_servers.clone(),
            camera_interface: s.camera_interface.clone(),
            camera_networks,
            forward_idle_timeout: Duration::from_secs(s.forward_idle_timeout_secs),
            forward_write_timeout: Duration::from_secs(s.forward_write_timeout_secs),
            allow,
            categories: Arc::new(categories?),
        })
    }
}

impl Checker<'_> {
    /// `egress.camera_networks`, and whether the camera side is known at
    /// all. An unknown side is a warning, not an error: `run` shares this
    /// validation, and the sinkhole and the trap work behind any firewall;
    /// `camgate nft` itself refuses to render without it.
    fn camera_side(&mut self, s: &EgressSection, devices: &[Device]) -> Vec<IpNet> {
        let mut nets: Vec<(usize, IpNet)> = Vec::new();
        for (i, raw) in s.camera_networks.iter().enumerate() {
            let at = format!("egress.camera_networks[{i}]");
            let net = match camera_network(raw) {
                Ok(n) => n,
                Err(m) => {
                    self.problem(at, m);
                    continue;
                }
            };
            // nft refuses overlapping elements in an interval set, and an
            // overlap is a typo more often than not.
            match nets
                .iter()
                .find(|(_, o)| o.contains(&net) || net.contains(o))
            {
                Some((j, o)) if *o == net => self.problem(
                    at,
                    format!("{net} is given twice (also egress.camera_networks[{j}])"),
                ),
                Some((j, o)) => self.problem(
                    at,
                    format!("{net} overlaps egress.camera_networks[{j}] ({o})"),
                ),
                None => nets.push((i, net)),
            }
        }
        let nets: Vec<IpNet> = nets.into_iter().map(|(_, n)| n).collect();
        let cameras: Vec<(&str, IpAddr)> = devices
            .iter()
            .filter_map(|d| Some((d.id.as_str(), d.camera_host()?.to_canonical())))
            .collect();
        let side_unknown = s.camera_interface.is_none() && s.camera_networks.is_empty();
        if side_unknown && (!cameras.is_empty() || s.trap_tcp.is_some() || s.trap_udp.is_some()) {
            self.warn(
                "egress.camera_networks",
                "neither egress.camera_networks nor egress.camera_interface is set: \
                 `camgate nft` refuses to render a ruleset, since it cannot tell the camera side \
                 (where hosts that are not in the inventory must be dropped)",
            );
        }
        if s.camera_interface.is_none() && !nets.is_empty() {
            for (id, ip) in cameras {
                if !nets.iter().any(|n| n.contains(&ip)) {
                    self.warn(
                        "egress.camera_networks",
                        format!(
                            "camera {id:?} ({ip}) is in none of these networks: its own traffic \
                             is confined by its address, but the network it lives on is not"
                        ),
                    );
                }
            }
        }
        nets
    }
}

/// IPv4-mapped IPv6 addresses (RFC 4291 2.5.5.2): never a packet's
/// source on the wire (Linux drops them on receipt).
const MAPPED: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96);
/// IPv6 link-local unicast (RFC 4291 2.5.6): present on every link.
const LINK_LOCAL: Ipv6Net = Ipv6Net::new_assert(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10);

/// One `egress.camera_networks` entry: a network address with its prefix
/// length, that can be a packet's source on the camera side.
fn camera_network(raw: &str) -> Result<IpNet, String> {
    if raw.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "{raw:?} has no prefix length: give a network (a.b.c.d/len or x::/len)"
        ));
    }
    let net: IpNet = raw
        .parse()
        .map_err(|_| format!("{raw:?} is not a network (a.b.c.d/len or x::/len)"))?;
    if net.trunc() != net {
        return Err(format!(
            "{raw:?} has host bits set: the network is {}",
            net.trunc()
        ));
    }
    if net.prefix_len() == 0 {
        return Err(format!(
            "{raw:?} is every address: recorders and camgate's uplink would be on the camera side"
        ));
    }
    match net {
        IpNet::V4(n) if n.addr().is_loopback() => {
            Err(format!("{raw:?} is loopback, never the camera side"))
        }
        IpNet::V4(n) if n.addr().is_multicast() || n.addr().is_broadcast() => Err(format!(
            "{raw:?} is multicast or broadcast, never a packet's source"
        )),
        IpNet::V6(n) => {
            if n.contains(&MAPPED) || MAPPED.contains(&n) {
                Err(format!(
                    "{raw:?} holds IPv4-mapped addresses, which never appear on the wire: \
                     give the IPv4 network instead"
                ))
            } else if n.contains(&LINK_LOCAL) || LINK_LOCAL.contains(&n) {
                Err(format!(
                    "{raw:?} is link-local: every link has it, recorders' too; \
                     use egress.camera_interface to confine link-local IPv6"
                ))
            } else if n.addr().is_loopback() || n.addr().is_multicast() {
                Err(format!(
                    "{raw:?} is loopback or multicast, never the camera side"
                ))
            } else {
                Ok(net)
            }
        }
        IpNet::V4(_) => Ok(net),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_patterns() {
        let under = NamePattern::Under("site.example".into());
        assert!(under.matches("ntp.site.example"));
        assert!(under.matches("a.b.site.example"));
        assert!(!under.matches("site.example"));
        assert!(!under.matches("evilsite.example"));
        let exact = NamePattern::Exact("ntp.site.example".into());
        assert!(exact.matches("ntp.site.example"));
        assert!(!exact.matches("x.ntp.site.example"));
    }

    #[test]
    fn camera_networks() {
        for ok in [
            "10.20.0.0/24",
            "10.20.0.11/32",
            "fd20::/64",
            "169.254.0.0/16",
        ] {
            assert_eq!(
                camera_network(ok).map(|n| n.to_string()),
                Ok(ok.to_string())
            );
        }
        for (bad, why) in [
            ("10.20.0.0", "no prefix length"),
            ("10.20.0.0/33", "not a network"),
            ("cams", "not a network"),
            (" 10.20.0.0/24", "not a network"),
            ("10.20.0.1/24", "host bits set: the network is 10.20.0.0/24"),
            ("fd20::1/64", "host bits set: the network is fd20::/64"),
            ("0.0.0.0/0", "every address"),
            ("::/0", "every address"),
            ("127.0.0.0/8", "loopback"),
            ("224.0.0.0/4", "multicast"),
            ("::ffff:10.20.0.0/120", "IPv4-mapped"),
            ("::/80", "IPv4-mapped"),
            ("fe80::/64", "link-local"),
            ("fe80::/10", "link-local"),
            ("ff02::/16", "multicast"),
            ("::1/128", "loopback"),
        ] {
            let e = camera_network(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn clean_names() {
        assert_eq!(
            clean_name("NTP.Site.Example.").as_deref(),
            Some("ntp.site.example")
        );
        assert_eq!(clean_name("a..b"), None);
        assert_eq!(clean_name("-"), None);
        assert_eq!(clean_name("a-.example"), None);
        assert_eq!(
            clean_name("_dmarc.example").as_deref(),
            Some("_dmarc.example")
        );
        assert_eq!(clean_name("a b"), None);
        assert_eq!(clean_name(&"a".repeat(64)), None);
        assert_eq!(clean_name(""), None);
    }
}
