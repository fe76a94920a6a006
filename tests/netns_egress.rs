//! End to end in network namespaces the test creates and removes:
//!
//! ```text
//!  camera 10.20.0.11 ── 10.20.0.1 camgate 10.30.0.1 ── 10.30.0.5 recorder
//!         10.20.0.77     fd20::1    198.51.100.1
//!         10.99.0.5                 fd51::1
//!         fd20::11                     │
//!                                 198.51.100.2 internet (203.0.113.0/24,
//!                                 fd51::2      198.18.0.0/16,
//!                                              2001:db8:113::10, listeners)
//! ```
//!
//! The camera namespace runs a camera (camgate's simulated camera serving
//! RTSP) and makes the outbound attempts vendor firmware makes; the camgate
//! namespace routes the camera network with the ruleset `camgate nft`
//! renders (and the tproxy routing from `deploy/nftables`); the internet
//! namespace owns every destination the camera tries, with listeners that
//! record anything that arrives; the recorder plays the camera through
//! camgate and receives the camera's allowed alarm push. The camera also
//! moves to addresses outside the inventory (10.20.0.77 inside
//! `camera_networks`, 10.99.0.5 outside it) and speaks IPv6 (fd20::11):
//! before the ruleset, camgate routes all of them to the internet; with it,
//! with the camera side given as `camera_networks` and then as
//! `camera_interface`, none reaches anything. A second, smaller lab (a
//! gateway and a camera network) shows camgate's own packets toward the
//! camera side reach inventoried cameras only. Needs root; skips with a
//! message only where the kernel refuses namespaces or nftables.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_camgate");
const TOOL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/netns_tool.py");

