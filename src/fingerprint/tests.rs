use std::net::Ipv4Addr;

use super::*;

fn printable(s: &str) -> bool {
    s.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

fn one(e: Option<Evidence>) -> (Signal, &'static str, String) {
    let e = e.expect("evidence");
    (e.signal, e.vendor, e.detail)
}

// --- OUI list -----------------------------------------------------------

#[test]
fn shipped_oui_list_is_valid() {
    let (entries, errors) = parse_oui_list(OUI_TXT);
    assert!(errors.is_empty(), "malformed lines in oui.txt: {errors:#?}");
    // §3.3: Hikvision 50 + 0C:75:D2, Ezviz 5, Prama 1, Hikrobot MA-L + MA-M;
    // Dahua 24, Huacheng 1, Lorex 1, Amcrest 1.
    assert_eq!(entries.len(), 86);
    let count = |v: &str| entries.iter().filter(|e| e.vendor == v).count();
    assert_eq!(count(HIKVISION), 50 + 1 + 5 + 1 + 2);
    assert_eq!(count(DAHUA), 24 + 1 + 1 + 1);
    let by_name = |n: &str| entries.iter().filter(|e| e.name == n).count();
    assert_eq!(by_name("Hangzhou Hikvision Digital Technology"), 51);
    assert_eq!(by_name("Hangzhou Ezviz Software"), 5);
    assert_eq!(by_name("Zhejiang Dahua Technology"), 24);
    assert_eq!(by_name("Hangzhou Hikrobot"), 2);
    assert_eq!(entries.iter().filter(|e| e.bits == 28).count(), 1);
    let mut keys: Vec<_> = entries.iter().map(|e| (e.bits, e.prefix)).collect();
    keys.dedup();
    assert_eq!(keys.len(), entries.len(), "duplicate blocks");
    for e in &entries {
        assert_eq!(
            e.prefix_text,
            e.prefix_text.to_uppercase(),
            "uppercase hex: {e:?}"
        );
    }
    // Nothing of the file was dropped by the lazy table.
    assert_eq!(oui_table().len(), 86);
}

#[test]
fn oui_line_parser_rejects_junk() {
    for bad in [
        "44:19:B6",
        "44:19:B6 hikvision",
        "44:19:B6 axis Axis Communications",
        "44:19 hikvision X",
        "44:19:B6:6 hikvision",
        "44:19:G6 hikvision X",
        "4:19:B6 hikvision X",
        "44:19:B6:66 hikvision X",
        "01:00:5E dahua multicast",
        "02:19:B6 dahua locally administered",
        "+4:19:B6 dahua X",
    ] {
        assert!(parse_oui_line(bad).is_err(), "{bad}");
    }
    assert_eq!(parse_oui_line("  # comment").unwrap(), None);
    assert_eq!(parse_oui_line("").unwrap(), None);
    let e = parse_oui_line("70:B3:D5:12:3 dahua Some MA-S Registrant")
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.bits, e.vendor, e.name),
        (36, DAHUA, "Some MA-S Registrant")
    );
    assert_eq!(e.prefix, 0x70B3_D512_3000);
}

#[test]
fn oui_matching() {
    let mac = |s: &str| parse_mac(s).unwrap();
    assert_eq!(
        one(oui(mac("44:19:b6:6d:24:85"))),
        (
            Signal::Oui,
            HIKVISION,
            "OUI 44:19:B6 Hangzhou Hikvision Digital Technology".to_string()
        )
    );
    let ezviz = oui(mac("58-8F-CF-01-02-03")).unwrap();
    assert_eq!(ezviz.vendor, HIKVISION);
    assert!(ezviz.detail.contains("Ezviz"), "{}", ezviz.detail);
    assert_eq!(oui(mac("24:b1:05:00:00:01")).unwrap().vendor, HIKVISION);
    assert_eq!(oui(mac("0c:75:d2:00:00:01")).unwrap().vendor, HIKVISION);
    assert_eq!(oui(mac("3c:ef:8c:12:34:56")).unwrap().vendor, DAHUA);
    assert_eq!(oui(mac("fc:b6:9d:12:34:56")).unwrap().vendor, DAHUA);
    let lorex = oui(mac("00:1f:54:aa:bb:cc")).unwrap();
    assert_eq!(
        (lorex.vendor, lorex.detail.as_str()),
        (DAHUA, "OUI 00:1F:54 Lorex Technology")
    );
    assert_eq!(oui(mac("9c:8e:cd:00:00:00")).unwrap().vendor, DAHUA);
    assert_eq!(oui(mac("90:6a:94:00:00:00")).unwrap().vendor, DAHUA);
    // MA-M: only the 28-bit block B0:B3:53:6x.
    let robot = oui(mac("b0:b3:53:6f:ff:ff")).unwrap();
    assert_eq!(
        (robot.vendor, robot.detail.as_str()),
        (HIKVISION, "OUI B0:B3:53:6 Hangzhou Hikrobot")
    );
    assert_eq!(oui(mac("b0:b3:53:7f:ff:ff")), None);
    assert_eq!(oui(mac("b0:b3:53:5f:ff:ff")), None);
    // Unknown (Axis), zero, broadcast, locally administered twin of a Hik OUI.
    assert_eq!(oui(mac("00:40:8c:12:34:56")), None);
    assert_eq!(oui([0; 6]), None);
    assert_eq!(oui([0xff; 6]), None);
    assert_eq!(oui(mac("46:19:b6:6d:24:85")), None);
}

