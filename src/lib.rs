//! camgate: a quarantine gateway for legacy IP cameras.
pub mod app;
pub mod cli;
pub mod config;
pub mod devices;
pub mod media;
pub mod ratelimit;
pub mod rtp;
pub mod rtsp;
pub mod source;
pub mod summary;
pub mod telemetry;
