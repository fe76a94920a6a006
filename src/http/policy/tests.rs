use super::*;
use crate::http::normalize::target;

fn shipped() -> Policy {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/policy");
    Policy::load(
        &["common.toml", "onvif.toml", "hikvision.toml", "dahua.toml"].map(|f| dir.join(f)),
    )
    .unwrap()
}

fn decide(
    p: &Policy,
    vendor: Vendor,
    method: &str,
    raw: &str,
    ops: &[&str],
    rpc: &[(&str, serde_json::Value)],
) -> Verdict {
    let t = target(raw).unwrap();
    let ops: Vec<String> = ops.iter().map(|s| s.to_string()).collect();
    let rpc: Vec<RpcCall> = rpc
        .iter()
        .map(|(m, p)| RpcCall {
            method: m.to_string(),
            params: p.clone(),
        })
        .collect();
    p.decide(&Facts {
        vendor,
        method,
        target: &t,
        onvif_ops: &ops,
        rpc: &rpc,
    })
}

use serde_json::json;

#[test]
fn recorder_corpus_is_allowed() {
    let p = shipped();
    let h = Vendor::Hikvision;
    let d = Vendor::Dahua;
    for (v, m, path, ops) in [
        (h, "GET", "/ISAPI/System/deviceInfo", &[][..]),
        (h, "GET", "/ISAPI/System/capabilities", &[]),
        (h, "GET", "/isapi/system/DEVICEINFO", &[]),
        (h, "GET", "/ISAPI/Streaming/channels/101/picture", &[]),
        (h, "GET", "/ISAPI/Streaming/channels", &[]),
        (h, "GET", "/ISAPI/Event/notification/alertStream", &[]),
        (h, "PUT", "/ISAPI/PTZCtrl/channels/1/continuous", &[]),
        (h, "PUT", "/ISAPI/PTZCtrl/channels/1/presets/3/goto", &[]),
        (h, "POST", "/ISAPI/ContentMgmt/search", &[]),
        (h, "GET", "/onvif-http/snapshot?Profile_1", &[]),
        (h, "PUT", "/ISAPI/System/time", &[]),
        (d, "GET", "/cgi-bin/magicBox.cgi?action=getSystemInfo", &[]),
        (d, "GET", "/cgi-bin/snapshot.cgi?channel=1", &[]),
        (
            d,
            "GET",
            "/cgi-bin/eventManager.cgi?action=attach&codes=[All]&heartbeat=5",
            &[],
        ),
        (
            d,
            "GET",
            "/cgi-bin/configManager.cgi?action=getConfig&name=Encode",
            &[],
        ),
        (
            d,
            "GET",
            "/cgi-bin/ptz.cgi?action=start&channel=1&code=GotoPreset&arg1=0&arg2=1&arg3=0",
            &[],
        ),
        (d, "GET", "/cgi-bin/global.cgi?action=getCurrentTime", &[]),
        (
            Vendor::Generic,
            "POST",
            "/onvif/device_service",
            &["GetSystemDateAndTime"],
        ),
        (h, "POST", "/onvif/device_service", &["GetCapabilities"]),
        (h, "POST", "/onvif/Media", &["GetStreamUri"]),
        (
            d,
            "POST",
            "/onvif/event_service",
            &["CreatePullPointSubscription"],
        ),
        (d, "POST", "/onvif/ptz_service", &["ContinuousMove"]),
        (h, "POST", "/onvif/Media", &["SetVideoEncoderConfiguration"]),
    ] {
        let verdict = decide(&p, v, m, path, ops, &[]);
        assert!(
            verdict.allowed(),
            "{m} {path} {ops:?} denied by {}",
            verdict.rule
        );
    }
    let v = decide(
        &p,
        d,
        "POST",
        "/RPC2",
        &[],
        &[("configManager.getConfig", json!({"name": "Encode"}))],
    );
    assert!(v.allowed(), "{v:?}");
    let v = decide(
        &p,
        d,
        "POST",
        "/RPC2_Login",
        &[],
        &[(
            "global.login",
            json!({"userName": "admin", "clientType": "Web3.0"}),
        )],
    );
    assert_eq!(v.action, Action::Log);
}

