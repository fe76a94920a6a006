//! The camera HTTP API proxy: ISAPI, Dahua CGI/RPC2 and ONVIF for recorders,
//! under an allow/deny policy, with camgate holding the cameras' credentials.
//!
//! Pure parts: [`normalize`] (canonical request targets) and [`policy`]
//! (rules and verdicts).

pub mod judge;
pub mod normalize;
pub mod policy;
pub mod proxy;
pub mod rewrite;
pub mod rpc;
pub mod server;
pub mod soap;
pub mod upstream;
