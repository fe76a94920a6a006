//! Egress containment: the DNS sinkhole the camera network resolves
//! through, the trap that receives every other outbound connection and
//! datagram the cameras try (redirected by the firewall), the categories
//! both label attempts with, and the nftables ruleset that makes camgate
//! the cameras' only way out.

pub mod book;
pub mod categories;
pub mod dns;
pub mod dns_tcp;
pub mod nft;
pub mod sniff;
pub mod trap;