#[test]
fn exploit_maintenance_and_cloud_corpus_is_denied() {
    let p = shipped();
    let h = Vendor::Hikvision;
    let d = Vendor::Dahua;
    for (v, m, path, ops, rule) in [
        (
            h,
            "GET",
            "/Security/users?auth=YWRtaW46MTEK",
            &[][..],
            "cve-2017-7921-auth-param",
        ),
        (
            h,
            "GET",
            "/onvif-http/snapshot?auth=YWRtaW46MTEK",
            &[],
            "cve-2017-7921-auth-param",
        ),
        (
            h,
            "GET",
            "/System/configurationFile?AUTH=YWRtaW46MTEK",
            &[],
            "cve-2017-7921-auth-param",
        ),
        (h, "GET", "/Security/users", &[], "hik-legacy-roots"),
        (
            h,
            "PUT",
            "/SDK/webLanguage",
            &[],
            "cve-2021-36260-weblanguage",
        ),
        (
            h,
            "PUT",
            "/sdk/WEBLANGUAGE",
            &[],
            "cve-2021-36260-weblanguage",
        ),
        (
            d,
            "PUT",
            "/SDK/webLanguage",
            &[],
            "cve-2021-36260-weblanguage",
        ),
        (
            d,
            "GET",
            "/current_config/passwd",
            &[],
            "dahua-current-config",
        ),
        (
            d,
            "GET",
            "/current_config/Sha1Account1",
            &[],
            "dahua-current-config",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/updateFirmware",
            &[],
            "hik-firmware",
        ),
        (
            h,
            "GET",
            "/ISAPI/System/onlineUpgrade/status",
            &[],
            "hik-firmware",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/factoryReset?mode=basic",
            &[],
            "hik-reset-reboot-config",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/reboot",
            &[],
            "hik-reset-reboot-config",
        ),
        (
            h,
            "GET",
            "/ISAPI/System/configurationData",
            &[],
            "hik-reset-reboot-config",
        ),
        (
            h,
            "PUT",
            "/ISAPI/Security/users/1",
            &[],
            "hik-users-security",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/Network/EZVIZ",
            &[],
            "hik-network-writes",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/Network/DDNS",
            &[],
            "hik-network-writes",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/Network/UPnP",
            &[],
            "hik-network-writes",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/Network/Ehome",
            &[],
            "hik-network-writes",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/time/ntpServers/1",
            &[],
            "hik-ntp-servers",
        ),
        (
            h,
            "POST",
            "/ISAPI/Event/notification/httpHosts",
            &[],
            "hik-event-push-targets",
        ),
        (
            h,
            "PUT",
            "/ISAPI/System/TwoWayAudio/channels/1/open",
            &[],
            "hik-two-way-audio",
        ),
        (
            h,
            "GET",
            "/ISAPI/Security/sessionLogin/capabilities",
            &[],
            "web-ui-login",
        ),
        (
            d,
            "POST",
            "/cgi-bin/upgrader.cgi?action=uploadFirmware",
            &[],
            "dahua-firmware",
        ),
        (
            d,
            "GET",
            "/cgi-bin/configManager.cgi?action=restore",
            &[],
            "dahua-reset-reboot",
        ),
        (
            d,
            "GET",
            "/cgi-bin/magicBox.cgi?action=reboot",
            &[],
            "dahua-reset-reboot",
        ),
        (
            d,
            "GET",
            "/cgi-bin/userManager.cgi?action=addUser&user.Name=x",
            &[],
            "dahua-users",
        ),
        (
            d,
            "GET",
            "/cgi-bin/configManager.cgi?action=setConfig&T2UServer.Enable=true",
            &[],
            "dahua-config-writes",
        ),
        (
            d,
            "GET",
            "/cgi-bin/configManager.cgi?action=setConfig&NTP.Address=pool.ntp.org",
            &[],
            "dahua-config-writes",
        ),
        (
            h,
            "POST",
            "/onvif/device_service",
            &["SetUser"],
            "onvif-deny-management",
        ),
        (
            d,
            "POST",
            "/onvif/device_service",
            &["SystemReboot"],
            "onvif-deny-management",
        ),
        (
            h,
            "POST",
            "/onvif/device_service",
            &["SetNTP"],
            "onvif-deny-management",
        ),
        (
            h,
            "POST",
            "/onvif/device_service",
            &["SetSystemFactoryDefault"],
            "onvif-deny-management",
        ),
        (
            h,
            "POST",
            "/onvif/device_service",
            &["UpgradeSystemFirmware"],
            "onvif-deny-management",
        ),
        (
            h,
            "POST",
            "/onvif/device_service",
            &["SomethingNew"],
            "default-deny",
        ),
        (h, "GET", "/doc/page/login.asp", &[], "web-ui-login"),
        (h, "GET", "/ISAPI/Whatever/unknown", &[], "default-deny"),
        (
            Vendor::Generic,
            "GET",
            "/ISAPI/System/deviceInfo",
            &[],
            "default-deny",
        ),
    ] {
        let verdict = decide(&p, v, m, path, ops, &[]);
        assert_eq!(
            verdict.action,
            Action::Deny,
            "{m} {path} {ops:?} allowed by {}",
            verdict.rule
        );
        assert_eq!(&*verdict.rule, rule, "{m} {path} {ops:?}");
    }
}

