//! Config loading tests: the shipped demo, every error path, env overrides.

use super::*;
use std::io::Write;

fn write(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn load_text(text: &str) -> Result<Loaded, LoadError> {
    let f = write(text);
    load_with_env(f.path(), Default::default(), &no_env)
}

fn problems(text: &str) -> Vec<String> {
    match load_text(text) {
        Ok(_) => panic!("expected problems for:\n{text}"),
        Err(e) => e.problems.iter().map(|p| p.to_string()).collect(),
    }
}

fn shipped() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/camgate.toml")
}

#[test]
fn shipped_demo_loads_as_the_contract_says() {
    let loaded = load_with_env(&shipped(), Default::default(), &no_env).unwrap();
    let c = &loaded.config;
    assert_eq!(c.rtsp.listen, "127.0.0.1:8554".parse().unwrap());
    assert_eq!(c.admin.listen, "127.0.0.1:9559".parse().unwrap());
    assert_eq!(c.devices.len(), 1);
    let d = &c.devices[0];
    assert_eq!(d.id.as_str(), "demo");
    assert!(matches!(d.source, DeviceSource::Simulated { clip: None }));
    assert_eq!(d.audio, AudioPolicy::Pass);
    assert_eq!(d.streams.len(), 1);
    assert_eq!(&*d.streams[0].name, "main");
    assert_eq!(c.recorders.len(), 1);
    assert_eq!(c.recorders[0].username, "demo");
    assert_eq!(c.recorders[0].password.expose(), "demo");
    // The literal password is the one warning.
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(loaded.warnings[0].path, "recorder[0].password");
}

#[test]
fn shipped_demo_documents_every_key() {
    let text = std::fs::read_to_string(shipped()).unwrap();
    for key in [
        "listen",
        "udp",
        "udp_rtp_port",
        "max_connections",
        "max_request_bytes",
        "max_payload_bytes",
        "session_timeout_secs",
        "describe_timeout_secs",
        "recorder_queue_bytes",
        "recorder_max_lag_secs",
        "gop_cache_max_bytes",
        "connect_timeout_secs",
        "read_timeout_secs",
        "backoff_initial_secs",
        "backoff_max_secs",
        "backoff_reset_secs",
        "on_demand_close_secs",
        "memory_limit_bytes",
        "name",
        "username",
        "password",
        "password_env",
        "password_file",
        "allow_from",
        "devices",
        "id",
        "vendor",
        "host",
        "rtsp_port",
        "http_port",
        "pull",
        "audio",
        "removal_deadline",
        "simulated",
        "clip",
        "clip_fps",
        "streams",
        "rtsp_transport",
        "quirks",
        "initial_timestamp",
        "initial_seq",
        "unknown_rtcp_ssrc",
        "session_id",
        "teardown",
        "unassigned_channel_data",
        "policy",
        "max_header_bytes",
        "max_body_bytes",
        "max_response_bytes",
        "timeout_secs",
        "stream_idle_timeout_secs",
        "tls_cert",
        "tls_key",
        "https_port",
        "front",
        "http_scheme",
        "tls_fingerprint",
        "camera_networks",
        "camera_interface",
        "max_unauthenticated_connections",
        "max_unauthenticated_per_address",
        "unauthenticated_timeout_secs",
        "max_connections_per_address",
        "tcp_max_connections",
        "tcp_max_connections_per_address",
        "tcp_idle_timeout_secs",
        "max_connections_per_device",
        "forward_write_timeout_secs",
        "max_unauthenticated_body_bytes",
        "unauthenticated_body_budget_bytes",
        "nonce_lifetime_secs",
        "ws_created_skew_secs",
        "cleartext_auth",
    ] {
        assert!(
            text.contains(&format!("{key} ="))
                || text.contains(&format!("{key}]"))
                || text.contains(&format!(".{key}")),
            "config/camgate.toml does not document {key}"
        );
    }
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let p = problems(
        r#"
typo_section = 1
[rtsp]
listn = "127.0.0.1:1"
[camera]
conect_timeout_secs = 3
[admin]
lisen = "x"
[[recorder]]
name = "a"
username = "a"
password = "x"
devics = ["*"]
[[device]]
id = "cam"
host = "10.0.0.1"
stream = "x"
[device.streams]
main = "/a"
[device.quirks]
teardwn = "auto"
"#,
    );
    let joined = p.join("\n");
    for path in [
        "typo_section",
        "rtsp.listn",
        "camera.conect_timeout_secs",
        "admin.lisen",
        "recorder[0].devics",
        "device[0].stream",
        "device[0].quirks.teardwn",
    ] {
        assert!(
            joined.contains(&format!("{path}: unknown key")),
            "missing {path} in\n{joined}"
        );
    }
}

