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

/// Part 6 of issue 12: reads of stored secrets (site passwords, keys, cloud
/// codes, other devices' credentials) are denied for both vendors, over
/// every transport, however the name is spelled.
#[test]
fn stored_secret_reads_are_denied() {
    let p = shipped();
    let h = Vendor::Hikvision;
    let d = Vendor::Dahua;
    let cgi = "/cgi-bin/configManager.cgi?action=getConfig&name=";
    let mut cases: Vec<(Vendor, String, &str)> = Vec::new();
    for name in [
        "Email",
        "email",
        "EMAIL",
        "Email.Password",
        "Email.UserName",
        "table.Email",
        "Email[0]",
        "Em%61il",
        "+Email",
        "Encode,Email",
        "Encode%20Email",
        "WLan",
        "WLan.eth2.Keys[0]",
        "PPPoE",
        "DDNS",
        "DDNS[0].Password",
        "NAS",
        "NAS[0].Password",
        "FTP",
        "SNMP",
        "SNMP.ReadCommunity",
        "RemoteDevice",
        "RemoteDevice.uuid:System_CONFIG_NETCAMERA_INFO_6.Password",
        "T2UServer",
        "VSP_PaaS",
        "P2P",
        "MobilePush",
        "SIP",
        "AccessPlatform",
        "All",
        "all",
    ] {
        cases.push((d, format!("{cgi}{name}"), "dahua-secret-config"));
    }
    for raw in [
        // Any action, any key: the name is caught wherever it is.
        "/cgi-bin/configManager.cgi?action=getDefault&name=Email",
        "/cgi-bin/configManager.cgi?action=getConfig&name=Encode&names%5B0%5D=Email",
        "/cgi-bin/configManager.cgi?action=getConfig&NAME=PPPoE",
        "/cgi-bin/CONFIGMANAGER.CGI?action=getConfig&name=WLan",
        "//cgi-bin/./configManager.cgi?action=getConfig&name=DDNS",
    ] {
        cases.push((d, raw.to_string(), "dahua-secret-config"));
    }
    for raw in [
        // Not one well-formed name: not forwarded.
        "/cgi-bin/configManager.cgi?action=getConfig",
        "/cgi-bin/configManager.cgi?action=getConfig&name=",
        "/cgi-bin/configManager.cgi?action=getConfig&name=Encode%20",
        "/cgi-bin/configManager.cgi?action=getConfig&name=Encode;Snap",
    ] {
        cases.push((d, raw.to_string(), "default-deny"));
    }
    for path in [
        "/ISAPI/System/Network/PPPoE",
        "/ISAPI/System/Network/PPPoE/1",
        "/ISAPI/System/Network/DDNS",
        "/ISAPI/System/Network/DDNS/1",
        "/ISAPI/System/Network/DDNS/capabilities",
        "/ISAPI/System/Network/EZVIZ",
        "/ISAPI/System/Network/EZVIZ?security=1&iv=662af2c0adbd0889d18a71c81af7d1f5",
        "/ISAPI/System/Network/Ehome",
        "/ISAPI/System/Network/EhomeList",
        "/ISAPI/System/Network/mailing",
        "/ISAPI/System/Network/ftp",
        "/ISAPI/System/Network/ftp/1",
        "/ISAPI/System/Network/SNMP",
        "/ISAPI/System/Network/SNMP/V3",
        "/ISAPI/System/Network/SIP",
        "/ISAPI/System/Network/SIP/1/SIPInfo",
        "/ISAPI/System/Network/interfaces/1/wireless",
        "/ISAPI/System/Network/interfaces/2/wireless",
        "/ISAPI/System/Network/interfaces/1/wirelessServer",
        "/ISAPI/System/Network/wirelessServer",
        "/ISAPI/System/Network/interfaces/1/ieee802.1x",
        "/ISAPI/System/Network/WPS",
        "/ISAPI/System/Network/interfaces/2/WPS/devicePinCode",
        "/ISAPI/System/PictureServer",
        "/ISAPI/Event/notification/httpHosts",
        "/ISAPI/Event/notification/httpHosts/1",
        "/ISAPI/ContentMgmt/InputProxy/channels",
        "/ISAPI/ContentMgmt/InputProxy/channels/1",
        "/ISAPI/ContentMgmt/Storage/nas",
        "/ISAPI/ContentMgmt/IOProxy/inputs",
        // Case, encoding and dot segments are undone before matching.
        "/isapi/system/network/ezviz",
        "/ISAPI//System/./Network/EZVIZ/",
        "/%49SAPI/System/Network/%45home",
        "/ISAPI/System/Network/mailing;x=1",
    ] {
        cases.push((h, path.to_string(), "hik-secret-reads"));
    }
    for path in [
        "/ISAPI/System/Network",
        "/ISAPI/System/Network/interfaces",
        "/ISAPI/System/Network/interfaces/2",
    ] {
        cases.push((h, path.to_string(), "hik-network-composite-reads"));
    }
    // A Network read nobody listed is not guessed safe.
    cases.push((
        h,
        "/ISAPI/System/Network/SomethingNew".into(),
        "default-deny",
    ));
    for (v, raw, rule) in &cases {
        let verdict = decide(&p, *v, "GET", raw, &[], &[]);
        assert_eq!(
            (verdict.action, &*verdict.rule),
            (Action::Deny, *rule),
            "{v:?} GET {raw}"
        );
    }

    // RPC2: configManager calls naming a secret, alone or in a multicall.
    for (m, params) in [
        ("configManager.getConfig", json!({"name": "Email"})),
        ("configManager.getConfig", json!({"name": "WLan"})),
        ("configManager.getConfig", json!({"name": "RemoteDevice"})),
        ("configManager.getConfig", json!({"name": "All"})),
        ("configManager.getConfig", json!({"name": "Email.Password"})),
        ("configManager.getConfig", json!({"name": "table.PPPoE"})),
        (
            "configManager.getConfig",
            json!({"name": "NAS", "channel": 0}),
        ),
        ("ConfigManager.GetConfig", json!({"name": "ddns"})),
        ("configManager.getDefault", json!({"name": "SNMP"})),
        ("configManager.getConfig", json!({"name": "T2UServer"})),
    ] {
        let v = decide(&p, d, "POST", "/RPC2", &[], &[(m, params.clone())]);
        assert_eq!(
            (v.action, &*v.rule),
            (Action::Deny, "dahua-rpc-secret-config"),
            "{m} {params}"
        );
    }
    let v = decide(
        &p,
        d,
        "POST",
        "/RPC2",
        &[],
        &[
            ("configManager.getConfig", json!({"name": "Encode"})),
            ("configManager.getConfig", json!({"name": "PPPoE"})),
        ],
    );
    assert_eq!(&*v.rule, "dahua-rpc-secret-config");
    // A name that is not one plain string is not judged: denied.
    for params in [
        json!({"name": ["Email"]}),
        json!({"name": {"x": "Email"}}),
        json!({}),
        json!(null),
        json!({"name": "Encode Snap"}),
    ] {
        let v = decide(
            &p,
            d,
            "POST",
            "/RPC2",
            &[],
            &[("configManager.getConfig", params.clone())],
        );
        assert_eq!(
            (v.action, &*v.rule),
            (Action::Deny, "default-deny"),
            "{params}"
        );
    }

    // ONVIF, both vendors, any case, alone or beside an allowed call.
    for v in [h, d, Vendor::Generic] {
        for op in [
            "GetUsers",
            "GetRemoteUser",
            "GetDot1XConfiguration",
            "GetDot1XConfigurations",
            "GetStorageConfiguration",
            "GetStorageConfigurations",
            "GetSystemBackup",
            "getremoteuser",
        ] {
            let verdict = decide(&p, v, "POST", "/onvif/device_service", &[op], &[]);
            assert_eq!(
                (verdict.action, &*verdict.rule),
                (Action::Deny, "onvif-secret-reads"),
                "{v:?} {op}"
            );
        }
        let verdict = decide(
            &p,
            v,
            "POST",
            "/onvif/device_service",
            &["GetDeviceInformation", "GetDot1XConfigurations"],
            &[],
        );
        assert_eq!(&*verdict.rule, "onvif-secret-reads", "{v:?}");
    }
}

