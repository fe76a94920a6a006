//! What camgate remembers about each camera's outbound behaviour: the
//! addresses its resolver handed to each source (so the trap can tell a
//! looked-up destination from a bare IP), the names behind trap-pool
//! addresses, and per device the blocked attempts by category and the last
//! few attempts for the admin API. Every table is bounded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Mutex;
use std::time::SystemTime;

use ipnet::Ipv4Net;
use serde::Serialize;

use crate::config::Config;

/// Label of sources that are no configured camera.
pub const UNKNOWN_DEVICE: &str = "unknown";
/// Addresses remembered per source.
const RESOLVED_PER_SOURCE: usize = 1024;
/// Sources that are no configured camera whose lookups are remembered.
const UNKNOWN_SOURCES: usize = 256;
/// Attempts kept per device for the API.
pub const RECENT: usize = 16;
/// Names kept with a trap-pool address.
const POOL_NAMES: usize = 65_536;

/// One attempt, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// RFC 3339, UTC.
    pub at: String,
    pub protocol: &'static str,
    pub destination: SocketAddr,
    pub category: String,
    /// For `direct_ip`: the vendor category the port or bytes point at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor_category: Option<String>,
    /// The name the destination was looked up as, or the TLS SNI / HTTP Host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `blocked` or `forwarded`.
    pub verdict: &'static str,
    /// Bytes the camera sent in this attempt.
    pub bytes: u64,
}

#[derive(Default)]
struct Remembered {
    order: VecDeque<IpAddr>,
    names: HashMap<IpAddr, String>,
}

impl Remembered {
    fn add(&mut self, addr: IpAddr, name: &str) {
        if self.names.insert(addr, name.to_string()).is_none() {
            self.order.push_back(addr);
            while self.order.len() > RESOLVED_PER_SOURCE {
                if let Some(old) = self.order.pop_front() {
                    self.names.remove(&old);
                }
            }
        }
    }
}

#[derive(Default)]
struct DeviceLog {
    blocked: BTreeMap<String, u64>,
    forwarded: u64,
    recent: VecDeque<Attempt>,
}

/// Addresses from a reserved range handed out for sinkholed names, one per
/// name, so a follow-up connection tells which name it was for.
struct Pool {
    net: Ipv4Net,
    next: u32,
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
}

impl Pool {
    fn address(&mut self, name: &str) -> Option<Ipv4Addr> {
        if let Some(a) = self.by_name.get(name) {
            return Some(*a);
        }
        // Usable hosts: skip the network and broadcast addresses.
        let size = (1u64 << (32 - u32::from(self.net.prefix_len()))).saturating_sub(2);
        let cap = size.min(POOL_NAMES as u64) as u32;
        if cap == 0 {
            return None;
        }
        let offset = 1 + self.next % cap;
        self.next = self.next.wrapping_add(1);
        let addr = Ipv4Addr::from(u32::from(self.net.network()).wrapping_add(offset));
        // Reusing an address forgets the name it had.
        if let Some(old) = self.by_addr.insert(addr, name.to_string()) {
            self.by_name.remove(&old);
        }
        self.by_name.insert(name.to_string(), addr);
        Some(addr)
    }
}

/// The shared record. Std mutexes: held for map operations only.
pub struct Book {
    devices: HashMap<IpAddr, String>,
    resolved: Mutex<HashMap<IpAddr, Remembered>>,
    logs: Mutex<HashMap<String, DeviceLog>>,
    pool: Option<Mutex<Pool>>,
}

impl std::fmt::Debug for Book {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Book")
            .field("devices", &self.devices.len())
            .finish()
    }
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

impl Book {
    /// Cameras by address; `pool` for `sinkhole = "trap"`.
    pub fn new(config: &Config, pool: Option<Ipv4Net>) -> Book {
        let devices = config
            .devices
            .iter()
            .filter_map(|d| Some((d.camera_host()?, d.id.to_string())))
            .collect();
        Book {
            devices,
            resolved: Mutex::new(HashMap::new()),
            logs: Mutex::new(HashMap::new()),
            pool: pool.map(|net| {
                Mutex::new(Pool {
                    net,
                    next: 0,
                    by_name: HashMap::new(),
                    by_addr: HashMap::new(),
                })
            }),
        }
    }

    /// The device a source address is, or `unknown`.
    pub fn device_of(&self, src: IpAddr) -> &str {
        self.devices
            .get(&canonical(src))
            .map_or(UNKNOWN_DEVICE, String::as_str)
    }

    /// Remembers that `addr` was handed to `src` for `name`.
    pub fn resolved(&self, src: IpAddr, addr: IpAddr, name: &str) {
        let src = canonical(src);
        let mut r = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if !r.contains_key(&src) && !self.devices.contains_key(&src) {
            let unknown = r.keys().filter(|k| !self.devices.contains_key(k)).count();
            if unknown >= UNKNOWN_SOURCES {
                // Forget one unknown source to make room.
                if let Some(k) = r.keys().find(|k| !self.devices.contains_key(k)).copied() {
                    r.remove(&k);
                }
            }
        }
        r.entry(src).or_default().add(canonical(addr), name);
    }

    /// The name `addr` was handed to `src` for, if camgate's resolver ever
    /// did (trap-pool addresses included).
    pub fn looked_up(&self, src: IpAddr, addr: IpAddr) -> Option<String> {
        let (src, addr) = (canonical(src), canonical(addr));
        let r = self.resolved.lock().unwrap_or_else(|p| p.into_inner());
        r.get(&src)?.names.get(&addr).cloned()
    }

