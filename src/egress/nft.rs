//! `camgate nft`: the nftables ruleset that makes camgate the cameras' only
//! way out, rendered from the inventory and the camera side
//! (`egress.camera_interface`, `egress.camera_networks`).
//!
//! Inventoried cameras may reach camgate's DNS sinkhole and trap and the
//! site NTP servers, nothing else: their DNS is redirected to the sinkhole
//! whatever resolver they were given, their other TCP redirected to the
//! trap, their other UDP tproxied to it, and everything else they send
//! dropped; camgate's own connections to them (RTSP, HTTP) are answered.
//! Every other host on the camera side (a camera that changed its address,
//! one speaking IPv6, anything plugged in) reaches nothing, camgate
//! included, IPv6 neighbour discovery excepted; nothing is routed to the
//! camera side. camgate's own packets toward the camera side go only to
//! inventoried cameras (chain `output`): retina, pulling a camera over UDP,
//! sends RTP hole-punching datagrams wherever the camera's SETUP answer
//! points them (`source=`, `server_port`), and no other camera-side host is
//! to get them. Each drop has a counter (`nft list table inet camgate`).
//!
//! The camera side is what fails closed, so `render` refuses to guess it:
//! without an interface or a network of a family, that family's side is
//! unknown and camgate routes none of it (with networks only, a strict
//! reverse-path check ties a routed packet's source to the interface it
//! came in on). What nft cannot see (which MAC sent a packet) is the
//! switch's job; see the README.
//!
//! The ruleset lives in its own table (`inet camgate`) and replaces it
//! atomically when applied with `nft -f`. An `accept` here does not
//! override another table's `drop` (each base chain decides on its own),
//! so the host's own firewall still applies.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::config::Config;

/// Firewall mark of tproxied datagrams; routed locally by the policy rule
/// the ruleset's header shows.
pub const TPROXY_MARK: u32 = 0xca7e;
/// Routing table of that rule.
pub const TPROXY_TABLE: u32 = 202;

/// The named counter of camgate's own packets dropped on their way to a
/// camera-side host that is not an inventoried camera
/// (`nft list counter inet camgate own_packets_to_uninventoried`).
pub const OWN_TO_UNINVENTORIED: &str = "own_packets_to_uninventoried";

/// What `render` says when the camera side is unknown.
pub const NO_CAMERA_SIDE: &str = "the camera side is unknown: set egress.camera_networks (the \
     cameras' networks, e.g. [\"10.20.0.0/24\"]) or egress.camera_interface (the interface facing \
     them); without one, hosts that are not in the inventory cannot be dropped";

/// The two address families, rendered alike.
struct Family {
    /// `ip` or `ip6`.
    kw: &'static str,
    /// `ipv4` or `ipv6` (`meta nfproto`).
    proto: &'static str,
    /// `IPv4` or `IPv6`, for comments.
    name: &'static str,
    /// The set with this family's cameras (`@cameras4`), if any.
    cameras: Option<&'static str>,
    /// The set with this family's camera networks, if any.
    networks: Option<&'static str>,
    /// The set with this family's NTP servers, if any.
    ntp: Option<&'static str>,
}

/// An inventoried camera: id, address, pulled with RTP over UDP.
struct Camera<'a> {
    id: &'a str,
    ip: IpAddr,
    rtp_udp: bool,
}

fn set(name: &str, ty: &str, items: &[String], interval: bool) -> String {
    let flags = if interval { " flags interval;" } else { "" };
    format!(
        "    set {name} {{\n        type {ty};{flags}\n        elements = {{ {} }}\n    }}\n",
        items.join(", ")
    )
}

fn strings<T: ToString>(items: impl Iterator<Item = T>) -> Vec<String> {
    items.map(|i| i.to_string()).collect()
}

