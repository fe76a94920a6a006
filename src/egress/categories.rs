//! The vendor callback categories (`config/egress/categories.toml`, built
//! in): which names, ports and first bytes belong to which vendor service.
//! The DNS sinkhole and the egress trap label what they catch with these
//! ids; the generic ids (`direct_ip`, `ntp`, `dns`, `http`, `tls`,
//! `unknown`) are reserved for what no category matches.

use std::collections::HashMap;

use regex::Regex;
use serde::Deserialize;

/// The shipped file, built into the binary.
pub const BUILT_IN: &str = include_str!("../../config/egress/categories.toml");

/// Ids the file may not use: camgate's own labels.
pub const RESERVED: [&str; 7] = ["direct_ip", "ntp", "dns", "http", "tls", "unknown", "site"];

/// Transport of an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "category")]
    categories: Vec<Spec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    id: String,
    vendor: String,
    reason: String,
    #[serde(default)]
    names: Vec<String>,
    #[serde(default)]
    tcp_ports: Vec<u16>,
    #[serde(default)]
    udp_ports: Vec<u16>,
    #[serde(default)]
    first_bytes: Vec<String>,
    #[serde(default)]
    http_paths: Vec<String>,
}

/// One category.
#[derive(Debug)]
pub struct Category {
    pub id: String,
    pub vendor: String,
    pub reason: String,
    tcp_ports: Vec<u16>,
    udp_ports: Vec<u16>,
    first_bytes: Vec<Vec<u8>>,
    http_paths: Vec<Regex>,
}

/// Every category, with lookups by name, port and first bytes.
#[derive(Debug)]
pub struct Categories {
    list: Vec<Category>,
    /// Lower-case name suffix (no trailing dot) to category index.
    suffixes: HashMap<String, usize>,
}

/// Longest DNS name camgate looks at (RFC 1035: 253 characters).
const MAX_NAME: usize = 253;

impl Categories {
    /// The built-in file.
    pub fn built_in() -> Categories {
        match Categories::parse(BUILT_IN, "built-in categories") {
            Ok(c) => c,
            // The file is part of the source tree and tested; a broken copy
            // is a build defect, not a runtime condition.
            Err(e) => panic!("built-in categories file is invalid: {}", e.join("; ")),
        }
    }