#[test]
fn bad_values_name_their_key_and_value() {
    let p = problems(
        r#"
[rtsp]
listen = "nonsense"
[[recorder]]
name = "Bad Name"
username = "u"
[[recorder]]
name = "b"
username = "u2"
password = "p"
password_env = "X"
allow_from = ["10.0.0.0/33"]
devices = ["nope"]
[[device]]
id = "UPPER"
vendor = "axis"
host = "cam.example"
pull = "sometimes"
audio = "loud"
removal_deadline = "2027-13-01"
rtsp_transport = "sctp"
[device.streams]
main = "no-slash"
"Bad" = "/x"
[device.quirks]
initial_timestamp = "sloppy"
[[device]]
id = "cam2"
host = "10.0.0.2"
"#,
    );
    let joined = p.join("\n");
    for expect in [
        "rtsp.listen:",
        "recorder[0].name: 'Bad Name'",
        "recorder[0].password: a recorder needs",
        "recorder[1].password: set only one",
        "recorder[1].allow_from[0]: '10.0.0.0/33'",
        "recorder[1].devices[0]: unknown device id 'nope'",
        "device[0].id: 'UPPER'",
        "device[0].vendor: 'axis'",
        "device[0].host: 'cam.example'",
        "device[0].pull: 'sometimes'",
        "device[0].audio: 'loud'",
        "device[0].removal_deadline: '2027-13-01'",
        "device[0].rtsp_transport: 'sctp'",
        "device[0].streams.main: 'no-slash'",
        "device[0].streams.Bad:",
        "device[0].quirks.initial_timestamp: 'sloppy'",
        "device[1].streams: at least one stream",
    ] {
        assert!(joined.contains(expect), "missing {expect:?} in\n{joined}");
    }
}

#[test]
fn memory_limit_is_automatic_or_at_least_64_mib() {
    let base = "[[device]]\nid = \"a\"\nsimulated = true\n";
    for bad in ["512", "67108863"] {
        let p = problems(&format!("[camera]\nmemory_limit_bytes = {bad}\n{base}"));
        assert!(
            p.iter().any(|p| p.contains("camera.memory_limit_bytes")),
            "{bad}: {p:?}"
        );
    }
    for good in ["0", "67108864", "9223372036854775807"] {
        let l = load_text(&format!("[camera]\nmemory_limit_bytes = {good}\n{base}"));
        assert!(l.is_ok(), "{good}: {:?}", l.err().map(|e| e.problems));
    }
    let p = problems(&format!("[camera]\nmemory_limit_bytes = -1\n{base}"));
    assert!(
        p.iter().any(|p| p.contains("camera.memory_limit_bytes")),
        "{p:?}"
    );
}

#[test]
fn type_errors_have_paths() {
    let p = problems(
        "[rtsp]\nmax_connections = \"many\"\n[[device]]\nid = \"a\"\nsimulated = true\nrtsp_port = -1\n",
    );
    let joined = p.join("\n");
    assert!(joined.contains("rtsp.max_connections:"), "{joined}");
    assert!(joined.contains("device[0].rtsp_port:"), "{joined}");
}

#[test]
fn ranges_and_duplicates() {
    let p = problems(
        r#"
[rtsp]
max_payload_bytes = 10
recorder_queue_bytes = 1000
session_timeout_secs = 0
[camera]
backoff_initial_secs = 10
backoff_max_secs = 5
[[recorder]]
name = "a"
username = "a"
password = "x"
[[recorder]]
name = "a"
username = "a"
password = "y"
[[device]]
id = "d"
simulated = true
[[device]]
id = "d"
simulated = true
"#,
    );
    let joined = p.join("\n");
    for expect in [
        "rtsp.max_payload_bytes",
        "rtsp.recorder_queue_bytes",
        "rtsp.session_timeout_secs",
        "camera.backoff_max_secs",
        "recorder[1].name: duplicate",
        "recorder[1].username: duplicate",
        "device[1].id: duplicate",
    ] {
        assert!(joined.contains(expect), "missing {expect:?} in\n{joined}");
    }
}