/// Renders the ruleset for `config`; fails when the camera side is unknown.
pub fn render(config: &Config) -> Result<String, String> {
    let e = &config.egress;
    if e.camera_interface.is_none() && e.camera_networks.is_empty() {
        return Err(NO_CAMERA_SIDE.into());
    }
    let cams: Vec<Camera<'_>> = config
        .devices
        .iter()
        .filter_map(|d| {
            let rtp_udp = matches!(
                &d.source,
                crate::config::DeviceSource::Camera(c)
                    if matches!(c.transport, retina::client::Transport::Udp(_))
            );
            // An IPv4-mapped host is an IPv4 camera on the wire.
            let ip = d.camera_host()?.to_canonical();
            Some(Camera {
                id: d.id.as_str(),
                ip,
                rtp_udp,
            })
        })
        .collect();
    let v4 = strings(cams.iter().map(|c| c.ip).filter(IpAddr::is_ipv4));
    let v6 = strings(cams.iter().map(|c| c.ip).filter(IpAddr::is_ipv6));
    let nets4 = strings(
        e.camera_networks
            .iter()
            .filter(|n| matches!(n, IpNet::V4(_))),
    );
    let nets6 = strings(
        e.camera_networks
            .iter()
            .filter(|n| matches!(n, IpNet::V6(_))),
    );
    let ntp4 = strings(e.ntp_servers.iter().filter(|a| a.is_ipv4()));
    let ntp6 = strings(e.ntp_servers.iter().filter(|a| a.is_ipv6()));
    let fams = [
        Family {
            kw: "ip",
            proto: "ipv4",
            name: "IPv4",
            cameras: (!v4.is_empty()).then_some("@cameras4"),
            networks: (!nets4.is_empty()).then_some("@camnets4"),
            ntp: (!ntp4.is_empty()).then_some("@ntp4"),
        },
        Family {
            kw: "ip6",
            proto: "ipv6",
            name: "IPv6",
            cameras: (!v6.is_empty()).then_some("@cameras6"),
            networks: (!nets6.is_empty()).then_some("@camnets6"),
            ntp: (!ntp6.is_empty()).then_some("@ntp6"),
        },
    ];
    let iface = e.camera_interface.as_deref();

    let mut s = header(config, &cams, &fams);
    s.push_str("\ntable inet camgate\ndelete table inet camgate\n\ntable inet camgate {\n");
    for (name, ty, items, interval) in [
        ("cameras4", "ipv4_addr", &v4, false),
        ("cameras6", "ipv6_addr", &v6, false),
        ("camnets4", "ipv4_addr", &nets4, true),
        ("camnets6", "ipv6_addr", &nets6, true),
        ("ntp4", "ipv4_addr", &ntp4, false),
        ("ntp6", "ipv6_addr", &ntp6, false),
    ] {
        if !items.is_empty() {
            s.push_str(&set(name, ty, items, interval));
        }
    }
    let _ = write!(
        s,
        "    # camgate's own packets to a camera-side host that is not an inventoried camera\n    \
         counter {OWN_TO_UNINVENTORIED} {{\n    }}\n"
    );
    prerouting(&mut s, config, &fams);
    input(&mut s, config, &cams, &fams, iface);
    forward(&mut s, &fams, iface);
    output(&mut s, &fams, iface);
    s.push_str("}\n");
    Ok(s)
}

/// The comment block: where the ruleset came from, the camera side, what
/// the host needs besides it.
fn header(config: &Config, cams: &[Camera<'_>], fams: &[Family; 2]) -> String {
    let e = &config.egress;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "#!/usr/sbin/nft -f\n\
         # camgate egress containment for {} ({} camera(s)).\n\
         # Generated by `camgate nft`; apply with `nft -f FILE` (replaces table inet camgate).\n\
         #\n\
         # The camera side (what comes from there and is not an inventoried camera\n\
         # is dropped, counted; nothing is routed to it):",
        config.file.display(),
        cams.len(),
    );
    if let Some(i) = &e.camera_interface {
        let _ = writeln!(s, "#   every host on interface {i}");
    }
    for n in &e.camera_networks {
        let _ = writeln!(s, "#   every source in {n}");
    }
    if e.camera_interface.is_none() {
        let _ = writeln!(
            s,
            "# Routed packets must come in on the interface their source is routed through\n\
             # (strict reverse path): that ties camera_networks to the camera side."
        );
        for f in fams.iter().filter(|f| f.networks.is_none()) {
            let _ = writeln!(
                s,
                "# No {n} camera network and no camera_interface: camgate routes no {n}.",
                n = f.name
            );
        }
    }
    let _ = writeln!(
        s,
        "#\n\
         # camgate must be the cameras' gateway (their default route). Listeners it\n\
         # redirects to: DNS {}, TCP trap {}, UDP trap {}.\n\
         # tproxy needs, once per boot (deploy/nftables/tproxy-routing.sh):\n\
         #   ip rule add fwmark {TPROXY_MARK:#x} lookup {TPROXY_TABLE}\n\
         #   ip route add local 0.0.0.0/0 dev lo table {TPROXY_TABLE}\n\
         #   ip -6 rule add fwmark {TPROXY_MARK:#x} lookup {TPROXY_TABLE}\n\
         #   ip -6 route add local ::/0 dev lo table {TPROXY_TABLE}\n\
         # and camgate needs CAP_NET_ADMIN (IP_TRANSPARENT on the UDP trap).",
        config
            .dns
            .listen
            .map_or("off".to_string(), |a| a.to_string()),
        e.trap_tcp.map_or("off".to_string(), |a| a.to_string()),
        e.trap_udp.map_or("off".to_string(), |a| a.to_string()),
    );
    for c in cams {
        let _ = writeln!(s, "#   camera {}: {}", c.id, c.ip);
    }
    s
}