#[test]
fn parse_mac_variants() {
    let want = Some([0x44, 0x19, 0xb6, 0x6d, 0x24, 0x85]);
    for s in [
        "44:19:b6:6d:24:85",
        "44:19:B6:6D:24:85",
        "44-19-B6-6D-24-85",
        " 44:19:b6:6d:24:85\n",
        "4419.b66d.2485",
        "4419b66d2485",
        "4419B66D2485",
    ] {
        assert_eq!(parse_mac(s), want, "{s:?}");
    }
    assert_eq!(
        parse_mac("0:1f:54:a:b:c"),
        Some([0, 0x1f, 0x54, 0xa, 0xb, 0xc])
    );
    for bad in [
        "",
        "44:19:b6:6d:24",
        "44:19:b6:6d:24:85:00",
        "44:19:b6:6d:24:8g",
        "44:19-b6:6d:24:85",
        "44::b6:6d:24:85",
        "+4:19:b6:6d:24:85",
        "444:19:b6:6d:24:85",
        "4419b66d248",
        "4419b66d24855",
        "4419.b66d.248",
        "44.19.b6.6d.24.85",
        "éé:19:b6:6d:24:85",
        "4419b66d248é",
        "00000000000000000000000000000000000000000000",
    ] {
        assert_eq!(parse_mac(bad), None, "{bad:?}");
    }
}

#[test]
fn proc_net_arp() {
    let text = "\
IP address       HW type     Flags       HW address            Mask     Device
192.168.1.64     0x1         0x2         44:19:b6:6d:24:85     *        eth1
192.168.1.108    0x1         0x2         3c:ef:8c:12:34:56     *        eth1
192.168.1.99     0x1         0x0         00:00:00:00:00:00     *        eth1
192.168.1.98     0x1         0x2         00:00:00:00:00:00     *        eth1
192.168.1.1      0x1         0x6         00:1f:54:aa:bb:cc     *        eth0
192.168.1.64     0x1         0x2         3c:ef:8c:00:00:01     *        eth2
10.0.0.5         0x1         0x2         zz:zz                 *        eth0
garbage
10.0.0.6  0x1  0xq  44:19:b6:00:00:06  *  eth0

";
    let m = parse_proc_net_arp(text);
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(
        m.get(&Ipv4Addr::new(192, 168, 1, 64)),
        Some(&[0x44, 0x19, 0xb6, 0x6d, 0x24, 0x85])
    );
    assert_eq!(
        m.get(&Ipv4Addr::new(192, 168, 1, 108))
            .copied()
            .and_then(oui)
            .map(|e| e.vendor),
        Some(DAHUA)
    );
    assert!(m.contains_key(&Ipv4Addr::new(192, 168, 1, 1)));
    assert!(!m.contains_key(&Ipv4Addr::new(192, 168, 1, 99)));
    assert!(parse_proc_net_arp("").is_empty());
    // Bounded: entries past line 65536 are not read.
    let mut big = String::from("IP address HW type Flags HW address Mask Device\n");
    for i in 0..70_000u32 {
        let [_, _, a, b] = i.to_be_bytes();
        big.push_str(&format!(
            "10.1.{a}.{b} 0x1 0x2 44:19:b6:00:{a:02x}:{b:02x} * eth0\n"
        ));
    }
    assert_eq!(parse_proc_net_arp(&big).len(), 65535);
}

// --- headers ------------------------------------------------------------