#[test]
fn connection_limits_default_and_validate() {
    let base = "[[recorder]]\nname = \"a\"\nusername = \"a\"\npassword = \"x\"\n";
    let c = load_text(base).unwrap().config;
    assert_eq!(c.rtsp.max_unauthenticated(), 256, "a quarter of 1024");
    assert_eq!(c.rtsp.max_unauthenticated_per_address, 32);
    assert_eq!(c.rtsp.unauthenticated_timeout_secs, 10);
    assert_eq!(c.http.max_connections, 1024);
    assert_eq!(c.http.max_unauthenticated(), 256);
    assert_eq!(c.rtsp.max_sessions_per_recorder, 64);
    assert_eq!(c.admin.max_connections, 256);
    assert_eq!(c.admin.max_connections_per_address, 32);
    assert_eq!(c.dns.tcp_max_connections, 256);
    assert_eq!(c.dns.tcp_max_connections_per_address, 16);
    assert_eq!(c.egress.max_connections_per_device, 64);
    assert_eq!(c.egress.forward_write_timeout.as_secs(), 30);
    // A small pool keeps working (defaults follow it).
    let c = load_text(&format!(
        "[rtsp]\nmax_connections = 2\n[egress]\nmax_connections = 8\n{base}"
    ))
    .unwrap()
    .config;
    assert_eq!(c.rtsp.max_unauthenticated(), 1);
    assert_eq!(c.egress.max_connections_per_device, 8);
    let mut p = problems(&format!(
        r#"
[rtsp]
max_connections = 10
max_unauthenticated_connections = 11
max_unauthenticated_per_address = 0
unauthenticated_timeout_secs = 0
max_sessions_per_recorder = 0
[http]
max_connections = 0
unauthenticated_timeout_secs = 7200
[admin]
max_connections = 4
max_connections_per_address = 5
{base}"#
    ));
    // [dns] and [egress] are checked on their own (a bad one stops the
    // range checks above), so in a second file.
    p.extend(problems(&format!(
        r#"
[dns]
tcp_max_connections = 0
tcp_idle_timeout_secs = 0
[egress]
max_connections = 8
max_connections_per_device = 9
forward_write_timeout_secs = 0
{base}"#
    )));
    let joined = p.join("\n");
    for expect in [
        "rtsp.max_unauthenticated_connections",
        "rtsp.max_unauthenticated_per_address",
        "rtsp.unauthenticated_timeout_secs",
        "rtsp.max_sessions_per_recorder",
        "http.max_connections",
        "http.unauthenticated_timeout_secs",
        "admin.max_connections_per_address",
        "dns.tcp_max_connections",
        "dns.tcp_max_connections_per_address",
        "dns.tcp_idle_timeout_secs",
        "egress.max_connections_per_device",
        "egress.forward_write_timeout_secs",
    ] {
        assert!(joined.contains(expect), "missing {expect:?} in\n{joined}");
    }
}

#[test]
fn sections_of_the_wrong_shape() {
    let p = problems("rtsp = 3\n[recorder]\nname = \"a\"\n");
    let joined = p.join("\n");
    assert!(joined.contains("rtsp: must be a table"), "{joined}");
    assert!(
        joined.contains("recorder: must be an array of tables"),
        "{joined}"
    );
}

#[test]
fn secrets_from_env_and_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cam.pw"), "s3cret\n").unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        r#"
[[recorder]]
name = "nvr"
username = "nvr"
password_env = "NVR_PW"
devices = ["*"]
[[device]]
id = "cam"
host = "10.0.0.1"
username = "admin"
password_file = "cam.pw"
removal_deadline = 2027-06-30
[device.streams]
main = "/cam/realmonitor?channel=1&subtype=0"
"#,
    )
    .unwrap();
    let env = |k: &str| (k == "NVR_PW").then(|| "from-env".to_string());
    let loaded = load_with_env(&file, Default::default(), &env).unwrap();
    let c = loaded.config;
    assert_eq!(c.recorders[0].password.expose(), "from-env");
    let DeviceSource::Camera(cam) = &c.devices[0].source else {
        panic!()
    };
    assert_eq!(cam.password.as_ref().unwrap().expose(), "s3cret");
    assert_eq!(
        cam.url(&c.devices[0].streams[0].path).unwrap().as_str(),
        "rtsp://10.0.0.1:554/cam/realmonitor?channel=1&subtype=0"
    );
    assert_eq!(
        c.devices[0].removal_deadline.unwrap().to_string(),
        "2027-06-30"
    );
    // Nothing secret in Debug output.
    let dbg = format!("{c:?}");
    assert!(
        !dbg.contains("s3cret") && !dbg.contains("from-env"),
        "{dbg}"
    );

    // Missing variable and missing file are reported, by key.
    let err = load_with_env(&file, Default::default(), &no_env).unwrap_err();
    assert!(
        err.to_string()
            .contains("recorder[0].password_env: environment variable NVR_PW is not set")
    );
    std::fs::remove_file(dir.path().join("cam.pw")).unwrap();
    let err = load_with_env(&file, Default::default(), &env).unwrap_err();
    assert!(
        err.to_string()
            .contains("device[0].password_file: cannot read"),
        "{err}"
    );
}

