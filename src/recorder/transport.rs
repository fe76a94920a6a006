//! The `Transport` header (RFC 2326 §12.39): what a recorder asks for in
//! SETUP and what camgate answers.

/// A transport camgate can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    /// RTP/AVP/TCP interleaved on these channels (RTP, RTCP), or camgate's
    /// choice when the recorder did not name them.
    Tcp { channels: Option<(u8, u8)> },
    /// RTP/AVP unicast UDP to these client ports (RTP, RTCP).
    Udp { client_ports: (u16, u16) },
}

/// Why no offered transport is acceptable (461 Unsupported Transport).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub &'static str);

/// Picks the first transport in the header camgate supports.
pub fn choose(header: &str, udp_enabled: bool) -> Result<Requested, Unsupported> {
    let mut reason = "no transport offered";
    for spec in header.split(',') {
        match parse_one(spec.trim()) {
            Ok(Requested::Udp { .. }) if !udp_enabled => reason = "UDP is disabled on this server",
            Ok(t) => return Ok(t),
            Err(Unsupported(r)) => reason = r,
        }
    }
    Err(Unsupported(reason))
}

fn parse_one(spec: &str) -> Result<Requested, Unsupported> {
    let mut parts = spec.split(';').map(str::trim);
    let proto = parts.next().unwrap_or("").to_ascii_uppercase();
    let tcp = match proto.as_str() {
        "RTP/AVP/TCP" => true,
        "RTP/AVP" | "RTP/AVP/UDP" => false,
        _ => return Err(Unsupported("only RTP/AVP over TCP or UDP is offered")),
    };
    let mut interleaved = None;
    let mut client_port = None;
    for p in parts {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let v = v.trim().trim_matches('"');
        match k.trim().to_ascii_lowercase().as_str() {
            "multicast" => return Err(Unsupported("multicast is not offered")),
            "interleaved" => {
                interleaved = Some(range::<u8>(v).ok_or(Unsupported("bad interleaved"))?)
            }
            "client_port" => {
                client_port = Some(range::<u16>(v).ok_or(Unsupported("bad client_port"))?)
            }
            "mode" if !v.eq_ignore_ascii_case("play") => {
                return Err(Unsupported("only mode=PLAY is offered"));
            }
            _ => {}
        }
    }
    if tcp {
        return Ok(Requested::Tcp {
            channels: interleaved,
        });
    }
    match client_port {
        Some((rtp, rtcp)) if rtp != 0 => Ok(Requested::Udp {
            client_ports: (rtp, rtcp),
        }),
        _ => Err(Unsupported("UDP needs client_port")),
    }
}

/// Parses `a-b` or `a` (then `b = a + 1`).
fn range<T>(v: &str) -> Option<(T, T)>
where
    T: std::str::FromStr + Copy + TryFrom<u32>,
    u32: From<T>,
{
    match v.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let a: T = v.parse().ok()?;
            let b = T::try_from(u32::from(a) + 1).ok()?;
            Some((a, b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_forms() {
        assert_eq!(
            choose("RTP/AVP/TCP;unicast;interleaved=0-1", true),
            Ok(Requested::Tcp {
                channels: Some((0, 1))
            })
        );
        assert_eq!(
            choose("RTP/AVP/TCP;unicast", true),
            Ok(Requested::Tcp { channels: None })
        );
        assert_eq!(
            choose("RTP/AVP;unicast;client_port=5000-5001;mode=\"PLAY\"", true),
            Ok(Requested::Udp {
                client_ports: (5000, 5001)
            })
        );
        assert_eq!(
            choose("RTP/AVP/UDP;unicast;client_port=5000", true),
            Ok(Requested::Udp {
                client_ports: (5000, 5001)
            })
        );
        assert_eq!(
            choose("rtp/avp/tcp;interleaved=4", true),
            Ok(Requested::Tcp {
                channels: Some((4, 5))
            })
        );
    }

    #[test]
    fn picks_first_supported_alternative() {
        assert_eq!(
            choose(
                "RTP/AVP;multicast, RTP/AVP/TCP;unicast;interleaved=2-3",
                true
            ),
            Ok(Requested::Tcp {
                channels: Some((2, 3))
            })
        );
        assert_eq!(
            choose(
                "RTP/AVP;unicast;client_port=6000-6001, RTP/AVP/TCP;interleaved=0-1",
                false
            ),
            Ok(Requested::Tcp {
                channels: Some((0, 1))
            })
        );
    }

    #[test]
    fn rejects() {
        assert!(choose("RTP/AVP;multicast", true).is_err());
        assert!(choose("RTP/SAVP;unicast", true).is_err());
        assert!(choose("RTP/AVP;unicast", true).is_err());
        assert!(choose("RTP/AVP/TCP;interleaved=300-301", true).is_err());
        assert!(choose("RTP/AVP/TCP;interleaved=255", true).is_err());
        assert!(choose("RTP/AVP/TCP;mode=record", true).is_err());
        assert!(choose("", true).is_err());
        assert!(choose("RTP/AVP;client_port=1-2", false).is_err());
    }
}