#[test]
fn rtsp_server_samples() {
    assert_eq!(
        one(rtsp_server("Rtsp Server/3.0")),
        (Signal::RtspServer, DAHUA, "Server: Rtsp Server/3.0".into())
    );
    assert_eq!(rtsp_server(" Rtsp Server/2.0 \r").unwrap().vendor, DAHUA);
    assert_eq!(rtsp_server("Dahua Rtsp Server").unwrap().vendor, DAHUA);
    assert_eq!(rtsp_server("Hikvision RTSP").unwrap().vendor, HIKVISION);
    for none in [
        "",
        "Rtsp Server/",
        "Rtsp Server/3.0 beta",
        "rtsp server/3.0",
        "GStreamer RTSP server",
        "Wowza Streaming Engine",
        "Hikvision and Dahua",
    ] {
        assert_eq!(rtsp_server(none), None, "{none:?}");
    }
    let long = format!("Dahua {}", "x".repeat(10_000));
    assert_eq!(rtsp_server(&long), None);
}

#[test]
fn http_server_samples() {
    for (v, detail) in [
        ("App-webs/", "Server: App-webs/"),
        ("webserver", "Server: webserver"),
        ("DNVRS-Webs", "Server: DNVRS-Webs"),
        ("DVRDVS-Webs", "Server: DVRDVS-Webs"),
        ("Hikvision-Webs", "Server: Hikvision-Webs"),
        ("DVS-Webs", "Server: DVS-Webs"),
        ("App-webs/1.0.2", "Server: App-webs/1.0.2"),
        ("DNVRS-Webs/2.0", "Server: DNVRS-Webs/2.0"),
    ] {
        assert_eq!(
            one(http_server(v)),
            (Signal::HttpServer, HIKVISION, detail.to_string()),
            "{v}"
        );
    }
    assert_eq!(http_server("Dahua Web Server").unwrap().vendor, DAHUA);
    for none in [
        "",
        "App-webs",
        "App-webs/ <script>",
        "Webserver",
        "webserver/1.0",
        "nginx",
        "lighttpd/1.4.59",
        "WEB SERVICE",
        "Boa/0.94.14rc21",
        "DNVRS-Webserver",
    ] {
        assert_eq!(http_server(none), None, "{none:?}");
    }
    // Hostile: control characters are cleaned out of the detail.
    let e = http_server("Hikvision\x1b[31m\u{7}\u{202e} x").unwrap();
    assert!(
        printable(&e.detail) && e.detail.len() <= 96,
        "{:?}",
        e.detail
    );
}

#[test]
fn realm_samples() {
    assert_eq!(
        one(www_authenticate(
            "Digest realm=\"IPCamera\", nonce=\"6e6b4d3a7a6b3d\", qop=\"auth\", stale=\"FALSE\"",
            false
        )),
        (Signal::HttpRealm, HIKVISION, "realm=\"IPCamera\"".into())
    );
    assert_eq!(
        one(www_authenticate("Basic realm=\"hikvision\"", false)),
        (Signal::HttpRealm, HIKVISION, "realm=\"hikvision\"".into())
    );
    assert_eq!(
        one(www_authenticate(
            "Digest realm=\"4419b66d2485\", nonce=\"0f9a4e2b1c\", stale=\"FALSE\"",
            true
        )),
        (
            Signal::RtspRealm,
            HIKVISION,
            "realm=\"4419b66d2485\" (OUI 44:19:B6)".into()
        )
    );
    assert_eq!(
        one(www_authenticate(
            "Digest realm=\"Login to ND021811019863\", qop=\"auth\", nonce=\"1234\", opaque=\"abc\"",
            false
        )),
        (
            Signal::HttpRealm,
            DAHUA,
            "realm=\"Login to ND021811019863\"".into()
        )
    );
    // A MAC-like realm of a Dahua OUI.
    assert_eq!(
        www_authenticate("Digest realm=\"3cef8c123456\"", true)
            .unwrap()
            .vendor,
        DAHUA
    );
    // The MAC realm and IPCamera count where they were seen.
    assert_eq!(
        www_authenticate("Digest realm=\"4419b66d2485\"", false),
        None
    );
    assert_eq!(www_authenticate("Digest realm=\"IPCamera\"", true), None);
    // Second challenge, unquoted value, odd spacing and case.
    assert_eq!(
        www_authenticate(
            "Digest nonce=\"x\", realm=\"IP Camera\", Basic REALM = hikvision",
            true
        )
        .unwrap()
        .vendor,
        HIKVISION
    );
    for none in [
        "",
        "Digest realm=\"IP Camera\", nonce=\"x\"",
        "Basic realm=\"device\"",
        "Digest realm=\"000000000000\"",
        "Digest realm=\"00408c123456\"",
        "Digest nonce=\"realm=\\\"hikvision\\\"\"",
        "Digest myrealm=\"hikvision\"",
        "Digest realm",
        "Digest realm=",
        "realm=\"",
    ] {
        assert_eq!(www_authenticate(none, false), None, "{none:?}");
        assert_eq!(www_authenticate(none, true), None, "{none:?}");
    }
    // Unterminated quoted realm still reads what is there.
    assert_eq!(
        www_authenticate("Digest realm=\"Login to X", false)
            .unwrap()
            .vendor,
        DAHUA
    );
    // Hostile: huge, control characters, non-ASCII.
    let big = format!(
        "Digest realm=\"Login to {}\u{0}\u{1b}é\"",
        "A".repeat(100_000)
    );
    let e = www_authenticate(&big, false).unwrap();
    assert!(
        printable(&e.detail) && e.detail.len() <= 96,
        "{:?}",
        e.detail
    );
    let _ = www_authenticate(&"realm=\"".repeat(10_000), true);
    let _ = www_authenticate(&"\\\"".repeat(10_000), true);
    let _ = www_authenticate("é".repeat(3000).as_str(), true);
}