#[test]
fn environment_overrides() {
    let f = write("[rtsp]\nlisten = \"127.0.0.1:1\"\n[[device]]\nid = \"a\"\nsimulated = true\n");
    let mut vars = config::Map::new();
    vars.insert(
        "CAMGATE__RTSP__LISTEN".to_string(),
        "127.0.0.1:2".to_string(),
    );
    vars.insert(
        "CAMGATE__RTSP__MAX_CONNECTIONS".to_string(),
        "7".to_string(),
    );
    let c = load_with_env(f.path(), vars, &no_env).unwrap().config;
    assert_eq!(c.rtsp.listen.port(), 2);
    assert_eq!(c.rtsp.max_connections, 7);

    // An unknown key from the environment is reported like one in the file.
    let mut vars = config::Map::new();
    vars.insert("CAMGATE__RTSP__LISTN".to_string(), "x".to_string());
    let err = load_with_env(f.path(), vars, &no_env).unwrap_err();
    assert!(err.to_string().contains("rtsp.listn: unknown key"), "{err}");
}

#[test]
fn missing_file_and_bad_toml() {
    let err = load_with_env(
        Path::new("/nonexistent/c.toml"),
        Default::default(),
        &no_env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("cannot read /nonexistent/c.toml"));
    let p = problems("[rtsp\nlisten=");
    assert_eq!(p.len(), 1);
}

#[test]
fn allow_from_matches_mapped_v4() {
    let f = write(
        "[[recorder]]\nname = \"a\"\nusername = \"a\"\npassword = \"p\"\nallow_from = [\"10.0.0.0/24\", \"192.0.2.7\"]\ndevices = [\"*\"]\n",
    );
    let c = load_with_env(f.path(), Default::default(), &no_env)
        .unwrap()
        .config;
    let r = &c.recorders[0];
    assert!(r.allowed_from("10.0.0.9".parse().unwrap()));
    assert!(r.allowed_from("::ffff:10.0.0.9".parse().unwrap()));
    assert!(r.allowed_from("192.0.2.7".parse().unwrap()));
    assert!(!r.allowed_from("192.0.2.8".parse().unwrap()));
}

#[test]
fn dns_and_egress_problems_are_all_reported() {
    let p = problems(
        "[dns]\nlisten = \"127.0.0.1:0\"\nallow = [\"bad name\", \"*.ok.example\"]\nsinkhole = \"blackhole\"\n\
         [[dns.static]]\nname = \"x.example\"\naddresses = []\n\
         [[dns.static]]\nname = \"-\"\naddresses = [\"10.0.0.1\"]\n\
         [egress]\ncategories = \"missing.toml\"\ncamera_interface = \"this-name-is-far-too-long\"\npeek_timeout_secs = 0\n\
         [[egress.allow]]\ndevices = [\"nope\"]\nto = \"10.0.0.5:80\"\n\
         [[egress.allow]]\ndevices = [\"*\"]\n\
         [[device]]\nid = \"cam\"\nsimulated = true\n",
    );
    let all = p.join("\n");
    for want in [
        "dns.allow[0]",
        "dns.upstream",
        "dns.sinkhole",
        "dns.static[0].addresses",
        "dns.static[1].name",
        "egress.categories",
        "egress.camera_interface",
        "egress.peek_timeout_secs",
        "egress.allow[0].devices: no device \"nope\"",
        "egress.allow[1].to",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    let p = problems(
        "[dns]\nsinkhole = \"trap\"\ntrap_pool = \"198.18.0.0/31\"\n[[device]]\nid = \"cam\"\nsimulated = true\n",
    );
    assert!(p.join("\n").contains("dns.trap_pool"), "{p:?}");
    let p = problems(
        "[dns]\nsinkhole = \"trap\"\ntrap_pool = \"fd00::/64\"\n[[device]]\nid = \"cam\"\nsimulated = true\n",
    );
    assert!(p.join("\n").contains("IPv4 network"), "{p:?}");
    let p = problems("[egress]\nunknown_key = 1\n[[device]]\nid = \"cam\"\nsimulated = true\n");
    assert!(p.join("\n").contains("egress.unknown_key"), "{p:?}");
}

#[test]
fn a_categories_file_is_loaded_relative_to_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("cats.toml"),
        "[[category]]\nid = \"acme_cloud\"\nvendor = \"acme\"\nreason = \"test\"\nnames = [\"acme.example\"]\n",
    )
    .unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "[egress]\ncategories = \"cats.toml\"\n[[device]]\nid = \"cam\"\nsimulated = true\n",
    )
    .unwrap();
    let c = load_with_env(&file, Default::default(), &no_env)
        .unwrap()
        .config;
    assert_eq!(
        c.egress
            .categories
            .by_name("x.acme.example")
            .map(|c| c.id.as_str()),
        Some("acme_cloud")
    );
    assert!(c.egress.categories.by_name("hik-connect.com").is_none());
}