    /// Parses a categories file; every problem is returned.
    pub fn parse(text: &str, source: &str) -> Result<Categories, Vec<String>> {
        let file: File = toml::from_str(text).map_err(|e| vec![format!("{source}: {e}")])?;
        let mut problems = Vec::new();
        let mut list = Vec::new();
        let mut suffixes = HashMap::new();
        let mut ids = std::collections::HashSet::new();
        for (i, s) in file.categories.into_iter().enumerate() {
            let at = format!("{source}: category[{i}] ({})", s.id);
            if s.id.is_empty()
                || !s
                    .id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                problems.push(format!("{at}: id must be [a-z0-9_]+"));
            }
            if RESERVED.contains(&s.id.as_str()) {
                problems.push(format!("{at}: id {} is reserved", s.id));
            }
            if !ids.insert(s.id.clone()) {
                problems.push(format!("{at}: duplicate id"));
            }
            for n in &s.names {
                let n = n.trim_end_matches('.').to_ascii_lowercase();
                if n.is_empty() || n.len() > MAX_NAME || n.contains(['*', ' ', '/']) {
                    problems.push(format!("{at}: bad name {n:?} (a plain domain suffix)"));
                    continue;
                }
                if let Some(prev) = suffixes.insert(n.clone(), list.len()) {
                    let other: &Category = &list[prev];
                    problems.push(format!("{at}: name {n} is also in {}", other.id));
                }
            }
            let mut http_paths = Vec::new();
            for p in &s.http_paths {
                match regex::RegexBuilder::new(p)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
                {
                    Ok(r) => http_paths.push(r),
                    Err(e) => problems.push(format!("{at}: http_paths {p:?}: {e}")),
                }
            }
            if s.first_bytes.iter().any(|b| b.is_empty() || b.len() > 64) {
                problems.push(format!("{at}: first_bytes entries must be 1 to 64 bytes"));
            }
            list.push(Category {
                id: s.id,
                vendor: s.vendor,
                reason: s.reason,
                tcp_ports: s.tcp_ports,
                udp_ports: s.udp_ports,
                first_bytes: s.first_bytes.into_iter().map(String::into_bytes).collect(),
                http_paths,
            });
        }
        if problems.is_empty() {
            Ok(Categories { list, suffixes })
        } else {
            Err(problems)
        }
    }

    pub fn all(&self) -> &[Category] {
        &self.list
    }

    /// The category of a DNS name (any case, with or without the final
    /// dot): the longest listed suffix wins.
    pub fn by_name(&self, name: &str) -> Option<&Category> {
        let name = name.trim_end_matches('.');
        if name.len() > MAX_NAME {
            return None;
        }
        let lower = name.to_ascii_lowercase();
        let mut rest = lower.as_str();
        loop {
            if let Some(&i) = self.suffixes.get(rest) {
                return self.list.get(i);
            }
            match rest.split_once('.') {
                Some((_, tail)) if !tail.is_empty() => rest = tail,
                _ => return None,
            }
        }
    }

    /// The category whose signature starts the payload.
    pub fn by_first_bytes(&self, bytes: &[u8]) -> Option<&Category> {
        self.list
            .iter()
            .find(|c| c.first_bytes.iter().any(|p| bytes.starts_with(p)))
    }

    /// The category of a plain HTTP request's path.
    pub fn by_http_path(&self, path: &str) -> Option<&Category> {
        self.list
            .iter()
            .find(|c| c.http_paths.iter().any(|r| r.is_match(path)))
    }

    /// The category of a destination port.
    pub fn by_port(&self, proto: Proto, port: u16) -> Option<&Category> {
        self.list.iter().find(|c| match proto {
            Proto::Tcp => c.tcp_ports.contains(&port),
            Proto::Udp => c.udp_ports.contains(&port),
        })
    }

    /// Every listed name suffix (for docs and tests).
    pub fn names(&self) -> impl Iterator<Item = (&str, &Category)> {
        self.suffixes
            .iter()
            .filter_map(|(n, &i)| Some((n.as_str(), self.list.get(i)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_file_loads() {
        let c = Categories::built_in();
        assert!(c.all().len() >= 10);
        for id in [
            "hik_connect",
            "ezviz",
            "dahua_p2p",
            "imou",
            "ddns",
            "upgrade",
            "ntp_vendor",
        ] {
            assert!(c.all().iter().any(|x| x.id == id), "{id} missing");
        }
    }

    #[test]
    fn names_match_by_longest_suffix_in_any_case() {
        let c = Categories::built_in();
        let id = |n: &str| c.by_name(n).map(|x| x.id.as_str());
        assert_eq!(id("litedev.hik-connect.com."), Some("hik_connect"));
        assert_eq!(id("LiteDev.EzvizLife.com"), Some("ezviz"));
        assert_eq!(id("hik-connect.com"), Some("hik_connect"));
        assert_eq!(id("www.easy4ipcloud.com"), Some("dahua_p2p"));
        assert_eq!(id("iotaccess.easy4ipcloud.com"), Some("imou"));
        assert_eq!(id("9002a9b9fb45.quickddns.com"), Some("ddns"));
        assert_eq!(id("notahik-connect.com"), None);
        assert_eq!(id("example.org"), None);
        assert_eq!(id("com"), None);
        assert_eq!(id(""), None);
        assert_eq!(id(&"a.".repeat(200)), None);
    }

    #[test]
    fn ports_bytes_and_paths() {
        let c = Categories::built_in();
        let id = |x: Option<&Category>| x.map(|x| x.id.clone());
        assert_eq!(id(c.by_port(Proto::Udp, 8800)), Some("dahua_p2p".into()));
        assert_eq!(id(c.by_port(Proto::Tcp, 8800)), None);
        assert_eq!(id(c.by_port(Proto::Tcp, 7660)), Some("hik_isup".into()));
        assert_eq!(
            id(c.by_first_bytes(b"DHGET /probe/p2psrv HTTP/1.1\r\n")),
            Some("dahua_p2p".into())
        );
        assert_eq!(
            id(c.by_first_bytes(b"M-SEARCH * HTTP/1.1\r\n")),
            Some("upnp".into())
        );
        assert_eq!(id(c.by_first_bytes(b"GET / HTTP/1.1")), None);
        assert_eq!(
            id(c.by_http_path("/firmware/IPC_G5_EN.dav")),
            Some("upgrade".into())
        );
        assert_eq!(id(c.by_http_path("/index.html")), None);
    }

    #[test]
    fn bad_files_name_every_problem() {
        let e = Categories::parse(
            "[[category]]\nid = \"dns\"\nvendor = \"x\"\nreason = \"r\"\nnames = [\"a.com\", \"*.b.com\"]\n\
             [[category]]\nid = \"Bad Id\"\nvendor = \"x\"\nreason = \"r\"\nnames = [\"a.com\"]\nhttp_paths = [\"(\"]\n",
            "f.toml",
        )
        .unwrap_err();
        let all = e.join("\n");
        assert!(all.contains("reserved"), "{all}");
        assert!(all.contains("*.b.com"), "{all}");
        assert!(all.contains("[a-z0-9_]"), "{all}");
        assert!(all.contains("also in dns"), "{all}");
        assert!(all.contains("http_paths"), "{all}");
        assert!(Categories::parse("[[category]]\nid = \"x\"\n", "f").is_err());
        assert!(
            Categories::parse(
                "[[category]]\nid=\"x\"\nvendor=\"v\"\nreason=\"r\"\nport=1\n",
                "f"
            )
            .is_err()
        );
    }
}