// --- SDP ----------------------------------------------------------------

const HIK_SDP: &str = "v=0\r\n\
o=- 1109162014219182 1109162014219192 IN IP4 192.168.1.64\r\n\
s=Media Presentation\r\n\
e=NONE\r\n\
b=AS:5050\r\n\
t=0 0\r\n\
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 0.0.0.0\r\n\
b=AS:5000\r\n\
a=recvonly\r\n\
a=x-dimensions:2560,1440\r\n\
a=control:rtsp://192.168.1.64:554/Streaming/Channels/101/trackID=1\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 profile-level-id=420029; packetization-mode=1; sprop-parameter-sets=Z00AMp2oCgAtsBEAAAMAAQAAAwAyhA==,aO48gA==\r\n\
a=Media_header:MEDIAINFO=494D4B48010100000400000100000000000000000000000000000000000000000000000000000000;\r\n\
a=appversion:1.0\r\n";

const DAHUA_SDP: &str = "v=0\r\n\
o=- 2251938214 2251938214 IN IP4 0.0.0.0\r\n\
s=Media Server\r\n\
c=IN IP4 0.0.0.0\r\n\
t=0 0\r\n\
a=control:*\r\n\
a=packetization-supported:DH\r\n\
a=rtppayload-supported:DH\r\n\
a=range:npt=now-\r\n\
m=video 0 RTP/AVP 96\r\n\
a=control:trackID=0\r\n\
a=framerate:15.000000\r\n\
a=rtpmap:96 H264/90000\r\n\
a=fmtp:96 packetization-mode=1;profile-level-id=64001F;sprop-parameter-sets=Z2QAH6wsaoFAFuhAAAADAEAAAA8hAA==,aO4xshs=\r\n\
a=recvonly\r\n\
m=audio 0 RTP/AVP 8\r\n\
a=control:trackID=1\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=recvonly\r\n";

const GSTREAMER_SDP: &str = "v=0\r\n\
o=- 1188340656180883 1 IN IP4 127.0.0.1\r\n\
s=Session streamed with GStreamer\r\n\
i=rtsp-server\r\n\
t=0 0\r\n\
a=tool:GStreamer\r\n\
a=type:broadcast\r\n\
a=range:npt=now-\r\n\
a=control:rtsp://127.0.0.1:8554/test\r\n\
m=video 0 RTP/AVP 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=rtpmap:96 H264/90000\r\n\
a=framerate:30\r\n\
a=fmtp:96 packetization-mode=1;profile-level-id=42c01f;sprop-parameter-sets=Z0LAH9kAUAW7ARAAAAMAEAAAAwPI8YMkgA==,aMuDyyA=\r\n\
a=control:stream=0\r\n";