#[test]
fn dahua_login_bypasses_and_rpc() {
    let p = shipped();
    let d = Vendor::Dahua;
    for params in [
        json!({"userName": "admin", "password": "Not Used", "clientType": "NetKeyboard", "loginType": "Direct"}),
        json!({"userName": "admin", "loginType": "Loopback", "clientType": "Local", "ipAddr": "127.0.0.1"}),
        json!({"userName": "admin", "clientType": "Dahua3.0-Web3.0-NOTUSED"}),
        json!({"userName": "admin", "ipAddr": "127.0.0.5"}),
    ] {
        let v = decide(
            &p,
            d,
            "POST",
            "/RPC2_Login",
            &[],
            &[("global.login", params.clone())],
        );
        assert_eq!(&*v.rule, "dahua-login-bypass", "{params}");
        assert!(!v.allowed());
        assert_eq!(
            &*v.cve,
            ["CVE-2021-33044".to_string(), "CVE-2021-33045".to_string()]
        );
    }
    for m in [
        "userManager.addUser",
        "configManager.setConfig",
        "magicBox.reboot",
        "upgrader.start",
    ] {
        let v = decide(&p, d, "POST", "/RPC2", &[], &[(m, json!({}))]);
        assert_eq!(&*v.rule, "dahua-rpc-writes", "{m}");
    }
    // A multicall: one denied call denies the whole request.
    let v = decide(
        &p,
        d,
        "POST",
        "/RPC2",
        &[],
        &[
            ("magicBox.getSerialNo", json!(null)),
            ("configManager.getConfig", json!({"name": "Encode"})),
            ("userManager.addUser", json!({"user": {"Name": "x"}})),
        ],
    );
    assert_eq!(&*v.rule, "dahua-rpc-writes");
    // All allowed: allowed.
    let v = decide(
        &p,
        d,
        "POST",
        "/RPC2",
        &[],
        &[
            ("magicBox.getSerialNo", json!(null)),
            ("global.getCurrentTime", json!(null)),
        ],
    );
    assert!(v.allowed(), "{v:?}");
    // An unknown method among allowed ones: denied by default.
    let v = decide(
        &p,
        d,
        "POST",
        "/RPC2",
        &[],
        &[
            ("magicBox.getSerialNo", json!(null)),
            ("mystery.call", json!(null)),
        ],
    );
    assert_eq!(&*v.rule, "default-deny");
}

#[test]
fn several_onvif_ops_are_judged_each() {
    let p = shipped();
    let v = decide(
        &p,
        Vendor::Hikvision,
        "POST",
        "/onvif/device_service",
        &["GetDeviceInformation", "SetUser"],
        &[],
    );
    assert_eq!(&*v.rule, "onvif-deny-management");
}

#[test]
fn bad_files_are_reported_with_file_and_rule() {
    let e = Policy::parse("vendor = \"acme\"\n", "x.toml").unwrap_err();
    assert!(e[0].0.contains("x.toml: vendor 'acme'"), "{e:?}");
    let e = Policy::parse("vendor = \"any\"\n[[rule]]\nid = \"r\"\naction = \"allow\"\nreason = \"x\"\npath = \"(\"\n", "y.toml").unwrap_err();
    assert!(e[0].0.contains("y.toml: rule 'r': path:"), "{e:?}");
    let e = Policy::parse(
        "vendor = \"any\"\n[[rule]]\nid = \"r\"\naction = \"permit\"\nreason = \"x\"\n",
        "z.toml",
    )
    .unwrap_err();
    assert!(e[0].0.starts_with("z.toml:"), "{e:?}");
    let e = Policy::parse(
        "vendor = \"any\"\n[[rule]]\nid = \"r\"\naction = \"allow\"\nreason = \"x\"\npth = \"a\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(e[0].0.contains("pth"), "{e:?}");
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("a.toml");
    std::fs::write(
        &f,
        "vendor = \"any\"\n[[rule]]\nid = \"r\"\naction = \"allow\"\nreason = \"x\"\n",
    )
    .unwrap();
    let e = Policy::load(&[&f, &f]).unwrap_err();
    assert!(e[0].0.contains("duplicate rule id 'r'"), "{e:?}");
    let e = Policy::load(&[dir.path().join("missing.toml")]).unwrap_err();
    assert!(e[0].0.contains("missing.toml"), "{e:?}");
}

#[test]
fn every_shipped_rule_has_a_reason_and_cves_are_well_formed() {
    let p = shipped();
    assert!(p.len() > 30, "{}", p.len());
    for r in &p.rules {
        assert!(r.verdict.reason.len() > 10, "{}", r.verdict.rule);
        for c in r.verdict.cve.iter() {
            assert!(c.starts_with("CVE-20") && c.len() >= 13, "{c}");
        }
    }
}