/// Part 8 of issue 12: the raw config entries hold literal passwords as
/// `Secret`s, so their `Debug` (and that of anything containing them)
/// cannot print one.
#[test]
fn config_entries_debug_without_passwords() {
    let r: schema::RecorderEntry =
        toml::from_str("name = \"nvr\"\nusername = \"nvr\"\npassword = \"Rec-Literal-7qX\"\n")
            .unwrap();
    let d: schema::DeviceEntry = toml::from_str(
        "id = \"cam\"\nhost = \"10.0.0.1\"\nusername = \"admin\"\npassword = \"Dev-Literal-9zK\"\n",
    )
    .unwrap();
    assert_eq!(
        r.password.as_ref().map(Secret::expose),
        Some("Rec-Literal-7qX")
    );
    assert_eq!(
        d.password.as_ref().map(Secret::expose),
        Some("Dev-Literal-9zK")
    );
    for dbg in [
        format!("{r:?}"),
        format!("{r:#?}"),
        format!("{d:?}"),
        format!("{d:#?}"),
    ] {
        assert!(
            !dbg.contains("Literal") && dbg.contains("<redacted>"),
            "{dbg}"
        );
    }
    // A literal password still validates into the same secret.
    let loaded = load_text(
        "[[recorder]]\nname = \"nvr\"\nusername = \"nvr\"\npassword = \"Rec-Literal-7qX\"\ndevices = [\"*\"]\n[[device]]\nid = \"demo\"\nsimulated = true\n",
    )
    .unwrap();
    assert_eq!(
        loaded.config.recorders[0].password.expose(),
        "Rec-Literal-7qX"
    );
    assert!(!format!("{:?}", loaded.config).contains("Literal"));
}

#[test]
fn camera_networks_are_checked_with_their_key_paths() {
    let p = problems(
        "[egress]\ncamera_networks = [\"10.20.0.0/24\", \"10.20.0.1/24\", \"10.20.0.0/25\", \"fd20::/64\", \
         \"10.20.0.0/24\", \"nonsense\", \"10.21.0.0\", \"::ffff:10.0.0.0/104\", \"fd20::/64\"]\n\
         [[device]]\nid = \"cam\"\nsimulated = true\n",
    );
    let all = p.join("\n");
    for want in [
        "egress.camera_networks[1]: \"10.20.0.1/24\" has host bits set: the network is 10.20.0.0/24",
        "egress.camera_networks[2]: 10.20.0.0/25 overlaps egress.camera_networks[0] (10.20.0.0/24)",
        "egress.camera_networks[4]: 10.20.0.0/24 is given twice (also egress.camera_networks[0])",
        "egress.camera_networks[5]: \"nonsense\" is not a network",
        "egress.camera_networks[6]: \"10.21.0.0\" has no prefix length",
        "egress.camera_networks[7]: \"::ffff:10.0.0.0/104\" holds IPv4-mapped addresses",
        "egress.camera_networks[8]: fd20::/64 is given twice (also egress.camera_networks[3])",
    ] {
        assert!(all.contains(want), "missing {want:?} in:\n{all}");
    }
    assert_eq!(p.len(), 7, "{all}");
    assert!(
        !p.iter().any(|l| l.starts_with("egress.camera_networks[0]:")
            || l.starts_with("egress.camera_networks[3]:")),
        "the first of two is fine: {all}"
    );

    let c = load_text(
        "[egress]\ncamera_networks = [\"10.20.0.0/24\", \"fd20::/64\"]\n[[device]]\nid = \"cam\"\nsimulated = true\n",
    )
    .unwrap()
    .config;
    assert_eq!(
        c.egress.camera_networks,
        vec![
            "10.20.0.0/24".parse::<IpNet>().unwrap(),
            "fd20::/64".parse().unwrap()
        ]
    );
}