#[test]
fn sdp_samples() {
    let hik = sdp(HIK_SDP.as_bytes());
    assert_eq!(
        hik,
        vec![evidence(
            Signal::Sdp,
            HIKVISION,
            "a=Media_header:MEDIAINFO=494D4B48"
        )]
    );
    let dahua = sdp(DAHUA_SDP.as_bytes());
    assert_eq!(
        dahua
            .iter()
            .map(|e| (e.signal, e.vendor, e.detail.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (Signal::Sdp, DAHUA, "a=packetization-supported:DH"),
            (Signal::Sdp, DAHUA, "a=rtppayload-supported:DH"),
        ]
    );
    assert_eq!(decide(&dahua), Some(DAHUA));
    assert!(sdp(GSTREAMER_SDP.as_bytes()).is_empty());
    // The generic session names alone are no evidence.
    assert!(sdp(b"v=0\ns=Media Presentation\ne=NONE\nb=AS:5050\n").is_empty());
    assert!(sdp(b"v=0\ns=Media Server\na=range:npt=now-\n").is_empty());
    // NVR session name, LF-only line ends; shown with its version.
    let nvr = sdp(b"v=0\ns=HIK Media Server V3.5.43\nm=video 0 RTP/AVP 96\n");
    assert_eq!(nvr.len(), 1);
    assert_eq!(
        (nvr[0].vendor, nvr[0].detail.as_str()),
        (HIKVISION, "s=HIK Media Server V3.5.43")
    );
    // Repeated markers (two tracks) count once.
    let twice = format!("{HIK_SDP}{HIK_SDP}");
    assert_eq!(sdp(twice.as_bytes()).len(), 1);
}

#[test]
fn sdp_is_bounded() {
    // A marker after the first 64 KiB is not looked at.
    let mut late = vec![b'x'; 64 * 1024];
    late.extend_from_slice(b"\na=packetization-supported:DH\n");
    assert!(sdp(&late).is_empty());
    // A marker at the start of an over-long line still counts; junk does not panic.
    let mut long = b"a=packetization-supported:DH".to_vec();
    long.extend(std::iter::repeat_n(b'A', 10_000));
    assert_eq!(sdp(&long).len(), 1);
    let hostile: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 256) as u8).collect();
    let _ = sdp(&hostile);
    let mut bad = b"s=HIK Media Server \xff\xfe\x00\x1b[2J<script>".to_vec();
    bad.extend(std::iter::repeat_n(b'Z', 5000));
    let e = sdp(&bad);
    assert_eq!(e.len(), 1);
    assert!(
        printable(&e[0].detail) && e[0].detail.len() <= 96,
        "{:?}",
        e[0].detail
    );
    assert!(sdp(b"").is_empty());
}

// --- ONVIF --------------------------------------------------------------

#[test]
fn onvif_manufacturer_brands() {
    assert_eq!(
        one(onvif_manufacturer("HIKVISION")),
        (
            Signal::OnvifManufacturer,
            HIKVISION,
            "Manufacturer HIKVISION".into()
        )
    );
    for hik in [
        "Hikvision",
        " hikvision \n",
        "EZVIZ",
        "HiLook",
        "HiWatch",
        "LTS",
        "Prama",
        "Prama Hikvision India",
        "Hangzhou Hikvision Digital Technology Co., Ltd.",
    ] {
        assert_eq!(onvif_manufacturer(hik).unwrap().vendor, HIKVISION, "{hik}");
    }
    for dahua in [
        "Dahua",
        "DAHUA",
        "Lorex",
        "Amcrest",
        "Imou",
        "Lechange",
        "IC Realtime",
        "Zhejiang Dahua Technology Co., Ltd.",
    ] {
        assert_eq!(onvif_manufacturer(dahua).unwrap().vendor, DAHUA, "{dahua}");
    }
    for none in [
        "",
        "Honeywell",
        "Annke",
        "Swann",
        "Alarm.com",
        "AXIS",
        "General",
        "LTSX",
        "Dahuaxyz",
        "Hikvisionary",
        "HI\u{212A}VISION",
    ] {
        assert_eq!(onvif_manufacturer(none), None, "{none:?}");
    }
    assert_eq!(onvif_manufacturer(&"Dahua ".repeat(1000)), None);
}

const HIK_DEVINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:soapenc="http://www.w3.org/2003/05/soap-encoding" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tt="http://www.onvif.org/ver10/schema" xmlns:tds="http://www.onvif.org/ver10/device/wsdl" xmlns:trt="http://www.onvif.org/ver10/media/wsdl" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><tds:GetDeviceInformationResponse><tds:Manufacturer>HIKVISION</tds:Manufacturer>
<tds:Model>DS-2CD2143G0-I</tds:Model>
<tds:FirmwareVersion>V5.5.82 build 190909</tds:FirmwareVersion>
<tds:SerialNumber>DS-2CD2143G0-I20190101AAWRC12345678</tds:SerialNumber>
<tds:HardwareId>88</tds:HardwareId>
</tds:GetDeviceInformationResponse>
</env:Body>
</env:Envelope>
"#;