/// The reads a VMS needs still pass next to the secret denials.
#[test]
fn legitimate_reads_pass_beside_the_secret_rules() {
    let p = shipped();
    let h = Vendor::Hikvision;
    let d = Vendor::Dahua;
    for name in [
        "Encode",
        "VideoInOptions",
        "ChannelTitle",
        "General",
        "VideoColor",
        "VideoWidget",
        "MotionDetect",
        "Snap",
        "NTP",
        "Locales",
        "Encode[0].MainFormat[0].Video",
        "table.Encode",
    ] {
        let raw = format!("/cgi-bin/configManager.cgi?action=getConfig&name={name}");
        let v = decide(&p, d, "GET", &raw, &[], &[]);
        assert_eq!(
            (v.action, &*v.rule),
            (Action::Allow, "dahua-config-reads"),
            "{raw}"
        );
        let v = decide(
            &p,
            d,
            "POST",
            "/RPC2",
            &[],
            &[("configManager.getConfig", json!({"name": name}))],
        );
        assert_eq!(
            (v.action, &*v.rule),
            (Action::Allow, "dahua-rpc-config-reads"),
            "RPC {name}"
        );
    }
    let v = decide(
        &p,
        d,
        "POST",
        "/RPC2",
        &[],
        &[
            ("configManager.getConfig", json!({"name": "Encode"})),
            ("configManager.getConfig", json!({"name": "ChannelTitle"})),
            ("magicBox.getSerialNo", json!(null)),
        ],
    );
    assert!(v.allowed(), "{v:?}");
    for (path, action) in [
        ("/ISAPI/System/deviceInfo", Action::Allow),
        ("/ISAPI/Streaming/channels", Action::Allow),
        ("/ISAPI/Streaming/channels/101", Action::Allow),
        ("/ISAPI/Streaming/channels/101/picture", Action::Allow),
        ("/ISAPI/ContentMgmt/Storage", Action::Allow),
        (
            "/ISAPI/ContentMgmt/InputProxy/channels/status",
            Action::Allow,
        ),
        ("/ISAPI/System/Network/interfaces/1/ipAddress", Action::Log),
        ("/ISAPI/System/Network/UPnP", Action::Log),
        ("/ISAPI/System/Network/capabilities", Action::Log),
    ] {
        let v = decide(&p, h, "GET", path, &[], &[]);
        assert_eq!(v.action, action, "GET {path} decided by {}", v.rule);
    }
    for v in [h, d] {
        for op in [
            "GetDeviceInformation",
            "GetProfiles",
            "GetStreamUri",
            "GetSnapshotUri",
            "GetNetworkInterfaces",
            "GetVideoEncoderConfigurations",
        ] {
            let verdict = decide(&p, v, "POST", "/onvif/device_service", &[op], &[]);
            assert!(verdict.allowed(), "{v:?} {op} denied by {}", verdict.rule);
        }
    }
}