/// `camgate nft` refuses a config whose camera side is unknown; `check`
/// (and `run`, which shares the validation) only warn, where there is
/// something to confine.
#[test]
fn an_unknown_camera_side_is_a_warning() {
    let cam = "[[device]]\nid = \"cam\"\nhost = \"10.20.0.11\"\n[device.streams]\nmain = \"/a\"\n";
    let side_warnings = |text: &str| -> Vec<String> {
        load_text(text)
            .unwrap_or_else(|e| panic!("{e}"))
            .warnings
            .iter()
            .filter(|w| w.path == "egress.camera_networks")
            .map(ToString::to_string)
            .collect()
    };
    let w = side_warnings(cam);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("neither egress.camera_networks nor egress.camera_interface"),
        "{w:?}"
    );
    let trap_only =
        "[egress]\ntrap_tcp = \"0.0.0.0:15001\"\n[[device]]\nid = \"demo\"\nsimulated = true\n";
    assert_eq!(side_warnings(trap_only).len(), 1);
    assert!(side_warnings("[[device]]\nid = \"demo\"\nsimulated = true\n").is_empty());
    assert!(side_warnings(&format!("[egress]\ncamera_interface = \"cams0\"\n{cam}")).is_empty());
    assert!(
        side_warnings(&format!(
            "[egress]\ncamera_networks = [\"10.20.0.0/24\"]\n{cam}"
        ))
        .is_empty()
    );
    // A camera outside every network is named.
    let w = side_warnings(&format!(
        "[egress]\ncamera_networks = [\"10.99.0.0/24\"]\n{cam}"
    ));
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("camera \"cam\" (10.20.0.11) is in none of these networks"),
        "{w:?}"
    );
}

/// `auth` on a camera: Digest unless the device opts into Basic; anything
/// else is an error naming the device and the value; documented in the
/// shipped file.
#[test]
fn camera_auth_defaults_to_digest_and_basic_is_opt_in() {
    let cam = |extra: &str| {
        format!(
            "[[device]]\nid = \"gate-cam\"\nhost = \"10.20.0.11\"\n{extra}\n[device.streams]\nmain = \"/a\"\n"
        )
    };
    let auth_of = |text: &str| {
        let loaded = load_text(text).unwrap_or_else(|e| panic!("{e}"));
        match &loaded.config.devices[0].source {
            DeviceSource::Camera(c) => c.auth,
            DeviceSource::Simulated { .. } => panic!("a camera was configured"),
        }
    };
    assert_eq!(auth_of(&cam("")), CameraAuth::Digest);
    assert_eq!(auth_of(&cam("auth = \"digest\"")), CameraAuth::Digest);
    assert_eq!(auth_of(&cam("auth = \"basic\"")), CameraAuth::Basic);
    assert!(CameraAuth::Basic.allows_basic() && !CameraAuth::Digest.allows_basic());

    for bad in ["Basic", "none", "ntlm", ""] {
        let p = problems(&cam(&format!("auth = \"{bad}\"")));
        let joined = p.join("\n");
        assert!(
            joined.contains(&format!(
                "device[0].auth: '{bad}' is not one of digest, basic (device 'gate-cam')"
            )),
            "{joined}"
        );
    }
    // On a simulated device the key means nothing: a warning.
    let loaded =
        load_text("[[device]]\nid = \"demo\"\nsimulated = true\nauth = \"basic\"\n").unwrap();
    assert!(
        loaded.warnings.iter().any(|w| w.path == "device[0].auth"),
        "{:?}",
        loaded.warnings
    );
    let shipped = std::fs::read_to_string(shipped()).unwrap();
    assert!(
        shipped.contains("# auth = \"digest\""),
        "config/camgate.toml does not document auth"
    );
}
