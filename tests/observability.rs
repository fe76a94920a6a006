//! Metrics, the admin API, the status page (in a real browser), and the
//! shipped Prometheus rules and Grafana dashboard.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::scripted_camera::ScriptedCamera;
use support::*;

fn config(cam_port: u16) -> String {
    format!(
        "{}\n[[device]]\nid = \"demo\"\nsimulated = true\nremoval_deadline = \"2099-01-01\"\n\
         [[device]]\nid = \"gate-cam-01\"\nvendor = \"hikvision\"\nhost = \"127.0.0.1\"\nrtsp_port = {cam_port}\n\
         removal_deadline = 2020-01-01\n[device.streams]\nmain = \"/Streaming/Channels/101\"\n",
        base_config("").replace("read_timeout_secs = 5", "read_timeout_secs = 2")
    )
}

async fn scrape(app: &TestApp) -> String {
    let (status, head, body) = http(app.admin, "GET", "/metrics", &[]).await;
    assert_eq!(status, 200);
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    body
}

async fn wait_until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_the_streams() {
    let cam = ScriptedCamera::start().await;
    let app = spawn_app(&config(cam.addr.port()), &[]).await;
    let up = "camgate_stream_up{device=\"gate-cam-01\",stream=\"main\"}";
    wait_until("the camera to be up", async || {
        sample(&scrape(&app).await, up) == Some(1.0)
    })
    .await;
    let text = scrape(&app).await;
    for name in camgate::metrics::NAMES {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "{name} not declared"
        );
    }
    // One series per device; the scripted camera's Hikvision-style SDP is
    // fingerprint evidence, so detected_vendor may already be filled in.
    let info: Vec<_> = text
        .lines()
        .filter(|l| {
            l.starts_with("camgate_device_info{device=\"gate-cam-01\",vendor=\"hikvision\",")
        })
        .collect();
    assert_eq!(info.len(), 1, "{info:?}");
    assert!(info[0].ends_with(" 1"), "{info:?}");
    assert!(
        info[0].contains("detected_vendor=\"hikvision\"")
            || info[0].contains("detected_vendor=\"\""),
        "{info:?}"
    );
    assert_eq!(
        sample(
            &text,
            "camgate_device_removal_deadline_timestamp_seconds{device=\"gate-cam-01\"}"
        ),
        Some(1_577_836_800.0)
    );
    let bytes = "camgate_stream_received_bytes_total{device=\"demo\",stream=\"main\"}";
    let b0 = sample(&text, bytes).unwrap();
    assert!(
        sample(
            &text,
            "camgate_stream_frames_total{device=\"demo\",stream=\"main\",kind=\"key\"}"
        )
        .unwrap()
            >= 1.0
    );
    let last = sample(
        &text,
        "camgate_stream_last_frame_timestamp_seconds{device=\"demo\",stream=\"main\"}",
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - last).abs() < 5.0);

    // A recorder: sessions count it, sent bytes grow.
    let s = retina_play(&app.bare_url("demo/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    let recorder = tokio::spawn(retina_frames(s, Duration::from_secs(6), 75));
    let sessions = "camgate_recorder_sessions{device=\"demo\",stream=\"main\",recorder=\"nvr\",transport=\"tcp\"}";
    wait_until("the session gauge", async || {
        sample(&scrape(&app).await, sessions) == Some(1.0)
    })
    .await;
    let sent =
        "camgate_recorder_sent_bytes_total{device=\"demo\",stream=\"main\",recorder=\"nvr\"}";
    wait_until("sent bytes", async || {
        sample(&scrape(&app).await, sent).unwrap_or(0.0) > 100_000.0
    })
    .await;
    wait_until("received bytes to grow", async || {
        sample(&scrape(&app).await, bytes).unwrap() > b0
    })
    .await;
    recorder.await.unwrap();
    wait_until("the session to end", async || {
        sample(&scrape(&app).await, sessions) == Some(0.0)
    })
    .await;

    // Auth failures are counted by reason.
    let _ = retina_play(&app.bare_url("demo/main"), NVR_USER, "wrong", false).await;
    let fails = "camgate_auth_failures_total{protocol=\"rtsp\",reason=\"bad_credentials\"}";
    assert!(sample(&scrape(&app).await, fails).unwrap_or(0.0) >= 1.0);

    // The camera goes away: up drops to 0, reconnects count up.
    cam.stop();
    wait_until("the camera to be down", async || {
        sample(&scrape(&app).await, up) == Some(0.0)
    })
    .await;
    wait_until("reconnects to count", async || {
        let t = scrape(&app).await;
        t.lines().any(|l| {
            l.starts_with("camgate_stream_reconnects_total{device=\"gate-cam-01\",stream=\"main\"")
                && l.rsplit(' ')
                    .next()
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(0.0)
                    >= 1.0
        })
    })
    .await;
    // OpenMetrics when asked for.
    let (_, head, body) = http(
        app.admin,
        "GET",
        "/metrics",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
    )
    .await;
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.trim_end().ends_with("# EOF"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_answers_and_refuses() {
    let cam = ScriptedCamera::start().await;
    let app = spawn_app(&config(cam.addr.port()), &[]).await;
    assert_eq!(http(app.admin, "GET", "/healthz", &[]).await.0, 200);
    assert_eq!(http(app.admin, "GET", "/readyz", &[]).await.0, 200);
    assert_eq!(http(app.admin, "GET", "/nope", &[]).await.0, 404);
    assert_eq!(
        http(app.admin, "GET", "/api/v1/devices/nope", &[]).await.0,
        404
    );
    assert_eq!(
        http(app.admin, "GET", "/api/v1/devices/Bad%21", &[])
            .await
            .0,
        400
    );
    assert_eq!(
        http(app.admin, "GET", "/api/v1/devices?sort=x", &[])
            .await
            .0,
        400
    );
    assert_eq!(
        http(app.admin, "POST", "/metrics", &[("Content-Length", "0")])
            .await
            .0,
        405
    );

    let s = retina_play(&app.bare_url("demo/main"), NVR_USER, NVR_PASS, false)
        .await
        .unwrap();
    let recorder = tokio::spawn(retina_frames(s, Duration::from_secs(5), 80));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, head, body) = http(app.admin, "GET", "/api/v1/devices", &[]).await;
    assert_eq!(status, 200);
    assert!(head.contains("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let devices = v.as_array().unwrap();
    assert_eq!(devices.len(), 2);
    // Problems first: the overdue camera sorts before the demo.
    assert_eq!(devices[0]["id"], "gate-cam-01");
    assert!(devices[0]["days_until_removal"].as_i64().unwrap() < 0);
    let demo = &devices[1];
    assert_eq!(demo["kind"], "simulated");
    assert_eq!(demo["up"], true);
    let main = &demo["streams"][0];
    assert_eq!(main["state"], "live");
    assert_eq!(main["tracks"][0]["codec"], "h264");
    assert_eq!(main["tracks"][0]["profile"], "Main");
    assert_eq!(main["tracks"][0]["width"], 1280);
    assert_eq!(main["tracks"][0]["height"], 720);
    assert!((main["fps"].as_f64().unwrap() - 25.0).abs() < 3.0, "{main}");
    assert!(
        main["bitrate_in_bps"].as_u64().unwrap() > 2_000_000,
        "{main}"
    );
    assert!(
        main["bitrate_out_bps"].as_u64().unwrap() > 2_000_000,
        "{main}"
    );
    assert_eq!(main["recorders"][0]["name"], "nvr");
    assert_eq!(main["recorders"][0]["playing"], true);
    assert!(!body.contains(NVR_PASS), "no credential in the API");
    recorder.await.unwrap();

    cam.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, _, body) = http(app.admin, "GET", "/api/v1/devices/gate-cam-01", &[]).await;
    assert_eq!(status, 200);
    let d: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(d["up"], false);
    assert_eq!(d["host"], "127.0.0.1");
    assert!(
        d["streams"][0]["last_error"]["message"]
            .as_str()
            .unwrap()
            .len()
            > 3,
        "{d}"
    );
    assert!(
        d["streams"][0]["last_error"]["at"]
            .as_str()
            .unwrap()
            .ends_with('Z'),
        "{d}"
    );
    app.stop().await;
}

/// Headless Chromium from Debian, as in the README's test command.
fn chromium(args: &[&str]) -> std::process::Output {
    require("chromium");
    let profile = tempfile::tempdir().unwrap();
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .output()
        .expect("run chromium")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_a_real_browser() {
    let cam = ScriptedCamera::start().await;
    let app = spawn_app(&config(cam.addr.port()), &[]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    cam.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    let url = format!("http://{}/", app.admin);
    let admin = app.admin;
    let dom = tokio::task::spawn_blocking(move || chromium(&["--dump-dom", &url]))
        .await
        .unwrap();
    let html = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let rows: Vec<&str> = html
        .match_indices("<tr class=\"device ")
        .map(|(i, _)| &html[i..i + 80])
        .collect();
    assert_eq!(rows.len(), 2, "{html}");
    assert!(
        rows[0].contains("down") && rows[0].contains("gate-cam-01"),
        "problem first: {rows:?}"
    );
    assert!(
        rows[1].contains("up") && rows[1].contains("demo"),
        "{rows:?}"
    );
    assert!(html.contains("(overdue)"));
    assert!(html.contains("2 devices, 1 down"));
    // A screenshot as a test artefact.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    let url = format!("http://{admin}/");
    let arg = format!("--screenshot={}", shot.display());
    let out =
        tokio::task::spawn_blocking(move || chromium(&[&arg, "--window-size=1400,600", &url]))
            .await
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 5_000,
        "screenshot written"
    );
    app.stop().await;
}

fn promtool(args: &[&str]) -> (bool, String) {
    require("promtool");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus"))
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn prometheus_rules_check_and_fire_on_samples() {
    let (ok, out) = promtool(&["check", "rules", "camgate-alerts.yml"]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "camgate-alerts.test.yml"]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["check", "config", "--syntax-only", "prometheus.yml"]);
    assert!(ok, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_queries_use_only_declared_metrics() {
    let app = spawn_app(
        &format!(
            "{}\n[[device]]\nid = \"demo\"\nsimulated = true\n",
            base_config("")
        ),
        &[],
    )
    .await;
    let text = scrape(&app).await;
    let dash = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/grafana/camgate.json"
    ))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&dash).unwrap();
    let mut exprs = Vec::new();
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    if (k == "expr" || k == "definition") && x.is_string() {
                        out.push(x.as_str().unwrap().to_string());
                    }
                    walk(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    walk(&v, &mut exprs);
    assert!(exprs.len() > 10);
    let mut checked = 0;
    for e in &exprs {
        for (i, _) in e.match_indices("camgate_") {
            let name: String = e[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let declared = text.contains(&format!("# TYPE {name} "))
                || text.contains(&format!("# TYPE {} ", name.trim_end_matches("_total")));
            assert!(
                declared,
                "dashboard uses {name}, which camgate does not declare"
            );
            checked += 1;
        }
    }
    assert!(checked > 10);
    app.stop().await;
}
