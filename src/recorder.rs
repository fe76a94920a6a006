//! The recorder-facing RTSP/1.0 server (RFC 2326).
//!
//! camgate answers recorders itself: its own SDP, sessions, SSRCs, sequence
//! numbers and timestamps. Protocol pieces without I/O ([`request`],
//! [`response`], [`transport`], [`sdp`]) are separate from the
//! socket code ([`server`], [`conn`], [`writer`], [`udp`]).
//!
//! Not here: anything toward cameras (`camera`), and frame fan-out (`media`).

pub mod conn;
pub mod request;
pub mod response;
pub mod sdp;
pub mod server;
pub mod session;
pub mod transport;
pub mod udp;
pub mod writer;