#[test]
fn query_any_and_param_patterns() {
    let p = Policy::parse(
        r#"vendor = "any"
[[rule]]
id = "q"
action = "deny"
query_any = '(^|\.)secret'
reason = "any query value naming a secret"
[[rule]]
id = "r"
action = "deny"
rpc_methods = "^x\\."
rpc_params = [{ path = "params.name", patterns = ['^sec', 'ret$'] }]
reason = "rpc name patterns"
[[rule]]
id = "ok"
action = "allow"
reason = "everything else"
"#,
        "t.toml",
    )
    .unwrap();
    let g = Vendor::Generic;
    assert_eq!(
        &*decide(&p, g, "GET", "/a?x=1&y=a.SECRET", &[], &[]).rule,
        "q"
    );
    assert_eq!(&*decide(&p, g, "GET", "/a?x=secretive", &[], &[]).rule, "q");
    assert_eq!(&*decide(&p, g, "GET", "/a?secret=1", &[], &[]).rule, "ok");
    assert_eq!(&*decide(&p, g, "GET", "/a?x=asecret", &[], &[]).rule, "ok");
    assert_eq!(&*decide(&p, g, "GET", "/a", &[], &[]).rule, "ok");
    let rpc = |m: &str, v: serde_json::Value| decide(&p, g, "POST", "/", &[], &[(m, v)]);
    assert_eq!(&*rpc("x.get", json!({"name": "Secure"})).rule, "r");
    assert_eq!(&*rpc("x.get", json!({"name": "FERRET"})).rule, "r");
    assert_eq!(&*rpc("x.get", json!({"name": "other"})).rule, "ok");
    assert_eq!(&*rpc("x.get", json!({"name": ["secure"]})).rule, "ok");
    assert_eq!(&*rpc("y.get", json!({"name": "secure"})).rule, "ok");
    let e = Policy::parse(
        "vendor = \"any\"\n[[rule]]\nid = \"r\"\naction = \"deny\"\nreason = \"x\"\nquery_any = \"(\"\n",
        "u.toml",
    )
    .unwrap_err();
    assert!(e[0].0.contains("u.toml: rule 'r': query_any:"), "{e:?}");
    let e = Policy::parse(
        "vendor = \"any\"\n[[rule]]\nid = \"r\"\naction = \"deny\"\nreason = \"x\"\nrpc_params = [{ path = \"params.a\", patterns = [\"(\"] }]\n",
        "v.toml",
    )
    .unwrap_err();
    assert!(
        e[0].0.contains("v.toml: rule 'r': rpc_params 'params.a':"),
        "{e:?}"
    );
}