/// NAT (DNS to the sinkhole, TCP to the trap) and tproxy (UDP to the trap),
/// for inventoried cameras only: other hosts' packets are dropped later.
fn prerouting(s: &mut String, config: &Config, fams: &[Family; 2]) {
    let e = &config.egress;
    s.push_str("\n    chain prerouting_nat {\n        type nat hook prerouting priority dstnat; policy accept;\n");
    for f in fams {
        let Some(c) = f.cameras else { continue };
        let cam = format!("{} saddr {c}", f.kw);
        if let Some(dns) = config.dns.listen {
            let p = dns.port();
            let _ = writeln!(
                s,
                "        {cam} udp dport 53 redirect to :{p} comment \"camera DNS -> camgate sinkhole\""
            );
            let _ = writeln!(s, "        {cam} tcp dport 53 redirect to :{p}");
        }
        if let Some(t) = e.trap_tcp {
            let _ = writeln!(
                s,
                "        {cam} meta l4proto tcp fib daddr type != local redirect to :{} comment \"camera TCP -> camgate trap\"",
                t.port()
            );
        }
    }
    s.push_str("    }\n");

    // NTP to the site servers and DNS are not tproxied.
    s.push_str("\n    chain prerouting_mangle {\n        type filter hook prerouting priority mangle; policy accept;\n");
    if e.camera_interface.is_none() {
        // Without the interface, a source address is all that says "camera
        // side": a camera that takes an address outside camera_networks
        // must not be routed as if it came from elsewhere. Only packets to
        // be routed (unicast, not local) are checked: DHCP and duplicate
        // address detection to camgate itself come from no address. Here,
        // not in forward: older kernels take `fib ... oif` in prerouting only.
        let _ = writeln!(
            s,
            "        fib daddr type unicast fib saddr . iif oif missing counter drop comment \"reverse path: routed sources come in where they are routed\""
        );
    }
    for f in fams {
        let Some(c) = f.cameras else { continue };
        let cam = format!("{} saddr {c}", f.kw);
        if let Some(ntp) = f.ntp {
            let _ = writeln!(s, "        {cam} {} daddr {ntp} udp dport 123 return", f.kw);
        }
        if config.dns.listen.is_some() {
            let _ = writeln!(s, "        {cam} udp dport 53 return");
        }
        if let Some(u) = e.trap_udp {
            let _ = writeln!(
                s,
                "        {cam} meta l4proto udp fib daddr type != local meta mark set {TPROXY_MARK:#x} tproxy {} to :{} accept comment \"camera UDP -> camgate trap\"",
                f.kw,
                u.port()
            );
        }
    }
    s.push_str("    }\n");
}

