//! Inspection of what camgate relays: codec facts from the bitstream itself
//! (parameter sets), never from what a camera claims in its SDP.

pub mod bits;
pub mod facts;