const DAHUA_DEVINFO: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" xmlns:SOAP-ENC="http://schemas.xmlsoap.org/soap/encoding/" xmlns:ns1="http://www.onvif.org/ver10/device/wsdl" xmlns:tt="http://www.onvif.org/ver10/schema">
  <SOAP-ENV:Header></SOAP-ENV:Header>
  <SOAP-ENV:Body>
    <ns1:GetDeviceInformationResponse>
      <ns1:Manufacturer>Dahua</ns1:Manufacturer>
      <ns1:Model>IPC-HFW2431S-S-S2</ns1:Model>
      <ns1:FirmwareVersion>2.800.0000018.0.R</ns1:FirmwareVersion>
      <ns1:SerialNumber>4J0186FPAG00123</ns1:SerialNumber>
      <ns1:HardwareId>1.00</ns1:HardwareId>
    </ns1:GetDeviceInformationResponse>
  </SOAP-ENV:Body>
</SOAP-ENV:Envelope>"#;

#[test]
fn device_information_samples() {
    let hik = parse_device_information(HIK_DEVINFO.as_bytes()).unwrap();
    assert_eq!(
        hik,
        DeviceInformation {
            manufacturer: "HIKVISION".into(),
            model: "DS-2CD2143G0-I".into(),
            firmware: "V5.5.82 build 190909".into(),
            serial: "DS-2CD2143G0-I20190101AAWRC12345678".into(),
            hardware_id: "88".into(),
        }
    );
    assert_eq!(
        onvif_manufacturer(&hik.manufacturer).unwrap().vendor,
        HIKVISION
    );
    assert_eq!(label_value(&hik.firmware), "V5.5.82_build_190909");
    let dahua = parse_device_information(DAHUA_DEVINFO.as_bytes()).unwrap();
    assert_eq!(
        dahua,
        DeviceInformation {
            manufacturer: "Dahua".into(),
            model: "IPC-HFW2431S-S-S2".into(),
            firmware: "2.800.0000018.0.R".into(),
            serial: "4J0186FPAG00123".into(),
            hardware_id: "1.00".into(),
        }
    );
    // No prefixes at all (default namespaces), fields in another order,
    // one missing, one empty element, entities and CDATA.
    let bare = r#"<Envelope xmlns="http://www.w3.org/2003/05/soap-envelope"><Body><GetDeviceInformationResponse xmlns="http://www.onvif.org/ver10/device/wsdl"><Model>A &amp; B</Model><Manufacturer><![CDATA[Lorex]]></Manufacturer><HardwareId/><SerialNumber>&#x41;&#66;C</SerialNumber></GetDeviceInformationResponse></Body></Envelope>"#;
    assert_eq!(
        parse_device_information(bare.as_bytes()).unwrap(),
        DeviceInformation {
            manufacturer: "Lorex".into(),
            model: "A & B".into(),
            firmware: String::new(),
            serial: "ABC".into(),
            hardware_id: String::new(),
        }
    );
    // Nested elements with field names elsewhere do not leak in.
    let nested = r#"<s:Envelope xmlns:s="x"><s:Header><Model>header</Model></s:Header><s:Body><GetDeviceInformationResponse><Extra><Model>deep</Model></Extra><Model>real</Model></GetDeviceInformationResponse></s:Body></s:Envelope>"#;
    assert_eq!(
        parse_device_information(nested.as_bytes()).unwrap().model,
        "real"
    );
}

#[test]
fn device_information_rejections() {
    let fault = r#"<?xml version="1.0" ?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault><env:Code><env:Value>env:Sender</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason><env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>"#;
    assert_eq!(parse_device_information(fault.as_bytes()), None);
    for bad in [
        "",
        "<html><body>401 Unauthorized</body></html>",
        r#"<s:Envelope xmlns:s="x"><s:Body><GetSystemDateAndTimeResponse/></s:Body></s:Envelope>"#,
        r#"<s:Envelope xmlns:s="x"><s:Body><GetDeviceInformationResponse><Model>x</Model></s:Body></s:Envelope>"#,
        r#"<s:Envelope xmlns:s="x"><s:Body><GetDeviceInformationResponse><Model>x</Model></GetDeviceInformationResponse>"#,
        r#"<!DOCTYPE x [<!ENTITY e "HIKVISION">]><s:Envelope xmlns:s="x"><s:Body><GetDeviceInformationResponse><Manufacturer>&e;</Manufacturer></GetDeviceInformationResponse></s:Body></s:Envelope>"#,
        r#"<Wrapper><s:Envelope xmlns:s="x"><s:Body><GetDeviceInformationResponse/></s:Body></s:Envelope></Wrapper>"#,
    ] {
        assert_eq!(parse_device_information(bad.as_bytes()), None, "{bad}");
    }
    // Over 256 KiB.
    let mut big = HIK_DEVINFO.to_string();
    big.push_str(&" ".repeat(256 * 1024));
    assert_eq!(parse_device_information(big.as_bytes()), None);
    // Too deep.
    let deep = format!(
        "<s:Envelope><s:Body><GetDeviceInformationResponse>{}",
        "<a>".repeat(100)
    );
    assert_eq!(parse_device_information(deep.as_bytes()), None);
    // Every truncation of a valid response is handled without a panic.
    for n in 0..HIK_DEVINFO.len() {
        let _ = parse_device_information(&HIK_DEVINFO.as_bytes()[..n]);
    }
}