    /// A trap-pool address for a sinkholed name.
    pub fn pool_address(&self, name: &str) -> Option<Ipv4Addr> {
        let mut p = self
            .pool
            .as_ref()?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        p.address(name)
    }

    /// Records an attempt for the API.
    pub fn attempt(&self, device: &str, a: Attempt) {
        let mut logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        // Only configured devices and `unknown` get a log: bounded.
        let key = if device == UNKNOWN_DEVICE || self.devices.values().any(|d| d == device) {
            device
        } else {
            UNKNOWN_DEVICE
        };
        let log = logs.entry(key.to_string()).or_default();
        if a.verdict == "forwarded" {
            log.forwarded += 1;
        } else if let Some(n) = log.blocked.get_mut(&a.category) {
            *n += 1;
        } else {
            log.blocked.insert(a.category.clone(), 1);
        }
        log.recent.push_back(a);
        while log.recent.len() > RECENT {
            log.recent.pop_front();
        }
    }

    /// Blocked attempts by category, and the latest attempts, newest first.
    pub fn report(&self, device: &str) -> (BTreeMap<String, u64>, Vec<Attempt>) {
        let logs = self.logs.lock().unwrap_or_else(|p| p.into_inner());
        match logs.get(device) {
            Some(l) => (l.blocked.clone(), l.recent.iter().rev().cloned().collect()),
            None => (BTreeMap::new(), Vec::new()),
        }
    }

    /// Builds an [`Attempt`] stamped now.
    #[allow(clippy::too_many_arguments)]
    pub fn stamp(
        protocol: &'static str,
        destination: SocketAddr,
        category: &str,
        vendor_category: Option<&str>,
        name: Option<String>,
        verdict: &'static str,
        bytes: u64,
    ) -> Attempt {
        Attempt {
            at: rfc3339(SystemTime::now()),
            protocol,
            destination,
            category: category.to_string(),
            vendor_category: vendor_category.map(str::to_string),
            name,
            verdict,
            bytes,
        }
    }
}

/// IPv4-mapped IPv6 addresses (from dual-stack sockets) as IPv4.
pub fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(pool: Option<&str>) -> Book {
        let c = crate::config::tests_support::config_with(
            "[[device]]\nid = \"cam\"\nhost = \"10.20.0.11\"\n[device.streams]\nmain = \"/x\"\n",
        );
        Book::new(&c, pool.map(|p| p.parse().unwrap()))
    }

    #[test]
    fn devices_by_source_address() {
        let b = book(None);
        assert_eq!(b.device_of("10.20.0.11".parse().unwrap()), "cam");
        assert_eq!(b.device_of("::ffff:10.20.0.11".parse().unwrap()), "cam");
        assert_eq!(b.device_of("10.20.0.12".parse().unwrap()), UNKNOWN_DEVICE);
    }

    #[test]
    fn remembers_lookups_per_source_and_bounded() {
        let b = book(None);
        let cam: IpAddr = "10.20.0.11".parse().unwrap();
        let other: IpAddr = "10.20.0.99".parse().unwrap();
        let a: IpAddr = "203.0.113.5".parse().unwrap();
        b.resolved(cam, a, "ntp.site.example");
        assert_eq!(b.looked_up(cam, a).as_deref(), Some("ntp.site.example"));
        assert_eq!(b.looked_up(other, a), None);
        for i in 0..(RESOLVED_PER_SOURCE as u32 + 10) {
            b.resolved(cam, IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i)), "x");
        }
        assert_eq!(b.looked_up(cam, a), None, "oldest forgotten");
        for i in 0..(UNKNOWN_SOURCES as u32 * 2) {
            b.resolved(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)), a, "x");
        }
        assert!(b.resolved.lock().unwrap().len() <= UNKNOWN_SOURCES + 1);
    }

    #[test]
    fn pool_addresses_are_stable_per_name_and_wrap() {
        let b = book(Some("198.18.0.0/30"));
        let x = b.pool_address("a.hik-connect.com").unwrap();
        assert_eq!(b.pool_address("a.hik-connect.com"), Some(x));
        let y = b.pool_address("b.ezvizlife.com").unwrap();
        assert_ne!(x, y);
        assert!(["198.18.0.1", "198.18.0.2"].contains(&x.to_string().as_str()));
        // Only two usable addresses: a third name takes the first back.
        let z = b.pool_address("c.easy4ipcloud.com").unwrap();
        assert_eq!(z, x);
        assert_eq!(b.pool.as_ref().unwrap().lock().unwrap().by_name.len(), 2);
        assert!(book(None).pool_address("x").is_none());
    }

    #[test]
    fn attempts_by_category_and_recent() {
        let b = book(None);
        let dst: SocketAddr = "203.0.113.10:443".parse().unwrap();
        for i in 0..20 {
            let cat = if i % 2 == 0 { "ezviz" } else { "direct_ip" };
            b.attempt(
                "cam",
                Book::stamp("tcp", dst, cat, None, None, "blocked", 10),
            );
        }
        b.attempt(
            "who",
            Book::stamp("udp", dst, "unknown", None, None, "blocked", 1),
        );
        let (by, recent) = b.report("cam");
        assert_eq!(by.get("ezviz"), Some(&10));
        assert_eq!(by.get("direct_ip"), Some(&10));
        assert_eq!(recent.len(), RECENT);
        assert_eq!(b.report(UNKNOWN_DEVICE).0.get("unknown"), Some(&1));
    }
}
