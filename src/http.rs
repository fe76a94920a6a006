//! The camera HTTP API proxy: ISAPI, Dahua CGI/RPC2 and ONVIF for recorders,
//! under an allow/deny policy, with camgate holding the cameras' credentials.
//!
//! Pure parts: [`normalize`] (canonical request targets), [`policy`]
//! (rules and verdicts), [`answer`] (which answers are rewritten) and
//! [`audit`] (what a rewritten answer may name).

pub mod answer;
pub mod audit;
pub mod judge;
pub mod normalize;
pub mod policy;
pub mod proxy;
pub mod rewrite;
pub mod rpc;
pub mod server;
pub mod soap;
pub mod upstream;
