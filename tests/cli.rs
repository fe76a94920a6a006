//! The `camgate` binary as an operator runs it: `check` output and exit
//! codes, `run` start-up failures, and graceful shutdown on signals.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_camgate");

/// Runs `camgate <cmd> --config <file>` and waits for it.
fn camgate(cmd: &str, file: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args([cmd, "--config"])
        .arg(file)
        .output()
        .unwrap()
}

fn write_config(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), text).unwrap();
    f
}

#[test]
fn check_accepts_the_shipped_demo_with_a_summary() {
    let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/camgate.toml");
    let out = Command::new(BIN)
        .args(["check", "--config", demo])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("warning: recorder[0].password: literal password"),
        "{stdout}"
    );
    assert!(
        stdout.contains("RTSP   rtsp://127.0.0.1:8554/<device>/<stream>"),
        "{stdout}"
    );
    assert!(stdout.contains("demo             simulated"), "{stdout}");
    assert!(!stdout.contains("password = "), "no secret in the summary");
}

#[test]
fn check_lists_every_problem_and_exits_1() {
    let f = write_config(
        "[rtsp]\nlisn = 1\n[[device]]\nid = \"Bad\"\n[[device]]\nid = \"ok\"\nhost = \"x\"\n[device.streams]\nmain = \"/a\"\n",
    );
    let out = camgate("check", f.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    for expect in [
        "error: rtsp.lisn: unknown key",
        "error: device[0].id: 'Bad'",
        "error: device[0].streams: at least one stream",
        "error: device[1].host: 'x' is not an IP address",
        "device[0].host: is required",
        "5 error(s)",
    ] {
        assert!(stdout.contains(expect), "missing {expect:?} in\n{stdout}");
    }
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn run_with_a_bad_config_exits_1_and_a_busy_port_exits_2() {
    let f = write_config("[rtsp]\nlisten = \"nonsense\"\n");
    let out = camgate("run", f.path());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let f = write_config(&format!(
        "[rtsp]\nlisten = \"127.0.0.1:{port}\"\nudp = false\n[[device]]\nid = \"demo\"\nsimulated = true\n"
    ));
    let out = camgate("run", f.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("127.0.0.1:{port}")),
        "names the address: {stderr}"
    );
}

#[test]
fn signals_stop_it_cleanly_within_5_seconds() {
    for signal in ["-TERM", "-INT"] {
        let port = support::free_port();
        let f = write_config(&format!(
            "{}\n[[device]]\nid = \"demo\"\nsimulated = true\n",
            support::base_config("").replace(
                "127.0.0.1:0\"\nudp_rtp_port",
                &format!("127.0.0.1:{port}\"\nudp_rtp_port")
            )
        ));
        let mut child = Command::new(BIN)
            .args(["run", "--log-format", "json", "--config"])
            .arg(f.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("camgate logged").unwrap();
            assert!(line.starts_with('{'), "JSON logs: {line}");
            if line.contains("camgate running") {
                break;
            }
        }
        // A recorder is playing when the signal comes.
        let mut ffmpeg = Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-rtsp_transport", "tcp", "-i"])
            .arg(format!(
                "rtsp://{}:{}@127.0.0.1:{port}/demo/main",
                support::NVR_USER,
                support::NVR_PASS
            ))
            .args(["-f", "null", "-"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_secs(2));
        let t = Instant::now();
        let st = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "still running 5 s after {signal}"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        assert_eq!(status.code(), Some(0), "exit status after {signal}");
        let _ = ffmpeg.kill();
        let _ = ffmpeg.wait();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    }
}

#[test]
fn nft_needs_the_camera_side() {
    let cam = "[[device]]\nid = \"cam\"\nhost = \"10.20.0.11\"\n[device.streams]\nmain = \"/a\"\n\
               [egress]\ntrap_tcp = \"0.0.0.0:15001\"\n";
    let f = write_config(cam);
    let out = camgate("nft", f.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no ruleset at all");
    assert!(
        stderr.contains("egress.camera_networks") && stderr.contains("egress.camera_interface"),
        "{stderr}"
    );
    // check warns (run shares its validation, and the trap works behind
    // any firewall), and still exits 0.
    let out = camgate("check", f.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("warning: egress.camera_networks: neither egress.camera_networks nor egress.camera_interface is set"),
        "{stdout}"
    );

    let f = write_config(&format!("{cam}camera_networks = [\"10.20.0.0/24\"]\n"));
    let out = camgate("nft", f.path());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("ip saddr != @cameras4 counter drop"),
        "{stdout}"
    );

    let f = write_config(&format!("{cam}camera_networks = [\"10.20.0.1/24\"]\n"));
    let out = camgate("nft", f.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: egress.camera_networks[0]: \"10.20.0.1/24\" has host bits set"),
        "{stderr}"
    );
}