/// What reaches camgate itself: from the camera side, what inventoried
/// cameras need; from recorders, camgate's listeners.
fn input(
    s: &mut String,
    config: &Config,
    cams: &[Camera<'_>],
    fams: &[Family; 2],
    iface: Option<&str>,
) {
    let e = &config.egress;
    s.push_str(
        "\n    chain input {\n        type filter hook input priority filter; policy accept;\n",
    );
    if let Some(i) = iface {
        let _ = writeln!(
            s,
            "        iifname \"{i}\" jump from_cameras comment \"the camera side\""
        );
    }
    for f in fams {
        if let Some(n) = f.networks {
            // Not camgate's own packets to itself (from its address there).
            let _ = writeln!(s, "        iif != lo {} saddr {n} jump from_cameras", f.kw);
        }
    }
    for f in fams {
        if let Some(c) = f.cameras {
            let _ = writeln!(
                s,
                "        {} saddr {c} jump from_cameras comment \"inventoried cameras, wherever they come in\"",
                f.kw
            );
        }
    }
    // Recorders: camgate's RTSP, camera API and fronts.
    let mut rec_ports = vec![config.rtsp.listen.port()];
    if let Some(h) = config.http.listen {
        rec_ports.push(h.port());
    }
    if config.devices.iter().any(|d| d.front.is_some()) {
        rec_ports.push(config.fronts.rtsp_port);
        rec_ports.push(config.fronts.http_port);
        if config.http.tls_cert.is_some() {
            rec_ports.push(config.fronts.https_port);
        }
    }
    rec_ports.sort_unstable();
    rec_ports.dedup();
    let _ = writeln!(
        s,
        "        tcp dport {{ {} }} accept comment \"recorders: RTSP, camera API, device fronts\"",
        strings(rec_ports.iter()).join(", ")
    );
    if config.rtsp.udp && config.rtsp.udp_rtp_port != 0 {
        let _ = writeln!(
            s,
            "        udp dport {}-{} accept comment \"recorders: RTCP to camgate's RTP ports\"",
            config.rtsp.udp_rtp_port,
            config.rtsp.udp_rtp_port.saturating_add(1)
        );
    }
    s.push_str("    }\n");

    // Every packet from the camera side ends here with a verdict.
    s.push_str("\n    chain from_cameras {\n");
    // RFC 4861 7.1.1/7.1.2: hop limit 255 proves on-link. Solicitations and
    // advertisements only: camgate's own link needs them (cameras resolve
    // camgate, camgate resolves IPv6 cameras); router advertisements and
    // redirects from cameras are dropped with the rest.
    let _ = writeln!(
        s,
        "        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} ip6 hoplimit 255 accept comment \"IPv6 neighbour discovery on camgate's camera link\""
    );
    for f in fams {
        match f.cameras {
            Some(c) => {
                let _ = writeln!(
                    s,
                    "        {} saddr != {c} counter drop comment \"not an inventoried camera\"",
                    f.kw
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "        meta nfproto {} counter drop comment \"not an inventoried camera (none is {})\"",
                    f.proto, f.name
                );
            }
        }
    }
    let _ = writeln!(
        s,
        "        ct state established,related accept comment \"answers to camgate's own RTSP/HTTP connections\""
    );
    if e.trap_udp.is_some() {
        let _ = writeln!(
            s,
            "        meta mark {TPROXY_MARK:#x} accept comment \"UDP tproxied to the trap\""
        );
    }
    let mut tcp_ports = Vec::new();
    if let Some(d) = config.dns.listen {
        let _ = writeln!(s, "        udp dport {} accept", d.port());
        tcp_ports.push(d.port());
    }
    if let Some(t) = e.trap_tcp {
        tcp_ports.push(t.port());
    }
    if let Some(u) = e.trap_udp {
        let _ = writeln!(s, "        udp dport {} accept", u.port());
    }
    tcp_ports.sort_unstable();
    tcp_ports.dedup();
    if !tcp_ports.is_empty() {
        let _ = writeln!(
            s,
            "        tcp dport {{ {} }} accept",
            strings(tcp_ports.iter()).join(", ")
        );
    }
    // Cameras pulled with RTP over UDP send media to camgate's client ports.
    for c in cams.iter().filter(|c| c.rtp_udp) {
        let kw = if c.ip.is_ipv4() { "ip" } else { "ip6" };
        let _ = writeln!(
            s,
            "        {kw} saddr {} meta l4proto udp accept comment \"{}: RTP over UDP to camgate\"",
            c.ip, c.id
        );
    }
    let _ = writeln!(
        s,
        "        counter drop comment \"nothing else from cameras reaches camgate\""
    );
    s.push_str("    }\n");
}

/// Routing: from the camera side, inventoried cameras to the site NTP
/// servers and nothing else; to it, nothing but those servers' answers.
/// A family whose camera side is unknown is not routed at all.
fn forward(s: &mut String, fams: &[Family; 2], iface: Option<&str>) {
    s.push_str(
        "\n    chain forward {\n        type filter hook forward priority filter; policy drop;\n",
    );
    let mut from = Vec::new();
    let mut to = Vec::new();
    if let Some(i) = iface {
        from.push(format!("iifname \"{i}\""));
        to.push(format!("oifname \"{i}\""));
    }
    for f in fams {
        for set in [f.networks, f.cameras].into_iter().flatten() {
            from.push(format!("{} saddr {set}", f.kw));
            to.push(format!("{} daddr {set}", f.kw));
        }
    }
    for m in &from {
        let _ = writeln!(s, "        {m} jump routed_from_cameras");
    }
    for m in &to {
        let _ = writeln!(s, "        {m} jump routed_to_cameras");
    }
    for f in fams {
        if iface.is_some() || f.networks.is_some() {
            let _ = writeln!(
                s,
                "        meta nfproto {} accept comment \"neither from nor to the camera side\"",
                f.proto
            );
        } else {
            let _ = writeln!(
                s,
                "        meta nfproto {} counter drop comment \"the camera side's {n} is unknown: no {n} routed\"",
                f.proto,
                n = f.name
            );
        }
    }
    s.push_str("    }\n");

    s.push_str("\n    chain routed_from_cameras {\n");
    for f in fams {
        if let (Some(c), Some(ntp)) = (f.cameras, f.ntp) {
            let _ = writeln!(
                s,
                "        {kw} saddr {c} {kw} daddr {ntp} udp dport 123 accept comment \"site NTP\"",
                kw = f.kw
            );
        }
    }
    let _ = writeln!(
        s,
        "        counter drop comment \"the camera side reaches nothing else\""
    );
    s.push_str("    }\n");

    s.push_str("\n    chain routed_to_cameras {\n");
    for f in fams {
        if let (Some(c), Some(ntp)) = (f.cameras, f.ntp) {
            let _ = writeln!(
                s,
                "        {kw} daddr {c} {kw} saddr {ntp} udp sport 123 ct state established accept comment \"site NTP answers\"",
                kw = f.kw
            );
        }
    }
    let _ = writeln!(
        s,
        "        counter drop comment \"nothing is routed to the camera side\""
    );
    s.push_str("    }\n");
}

/// camgate's own packets: toward the camera side, to inventoried cameras
/// only (any port: RTSP, HTTP, probes, RTP/RTCP and retina's hole
/// punching). Answers (the DNS sinkhole's, the trap's, ICMP errors) belong
/// to connections the cameras opened and pass as established or related;
/// loopback, camgate's own addresses and every other destination are not
/// this chain's business.
fn output(s: &mut String, fams: &[Family; 2], iface: Option<&str>) {
    s.push_str(
        "\n    chain output {\n        type filter hook output priority filter; policy accept;\n",
    );
    let _ = writeln!(
        s,
        "        ct state established,related accept comment \"answers to the cameras' own connections (DNS sinkhole, trap), camgate's open connections\""
    );
    let _ = writeln!(
        s,
        "        oif lo accept comment \"camgate to itself, its own addresses included\""
    );
    if let Some(i) = iface {
        let _ = writeln!(
            s,
            "        oifname \"{i}\" jump to_cameras comment \"the camera side\""
        );
    }
    for f in fams {
        if let Some(n) = f.networks {
            let _ = writeln!(s, "        {} daddr {n} jump to_cameras", f.kw);
        }
    }
    s.push_str("    }\n");

    s.push_str("\n    chain to_cameras {\n");
    let _ = writeln!(
        s,
        "        icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report }} accept comment \"IPv6 upkeep of camgate's camera link: neighbour discovery, multicast listener reports\""
    );
    for f in fams {
        if let Some(c) = f.cameras {
            let _ = writeln!(
                s,
                "        {} daddr {c} accept comment \"inventoried cameras: RTSP, HTTP, RTP/RTCP\"",
                f.kw
            );
        }
    }
    let _ = writeln!(
        s,
        "        counter name \"{OWN_TO_UNINVENTORIED}\" drop comment \"camgate sends to no other host on the camera side\""
    );
    s.push_str("    }\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        crate::config::tests_support::config_with(extra)
    }

    const CAMS: &str = "[[device]]\nid = \"gate\"\nhost = \"10.20.0.11\"\n[device.streams]\nmain = \"/a\"\n\
        [[device]]\nid = \"yard\"\nhost = \"10.20.0.12\"\nrtsp_transport = \"udp\"\n[device.streams]\nmain = \"/a\"\n\
        [[device]]\nid = \"v6\"\nhost = \"fd00::12\"\n[device.streams]\nmain = \"/a\"\n";

    const V4_CAM: &str =
        "[[device]]\nid = \"a\"\nhost = \"10.20.0.11\"\n[device.streams]\nmain = \"/a\"\n";

    /// The rules of `chain` (its body, up to the closing brace).
    fn chain<'a>(r: &'a str, chain: &str) -> &'a str {
        let start = r
            .find(&format!("    chain {chain} {{\n"))
            .unwrap_or_else(|| panic!("no chain {chain} in\n{r}"));
        let body = &r[start..];
        &body[..body.find("\n    }\n").expect("chain closes")]
    }

    #[test]
    fn renders_the_inventory() {
        let c = cfg(&format!(
            "[dns]\nlisten = \"0.0.0.0:53\"\n[egress]\ntrap_tcp = \"0.0.0.0:15001\"\ntrap_udp = \"0.0.0.0:15002\"\n\
             ntp_servers = [\"10.0.0.123\"]\ncamera_networks = [\"10.20.0.0/24\", \"fd00::/64\"]\n{CAMS}"
        ));
        let r = render(&c).unwrap();
        assert!(r.contains("elements = { 10.20.0.11, 10.20.0.12 }"), "{r}");
        assert!(r.contains("elements = { fd00::12 }"), "{r}");
        assert!(
            r.contains("set camnets4 {\n        type ipv4_addr; flags interval;\n        elements = { 10.20.0.0/24 }"),
            "{r}"
        );
        assert!(r.contains("elements = { fd00::/64 }"), "{r}");
        assert!(
            r.contains("ip saddr @cameras4 udp dport 53 redirect to :53"),
            "{r}"
        );
        assert!(
            r.contains(
                "ip saddr @cameras4 meta l4proto tcp fib daddr type != local redirect to :15001"
            ),
            "{r}"
        );
        assert!(r.contains("tproxy ip to :15002"), "{r}");
        assert!(r.contains("tproxy ip6 to :15002"), "{r}");
        let from = chain(&r, "routed_from_cameras");
        assert!(
            from.contains("ip saddr @cameras4 ip daddr @ntp4 udp dport 123 accept"),
            "{r}"
        );
        assert!(from.ends_with("counter drop comment \"the camera side reaches nothing else\""));
        let to = chain(&r, "routed_to_cameras");
        assert!(
            to.contains(
                "ip daddr @cameras4 ip saddr @ntp4 udp sport 123 ct state established accept"
            ),
            "{r}"
        );
        assert!(to.ends_with("counter drop comment \"nothing is routed to the camera side\""));
        let cams = chain(&r, "from_cameras");
        assert!(
            cams.contains("ip saddr 10.20.0.12 meta l4proto udp accept"),
            "{r}"
        );
        assert!(
            !cams.contains("ip saddr 10.20.0.11 meta l4proto udp accept"),
            "{r}"
        );
        assert!(chain(&r, "input").contains("tcp dport { 0 } accept comment \"recorders"));
        assert!(r.starts_with("#!/usr/sbin/nft -f"));
        // No NTP servers: no NTP rule; no IPv6 camera: no ip6 camera rules.
        let c = cfg(&format!(
            "[egress]\ntrap_tcp = \"0.0.0.0:15001\"\ncamera_networks = [\"10.20.0.0/24\"]\n{V4_CAM}"
        ));
        let r = render(&c).unwrap();
        assert!(!r.contains("ntp4"));
        assert!(!r.contains("ip6 saddr"), "{r}");
        assert!(!r.contains("tproxy ip"), "no UDP trap configured: {r}");
        assert!(!chain(&r, "routed_from_cameras").contains("accept"), "{r}");
    }

    /// The camera side's hosts that are not in the inventory are dropped on
    /// the way in and when routed, with counters, whichever way the side is
    /// given; inventoried cameras keep their paths.
    #[test]
    fn the_camera_side_fails_closed() {
        let c = cfg(&format!(
            "[dns]\nlisten = \"0.0.0.0:53\"\n[egress]\ntrap_tcp = \"0.0.0.0:15001\"\ncamera_networks = [\"10.20.0.0/24\"]\n{V4_CAM}"
        ));
        let r = render(&c).unwrap();
        let input = chain(&r, "input");
        assert!(input.contains("policy accept;"), "{r}");
        assert!(
            input.contains("iif != lo ip saddr @camnets4 jump from_cameras"),
            "{r}"
        );
        assert!(
            input.contains("ip saddr @cameras4 jump from_cameras"),
            "{r}"
        );
        let cams = chain(&r, "from_cameras");
        let not_inventoried = cams
            .find("ip saddr != @cameras4 counter drop comment \"not an inventoried camera\"")
            .unwrap_or_else(|| panic!("{r}"));
        // Before anything is accepted, ND excepted.
        let nd = cams
            .find("icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } ip6 hoplimit 255 accept")
            .unwrap_or_else(|| panic!("{r}"));
        assert!(nd < not_inventoried);
        let after_nd = nd + cams[nd..].find('\n').unwrap();
        let first_other_accept = after_nd + cams[after_nd..].find("accept").unwrap();
        assert!(not_inventoried < first_other_accept, "{r}");
        assert!(
            cams.contains("ct state established,related accept"),
            "camgate's pulls are answered: {r}"
        );
        assert!(cams.contains("udp dport 53 accept"), "{r}");
        assert!(cams.contains("tcp dport { 53, 15001 } accept"), "{r}");
        assert!(
            cams.ends_with("counter drop comment \"nothing else from cameras reaches camgate\""),
            "{r}"
        );
        assert!(
            !cams.contains("nd-router"),
            "no router discovery from cameras: {r}"
        );
        let fwd = chain(&r, "forward");
        assert!(fwd.contains("policy drop;"), "{r}");
        for rule in [
            "ip saddr @camnets4 jump routed_from_cameras",
            "ip saddr @cameras4 jump routed_from_cameras",
            "ip daddr @camnets4 jump routed_to_cameras",
            "ip daddr @cameras4 jump routed_to_cameras",
            "meta nfproto ipv4 accept comment \"neither from nor to the camera side\"",
        ] {
            assert!(fwd.contains(rule), "missing {rule:?} in {r}");
        }
        // Jumps before the accept of other traffic.
        assert!(fwd.find("jump").unwrap() < fwd.find("meta nfproto ipv4 accept").unwrap());
        // Networks only: the reverse-path check ties sources to interfaces,
        // for routed packets only.
        assert!(
            chain(&r, "prerouting_mangle")
                .contains("fib daddr type unicast fib saddr . iif oif missing counter drop"),
            "{r}"
        );
        // The redirects are the inventory's alone.
        assert!(!chain(&r, "prerouting_nat").contains("camnets"), "{r}");
        assert!(!chain(&r, "prerouting_mangle").contains("camnets"), "{r}");
    }

    /// An inventory of IPv4 cameras still confines IPv6: with an interface,
    /// everything from it; with IPv4 networks only, no IPv6 is routed.
    #[test]
    fn ipv6_is_confined_with_an_ipv4_only_inventory() {
        let c = cfg(&format!(
            "[egress]\ntrap_tcp = \"0.0.0.0:15001\"\ncamera_networks = [\"10.20.0.0/24\"]\n{V4_CAM}"
        ));
        let r = render(&c).unwrap();
        assert!(!r.contains("@cameras6"), "{r}");
        let fwd = chain(&r, "forward");
        assert!(
            fwd.contains("meta nfproto ipv6 counter drop comment \"the camera side's IPv6 is unknown: no IPv6 routed\""),
            "{r}"
        );
        assert!(!fwd.contains("meta nfproto ipv6 accept"), "{r}");
        assert!(
            r.contains("# No IPv6 camera network and no camera_interface: camgate routes no IPv6.")
        );
        assert!(
            chain(&r, "from_cameras").contains("meta nfproto ipv6 counter drop comment \"not an inventoried camera (none is IPv6)\""),
            "{r}"
        );

        let c = cfg(&format!(
            "[egress]\ntrap_tcp = \"0.0.0.0:15001\"\ncamera_interface = \"cams0\"\n{V4_CAM}"
        ));
        let r = render(&c).unwrap();
        let fwd = chain(&r, "forward");
        assert!(fwd.contains("policy drop;"), "{r}");
        assert!(
            fwd.contains("iifname \"cams0\" jump routed_from_cameras"),
            "{r}"
        );
        assert!(
            fwd.contains("oifname \"cams0\" jump routed_to_cameras"),
            "{r}"
        );
        // The interface covers both families: other IPv6 is the host's.
        assert!(fwd.contains("meta nfproto ipv6 accept"), "{r}");
        assert!(
            chain(&r, "input").contains("iifname \"cams0\" jump from_cameras"),
            "{r}"
        );
        assert!(
            chain(&r, "from_cameras").contains("meta nfproto ipv6 counter drop"),
            "{r}"
        );
        // The interface says where packets come from: no reverse-path check.
        assert!(!r.contains("fib saddr . iif"), "{r}");
        assert!(!r.contains("routes no IPv6"), "{r}");
    }

    /// camgate's own packets toward the camera side reach inventoried
    /// cameras only (any port), counted by name when dropped; answers and
    /// loopback first, other destinations untouched.
    #[test]
    fn camgate_sends_only_to_inventoried_cameras() {
        let c = cfg(&format!(
            "[dns]\nlisten = \"0.0.0.0:53\"\n[egress]\ntrap_udp = \"0.0.0.0:15002\"\n\
             camera_networks = [\"10.20.0.0/24\", \"fd00::/64\"]\n{CAMS}"
        ));
        let r = render(&c).unwrap();
        assert!(
            r.contains(&format!("    counter {OWN_TO_UNINVENTORIED} {{\n    }}\n")),
            "{r}"
        );
        let out = chain(&r, "output");
        assert!(
            out.contains("type filter hook output priority filter; policy accept;"),
            "{r}"
        );
        let rules: Vec<&str> = out.lines().skip(2).map(str::trim).collect();
        assert!(
            rules[0].starts_with("ct state established,related accept"),
            "answers first: {r}"
        );
        assert!(rules[1].starts_with("oif lo accept"), "{r}");
        assert_eq!(
            &rules[2..],
            [
                "ip daddr @camnets4 jump to_cameras",
                "ip6 daddr @camnets6 jump to_cameras"
            ],
            "{r}"
        );
        let to = chain(&r, "to_cameras");
        let rules: Vec<&str> = to.lines().skip(1).map(str::trim).collect();
        // Reports keep MLD-snooping switches sending camgate the
        // solicitations for its own addresses.
        assert!(rules[0].starts_with(
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, mld-listener-report, mld2-listener-report } accept"
        ));
        assert!(rules[1].starts_with("ip daddr @cameras4 accept"), "{r}");
        assert!(rules[2].starts_with("ip6 daddr @cameras6 accept"), "{r}");
        assert_eq!(
            rules[3],
            "counter name \"own_packets_to_uninventoried\" drop comment \"camgate sends to no other host on the camera side\"",
            "{r}"
        );
        assert_eq!(rules.len(), 4, "{r}");
        // Any port: no port or protocol in the accepts.
        assert!(!to.contains("dport"), "{r}");

        // The interface: everything out of it; no IPv6 camera: no IPv6
        // accept, so camgate sends no IPv6 there but neighbour discovery.
        let c = cfg(&format!("[egress]\ncamera_interface = \"cams0\"\n{V4_CAM}"));
        let r = render(&c).unwrap();
        let out = chain(&r, "output");
        assert!(
            out.contains("oifname \"cams0\" jump to_cameras comment \"the camera side\""),
            "{r}"
        );
        assert!(!out.contains("daddr"), "{r}");
        let to = chain(&r, "to_cameras");
        assert!(to.contains("ip daddr @cameras4 accept"), "{r}");
        assert!(!to.contains("ip6 daddr"), "{r}");

        // No camera at all: camgate sends nothing to the camera side.
        let c = cfg(
            "[egress]\ncamera_networks = [\"10.20.0.0/24\"]\n[[device]]\nid = \"demo\"\nsimulated = true\n",
        );
        let r = render(&c).unwrap();
        let to = chain(&r, "to_cameras");
        assert!(!to.contains("daddr"), "{r}");
        assert!(
            to.contains("counter name \"own_packets_to_uninventoried\" drop"),
            "{r}"
        );
    }

    /// An IPv4-mapped camera host is an IPv4 camera on the wire.
    #[test]
    fn mapped_hosts_are_ipv4() {
        let c = cfg("[egress]\ncamera_networks = [\"10.20.0.0/24\"]\n\
             [[device]]\nid = \"m\"\nhost = \"::ffff:10.20.0.13\"\n[device.streams]\nmain = \"/a\"\n");
        let r = render(&c).unwrap();
        assert!(r.contains("elements = { 10.20.0.13 }"), "{r}");
        assert!(!r.contains("ffff"), "{r}");
    }

    /// With the side known and no camera at all, everything from it is dropped.
    #[test]
    fn an_empty_inventory_drops_the_whole_side() {
        let c = cfg(
            "[egress]\ncamera_networks = [\"10.20.0.0/24\", \"fd20::/64\"]\n[[device]]\nid = \"demo\"\nsimulated = true\n",
        );
        let r = render(&c).unwrap();
        let cams = chain(&r, "from_cameras");
        assert!(cams.contains("meta nfproto ipv4 counter drop"), "{r}");
        assert!(cams.contains("meta nfproto ipv6 counter drop"), "{r}");
        assert!(!chain(&r, "prerouting_nat").contains("redirect"), "{r}");
        assert!(
            chain(&r, "forward").contains("ip6 saddr @camnets6 jump routed_from_cameras"),
            "{r}"
        );
    }

    /// The shipped example stays what `camgate nft` renders for it.
    #[test]
    fn the_shipped_example_is_current() {
        let file = std::path::Path::new("deploy/nftables/example.toml");
        let loaded = crate::config::load_with_env(file, Default::default(), &|_| Some("x".into()))
            .unwrap_or_else(|e| panic!("{e}"));
        let want = render(&loaded.config).unwrap();
        let have = std::fs::read_to_string("deploy/nftables/camgate.nft").unwrap();
        assert!(
            have == want,
            "deploy/nftables/camgate.nft is stale; regenerate it:\n\
             camgate nft --config deploy/nftables/example.toml > deploy/nftables/camgate.nft"
        );
    }

    #[test]
    fn an_unknown_camera_side_is_an_error() {
        for extra in [V4_CAM, "[[device]]\nid = \"demo\"\nsimulated = true\n"] {
            let e = render(&cfg(extra)).unwrap_err();
            assert!(
                e.contains("egress.camera_networks") && e.contains("egress.camera_interface"),
                "{e}"
            );
        }
    }
}