#[test]
fn device_information_hostile_values() {
    let huge = "H".repeat(10 * 1024);
    let mut xml = format!(
        "<s:Envelope xmlns:s=\"x\"><s:Body><tds:GetDeviceInformationResponse>\
         <tds:Manufacturer>&lt;script&gt;alert(1)&lt;/script&gt;</tds:Manufacturer>\
         <tds:Model><![CDATA[<script>alert(2)</script>]]></tds:Model>\
         <tds:FirmwareVersion>{huge}</tds:FirmwareVersion>\
         <tds:HardwareId>a&#27;[31mb\t\r\n c&#x7;</tds:HardwareId>\
         <tds:SerialNumber>"
    )
    .into_bytes();
    xml.extend_from_slice(b"\xff\xfe\xc3(\x01SN\xe2\x82");
    xml.extend_from_slice(
        b"</tds:SerialNumber></tds:GetDeviceInformationResponse></s:Body></s:Envelope>",
    );
    let d = parse_device_information(&xml).unwrap();
    for f in [
        &d.manufacturer,
        &d.model,
        &d.firmware,
        &d.serial,
        &d.hardware_id,
    ] {
        assert!(printable(f) && f.len() <= 64, "{f:?}");
    }
    assert_eq!(d.manufacturer, "<script>alert(1)</script>");
    assert_eq!(d.model, "<script>alert(2)</script>");
    assert_eq!(d.firmware, "H".repeat(64));
    assert_eq!(d.hardware_id, "a [31mb c");
    assert!(d.serial.contains("SN"), "{:?}", d.serial);
    assert_eq!(label_value(&d.manufacturer), "script_alert_1_script");
    // Many small text pieces do not grow a field without bound.
    let pieces = format!(
        "<s:Envelope><s:Body><GetDeviceInformationResponse><Model>{}</Model></GetDeviceInformationResponse></s:Body></s:Envelope>",
        "ab&amp;".repeat(20_000)
    );
    let d = parse_device_information(pieces.as_bytes()).unwrap();
    assert_eq!(d.model.len(), 64);
}

#[test]
fn device_information_request_is_a_soap12_call() {
    let plain = device_information_request("");
    assert!(!plain.contains("Header"), "{plain}");
    assert!(plain.contains("http://www.w3.org/2003/05/soap-envelope"));
    let s = crate::http::soap::parse(plain.as_bytes()).unwrap();
    assert_eq!(s.ops, vec!["GetDeviceInformation".to_string()]);
    assert!(s.token.is_none());
    let sec = crate::http::soap::security_header("admin", "pw", "2026-11-28T00:00:00Z");
    let signed = device_information_request(&sec);
    assert!(signed.contains("<s:Header><wsse:Security"), "{signed}");
    let s = crate::http::soap::parse(signed.as_bytes()).unwrap();
    assert_eq!(s.ops, vec!["GetDeviceInformation".to_string()]);
    let token = s.token.unwrap();
    assert_eq!(token.username, "admin");
    let nonce = crate::http::soap::decode_nonce(token.nonce.as_deref().unwrap()).unwrap();
    assert!(crate::http::soap::verify(&token, Some(&nonce), "pw"));
}

// --- decision and labels ------------------------------------------------

