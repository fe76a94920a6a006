//! Inspection of what camgate relays and of the cameras themselves: codec
//! facts from the bitstream (never from what a camera claims in its SDP),
//! the camera's parameter sets checked and cleaned, sanitizing before
//! packetizing, and change detection: per-frame code only (fingerprinting
//! the devices is `crate::fingerprint`).

pub mod access;
pub mod bits;
pub mod facts;
pub mod monitor;
pub mod params;
pub mod sanitize;
