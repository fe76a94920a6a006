//! camgate: a quarantine gateway for legacy IP cameras.
pub mod config;
pub mod rtp;