#[test]
fn decide_weighs_identity_over_copied_strings() {
    assert_eq!(decide(&[]), None);
    // A clone: Hikvision SDP (copied verbatim) on a Dahua-made device.
    let mut ev = sdp(HIK_SDP.as_bytes());
    ev.extend(onvif_manufacturer("Dahua"));
    ev.extend(oui([0x3c, 0xef, 0x8c, 1, 2, 3]));
    assert_eq!(decide(&ev), Some(DAHUA));
    // Hikvision end to end.
    let mut ev = sdp(HIK_SDP.as_bytes());
    ev.extend(http_server("App-webs/"));
    ev.extend(www_authenticate("Digest realm=\"IPCamera\"", false));
    ev.extend(www_authenticate("Digest realm=\"4419b66d2485\"", true));
    ev.extend(onvif_manufacturer("HIKVISION"));
    ev.extend(oui([0x44, 0x19, 0xb6, 0x6d, 0x24, 0x85]));
    assert_eq!(decide(&ev), Some(HIKVISION));
    // A tie: one equally weighted signal each.
    let tie = [
        http_server("App-webs/").unwrap(),
        rtsp_server("Rtsp Server/3.0").unwrap(),
    ];
    assert_eq!(decide(&tie), None);
    // Repeats of one signal count once: still a tie.
    let mut repeated = tie.to_vec();
    repeated.extend(sdp(DAHUA_SDP.as_bytes()));
    repeated.extend(sdp(HIK_SDP.as_bytes()));
    repeated.extend(std::iter::repeat_n(
        rtsp_server("Rtsp Server/3.0").unwrap(),
        50,
    ));
    assert_eq!(decide(&repeated), None);
    // A single weak signal decides on its own.
    assert_eq!(
        decide(&[www_authenticate("Basic realm=\"hikvision\"", false).unwrap()]),
        Some(HIKVISION)
    );
}

#[test]
fn signal_names_and_weights() {
    let all = [
        Signal::RtspServer,
        Signal::RtspRealm,
        Signal::Sdp,
        Signal::HttpServer,
        Signal::HttpRealm,
        Signal::OnvifManufacturer,
        Signal::Oui,
    ];
    for s in all {
        assert_eq!(
            serde_json::to_value(s).unwrap(),
            serde_json::Value::String(s.as_str().to_string())
        );
        assert!(s.weight() > 0);
        assert_eq!(s.to_string(), s.as_str());
    }
    assert!(Signal::OnvifManufacturer.weight() > Signal::Oui.weight());
    assert!(Signal::Oui.weight() > Signal::Sdp.weight());
    assert!(Signal::Sdp.weight() > Signal::HttpRealm.weight());
    let e = serde_json::to_value(oui([0x44, 0x19, 0xb6, 0, 0, 0]).unwrap()).unwrap();
    assert_eq!(
        e,
        serde_json::json!({"signal": "oui", "vendor": "hikvision",
            "detail": "OUI 44:19:B6 Hangzhou Hikvision Digital Technology"})
    );
}

#[test]
fn label_values() {
    assert_eq!(label_value("V5.5.82 build 190909"), "V5.5.82_build_190909");
    assert_eq!(label_value("DS-2CD2143G0-I"), "DS-2CD2143G0-I");
    assert_eq!(label_value("2.800.0000018.0.R"), "2.800.0000018.0.R");
    assert_eq!(label_value(""), "");
    assert_eq!(label_value("   "), "");
    assert_eq!(label_value("<>\"'{}"), "");
    assert_eq!(label_value(&"a".repeat(200)), "a".repeat(64));
    assert_eq!(label_value(&"ab ".repeat(200)).len(), 64);
    assert_eq!(
        label_value("<script>alert(1)</script>"),
        "script_alert_1_script"
    );
    assert_eq!(label_value("  HIKVISION\r\n"), "HIKVISION");
    assert_eq!(label_value("a \u{0}\u{1b}[31m b"), "a_31m_b");
    assert_eq!(label_value("Müller"), "M_ller");
    assert_eq!(label_value("x{job=\"evil\"}"), "x_job_evil");
    assert_eq!(label_value("_keep_"), "_keep_");
    assert_eq!(label_value("a_ b"), "a_b");
    // A cut at 64 never ends on a replacement underscore.
    let cut = label_value(&format!("{} tail", "a".repeat(63)));
    assert_eq!(cut, "a".repeat(63));
    for s in [
        "é".repeat(100),
        "\u{202e}".repeat(100),
        format!("{}x", " ".repeat(100_000)),
    ] {
        let l = label_value(&s);
        assert!(l.len() <= 64);
        assert!(
            l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')),
            "{l:?}"
        );
    }
}

#[test]
fn clean_is_printable_and_bounded() {
    assert_eq!(clean("  a \t b\r\n", 96), "a b");
    assert_eq!(clean("\u{0}\u{7f}", 96), "");
    assert_eq!(clean("é\u{fffd}x", 96), "??x");
    assert_eq!(clean(&"x ".repeat(100), 5), "x x x");
    assert_eq!(clean("abcd efgh", 5), "abcd");
}