/// Namespaces and the processes in them; everything removed on drop.
struct Lab {
    ns: Vec<String>,
    procs: Vec<Child>,
    dir: tempfile::TempDir,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.kill();
            let _ = p.wait();
        }
        for n in &self.ns {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

fn run(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Lab {
    fn name(&self, role: &str) -> String {
        self.ns
            .iter()
            .find(|n| n.ends_with(role))
            .cloned()
            .expect("namespace")
    }

    /// Runs a command in the namespace `role`; panics with its stderr on failure.
    fn exec(&self, role: &str, args: &[&str]) -> String {
        let ns = self.name(role);
        let mut full = vec!["ip", "netns", "exec", ns.as_str()];
        full.extend_from_slice(args);
        run(&full).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a long-running process in `role`; its stdout (or stderr)
    /// lines are collected. Returns the collected lines.
    fn spawn(&mut self, role: &str, args: &[&str], stderr: bool) -> Arc<Mutex<Vec<String>>> {
        let ns = self.name(role);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .args(args)
            .stdin(Stdio::null());
        if stderr {
            cmd.stderr(Stdio::piped()).stdout(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{args:?}: {e}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let pipe: Box<dyn std::io::Read + Send> = if stderr {
            Box::new(child.stderr.take().unwrap())
        } else {
            Box::new(child.stdout.take().unwrap())
        };
        std::thread::spawn(move || {
            for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        self.procs.push(child);
        lines
    }
}

fn wait_for(lines: &Arc<Mutex<Vec<String>>>, what: &str, secs: u64) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(secs) {
        if lines.lock().unwrap().iter().any(|l| l.contains(what)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no {what:?} within {secs} s; output so far:\n{}",
        lines.lock().unwrap().join("\n")
    );
}

fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The packets counted by the rule of `table` (`nft list table` output)
/// with this exact comment.
fn counted(table: &str, comment: &str) -> u64 {
    let quoted = format!("comment \"{comment}\"");
    let line = table
        .lines()
        .find(|l| l.trim_end().ends_with(&quoted))
        .unwrap_or_else(|| panic!("no rule {quoted} in\n{table}"));
    line.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in {line}"))
}

/// The attempts of the camera that moved (in and out of the camera
/// networks) and of the camera speaking IPv6, plus the inventoried camera's
/// GRE and SCTP; `gw4` and `gw6` add attempts on camgate itself over IPv4
/// and IPv6.
fn escapes(lab: &Lab, gw4: bool, gw6: bool) -> Vec<serde_json::Value> {
    let gw = |on: bool| if on { "+gw" } else { "" };
    let specs = [
        format!("10.20.0.77,203.0.113.10,10.20.0.1,tcp+udp+raw{}", gw(gw4)),
        format!("10.99.0.5,203.0.113.10,10.20.0.1,udp+raw{}", gw(gw4)),
        format!("fd20::11,2001:db8:113::10,fd20::1,tcp+udp+raw{}", gw(gw6)),
        "10.20.0.11,203.0.113.10,-,raw".to_string(),
    ];
    // tcp: one attempt; udp, raw, gw: two each.
    let attempts: usize = specs
        .iter()
        .flat_map(|s| s.rsplit(',').next().unwrap().split('+'))
        .map(|k| if k == "tcp" { 1 } else { 2 })
        .sum();
    let mut args = vec!["python3", TOOL, "escape"];
    args.extend(specs.iter().map(String::as_str));
    let results: Vec<serde_json::Value> = lab
        .exec("cam", &args)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), attempts, "{results:?}");
    results
}

/// Every attempt failed, and the internet's listeners (lines after `seen`)
/// got nothing.
fn nothing_escaped(escapes: &[serde_json::Value], sink: &Arc<Mutex<Vec<String>>>, seen: usize) {
    for e in escapes {
        let what = e["what"].as_str().unwrap();
        let result = e["result"].as_str().unwrap();
        let failed = match what {
            "tcp:7660" | "gw-tcp:15001" => result.starts_with("connect-failed"),
            "dns" | "gw-dns" => result == "timeout",
            _ => result == "sent",
        };
        assert!(failed, "{e}");
    }
    std::thread::sleep(Duration::from_millis(500));
    let got = sink.lock().unwrap()[seen..].to_vec();
    assert!(got.is_empty(), "reached the internet: {got:?}");
}

/// Creates the namespaces, or says why the kernel refused.
fn lab() -> Result<Lab, String> {
    lab_of("", &["cam", "gw", "rec", "net"])
}

/// Namespaces for `roles`, named after the process and `prefix` (tests run
/// at once in one process, each with its own prefix).
fn lab_of(prefix: &str, roles: &[&str]) -> Result<Lab, String> {
    let tag = format!("cg{}{prefix}", std::process::id() % 100_000);
    let mut lab = Lab {
        ns: Vec::new(),
        procs: Vec::new(),
        dir: tempfile::tempdir().map_err(|e| e.to_string())?,
    };
    for role in roles {
        let n = format!("{tag}{role}");
        let _ = Command::new("ip").args(["netns", "del", &n]).output();
        run(&["ip", "netns", "add", &n])?;
        lab.ns.push(n);
    }
    Ok(lab)
}

#[test]
fn cameras_reach_nothing_but_camgate() {
    support::require("ip");
    let mut lab = match lab() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED: network namespaces unavailable here ({e}); run as root");
            return;
        }
    };
    support::require("nft");
    support::require("python3");
    support::require("ffprobe");
    let (cam, gw, rec, net) = (
        lab.name("cam"),
        lab.name("gw"),
        lab.name("rec"),
        lab.name("net"),
    );

    // Links, created directly inside the namespaces.
    for (a, an, b, bn) in [
        ("c0", &cam, "gc", &gw),
        ("r0", &rec, "gr", &gw),
        ("n0", &net, "gn", &gw),
    ] {
        run(&[
            "ip", "link", "add", a, "netns", an, "type", "veth", "peer", "name", b, "netns", bn,
        ])
        .unwrap();
    }
    for (role, cmds) in [
        (
            "cam",
            vec![
                "ip addr add 10.20.0.11/24 dev c0",
                // Where the camera moves: an address of the camera network
                // that is not in the inventory, and one outside it.
                "ip addr add 10.20.0.77/24 dev c0",
                "ip addr add 10.99.0.5/32 dev c0",
                "ip -6 addr add fd20::11/64 dev c0 nodad",
                "ip link set c0 up",
                "ip route add default via 10.20.0.1",
                "ip -6 route add default via fd20::1",
            ],
        ),
        (
            "rec",
            vec![
                "ip addr add 10.30.0.5/24 dev r0",
                "ip link set r0 up",
                "ip route add default via 10.30.0.1",
            ],
        ),
        (
            "net",
            vec![
                "ip addr add 198.51.100.2/24 dev n0",
                "ip link set n0 up",
                "ip addr add 203.0.113.10/32 dev lo",
                "ip addr add 203.0.113.30/32 dev lo",
                "ip addr add 203.0.113.53/32 dev lo",
                "ip route add local 198.18.0.0/15 dev lo",
                "ip route add 10.20.0.0/24 via 198.51.100.1",
                "ip route add 10.30.0.0/24 via 198.51.100.1",
                "ip route add 10.99.0.0/24 via 198.51.100.1",
                "ip -6 addr add fd51::2/64 dev n0 nodad",
                "ip -6 addr add 2001:db8:113::10/128 dev lo",
                "ip -6 route add fd20::/64 via fd51::1",
            ],
        ),
        (
            "gw",
            vec![
                "ip addr add 10.20.0.1/24 dev gc",
                "ip addr add 10.30.0.1/24 dev gr",
                "ip addr add 198.51.100.1/24 dev gn",
                "ip link set gc up",
                "ip link set gr up",
                "ip link set gn up",
                "ip -6 addr add fd20::1/64 dev gc nodad",
                "ip -6 addr add fd51::1/64 dev gn nodad",
                // Anything that escaped would go to the internet namespace.
                "ip route add default via 198.51.100.2",
                "ip -6 route add default via fd51::2",
                "sysctl -qw net.ipv4.ip_forward=1",
                "sysctl -qw net.ipv6.conf.all.forwarding=1",
                // The kernel's own reverse-path filter off: the ruleset's
                // is the one under test.
                "sysctl -qw net.ipv4.conf.all.rp_filter=0",
                "sysctl -qw net.ipv4.conf.gc.rp_filter=0",
            ],
        ),
    ] {
        lab.exec(role, &["ip", "link", "set", "lo", "up"]);
        for c in cmds {
            let args: Vec<&str> = c.split(' ').collect();
            lab.exec(role, &args);
        }
    }
    // IPv6 link-local addresses finish duplicate address detection (the
    // others skip it), so neighbour discovery works from the first packet.
    let t = Instant::now();
    while ["cam", "gw", "net"].iter().any(|role| {
        !lab.exec(role, &["ip", "-6", "addr", "show", "tentative"])
            .is_empty()
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "IPv6 addresses stay tentative"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The internet: listeners on every port the camera tries.
    let sink = lab.spawn(
        "net",
        &[
            "python3",
            TOOL,
            "sink",
            "80,443,7660,8666,53",
            "8800,53,123",
        ],
        false,
    );
    wait_for(&sink, "ready", 10);
    let ready = sink.lock().unwrap().len();

    // Without the ruleset camgate routes the moved and the IPv6 camera, and
    // the inventoried camera's GRE and SCTP, to the internet: what the
    // ruleset must stop.
    let open = escapes(&lab, false, false);
    std::thread::sleep(Duration::from_millis(500));
    let reached = sink.lock().unwrap()[ready..].to_vec();
    for (src, protos) in [
        ("10.20.0.77", &["tcp", "udp", "raw47", "raw132"][..]),
        ("10.99.0.5", &["udp", "raw47", "raw132"][..]),
        ("fd20::11", &["tcp", "udp", "raw47", "raw132"][..]),
        ("10.20.0.11", &["raw47", "raw132"][..]),
    ] {
        for proto in protos {
            assert!(
                reached
                    .iter()
                    .any(|l| l.contains(&format!("\"proto\": \"{proto}\""))
                        && l.contains(&format!("\"peer\": \"{src}\""))),
                "without the ruleset, {proto} from {src} should reach the internet: {reached:?}\n{open:?}"
            );
        }
    }
    let seen = sink.lock().unwrap().len();

    // tproxy routing, exactly as shipped.
    let routing = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nftables/tproxy-routing.sh"
    );
    lab.exec("gw", &["sh", routing]);

    // The gateway's config and ruleset.
    let gw_config = lab.dir.path().join("camgate.toml");
    std::fs::write(
        &gw_config,
        r#"
[rtsp]
listen = "10.30.0.1:8554"
udp_rtp_port = 0
[admin]
listen = "127.0.0.1:9559"
[camera]
connect_timeout_secs = 5
[dns]
listen = "10.20.0.1:53"
sinkhole = "trap"
[[dns.static]]
name = "ntp.site.example"
addresses = ["198.51.100.123"]
[egress]
trap_tcp = "0.0.0.0:15001"
trap_udp = "0.0.0.0:15002"
peek_timeout_secs = 2
ntp_servers = ["198.51.100.123"]
camera_networks = ["10.20.0.0/24"]
[[egress.allow]]
devices = ["cam"]
to = "10.30.0.5:8089"
reason = "alarm push to the recorder"
[[recorder]]
name = "nvr"
username = "nvr"
password = "nvr-pass"
devices = ["*"]
[[device]]
id = "cam"
vendor = "hikvision"
host = "10.20.0.11"
username = "admin"
password = "cam-pass"
[device.streams]
main = "/demo/main"
"#,
    )
    .unwrap();
    let rules = run(&[BIN, "nft", "--config", gw_config.to_str().unwrap()]).unwrap();
    let rules_file = lab.dir.path().join("camgate.nft");
    std::fs::write(&rules_file, &rules).unwrap();
    let gw_ns = lab.name("gw");
    if let Err(e) = run(&[
        "ip",
        "netns",
        "exec",
        &gw_ns,
        "nft",
        "-f",
        rules_file.to_str().unwrap(),
    ]) {
        // A kernel without nf_tables (or its nat, fib, tproxy parts) is the
        // one reason to skip; a ruleset the kernel has but rejects fails.
        if e.contains("Operation not supported") || e.contains("Protocol not supported") {
            eprintln!("SKIPPED: this kernel refuses nftables: {e}");
            return;
        }
        panic!("the rendered ruleset does not apply: {e}\n{rules}");
    }

    // The camera: camgate's simulated camera serving RTSP on 554.
    let cam_config = lab.dir.path().join("camera.toml");
    std::fs::write(
        &cam_config,
        "[rtsp]\nlisten = \"10.20.0.11:554\"\nudp = false\n[admin]\nlisten = \"127.0.0.1:9559\"\n\
         [[recorder]]\nname = \"gw\"\nusername = \"admin\"\npassword = \"cam-pass\"\ndevices = [\"*\"]\n\
         [[device]]\nid = \"demo\"\nsimulated = true\n",
    )
    .unwrap();
    let camera_log = lab.spawn(
        "cam",
        &[
            BIN,
            "run",
            "--log-format",
            "json",
            "--config",
            cam_config.to_str().unwrap(),
        ],
        true,
    );
    wait_for(&camera_log, "camgate running", 20);

    let alarm = lab.spawn("rec", &["python3", TOOL, "alarm", "10.30.0.5:8089"], false);
    wait_for(&alarm, "ready", 10);

    // camgate.
    let gw_log = lab.spawn(
        "gw",
        &[
            BIN,
            "run",
            "--log-format",
            "json",
            "--config",
            gw_config.to_str().unwrap(),
        ],
        true,
    );
    wait_for(&gw_log, "camgate running", 20);
    let metrics = |lab: &Lab| {
        lab.exec(
            "gw",
            &["python3", TOOL, "get", "http://127.0.0.1:9559/metrics"],
        )
    };
    let t = Instant::now();
    while sample(
        &metrics(&lab),
        "camgate_stream_up{device=\"cam\",stream=\"main\"}",
    ) != 1.0
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "camgate never pulled the camera:\n{}",
            gw_log.lock().unwrap().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The camera's attempts.
    let probes = lab.exec("cam", &["python3", TOOL, "probes", "10.20.0.1"]);
    let probes: Vec<serde_json::Value> = probes
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let probe = |name: &str| -> &serde_json::Value {
        probes
            .iter()
            .find(|p| p["probe"] == name || p["name"] == name)
            .unwrap_or_else(|| panic!("no probe {name}: {probes:?}"))
    };
    let in_pool = |v: &serde_json::Value| {
        v["addrs"]
            .as_array()
            .is_some_and(|a| a.len() == 1 && a[0].as_str().unwrap().starts_with("198.18."))
    };
    assert!(in_pool(probe("litedev.hik-connect.com")), "{probes:?}");
    assert!(in_pool(probe("www.easy4ipcloud.com")), "{probes:?}");
    assert!(
        in_pool(probe("dns-hardcoded")),
        "hard-coded resolver caught: {probes:?}"
    );
    let allowed = probe("ntp.site.example");
    assert_eq!(allowed["rcode"], "NOERROR");
    assert_eq!(
        allowed["addrs"][0], "198.51.100.123",
        "the allowed name resolves"
    );
    assert_eq!(probe("example.com")["rcode"], "REFUSED");
    for p in ["https-hik-connect", "http-ddns", "tcp-bare-ip"] {
        let r = probe(p)["result"].as_str().unwrap();
        assert!(r == "reset" || r == "closed", "{p}: {r}");
    }
    assert_eq!(probe("udp-p2p")["result"], "no-answer");
    let push = probe("alarm-push")["result"].as_str().unwrap();
    assert!(
        push.starts_with("answered: b'OK"),
        "alarm push forwarded: {push}"
    );

    // A recorder still plays the camera through camgate.
    let streams = lab.exec(
        "rec",
        &[
            "ffprobe",
            "-v",
            "error",
            "-rtsp_transport",
            "tcp",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            "rtsp://nvr:nvr-pass@10.30.0.1:8554/cam/main",
        ],
    );
    assert!(
        streams.lines().any(|l| l.trim() == "h264"),
        "ffprobe: {streams}"
    );

    // Every attempt counted with the right device and category.
    std::thread::sleep(Duration::from_millis(500));
    let text = metrics(&lab);
    let dns = |verdict: &str, category: &str| {
        sample(
            &text,
            &format!(
                "camgate_dns_queries_total{{device=\"cam\",verdict=\"{verdict}\",category=\"{category}\"}}"
            ),
        )
    };
    let egress = |proto: &str, category: &str, verdict: &str| {
        sample(
            &text,
            &format!(
                "camgate_egress_attempts_total{{device=\"cam\",protocol=\"{proto}\",category=\"{category}\",verdict=\"{verdict}\"}}"
            ),
        )
    };
    assert_eq!(dns("sinkholed", "hik_connect"), 3.0, "{text}");
    assert_eq!(dns("sinkholed", "dahua_p2p"), 1.0, "{text}");
    assert_eq!(dns("sinkholed", "ddns"), 2.0, "{text}");
    assert_eq!(dns("static", "site"), 1.0, "{text}");
    assert_eq!(dns("refused", "unknown"), 1.0, "{text}");
    assert_eq!(egress("tcp", "hik_connect", "blocked"), 1.0, "{text}");
    assert_eq!(egress("tcp", "ddns", "blocked"), 1.0, "{text}");
    assert_eq!(egress("tcp", "direct_ip", "blocked"), 1.0, "{text}");
    assert_eq!(egress("udp", "direct_ip", "blocked"), 1.0, "{text}");
    assert_eq!(egress("tcp", "site", "forwarded"), 1.0, "{text}");
    assert!(
        sample(
            &text,
            "camgate_egress_attempt_bytes_total{device=\"cam\",protocol=\"tcp\",category=\"site\"}"
        ) >= 6.0,
        "{text}"
    );
    // The recorder got the push from camgate, not from the camera.
    let pushes = alarm.lock().unwrap().clone();
    assert!(
        pushes.iter().any(|l| l.contains("\"peer\": \"10.30.0.1\"")),
        "{pushes:?}"
    );
    // And the internet saw nothing at all.
    std::thread::sleep(Duration::from_millis(500));
    let leaked = sink.lock().unwrap()[seen..].to_vec();
    assert!(leaked.is_empty(), "reached the internet: {leaked:?}");

    // The camera moves, and speaks IPv6: nothing reaches the internet, nor
    // camgate over IPv4, and the drops are counted where the ruleset says.
    // (With IPv4 networks only, IPv6 to camgate itself cannot be told from
    // a recorder's: it is not routed, but camgate's own IPv6 listeners are
    // reachable; the interface run below covers it.)
    nothing_escaped(&escapes(&lab, true, false), &sink, seen);
    let table = lab.exec("gw", &["nft", "list", "table", "inet", "camgate"]);
    for rule in [
        "not an inventoried camera",
        "the camera side reaches nothing else",
        "the camera side's IPv6 is unknown: no IPv6 routed",
        "reverse path: routed sources come in where they are routed",
    ] {
        assert!(
            counted(&table, rule) > 0,
            "nothing counted by {rule:?}:\n{table}"
        );
    }
    // Everything camgate itself sent toward the camera side (RTSP, DNS
    // answers, trap resets) went to the inventoried camera.
    assert_eq!(
        named_counter(&lab, "gw", "own_packets_to_uninventoried"),
        0,
        "{table}"
    );

    // The same with the camera side given as the interface.
    let by_interface = lab.dir.path().join("by-interface.toml");
    std::fs::write(
        &by_interface,
        std::fs::read_to_string(&gw_config).unwrap().replace(
            "camera_networks = [\"10.20.0.0/24\"]",
            "camera_interface = \"gc\"",
        ),
    )
    .unwrap();
    let rules = run(&[BIN, "nft", "--config", by_interface.to_str().unwrap()]).unwrap();
    assert!(
        rules.contains("iifname \"gc\" jump from_cameras"),
        "{rules}"
    );
    std::fs::write(&rules_file, &rules).unwrap();
    lab.exec("gw", &["nft", "-f", rules_file.to_str().unwrap()]);
    nothing_escaped(&escapes(&lab, true, true), &sink, seen);
    let table = lab.exec("gw", &["nft", "list", "table", "inet", "camgate"]);
    for rule in [
        "not an inventoried camera",
        "not an inventoried camera (none is IPv6)",
        "the camera side reaches nothing else",
    ] {
        assert!(
            counted(&table, rule) > 0,
            "nothing counted by {rule:?}:\n{table}"
        );
    }
    assert_eq!(
        named_counter(&lab, "gw", "own_packets_to_uninventoried"),
        0,
        "{table}"
    );
    // The inventoried camera keeps its way to the sinkhole, hard-coded
    // resolver or not, and camgate keeps pulling it.
    for server in ["10.20.0.1", "203.0.113.53"] {
        let answer = lab.exec(
            "cam",
            &[
                "python3",
                TOOL,
                "dns",
                "10.20.0.11",
                server,
                "dev.hik-connect.com",
            ],
        );
        let answer: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
        assert!(in_pool(&answer), "{server}: {answer}");
    }
    assert_eq!(
        sample(
            &metrics(&lab),
            "camgate_stream_up{device=\"cam\",stream=\"main\"}"
        ),
        1.0
    );
    let leaked = sink.lock().unwrap()[seen..].to_vec();
    assert!(leaked.is_empty(), "reached the internet: {leaked:?}");
}

/// The packets counted by a named counter of table `inet camgate`.
fn named_counter(lab: &Lab, role: &str, name: &str) -> u64 {
    let text = lab.exec(role, &["nft", "list", "counter", "inet", "camgate", name]);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packets in {text}"))
}

/// camgate's own packets toward the camera side reach inventoried cameras
/// only (chains `output` and `to_cameras`): pulling a camera with
/// `rtsp_transport = "udp"`, retina sends hole-punching datagrams wherever
/// the camera's SETUP answer points, and this keeps them from every other
/// camera-side host. From the gateway namespace, a datagram to an address
/// of the camera network that is not inventoried fails (EPERM) and is
/// counted, while the inventoried cameras (IPv4 and IPv6, neighbour
/// discovery included) get theirs; camgate's own addresses and loopback
/// are untouched, and so are addresses outside the camera networks unless
/// the side is given as the interface.
#[test]
fn camgate_sends_only_to_inventoried_cameras() {
    support::require("ip");
    let mut lab = match lab_of("o", &["cam", "gw"]) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("SKIPPED: network namespaces unavailable here ({e}); run as root");
            return;
        }
    };
    support::require("nft");
    support::require("python3");
    let (cam, gw) = (lab.name("cam"), lab.name("gw"));
    run(&[
        "ip", "link", "add", "o0", "netns", &cam, "type", "veth", "peer", "name", "go", "netns",
        &gw,
    ])
    .unwrap();
    for (role, cmds) in [
        (
            "cam",
            vec![
                "ip addr add 10.20.0.11/24 dev o0",
                "ip addr add 10.20.0.77/24 dev o0",
                "ip addr add 192.0.2.9/32 dev o0",
                "ip -6 addr add fd20::11/64 dev o0 nodad",
                "ip -6 addr add fd20::77/64 dev o0 nodad",
                "ip link set o0 up",
            ],
        ),
        (
            "gw",
            vec![
                "ip addr add 10.20.0.1/24 dev go",
                "ip -6 addr add fd20::1/64 dev go nodad",
                // A gateway: it solicits no router.
                "sysctl -qw net.ipv6.conf.all.forwarding=1",
                "ip link set go up",
                "ip route add 192.0.2.9/32 dev go",
            ],
        ),
    ] {
        lab.exec(role, &["ip", "link", "set", "lo", "up"]);
        for c in cmds {
            let args: Vec<&str> = c.split(' ').collect();
            lab.exec(role, &args);
        }
    }
    let t = Instant::now();
    while ["cam", "gw"].iter().any(|role| {
        !lab.exec(role, &["ip", "-6", "addr", "show", "tentative"])
            .is_empty()
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "IPv6 addresses stay tentative"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Inventoried: .11 and fd20::11. On the camera network but not
    // inventoried: .77 and fd20::77. Outside the camera networks: 192.0.2.9.
    let far = lab.spawn(
        "cam",
        &[
            "python3",
            TOOL,
            "listen-udp",
            "10.20.0.11@5004",
            "10.20.0.77@5004",
            "192.0.2.9@5004",
            "fd20::11@5004",
            "fd20::77@5004",
        ],
        false,
    );
    let near = lab.spawn(
        "gw",
        &[
            "python3",
            TOOL,
            "listen-udp",
            "10.20.0.1@5004",
            "127.0.0.1@5004",
        ],
        false,
    );
    wait_for(&far, "ready", 10);
    wait_for(&near, "ready", 10);
    let all = [
        "10.20.0.11",
        "10.20.0.77",
        "192.0.2.9",
        "fd20::11",
        "fd20::77",
        "10.20.0.1",
        "127.0.0.1",
    ];
    // Sends a datagram to each of `all` from camgate's namespace: which
    // arrived, and what each send said.
    let send = |lab: &Lab| -> (Vec<String>, Vec<serde_json::Value>) {
        let (f0, n0) = (far.lock().unwrap().len(), near.lock().unwrap().len());
        let targets: Vec<String> = all.iter().map(|a| format!("{a}@5004")).collect();
        let mut args = vec!["python3", TOOL, "send-udp"];
        args.extend(targets.iter().map(String::as_str));
        let sent: Vec<serde_json::Value> = lab
            .exec("gw", &args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        let mut got: Vec<String> = far.lock().unwrap()[f0..]
            .iter()
            .chain(&near.lock().unwrap()[n0..])
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["dst"].as_str().unwrap().to_string()
            })
            .collect();
        got.sort();
        (got, sent)
    };
    let sorted = |v: &[&str]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    // Without the ruleset everything arrives.
    let (got, sent) = send(&lab);
    assert_eq!(got, sorted(&all), "{sent:?}");

    let config = lab.dir.path().join("camgate.toml");
    let networks = "[rtsp]\nlisten = \"127.0.0.1:8554\"\n\
        [egress]\ncamera_networks = [\"10.20.0.0/24\", \"fd20::/64\"]\n\
        [[device]]\nid = \"cam\"\nhost = \"10.20.0.11\"\nrtsp_transport = \"udp\"\n[device.streams]\nmain = \"/a\"\n\
        [[device]]\nid = \"cam6\"\nhost = \"fd20::11\"\nrtsp_transport = \"udp\"\n[device.streams]\nmain = \"/a\"\n";
    let interface = networks.replace(
        "camera_networks = [\"10.20.0.0/24\", \"fd20::/64\"]",
        "camera_interface = \"go\"",
    );
    for (side, text, refused) in [
        (
            "networks",
            networks.to_string(),
            &["10.20.0.77", "fd20::77"][..],
        ),
        (
            "interface",
            interface,
            &["10.20.0.77", "fd20::77", "192.0.2.9"][..],
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let rules = run(&[BIN, "nft", "--config", config.to_str().unwrap()]).unwrap();
        let file = lab.dir.path().join("camgate.nft");
        std::fs::write(&file, &rules).unwrap();
        if let Err(e) = run(&[
            "ip",
            "netns",
            "exec",
            &gw,
            "nft",
            "-f",
            file.to_str().unwrap(),
        ]) {
            if e.contains("Operation not supported") || e.contains("Protocol not supported") {
                eprintln!("SKIPPED: this kernel refuses nftables: {e}");
                return;
            }
            panic!("the rendered ruleset does not apply: {e}\n{rules}");
        }
        let before = named_counter(&lab, "gw", "own_packets_to_uninventoried");
        let (got, sent) = send(&lab);
        let want: Vec<&str> = all
            .iter()
            .copied()
            .filter(|a| !refused.contains(a))
            .collect();
        assert_eq!(got, sorted(&want), "{side}: {sent:?}\n{rules}");
        for s in &sent {
            let to = s["to"].as_str().unwrap();
            let result = s["result"].as_str().unwrap();
            if refused.contains(&to) {
                assert!(
                    result.contains("Operation not permitted"),
                    "{side}: {to}: {result}"
                );
            } else {
                assert_eq!(result, "sent", "{side}: {to}");
            }
        }
        let counted = named_counter(&lab, "gw", "own_packets_to_uninventoried") - before;
        assert_eq!(
            counted,
            refused.len() as u64,
            "{side}: {}",
            lab.exec("gw", &["nft", "list", "table", "inet", "camgate"])
        );
    }
}

/// Every shape the ruleset takes (interface, networks of either family or
/// both, IPv6 cameras and NTP servers, an empty inventory) is one the
/// kernel accepts: `nft -c` in a namespace of its own.
#[test]
fn every_shape_of_the_ruleset_loads() {
    support::require("ip");
    let ns = format!("cg{}chk", std::process::id() % 100_000);
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    if let Err(e) = run(&["ip", "netns", "add", &ns]) {
        eprintln!("SKIPPED: network namespaces unavailable here ({e}); run as root");
        return;
    }
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _ns = Netns(ns.clone());
    support::require("nft");
    let dir = tempfile::tempdir().unwrap();
    let cams = "[[device]]\nid = \"a\"\nhost = \"10.20.0.11\"\n[device.streams]\nmain = \"/a\"\n\
                [[device]]\nid = \"b\"\nhost = \"fd20::12\"\nrtsp_transport = \"udp\"\n[device.streams]\nmain = \"/a\"\n";
    let base = "[rtsp]\nlisten = \"10.30.0.1:8554\"\n[dns]\nlisten = \"0.0.0.0:53\"\n\
                [egress]\ntrap_tcp = \"0.0.0.0:15001\"\ntrap_udp = \"0.0.0.0:15002\"\n\
                ntp_servers = [\"10.0.0.123\", \"fd00::123\"]\n";
    for (i, (side, devices)) in [
        ("camera_interface = \"cams0\"\n", cams),
        ("camera_networks = [\"10.20.0.0/24\"]\n", cams),
        ("camera_networks = [\"fd20::/64\"]\n", cams),
        (
            "camera_interface = \"cams0\"\ncamera_networks = [\"10.20.0.0/24\", \"fd20::/64\"]\n",
            cams,
        ),
        (
            "camera_networks = [\"10.20.0.0/24\", \"fd20::/64\"]\n",
            "[[device]]\nid = \"demo\"\nsimulated = true\n",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let config = dir.path().join(format!("{i}.toml"));
        std::fs::write(&config, format!("{base}{side}{devices}")).unwrap();
        let rules = run(&[BIN, "nft", "--config", config.to_str().unwrap()])
            .unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join(format!("{i}.nft"));
        std::fs::write(&file, &rules).unwrap();
        if let Err(e) = run(&[
            "ip",
            "netns",
            "exec",
            &ns,
            "nft",
            "-c",
            "-f",
            file.to_str().unwrap(),
        ]) {
            if e.contains("Operation not supported") || e.contains("Protocol not supported") {
                eprintln!("SKIPPED: this kernel refuses nftables: {e}");
                return;
            }
            panic!("shape {i} does not load: {e}\n{rules}");
        }
    }
}
